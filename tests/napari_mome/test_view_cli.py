"""``mome view``: napari opens with the study (default: the sample) and the widget; napari lists the
plugin's reader, sample and widget; model_core imports napari only inside the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_core.phantom import generate_study
from model_core.phantom.writers import write_nifti_study


def test_napari_lists_reader_sample_and_widget() -> None:
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("napari-mome")
    ids = {c.id for c in mf.contributions.commands or []}
    assert [r.command for r in mf.contributions.readers or []] == ["napari-mome.get_reader"]
    assert [(s.key, s.display_name) for s in mf.contributions.sample_data or []] == \
        [("mome_demo", "MOME demo study (synthetic)")]
    assert [w.display_name for w in mf.contributions.widgets or []] == ["MOME classifier"]
    for contrib in [*(mf.contributions.readers or []), *(mf.contributions.sample_data or []),
                    *(mf.contributions.widgets or [])]:
        assert contrib.command in ids


def test_cli_does_not_import_napari_until_view_runs() -> None:
    code = ("import sys; from model_core.cli.main import build_parser; build_parser(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'vispy')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("with_study", [False, True])
def test_view_opens_study_and_widget(make_napari_viewer: Any, monkeypatch: Any, tmp_path: Path,
                                     with_study: bool) -> None:
    import napari

    from napari_mome import _view as view

    monkeypatch.setattr(napari, "Viewer", lambda **kw: make_napari_viewer(**kw))
    study = None
    if with_study:
        study = str(write_nifti_study(generate_study(3, scale=0.5), tmp_path / "study").parent)
    viewer, widget = view.open_viewer(study, show=False)
    names = [lay.name for lay in viewer.layers]
    assert names[0] == "DCE_t0" and names[-1] == "lesion_mask" and "T2" in names
    assert type(widget).__name__ == "MomeWidget" and widget.input_choice().t2 == "T2"
    assert viewer.layers[0].metadata["study_id"] == ("ds1-0000000003" if with_study else "ds1-0000000001")
