"""The paper's recipe as code (docs/model.md, *Training recipe*): model initialisation, Adam + cosine, weighted CE.

* :func:`build_model` - from scratch (authors' init; every modality its own copy of every frozen module;
  all parameters trained), from BEiT-3 (frozen backbone) or from a MOME model (key for key, each
  modality's branches intact; frozen backbone; head re-initialised only when the class count differs).
* :func:`make_optimizer` - Adam, coupled L2 weight decay, over the trainable tensors in model order.
* :func:`make_scheduler` - cosine annealing, ``T_max = epochs``, stepped once per epoch.
* :func:`class_weights` / :func:`loss_fn` - cross-entropy, optionally balanced (the paper's weighted
  softmax for TNBC and pCR).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model_core.network.config import MomeConfig
from model_core.network.mome import Mome
from model_core.train.options import InitSpec, TrainError, TrainOptions
from model_core.weights.beit3 import load_beit3_pretrained
from model_core.weights.native import load_native
from model_core.weights.official import load_official_state_dict, safe_torch_load, unwrap_state_dict

log = logging.getLogger(__name__)


@dataclass
class InitReport:
    """What :func:`build_model` did (recorded in the model card)."""

    kind: str
    path: str | None
    frozen_backbone: bool
    head_reinitialised: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _new_head(model: Mome, num_classes: int) -> None:
    """Replace the head with a fresh ``Linear(D, num_classes)`` with the authors' init (§10)."""
    head = nn.Linear(model.cfg.embed_dim, num_classes)
    with torch.no_grad():
        nn.init.trunc_normal_(head.weight, std=0.02, a=-0.02, b=0.02)
        nn.init.zeros_(head.bias)
        head.weight.mul_(0.001)
    model.head = head
    model.cfg = model.cfg.replace(num_classes=num_classes)


def _load_mome(path: str, cfg: MomeConfig) -> tuple[Mome, list[str]]:
    """A MOME model from native safetensors (config from its card) or the authors' ``.pth`` (``cfg``)."""
    if path.endswith(".safetensors"):
        model, card = load_native(path)
        notes = [f"loaded native model {Path(path).name} (sha256 {card.weights_sha256[:12]})"]
        if dict(model.cfg.sizes) != dict(cfg.sizes):
            notes.append(f"canvas sizes from the checkpoint: {dict(model.cfg.sizes)}")
        return model, notes
    sd = unwrap_state_dict(safe_torch_load(path), path)
    head = sd.get("head.weight")
    if head is not None and head.shape[0] != cfg.num_classes:
        cfg = cfg.replace(num_classes=int(head.shape[0]))
    model = Mome(cfg, init=False)
    report = load_official_state_dict(model, sd)
    return model, [report.summary()]


HEAD_SCALE_XAVIER = 0.1
"""Factor on the Xavier-initialised head of the ``xavier`` scratch scheme (initial logits ~ +-0.5)."""


@torch.no_grad()
def xavier_init(model: Mome) -> None:
    """The ``xavier`` scratch scheme: every Linear weight Xavier-uniform, biases 0, head x
    :data:`HEAD_SCALE_XAVIER`; adapters' ``D_fc2`` stay 0 (adapters start as the identity); LayerNorms,
    convs, CLS, position tables and the MoE keep the authors' init."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and not name.endswith("D_fc2"):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    model.head.weight.mul_(HEAD_SCALE_XAVIER)


def build_model(cfg: MomeConfig, init: InitSpec, seed: int = 0, num_classes: int = 2) -> tuple[Mome, InitReport]:
    """The network to train, in train mode, with ``requires_grad`` set per the init kind.

    Args:
        cfg: configuration (scratch / BEiT-3); a native MOME checkpoint brings its own.
        init: see :class:`InitSpec`.
        seed: seeds ``torch`` before the random initialisation (bitwise reproducible on CPU).
        num_classes: classes of the task (2 for every task here).
    """
    torch.manual_seed(seed)
    report = InitReport(init.kind, init.path, init.frozen_backbone)
    if init.kind == "scratch":
        model = Mome(cfg.replace(num_classes=num_classes))
        model.untie_frozen()
        if init.scheme == "xavier":
            xavier_init(model)
        report.notes.append(f"{'authors' if init.scheme == 'authors' else 'Xavier'} init; frozen modules untied "
                            "(one copy per modality); all parameters trained")
    elif init.kind == "beit3":
        assert init.path is not None
        model = Mome(cfg.replace(num_classes=num_classes))
        report.notes.append(load_beit3_pretrained(model, init.path).summary())
    else:
        assert init.path is not None
        model, notes = _load_mome(init.path, cfg)
        report.notes.extend(notes)
        if model.cfg.num_classes != num_classes:
            _new_head(model, num_classes)
            report.head_reinitialised = True
            report.notes.append(f"head re-initialised for {num_classes} classes")
    model.freeze_backbone(init.frozen_backbone)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    report.notes.append(f"{n_train} of {n_all} parameters trainable")
    log.info("model: %s", "; ".join(report.notes))
    return model.train(), report


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` with ``requires_grad``, in ``named_parameters`` order (the optimizer's order)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def make_optimizer(model: nn.Module, opts: TrainOptions, heads: nn.Module | None = None) -> torch.optim.Adam:
    """Adam with coupled L2 weight decay on every trainable tensor (incl. position tables, CLS, LN), then
    on the training-only token heads' (``heads``), if any."""
    params = [p for _, p in trainable_parameters(model)]
    if params and heads is not None:
        params += list(heads.parameters())
    if not params:
        raise TrainError("the model has no trainable parameters")
    return torch.optim.Adam(params, lr=opts.lr, betas=opts.betas, eps=opts.eps, weight_decay=opts.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, opts: TrainOptions) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """Cosine annealing ``lr -> min_lr`` over ``epochs`` (call ``step()`` once per epoch)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=opts.epochs, eta_min=opts.min_lr)


def class_weights(labels: np.ndarray, balanced: bool, num_classes: int = 2) -> torch.Tensor | None:
    """``None`` (plain CE) or balanced weights ``w_c = n / (num_classes * n_c)`` ``(num_classes,)``.

    Raises:
        TrainError: a class is absent from the training labels.
    """
    if not balanced:
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if (counts == 0).any():
        raise TrainError(f"balanced class weights need every class in the training set, counts {counts.tolist()}")
    return torch.tensor(counts.sum() / (num_classes * counts), dtype=torch.float32)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy of ``logits (B, K)`` against ``target (B,)``, class-weighted when ``weight`` is given.

    With batch 1 the weighted mean reduces to ``w_y * CE``, i.e. the per-sample weighted softmax loss
    (``reduction="sum"`` divided by ``B``, not by the summed weights, for exactly that).
    """
    return F.cross_entropy(logits, target, weight=weight, reduction="sum") / logits.shape[0]
