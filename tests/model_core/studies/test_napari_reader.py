"""The npe2 reader contract of napari_mome._reader (no napari import needed)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from model_core.errors import StudyReadError
from napari_mome._reader import napari_get_reader, volume_from_layer
from tests.model_core.studies.builders import canonical_phantom, uid, write_nifti, write_series

AFF = np.diag([0.8, 0.8, 2.0, 1.0])


def test_returns_none_fast_for_foreign_paths(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.dcm").write_bytes(b"not dicom")
    for path in (
        str(tmp_path / "notes.txt"),
        str(tmp_path / "missing.nii"),
        str(tmp_path / "empty"),
        str(tmp_path / "fake.dcm"),
        [str(tmp_path / "notes.txt")],
        [],
        42,
        None,
        "\0bad",
    ):
        t0 = time.perf_counter()
        assert napari_get_reader(path) is None, path
        assert time.perf_counter() - t0 < 0.01


def test_no_napari_or_qt_imported() -> None:
    code = (
        "import sys, napari_mome._reader as r; r.napari_get_reader('x.nii'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', "
        "'PySide6', 'vispy')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_nifti_file_layer(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "t2_axial.nii.gz", canonical_phantom(), AFF)
    reader = napari_get_reader(str(path))
    assert callable(reader)
    ((data, kwargs, kind),) = reader(str(path))
    assert kind == "image" and kwargs["name"] == "t2_axial" and data.shape == (5, 7, 6)
    assert kwargs["scale"] == pytest.approx((2.0, -0.8, -0.8))
    meta = kwargs["metadata"]
    assert meta["role"] is None and meta["source"] == str(path) and np.allclose(meta["affine"], AFF)
    vol = volume_from_layer(data, meta)
    assert np.array_equal(vol.data, canonical_phantom().astype(np.float32))


def test_dicom_study_folder_layers_overlay(tmp_path: Path) -> None:
    base = canonical_phantom((8, 8, 5))
    for p in range(3):
        write_series(
            tmp_path,
            base + 100 * p,
            description="DCE",
            series_number=5,
            series_uid=uid("d"),
            extra={"TemporalPositionIdentifier": p + 1},
            name=f"p{p}_{{idx}}.dcm",
        )
    write_series(tmp_path, base, description="DWI b800", series_number=7, spacing=(2.0, 2.0, 3.0))
    write_series(tmp_path, base, description="Ax T2", series_number=3)
    reader = napari_get_reader(str(tmp_path))
    layers = reader(str(tmp_path))
    names = [kw["name"] for _, kw, _ in layers]
    assert names == ["DCE_t0", "DCE_t1", "DCE_t2", "DWI_b800", "T2"]
    assert [kw["visible"] for _, kw, _ in layers] == [False, True, False, False, False]
    by = {kw["name"]: kw for _, kw, _ in layers}
    assert by["DWI_b800"]["metadata"]["b_value"] == 800.0 and by["DCE_t2"]["metadata"]["phase"] == 2
    assert by["T2"]["metadata"]["role"] == "t2" and by["DCE_t0"]["metadata"]["decisions"]
    # same world point for the same physical voxel corner in DCE and DWI layers: both origins match
    for kw in by.values():
        naff = kw["metadata"]["napari_affine"]
        assert np.allclose(np.diag(naff)[:3], kw["scale"]) and np.allclose(naff[:3, 3], kw["translate"])
    # list of paths and a single .dcm file (its series) also work
    one = next(tmp_path.glob("p0_*.dcm"))
    assert [kw["name"] for _, kw, _ in napari_get_reader([str(one)])([str(one)])] == [
        "DCE_0",
        "DCE_1",
        "DCE_2",
    ]


def test_oblique_volume_gets_full_affine(tmp_path: Path) -> None:
    t = np.radians(15)
    aff = AFF.copy()
    aff[:3, :3] = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]) @ AFF[:3, :3]
    path = write_nifti(tmp_path / "obl.nii", canonical_phantom(), aff)
    ((_, kwargs, _),) = napari_get_reader(str(path))(str(path))
    assert "affine" in kwargs and "scale" not in kwargs


def test_bad_file_raises_study_read_error_from_callable(tmp_path: Path) -> None:
    path = tmp_path / "broken.nii"
    path.write_bytes(b"\0" * 100)
    reader = napari_get_reader(str(path))
    assert reader is not None  # the hook only sniffs names; reading reports the problem
    with pytest.raises(StudyReadError, match="broken.nii"):
        reader(str(path))


def test_4d_file_is_one_4d_layer(tmp_path: Path) -> None:
    data = np.stack([canonical_phantom() + 10 * t for t in range(3)], axis=-1)
    path = write_nifti(tmp_path / "dce4d.nii.gz", data, AFF)
    ((arr, kwargs, _),) = napari_get_reader(str(path))(str(path))
    assert arr.shape == (3, 5, 7, 6) and len(kwargs["scale"]) == 4 and kwargs["scale"][0] == 1.0
    vol = volume_from_layer(arr, kwargs["metadata"])
    assert np.array_equal(vol.data[2], data[..., 2])
