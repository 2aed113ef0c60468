"""One MOME encoder layer (MOME_SPEC §4-§6).

The sequence is a list of three segments ``[DCE+CLS, DWI, T2]``, each ``(B, L_w, D)`` or ``None`` when the
modality is absent. Every LayerNorm, projection and FFN is a :class:`Multiway` (one copy per branch).
Layers below ``split_layers`` attend within each segment and use per-branch adapters; the others attend
jointly over all present tokens and share one soft-MoE adapter.

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

from model_core.moe import Adapter, SoftMoEAdapter
from model_core.multiway import Multiway, Segments


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

    ``q`` carries its bias before scaling by ``head_dim**-0.5`` (equivalent to SDPA's internal scale).
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

    def forward(self, h: Segments, joint: bool, dense_mask: bool = False) -> Segments:
        """Args:
            h: normalised segments ``(B, L_w, D)`` or ``None``.
            joint: attend over all present tokens (fusion layers) instead of within each segment.
            dense_mask: reference path for benchmarks: split attention computed as one dense
                attention with a block-diagonal ``(L, L)`` mask, as the authors' code does.
        Returns:
            segments ``(B, L_w, D)`` (``None`` where absent).
        """
        qs, ks, vs = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        present = [i for i, s in enumerate(h) if s is not None]
        outs: Segments = [None, None, None]
        if joint or dense_mask:
            lengths = [qs[i].shape[1] for i in present]  # type: ignore[union-attr]
            q = _split_heads(torch.cat([qs[i] for i in present], 1), self.num_heads)  # type: ignore[misc]
            k = _split_heads(torch.cat([ks[i] for i in present], 1), self.num_heads)  # type: ignore[misc]
            v = _split_heads(torch.cat([vs[i] for i in present], 1), self.num_heads)  # type: ignore[misc]
            mask = None if joint else block_diagonal_mask(lengths, q.device)
            o = _merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
            for i, part in zip(present, torch.split(o, lengths, dim=1), strict=True):
                outs[i] = part
        else:
            for i in present:
                o = F.scaled_dot_product_attention(
                    _split_heads(qs[i], self.num_heads), _split_heads(ks[i], self.num_heads),  # type: ignore[arg-type]
                    _split_heads(vs[i], self.num_heads),  # type: ignore[arg-type]
                )
                outs[i] = _merge_heads(o)
        return self.out_proj(self.inner_attn_ln(outs))


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

    def adapter(self, h: Segments) -> Segments:
        """The adapter branch ``g`` on the normalised segments (fixture ``layerNN_adapter_out``)."""
        if not self.joint:
            return self.MLP_Adapter(h)
        present = [i for i, s in enumerate(h) if s is not None]
        lengths = [h[i].shape[1] for i in present]  # type: ignore[union-attr]
        g = self.MLP_Adapter(torch.cat([h[i] for i in present], 1))  # type: ignore[misc]
        outs: Segments = [None, None, None]
        for i, part in zip(present, torch.split(g, lengths, dim=1), strict=True):
            outs[i] = part
        return outs

    def forward(self, x: Segments, dense_mask: bool = False) -> Segments:  # type: ignore[override]
        """Args: x segments ``(B, L_w, D)`` / ``None``. Returns segments of the same shapes."""
        ref = next(s for s in x if s is not None)
        a = self.self_attn(self.self_attn_layer_norm(x), joint=self.joint, dense_mask=dense_mask)
        keep = drop_path_mask(ref.shape[0], self.drop_path, self.training, ref)
        x = [None if s is None else s + (a_i if keep is None else a_i * keep) for s, a_i in zip(x, a, strict=True)]
        h = self.final_layer_norm(x)
        f, g = self.ffn(h), self.adapter(h)
        keep = drop_path_mask(ref.shape[0], self.drop_path, self.training, ref)
        out: Segments = []
        for s, f_i, g_i in zip(x, f, g, strict=True):
            if s is None:
                out.append(None)
            else:
                upd = f_i + g_i
                out.append(s + (upd if keep is None else upd * keep))
        return out
