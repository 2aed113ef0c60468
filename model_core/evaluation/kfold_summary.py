"""k-fold summaries (the paper's five-fold TNBC and pCR tasks): mean +- sd over folds of the validation
AUROC that ``mome train --folds K --fold all`` records in ``cv_summary.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from model_core.errors import MomeError


def kfold_summary(cv_summary: str | os.PathLike[str], task: str = "") -> dict[str, Any]:
    """``{"task", "folds", "auroc": [per fold], "auroc_mean", "auroc_sd"}`` (sd with ``ddof=1``).

    Raises:
        MomeError: the file is not a ``cv_summary.json`` (no fold entries with ``best_val_auroc``).
    """
    path = Path(cv_summary)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MomeError(f"{path}: cannot read a k-fold summary ({exc})") from exc
    folds = sorted((v for v in doc.values() if isinstance(v, dict) and isinstance(v.get("fold"), int)
                    and isinstance(v.get("best_val_auroc"), int | float)), key=lambda v: v["fold"])
    if len(folds) < 2:
        raise MomeError(f"{path}: fewer than two folds with a 'best_val_auroc'")
    auc = np.array([float(v["best_val_auroc"]) for v in folds])
    return {"task": task or path.parent.name, "source": str(path), "folds": len(folds), "auroc": auc.tolist(),
            "auroc_mean": float(auc.mean()), "auroc_sd": float(auc.std(ddof=1))}
