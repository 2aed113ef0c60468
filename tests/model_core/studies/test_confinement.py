"""Hardening items 1 and 2: no voxel from outside the study folder, none from another request.

File lists (``LIST``, ``LIST 3``, also when a file of that name exists), data-file lines running through a
folder named like ``k: v``, detached data files and loose files that are links leaving the folder are
refused; whatever the SimpleITK worker returns must hash to the file's own data bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from model_core.errors import StudyReadError
from model_core.studies import itkfile, read_study, read_volume

SECRET = b"root:x:0:0:root:/root:/bin/bash\n" * 64


def _voxels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, size=(5, 7, 6)).astype("<i2")


def _mhd(folder: Path, name: str, data_line: str, seed: int = 0) -> Path:
    """A detached MetaImage header ``name`` and ``<stem>.raw`` (6 x 7 x 5 int16) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 6 7 5\nElementType = MET_SHORT\n"
        "ElementSpacing = 1 1 1\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"ElementDataFile = {data_line}\n"
    )
    (folder / (path.stem + ".raw")).write_bytes(_voxels(seed).tobytes())
    return path


def _outside(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    return secret


def test_plain_detached_file_reads_its_own_voxels(tmp_path: Path) -> None:
    vol = read_volume(_mhd(tmp_path / "s", "t2.mhd", "t2.raw", seed=3))
    assert sorted(vol.data.ravel().tolist()) == sorted(_voxels(3).astype(np.float32).ravel().tolist())


@pytest.mark.parametrize("data_line", ["LIST", "LIST 3", "list 2D", "t2_%03d.raw 1 5 1", "a b.raw"])
def test_metaio_file_lists_refused_even_when_named_file_exists(tmp_path: Path, data_line: str) -> None:
    secret = _outside(tmp_path)
    folder = tmp_path / "s"
    path = _mhd(folder, "t2.mhd", data_line)
    path.write_text(path.read_text() + f"{secret}\n{secret}\n{secret}\n")
    (folder / data_line).write_bytes(b"")  # a file named exactly like the list keyword
    with pytest.raises(StudyReadError, match="no paths, lists or patterns"):
        read_volume(path)


def test_nrrd_list_through_folder_named_like_a_field(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    odd = tmp_path / "k: v"
    odd.mkdir()
    (odd / "x.raw").write_bytes(SECRET[: 6 * 7 * 5 * 2])
    folder.mkdir()
    (folder / "LIST").write_bytes(b"")
    nhdr = folder / "t2.nhdr"
    nhdr.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 6 7 5\nendian: little\nencoding: raw\n"
        f"spacings: 1 1 1\ndata file: LIST\n{odd / 'x.raw'}\n"
    )
    with pytest.raises(StudyReadError, match="no paths, lists or patterns|not a field name"):
        read_volume(nhdr)
    nhdr.write_text(nhdr.read_text().replace("data file: LIST\n", "data file: t2.raw\n"))
    with pytest.raises(StudyReadError, match="not a field name"):
        read_volume(nhdr)


def test_detached_data_file_link_leaving_the_folder_refused(tmp_path: Path) -> None:
    secret = _outside(tmp_path)
    folder = tmp_path / "s"
    path = _mhd(folder, "t2.mhd", "t2.raw")
    (folder / "t2.raw").unlink()
    (folder / "t2.raw").symlink_to(secret)
    with pytest.raises(StudyReadError, match="leaves the study folder"):
        read_volume(path)


def test_data_file_symlink_loop_is_a_typed_error(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    path = _mhd(folder, "t2.mhd", "loop.raw")
    (folder / "loop.raw").symlink_to(folder / "loop.raw")
    with pytest.raises(StudyReadError, match="symlink loop"):
        read_volume(path)


def test_loose_file_link_leaving_the_study_folder_refused(tmp_path: Path) -> None:
    other = _mhd(tmp_path / "other", "t2.mha", "t2.raw")
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "t2.mhd").symlink_to(other)
    with pytest.raises(StudyReadError, match="leaves the study folder"):
        read_study(folder)


def test_worker_voxels_must_hash_to_the_files_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent hashes the file's data itself; voxels from anywhere else (a stale buffer) are refused."""
    first = _mhd(tmp_path / "a", "t2.mhd", "t2.raw", seed=1)
    second = _mhd(tmp_path / "b", "t2.mhd", "t2.raw", seed=2)
    assert not np.array_equal(read_volume(first).data, read_volume(second).data)
    stale = hashlib.sha256(_voxels(1).tobytes()).hexdigest()  # the first study's bytes
    monkeypatch.setattr(itkfile, "data_digest", lambda hdr: stale)
    with pytest.raises(StudyReadError, match="checksum mismatch"):
        read_volume(second)
    assert read_volume(first).data.shape == (6, 7, 5)


def test_alternating_studies_never_mix(tmp_path: Path) -> None:
    paths = [_mhd(tmp_path / f"c{i}", "t2.mhd", "t2.raw", seed=10 + i) for i in range(3)]
    for _ in range(2):
        for i, p in enumerate(paths):
            got = np.sort(read_volume(p).data.ravel())
            assert np.array_equal(got, np.sort(_voxels(10 + i).astype(np.float32).ravel()))


@pytest.mark.parametrize("encoding", ["gzip", "text"])
def test_nrrd_compressed_and_text_data_are_proved_too(tmp_path: Path, encoding: str) -> None:
    import gzip

    arr = _voxels(5)
    payload = gzip.compress(arr.tobytes()) if encoding == "gzip" else " ".join(map(str, arr.ravel())).encode()
    path = tmp_path / "t.nrrd"
    path.write_bytes(
        f"NRRD0004\ntype: short\ndimension: 3\nsizes: 6 7 5\nendian: little\nencoding: {encoding}\n"
        "spacings: 1 1 1\n\n".encode() + payload
    )
    vol = read_volume(path)
    assert np.array_equal(np.sort(vol.data.ravel()), np.sort(arr.astype(np.float32).ravel()))
