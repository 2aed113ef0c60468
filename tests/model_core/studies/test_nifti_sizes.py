"""Hardening: a NIfTI file must hold exactly the data its header declares; pixdim 0 is refused; wide
voxel types are read slab by slab and give the same float32 values as nibabel's own scaling."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from model_core.errors import StudyReadError
from model_core.studies import nifti as nifti_mod
from model_core.studies import read_volume
from tests.model_core.studies.builders import canonical_phantom, write_nifti

AFF = np.diag([0.8, 0.8, 2.0, 1.0])


def _shrunk_header(good: Path, shape: tuple[int, ...]) -> bytes:
    img = nib.load(good)
    hdr = img.header.copy()
    hdr.set_data_shape(shape)
    hdr["vox_offset"] = 352
    return hdr.binaryblock + good.read_bytes()[348:]


def test_more_data_than_declared_refused(tmp_path: Path) -> None:
    good = write_nifti(tmp_path / "good.nii", canonical_phantom(), AFF)
    path = tmp_path / "shrunk.nii"
    path.write_bytes(_shrunk_header(good, (6, 7, 4)))  # one slice fewer than the data hold
    with pytest.raises(StudyReadError, match="more data than declared"):
        read_volume(path)


@pytest.mark.parametrize("shape", [(6, 7, 4), (6, 7, 6)])
def test_gzip_size_trailer_must_match_the_header(tmp_path: Path, shape: tuple[int, ...]) -> None:
    good = write_nifti(tmp_path / "good.nii", canonical_phantom(), AFF)
    path = tmp_path / "changed.nii.gz"
    path.write_bytes(gzip.compress(_shrunk_header(good, shape)))
    with pytest.raises(StudyReadError, match="size trailer"):
        read_volume(path)
    ok = tmp_path / "ok.nii.gz"
    ok.write_bytes(gzip.compress(good.read_bytes()))
    assert read_volume(ok).data.shape == (6, 7, 5)


def test_qform_pixdim_zero_refused(tmp_path: Path) -> None:
    img = nib.Nifti1Image(canonical_phantom(), AFF)
    img.set_qform(AFF, code=1)
    img.set_sform(AFF, code=0)
    path = tmp_path / "p.nii"
    nib.save(img, path)
    raw = bytearray(path.read_bytes())
    raw[76 + 8 : 76 + 12] = np.float32(0.0).tobytes()  # pixdim[2] = 0 (pixdim is float32[8] at byte 76)
    path.write_bytes(bytes(raw))
    with pytest.raises(StudyReadError, match="pixdim"):
        read_volume(path)


@pytest.mark.parametrize("name", ["w.nii", "w.nii.gz"])
def test_wide_types_read_by_slab_match_nibabel(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nifti_mod, "_SLAB_BYTES", 6 * 7 * 8 * 2)  # two slices per slab: several slabs
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 7, 5, 3)) * 1e3
    img = nib.Nifti1Image(data.astype(np.float64), AFF)
    img.set_sform(AFF, code=1)
    img.header.set_slope_inter(2.0, -5.0)
    nib.save(img, tmp_path / name)
    vol = read_volume(tmp_path / name)
    expected = nib.load(tmp_path / name).get_fdata(dtype=np.float32)
    assert vol.data.shape == (3, 6, 7, 5)
    assert np.allclose(vol.data, np.moveaxis(expected, -1, 0), rtol=1e-6)
