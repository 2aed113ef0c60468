"""Export of one analysis: ``result.json``, ``saliency_<modality>.nii.gz`` (each with its input's affine)
and a one-page report (PNG and PDF) drawn with matplotlib's Agg backend (no Qt).

The report holds the banners, the model card line, the probability, the BI-RADS 4 recommendation, the
Shapley bars and, per sequence, the axial slice through the saliency peak of its input with the saliency
over it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from model_core.engine.result import Result
from model_core.studies.study import Volume
from napari_mome._display import LABELS, decision_text, draw_shapley, probability_text

log = logging.getLogger(__name__)

REPORT_NAME = "report"


def export_all(result: Result, out_dir: str | os.PathLike[str], images: Mapping[str, Volume],
               banners: Sequence[str], card_line: str, decision: Mapping[str, object]) -> dict[str, Path]:
    """Write the result files and the report into ``out_dir``; returns every path written.

    Args:
        images: modality -> the input volume its saliency lies on (for the report's slices).
        banners: the notices shown in the widget (research use, demo model).
        decision: the recommendation shown (it may differ from ``result.decision`` when the user changed
            the BI-RADS category after the Run).
    """
    out = Path(out_dir)
    paths = result.write(out)
    paths.update(write_report(result, out, images, banners, card_line, decision))
    log.info("exported %s", ", ".join(sorted(p.name for p in paths.values())))
    return paths


def write_report(result: Result, out: Path, images: Mapping[str, Volume], banners: Sequence[str],
                 card_line: str, decision: Mapping[str, object]) -> dict[str, Path]:
    """``report.png`` and ``report.pdf`` (A4 portrait)."""
    from matplotlib.figure import Figure

    mods = [m for m in LABELS if m in result.saliency and m in images]
    fig = Figure(figsize=(8.27, 11.69))
    grid = fig.add_gridspec(4, max(len(mods), 1), height_ratios=[1.3, 1.6, 1.2, 0.9])
    head = fig.add_subplot(grid[0, :])
    head.axis("off")
    text = "\n".join([*banners, card_line, "", probability_text(result)])
    head.text(0.0, 1.0, text, va="top", ha="left", fontsize=9, wrap=True)
    for col, mod in enumerate(mods):
        ax = fig.add_subplot(grid[1, col])
        _slice_panel(ax, images[mod], result.saliency[mod].data, LABELS[mod])
    draw_shapley(fig.add_subplot(grid[2, :]), result)
    foot = fig.add_subplot(grid[3, :])
    foot.axis("off")
    foot.text(0.0, 1.0, decision_text(decision), va="top", ha="left", fontsize=8, wrap=True)
    fig.tight_layout()
    paths = {}
    for ext in ("png", "pdf"):
        paths[f"report_{ext}"] = out / f"{REPORT_NAME}.{ext}"
        fig.savefig(paths[f"report_{ext}"], dpi=110)
    return paths


def _slice_panel(ax: object, image: Volume, saliency: np.ndarray, title: str) -> None:
    """The axial slice (k) through the |saliency| peak: image in grey, saliency in red-yellow above it."""
    k = int(np.unravel_index(int(np.argmax(np.abs(saliency))), saliency.shape)[2])
    img = np.asarray(image.data[:, :, k], dtype=np.float64).T[::-1, ::-1]
    sal = np.abs(np.asarray(saliency[:, :, k], dtype=np.float64)).T[::-1, ::-1]
    lo, hi = np.percentile(img, (0.5, 99.5))
    top = float(np.percentile(np.abs(saliency), 99.5)) or 1.0
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)  # type: ignore[attr-defined]
    ax.imshow(np.ma.masked_less(sal, 0.2 * top), cmap="hot", vmin=0, vmax=top, alpha=0.6)  # type: ignore[attr-defined]
    ax.set_title(f"{title} saliency (slice {k})", fontsize=8)  # type: ignore[attr-defined]
    ax.axis("off")  # type: ignore[attr-defined]
