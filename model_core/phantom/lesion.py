"""The lesion's geometry: a star-shaped solid in world space, evaluated with supersampled partial volume.

Shape model (lesion-local frame ``u = Rot^T (p - centre)``, mm): a point is inside when
``|u| < R(d)``, ``d = u / |u|``, with the radius function

    R(d) = R_ell(d) * (1 + sum_k A_k exp(kappa_k (d . v_k - 1)))

where ``R_ell`` is the base ellipsoid (round: axis ratios 0.85-1; otherwise ``Shape.oval_ratio``) scaled to
the equivalent diameter ``LesionTruth.diameter_mm``, and the bumps are broad lobes (irregular) or narrow,
long spicules (spiculated; tapering naturally since a bump is a cone of directions). Round/oval lesions
get only a faint lobulation. ``R`` is tabulated on a (cos theta, phi) grid once per lesion.

The core ``|u| < core_fraction * R_ell(d)`` is the necrotic centre of rim-enhancing lesions. A smooth
random field over the lesion gives heterogeneous enhancement. Every map is the voxel average of a
supersampled indicator (sub-voxels <= ~2 mm, at most 4 per axis), so coarse DWI voxels get true partial
volumes and all sequences see the same lesion in world space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_core.phantom.anatomy import AnatomyParams
from model_core.phantom.fields import Axes, GaussianField, ramp
from model_core.phantom.params import WorldParams
from model_core.phantom.truth import CaseTruth

_NT, _NP = 64, 128  # radius table: cos(theta) x phi


@dataclass
class LesionGeometry:
    """One lesion in world RAS mm.

    Attributes:
        centre: world position of the lesion centre, ``(3,)``.
        rot: ``(3, 3)`` rotation, columns = local axes in world coordinates.
        semi: base ellipsoid semi-axes (mm) along the local axes.
        bump_dir, bump_amp, bump_kappa: ``(K, 3)``, ``(K,)``, ``(K,)`` radius bumps.
        core_fraction: radius fraction of the (rim-pattern) core.
        hetero: enhancement heterogeneity field (world frame), amplitude applied by the signal model.
    """

    centre: np.ndarray
    rot: np.ndarray
    semi: np.ndarray
    bump_dir: np.ndarray
    bump_amp: np.ndarray
    bump_kappa: np.ndarray
    core_fraction: float
    hetero: GaussianField | None = None

    def __post_init__(self) -> None:
        ct = np.linspace(-1.0, 1.0, _NT)
        ph = np.linspace(-np.pi, np.pi, _NP + 1)
        st = np.sqrt(1.0 - ct**2)
        d = np.stack(
            [st[:, None] * np.cos(ph)[None], st[:, None] * np.sin(ph)[None], ct[:, None] + 0 * ph[None]], -1
        )
        base = 1.0 / np.sqrt(((d / self.semi) ** 2).sum(-1))
        cos = sum(d[..., a : a + 1] * self.bump_dir[:, a] for a in range(3))  # (NT, NP+1, K), no BLAS
        bumps = (self.bump_amp * np.exp(self.bump_kappa * (cos - 1.0))).sum(-1)
        self.base_table = base
        self.table = base * (1.0 + bumps)
        self.extent_mm = float(self.table.max())

    @staticmethod
    def _lookup(table: np.ndarray, ct: np.ndarray, ph: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of a ``(_NT, _NP + 1)`` direction table at (cos theta, phi)."""
        ti = (ct + 1.0) * (0.5 * (_NT - 1))
        pi = (ph + np.pi) * (_NP / (2 * np.pi))
        t0 = np.clip(np.floor(ti), 0, _NT - 2).astype(np.intp)
        p0 = np.clip(np.floor(pi), 0, _NP - 1).astype(np.intp)
        ft = ti - t0
        fp = pi - p0
        a = table[t0, p0] * (1 - fp) + table[t0, p0 + 1] * fp
        b = table[t0 + 1, p0] * (1 - fp) + table[t0 + 1, p0 + 1] * fp
        return a * (1 - ft) + b * ft

    def box(self, axes: Axes, margin_mm: float = 2.0) -> tuple[slice, slice, slice] | None:
        """Index box of ``axes`` holding the lesion (None when it lies outside the grid)."""
        out = []
        for c, coords, s in zip(self.centre, (axes.x, axes.y, axes.z), axes.spacing, strict=True):
            r = self.extent_mm + margin_mm + s
            sel = np.nonzero(np.abs(coords - c) <= r)[0]
            if sel.size == 0:
                return None
            out.append(slice(int(sel[0]), int(sel[-1]) + 1))
        return out[0], out[1], out[2]

    def maps(self, axes: Axes, with_hetero: bool = True) -> dict[str, np.ndarray]:
        """Lesion partial volumes on ``axes``.

        Returns:
            ``lesion`` (whole lesion) and ``core`` fractions and ``hetero`` (the unit-variance field inside
            the lesion box, 0 elsewhere or without ``with_hetero``), all float32 ``(I, J, K)``.
        """
        lesion = np.zeros(axes.shape, np.float32)
        core = np.zeros(axes.shape, np.float32)
        hetero = np.zeros(axes.shape, np.float32)
        box = self.box(axes)
        if box is None:
            return {"lesion": lesion, "core": core, "hetero": hetero}
        sub = Axes(axes.x[box[0]], axes.y[box[1]], axes.z[box[2]], axes.spacing)
        factors = tuple(min(4, max(1, int(np.ceil(s / 2.0)))) for s in axes.spacing)
        fine = sub.subsampled(factors)  # type: ignore[arg-type]
        px = fine.bx() - self.centre[0]
        py = fine.by() - self.centre[1]
        pz = fine.bz() - self.centre[2]
        u = [self.rot[0, a] * px + self.rot[1, a] * py + self.rot[2, a] * pz for a in range(3)]
        r = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
        ct = u[2] / np.maximum(r, 1e-9)
        ph = np.arctan2(u[1], u[0])
        w = fine.edge_width
        inside = ramp(self._lookup(self.table, ct, ph) - r, w)
        inner = ramp(self.core_fraction * self._lookup(self.base_table, ct, ph) - r, w)
        shp = sub.shape
        blocks = (shp[0], factors[0], shp[1], factors[1], shp[2], factors[2])
        lesion[box] = inside.reshape(blocks).mean(axis=(1, 3, 5))
        core[box] = inner.reshape(blocks).mean(axis=(1, 3, 5))
        if with_hetero and self.hetero is not None:
            hetero[box] = self.hetero.sample(sub)
        return {"lesion": lesion, "core": core, "hetero": hetero}


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sample_lesion_geometry(
    rng: np.random.Generator, truth: CaseTruth, anat: AnatomyParams, params: WorldParams
) -> LesionGeometry:
    """Shape and position of the lesion: inside the truth's breast, clear of skin and chest wall,
    preferably in fibroglandular tissue."""
    sp = params.shape
    les = truth.lesion
    rad = les.diameter_mm / 2.0
    if les.shape == "round":
        ratios = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0)])
    else:
        q = rng.uniform(*sp.oval_ratio)
        ratios = np.array([1.0, q, rng.uniform(q, 1.0)])
    semi = rad * ratios / np.prod(ratios) ** (1.0 / 3.0)
    parts = []
    if les.shape in ("round", "oval"):
        parts.append(_bumps(rng, 3, (0.0, 0.06), (3.0, 6.0)))  # faint lobulation
    else:
        n = int(rng.integers(sp.lobes[0], sp.lobes[1] + 1))
        parts.append(_bumps(rng, n, sp.lobe_amp, sp.lobe_kappa))
        if les.shape == "spiculated":
            m = int(rng.integers(sp.spicules[0], sp.spicules[1] + 1))
            parts.append(_bumps(rng, m, sp.spicule_amp, sp.spicule_kappa))
    hetero_rng = np.random.default_rng(rng.integers(0, 2**63 - 1))
    geom = LesionGeometry(
        centre=np.zeros(3),
        rot=_rotation(rng),
        semi=semi,
        bump_dir=np.concatenate([p[0] for p in parts]),
        bump_amp=np.concatenate([p[1] for p in parts]),
        bump_kappa=np.concatenate([p[2] for p in parts]),
        core_fraction=sp.core_fraction,
    )
    geom.centre = np.asarray(_place(rng, truth, anat, geom.extent_mm), dtype=np.float64)
    r = geom.extent_mm + 8.0
    lo = (geom.centre[0] - r, geom.centre[1] - r, geom.centre[2] - r)
    hi = (geom.centre[0] + r, geom.centre[1] + r, geom.centre[2] + r)
    geom.hetero = GaussianField(hetero_rng, lo, hi, lattice_mm=3.0, sigma_mm=3.0)
    return geom


def _bumps(
    rng: np.random.Generator, n: int, amp: tuple[float, float], kappa: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` radius bumps: unit directions ``(n, 3)``, amplitudes ``(n,)``, concentrations ``(n,)``."""
    return _unit(rng, n), rng.uniform(*amp, n), rng.uniform(*kappa, n)


def _place(rng: np.random.Generator, truth: CaseTruth, anat: AnatomyParams, extent: float) -> np.ndarray:
    """World centre: candidates inside the breast, scored by clearance and FGT preference."""
    b = anat.breast(truth.lesion.side)
    n = 64
    dirs = _unit(rng, n)
    rr = rng.uniform(0.1, 0.8, n) ** (1.0 / 3.0) * 0.85
    pts = np.asarray(b.centre)[None] + rr[:, None] * dirs * np.asarray(b.semi)[None]
    pts[:, 1] = np.maximum(pts[:, 1], anat.y_cw(pts[:, 0]) + 5.0)
    bx, by, bz = pts[:, 0], pts[:, 1], pts[:, 2]
    clear_skin = anat.breast_distance(bx, by, bz) - anat.skin_mm - 3.0 - extent
    clear_wall = by - anat.y_cw(bx) - 4.0 - extent
    clearance = np.minimum(clear_skin, clear_wall)
    body_pts = np.stack([bx, by, bz], axis=1)
    d_breast = anat.breast_distance(bx, by, bz)
    fgt = anat.fgt_score(d_breast, anat.fgt_fine.at_points(body_pts), anat.fgt_coarse.at_points(body_pts))
    prefer_fgt = rng.random() < 0.7
    ok = clearance >= 0
    if ok.any():
        score = fgt if prefer_fgt else rng.random(n)
        idx = int(np.argmax(np.where(ok, score, -np.inf)))
    else:
        idx = int(np.argmax(clearance))
    return pts[idx] + np.asarray(anat.offset)
