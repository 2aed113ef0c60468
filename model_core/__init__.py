"""model_core: the Qt-free MOME package (network, weights, studies, preprocessing, inference engine).

Public API::

    from model_core import MomeConfig, Mome, load_official_state_dict, Predictor, RunOptions, Result
    from model_core import read_study, Study, Runtime

Heavy submodules are imported lazily so that ``import model_core`` stays cheap and never touches Qt.
"""

from __future__ import annotations

import importlib
from typing import Any

from model_core.network.config import MomeConfig

__version__ = "0.1.0"

_LAZY = {
    "Mome": "model_core.network.mome",
    "load_official_state_dict": "model_core.weights.official",
    "load_beit3_pretrained": "model_core.weights.beit3",
    "save_native": "model_core.weights.native",
    "load_native": "model_core.weights.native",
    "Study": "model_core.studies.study",
    "Volume": "model_core.studies.study",
    "read_study": "model_core.studies",
    "read_volume": "model_core.studies",
    "Predictor": "model_core.engine.predictor",
    "RunOptions": "model_core.engine.options",
    "Result": "model_core.engine.result",
    "Runtime": "model_core.runtime",
}

__all__ = ["MomeConfig", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'model_core' has no attribute {name!r}")
