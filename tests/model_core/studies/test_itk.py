"""NRRD / MetaImage: header checks before SimpleITK, and the isolating child process."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from model_core.errors import StudyReadError
from model_core.studies import ReadLimits, isolate, read_volume
from model_core.studies.itkfile import read_itk_file
from tests.model_core.studies.builders import canonical_phantom


def _write(path: Path, compress: bool = False) -> Path:
    img = sitk.GetImageFromArray(canonical_phantom().transpose(2, 1, 0))
    img.SetSpacing((0.8, 0.9, 3.0))
    img.SetOrigin((10.0, 20.0, -5.0))
    sitk.WriteImage(img, str(path), useCompression=compress)
    return path


def _split(path: Path, sep: bytes) -> tuple[bytes, bytes]:
    raw = path.read_bytes()
    i = raw.index(sep) + len(sep)
    return raw[:i], raw[i:]


@pytest.mark.parametrize("name", ["a.nrrd", "a.mha", "a.mhd"])
def test_reads_and_matches_header(tmp_path: Path, name: str) -> None:
    vol = read_volume(_write(tmp_path / name))
    assert vol.data.dtype == np.float32 and vol.data.shape == (6, 7, 5)
    assert vol.spacing == pytest.approx((0.8, 0.9, 3.0))
    # LPS origin (10, 20, -5): x and y axes flipped to RAS, so voxel 0 sits at the far corner
    assert vol.affine[:3, 3] == pytest.approx((-10.0 - 5 * 0.8, -20.0 - 6 * 0.9, -5.0))


@pytest.mark.parametrize(
    ("name", "compress"), [("t.nrrd", False), ("t.nrrd", True), ("t.mha", False), ("t.mha", True)]
)
def test_truncated_data_refused_not_zero_filled(tmp_path: Path, name: str, compress: bool) -> None:
    path = _write(tmp_path / name, compress)
    raw = path.read_bytes()
    path.write_bytes(raw[:-7])
    with pytest.raises(StudyReadError, match="truncated|corrupt"):
        read_itk_file(path)


def test_declared_size_vs_file_size(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.nrrd")
    head, data = _split(path, b"\n\n")
    path.write_bytes(head.replace(b"sizes: 6 7 5", b"sizes: 6 7 6") + data)
    with pytest.raises(StudyReadError, match=r"declares 504 bytes .* holds 420"):
        read_itk_file(path)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b"NDims = 3", b"NDims = 100", "only 3-D"),
        (b"NDims = 3", b"NDims = -1", "only 3-D"),
        (b"DimSize = 6 7 5", b"DimSize = 2048 2048 2048", "too large"),
        (b"DimSize = 6 7 5", b"DimSize = 6 7", "DimSize has 2 entries"),
        (b"ElementSpacing = 0.80000000000000004", b"ElementSpacing = 0", "spacing"),
        (b"ElementType = MET_SHORT", b"ElementType = MET_STRING", "unsupported ElementType"),
        (b"ElementDataFile = LOCAL", b"ElementDataFile = ../../etc/passwd", "only a plain file name"),
    ],
)
def test_metaio_header_rejected_before_simpleitk(
    tmp_path: Path, old: bytes, new: bytes, match: str
) -> None:
    path = _write(tmp_path / "h.mha")
    raw = path.read_bytes()
    assert old in raw
    path.write_bytes(raw.replace(old, new, 1))
    t0 = time.perf_counter()
    with pytest.raises(StudyReadError, match=match):
        read_itk_file(path)
    assert time.perf_counter() - t0 < 0.5


def test_nrrd_wrong_dimension_and_encoding(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.nrrd")
    head, data = _split(path, b"\n\n")
    path.write_bytes(head.replace(b"dimension: 3", b"dimension: 5") + data)
    with pytest.raises(StudyReadError, match="only 3-D"):
        read_itk_file(path)
    path.write_bytes(head.replace(b"encoding: raw", b"encoding: bzip2") + data)
    with pytest.raises(StudyReadError, match="unsupported NRRD encoding"):
        read_itk_file(path)


def test_nan_voxels_refused(tmp_path: Path) -> None:
    arr = canonical_phantom().astype(np.float32)
    arr[0, 0, 0] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr.transpose(2, 1, 0)), str(tmp_path / "n.nrrd"))
    with pytest.raises(StudyReadError, match="1 non-finite voxels"):
        read_itk_file(tmp_path / "n.nrrd")


def test_gzip_bomb_rejected_from_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.nrrd"
    head = b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 1024 1024 512\nencoding: gzip\n\n"
    path.write_bytes(head + gzip.compress(b"\0" * 100000))
    with pytest.raises(StudyReadError, match="too large"):
        read_itk_file(path)
    with pytest.raises(StudyReadError, match="truncated"):  # under a bigger cap: stream is too short
        read_itk_file(path, ReadLimits(max_bytes=4 << 30))


@pytest.fixture
def fake_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def install(body: str) -> None:
        script = tmp_path / "fake_worker.py"
        script.write_text(
            "import json, os, sys, time\nprint(json.dumps({'ready': True}), flush=True)\n"
            "for line in sys.stdin:\n" + body
        )
        isolate.shutdown_worker()
        monkeypatch.setattr(isolate, "_WORKER_SCRIPT", script)

    yield install
    isolate.shutdown_worker()


def test_worker_death_becomes_study_read_error(tmp_path: Path, fake_worker, monkeypatch) -> None:
    path = _write(tmp_path / "ok.mha")
    fake_worker("    os.abort()\n")
    with pytest.raises(StudyReadError, match=r"process died \(SIGABRT\)"):
        read_itk_file(path)
    monkeypatch.undo()
    isolate.shutdown_worker()
    assert read_itk_file(path).data.shape == (6, 7, 5)  # a fresh worker serves the next call


def test_worker_timeout(tmp_path: Path, fake_worker) -> None:
    path = _write(tmp_path / "ok.nrrd")
    fake_worker("    time.sleep(30)\n")
    t0 = time.perf_counter()
    with pytest.raises(StudyReadError, match="timed out"):
        read_itk_file(path, ReadLimits(worker_timeout_s=1.0))
    assert time.perf_counter() - t0 < 10
