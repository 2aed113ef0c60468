"""npe2 sample data: "MOME demo study", a synthetic phantom study made on the fly (no files, no download).

The study is the one ``mome demo`` analyses (:data:`model_core.engine.demo.DEMO_SEED`): DCE phases, DWI,
T2 and T1 layers plus the phantom's lesion mask as a labels layer, laid out exactly as the reader lays out
a study folder (:func:`napari_mome._reader.study_layers`). Every layer is named and tagged as synthetic.
This module imports neither napari nor Qt.
"""

from __future__ import annotations

import logging

from napari_mome._reader import LayerData, study_layers

log = logging.getLogger(__name__)

SYNTHETIC = "SYNTHETIC phantom study (not patient data)"


def make_sample() -> list[LayerData]:
    """Layer tuples of the demo phantom study and its lesion mask."""
    from model_core.engine.demo import DEMO_SEED, DEMO_WEIGHTS
    from model_core.errors import MomeError
    from model_core.phantom import generate_study
    from model_core.phantom.params import get_world
    from model_core.weights.native import read_card

    try:  # the study of the world the shipped model was trained on
        world = read_card(DEMO_WEIGHTS).phantom_world
    except (MomeError, OSError):
        world = "v1"
    case = generate_study(DEMO_SEED, params=get_world(world))
    log.info("sample: %s, %s", case.study.study_id, SYNTHETIC)
    layers = study_layers(case.study, mask=case.mask)
    for _, kwargs, _ in layers:
        kwargs["metadata"]["synthetic"] = SYNTHETIC
    return layers
