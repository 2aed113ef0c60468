"""``mome view [STUDY]``: open napari with a study (default: the synthetic sample study) and the MOME
dock widget. The viewer lives in the plugin (:mod:`napari_mome._view`); it is imported inside the command
only, so the rest of the command line never loads napari or Qt.

Example::

    mome view                     # File > Open Sample > MOME demo study, already opened
    mome view path/to/study       # a study folder, its study.json, or a single image file
"""

from __future__ import annotations

import argparse
from typing import Any

from model_core.errors import ConfigError


def run(args: argparse.Namespace) -> int:
    try:
        from napari_mome._view import view
    except ImportError as exc:
        raise ConfigError("mome view needs napari and a Qt binding: pip install 'napari-mome[napari]'") from exc
    view(args.study)
    return 0


def add_subparser(sub: Any) -> None:
    v = sub.add_parser("view", help="open napari with a study (default: the synthetic demo study) and the "
                       "MOME widget")
    v.add_argument("study", nargs="?", help="study folder, study.json or image file (default: the sample study)")
    v.set_defaults(func=run)
