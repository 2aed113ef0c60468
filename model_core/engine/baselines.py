"""Saliency baselines that mean "this study without its focal findings" (PRODUCT §5).

Integrated gradients explains ``F(x) - F(baseline)``; the baseline decides the question the map answers.
An all-zero canvas is an input the network never saw (the demo model scores it p = 0.98 malignant), so its
map explains the difference from an out-of-distribution image. The baselines here keep the study's own
breast and remove what is focal:

* ``"blur"`` (default): inside the breast region of each canvas, a Gaussian blur of the canvas restricted
  to the region (normalised convolution: ``G(x * r) / G(r)``, ``sigma`` in canvas voxels), so a lesion is
  smeared into the surrounding tissue while the breast's outline, its mean intensity and the enhancement
  curve's average shape stay; outside the region (masked air and chest, canvas padding) the baseline
  equals the input, so those voxels get no attribution.
* ``"tissue_mean"``: inside the region, the per-channel mean of the canvas over the region.
* ``"zeros"``: the all-zero canvas (the padding value); kept for comparison.

The breast region on the canvas is the preprocessing's breast mask put through the same resize and pad as
the image (:func:`canvas_regions`); without one (inputs given as ready canvases), the voxels where any
channel differs from both the padding value 0 and the canvas's masked-out background value.

Shapes: canvases ``(1, C, X, Y, Z)`` tensors; regions bool ``(X, Y, Z)`` arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from model_core.preprocessing.canvas import ResizeMethod
from model_core.preprocessing.tta import fit, tta_canvases

BASELINES = ("blur", "tissue_mean", "zeros")
DEFAULT_SIGMA = 6.0
"""Blur width in canvas voxels (demo canvases: ~2-3 mm voxels, so ~15 mm: wider than a phantom lesion)."""

DESCRIPTIONS = {
    "blur": "the study blurred within its breast region (Gaussian, sigma {sigma:g} canvas voxels): "
            "this study without its focal findings",
    "tissue_mean": "the study's mean intensity per channel within its breast region",
    "zeros": "zeros in standardised space (an input outside the training distribution)",
}


def describe(kind: str, sigma: float = DEFAULT_SIGMA) -> str:
    """The baseline in words (for the Result)."""
    return DESCRIPTIONS[kind].format(sigma=sigma)


def canvas_regions(prepared: Any, sizes: Mapping[str, Sequence[int]],
                   resize: ResizeMethod = "exact") -> dict[str, np.ndarray]:
    """The breast mask of each masked modality on the centred, unflipped canvas (bool ``(X, Y, Z)``).

    Args:
        prepared: a :class:`~model_core.preprocessing.preprocess.Prepared` (its ``masks``).
        sizes: the model's canvas sizes.
    """
    masks = {m: np.asarray(k, dtype=np.float32)[None] for m, k in getattr(prepared, "masks", {}).items()}
    if not masks:
        return {}
    tensors, _ = tta_canvases(fit(masks, sizes, resize), [(0, -1)])
    return {m: t[0, 0].numpy() > 0.5 for m, t in tensors.items()}


def content_region(x: torch.Tensor) -> np.ndarray:
    """Voxels of ``x (1, C, X, Y, Z)`` that are neither padding (all channels 0) nor the masked-out
    background (the most common non-zero value of channel 0)."""
    a = x[0].detach().cpu().numpy()
    c0 = a[0]
    nz = c0[c0 != 0]
    region = np.any(a != 0, axis=0)
    if nz.size:
        vals, counts = np.unique(nz, return_counts=True)
        region &= c0 != vals[counts.argmax()]
    return region  # type: ignore[no-any-return]


def make_baseline(x: torch.Tensor, kind: str = "blur", region: np.ndarray | None = None,
                  sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """The baseline of one canvas ``x (1, C, X, Y, Z)`` (same shape, dtype and device).

    Raises:
        ValueError: unknown ``kind`` or a region of the wrong shape.
    """
    if kind not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}")
    if kind == "zeros":
        return torch.zeros_like(x)
    r = content_region(x) if region is None else np.asarray(region, dtype=bool)
    if r.shape != tuple(x.shape[2:]):
        raise ValueError(f"region {r.shape} does not match the canvas {tuple(x.shape[2:])}")
    a = x[0].detach().cpu().numpy().astype(np.float64)
    out = a.copy()
    if r.any():
        rf = r.astype(np.float64)
        if kind == "tissue_mean":
            out[:, r] = a[:, r].mean(axis=1, keepdims=True)
        else:
            den = gaussian_filter(rf, sigma, mode="constant")
            for c in range(a.shape[0]):
                num = gaussian_filter(a[c] * rf, sigma, mode="constant")
                out[c][r] = num[r] / np.maximum(den[r], 1e-12)
    return torch.from_numpy(out[None]).to(device=x.device, dtype=x.dtype)


def baselines_for(inputs: Mapping[str, torch.Tensor], kind: str, regions: Mapping[str, np.ndarray] | None = None,
                  sigma: float = DEFAULT_SIGMA) -> dict[str, torch.Tensor]:
    """:func:`make_baseline` for every canvas (``regions``: modality -> region; missing: from the canvas)."""
    regions = regions or {}
    return {m: make_baseline(x, kind, regions.get(m), sigma) for m, x in inputs.items()}
