"""DICOM series: sorting, gaps, geometry, vendor b-values and role classification (generated folders)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from model_core.errors import GeometryError, StudyReadError
from model_core.studies import read_study, read_volume
from tests.model_core.studies.builders import canonical_phantom, uid, write_series

BASE = canonical_phantom((8, 8, 5))


def _roles(study) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in study.decisions:
        out.setdefault(d.role, []).append(d.source)
    return out


def _multiphase_dce(folder: Path, n_phases: int = 6, series_number: int = 5) -> None:
    for p in range(n_phases):
        write_series(
            folder,
            BASE + 100 * p,
            description="Ax VIBRANT MPH",
            series_number=series_number,
            series_uid=uid("dce-multi"),
            name=f"x{p}_{{idx:03d}}.dcm",
            extra={"TemporalPositionIdentifier": p + 1, "AcquisitionTime": f"1200{p:02d}.00"},
        )


def _dwi_t2_t1(folder: Path) -> None:
    for b in (0, 800):
        write_series(
            folder,
            BASE + b,
            description="ep2d_diff",
            series_number=7,
            series_uid=uid("dwi"),
            spacing=(2.0, 2.0, 3.0),
            private=[(0x0018, 0x9087, "FD", float(b))],
            name=f"d{b}_{{idx:03d}}.dcm",
        )
    write_series(folder, BASE, description="Ax T2 FSE", series_number=3, extra={"EchoTime": "90"})
    write_series(folder, BASE, description="Ax T1 non fat sat", series_number=2)
    write_series(folder, BASE[:, :, :1], description="3-plane loc", series_number=1)


def test_multiphase_dce_dwi_t2_t1_classified(tmp_path: Path) -> None:
    _multiphase_dce(tmp_path)
    _dwi_t2_t1(tmp_path)
    study = read_study(tmp_path)
    assert study.modalities == ("dce", "dwi", "t2")
    assert len(study.dce) == 6 and not study.dce_is_subtraction
    # phases in temporal order: phase p holds BASE + 100 p
    means = [float(v.data.mean()) for v in study.dce]
    assert np.allclose(np.diff(means), 100.0)
    assert sorted(study.dwi) == [0.0, 800.0]
    assert float(study.dwi[800.0].data.mean() - study.dwi[0.0].data.mean()) == pytest.approx(800.0)
    assert study.t2 is not None and study.t1 is not None
    roles = _roles(study)
    assert any("VIBRANT" in s for s in roles["dce"]) and any("T2" in s for s in roles["t2"])
    assert any("loc" in s for s in roles["ignored"])
    dce_reason = next(d.reason for d in study.decisions if d.role == "dce")
    assert "temporal_position" in dce_reason and "pre-contrast" in dce_reason


def test_separate_series_dce_ordered_by_time_and_b_from_description(tmp_path: Path) -> None:
    # pre at 12:00, posts at 12:01..12:05, written with series numbers that do not follow time
    numbers = [20, 14, 12, 18, 11, 16]
    for p in range(6):
        extra = {"AcquisitionTime": f"120{p}00.000"}
        if p:
            extra["ContrastBolusAgent"] = "Gadobutrol"
        desc = "T1 dyn pre" if p == 0 else f"T1 dyn post {p}"
        write_series(tmp_path, BASE + 100 * p, description=desc, series_number=numbers[p], extra=extra)
    write_series(tmp_path, BASE + 50, description="DWI b50", series_number=30, spacing=(2.0, 2.0, 3.0))
    write_series(tmp_path, BASE + 1000, description="DWI b1000", series_number=31, spacing=(2.0, 2.0, 3.0))
    write_series(tmp_path, BASE, description="STIR", series_number=40)
    study = read_study(tmp_path)
    assert len(study.dce) == 6
    assert np.allclose(np.diff([float(v.data.mean()) for v in study.dce]), 100.0)
    assert study.dce[0].meta["series_description"] == "T1 dyn pre"
    assert sorted(study.dwi) == [50.0, 1000.0]
    assert study.t2 is not None and study.t2.meta["series_description"] == "STIR"
    assert sum(d.role == "dce" for d in study.decisions) == 6


def test_shuffled_file_names_sort_by_position(tmp_path: Path) -> None:
    ordered, shuffled = tmp_path / "a", tmp_path / "b"
    ordered.mkdir()
    shuffled.mkdir()
    write_series(ordered, BASE, description="T2", series_number=1)
    names = [f"IMG{n:04d}" for n in random.Random(3).sample(range(1000), BASE.shape[2])]
    for k, name in enumerate(names):  # file names (and InstanceNumbers) unrelated to position
        write_series(
            shuffled,
            BASE[:, :, k : k + 1],
            description="T2",
            series_number=1,
            series_uid=uid("t2s"),
            origin=(10.0, -20.0, 5.0 + 3.0 * k),
            name=name,
            first_index=999 - k,
        )
    a, b = read_volume(ordered), read_volume(shuffled)
    assert np.array_equal(a.data, b.data)
    assert np.allclose(a.affine, b.affine)


def test_gap_in_slices_refused(tmp_path: Path) -> None:
    write_series(tmp_path, BASE, description="Ax T2", series_number=1, skip=[2])
    with pytest.raises(StudyReadError, match="inconsistent slice spacing.*missing"):
        read_volume(tmp_path)
    with pytest.raises(StudyReadError, match="missing"):
        read_study(tmp_path)


def test_uneven_images_per_location_refused(tmp_path: Path) -> None:
    _multiphase_dce(tmp_path, n_phases=3)
    next(tmp_path.glob("x1_002.dcm")).unlink()
    with pytest.raises(StudyReadError, match="unequal number of images"):
        read_study(tmp_path)


def test_single_slice_is_not_a_study(tmp_path: Path) -> None:
    (f,) = write_series(tmp_path, BASE[:, :, :1], description="post", series_number=1)
    with pytest.raises(StudyReadError, match="single 2-D slice"):
        read_study(tmp_path)
    with pytest.raises(StudyReadError, match="single 2-D slice"):
        read_study(f)
    with pytest.raises(StudyReadError, match="single 2-D slice"):
        read_volume(f)


def test_affine_and_lps_to_ras(tmp_path: Path) -> None:
    """The bright voxel lands at its LPS position with x, y negated; an oblique series keeps its rotation."""
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    iop = (c, s, 0.0, -s, c, 0.0)
    write_series(tmp_path, BASE, description="T2", series_number=1, iop=iop, spacing=(0.8, 0.9, 2.5))
    vol = read_volume(tmp_path)
    idx = np.unravel_index(int(np.argmax(vol.data)), vol.data.shape)
    world = (vol.affine @ np.r_[idx, 1.0])[:3]
    row, col = np.array(iop[:3]), np.array(iop[3:])
    lps = np.array([10.0, -20.0, 5.0]) + 4 * 0.8 * row + 5 * 0.9 * col + 3 * 2.5 * np.cross(row, col)
    assert np.allclose(world, lps * [-1, -1, 1], atol=1e-4)
    assert vol.spacing == pytest.approx((0.8, 0.9, 2.5), abs=1e-5)


def test_vendor_b_value_and_rescale(tmp_path: Path) -> None:
    for b in (0, 800):  # GE: b + 1e9 in (0043,1039)
        write_series(
            tmp_path,
            BASE,
            description="DIFF",
            series_number=4,
            series_uid=uid("ge"),
            private=[(0x0043, 0x1039, "IS", [str(1000000000 + b), "8", "0", "0"])],
            extra={"RescaleSlope": "2", "RescaleIntercept": "-5"},
            name=f"g{b}_{{idx}}.dcm",
        )
    study = read_study(tmp_path)
    assert sorted(study.dwi) == [0.0, 800.0]
    assert float(study.dwi[0.0].data.max()) == 2 * 2000 - 5


def test_dce_phases_on_different_grids_raise_geometry_error(tmp_path: Path) -> None:
    write_series(
        tmp_path, BASE, description="DCE pre", series_number=1, extra={"AcquisitionTime": "120000"}
    )
    write_series(
        tmp_path,
        BASE,
        description="DCE post 1",
        series_number=2,
        spacing=(1.5, 1.5, 3.0),
        extra={"AcquisitionTime": "120100", "ContrastBolusAgent": "Gd"},
    )
    with pytest.raises(GeometryError, match="DCE phases must share one grid") as err:
        read_study(tmp_path)
    assert "DCE pre" in str(err.value) and "DCE post 1" in str(err.value)


def test_dicomdir_and_outside_links_ignored(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_series(outside, BASE, description="T2 other", series_number=9)
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    write_series(study_dir, BASE, description="Ax T2", series_number=1)
    (study_dir / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    (study_dir / "link.dcm").symlink_to(next(outside.iterdir()))
    study = read_study(study_dir)
    assert study.t2 is not None and study.t2.meta["series_description"] == "Ax T2"
    assert len(study.decisions) == 1


def test_identically_named_phase_series_ordered_by_time(tmp_path: Path) -> None:
    """Siemens-style: one series per phase, same description, contrast tag on every phase: earliest is pre."""
    for p in (3, 0, 5, 1, 4, 2):
        write_series(
            tmp_path,
            BASE + 100 * p,
            description="t1_fl3d_tra_dynaViews",
            series_number=10 + (p * 7) % 6,
            extra={"AcquisitionTime": f"12{p:02d}00", "ContrastBolusAgent": "Gd"},
        )
    study = read_study(tmp_path)
    assert len(study.dce) == 6
    assert np.allclose(np.diff([float(v.data.mean()) for v in study.dce]), 100.0)
    assert "earliest" in next(d.reason for d in study.decisions if d.detail.get("phase") == 0)
