"""Procedural breast anatomy (prone, axial), defined in world space and evaluated on any grid.

Body frame: RAS+ mm with the origin on the midline at the front of the chest wall, at nipple height;
``world = body + AnatomyParams.offset``. In the axial plane the anterior chest-wall surface is the parabola
``y_cw(x) = -x^2 / (2 R)``; behind it lie the pectoral muscle (thickness ``t_muscle``), then the thorax
(lungs, heart, other tissue) inside a torso ellipse. Two breast ellipsoids hang anteriorly (+y) from the
chest wall at ``x = +-cx``; a thin subcutaneous fat layer covers the chest between and around them; skin
(``skin_mm``) covers the whole outer surface. Fibroglandular tissue (FGT) is a thresholded smooth random
field inside the breasts (away from skin and chest wall), biased to the breast centre; the threshold is
set on a grid-independent point sample so that the FGT volume fraction matches the case's density.

Tissue fractions are partial volumes in [0, 1] (see :func:`model_core.phantom.fields.ramp`); the
z-invariant thorax tissues are returned with shape ``(I, J, 1)`` and broadcast against ``(I, J, K)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_core.phantom.fields import Axes, GaussianField, ellipsoid_distance, ramp
from model_core.phantom.params import PARAMS, Tissues
from model_core.phantom.truth import CaseTruth

Vec3 = tuple[float, float, float]

FOV_CENTRE_BODY: Vec3 = (0.0, -30.0, 0.0)
"""Field-of-view centre in the body frame (mm): covers the breasts and the front of the thorax."""

BREAST_MIN_Y = -75.0
"""No breast tissue lies behind this body-frame y (mm): breasts are cut 10 mm behind the chest wall."""


@dataclass(frozen=True)
class Breast:
    """One breast ellipsoid in the body frame: centre (mm) and semi-axes (mm) along x, y, z."""

    centre: Vec3
    semi: Vec3


@dataclass
class AnatomyParams:
    """One patient's anatomy (body-frame mm unless stated)."""

    offset: Vec3  # body-frame origin in world RAS mm (patient position on the table)
    chest_radius: float
    t_muscle: float
    t_subcut: float  # presternal subcutaneous fat
    skin_mm: float
    torso_semi: tuple[float, float]  # torso ellipse semi-axes (x, y)
    torso_cy: float
    breasts: tuple[Breast, Breast]  # (right, left): right breast at +x
    fgt_fine: GaussianField
    fgt_coarse: GaussianField
    bpe_field: GaussianField
    fgt_threshold: float
    fgt_centre_bias: float
    bias_coef: tuple[float, ...]  # coil sensitivity polynomial
    fgt_adc: float

    def breast(self, side: str) -> Breast:
        return self.breasts[0] if side == "right" else self.breasts[1]

    def y_cw(self, x: np.ndarray | float) -> np.ndarray:
        return -(np.asarray(x, dtype=np.float64) ** 2) / (2.0 * self.chest_radius)

    def body_axes(self, axes: Axes) -> Axes:
        """The same grid in body-frame coordinates."""
        ox, oy, oz = self.offset
        return Axes(axes.x - ox, axes.y - oy, axes.z - oz, axes.spacing)

    def to_body(self, axes: Axes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable body-frame coordinates ``(I,1,1), (1,J,1), (1,1,K)`` of a world grid."""
        b = self.body_axes(axes)
        return b.bx(), b.by(), b.bz()

    # ------------------------------------------------------------------------------------------------
    def breast_distance(self, bx: np.ndarray, by: np.ndarray, bz: np.ndarray) -> np.ndarray:
        """Signed distance (mm, positive inside) to the union of both breast ellipsoids."""
        ds = []
        for b in self.breasts:
            us = [bx - b.centre[0], by - b.centre[1], bz - b.centre[2]]
            ds.append(ellipsoid_distance(us, list(b.semi)))
        return np.maximum(ds[0], ds[1])

    def breast_distance_grid(
        self, bx: np.ndarray, by: np.ndarray, bz: np.ndarray, margin: float
    ) -> np.ndarray:
        """:meth:`breast_distance` on a broadcast grid, computed only near each breast (else -1000)."""
        out = np.full((bx.shape[0], by.shape[1], bz.shape[2]), -1000.0, dtype=np.float32)
        xs = bx[:, 0, 0]
        for b in self.breasts:
            sel = np.nonzero(np.abs(xs - b.centre[0]) <= b.semi[0] + margin)[0]
            if sel.size == 0:
                continue
            sl = slice(int(sel[0]), int(sel[-1]) + 1)
            us = [bx[sl] - b.centre[0], by - b.centre[1], bz - b.centre[2]]
            np.maximum(out[sl], ellipsoid_distance(us, list(b.semi)), out=out[sl])
        return out

    def fgt_score(self, d_breast: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """Field whose super-level set is the FGT: texture plus a bias towards the breast centre."""
        depth = np.clip(d_breast * np.float32(1.0 / 25.0), 0.0, 1.0)
        return np.float32(0.65) * fine + np.float32(0.75) * coarse + np.float32(self.fgt_centre_bias) * depth

    def fgt_region(self, d_breast: np.ndarray, bx: np.ndarray, by: np.ndarray, width: float) -> np.ndarray:
        """Where FGT may exist: in a breast, >= skin + 4 mm deep and >= 5 mm in front of the chest wall."""
        front = (by - self.y_cw(bx) - 5.0).astype(np.float32, copy=False)
        return ramp(np.minimum(d_breast - np.float32(self.skin_mm + 4.0), front), width)

    def bias(self, axes: Axes, amplitude: float) -> np.ndarray:
        """Smooth multiplicative coil-sensitivity field ``(I, J, K)``, mean ~1."""
        bx, by, bz = self.to_body(axes)
        x, y, z = bx / 200.0, (by - 40.0) / 200.0, bz / 200.0
        c = self.bias_coef
        plane = 1.0 + amplitude * (c[0] * x + c[1] * y + c[3] * x * x + c[4] * y * y + c[5] * x * y)
        return (
            plane.astype(np.float32, copy=False)
            + np.float32(amplitude * c[2]) * z.astype(np.float32, copy=False)
        ).astype(np.float32, copy=False)


def sample_anatomy(rng: np.random.Generator, truth: CaseTruth, tissues: Tissues = PARAMS.tissues) -> AnatomyParams:
    """Draw a patient's anatomy; the FGT threshold matches ``truth.fgt_fraction``."""
    offset = (float(rng.normal(0, 6)), float(rng.normal(-10, 6)), float(rng.normal(0, 10)))
    chest_radius = float(rng.uniform(260, 360))
    breasts = []
    depth = float(rng.uniform(60, 112))
    for sgn in (1.0, -1.0):
        jit = 1.0 + 0.04 * rng.standard_normal(3)
        cx = sgn * float(rng.uniform(86, 100))
        semi = (
            float(rng.uniform(58, 74) * jit[0]),
            float(depth * jit[1]),
            float(rng.uniform(50, 62) * jit[2]),
        )
        cy = float(-cx * cx / (2 * chest_radius) - 12.0)
        breasts.append(Breast((cx, cy, float(rng.normal(0, 4))), semi))
    lo = (-185.0, -25.0, -75.0)
    hi = (185.0, 115.0, 75.0)
    fgt_fine = GaussianField(rng, lo, hi, lattice_mm=4.0, sigma_mm=3.5)
    fgt_coarse = GaussianField(rng, lo, hi, lattice_mm=9.0, sigma_mm=10.0)
    bpe_field = GaussianField(rng, lo, hi, lattice_mm=14.0, sigma_mm=16.0)
    anat = AnatomyParams(
        offset=offset,
        chest_radius=chest_radius,
        t_muscle=float(rng.uniform(8, 15)),
        t_subcut=float(rng.uniform(6, 14)),
        skin_mm=float(rng.uniform(1.5, 2.5)),
        torso_semi=(float(rng.uniform(160, 175)), float(rng.uniform(100, 120))),
        torso_cy=-95.0,
        breasts=(breasts[0], breasts[1]),
        fgt_fine=fgt_fine,
        fgt_coarse=fgt_coarse,
        bpe_field=bpe_field,
        fgt_threshold=0.0,
        fgt_centre_bias=float(rng.uniform(0.8, 1.6)),
        bias_coef=tuple(float(v) for v in rng.uniform(-1, 1, 6)),
        fgt_adc=float(tissues.table("adc")["fgt"] + tissues.fgt_adc_sd * rng.standard_normal()),
    )
    # threshold on a fixed 6 mm point lattice inside the FGT region (independent of any sequence grid)
    probe = Axes(np.arange(-180.0, 181.0, 6.0), np.arange(-20.0, 116.0, 6.0), np.arange(-70.0, 71.0, 6.0),
                 (6.0, 6.0, 6.0))  # fmt: skip
    bx, by, bz = probe.bx(), probe.by(), probe.bz()
    d_breast = anat.breast_distance_grid(bx, by, bz, 0.0)
    region = anat.fgt_region(d_breast, bx, by, 1e-3) > 0.5
    score = anat.fgt_score(d_breast, fgt_fine.sample(probe, point=True), fgt_coarse.sample(probe, point=True))
    vals = score[region]
    anat.fgt_threshold = float(np.quantile(vals, 1.0 - truth.fgt_fraction)) if vals.size else 0.0
    return anat


def tissue_fractions(anat: AnatomyParams, axes: Axes, with_bpe: bool = True) -> dict[str, np.ndarray]:
    """Partial-volume fractions of every normal tissue on ``axes``.

    Returns:
        ``fat``, ``fgt``, ``skin`` (float32 ``(I, J, K)``), ``muscle``, ``body``, ``lung``, ``heart``
        (float32 ``(I, J, 1)``), ``soft`` (fat + fgt, where a lesion may sit) and ``bpe`` (FGT enhancement
        modulation, ``(I, J, K)``, mean ~1; all ones unless ``with_bpe``). Fractions sum to <= 1; the
        rest is air.
    """
    w = axes.edge_width
    bx, by, bz = anat.to_body(axes)
    ycw = anat.y_cw(bx)  # (I, 1, 1)
    ax_t, ay_t = anat.torso_semi
    d_torso = ellipsoid_distance([bx, by - anat.torso_cy], [ax_t, ay_t])  # (I, J, 1)
    d_slab = (ycw + anat.t_subcut - by).astype(np.float32, copy=False)
    d_env = np.repeat(np.minimum(d_torso, d_slab), axes.shape[2], axis=2)  # (I, J, K)
    # breasts exist only in front of y_cw - 10 mm: 3-D work is limited to j >= jf
    jf = int(np.searchsorted(axes.y - anat.offset[1], BREAST_MIN_Y - 2 * w))
    d_breast = np.full(axes.shape, -1000.0, dtype=np.float32)
    if jf < axes.shape[1]:
        byf = by[:, jf:]
        d_ell = anat.breast_distance_grid(bx, byf, bz, 2 * w)
        d_breast[:, jf:] = np.minimum(d_ell, (byf - ycw + 10.0).astype(np.float32, copy=False))
        np.maximum(d_env[:, jf:], d_breast[:, jf:], out=d_env[:, jf:])
    envelope = ramp(d_env, w)
    inner = ramp(d_env - np.float32(anat.skin_mm), w)
    skin = envelope - inner
    d_cw = ((ycw - by) / np.sqrt(1.0 + (bx / anat.chest_radius) ** 2)).astype(np.float32, copy=False)
    chest = ramp(np.minimum(d_cw, d_torso - 12.0), w)  # (I, J, 1): behind the chest wall, inside the fat
    deep = chest * ramp(d_cw - np.float32(anat.t_muscle), w)
    muscle = chest - deep
    lung = np.maximum(
        ramp(ellipsoid_distance([bx - 78.0, by + 100.0], [55.0, 72.0]), w),
        ramp(ellipsoid_distance([bx + 78.0, by + 100.0], [55.0, 72.0]), w),
    )
    heart = ramp(
        ellipsoid_distance([bx + 22.0, by - (anat.y_cw(0.0) - anat.t_muscle - 62.0)], [58.0, 44.0]), w
    )
    lung = deep * lung * (1.0 - heart)
    heart = deep * heart
    body = deep - lung - heart
    soft = inner - chest
    np.clip(soft, 0.0, 1.0, out=soft)
    lo, hi = _fgt_box(anat, axes)
    fgt = np.zeros(axes.shape, dtype=np.float32)
    bpe = np.ones(axes.shape, dtype=np.float32)
    if hi > lo:
        sub = anat.body_axes(Axes(axes.x, axes.y[lo:hi], axes.z, axes.spacing))
        fine = anat.fgt_fine.sample(sub)
        score = anat.fgt_score(d_breast[:, lo:hi], fine, anat.fgt_coarse.sample(sub))
        score -= np.float32(anat.fgt_threshold)
        score *= np.float32(-1.0 / 0.12)
        fgt[:, lo:hi] = 1.0 / (1.0 + np.exp(score))
        fgt[:, lo:hi] *= anat.fgt_region(d_breast[:, lo:hi], bx, by[:, lo:hi], w)
        fgt[:, lo:hi] *= soft[:, lo:hi]
        if with_bpe:
            bpe[:, lo:hi] = np.clip(1.0 + 0.55 * anat.bpe_field.sample(sub) + 0.25 * fine, 0.1, 2.5)
    return {
        "fat": (soft - fgt).astype(np.float32, copy=False),
        "fgt": fgt,
        "skin": skin.astype(np.float32, copy=False),
        "muscle": muscle.astype(np.float32, copy=False),
        "body": body.astype(np.float32, copy=False),
        "lung": lung.astype(np.float32, copy=False),
        "heart": heart.astype(np.float32, copy=False),
        "soft": soft.astype(np.float32, copy=False),
        "bpe": bpe,
    }


def _fgt_box(anat: AnatomyParams, axes: Axes) -> tuple[int, int]:
    """Index range along j that can hold FGT (in front of the chest wall, behind the breast tips)."""
    y = axes.y - anat.offset[1]
    y_max = max(b.centre[1] + b.semi[1] for b in anat.breasts)
    y_min = float(np.min(anat.y_cw(np.asarray([axes.x[0], axes.x[-1]]) - anat.offset[0])))
    sel = np.nonzero((y > min(y_min, 0.0) - 2 * axes.spacing[1]) & (y < y_max + 2 * axes.spacing[1]))[0]
    return (int(sel[0]), int(sel[-1]) + 1) if sel.size else (0, 0)
