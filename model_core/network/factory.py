"""Model factories: an untrained, seeded network of a preset.

The untrained network is the authors' initialisation plus a seeded perturbation of the parts that
initialise to zero (adapter outputs, the head), so that every output (subsets, Shapley, saliency) shows
structure instead of exact zeros; it is still an untrained network and its numbers mean nothing.
"""

from __future__ import annotations

import torch

from model_core.network.config import MomeConfig
from model_core.network.mome import Mome


def untrained_model(cfg: MomeConfig | None = None, seed: int = 0) -> Mome:
    """A seeded, untrained network (see the module docstring) in eval mode; ``cfg`` defaults to the demo
    preset."""
    cfg = cfg or MomeConfig.preset("demo")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Mome(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and float(p.abs().max()) == 0.0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.5)
    return model.eval()
