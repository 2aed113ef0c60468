"""Orientation: 48 axis orders/flips read back to the same RAS world; nibabel vs SimpleITK paths agree."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from model_core.studies import read_volume
from model_core.studies.nifti import read_nifti
from model_core.studies.orient import affine_from_itk, napari_affine, reorient_to_ras, undo_reorientation
from tests.model_core.studies.builders import BRIGHT, DIM, canonical_phantom, write_nifti

SPACING = (0.7, 0.9, 2.5)
ORIGIN = (-30.0, 12.0, 40.0)
CANON = canonical_phantom()
CANON_AFFINE = np.diag([*SPACING, 1.0])
CANON_AFFINE[:3, 3] = ORIGIN
ORIENTATIONS = [
    (perm, flips)
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((False, True), repeat=3)
]


def file_grid(perm: tuple[int, ...], flips: tuple[bool, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The canonical phantom stored with axes ``perm`` of the flipped array, and that grid's affine."""
    arr = CANON
    for axis, f in enumerate(flips):
        if f:
            arr = np.flip(arr, axis)
    arr = np.ascontiguousarray(arr.transpose(perm))
    m = np.zeros((4, 4))
    m[3, 3] = 1
    for d, src in enumerate(perm):  # file axis d walks canonical axis src
        m[src, d] = -1.0 if flips[src] else 1.0
        m[src, 3] = CANON.shape[src] - 1 if flips[src] else 0.0
    return arr, CANON_AFFINE @ m


def _world(vol, value: int) -> np.ndarray:
    idx = np.argwhere(vol.data == value)[0]
    return (vol.affine @ np.r_[idx, 1.0])[:3]


TRUE_BRIGHT = (CANON_AFFINE @ np.r_[BRIGHT, 1.0])[:3]
TRUE_DIM = (CANON_AFFINE @ np.r_[DIM, 1.0])[:3]


def test_48_orientations_read_back_to_same_world(tmp_path: Path) -> None:
    for n, (perm, flips) in enumerate(ORIENTATIONS):
        arr, aff = file_grid(perm, flips)
        vol = read_nifti(write_nifti(tmp_path / f"o{n}.nii", arr, aff))
        label = f"perm={perm} flips={flips}"
        assert np.linalg.norm(_world(vol, 2000) - TRUE_BRIGHT) <= 0.5 * min(SPACING), label
        assert np.linalg.norm(_world(vol, 1500) - TRUE_DIM) <= 0.5 * min(SPACING), label
        assert np.array_equal(vol.data, CANON), label  # closest canonical of a permuted grid is exact
        assert np.allclose(vol.affine, CANON_AFFINE, atol=1e-5), label
        rec = vol.meta["reorientation"]
        assert rec["original_shape"] == list(arr.shape)
        assert np.array_equal(undo_reorientation(vol.data, rec), arr), label


def _sitk_image(arr: np.ndarray, affine_ras: np.ndarray) -> sitk.Image:
    """A SimpleITK image of the file-grid array ``(x, y, z)`` with the given RAS affine."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img = sitk.GetImageFromArray(arr.transpose(2, 1, 0))
    img.SetSpacing(spacing.tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    return img


def _oblique(deg: float) -> np.ndarray:
    t = np.radians(deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    a = CANON_AFFINE.copy()
    a[:3, :3] = rot @ a[:3, :3]
    return a


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_nibabel_and_simpleitk_paths_agree(tmp_path: Path, suffix: str) -> None:
    """Same grid written as NIfTI (nibabel) and as NRRD/MHA (SimpleITK), read by both code paths."""
    cases = [file_grid(p, f) for p, f in ORIENTATIONS[::5]] + [(CANON, _oblique(25.0))]
    for n, (arr, aff) in enumerate(cases):
        a = read_volume(write_nifti(tmp_path / f"c{n}.nii.gz", arr, aff))
        path = tmp_path / f"c{n}{suffix}"
        sitk.WriteImage(_sitk_image(arr, aff), str(path), useCompression=n % 2 == 0)
        b = read_volume(path)
        assert np.abs(a.affine - b.affine).max() <= 1e-4
        assert np.array_equal(a.data, b.data)


def test_nifti_affine_matches_independent_simpleitk_read(tmp_path: Path) -> None:
    """O2: nibabel's affine (our reader) equals SimpleITK's own reading of the same file (+LPS->RAS)."""
    for n, (perm, flips) in enumerate(ORIENTATIONS[::3]):
        arr, aff = file_grid(perm, flips)
        path = write_nifti(tmp_path / f"x{n}.nii", arr, aff)
        ours = read_nifti(path)
        img = sitk.ReadImage(str(path))  # trusted test-only path: a file we just wrote
        ref_aff = affine_from_itk(img.GetSpacing(), img.GetOrigin(), img.GetDirection())
        ref_data, ref_aff, _ = reorient_to_ras(sitk.GetArrayFromImage(img).transpose(2, 1, 0), ref_aff)
        assert np.abs(ours.affine - ref_aff).max() <= 1e-4
        assert np.array_equal(ours.data, ref_data.astype(np.float32))


def test_napari_affine_maps_voxel_to_lps_reversed(tmp_path: Path) -> None:
    vol = read_nifti(write_nifti(tmp_path / "o.nii", *file_grid((2, 0, 1), (True, False, True))))
    idx = np.argwhere(vol.data == 2000)[0]
    ras = (vol.affine @ np.r_[idx, 1.0])[:3]
    napari_world = (napari_affine(vol.affine) @ np.r_[idx[::-1], 1.0])[:3]  # layer data is (k, j, i)
    assert np.allclose(napari_world, [ras[2], -ras[1], -ras[0]])


def test_qform_only_and_missing_orientation(tmp_path: Path) -> None:
    arr, aff = file_grid((1, 0, 2), (True, False, False))
    img = nib.Nifti1Image(arr, None)
    img.set_qform(aff, code=1)
    img.set_sform(None, code=0)
    nib.save(img, tmp_path / "q.nii")
    vol = read_nifti(tmp_path / "q.nii")
    assert vol.meta["affine_from"] == "qform"
    assert np.allclose(vol.affine, CANON_AFFINE, atol=1e-4)
