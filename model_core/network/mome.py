"""The MOME network (docs/model.md): three tokenizers, a 12-layer multiway encoder, CLS head.

Call order is ``(dce, dwi, t2)``; each input is ``(B, C, X, Y, Z)`` at the configured canvas size or
``None`` (absent modality = zero-length token segment). Without DCE the CLS token stays (position row 1 of
table A); with nothing at all the sequence is the CLS token alone (the model's prior).

Because layers ``0 .. split_layers-1`` attend within each modality, every modality's output after those
layers is independent of the others: :meth:`Mome.encode` computes it once, :meth:`Mome.fuse` evaluates any
subset from it. ``forward`` is exactly ``fuse(encode(...))``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from model_core.errors import InputShapeError
from model_core.network.config import MomeConfig
from model_core.network.encoder import EncoderLayer
from model_core.network.multiway import Lengths, Multiway, multiway_modules, split_segments
from model_core.network.tokenizer import Tokenizer

log = logging.getLogger(__name__)

Segments = list[torch.Tensor | None]
"""Per-modality token segments ``[A (CLS+DCE), B (DWI), C (T2)]``, ``(B, L_w, D)`` or ``None``."""

TRAINABLE_MARKERS: tuple[str, ...] = (
    "beit3.dce_embed.", "beit3.dwi_embed.", "beit3.t2_embed.", "beit3.encoder.embed_positions.",
    ".MLP_Adapter.", "fc_norm.", "head.",
)
"""Key substrings of the parameters the paper trains; every other parameter is frozen (docs/model.md,
*Training recipe*)."""


def is_trainable_key(key: str) -> bool:
    """Whether a state-dict key belongs to the paper's trainable group."""
    return any(m in key for m in TRAINABLE_MARKERS)


class _Table(nn.Module):
    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(rows, dim))


class PositionTables(nn.Module):
    """Learnable position tables A (DCE: ``n_dce + 2`` rows, offset 1), B (DWI) and C (T2) (offset 0)."""

    def __init__(self, cfg: MomeConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.A = _Table(cfg.num_tokens("dce") + 2, d)
        self.B = _Table(cfg.num_tokens("dwi"), d)
        self.C = _Table(cfg.num_tokens("t2"), d)


class Encoder(nn.Module):
    def __init__(self, cfg: MomeConfig, tied: bool) -> None:
        super().__init__()
        self.embed_positions = PositionTables(cfg)
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.embed_dim, cfg.num_heads, cfg.ffn_dim, cfg.adapter_dim, i >= cfg.split_layers,
                         cfg.num_experts, cfg.slots_per_expert, rates[i], cfg.ln_eps, tied)
            for i in range(cfg.depth)
        )


class Beit3(nn.Module):
    """Holds the authors' ``beit3.*`` key namespace: tokenizers and encoder."""

    def __init__(self, cfg: MomeConfig, tied: bool) -> None:
        super().__init__()
        w = cfg.stem_widths
        self.dce_embed = Tokenizer(cfg.in_chans["dce"], cfg.embed_dim, w, with_cls=True, eps=cfg.ln_eps)
        self.dwi_embed = Tokenizer(cfg.in_chans["dwi"], cfg.embed_dim, w, eps=cfg.ln_eps)
        self.t2_embed = Tokenizer(cfg.in_chans["t2"], cfg.embed_dim, w, eps=cfg.ln_eps)
        self.encoder = Encoder(cfg, tied)


@dataclass(frozen=True)
class ParameterCounts:
    """Parameter counts. ``authors_*`` count every state-dict entry (three frozen copies per module, the
    authors' layout); ``unique_*`` count each stored tensor once (shared frozen copies counted once)."""

    authors_total: int
    authors_trainable: int
    unique_total: int
    unique_trainable: int


class Mome(nn.Module):
    """MOME classifier. See the module docstring.

    Args:
        cfg: configuration (``MomeConfig()`` = the paper's base model).
        tied: store frozen multiway copies once (the state after BEiT-3 initialisation). Loading a
            checkpoint with unequal copies unties them automatically.
        init: apply the authors' initialisation (docs/model.md, *Training recipe*); otherwise PyTorch defaults.
    """

    def __init__(self, cfg: MomeConfig | None = None, *, tied: bool = True, init: bool = True) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else MomeConfig()
        self.beit3 = Beit3(self.cfg, tied)
        self.fc_norm = nn.LayerNorm(self.cfg.embed_dim, eps=self.cfg.ln_eps)
        self.head = nn.Linear(self.cfg.embed_dim, self.cfg.num_classes)
        if init:
            self.reset_parameters()

    # ------------------------------------------------------------------ initialisation and groups
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The authors' init: Linear trunc-normal(0.02, +-0.02), bias 0; LN 1/0; adapter ``D_fc2`` = 0
        (adapters output exactly 0); head x 0.001. Convs, CLS, position tables and MoE keep their
        own init (docs/model.md, *Training recipe*)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.02, b=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for name, m in self.named_modules():
            if name.endswith("D_fc2"):
                nn.init.zeros_(m.weight)  # type: ignore[arg-type]
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]
        self.head.weight.mul_(0.001)
        self.head.bias.mul_(0.001)

    def frozen_multiways(self) -> list[tuple[str, Multiway]]:
        """The multiway containers of frozen modules (everything but the adapters)."""
        return [(n, m) for n, m in multiway_modules(self) if not is_trainable_key(n + ".")]

    def untie_frozen(self) -> None:
        """Give every frozen multiway module independent B and C copies (e.g. training from scratch)."""
        for _, m in self.frozen_multiways():
            m.untie()

    def tie_frozen(self) -> None:
        """Share branch A's frozen weights with B and C (discarding B and C)."""
        for _, m in self.frozen_multiways():
            m.tie()

    def named_parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """``{"trainable": [...], "frozen": [...]}``: the paper's split (docs/model.md, *Training recipe*)."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"trainable": [], "frozen": []}
        for n, p in self.named_parameters():
            groups["trainable" if is_trainable_key(n) else "frozen"].append((n, p))
        return groups

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Set ``requires_grad`` per the paper's split (frozen backbone) or make everything trainable."""
        for n, p in self.named_parameters():
            p.requires_grad_(is_trainable_key(n) or not frozen)

    def parameter_counts(self) -> ParameterCounts:
        sd = self.state_dict(keep_vars=True)
        authors_total = sum(t.numel() for t in sd.values())
        authors_tr = sum(t.numel() for k, t in sd.items() if is_trainable_key(k))
        uniq = list(self.named_parameters())
        return ParameterCounts(
            authors_total, authors_tr,
            sum(p.numel() for _, p in uniq), sum(p.numel() for n, p in uniq if is_trainable_key(n)),
        )

    # ------------------------------------------------------------------ forward
    def _check(self, name: str, x: torch.Tensor) -> None:
        want = (self.cfg.in_chans[name], *self.cfg.sizes[name])
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise InputShapeError(f"{name}: expected (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")

    def encode(
        self,
        dce: torch.Tensor | None = None,
        dwi: torch.Tensor | None = None,
        t2: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        dense_mask: bool = False,
    ) -> Segments:
        """Tokenize and run the per-modality layers ``0 .. split_layers-1``.

        Args:
            dce: ``(B, 6, X, Y, Z)`` or ``None``; dwi, t2: ``(B, 1, X, Y, Z)`` or ``None``.
            batch_size: needed only when every input is ``None``.
            dense_mask: benchmark reference path (dense block-diagonal mask).
        Returns:
            ``[A (B, 1 + N_dce, D) (CLS first; CLS alone without DCE), B (B, N_dwi, D) | None,
            C (B, N_t2, D) | None]``. Each segment depends only on its own modality.
        """
        x, lengths = self.embed(dce, dwi, t2, batch_size=batch_size)
        for layer in self.beit3.encoder.layers[: self.cfg.split_layers]:
            x = layer(x, lengths, dense_mask=dense_mask)
        return split_segments(x, lengths)

    def embed(
        self,
        dce: torch.Tensor | None = None,
        dwi: torch.Tensor | None = None,
        t2: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, Lengths]:
        """Tokens plus position embeddings, ``(B, L, D)`` laid out ``[CLS+DCE | DWI | T2]``, and lengths."""
        inputs = {"dce": dce, "dwi": dwi, "t2": t2}
        batches = set()
        for name, x in inputs.items():
            if x is not None:
                self._check(name, x)
                batches.add(x.shape[0])
        if len(batches) > 1:
            raise InputShapeError(f"inputs disagree on batch size: {sorted(batches)}")
        b = batches.pop() if batches else (batch_size or 1)
        pos = self.beit3.encoder.embed_positions
        parts = [self.beit3.dce_embed.cls_token.expand(b, -1, -1)]  # type: ignore[union-attr]
        if dce is not None:
            parts.append(self.beit3.dce_embed(dce))
        seg_a = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        segs = [seg_a + pos.A.weight[1 : 1 + seg_a.shape[1]]]
        if dwi is not None:
            segs.append(self.beit3.dwi_embed(dwi) + pos.B.weight)
        if t2 is not None:
            segs.append(self.beit3.t2_embed(t2) + pos.C.weight)
        lengths: Lengths = (seg_a.shape[1], 0 if dwi is None else pos.B.weight.shape[0],
                            0 if t2 is None else pos.C.weight.shape[0])
        return torch.cat(segs, dim=1), lengths

    def fuse(self, segments: Segments, *, dense_mask: bool = False) -> torch.Tensor:
        """Run the fusion layers on cached segments, then the head.

        Args:
            segments: output of :meth:`encode`; set an entry to ``None`` to drop that modality. The first
                (CLS) segment is required: the CLS-only segment of ``encode(batch_size=B)`` means "no DCE".
        Returns:
            logits ``(B, num_classes)``.
        """
        x, lengths = _join(segments)
        layers = list(self.beit3.encoder.layers[self.cfg.split_layers :])
        for i, layer in enumerate(layers):
            x = layer(x, lengths, dense_mask=dense_mask, cls_only=i == len(layers) - 1)
        return self.head(self.fc_norm(x[:, 0]))

    def forward(  # type: ignore[override]
        self,
        dce: torch.Tensor | None = None,
        dwi: torch.Tensor | None = None,
        t2: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        dense_mask: bool = False,
    ) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for any subset of modalities (``None`` = absent)."""
        return self.fuse(self.encode(dce, dwi, t2, batch_size=batch_size, dense_mask=dense_mask),
                         dense_mask=dense_mask)

    @torch.no_grad()
    def layer_outputs(
        self, dce: torch.Tensor | None = None, dwi: torch.Tensor | None = None, t2: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every intermediate for inspection and parity tests: ``encoder_input`` and ``layerNN_out``
        ``(B, L, D)``, ``layerNN_adapter_out`` ``(B, L, D)``, ``cls_after_fc_norm`` ``(B, D)``, ``logits``."""
        x, lengths = self.embed(dce, dwi, t2)
        out = {"encoder_input": x}
        for i, layer in enumerate(self.iter_layers()):
            h = layer.final_layer_norm(x + layer.self_attn(layer.self_attn_layer_norm(x, lengths), lengths,
                                                            joint=layer.joint), lengths)
            out[f"layer{i:02d}_adapter_out"] = layer.adapter(h, lengths)
            x = layer(x, lengths)
            out[f"layer{i:02d}_out"] = x
        out["cls_after_fc_norm"] = self.fc_norm(x[:, 0])
        out["logits"] = self.head(out["cls_after_fc_norm"])
        return out

    def iter_layers(self) -> Iterator[EncoderLayer]:
        yield from self.beit3.encoder.layers  # type: ignore[misc]


def _join(segments: Segments) -> tuple[torch.Tensor, Lengths]:
    if segments[0] is None:
        raise InputShapeError("the first segment (CLS, with or without DCE) is required")
    present = [s for s in segments if s is not None]
    lengths: Lengths = tuple(0 if s is None else s.shape[1] for s in segments)  # type: ignore[assignment]
    return (torch.cat(present, dim=1) if len(present) > 1 else present[0]), lengths
