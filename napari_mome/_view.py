"""What ``mome view [STUDY]`` runs: a napari viewer with a study (default: the synthetic sample study) and
the MOME dock widget. The command line reaches this module only inside that command, so building the CLI
never imports napari or Qt."""

from __future__ import annotations

import logging
from typing import Any

import napari

log = logging.getLogger(__name__)

PLUGIN = "napari-mome"
SAMPLE_KEY = "mome_demo"
WIDGET = "MOME classifier"


def open_viewer(study: str | None = None, *, show: bool = True) -> tuple[Any, Any]:
    """A napari viewer with ``study`` (or the sample study) and the MOME widget docked; returns both."""
    viewer = napari.Viewer(title="MOME breast MRI (research use only)", show=show)
    if study:
        viewer.open(study, plugin=PLUGIN)
    else:
        viewer.open_sample(PLUGIN, SAMPLE_KEY)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


def view(study: str | None = None) -> None:
    """Open the viewer and run napari's event loop until its window is closed."""
    open_viewer(study)
    log.info("napari is open; close its window to quit")
    napari.run()
