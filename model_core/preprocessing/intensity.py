"""Intensity steps of preprocessing: DCE phase interpolation and standardisation (z-score).

Arrays are float32 ``(C, X, Y, Z)``; these functions never change geometry. See
:mod:`model_core.preprocessing.preprocess` for where they are used and why the defaults are what they are.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import scipy.ndimage as ndi

from model_core.errors import BudgetError, PreprocessError

logger = logging.getLogger(__name__)

DCE_PHASES = 6
"""Phases the model expects (DCE subtraction images, channel axis)."""


def phase_weights(n_in: int, n_out: int = DCE_PHASES) -> np.ndarray:
    """``(n_out, n_in)`` float64 weights of ``scipy.ndimage.zoom(order=1, mode='grid-constant')`` along
    the phase axis (``grid_mode=False``): output phase k = sum_j W[k, j] * input phase j."""
    w = ndi.zoom(np.eye(n_in), (n_out / n_in, 1.0), order=1, mode="grid-constant")
    if w.shape != (n_out, n_in):
        raise PreprocessError(f"cannot interpolate {n_in} phases to {n_out}")
    return w


MAX_PHASE_BYTES = int(os.environ.get("MOME_MAX_PHASE_BYTES", 6 << 30))
"""Most bytes the DCE subtraction images and their phase interpolation may take together (default 6 GiB);
env ``MOME_MAX_PHASE_BYTES`` raises it."""


def check_phase_budget(n_in: int, n_out: int, shape: tuple[int, ...]) -> int:
    """Bytes the DCE subtraction (``n_in`` images) and interpolation (``n_out``) need on the crop ``shape``.

    Raises:
        BudgetError: above :data:`MAX_PHASE_BYTES`, before anything is allocated.
    """
    need = (n_in + (n_out if n_in != n_out else 0)) * math.prod(shape) * 4
    if need > MAX_PHASE_BYTES:
        raise BudgetError(
            f"DCE: {n_in} subtraction image(s) interpolated to {n_out} phases on a {tuple(shape)} crop need "
            f"{need / 2**30:.1f} GiB, above the limit of {MAX_PHASE_BYTES / 2**30:.1f} GiB; set "
            "MOME_MAX_PHASE_BYTES to raise it"
        )
    return need


def interpolate_phases(x: np.ndarray, n_out: int = DCE_PHASES) -> np.ndarray:
    """``(n, X, Y, Z)`` -> ``(n_out, X, Y, Z)`` float32 along axis 0 (see :func:`phase_weights`).
    Returns ``x`` itself when ``n == n_out``."""
    n = x.shape[0]
    if n == n_out:
        return x
    w = phase_weights(n, n_out).astype(np.float32)
    out = np.tensordot(w, x.reshape(n, -1), axes=(1, 0)).reshape((n_out, *x.shape[1:]))
    return out.astype(np.float32, copy=False)


def _moments(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of all values of ``x`` (float64 accumulation, chunked, no big copies)."""
    flat = x.reshape(-1)
    n = flat.size
    if n == 0:
        return 0.0, 0.0
    mean = float(np.add.reduce(flat, dtype=np.float64)) / n
    ss = 0.0
    step = 1 << 22
    m32 = np.float32(mean)
    for i in range(0, n, step):
        d = flat[i : i + step] - m32
        d *= d
        ss += float(np.add.reduce(d, dtype=np.float64))
    return mean, float(np.sqrt(ss / n))


def standardize(
    x: np.ndarray, mode: str = "volume", mask: np.ndarray | None = None, inplace: bool = False
) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
    """Zero mean, unit variance for ``x (C, X, Y, Z)``.

    Args:
        mode: ``"volume"`` (one mean/std over all channels) or ``"channel"``.
        mask: optional bool ``(X, Y, Z)``: statistics from voxels inside it; voxels outside become 0.
        inplace: write into ``x`` (only for arrays the caller owns).

    Returns:
        ``(float32 array, means, stds)``. Raises :class:`PreprocessError` on NaN/Inf.
    """
    groups = [slice(None)] if mode == "volume" else [slice(c, c + 1) for c in range(x.shape[0])]
    out = x if inplace else np.empty(x.shape, dtype=np.float32)
    means, stds = [], []
    for g in groups:
        part = x[g]
        mean, std = _moments(part[:, mask] if mask is not None else part)
        if not (np.isfinite(mean) and np.isfinite(std)):
            raise PreprocessError("image contains NaN or Inf values")
        if std <= 1e-12 * max(1.0, abs(mean)):
            logger.warning("constant image region: standardised to zeros")
            std = 1.0
        np.subtract(part, np.float32(mean), out=out[g], casting="same_kind")
        out[g] *= np.float32(1.0 / std)
        means.append(mean)
        stds.append(std)
    if mask is not None:
        out[:, ~mask] = 0.0
    return out, tuple(means), tuple(stds)
