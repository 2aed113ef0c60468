"""``from model_core import ...``: the public names, and that importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys


def test_public_names_are_the_package_objects() -> None:
    from model_core import (
        Mome,
        MomeConfig,
        Predictor,
        Result,
        RunOptions,
        Runtime,
        Study,
        load_official_state_dict,
        read_study,
    )
    from model_core.engine.options import RunOptions as RunOptions2
    from model_core.engine.predictor import Predictor as Predictor2
    from model_core.network.mome import Mome as Mome2
    from model_core.studies import read_study as read_study2
    from model_core.studies.study import Study as Study2
    from model_core.weights.official import load_official_state_dict as load2

    assert (Mome, Predictor, RunOptions, Study, read_study, load_official_state_dict) == (
        Mome2, Predictor2, RunOptions2, Study2, read_study2, load2)
    assert MomeConfig().embed_dim == 768 and Result.__name__ == "Result" and Runtime().device == "auto"


def test_importing_the_package_loads_neither_torch_nor_qt() -> None:
    code = "import sys, model_core; print(sorted(m for m in ('torch', 'qtpy', 'napari') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
