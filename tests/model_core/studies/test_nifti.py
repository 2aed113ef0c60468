"""NIfTI reader: typed errors for truncated, mis-sized, wrong-rank, non-finite and absurd inputs."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from model_core.errors import StudyReadError
from model_core.studies import ReadLimits, read_volume
from model_core.studies.nifti import read_nifti
from tests.model_core.studies.builders import canonical_phantom, write_nifti

AFF = np.diag([0.8, 0.8, 2.0, 1.0])


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_nifti(tmp_path / "good.nii", canonical_phantom(), AFF)


def test_reads_float32_ras(good: Path) -> None:
    vol = read_volume(good)
    assert vol.data.dtype == np.float32 and vol.data.shape == (6, 7, 5)
    assert vol.spacing == pytest.approx((0.8, 0.8, 2.0))
    assert vol.meta["format"] == "nifti" and vol.source == str(good)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_refused(tmp_path: Path, good: Path, suffix: str) -> None:
    raw = good.read_bytes()
    for cut in (100, 348, 360, len(raw) - 1):
        path = tmp_path / f"cut{cut}{suffix}"
        data = raw[:cut]
        path.write_bytes(gzip.compress(data) if suffix == ".nii.gz" else data)
        with pytest.raises(StudyReadError) as err:
            read_nifti(path)
        assert path.name in str(err.value)
    whole_gz = gzip.compress(raw)
    path = tmp_path / f"gzcut{suffix}.nii.gz"
    path.write_bytes(whole_gz[: len(whole_gz) - 20])
    with pytest.raises(StudyReadError):
        read_nifti(path)


def test_declared_size_larger_than_file(tmp_path: Path, good: Path) -> None:
    img = nib.load(good)
    hdr = img.header.copy()
    hdr.set_data_shape((6, 7, 6))  # one more slice than the file holds
    hdr["vox_offset"] = 352
    path = tmp_path / "short.nii"
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + good.read_bytes()[352:])
    with pytest.raises(StudyReadError, match="truncated: header needs 856 bytes"):
        read_nifti(path)
    hdr.set_data_shape((6, 7, 5))
    hdr["vox_offset"] = 0  # data would overlap the header
    path.write_bytes(hdr.binaryblock + good.read_bytes()[348:])
    with pytest.raises(StudyReadError, match="vox_offset 0 lies inside the header"):
        read_nifti(path)


@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 5, 2, 3), (6, 7, 1)])
def test_wrong_dimensionality(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = write_nifti(tmp_path / "w.nii", np.ones(shape, np.int16), AFF)
    with pytest.raises(StudyReadError, match="dimensionality|single 2-D slice"):
        read_nifti(path)


def test_4d_goes_channel_first(tmp_path: Path) -> None:
    data = np.stack([canonical_phantom() + 10 * t for t in range(3)], axis=-1)
    vol = read_nifti(write_nifti(tmp_path / "d.nii.gz", data, AFF))
    assert vol.data.shape == (3, 6, 7, 5)
    assert np.array_equal(vol.data[2], data[..., 2])


def test_nan_inf_rejected_with_count_or_zeroed(tmp_path: Path) -> None:
    data = canonical_phantom().astype(np.float32)
    data[0, 0, 0] = np.nan
    data[1, 0, 0] = np.nan
    data[2, 0, 0] = np.inf
    path = write_nifti(tmp_path / "nan.nii", data, AFF)
    with pytest.raises(StudyReadError, match=r"3 non-finite voxels \(2 NaN, 1 Inf\)"):
        read_nifti(path)
    vol = read_nifti(path, ReadLimits(nonfinite="zero"))
    assert vol.meta["nonfinite_zeroed"] == 3 and np.isfinite(vol.data).all()


def test_bomb_rejected_from_header_fast(tmp_path: Path) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2048, 2048, 2048))
    hdr.set_data_dtype(np.uint8)
    hdr.set_sform(AFF, code=1)
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4 + b"\0" * 65536))
    assert path.stat().st_size < 3_000_000
    t0 = time.perf_counter()
    with pytest.raises(StudyReadError, match="too large"):
        read_nifti(path)
    assert time.perf_counter() - t0 < 0.5  # header only (the target is < 50 ms; CI machines are shared)
    with pytest.raises(StudyReadError, match="too large"):
        read_nifti(path, ReadLimits(max_bytes=1 << 20))


def test_configurable_cap(good: Path) -> None:
    with pytest.raises(StudyReadError, match="cap"):
        read_nifti(good, ReadLimits(max_bytes=100))


def _rewrite(good: Path, path: Path, **fields: object) -> Path:
    """Copy ``good`` with raw header fields replaced (no nibabel consistency fixes)."""
    hdr = nib.load(good).header.copy()
    for key, value in fields.items():
        hdr[key] = value
    hdr["vox_offset"] = 352
    path.write_bytes(hdr.binaryblock + good.read_bytes()[348:])
    return path


@pytest.mark.parametrize(
    "fields",
    [
        {"srow_x": [0.0, 0.0, 0.0, 0.0]},
        {"srow_z": [0.0, 0.0, 50.0, 0.0]},
        {"srow_y": [0.0, np.nan, 0.0, 0.0]},
        {"srow_x": [0.8, 0.8, 0.0, 0.0], "srow_y": [0.8, 0.8, 0.0, 0.0]},
    ],
)
def test_bad_affine_or_spacing(tmp_path: Path, good: Path, fields: dict) -> None:
    with pytest.raises(StudyReadError, match="spacing|affine|singular"):
        read_nifti(_rewrite(good, tmp_path / "s.nii", qform_code=0, **fields))


def test_no_orientation_refused(tmp_path: Path) -> None:
    img = nib.Nifti1Image(canonical_phantom(), None)
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, tmp_path / "n.nii")
    with pytest.raises(StudyReadError, match="qform_code and sform_code are both 0"):
        read_nifti(tmp_path / "n.nii")


def test_library_error_keeps_cause(tmp_path: Path) -> None:
    path = tmp_path / "junk.nii"
    path.write_bytes(b"\x01" * 400)
    with pytest.raises(StudyReadError) as err:
        read_nifti(path)
    assert err.value.__cause__ is not None and "junk.nii" in str(err.value)


def test_unknown_or_missing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hi")
    with pytest.raises(StudyReadError, match="unsupported file type"):
        read_volume(tmp_path / "a.txt")
    with pytest.raises(StudyReadError, match="no such file"):
        read_volume(tmp_path / "missing.nii")


@pytest.mark.parametrize(
    ("vox_offset", "esize", "match"),
    [(200_000_352, 16, "exceed the 8 MiB limit"), (368, 200_000_000, "overruns vox_offset")],
)
def test_extension_bomb_refused_before_nibabel_reads_it(
    tmp_path: Path, vox_offset: int, esize: int, match: str
) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((6, 7, 5))
    hdr.set_data_dtype(np.int16)
    hdr.set_sform(AFF, code=1)
    hdr["vox_offset"] = vox_offset
    ext = b"\x01\0\0\0" + np.int32(esize).tobytes() + np.int32(0).tobytes() + b"\0" * 8
    path = tmp_path / "ext.nii.gz"
    path.write_bytes(gzip.compress(hdr.binaryblock + ext + b"\0" * 4096))
    with pytest.raises(StudyReadError, match=match):
        read_nifti(path)


def test_small_extension_accepted(tmp_path: Path) -> None:
    img = nib.Nifti1Image(canonical_phantom(), AFF)
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment padded" * 4))
    nib.save(img, tmp_path / "c.nii.gz")
    assert read_nifti(tmp_path / "c.nii.gz").data.shape == (6, 7, 5)
