"""The npe2 manifest: valid, importable, shipped inside the package (editable installs and wheels)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_entry_point_points_at_the_packaged_manifest() -> None:
    (ep,) = [e for e in entry_points(group="napari.manifest") if e.name == "napari-mome"]
    assert ep.value == "napari_mome:napari.yaml"
    import napari_mome

    shipped = Path(napari_mome.__file__).with_name("napari.yaml")
    assert shipped.read_text() == (REPO / "napari.yaml").read_text()


def test_manifest_validates_and_imports() -> None:
    npe2 = pytest.importorskip("npe2", reason="npe2 is in the test extras")
    pm = npe2.PluginManifest.from_file(REPO / "napari.yaml")
    assert pm.name == "napari-mome"
    for cmd in pm.contributions.commands or []:
        assert cmd.id.startswith("napari-mome."), cmd.id
        module, _, attr = cmd.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), cmd.python_name
    ids = {c.id for c in pm.contributions.commands or []}
    for reader in pm.contributions.readers or []:
        assert reader.command in ids


def test_wheel_contains_manifest_and_both_packages(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("napari_mome-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_mome/napari.yaml" in names
    assert "model_core/network/mome.py" in names and "model_core/__init__.py" in names
    text = zipfile.ZipFile(wheel).read("napari_mome/napari.yaml").decode()
    assert text == (REPO / "napari.yaml").read_text()
    eps = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "napari-mome = napari_mome:napari.yaml" in eps and "mome = model_core.cli.main:main" in eps
