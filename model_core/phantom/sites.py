"""Site profiles: scanner protocols of the phantom world's three "hospitals".

Each :class:`SiteProfile` mimics one dataset of the paper (DS1, DS2, DS3; acquisition details in the
paper's Methods) at a demo-friendly resolution: the native matrices are modest (e.g. DCE 144 x 112 x 48
voxels of 2.5 x 2.5 x 3 mm for a 360 x 280 x 144 mm field of view) so that the demo model's canvases
(DCE 128 x 48 x 48, DWI 128 x 48 x 32, T2 128 x 48 x 32 after the breast crop) need little or no
down-scaling. DCE is the finest grid, DWI the coarsest, T2 in between, as in real protocols.

DWI was once twice as coarse (e.g. 5 x 5 x 9 mm on ds1, 64 x 48 x 16 canvas): a lesion then covered a
few voxels, and the tokenizer (three stride-2 convolutions and a stride-2 max-pool) learnt almost nothing
from it (the demo stem + global max-pool + a linear layer trained on 600 DWI canvases: validation AUROC
0.68-0.74 after 1-3 epochs; on the same canvases upsampled 2x: 0.81-0.88; on the current grids'
canvases: 0.78-0.84). The current DWI grids are slightly coarser in-plane than T2's and as thick.

Grid geometry (:class:`GridSpec`) is given in the canonical RAS+ axis order of :mod:`model_core.studies.study`:
``shape = (i, j, k)`` = (right-left across both breasts, posterior-anterior, inferior-superior slices);
``spacing`` in mm along those axes. Grids are centred on the patient's field-of-view centre plus
``offset_mm`` (a small per-sequence shift, so sequences share the world frame but not the voxel grid).

Deviation from the paper, on purpose: ``ds3`` keeps 6 post-contrast phases (the paper's DS3 had 5) so
that the coarse, noisy external site does not also carry the 5-phase interpolation; ``ds2`` has 5.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Size3 = tuple[int, int, int]
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class GridSpec:
    """One sequence's voxel grid at ``scale = 1``.

    Attributes:
        shape: voxels along (i, j, k).
        spacing: mm along (i, j, k).
        offset_mm: shift of the grid centre from the field-of-view centre, RAS mm.
    """

    shape: Size3
    spacing: Vec3
    offset_mm: Vec3 = (0.0, 0.0, 0.0)

    def scaled(self, scale: float) -> GridSpec:
        """Same field of view with ``round(shape * scale)`` voxels (at least 4 per axis)."""
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        shape = tuple(max(4, int(round(n * scale))) for n in self.shape)
        spacing = tuple(s * n / m for s, n, m in zip(self.spacing, self.shape, shape, strict=True))
        return replace(self, shape=shape, spacing=spacing)  # type: ignore[arg-type]

    @property
    def fov_mm(self) -> Vec3:
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Protocol:
    """One scanner set-up of a site (a site may mix several, e.g. 1.5 T and 3 T).

    Attributes:
        field_strength: tesla.
        weight: relative frequency of this protocol within the site.
        dce, dwi, t2, t1: grids (``t1`` None: no separate non-contrast T1 is written).
        noise: Gaussian noise sd per sequence, in signal units (fat on T1 = 1).
    """

    field_strength: float
    weight: float
    dce: GridSpec
    dwi: GridSpec
    t2: GridSpec
    t1: GridSpec | None
    noise_dce: float
    noise_dwi: float
    noise_t2: float
    noise_t1: float = 0.015


@dataclass(frozen=True)
class SiteProfile:
    """A simulated hospital.

    Attributes:
        name: short id (``"ds1"``...), also used to seed the random streams.
        post_times_s: acquisition (centre) times of the post-contrast phases after injection; its length
            is the number of post-contrast phases.
        b_values: DWI b-values in s/mm^2, ascending (the highest is the model's DWI input).
        protocols: scanner set-ups, drawn per study by ``weight``.
        prevalence: fraction of malignant studies when the label is not forced.
        dce_fat_sat, t2_fat_sat: fat-suppressed DCE / T2 (changes the fat signal).
        bias_amplitude: coil-sensitivity (multiplicative, smooth) variation, fraction.
        institution: written to DICOM InstitutionName.
    """

    name: str
    post_times_s: tuple[float, ...]
    b_values: tuple[float, ...]
    protocols: tuple[Protocol, ...]
    prevalence: float = 0.5
    dce_fat_sat: bool = False
    t2_fat_sat: bool = False
    bias_amplitude: float = 0.10
    institution: str = "Phantom World Hospital"

    @property
    def n_post(self) -> int:
        return len(self.post_times_s)

    @property
    def field_strengths(self) -> tuple[float, ...]:
        return tuple(sorted({p.field_strength for p in self.protocols}))


_DS1_15T = Protocol(
    field_strength=1.5, weight=1.0,
    dce=GridSpec((144, 112, 48), (2.5, 2.5, 3.0)),
    dwi=GridSpec((128, 100, 32), (2.8, 2.8, 4.5), offset_mm=(1.5, -2.0, 1.0)),
    t2=GridSpec((144, 112, 32), (2.5, 2.5, 4.5), offset_mm=(-1.0, 1.0, 0.5)),
    t1=GridSpec((144, 112, 32), (2.5, 2.5, 4.5), offset_mm=(-1.0, 1.0, 0.5)),
    noise_dce=0.015, noise_dwi=0.010, noise_t2=0.018,
)  # fmt: skip

_DS2_15T = Protocol(
    field_strength=1.5, weight=0.55,
    dce=GridSpec((160, 120, 40), (2.25, 2.3, 3.6)),
    dwi=GridSpec((128, 96, 32), (2.8, 2.875, 4.5), offset_mm=(-2.0, 1.5, -1.5)),
    t2=GridSpec((160, 120, 36), (2.25, 2.3, 4.0), offset_mm=(0.5, -1.0, 1.0)),
    t1=GridSpec((160, 120, 36), (2.25, 2.3, 4.0), offset_mm=(0.5, -1.0, 1.0)),
    noise_dce=0.017, noise_dwi=0.011, noise_t2=0.020,
)  # fmt: skip

_DS2_3T = Protocol(
    field_strength=3.0, weight=0.45,
    dce=GridSpec((160, 128, 56), (2.25, 2.2, 2.6)),
    dwi=GridSpec((160, 80, 36), (2.25, 3.5, 4.0), offset_mm=(1.0, 2.0, 0.0)),
    t2=GridSpec((160, 128, 36), (2.25, 2.2, 4.0), offset_mm=(0.0, 1.0, -1.0)),
    t1=GridSpec((160, 128, 56), (2.25, 2.2, 2.6)),
    noise_dce=0.012, noise_dwi=0.008, noise_t2=0.014,
)  # fmt: skip

_DS3_15T = Protocol(
    field_strength=1.5, weight=1.0,
    dce=GridSpec((120, 96, 40), (3.0, 3.0, 3.6)),
    dwi=GridSpec((110, 88, 28), (3.3, 3.3, 5.15), offset_mm=(2.0, -3.0, 2.0)),
    t2=GridSpec((120, 96, 28), (3.0, 3.0, 5.15), offset_mm=(-1.5, 2.0, 0.0)),
    t1=None,
    noise_dce=0.030, noise_dwi=0.018, noise_t2=0.034,
)  # fmt: skip

SITES: dict[str, SiteProfile] = {
    "ds1": SiteProfile(
        name="ds1", post_times_s=(60.0, 120.0, 180.0, 240.0, 300.0, 360.0), b_values=(0.0, 1000.0),
        protocols=(_DS1_15T,), prevalence=0.6, institution="Phantom DS1 (internal)",
    ),
    "ds2": SiteProfile(
        name="ds2", post_times_s=(70.0, 140.0, 210.0, 280.0, 350.0), b_values=(0.0, 800.0),
        protocols=(_DS2_15T, _DS2_3T), prevalence=0.45, bias_amplitude=0.14,
        institution="Phantom DS2 (external)",
    ),
    "ds3": SiteProfile(
        name="ds3", post_times_s=(60.0, 120.0, 180.0, 240.0, 300.0, 360.0), b_values=(0.0, 800.0),
        protocols=(_DS3_15T,), prevalence=0.5, dce_fat_sat=True, t2_fat_sat=True, bias_amplitude=0.2,
        institution="Phantom DS3 (external)",
    ),
}  # fmt: skip


def get_site(site: str | SiteProfile) -> SiteProfile:
    """The profile named ``site`` (``"ds1"``, ``"ds2"``, ``"ds3"``), or ``site`` itself."""
    if isinstance(site, SiteProfile):
        return site
    try:
        return SITES[str(site).lower()]
    except KeyError:
        raise ValueError(f"unknown phantom site {site!r}; choose from {sorted(SITES)}") from None
