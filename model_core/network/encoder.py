"""One MOME encoder layer (docs/model.md, *Network*).

The sequence is one tensor ``(B, L, D)`` laid out ``[DCE+CLS | DWI | T2]`` with segment lengths
``(L_A, L_B, L_C)`` (0 = modality absent). Every LayerNorm, projection and FFN is a :class:`Multiway`.
Layers below ``split_layers`` attend within each segment and use per-branch adapters; the others attend
jointly over all tokens and share one soft-MoE adapter.

Pre-LN with BEiT-3 sub-LN::

    x <- x + DropPath(out_proj(inner_ln(Attn(self_attn_layer_norm(x)))))
    h  = final_layer_norm(x)
    x <- x + DropPath(fc2(ffn_ln(GELU(fc1(h)))) + Adapter(h))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model_core.network.moe import Adapter, SoftMoEAdapter
from model_core.network.multiway import Lengths, Multiway


def _gelu_fp32(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU computed in fp32 whatever the autocast dtype."""
    return F.gelu(x.float()).to(x.dtype) if x.dtype != torch.float32 else F.gelu(x)


class FeedForward(nn.Module):
    """``fc2(ffn_layernorm(GELU(fc1(h))))``; keys ``fc1``, ``fc2``, ``ffn_layernorm``."""

    def __init__(self, dim: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.ffn_layernorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h ``(B, L, D)``. Returns ``(B, L, D)``."""
        return self.fc2(self.ffn_layernorm(_gelu_fp32(self.fc1(h))))


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, hd = x.shape
    return x.transpose(1, 2).reshape(b, n, h * hd)


def block_diagonal_mask(lengths: Sequence[int], device: torch.device) -> torch.Tensor:
    """Boolean ``(L, L)`` mask, True where query and key share a segment (the authors' dense mask)."""
    ids = torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                  torch.tensor(list(lengths), device=device))
    return ids[:, None] == ids[None, :]


class MultiwayAttention(nn.Module):
    """Multi-head attention with per-branch projections and the sub-LN before ``out_proj``.

    ``q`` carries its bias before scaling by ``head_dim**-0.5`` (SDPA's internal scale does the same).
    """

    def __init__(self, dim: int, heads: int, eps: float, tied: bool) -> None:
        super().__init__()
        self.num_heads = heads
        # Attribute order reproduces the authors' key order: k, v, q, out, inner_attn_ln.
        self.k_proj = Multiway(lambda: nn.Linear(dim, dim), tied)
        self.v_proj = Multiway(lambda: nn.Linear(dim, dim), tied)
        self.q_proj = Multiway(lambda: nn.Linear(dim, dim), tied)
        self.out_proj = Multiway(lambda: nn.Linear(dim, dim), tied)
        self.inner_attn_ln = Multiway(lambda: nn.LayerNorm(dim, eps=eps), tied)

    def _qkv(self, h: torch.Tensor, lengths: Lengths) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v ``(B, L, D)``; one fused matmul when the three projections are tied."""
        projs = (self.q_proj, self.k_proj, self.v_proj)
        if all(p.is_tied for p in projs):
            lin = [p.A for p in projs]
            w = torch.cat([m.weight for m in lin])  # type: ignore[misc]
            b = torch.cat([m.bias for m in lin])  # type: ignore[misc]
            q, k, v = F.linear(h, w, b).chunk(3, dim=-1)
            return q, k, v
        return projs[0](h, lengths), projs[1](h, lengths), projs[2](h, lengths)

    def forward(self, h: torch.Tensor, lengths: Lengths, joint: bool, dense_mask: bool = False) -> torch.Tensor:
        """Args:
            h: normalised sequence ``(B, L, D)``.
            lengths: segment lengths.
            joint: attend over all tokens (fusion layers) instead of within each segment.
            dense_mask: benchmark reference: split attention computed as one dense attention with a
                block-diagonal ``(L, L)`` mask, as the authors' code does.
        Returns:
            ``(B, L, D)``.
        """
        heads = self.num_heads
        q, k, v = (_split_heads(t, heads) for t in self._qkv(h, lengths))
        if joint or dense_mask or sum(1 for n in lengths if n) == 1:
            mask = None if joint else block_diagonal_mask(lengths, q.device)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            parts, off = [], 0
            for n in lengths:
                if n:
                    seg = slice(off, off + n)
                    parts.append(F.scaled_dot_product_attention(q[:, :, seg], k[:, :, seg], v[:, :, seg]))
                off += n
            o = torch.cat(parts, dim=2)
        return self.out_proj(self.inner_attn_ln(_merge_heads(o), lengths), lengths)


def drop_path_mask(batch: int, rate: float, training: bool, like: torch.Tensor) -> torch.Tensor | None:
    """Per-sample stochastic-depth multiplier ``(B, 1, 1)``, or ``None`` when inactive."""
    if not training or rate <= 0.0:
        return None
    keep = torch.rand(batch, 1, 1, device=like.device) >= rate
    return keep.to(like.dtype) / (1.0 - rate)


class EncoderLayer(nn.Module):
    """One encoder layer; ``joint`` selects fusion (joint attention + soft-MoE) behaviour.

    Args:
        dim, heads, ffn_dim, adapter_dim: widths.
        joint: fusion layer (index >= split_layers).
        num_experts, slots_per_expert: soft-MoE size (fusion layers only).
        drop_path: stochastic-depth rate of this layer (training only).
        eps: LayerNorm epsilon.
        tied: store the frozen multiway copies once.
    """

    def __init__(
        self, dim: int, heads: int, ffn_dim: int, adapter_dim: int, joint: bool, num_experts: int,
        slots_per_expert: int, drop_path: float, eps: float, tied: bool,
    ) -> None:
        super().__init__()
        self.joint = joint
        self.drop_path = drop_path
        self.self_attn = MultiwayAttention(dim, heads, eps, tied)
        self.self_attn_layer_norm = Multiway(lambda: nn.LayerNorm(dim, eps=eps), tied)
        self.ffn = Multiway(lambda: FeedForward(dim, ffn_dim, eps), tied)
        self.final_layer_norm = Multiway(lambda: nn.LayerNorm(dim, eps=eps), tied)
        self.MLP_Adapter: nn.Module
        if joint:
            self.MLP_Adapter = SoftMoEAdapter(dim, adapter_dim, num_experts, slots_per_expert, eps)
        else:
            self.MLP_Adapter = Multiway(lambda: Adapter(dim, adapter_dim, eps), tied=False)

    def adapter(self, h: torch.Tensor, lengths: Lengths) -> torch.Tensor:
        """The adapter branch ``g`` on the normalised sequence (fixture ``layerNN_adapter_out``)."""
        return self.MLP_Adapter(h) if self.joint else self.MLP_Adapter(h, lengths)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, lengths: Lengths, dense_mask: bool = False, cls_only: bool = False,
    ) -> torch.Tensor:
        """Args:
            x: ``(B, L, D)``; lengths: segment lengths.
            cls_only: return only token 0 ``(B, 1, D)``. Exact for the last layer, whose other outputs
                nothing reads: the FFN then runs on the CLS token alone (the soft-MoE still sees all
                tokens).
        Returns:
            ``(B, L, D)`` (or ``(B, 1, D)`` with ``cls_only``).
        """
        a = self.self_attn(self.self_attn_layer_norm(x, lengths), lengths, joint=self.joint, dense_mask=dense_mask)
        keep = drop_path_mask(x.shape[0], self.drop_path, self.training, x)
        x = x + (a if keep is None else a * keep)
        h = self.final_layer_norm(x, lengths)
        g = self.adapter(h, lengths)
        if cls_only:
            x, h, g, lengths = x[:, :1], h[:, :1], g[:, :1], (1, 0, 0)
        upd = self.ffn(h, lengths) + g
        keep = drop_path_mask(x.shape[0], self.drop_path, self.training, x)
        return x + (upd if keep is None else upd * keep)
