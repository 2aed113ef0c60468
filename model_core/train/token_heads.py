"""Training-only token heads: a class read from each sequence's own tokens (``mome train --token-head``).

A head sits outside the MOME network. It takes one sequence's segment after the per-modality layers
(:meth:`Mome.encode`, the DCE segment without its CLS token), keeps the per-feature maximum over its
tokens, and maps it through a layer norm and a linear layer to class logits. Its cross-entropy tells that
sequence's branch that one place in the image can decide the class, a signal that reaches the tokens
directly instead of only through the CLS token's attention in the fusion layers. The heads are never
exported: the shipped network and its forward computation are MOME's alone. Not in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model_core.network.mome import Segments
from model_core.train.options import TrainError

MODALITY_INDEX = {"dce": 0, "dwi": 1, "t2": 2}
HEADS_PREFIX = "token_heads."
"""Prefix of the heads' parameter names among the gradients a training state carries."""


class TokenHeads(nn.Module):
    """One head per named sequence.

    Args:
        modalities: the sequences that get a head (names of :data:`MODALITY_INDEX`).
        dim: token width D.
        num_classes: class count.
    """

    def __init__(self, modalities: Sequence[str], dim: int, num_classes: int = 2) -> None:
        super().__init__()
        unknown = [m for m in modalities if m not in MODALITY_INDEX]
        if unknown or not modalities:
            raise TrainError(f"token heads need sequences among {sorted(MODALITY_INDEX)}, got {list(modalities)}")
        self.modalities = tuple(modalities)
        self.heads = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))
                                    for m in self.modalities})

    def logits(self, name: str, segments: Segments) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` of sequence ``name`` from its segment ``(B, N, D)``."""
        seg = segments[MODALITY_INDEX[name]]
        if seg is None:
            raise TrainError(f"no {name} segment to read")
        tokens = seg[:, 1:] if name == "dce" else seg  # the DCE segment starts with the CLS token
        return self.heads[name](tokens.amax(dim=1))

    def loss(self, segments: Segments, inputs: Mapping[str, torch.Tensor | None], target: torch.Tensor,
             weight: torch.Tensor | None) -> torch.Tensor | None:
        """Mean cross-entropy of the heads of the present sequences; ``None`` when none is present.

        Args:
            segments: :meth:`Mome.encode` of ``inputs``; target ``(B,)``; weight: class weights or ``None``.
        """
        losses = [F.cross_entropy(self.logits(m, segments), target, weight=weight)
                  for m in self.modalities if inputs.get(m) is not None]
        return torch.stack(losses).mean() if losses else None
