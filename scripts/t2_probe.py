"""Probe: can the demo network learn T2 alone, and does a token-level auxiliary head help?

An experiment behind docs/demo_world_v2.md, not part of the product. It trains the demo preset from scratch
(xavier init, Adam, batch 1, random pad + flip as in ``mome train``) on the T2 canvases of ``v2`` phantom
cohorts, with T2 as the only input, in two arms from the same seed:

* ``plain``: cross-entropy of ``model(t2=x)``, the MOME output with T2 alone;
* ``aux``: the same plus ``W x`` the cross-entropy of a training-only head (layer norm + linear, outside the
  MOME network) on the per-token maximum of the T2 segment that :meth:`Mome.encode` returns, so that the
  T2 branch is told that one place in the image decides.

After every epoch it logs the training loss and, on the test cohort, the AUROC and log-odds spread of the
MOME T2-alone output (and of the auxiliary head). Usage::

    .venv/bin/mome phantom --world v2 --n 400 --site ds1 --seed 1001 --out runs/probe/train --formats nifti
    .venv/bin/mome phantom --world v2 --n 150 --site ds1 --seed 3101 --out runs/probe/test --formats nifti
    .venv/bin/python scripts/t2_probe.py --train runs/probe/train/cohort.csv --test runs/probe/test/cohort.csv \
        --cache runs/probe/cache --epochs 3 --json runs/probe/probe.json

Synthetic phantoms only; the figures say nothing about patients.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model_core.evaluation.cases import CaseCache, CaseDataset, read_cohort
from model_core.evaluation.cohort import get_task
from model_core.evaluation.evaluate_model import logit_sd
from model_core.evaluation.metrics import auroc
from model_core.network.config import MomeConfig
from model_core.preprocessing.preprocess import PreprocessOptions
from model_core.train.options import InitSpec
from model_core.train.recipe import build_model

log = logging.getLogger("t2_probe")


class TokenHead(nn.Module):
    """Training-only head: class logits ``(B, 2)`` from the per-feature maximum over tokens ``(B, N, D)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(tokens.amax(dim=1)))


@torch.no_grad()
def score(model: nn.Module, head: TokenHead | None, ds: CaseDataset) -> dict[str, Any]:
    """T2-alone AUROC and log-odds spread of the MOME output (and of the head) on centred inputs."""
    model.eval()
    p_model, p_head = [], []
    for i in range(len(ds)):
        t2 = ds.eval_item(i, ("t2",))["t2"]
        segs = model.encode(None, None, t2)
        p_model.append(torch.softmax(model.fuse(segs), -1)[0, 1].item())
        if head is not None:
            p_head.append(torch.softmax(head(segs[2]), -1)[0, 1].item())
    model.train()
    y = ds.labels
    out = {"t2_auroc": auroc(y, np.array(p_model)), "t2_logit_sd": logit_sd(np.array(p_model))}
    if head is not None:
        out["head_auroc"] = auroc(y, np.array(p_head))
    return out


def run_arm(arm: str, train: CaseDataset, test: CaseDataset, epochs: int, weight: float, lr: float,
            seed: int) -> list[dict[str, Any]]:
    model, _ = build_model(MomeConfig.preset("demo"), InitSpec(scheme="xavier"), seed=seed)
    head = TokenHead(model.cfg.embed_dim) if arm == "aux" else None
    params = [p for p in model.parameters() if p.requires_grad]
    if head is not None:
        params += list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=0.0)
    history = []
    model.train()
    for epoch in range(epochs):
        rng = np.random.default_rng([seed, epoch])
        losses = []
        for i in rng.permutation(len(train)):
            inputs, target = train.train_item(int(i), rng, shared_pad=True)
            segs = model.encode(None, None, inputs["t2"])
            loss = F.cross_entropy(model.fuse(segs), target)
            if head is not None:
                loss = loss + weight * F.cross_entropy(head(segs[2]), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        row = {"arm": arm, "epoch": epoch + 1, "train_loss": float(np.mean(losses)), **score(model, head, test)}
        log.info("%s", json.dumps(row))
        history.append(row)
    return history


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="training cohort CSV (v2 world)")
    ap.add_argument("--test", required=True, help="test cohort CSV (v2 world)")
    ap.add_argument("--cache", required=True, help="preprocessing cache folder")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--weight", type=float, default=1.0, help="weight of the token head's loss (aux arm)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", nargs="+", default=["plain", "aux"], choices=["plain", "aux"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the per-epoch rows here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    task = get_task("malignancy")
    cfg = MomeConfig.preset("demo")
    cache = CaseCache(args.cache, cfg.sizes, PreprocessOptions(crop=("dce", "dwi", "t2")))
    train_cases, test_cases = read_cohort(args.train, task), read_cohort(args.test, task)
    cache.ensure([*train_cases, *test_cases], workers=2, progress=False)
    train, test = CaseDataset(train_cases, cache), CaseDataset(test_cases, cache)
    rows = [r for arm in args.arms for r in run_arm(arm, train, test, args.epochs, args.weight, args.lr, args.seed)]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
