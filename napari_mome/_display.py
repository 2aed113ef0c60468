"""What a Result looks like on screen, without Qt widgets: saliency layer tuples, the Shapley bar chart,
the subset table rows and the BI-RADS 4 recommendation in words.

Saliency maps are on their input's own grid (:class:`model_core.engine.result.Saliency`), so their layer
gets the same ``scale`` / ``translate`` (or ``affine``) as that input's image layer
(:func:`napari_mome._reader.volume_layer` makes both). Their colormap is transparent at its low end, so
only attributions above the contrast floor colour the anatomy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from model_core.engine.decision import decide
from model_core.engine.reference import NOT_USED
from model_core.engine.result import Result, Saliency
from model_core.engine.subsets import SUBSETS, subset_key
from model_core.studies.study import Volume
from napari_mome._reader import LayerData, volume_layer

SALIENCY_PREFIX = "saliency "
LABELS = {"dce": "DCE", "dwi": "DWI", "t2": "T2"}
DOWNGRADE_MEANING = (
    "'Downgrade' here means: the probability is below the threshold that kept every cancer of the "
    "calibration cohort at or above it, so a biopsy may be avoidable. Decision support only; the "
    "reader decides.")


def saliency_colormap(signed: bool) -> Any:
    """napari colormap: absolute = transparent -> red -> yellow; signed = blue <- transparent -> red."""
    from napari.utils.colormaps import Colormap

    if signed:
        return Colormap([[0.2, 0.4, 1, 0.9], [0.2, 0.4, 1, 0.5], [0, 0, 0, 0], [1, 0.2, 0.1, 0.5],
                         [1, 0.9, 0.1, 0.9]], controls=[0, 0.25, 0.5, 0.75, 1], name="mome_signed")
    return Colormap([[0, 0, 0, 0], [1, 0, 0, 0.6], [1, 1, 0, 0.9]], controls=[0, 0.5, 1], name="mome_abs")


def saliency_values(sal: Saliency, signed: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """Layer data ``(k, j, i)`` and contrast limits: signed symmetric about 0, or |saliency| from 0, both
    scaled to the 99.5th percentile of |saliency| (one hot voxel must not wash out the rest)."""
    data = sal.data if signed else np.abs(sal.data)
    top = float(np.percentile(np.abs(sal.data), 99.5)) or float(np.abs(sal.data).max()) or 1.0
    return data.transpose(2, 1, 0), ((-top, top) if signed else (0.0, top))


def saliency_layers(result: Result, signed: bool = False, opacity: float = 0.7) -> list[LayerData]:
    """One image layer tuple per saliency map, placed like the image of its input. Only the first (DCE when
    present) is visible at first: three overlays on one slice hide the anatomy."""
    out: list[LayerData] = []
    for mod, sal in result.saliency.items():
        _, kwargs, kind = volume_layer(Volume(sal.data, sal.affine, source="saliency"), SALIENCY_PREFIX + mod,
                                       role=None)
        data, limits = saliency_values(sal, signed)
        kwargs.update(colormap=saliency_colormap(signed), contrast_limits=limits, opacity=opacity,
                      blending="translucent", visible=not out)
        kwargs["metadata"].update(mome_output="saliency", modality=mod, reference=sal.reference)
        out.append((data, kwargs, kind))
    return out


def subset_rows(result: Result) -> list[tuple[str, str, str | None]]:
    """Rows ``(key, label, probability text or None when unavailable)`` for every subset, full first."""
    rows = []
    for sub in sorted(SUBSETS, key=len, reverse=True):
        key = subset_key(sub)
        p = result.subsets.get(key)
        label = " + ".join(LABELS[m] for m in sub) if sub else "none (prior)"
        rows.append((key, label, None if p is None else f"{p:.3f}"))
    return rows


UNUSED_NOTE = NOT_USED
"""Written beside the bar of a sequence the model card marks unused."""


def v_full_empty(result: Result) -> tuple[float, float]:
    """v(full) and the v(empty) the Shapley values were computed against (``shapley_check``; for older results
    without it, the CLS-only subset value)."""
    chk = result.shapley_check or {}
    if "v_full" in chk and "v_empty" in chk:
        return float(chk["v_full"]), float(chk["v_empty"])
    full = result.subsets[subset_key(result.modalities)]
    empty = result.subsets[subset_key(())]
    assert full is not None and empty is not None
    return float(full), float(empty)


def draw_shapley(ax: Any, result: Result) -> list[Any]:
    """Horizontal Shapley bars per sequence on ``ax``, titled ``v(empty) -> v(full)``; returns the bars."""
    mods = [m for m in LABELS if m in result.shapley]
    values = [float(result.shapley[m]) for m in mods]
    full, empty = v_full_empty(result)
    colors = ["#d9534f" if v >= 0 else "#4a90d9" for v in values]
    unused = result.unused_modalities or {}
    colors = ["#bbbbbb" if m in unused else c for m, c in zip(mods, colors, strict=True)]
    bars = ax.barh([LABELS[m] for m in mods], values, color=colors)
    lim = 1.45 * max([abs(v) for v in values] + [1e-3])  # room for the value labels on either side
    ax.set_xlim(-lim, lim)
    ax.axvline(0.0, color=ax.xaxis.label.get_color(), linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("Shapley value (probability points)")
    kind = (result.shapley_empty or {}).get("kind", "prior")
    what = "reference mean" if kind == "reference" else "prior"
    ax.set_title(f"{what} v(empty) {empty:.3f} \u2192 this study v(full) {full:.3f}", fontsize=9)
    for m, bar, v in zip(mods, bars, values, strict=True):
        y = bar.get_y() + bar.get_height() / 2
        ax.annotate(f"{v:+.3f}", (v, y), xytext=(3 if v >= 0 else -3, 0),
                    textcoords="offset points", va="center", ha="left" if v >= 0 else "right", fontsize=8)
        if m in unused:  # on the side of the axis away from the bar
            ax.annotate(UNUSED_NOTE, (0.0, y), xytext=(-4 if v >= 0 else 4, 0), textcoords="offset points",
                        va="center", ha="right" if v >= 0 else "left", fontsize=8, color="#999999")
    return list(bars)


def decision_for(result: Result, birads: str, threshold: Any) -> dict[str, Any]:
    """The Result's decision when the BI-RADS category is the one it ran with, else the rule applied again
    to its probability (no model call)."""
    if (result.decision.get("birads") or "") == (birads or ""):
        return result.decision
    return decide(result.probability, birads or None, threshold, result.tta.get("kind")).to_dict()


def decision_text(decision: Mapping[str, Any]) -> str:
    """The recommendation in words, with the threshold and where it came from."""
    lines = [f"BI-RADS {decision.get('birads') or '?'}: {decision['text']}"]
    thr = decision.get("threshold") or {}
    if decision.get("tau") is not None:
        lines.append(f"p = {decision['probability']:.3f} vs threshold \u03c4 = {decision['tau']:.3f} "
                     f"(from {thr.get('cohort') or 'the model card'}: {thr.get('n', '?')} BI-RADS 4 cases, "
                     f"{thr.get('n_malignant', '?')} malignant, sensitivity "
                     f"{100 * float(thr.get('sensitivity', 1.0)):.0f} %)")
    if decision.get("note"):
        lines.append(str(decision["note"]))
    if decision.get("status") in ("downgrade_candidate", "biopsy_supported"):
        lines.append(DOWNGRADE_MEANING)
    return "\n".join(lines)


def probability_text(result: Result) -> str:
    """Probability and class, with the TTA spread when TTA is on."""
    cls = "malignant" if result.predicted_malignant else "benign"
    text = f"P(malignant) = {result.probability:.3f} ({cls} at 0.5)"
    if result.tta.get("kind") != "none":
        text += f"; TTA {result.tta['n_versions']} versions, spread \u00b1{result.tta['std']:.3f}"
    return text


def present(result: Result) -> Iterable[str]:
    return [m for m in LABELS if m in result.modalities]
