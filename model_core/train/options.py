"""Options of ``mome train``: model initialisation and the paper's recipe (docs/model.md, *Training recipe*).

Every option object is a frozen dataclass that round-trips through plain JSON types (``to_dict`` /
``from_dict``), so that it can be stored in a resumable training state and in the model card.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from model_core.errors import TrainError, known_fields
from model_core.evaluation.cohort import TaskSpec, get_task

ClassWeights = Literal["auto", "none", "balanced"]
EpochEnd = Literal["carry", "step"]
InitKind = Literal["scratch", "beit3", "mome"]
ScratchInit = Literal["authors", "xavier"]


@dataclass(frozen=True)
class InitSpec:
    """Where the weights come from.

    ``scratch``: every modality with its own copy of every module, all parameters trained; ``scheme``
    picks the initialisation: ``authors`` (docs/model.md, *Training recipe*: Linear trunc-normal 0.02 cut
    at +-0.02, head x 0.001 - made for fine-tuning pretrained weights) or ``xavier`` (Xavier-uniform Linear
    weights and a 0.1-scaled Xavier head; adapters' output layers still start at 0). From scratch the authors' init
    does not train: its head makes the backbone's gradients ~1e-3 of normal and the output stays
    constant for hundreds of steps (docs/demo_model.md).
    ``beit3``: frozen backbone from a BEiT-3 checkpoint (``path``), the paper's
    trainable split. ``mome``: a MOME model (native ``.safetensors`` + card, or the authors' ``.pth``)
    loaded key for key (each modality's branches intact), frozen backbone, head re-initialised only when
    the class count differs.
    """

    kind: InitKind = "scratch"
    path: str | None = None
    scheme: ScratchInit = "authors"

    def __post_init__(self) -> None:
        if self.kind not in ("scratch", "beit3", "mome"):
            raise TrainError(f"unknown init kind {self.kind!r}")
        if self.scheme not in ("authors", "xavier"):
            raise TrainError(f"unknown scratch init scheme {self.scheme!r}; choose authors or xavier")
        if self.scheme != "authors" and self.kind != "scratch":
            raise TrainError(f"init scheme {self.scheme!r} applies to training from scratch only")
        if (self.kind == "scratch") != (self.path is None):
            raise TrainError(f"init {self.kind!r} {'takes no' if self.kind == 'scratch' else 'needs a'} path")

    @property
    def frozen_backbone(self) -> bool:
        return self.kind != "scratch"


@dataclass(frozen=True)
class TrainOptions:
    """The recipe and run settings.

    Attributes:
        task: a key of :data:`TASKS`.
        epochs: number of epochs; also the cosine schedule's ``T_max``.
        accumulation: samples per optimizer step (batch 1 per forward; loss divided by it). With ``W``
            data-parallel processes each contributes ``accumulation / W`` samples to a step.
        lr, min_lr: cosine annealing from ``lr`` to ``min_lr``, stepped once per epoch.
        betas, eps: Adam.
        weight_decay: coupled L2 (``torch.optim.Adam(weight_decay=...)``, not AdamW).
        class_weights: ``auto`` (balanced for TNBC/pCR, none for malignancy, as in the paper), ``none``
            or ``balanced`` (inverse class frequency of the training set, ``n / (2 n_c)``).
        epoch_end: gradients of the last ``n mod accumulation`` samples of an epoch: ``carry`` them into
            the next epoch's first step (the authors' code) or ``step`` on them at once.
        seed: drives the model init, the sample order, augmentation and drop path.
        stop_after: stop (resumably) after this many epochs of this invocation; ``None`` = run to the end.
        save_dtype: dtype of the saved ``best.safetensors`` (``float16`` halves the file).
        modality_dropout: probability that a training sample is shown with a random proper, non-empty
            subset of its modalities (uniform over the 6, the others absent as at missing-modality
            inference, docs/model.md, *Missing modalities*) instead of all of them. Not in the paper
            (0 = the paper's recipe).
        single_loss: weight ``w`` of an auxiliary loss: the per-sample loss becomes
            ``CE(all) + w * mean_m CE(m alone)`` over the sample's present sequences ``m``, each single
            sequence fused from the same encoding (:meth:`Mome.fuse`, a few fusion layers each). Not in the
            paper (0 = the paper's recipe); costs ~25 % more per sample on the demo preset.
        branch_warmup: the first ``branch_warmup`` epochs show every sample without DCE (DWI and T2 only,
            DCE absent as at missing-modality inference), so that the DWI/T2 branches and the fusion layers
            learn to read those sequences before DCE is shown. Not in the paper (0 = the paper's recipe).
        t2_warmup: the first ``t2_warmup`` of the ``branch_warmup`` epochs show T2 alone (DCE and DWI absent),
            so that the T2 branch learns to read T2 before the other sequences can stand in for it. Not in
            the paper (0 = the paper's recipe).
        poe_loss: weight ``v`` of a product-of-experts target for the fused output: the per-sample loss adds
            ``v * BCE(l_all, sigmoid(prior + sum_m (l_m - prior)))``, ``l`` the class-1 log-odds of all
            present sequences and of each alone (detached), ``prior`` the training set's (0 with a balanced
            loss). It asks the fused output to add up the sequences' evidence as if they were independent
            given the class, which the phantom world's sequences are (their lesion attributes are drawn
            independently per class); on real data, where they are not, it would over-count shared
            evidence. Computed from the same encodings as ``single_loss``. Not in the paper (0 = the
            paper's recipe).
        ema: decay ``D`` of an exponential moving average of the weights, updated after every optimizer
            step (:mod:`model_core.train.ema`); validation, the best-validation checkpoint and so the
            exported model use the average. Not in the paper (0 = off, the paper's recipe).
        balance_by: a numeric cohort column (e.g. ``lesion_diameter_mm``); from epoch ``balance_from`` (0-based)
            on, each epoch's cases are drawn with replacement so that the column says nothing about the label
            in what the network is shown (:mod:`model_core.train.balance`: ``balance_bins`` equal-count bins,
            each drawn equally often, each class half of every bin), and the prior of ``poe_loss`` is then
            0. ``None`` (the paper's recipe): every case once per epoch in a seeded order. Not in the paper.
        balance_bins, balance_from: see ``balance_by``.
        shared_pad: draw the random pad once per sample for every sequence (each offset the same fraction
            of its own canvas's free space), so that tokens of the same place line up across sequences
            (:func:`model_core.preprocessing.tta.random_augment`). Not in the paper (False = the paper's
            independent offsets).
        token_head: weight ``u`` of the training-only token heads (:mod:`model_core.train.token_heads`): the
            per-sample loss adds ``u`` times the mean cross-entropy of a head on each present sequence of
            ``token_head_on`` (the per-feature maximum of its tokens after the per-modality layers). The
            heads are not part of the exported model. Not in the paper (0 = off).
        token_head_on: the sequences that get a token head.
    """

    task: str = "malignancy"
    epochs: int = 100
    accumulation: int = 32
    lr: float = 1e-4
    min_lr: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 5e-4
    class_weights: ClassWeights = "auto"
    epoch_end: EpochEnd = "carry"
    seed: int = 0
    stop_after: int | None = None
    save_dtype: Literal["float32", "float16"] = "float32"
    modality_dropout: float = 0.0
    single_loss: float = 0.0
    branch_warmup: int = 0
    t2_warmup: int = 0
    poe_loss: float = 0.0
    ema: float = 0.0
    balance_by: str | None = None
    balance_bins: int = 6
    balance_from: int = 0
    shared_pad: bool = False
    token_head: float = 0.0
    token_head_on: tuple[str, ...] = ("t2",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "token_head_on", tuple(self.token_head_on))
        get_task(self.task)
        if self.epochs < 1 or self.accumulation < 1:
            raise TrainError(f"epochs ({self.epochs}) and accumulation ({self.accumulation}) must be >= 1")
        if not 0 < self.min_lr <= self.lr:
            raise TrainError(f"need 0 < min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        if self.class_weights not in ("auto", "none", "balanced"):
            raise TrainError(f"class_weights must be auto, none or balanced, got {self.class_weights!r}")
        if self.epoch_end not in ("carry", "step"):
            raise TrainError(f"epoch_end must be carry or step, got {self.epoch_end!r}")
        if self.stop_after is not None and self.stop_after < 1:
            raise TrainError("stop_after must be >= 1")
        if self.save_dtype not in ("float32", "float16"):
            raise TrainError(f"save_dtype must be float32 or float16, got {self.save_dtype!r}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise TrainError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if not 0.0 <= self.single_loss < math.inf:
            raise TrainError(f"single_loss must be a finite weight >= 0, got {self.single_loss}")
        if not 0.0 <= self.poe_loss < math.inf:
            raise TrainError(f"poe_loss must be a finite weight >= 0, got {self.poe_loss}")
        if not 0.0 <= self.ema < 1.0:
            raise TrainError(f"ema must be a decay in [0, 1) (0 = off), got {self.ema}")
        if not 0 <= self.branch_warmup < self.epochs:
            raise TrainError(f"branch_warmup must be in [0, epochs={self.epochs}), got {self.branch_warmup}")
        if not 0 <= self.t2_warmup <= self.branch_warmup:
            raise TrainError(f"t2_warmup must be in [0, branch_warmup={self.branch_warmup}], got {self.t2_warmup}")
        if not 0.0 <= self.token_head < math.inf:
            raise TrainError(f"token_head must be a finite weight >= 0, got {self.token_head}")
        bad = [m for m in self.token_head_on if m not in ("dce", "dwi", "t2")]
        if bad or not self.token_head_on or len(set(self.token_head_on)) != len(self.token_head_on):
            raise TrainError("token_head_on must name distinct sequences among dce, dwi, t2, "
                             f"got {list(self.token_head_on)}")
        if self.balance_bins < 2:
            raise TrainError(f"balance_bins must be >= 2, got {self.balance_bins}")
        if not 0 <= self.balance_from < self.epochs:
            raise TrainError(f"balance_from must be in [0, epochs={self.epochs}), got {self.balance_from}")

    def balanced(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` draws its cases with the balanced sampler."""
        return self.balance_by is not None and epoch >= self.balance_from

    @property
    def task_spec(self) -> TaskSpec:
        return get_task(self.task)

    @property
    def weighted_loss(self) -> bool:
        if self.class_weights == "auto":
            return self.task_spec.weighted
        return self.class_weights == "balanced"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["token_head_on"] = list(self.token_head_on)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainOptions:
        kw = known_fields(cls, d, TrainError)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        if "token_head_on" in kw:
            kw["token_head_on"] = tuple(kw["token_head_on"])
        return cls(**kw)

    def resume_key(self) -> dict[str, Any]:
        """The fields that must agree between a run and the state it resumes (all but ``stop_after``)."""
        d = self.to_dict()
        d.pop("stop_after")
        # older states resume unchanged
        for name in ("modality_dropout", "single_loss", "branch_warmup", "poe_loss", "ema", "shared_pad", "t2_warmup"):
            if not d[name]:
                d.pop(name)
        if not d["token_head"]:
            d.pop("token_head")
            d.pop("token_head_on")
        if d["balance_by"] is None:
            for name in ("balance_by", "balance_bins", "balance_from"):
                d.pop(name)
        return d
