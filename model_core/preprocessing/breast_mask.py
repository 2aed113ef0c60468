"""A robust, simple 3-D breast mask (paper "Data preprocessing").

The paper builds 2-D breast masks per slice from T1 (boundaries + morphology, after Zhou et al.), stacks
them and smooths the stack with a 3-D Gaussian (gamma = 20, unit unstated); the mask crops the scans
and masks out air and chest. No code exists, so this is our documented version. All work happens on a
coarse *working grid* (the source volume down-sampled to about ``working_spacing_mm``; never
up-sampled), which makes it cheap; the mask is then brought to any other grid through world (RAS mm)
coordinates, so volumes with different grids and fields of view share one mask.

Steps (:func:`compute_breast_mask`):

1. Source: T1 if present, else the pre-contrast DCE, else T2, else the maximum over DCE subtraction
   phases, else the lowest-b DWI (:func:`choose_mask_source`). Down-sample (linear), denoise (Gaussian,
   1 working voxel).
2. Foreground = intensity > ``threshold_scale`` x the air/tissue threshold: the smaller of Otsu's
   threshold on the intensities and on their logarithm (:func:`body_threshold`; robust to a bright
   class such as implants or enhancing glands dominating a linear histogram).
3. Per axial slice: fill holes, then a 2-D opening (radius ``opening_radius_mm``) to cut thin bridges.
4. Keep the 3-D connected components at least ``min_component_fraction`` of the largest (body/breasts).
5. Chest removal (``remove_chest``): along the anterior-posterior axis (from the affine), find the
   anterior skin surface per (lateral, slice) column. Over the central 20 % of the body's lateral extent
   (the cleavage/sternum), its most posterior point per slice is the "valley"; the breasts must protrude
   at least ``min_protrusion_mm`` in front of it. The median valley over slices, moved back by
   ``chest_margin_mm``, is a coronal cut plane; everything posterior of it is dropped. When no valley
   is found (a single breast, or the chest is outside the field of view) nothing is cut.
6. 3-D Gaussian smoothing (sigma ``smooth_sigma_mm``) of the binary mask, thresholded at
   ``smooth_level`` (levels below 0.5 grow the mask slightly, keeping skin and nipple).

An empty result (e.g. a constant image) falls back to the whole field of view, with a warning and
``BreastMask.fallback`` set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from model_core.errors import PreprocessError
from model_core.studies.geometry import AxisMap, spacing_of, zoom_linear
from model_core.studies.study import Study, Volume

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskOptions:
    """Breast-mask parameters (see the module docstring for the steps they control)."""

    working_spacing_mm: float = 2.5
    threshold_scale: float = 0.5
    opening_radius_mm: float = 2.0
    min_component_fraction: float = 0.1
    remove_chest: bool = True
    chest_margin_mm: float = 15.0
    min_protrusion_mm: float = 15.0
    smooth_sigma_mm: float = 5.0
    smooth_level: float = 0.35

    def __post_init__(self) -> None:
        if self.working_spacing_mm <= 0 or self.threshold_scale <= 0 or not 0 < self.smooth_level < 1:
            raise PreprocessError(f"invalid mask options: {self}")


@dataclass(frozen=True, eq=False)
class BreastMask:
    """A breast mask on its own coarse working grid.

    Attributes:
        mask: bool ``(X, Y, Z)`` on the working grid.
        affine: 4x4 working-grid voxel -> RAS mm.
        source: which image it was computed from (``"t1"``, ``"dce_pre"``, ``"t2"``, ...).
        threshold: the intensity threshold used (source units).
        info: JSON-serialisable details (Otsu value, chest cut, fallback reason, ...).
    """

    mask: np.ndarray
    affine: np.ndarray
    source: str
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def fallback(self) -> str | None:
        """Why the mask is the whole field of view, or ``None`` when it was computed normally."""
        return self.info.get("fallback")

    def on_grid(
        self, affine: np.ndarray, shape: Sequence[int], start: Sequence[int] = (0, 0, 0)
    ) -> np.ndarray:
        """The mask sampled (nearest neighbour, via world mm) on the grid ``affine`` at voxels
        ``start + (0..shape-1)``. Returns bool ``shape``; outside the working grid is False."""
        m = np.linalg.inv(self.affine) @ np.asarray(affine, dtype=np.float64) @ AxisMap.shift(start).matrix()
        lin = m[:3, :3]
        if np.allclose(lin, np.diag(np.diag(lin)), atol=1e-6 * np.abs(lin).max()):
            idx, ok = [], []
            for a in range(3):
                c = np.rint(lin[a, a] * np.arange(shape[a]) + m[a, 3]).astype(np.intp)
                valid = (c >= 0) & (c < self.mask.shape[a])
                idx.append(np.clip(c, 0, self.mask.shape[a] - 1))
                ok.append(valid)
            out = self.mask[np.ix_(*idx)]
            out &= ok[0][:, None, None] & ok[1][None, :, None] & ok[2][None, None, :]
            return out
        sampled = ndi.affine_transform(
            self.mask.astype(np.uint8), m, output_shape=tuple(int(s) for s in shape), order=0, cval=0
        )
        return sampled.astype(bool)

    def crop_box(
        self, affine: np.ndarray, shape: Sequence[int], margin_mm: float = 0.0
    ) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """``(start, stop)`` voxel box on the grid ``(affine, shape)`` covering the mask plus ``margin_mm``,
        clipped to the grid; ``None`` when the mask does not overlap that grid."""
        others = ((1, 2), (0, 2), (0, 1))
        nz = [np.nonzero(np.any(self.mask, axis=ax))[0] for ax in others]
        if any(len(v) == 0 for v in nz):
            return None
        lo = [v[0] - 0.5 for v in nz]
        hi = [v[-1] + 0.5 for v in nz]
        corners = np.array(
            [[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        tgt = (np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ self.affine @ corners.T).T[:, :3]
        margin = np.ceil(margin_mm / spacing_of(affine) - 1e-9).astype(int)
        start = np.floor(tgt.min(axis=0) + 0.5).astype(int) - margin
        stop = np.ceil(tgt.max(axis=0) - 0.5).astype(int) + 1 + margin
        start = np.clip(start, 0, shape)
        stop = np.clip(stop, 0, shape)
        if np.any(stop <= start):
            return None
        return tuple(int(v) for v in start), tuple(int(v) for v in stop)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Metadata (not the voxels): shape, affine, source, threshold, voxel count and details."""
        return {
            "shape": list(self.mask.shape),
            "affine": np.asarray(self.affine).tolist(),
            "source": self.source,
            "threshold": float(self.threshold),
            "voxels": int(self.mask.sum()),
            "info": dict(self.info),
        }


def choose_mask_source(study: Study) -> tuple[str, list[Volume]]:
    """The image(s) the mask is computed from; several volumes (same grid) are combined by maximum."""
    if study.t1 is not None:
        return "t1", [study.t1]
    if study.dce and not study.dce_is_subtraction:
        return "dce_pre", [study.dce[0]]
    if study.t2 is not None:
        return "t2", [study.t2]
    if study.dce:
        return "dce_sub_max", list(study.dce)
    if study.dwi:
        b = min(study.dwi)
        return f"dwi_b{b:g}", [study.dwi[b]]
    raise PreprocessError("no image to compute a breast mask from")


def working_grid(volume: Volume, spacing_mm: float) -> tuple[tuple[int, int, int], AxisMap]:
    """Shape of the coarse grid and its map (working index -> source index), corner-aligned."""
    shape = volume.spatial_shape
    sp = spacing_of(volume.affine)
    out = tuple(max(1, int(round(n * min(1.0, s / spacing_mm)))) for n, s in zip(shape, sp, strict=True))
    return out, AxisMap.corner_zoom(shape, out)  # type: ignore[return-value]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of finite ``values`` (histogram between the minimum and the 99.9th percentile)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise PreprocessError("breast mask: the source image has no finite values")
    lo, hi = float(v.min()), float(np.percentile(v, 99.9))
    if hi <= lo:
        return lo
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def body_threshold(values: np.ndarray) -> float:
    """Air/tissue threshold: the smaller of Otsu on the intensities and Otsu on log intensities.

    Linear Otsu alone splits off whatever is brightest (e.g. silicone implants, or glandular tissue on a
    fat-suppressed image) when that class dominates the variance; on log intensities bright outliers are
    compressed and the dominant split is air vs tissue. Values at or below the 1st percentile (zero
    padding, the air floor) are left out of the log histogram.
    """
    v = np.asarray(values).ravel()
    if v.size > 1 << 20:  # a regular subsample is plenty for a 256-bin histogram
        v = v[:: v.size >> 19]
    v = v[np.isfinite(v)].astype(np.float64)
    lin = otsu_threshold(v)
    base = float(np.percentile(v, 1.0))
    x = v[v > base] - base
    if x.size < 16:
        return lin
    return min(lin, float(np.exp(otsu_threshold(np.log(x)))) + base)


def _anatomical_axes(affine: np.ndarray) -> tuple[int, int, int, float]:
    """``(slice axis, AP axis, lateral axis, anterior sign)`` of an array from its affine's directions."""
    d = np.abs(np.asarray(affine, dtype=np.float64)[:3, :3] / spacing_of(affine))
    sa = int(np.argmax(d[2]))
    rest = [a for a in range(3) if a != sa]
    aa = max(rest, key=lambda a: d[1, a])
    la = next(a for a in rest if a != aa)
    return sa, aa, la, float(np.sign(affine[1, aa]) or 1.0)


def _in_plane_structure(slice_axis: int) -> np.ndarray:
    st = np.zeros((3, 3, 3), dtype=bool)
    idx: list[Any] = [slice(None)] * 3
    idx[slice_axis] = 1
    st[tuple(idx)] = ndi.generate_binary_structure(2, 1)
    return st


def _keep_large(m: np.ndarray, fraction: float) -> np.ndarray:
    lab, n = ndi.label(m)
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = sizes >= fraction * sizes.max()
    return keep[lab]


def _remove_chest(m: np.ndarray, affine: np.ndarray, opt: MaskOptions) -> tuple[np.ndarray, dict[str, Any]]:
    sa, aa, la, sign = _anatomical_axes(affine)
    sp_ap = float(spacing_of(affine)[aa])
    v = np.moveaxis(m, (la, aa, sa), (0, 1, 2))
    if sign < 0:
        v = v[:, ::-1, :]
    nap = v.shape[1]
    has = np.any(v, axis=1)  # (lat, slice)
    front = np.where(has, nap - 1 - np.argmax(v[:, ::-1, :], axis=1), -1)
    cols = np.nonzero(has.any(axis=1))[0]
    if len(cols) < 3:
        return m, {"chest": "not removed: mask too small"}
    centre, half = 0.5 * (cols[0] + cols[-1]), max(1.0, 0.1 * (cols[-1] - cols[0]))
    band = front[int(np.floor(centre - half)) : int(np.ceil(centre + half)) + 1]
    valley = band.min(axis=0)
    peak = front.max(axis=0)
    ok = (valley >= 0) & ((peak - valley) * sp_ap >= opt.min_protrusion_mm)
    n_slices = int(has.any(axis=0).sum())
    if ok.sum() < max(1, 0.2 * n_slices):
        return m, {"chest": "not removed: no breast valley found"}
    cut = int(np.ceil(float(np.median(valley[ok])) - opt.chest_margin_mm / sp_ap))
    if cut <= 0:
        return m, {"chest": "not removed: cut plane outside the field of view"}
    out = m.copy()
    ov = np.moveaxis(out, (la, aa, sa), (0, 1, 2))
    if sign < 0:
        ov = ov[:, ::-1, :]
    ov[:, :cut, :] = False
    cut_index = cut if sign > 0 else nap - cut  # first kept (sign>0) / first removed (sign<0) source index
    p = np.zeros(4)
    p[aa], p[3] = cut_index - 0.5, 1.0
    return out, {"chest": "removed", "chest_cut_axis": aa, "chest_cut_y_mm": float((affine @ p)[1])}


def compute_breast_mask(
    volumes: Sequence[Volume], source: str = "", options: MaskOptions | None = None
) -> BreastMask:
    """Breast mask from one volume, or from several on one grid (combined by voxel-wise maximum).

    Args:
        volumes: 3-D volumes ``(X, Y, Z)`` sharing a grid (the first one's affine is used).
        source: a label recorded in the result.
        options: :class:`MaskOptions`.

    Returns:
        :class:`BreastMask` on the working grid of the first volume.
    """
    opt = options or MaskOptions()
    if not volumes:
        raise PreprocessError("breast mask: no source volume")
    ref = volumes[0]
    shape, wmap = working_grid(ref, opt.working_spacing_mm)
    img: np.ndarray | None = None
    for vol in volumes:
        if vol.data.ndim != 3 or vol.spatial_shape != ref.spatial_shape:
            raise PreprocessError(f"breast mask: source {source!r} must be 3-D volumes on one grid")
        small = zoom_linear(vol.data[None], shape)[0]
        img = small if img is None else np.maximum(img, small)
    assert img is not None
    if not np.all(np.isfinite(img)):
        raise PreprocessError(f"breast mask: source {source!r} contains NaN or Inf")
    waffine = ref.affine @ wmap.matrix()
    wsp = spacing_of(waffine)
    img = ndi.gaussian_filter(img, 1.0, truncate=2.0)
    otsu = body_threshold(img)
    thr = opt.threshold_scale * otsu if otsu > 0 else otsu
    info: dict[str, Any] = {"otsu": otsu, "working_shape": list(shape)}
    m = img > thr
    sa = _anatomical_axes(waffine)[0]
    if m.any():
        m = ndi.binary_fill_holes(m, structure=_in_plane_structure(sa))
        it = int(round(opt.opening_radius_mm / float(np.mean(np.delete(wsp, sa)))))
        if it > 0:
            opened = ndi.binary_opening(m, structure=_in_plane_structure(sa), iterations=it)
            m = opened if opened.any() else m
        m = _keep_large(m, opt.min_component_fraction)
        if opt.remove_chest:
            cut, chest_info = _remove_chest(m, waffine, opt)
            info.update(chest_info)
            if cut.any():
                m = _keep_large(cut, opt.min_component_fraction)
        sigma = opt.smooth_sigma_mm / wsp
        smooth = ndi.gaussian_filter(m.astype(np.float32), sigma, truncate=3.0) >= opt.smooth_level
        m = smooth if smooth.any() else m
    if not m.any():
        logger.warning("breast mask from %s is empty; using the whole field of view", source or "source")
        m = np.ones(shape, dtype=bool)
        info["fallback"] = "empty mask (constant or blank image)"
    return BreastMask(mask=m, affine=waffine, source=source, threshold=float(thr), info=info)


def mask_from_dict(d: Mapping[str, Any], mask: np.ndarray) -> BreastMask:
    """Rebuild a :class:`BreastMask` from :meth:`BreastMask.to_dict` output plus its voxels."""
    if tuple(mask.shape) != tuple(d["shape"]):
        raise PreprocessError(f"mask shape {mask.shape} does not match the record {d['shape']}")
    return BreastMask(
        mask.astype(bool), np.asarray(d["affine"]), d["source"], d["threshold"], dict(d["info"])
    )
