"""Written NIfTI and DICOM: the lesion mask overlays the lesion in every sequence, in world space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy.ndimage import label

from model_core.phantom import PhantomCase, generate_study, write_case
from model_core.phantom.dicom import _uid
from model_core.phantom.generate import case_streams
from model_core.phantom.params import PARAMS
from model_core.phantom.sequences import curve
from model_core.phantom.sites import SITES
from model_core.phantom.truth import sample_truth

SCALE = 0.8
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _clear_case_seed(site: str) -> int:
    """First seed whose lesion is large, compact, homogeneous and strongly enhancing, with low BPE."""
    prof = SITES[site]
    for seed in range(2000):
        t = sample_truth(np.random.default_rng(case_streams(seed, prof)[0]), prof, PARAMS)
        les = t.lesion
        if (les.diameter_mm >= 16 and les.shape in ("round", "oval") and les.pattern == "homogeneous"
                and les.peak_enhancement >= 0.9 and t.bpe in ("minimal", "mild")):  # fmt: skip
            return seed
    raise AssertionError("no clear case found")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[PhantomCase, Path]:
    case = generate_study(_clear_case_seed("ds2"), "ds2", scale=SCALE)
    root = tmp_path_factory.mktemp("phantom_case")
    write_case(case, root, formats=("nifti", "dicom"))
    return case, root


def _nifti(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(folder / name))
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def _at(data: np.ndarray, affine: np.ndarray, world: np.ndarray, r: int = 0) -> float:
    """Mean of the (2r+1)^3 voxels around the voxel nearest to ``world`` (RAS mm)."""
    ijk = np.round(np.linalg.inv(affine) @ np.r_[world, 1.0])[:3].astype(int)
    assert np.all(ijk >= 0) and np.all(ijk < data.shape), f"{world} maps outside the grid: {ijk}"
    sl = tuple(slice(max(0, c - r), c + r + 1) for c in ijk)
    return float(data[sl].mean())


def _read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Pixel data ``(cols, rows, slices)`` in stored order and its voxel -> RAS affine, from tags only."""
    dss = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=np.float64)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    dss.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, dtype=np.float64), normal)))
    pos = np.array([np.array(d.ImagePositionPatient, dtype=np.float64) for d in dss])
    dr, dc = (float(v) for v in dss[0].PixelSpacing)  # row spacing, column spacing
    step = (pos[-1] - pos[0]) / max(len(dss) - 1, 1)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row * dc, col * dr, step, pos[0]
    vol = np.stack([d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                    for d in dss], axis=-1)  # fmt: skip
    return vol.transpose(1, 0, 2), LPS @ lps, dss  # (c, r, k) indexing matches the affine's columns


def _expected(case: PhantomCase) -> dict[str, float]:
    les, site, tis = case.truth.lesion, case.site, PARAMS.tissues
    dce = tis.table("dce_fs" if site.dce_fat_sat else "dce")
    t2 = tis.table("t2_fs" if site.t2_fat_sat else "t2")
    e_last = curve(
        site.post_times_s[-1], les.peak_enhancement, les.uptake_tau_s, les.late_slope, PARAMS.kinetics
    )
    return {
        "rel_enh": tis.enhancement_ref * e_last / dce["lesion"],
        "t2_over_pre": les.t2_ratio * t2["fgt"] / dce["lesion"],
        "adc": les.adc,
    }


def test_nifti_files_and_manifest(written: tuple[PhantomCase, Path]) -> None:
    case, root = written
    doc = json.loads((root / "nifti" / "study.json").read_text())
    assert doc["dce"]["pre"] == doc["dce"]["phases"][0] and doc["dce"]["post"] == doc["dce"]["phases"][1:]
    assert len(doc["dce"]["post"]) == case.site.n_post
    assert set(doc["dwi"]) == {f"{b:g}" for b in case.site.b_values}
    assert doc["birads"] == case.truth.birads and doc["age"] == case.truth.age
    assert doc["extra"]["mask"] == "lesion_mask.nii.gz"
    for rel in [*doc["dce"]["phases"], *doc["dwi"].values(), doc["t2"], doc["extra"]["mask"]]:
        assert (root / "nifti" / rel).is_file()
    truth = json.loads((root / "truth.json").read_text())
    assert truth["labels"]["malignant"] == int(case.truth.malignant) and truth["synthetic"] is True
    data, aff = _nifti(root / "nifti", "dce_post1.nii.gz")
    assert case.study.dce is not None
    np.testing.assert_array_equal(data, case.study.dce[1].data)
    np.testing.assert_allclose(aff, case.study.dce[1].affine, atol=1e-5)


def test_uncompressed_nifti_reads_back_the_same_study(written: tuple[PhantomCase, Path], tmp_path: Path) -> None:
    from model_core.studies import read_study

    case, root = written
    write_case(case, tmp_path, formats=("nifti",), compress=False)
    doc = json.loads((tmp_path / "nifti" / "study.json").read_text())
    names = [*doc["dce"]["phases"], *doc["dwi"].values(), doc["t2"], doc["extra"]["mask"]]
    assert all(n.endswith(".nii") and (tmp_path / "nifti" / n).is_file() for n in names)
    plain, packed = read_study(tmp_path / "nifti"), read_study(root / "nifti")
    assert plain.dce is not None and packed.dce is not None and len(plain.dce) == len(packed.dce)
    for u, v in zip([*plain.dce, plain.t2], [*packed.dce, packed.t2], strict=True):
        assert u is not None and v is not None
        np.testing.assert_array_equal(u.data, v.data)
        np.testing.assert_array_equal(u.affine, v.affine)
    np.testing.assert_array_equal(_nifti(tmp_path / "nifti", "lesion_mask.nii")[0],
                                  _nifti(root / "nifti", "lesion_mask.nii.gz")[0])


def test_nifti_mask_overlays_lesion_in_every_sequence(written: tuple[PhantomCase, Path]) -> None:
    case, root = written
    nd = root / "nifti"
    exp = _expected(case)
    mask, maff = _nifti(nd, "lesion_mask.nii.gz")
    centre = maff[:3, :3] @ np.argwhere(mask > 0).mean(0) + maff[:3, 3]  # world RAS mm
    doc = json.loads((nd / "study.json").read_text())
    pre, paff = _nifti(nd, doc["dce"]["pre"])
    last, laff = _nifti(nd, doc["dce"]["post"][-1])
    rel = (_at(last, laff, centre, 1) - _at(pre, paff, centre, 1)) / _at(pre, paff, centre, 1)
    assert rel == pytest.approx(exp["rel_enh"], rel=0.3)
    # control: a point two diameters away does not enhance like the lesion
    away = centre + np.array([0.0, 0.0, 2.0 * case.truth.lesion.diameter_mm])
    rel_away = (_at(last, laff, away, 1) - _at(pre, paff, away, 1)) / max(_at(pre, paff, away, 1), 1e-3)
    assert rel_away < 0.5 * rel
    b_lo, b_hi = sorted(doc["dwi"], key=float)
    s0, s0_aff = _nifti(nd, doc["dwi"][b_lo])
    sb, sb_aff = _nifti(nd, doc["dwi"][b_hi])
    adc = np.log(_at(s0, s0_aff, centre) / _at(sb, sb_aff, centre)) / ((float(b_hi) - float(b_lo)) * 1e-3)
    assert adc == pytest.approx(exp["adc"], abs=0.35)
    t2, t2aff = _nifti(nd, doc["t2"])
    assert _at(t2, t2aff, centre) / _at(pre, paff, centre) == pytest.approx(exp["t2_over_pre"], rel=0.25)


def test_dicom_geometry_and_lesion_centroid(written: tuple[PhantomCase, Path]) -> None:
    case, root = written
    nd, dd = root / "nifti", root / "dicom"
    mask, maff = _nifti(nd, "lesion_mask.nii.gz")
    centre = maff[:3, :3] @ np.argwhere(mask > 0).mean(0) + maff[:3, 3]
    folders = {p.name.split("_", 1)[1]: p for p in sorted(dd.iterdir()) if p.is_dir()}
    pre, aff, _ = _read_dicom_series(folders["dce_pre"])
    last, aff_last, _ = _read_dicom_series(folders[f"dce_post{case.site.n_post}"])
    np.testing.assert_allclose(aff, aff_last)
    # the same voxels as the NIfTI file, found through world coordinates only
    nii_pre, nii_aff = _nifti(nd, "dce_pre.nii.gz")
    perm = np.linalg.inv(nii_aff) @ aff
    assert np.allclose(perm, np.round(perm), atol=1e-3)
    idx = np.round(perm @ np.r_[10.0, 20.0, 5.0, 1.0])[:3].astype(int)
    assert pre[10, 20, 5] == pytest.approx(nii_pre[tuple(idx)], abs=1e-3)
    # lesion centroid from the DICOM pixels: the enhancing component at the NIfTI mask centre
    rel = (last - pre) / np.maximum(pre, 0.05)
    seed = tuple(np.round(np.linalg.inv(aff) @ np.r_[centre, 1.0])[:3].astype(int))
    comp, _ = label(rel > 0.5 * rel[seed])
    assert comp[seed] > 0
    ijk = np.argwhere(comp == comp[seed]).mean(0)
    dicom_centre = aff[:3, :3] @ ijk + aff[:3, 3]
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    assert np.all(np.abs(dicom_centre - centre) <= spacing), (dicom_centre, centre, spacing)
    # DWI and T2 series: world position -> DICOM voxel carries the lesion's signature
    b_lo, b_hi = min(case.site.b_values), max(case.site.b_values)
    s0, s0_aff, _ = _read_dicom_series(folders[f"dwi_b{b_lo:g}"])
    sb, sb_aff, _ = _read_dicom_series(folders[f"dwi_b{b_hi:g}"])
    adc = np.log(_at(s0, s0_aff, centre) / _at(sb, sb_aff, centre)) / ((b_hi - b_lo) * 1e-3)
    assert adc == pytest.approx(case.truth.lesion.adc, abs=0.35)
    t2, t2_aff, _ = _read_dicom_series(folders["t2"])
    nii_t2, nii_t2_aff = _nifti(nd, "t2.nii.gz")
    assert _at(t2, t2_aff, centre) == pytest.approx(_at(nii_t2, nii_t2_aff, centre), rel=1e-3, abs=1e-3)
    # SimpleITK agrees on the geometry (origin/direction are LPS)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folders["t2"])))
    img = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    np.testing.assert_allclose(LPS @ lps, t2_aff, atol=1e-3)


def test_dicom_tags(written: tuple[PhantomCase, Path]) -> None:
    case, root = written
    folders = sorted(p for p in (root / "dicom").iterdir() if p.is_dir())
    first = {p.name.split("_", 1)[1]: pydicom.dcmread(next(iter(sorted(p.glob("*.dcm"))))) for p in folders}
    for b in case.site.b_values:
        ds = first[f"dwi_b{b:g}"]
        assert float(ds.DiffusionBValue) == b and f"b{b:g}" in ds.SeriesDescription
        assert ds[0x0018, 0x9087].VR == "FD"
    dce = [first["dce_pre"], *[first[f"dce_post{p}"] for p in range(1, case.site.n_post + 1)]]
    assert [int(d.TemporalPositionIdentifier) for d in dce] == list(range(1, case.site.n_post + 2))
    times = [float(d.AcquisitionTime) for d in dce]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert "T2" in first["t2"].SeriesDescription
    uids = {d.SeriesInstanceUID for d in first.values()}
    assert len(uids) == len(first) and len({d.StudyInstanceUID for d in first.values()}) == 1
    for ds in first.values():
        assert ds.Modality == "MR" and ds.PatientID == case.patient_id and ds.PatientID.startswith("PHANTOM-")
        assert str(ds.PatientName) == case.patient_id
        assert "PatientBirthDate" not in ds and "PatientAddress" not in ds and "OtherPatientIDs" not in ds
        assert float(ds.RescaleSlope) > 0 and ds.PixelRepresentation == 1 and ds.BitsAllocated == 16
        assert float(ds.MagneticFieldStrength) == case.truth.field_strength
    assert _uid(case, "series", "t2") == first["t2"].SeriesInstanceUID  # deterministic UIDs
