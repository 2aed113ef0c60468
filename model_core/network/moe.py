"""Adapters: the per-modality bottleneck adapter and the soft-MoE adapter (docs/model.md, *Network*)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Adapter(nn.Module):
    """``LN(D_fc2(GELU(D_fc1(h))))``: D -> hidden -> D, no internal skip (layers 0..split-1)."""

    def __init__(self, dim: int, hidden: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.D_fc1 = nn.Linear(dim, hidden)
        self.D_fc2 = nn.Linear(hidden, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h ``(B, L, D)``. Returns ``(B, L, D)``."""
        return self.norm(self.D_fc2(F.gelu(self.D_fc1(h))))


class Experts(nn.Module):
    """``n`` affine experts stored as ``weight (n, d_in, d_out)``, ``bias (n, d_out)`` (x @ W[n])."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, dim, dim))
        self.bias = nn.Parameter(torch.empty(n, dim))
        bound = 1.0 / math.sqrt(dim * dim)  # kaiming-uniform(a=sqrt 5) with torch's 3-D fan-in
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)


class SoftMoE(nn.Module):
    """Soft mixture of experts over all tokens of a sample (paper eqs. 9-13).

    ``phi (d, n, p)``; dispatch = softmax over tokens per slot, combine = softmax over the ``n*p`` slots
    per token; each expert is one affine map. No normalisation, scale or noise.
    """

    def __init__(self, dim: int, num_experts: int, slots_per_expert: int) -> None:
        super().__init__()
        self.phi = nn.Parameter(torch.empty(dim, num_experts, slots_per_expert))
        nn.init.uniform_(self.phi, -1.0 / math.sqrt(num_experts * slots_per_expert),
                         1.0 / math.sqrt(num_experts * slots_per_expert))
        self.experts = Experts(num_experts, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Args: z ``(B, m, d)``, m >= 1 tokens present. Returns ``(B, m, d)``."""
        b, m, d = z.shape
        n, p = self.phi.shape[1], self.phi.shape[2]
        logits = torch.einsum("bmd,dnp->bmnp", z, self.phi)
        dispatch = logits.softmax(dim=1)
        combine = logits.reshape(b, m, n * p).softmax(dim=-1).reshape(b, m, n, p)
        slots = torch.einsum("bmnp,bmd->bnpd", dispatch, z)
        out = torch.einsum("bnpd,nde->bnpe", slots, self.experts.weight) + self.experts.bias[None, :, None, :]
        return torch.einsum("bmnp,bnpe->bme", combine, out)


class SoftMoEAdapter(nn.Module):
    """``LN(D_fc2(SoftMoE(GELU(D_fc1(h)))))`` shared by all tokens (layers split..depth-1)."""

    def __init__(self, dim: int, hidden: int, num_experts: int, slots_per_expert: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.D_fc1 = nn.Linear(dim, hidden)
        self.D_fc2 = nn.Linear(hidden, dim)
        self.moe = SoftMoE(hidden, num_experts, slots_per_expert)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h ``(B, L, D)`` (all present tokens concatenated). Returns ``(B, L, D)``."""
        return self.norm(self.D_fc2(self.moe(F.gelu(self.D_fc1(h)))))
