"""A geometric test study and the preprocessing benchmark (``mome bench`` wires :func:`bench_preprocess`).

:func:`synthetic_study` builds a simple two-breast body in world (RAS mm) coordinates and samples it on
independent, axis-aligned grids per sequence (different voxel sizes, matrices and origins), with a small
bright marker at a known world position in every sequence. It is a geometry fixture for the
preprocessing / canvas / inverse round trip and a paper-size load for the benchmark, not the phantom
world (``model_core.phantom``).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from model_core.network.config import MomeConfig
from model_core.preprocessing.preprocess import preprocess
from model_core.preprocessing.tta import center
from model_core.studies.study import Study, Volume

logger = logging.getLogger(__name__)

GridSpec = tuple[Sequence[int], Sequence[float], Sequence[float]]
"""``(shape, spacing mm, grid centre mm)`` of one sequence."""


def grid_affine(shape: Sequence[int], spacing: Sequence[float], centre_mm: Sequence[float]) -> np.ndarray:
    """Axis-aligned RAS+ affine whose voxel grid of ``shape`` is centred on ``centre_mm``."""
    a = np.diag([*map(float, spacing), 1.0])
    a[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - a[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return a


def _axes_mm(shape: Sequence[int], affine: np.ndarray) -> list[np.ndarray]:
    return [(affine[a, a] * np.arange(shape[a]) + affine[a, 3]).astype(np.float32) for a in range(3)]


def _anatomy(shape: Sequence[int], affine: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """``(tissue float32 0/1, gland-ish texture float32)`` of the body + two breasts at scale ``s``."""
    x, y, z = _axes_mm(shape, affine)
    body2d = ((x[:, None] / (150 * s)) ** 2 + ((y[None, :] + 70 * s) / (75 * s)) ** 2) <= 1.0
    tissue = np.broadcast_to(body2d[:, :, None], tuple(shape)).astype(np.float32)
    for cx in (-70 * s, 70 * s):
        bx = ((x - cx) / (55 * s)) ** 2
        by = np.where(y >= 5 * s, ((y - 5 * s) / (65 * s)) ** 2, 0.0).astype(np.float32)
        bz = (z / (60 * s)) ** 2
        # a hemi-ellipsoid in front of the chest, flattened behind y = 5s
        breast = (bx[:, None, None] + by[None, :, None] + bz[None, None, :]) <= 1.0
        breast &= (y >= 0)[None, :, None]
        np.maximum(tissue, breast, out=tissue)
    texture = (0.5 + 0.5 * np.cos(x / 7.0)[:, None, None] * np.sin(y / 5.0)[None, :, None]).astype(np.float32)
    return tissue, texture


def _blob(shape: Sequence[int], affine: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    x, y, z = _axes_mm(shape, affine)
    gx, gy, gz = (np.exp(-0.5 * ((v - c) / sigma) ** 2) for v, c in zip((x, y, z), centre, strict=True))
    return (gx[:, None, None] * gy[None, :, None] * gz[None, None, :]).astype(np.float32)


def synthetic_study(
    *,
    scale: float = 1.0,
    dce: GridSpec | None = ((448, 448, 160), (0.75, 0.75, 1.1), (0, 10, 0)),
    n_post: int = 6,
    dwi: GridSpec | None = ((224, 224, 40), (1.5, 1.5, 4.0), (2, 8, -3)),
    t2: GridSpec | None = ((448, 448, 40), (0.75, 0.75, 4.0), (-1, 12, 2)),
    t1: GridSpec | None = None,
    marker_mm: Sequence[float] | None = None,
    marker_sigma_mm: float = 3.0,
    noise: float = 2.0,
    seed: int = 0,
) -> Study:
    """A two-breast study; each sequence given as ``(shape, spacing mm, grid centre mm)`` or ``None``.

    The anatomy (body ellipse, breasts centred at x = +-70*scale mm, protruding to y = 70*scale mm) scales
    with ``scale``. ``marker_mm`` (default ``(-78, 35, 10) * scale``) is a Gaussian blob that enhances on
    DCE, is bright on high-b DWI and on T2. Intensities: tissue ~100, air ~0, Gaussian noise ``noise``.
    """
    rng = np.random.default_rng(seed)
    marker = np.asarray(marker_mm if marker_mm is not None else np.array([-78.0, 35.0, 10.0]) * scale)

    def base(spec: Any, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        shape, spacing, centre = spec
        aff = grid_affine(shape, spacing, centre)
        tissue, texture = _anatomy(shape, aff, scale)
        img = tissue * (level * (0.8 + 0.4 * texture))
        return img, aff, tissue, _blob(shape, aff, marker, marker_sigma_mm)

    def noisy(img: np.ndarray) -> np.ndarray:
        out = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
        return out.astype(np.float32, copy=False)

    study = Study(study_id="synthetic")
    if dce is not None:
        img, aff, tissue, blob = base(dce, 100.0)
        curve = [1.0, 1.6, 1.8, 1.7, 1.6, 1.5, 1.45, 1.4][:n_post]
        vols = [Volume(noisy(img), aff, "synthetic", {"phase": 0})]
        for k, c in enumerate(curve):
            post = img * np.float32(1.0 + 0.05 * (k + 1)) + blob * np.float32(150.0 * c)
            vols.append(Volume(noisy(post), aff, "synthetic", {"phase": k + 1}))
        study.dce = vols
    if dwi is not None:
        img, aff, tissue, blob = base(dwi, 100.0)
        study.dwi = {
            0.0: Volume(noisy(img), aff, "synthetic", {"b": 0}),
            800.0: Volume(
                noisy(img * np.float32(0.3) + blob * np.float32(120.0)), aff, "synthetic", {"b": 800}
            ),
        }
    if t2 is not None:
        img, aff, tissue, blob = base(t2, 80.0)
        study.t2 = Volume(noisy(img + blob * np.float32(150.0)), aff, "synthetic")
    if t1 is not None:
        img, aff, _, _ = base(t1, 120.0)
        study.t1 = Volume(noisy(img), aff, "synthetic")
    study.clinical.extra["marker_mm"] = [float(v) for v in marker]
    return study


def bench_preprocess(repeats: int = 3, sizes: Any = None, study: Study | None = None) -> dict[str, Any]:
    """Time preprocessing of a paper-size study (median of ``repeats`` runs, >= 3 recommended).

    Study: DCE pre + 6 post 448x448x160 (0.75 x 0.75 x 1.1 mm), DWI b0/b800 224x224x40, T2 448x448x40;
    canvases from ``sizes`` (default ``MomeConfig().sizes``, the paper's). Timed: :func:`preprocess`
    (mask, crop, subtraction, standardisation, T2 resampling) and the centred canvas with the exact
    (scipy) and the fast resize backends.

    Returns:
        JSON-able dict: median seconds per stage, ``total_exact``/``total_fast`` (preprocess + canvas,
        wall) and ``cpu_total_*`` (process CPU seconds), the load average, shapes, and the runs.
    """
    if sizes is None:
        sizes = MomeConfig().sizes
    if study is None:
        study = synthetic_study()
    runs: list[dict[str, float]] = []
    shapes: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        c0, t0 = time.process_time(), time.perf_counter()
        prep = preprocess(study, sizes)
        c1, t1 = time.process_time(), time.perf_counter()
        canv = center(prep, sizes, method="exact")
        c2, t2 = time.process_time(), time.perf_counter()
        center(prep, sizes, method="fast")
        c3, t3 = time.process_time(), time.perf_counter()
        run = {f"prep_{k}": v for k, v in prep.timings.items()}
        run.update(preprocess=t1 - t0, canvas_exact=t2 - t1, canvas_fast=t3 - t2)
        run.update(total_exact=t2 - t0, total_fast=(t1 - t0) + (t3 - t2))
        # CPU seconds of this process: close to the wall time of a calm machine for this mostly
        # single-threaded work, and far less sensitive to other jobs sharing the cores
        run.update(cpu_total_exact=c2 - c0, cpu_total_fast=(c1 - c0) + (c3 - c2))
        runs.append(run)
        shapes = {
            m: {"prepared": list(prep.arrays[m].shape), "ratio": canv[m][1].ratio} for m in prep.modalities
        }
        del prep, canv
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    native = {
        "dce": [len(study.dce or []), *(study.dce[0].spatial_shape if study.dce else ())],
        "dwi": {f"{b:g}": list(v.spatial_shape) for b, v in study.dwi.items()},
        "t2": list(study.t2.spatial_shape) if study.t2 is not None else None,
    }
    result = {
        "median_s": med,
        "repeats": len(runs),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(),
        "native": native,
        "shapes": shapes,
        "runs": runs,
    }
    logger.info("preprocess bench: %s", {k: round(v, 3) for k, v in med.items()})
    return result
