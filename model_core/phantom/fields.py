"""World-space building blocks: grid axes, partial-volume edges and smooth random fields.

Everything in the phantom is a function of the world position (RAS+ mm), evaluated at the voxel centres
of each sequence's grid, so all sequences show the same anatomy and lesion whatever their resolution.
Grids are axis-aligned (diagonal affine), hence every world coordinate depends on one voxel index only
and fields can be evaluated separably with broadcasting: ``x`` has shape ``(I, 1, 1)``, ``y`` ``(1, J, 1)``,
``z`` ``(1, 1, K)``.

Random fields are sums of Gaussian kernels on a coarse world lattice with standard-normal weights,
``f(p) = sum_n c_n prod_a g(p_a - l_{a, n_a})``, normalised to unit variance for point samples. On a
grid each kernel is widened by the voxel's box (variance ``s^2 / 12``), which approximates the voxel
average (partial volume). Evaluation is three small matrix products, so a field costs a few ms per grid
and never depends on the grid it is sampled on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Axes:
    """World coordinates of voxel centres of one axis-aligned grid.

    Attributes:
        x, y, z: 1-D float64 RAS mm coordinates along i, j, k (lengths I, J, K).
        spacing: voxel size in mm along (i, j, k).
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    spacing: tuple[float, float, float]

    @classmethod
    def from_affine(cls, affine: np.ndarray, shape: tuple[int, int, int]) -> Axes:
        """Axes of a grid whose ``affine`` (voxel -> RAS mm) has a diagonal 3x3 part."""
        a = np.asarray(affine, dtype=np.float64)
        off = a[:3, :3] - np.diag(np.diag(a[:3, :3]))
        if np.abs(off).max() > 1e-9:
            raise ValueError("phantom grids must be axis-aligned (diagonal affine)")
        coords = [a[d, d] * np.arange(n, dtype=np.float64) + a[d, 3] for d, n in enumerate(shape)]
        spacing = tuple(float(abs(a[d, d])) for d in range(3))
        return cls(coords[0], coords[1], coords[2], spacing)  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.x), len(self.y), len(self.z))

    def bx(self) -> np.ndarray:
        """``x`` as ``(I, 1, 1)``."""
        return self.x[:, None, None]

    def by(self) -> np.ndarray:
        """``y`` as ``(1, J, 1)``."""
        return self.y[None, :, None]

    def bz(self) -> np.ndarray:
        """``z`` as ``(1, 1, K)``."""
        return self.z[None, None, :]

    @property
    def edge_width(self) -> float:
        """Partial-volume width used for soft tissue boundaries (mean voxel size, mm)."""
        return float(np.mean(self.spacing))

    def subsampled(self, factors: tuple[int, int, int]) -> Axes:
        """Axes of the same box with each voxel split into ``factors`` sub-voxels (for supersampling)."""
        out = []
        for c, s, m in zip((self.x, self.y, self.z), self.spacing, factors, strict=True):
            sub = s * ((np.arange(m) + 0.5) / m - 0.5)
            out.append((c[:, None] + sub[None, :]).ravel())
        spacing = tuple(s / m for s, m in zip(self.spacing, factors, strict=True))
        return Axes(out[0], out[1], out[2], spacing)  # type: ignore[arg-type]


def ramp(d: np.ndarray, width: float) -> np.ndarray:
    """Fraction of a voxel inside a boundary at signed distance ``d`` mm (positive inside).

    A linear ramp of ``width`` mm: the exact partial volume of a box voxel cut by a plane.
    """
    r = np.asarray(d, dtype=np.float32) * np.float32(1.0 / width)
    r += np.float32(0.5)
    return np.clip(r, 0.0, 1.0, out=r)


def ellipsoid_distance(us: list[np.ndarray], semi: list[float]) -> np.ndarray:
    """Approximate signed distance (mm, positive inside) to an axis-aligned ellipsoid surface.

    ``(1 - r) / |grad r|`` with ``r = sqrt(sum (u_a / a_a)^2)``: exact on the surface, a smooth positive
    proxy inside. ``us`` are broadcastable local coordinates (mm), ``semi`` the semi-axes (mm).
    """
    r2: np.ndarray = np.zeros((), dtype=np.float32)
    g2: np.ndarray = np.zeros((), dtype=np.float32)
    for u, a in zip(us, semi, strict=True):
        q = (np.asarray(u, dtype=np.float32) * np.float32(1.0 / a)) ** 2
        r2 = r2 + q
        g2 = g2 + q * np.float32(1.0 / a**2)
    r = np.sqrt(r2)
    g = np.sqrt(g2)
    g /= np.maximum(r, np.float32(1e-9))
    np.clip(g, np.float32(1.0 / max(semi)), np.float32(1.0 / min(semi)), out=g)
    r -= np.float32(1.0)
    r /= g
    return np.negative(r, out=r)


class GaussianField:
    """A smooth, unit-variance random field on a world box (see the module docstring).

    Args:
        rng: source of the lattice weights.
        lo, hi: world box corners (RAS mm); outside it the field fades to 0.
        lattice_mm: lattice spacing.
        sigma_mm: kernel standard deviation (the correlation length is about ``2 * sigma_mm``).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        lo: tuple[float, float, float],
        hi: tuple[float, float, float],
        lattice_mm: float,
        sigma_mm: float,
    ) -> None:
        self.sigma = float(sigma_mm)
        self.nodes = [
            np.arange(a - 2 * sigma_mm, b + 2 * sigma_mm + lattice_mm, lattice_mm, dtype=np.float64)
            for a, b in zip(lo, hi, strict=True)
        ]
        shape = tuple(len(n) for n in self.nodes)
        self.coef = rng.standard_normal(shape)
        self._coef32 = self.coef.astype(np.float32)
        # variance of a point sample far from the box edge: prod_a sum_m g(x - l_m)^2 ~ sigma sqrt(pi) / h
        self.norm = float((np.sqrt(np.pi) * sigma_mm / lattice_mm) ** 1.5)

    def _band(self, coords: np.ndarray, axis: int, voxel: float) -> tuple[np.ndarray, np.ndarray]:
        """Banded kernel weights along one axis: lattice indices and weights, both ``(n, T)``.

        The Gaussian (widened by the voxel box) is cut at 4 sd; taps outside the lattice get weight 0.
        """
        nodes = self.nodes[axis]
        h = float(nodes[1] - nodes[0]) if len(nodes) > 1 else 1.0
        s2 = self.sigma**2 + voxel**2 / 12.0
        sd = float(np.sqrt(s2))
        taps = int(np.ceil(8.0 * sd / h)) + 2
        start = np.floor((coords - 4.0 * sd - nodes[0]) / h).astype(np.intp)
        idx = start[:, None] + np.arange(taps)[None, :]
        d = coords[:, None] - (nodes[0] + idx * h)
        w = np.exp(-0.5 * d * d / s2) * np.sqrt(self.sigma**2 / s2)
        outside = (idx < 0) | (idx >= len(nodes))
        w[outside] = 0.0
        return np.clip(idx, 0, len(nodes) - 1), w.astype(np.float32)

    def sample(self, axes: Axes, point: bool = False) -> np.ndarray:
        """The field on ``axes``: float32 ``(I, J, K)``; ``point`` skips the voxel-box widening.

        Three banded 1-D passes (z, then y, then x): no BLAS, so no thread pools and a fixed
        summation order.
        """
        out = self._coef32
        for axis in (2, 1, 0):
            coords = (axes.x, axes.y, axes.z)[axis]
            idx, w = self._band(coords, axis, 0.0 if point else axes.spacing[axis])
            front = np.ascontiguousarray(np.moveaxis(out, axis, 0))
            rows = front.reshape(front.shape[0], -1)  # contiguous rows: gathers are block copies
            acc = rows[idx[:, 0]]
            acc *= w[:, :1]
            for t in range(1, idx.shape[1]):
                g = rows[idx[:, t]]
                g *= w[:, t : t + 1]
                acc += g
            out = np.moveaxis(acc.reshape(len(coords), *front.shape[1:]), 0, axis)
        out = np.ascontiguousarray(out)
        out *= np.float32(1.0 / self.norm)
        return out

    def at_points(self, points: np.ndarray) -> np.ndarray:
        """Point samples at world positions ``(N, 3)`` -> float64 ``(N,)``."""
        p = np.asarray(points, dtype=np.float64)
        (ix, wx), (iy, wy), (iz, wz) = (self._band(p[:, a], a, 0.0) for a in range(3))
        vals = self.coef[ix[:, :, None, None], iy[:, None, :, None], iz[:, None, None, :]]
        w = wx.astype(np.float64)[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]
        return (vals * w).sum(axis=(1, 2, 3)) / self.norm
