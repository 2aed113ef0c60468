"""Hand-crafted lesion features, computed from a study's images and the true lesion mask.

They check that each sequence carries some, but not all, of the diagnostic evidence (see
:mod:`model_core.evaluation.separability`). Every feature is oriented so that higher = more suspicious.

The mask lives on the DCE grid; for DWI and T2 it is resampled (trilinear) at each voxel centre mapped
through the affines (world space), giving a partial-volume weight per voxel.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_erosion, map_coordinates

from model_core.studies.study import Study, Volume

FEATURES: dict[str, str] = {
    "dce_washout": "dce",  # -(late - early) / early lesion enhancement
    "dce_initial_rise": "dce",  # first post-contrast enhancement / pre-contrast signal
    "dce_irregularity": "dce",  # mask surface / volume^(2/3), normalised to a sphere
    "dce_rim": "dce",  # shell / core enhancement ratio
    "dwi_low_adc": "dwi",  # -ADC from b0 and the highest b (1e-3 mm^2/s)
    "t2_dark": "t2",  # -log(lesion T2 / median breast T2)
}


def mask_weights(mask: Volume, target: Volume) -> np.ndarray:
    """The DCE-grid ``mask`` resampled at ``target``'s voxel centres (world space).

    Returns:
        float32 ``(I, J, K)`` of ``target``, values in [0, 1] (trilinear partial-volume weights).
    """
    shape = target.spatial_shape
    m2t = np.linalg.inv(mask.affine) @ target.affine
    box = _box(mask, target)
    out = np.zeros(shape, dtype=np.float32)
    if box is None:
        return out
    idx = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij")).reshape(3, -1)
    src = m2t[:3, :3] @ idx + m2t[:3, 3:4]
    vals = map_coordinates(mask.data.astype(np.float32), src, order=1, mode="constant", cval=0.0)
    out[box] = vals.reshape([s.stop - s.start for s in box])
    return out


def _box(mask: Volume, target: Volume) -> tuple[slice, ...] | None:
    """Index box of ``target`` covering the mask's non-zero voxels (plus one voxel)."""
    nz = np.argwhere(mask.data > 0)
    if nz.size == 0:
        return None
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    lo, hi = nz.min(0) - 1, nz.max(0) + 1
    pts = lo + corners * (hi - lo)
    t = np.linalg.inv(target.affine) @ mask.affine @ np.c_[pts, np.ones(8)].T
    tlo = np.clip(np.floor(t[:3].min(1)) - 1, 0, None).astype(int)
    thi = np.minimum(np.ceil(t[:3].max(1)) + 2, target.spatial_shape).astype(int)
    if np.any(thi <= tlo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(tlo, thi, strict=True))


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float((x * w).sum() / max(float(w.sum()), 1e-6))


def lesion_weights(mask: Volume, target: Volume, power: float = 2.0) -> np.ndarray:
    """Weights on ``target`` emphasising voxels fully inside the lesion: ``mask_weights ** power``.

    A lesion smaller than ``target``'s voxels may miss every voxel centre; then the voxel nearest to
    the mask's world centroid gets weight 1.
    """
    w = mask_weights(mask, target)
    if float(w.max()) < 0.25 and (mask.data > 0).any():
        centre = mask.affine[:3, :3] @ np.argwhere(mask.data > 0).mean(0) + mask.affine[:3, 3]
        ijk = np.round(np.linalg.inv(target.affine) @ np.r_[centre, 1.0])[:3].astype(int)
        ijk = np.clip(ijk, 0, np.asarray(target.spatial_shape) - 1)
        w[tuple(ijk)] = 1.0
    return w**power


def lesion_features(study: Study, mask: Volume, times_s: tuple[float, ...] | None = None) -> dict[str, float]:
    """All :data:`FEATURES` of one study (``mask`` on the DCE grid). NaN where a sequence is missing."""
    out = {k: float("nan") for k in FEATURES}
    m = mask.data > 0.5
    if study.dce and m.any():
        pre = study.dce[0].data
        posts = [v.data for v in study.dce[1:]]
        times = times_s or tuple(
            float(v.meta.get("time_s", 60.0 * (i + 1))) for i, v in enumerate(study.dce[1:])
        )
        early = int(np.argmin(np.abs(np.asarray(times) - 120.0)))
        enh = [float((p - pre)[m].mean()) for p in posts]
        out["dce_washout"] = -(enh[-1] - enh[early]) / max(abs(enh[early]), 1e-3)
        out["dce_initial_rise"] = enh[0] / max(float(pre[m].mean()), 1e-3)
        core = binary_erosion(m, iterations=1)
        surface = int(m.sum() - core.sum())
        out["dce_irregularity"] = surface / (4.836 * float(m.sum()) ** (2.0 / 3.0))
        inner = binary_erosion(m, iterations=2) if core.sum() > 8 else core
        shell = m & ~inner
        if inner.any() and shell.any():
            sub = posts[early] - pre
            out["dce_rim"] = float(sub[shell].mean() / max(float(sub[inner].mean()), 1e-3))
        else:
            out["dce_rim"] = 1.0
    if len(study.dwi) >= 2:
        b_lo, b_hi = min(study.dwi), max(study.dwi)
        w = lesion_weights(mask, study.dwi[b_hi])
        s0, sb = _wmean(study.dwi[b_lo].data, w), _wmean(study.dwi[b_hi].data, w)
        out["dwi_low_adc"] = -np.log(max(s0, 1e-6) / max(sb, 1e-6)) / ((b_hi - b_lo) * 1e-3)
    if study.t2 is not None:
        t2 = study.t2.data
        w = lesion_weights(mask, study.t2)
        tissue = t2[t2 > 0.2 * np.percentile(t2, 99)]
        out["t2_dark"] = -float(np.log(max(_wmean(t2, w), 1e-6) / max(float(np.median(tissue)), 1e-6)))
    return out
