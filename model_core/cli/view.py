"""``mome view [STUDY]``: open napari with a study (default: the synthetic sample study) and the MOME
dock widget. napari and Qt are imported here, inside the command, never by the rest of ``model_core``.

Example::

    mome view                     # File > Open Sample > MOME demo study, already opened
    mome view path/to/study       # a study folder, its study.json, or a single image file
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

log = logging.getLogger(__name__)

PLUGIN = "napari-mome"
SAMPLE_KEY = "mome_demo"
WIDGET = "MOME classifier"


def open_viewer(study: str | None = None, *, show: bool = True) -> tuple[Any, Any]:
    """A napari viewer with ``study`` (or the sample study) and the MOME widget docked; returns both."""
    try:
        import napari
    except ImportError as exc:
        from model_core.errors import ConfigError

        raise ConfigError("mome view needs napari and a Qt binding: pip install 'napari-mome[napari]'") from exc
    viewer = napari.Viewer(title="MOME breast MRI (research use only)", show=show)
    if study:
        viewer.open(study, plugin=PLUGIN)
    else:
        viewer.open_sample(PLUGIN, SAMPLE_KEY)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


def run(args: argparse.Namespace) -> int:
    import napari

    open_viewer(args.study)
    log.info("napari is open; close its window to quit")
    napari.run()
    return 0


def add_subparser(sub: Any) -> None:
    v = sub.add_parser("view", help="open napari with a study (default: the synthetic demo study) and the "
                       "MOME widget")
    v.add_argument("study", nargs="?", help="study folder, study.json or image file (default: the sample study)")
    v.set_defaults(func=run)
