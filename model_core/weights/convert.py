"""``mome convert``: the authors' ``.pth`` -> our native safetensors + model card."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_core.network.config import MomeConfig
from model_core.network.mome import Mome
from model_core.weights.native import ModelCard, save_native, sha256_file
from model_core.weights.official import (
    LoadReport,
    infer_config,
    load_official_state_dict,
    safe_torch_load,
    unwrap_state_dict,
)


def convert_official(src: str | os.PathLike[str], dst: str | os.PathLike[str], base: MomeConfig | None = None,
                     num_heads: int | None = None, card_extra: Mapping[str, Any] | None = None) -> LoadReport:
    """``mome convert``: the authors' ``.pth`` -> native safetensors + model card (strict, verified)."""
    sd = unwrap_state_dict(safe_torch_load(src), str(src))
    cfg = infer_config(sd, base, num_heads)
    model = Mome(cfg, init=False)
    report = load_official_state_dict(model, sd)
    card = ModelCard(config=cfg.to_dict(), name=Path(dst).stem,
                     provenance={"converted_from": Path(src).name, "source_sha256": sha256_file(src),
                                 "tied": len(report.tied), "untied": len(report.untied)})
    for k, v in (card_extra or {}).items():
        setattr(card, k, v)
    save_native(model, dst, card)
    return report
