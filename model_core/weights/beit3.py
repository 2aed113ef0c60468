"""BEiT-3 pretrained weights into MOME's frozen backbone (the training initialisation)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

import torch

from model_core.errors import CheckpointError
from model_core.network.mome import Mome, is_trainable_key
from model_core.weights.official import LoadReport, format_problems, load_any

log = logging.getLogger(__name__)

_BEIT3_LAYER = re.compile(
    r"^(?:beit3\.)?encoder\.layers\.(\d+)\.(self_attn\.(?:q_proj|k_proj|v_proj|out_proj|inner_attn_ln)"
    r"|self_attn_layer_norm|ffn|final_layer_norm)\.A\.(.+)$"
)


def load_beit3_pretrained(model: Mome, sd_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str]) -> LoadReport:
    """Initialise the frozen backbone from a BEiT-3 checkpoint (vision expert ``.A.`` into every branch).

    Everything MOME-specific (tokenizers, CLS, position tables, adapters, ``fc_norm``, head) keeps its
    fresh initialisation. The frozen multiway modules end up tied (A = B = C). A checkpoint whose widths
    or depth do not match the model is refused before anything is copied.

    Returns:
        a :class:`LoadReport` naming what was loaded, what starts fresh and what was discarded.
    """
    sd, source = load_any(sd_or_path)
    target = model.state_dict(keep_vars=True)
    mapping: dict[str, str] = {}
    discarded: list[str] = []
    for k in sd:
        m = _BEIT3_LAYER.match(k)
        if m is None:
            discarded.append(k)
            continue
        mapping[f"beit3.encoder.layers.{m.group(1)}.{m.group(2)}.A.{m.group(3)}"] = k
    frozen_a = [k for k in target if not is_trainable_key(k) and ".A." in k]
    missing = [k for k in frozen_a if k not in mapping]
    unexpected = [mapping[k] for k in mapping if k not in target]
    shapes = [f"{mapping[k]}: checkpoint {tuple(sd[mapping[k]].shape)} vs model {tuple(target[k].shape)}"
              for k in mapping if k in target and sd[mapping[k]].shape != target[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(format_problems(f"{source} (BEiT-3 import)", missing, unexpected, shapes))
    model.tie_frozen()
    target = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for k in frozen_a:
            target[k].copy_(sd[mapping[k]].to(target[k].dtype))
    report = LoadReport(source, loaded=frozen_a, discarded=sorted(discarded),
                        fresh=[k for k in target if is_trainable_key(k)],
                        tied=[n for n, _ in model.frozen_multiways()])
    log.info(report.summary())
    return report
