"""Every number of the phantom world's generative model, in one place.

The class-conditional distributions below decide how much each sequence says about malignancy (see the
package docstring for the whole generative story). On the ``ds1`` site, hand features computed inside the
true lesion mask give single-feature AUROCs between ~0.5 and ~0.96, and a cross-validated logistic model on
all of them beats the DCE-only one by a clear margin, with DCE the strongest sequence and each sequence
imperfect (``python -m model_core.evaluation.separability --site ds1 --n 300``;
``tests/model_core/phantom/test_world.py`` holds the bounds). The DWI lesion is conspicuous at high b
(lesion S0 0.75, FGT ADC 2.1, skin S0 0.15) and T2 shine-through is weak
(``Tissues.lesion_s0_t2_exponent``), so that a network can find the lesion on DWI; how these values were
reached is in ``docs/demo_model.md``.

Units: diameters in mm; times in s after contrast injection; enhancement ``E`` in units of a reference
T1 signal (0.4, the fibroglandular pre-contrast level), so ``E = 1`` is roughly a 100 % signal increase;
ADC in 1e-3 mm^2/s; T2 ratio = lesion T2 signal / fibroglandular T2 signal.

Categorical probabilities are tuples in the order of the matching ``*_NAMES`` tuple.
"""

from __future__ import annotations

from dataclasses import dataclass

SHAPES: tuple[str, ...] = ("round", "oval", "irregular", "spiculated")
PATTERNS: tuple[str, ...] = ("homogeneous", "heterogeneous", "rim")
KINETICS: tuple[str, ...] = ("persistent", "plateau", "washout")
BPE_LEVELS: tuple[str, ...] = ("minimal", "mild", "moderate", "marked")
DENSITIES: tuple[str, ...] = ("a", "b", "c", "d")  # BI-RADS breast composition (fatty ... extremely dense)


@dataclass(frozen=True)
class LesionClass:
    """Distribution of a lesion's latent attributes for one class (benign, malignant, TNBC).

    Continuous attributes are log-normal (``median``, ``sigma_log``) except ADC (normal, clipped).
    """

    diameter_median_mm: float
    diameter_sigma_log: float
    shape_p: tuple[float, float, float, float]  # SHAPES
    pattern_p: tuple[float, float, float]  # PATTERNS
    kinetic_p: tuple[float, float, float]  # KINETICS
    peak_median: float  # plateau level E of the wash-in curve
    peak_sigma_log: float
    tau_median_s: float  # wash-in time constant
    tau_sigma_log: float
    adc_mean: float
    adc_sd: float
    t2_median: float
    t2_sigma_log: float


BENIGN = LesionClass(
    diameter_median_mm=15.0, diameter_sigma_log=0.42,
    shape_p=(0.27, 0.45, 0.21, 0.07),
    pattern_p=(0.64, 0.31, 0.05),
    kinetic_p=(0.64, 0.27, 0.09),
    peak_median=0.85, peak_sigma_log=0.40,
    tau_median_s=85.0, tau_sigma_log=0.42,
    adc_mean=1.53, adc_sd=0.20,
    t2_median=1.85, t2_sigma_log=0.24,
)  # fmt: skip

MALIGNANT = LesionClass(
    diameter_median_mm=23.4, diameter_sigma_log=0.42,
    shape_p=(0.08, 0.14, 0.42, 0.36),
    pattern_p=(0.24, 0.55, 0.21),
    kinetic_p=(0.10, 0.30, 0.60),
    peak_median=1.45, peak_sigma_log=0.38,
    tau_median_s=52.0, tau_sigma_log=0.42,
    adc_mean=0.96, adc_sd=0.20,
    t2_median=0.82, t2_sigma_log=0.24,
)  # fmt: skip

TNBC = LesionClass(  # triple-negative cancers: rounder, rim-enhancing, T2-bright, larger
    diameter_median_mm=26.0, diameter_sigma_log=0.42,
    shape_p=(0.28, 0.20, 0.34, 0.18),
    pattern_p=(0.20, 0.40, 0.40),
    kinetic_p=(0.18, 0.36, 0.46),
    peak_median=1.40, peak_sigma_log=0.38,
    tau_median_s=52.0, tau_sigma_log=0.45,
    adc_mean=1.14, adc_sd=0.24,
    t2_median=1.30, t2_sigma_log=0.30,
)  # fmt: skip


@dataclass(frozen=True)
class PcrEffect:
    """How a later pathologic complete response shows on the pre-treatment study (malignant only)."""

    p_pcr_tnbc: float = 0.45
    p_pcr_other: float = 0.20
    peak_factor: float = 1.25  # stronger, faster wash-in (better perfused)
    tau_factor: float = 0.8
    adc_shift: float = -0.15  # more cellular
    diameter_factor: float = 0.9


@dataclass(frozen=True)
class KineticShape:
    """Late-phase slope ``beta`` per curve type: ``E(t) = A (1 - exp(-t/tau)) (1 + beta * late(t))``,
    ``late(t) = clip((t - t_early) / (t_late - t_early), 0, None)``."""

    t_early_s: float = 120.0
    t_late_s: float = 360.0
    beta_persistent: tuple[float, float] = (0.12, 0.45)  # uniform ranges
    beta_plateau: tuple[float, float] = (-0.08, 0.06)
    beta_washout: tuple[float, float] = (-0.45, -0.14)


@dataclass(frozen=True)
class Shape:
    """Lesion geometry per shape class: axis ratios and angular bumps on the radius function."""

    oval_ratio: tuple[float, float] = (0.55, 0.8)  # minor/major axis ratio (round: 0.85-1)
    lobes: tuple[int, int] = (3, 6)  # irregular: broad bumps (count range)
    lobe_amp: tuple[float, float] = (0.15, 0.35)
    lobe_kappa: tuple[float, float] = (4.0, 10.0)
    spicules: tuple[int, int] = (8, 18)  # spiculated: narrow long bumps (+ a few lobes)
    spicule_amp: tuple[float, float] = (0.5, 1.0)
    spicule_kappa: tuple[float, float] = (40.0, 90.0)
    core_fraction: float = 0.6  # rim pattern: the core (radius fraction) barely enhances
    rim_core_enhancement: float = 0.2
    rim_core_t2_factor: float = 1.5
    rim_core_adc_shift: float = 0.5
    hetero_amp: float = 0.45  # heterogeneous pattern: multiplicative random field amplitude


@dataclass(frozen=True)
class Population:
    """Labels that are not lesion attributes: age, density, BPE, subtype, simulated BI-RADS."""

    age_benign: tuple[float, float] = (44.0, 11.0)  # mean, sd; clipped to age_range
    age_malignant: tuple[float, float] = (53.0, 11.0)
    age_range: tuple[float, float] = (22.0, 85.0)
    p_tnbc: float = 0.15  # among malignant
    # density / BPE: latent normal scores shifted by age (younger: denser, more BPE), cut at quantiles
    density_cuts: tuple[float, float, float] = (-1.2, 0.0, 1.1)
    density_fgt_fraction: tuple[float, float, float, float] = (0.10, 0.25, 0.42, 0.60)
    bpe_cuts: tuple[float, float, float] = (-0.35, 0.45, 1.2)
    bpe_level: tuple[float, float, float, float] = (0.06, 0.18, 0.36, 0.62)  # late FGT enhancement E
    # simulated reader: Goettingen-like score (shape, margin, pattern, initial rise, delayed phase) plus
    # reader noise; category cuts on the noisy score: <=cuts[0] -> 2, <=cuts[1] -> 3, <=cuts[2] -> 4, else 5
    reader_noise_sd: float = 0.6
    birads_cuts: tuple[float, float, float] = (1.5, 2.5, 5.0)
    birads4_sub_cuts: tuple[float, float] = (3.8, 4.7)  # 4a / 4b / 4c within category 4


@dataclass(frozen=True)
class Tissues:
    """Noise-free signal levels per tissue and sequence (arbitrary units, fat on T1 = 1).

    ``dce_fs`` / ``t2_fs``: fat-suppressed variants; DWI is always fat-suppressed.
    """

    t1: tuple[tuple[str, float], ...] = (
        ("fat", 1.0), ("fgt", 0.38), ("skin", 0.6), ("muscle", 0.42), ("body", 0.45), ("lung", 0.03),
        ("heart", 0.45), ("lesion", 0.36),
    )  # fmt: skip
    dce: tuple[tuple[str, float], ...] = (
        ("fat", 0.9), ("fgt", 0.40), ("skin", 0.55), ("muscle", 0.40), ("body", 0.42), ("lung", 0.03),
        ("heart", 0.40), ("lesion", 0.38),
    )  # fmt: skip
    dce_fs: tuple[tuple[str, float], ...] = (
        ("fat", 0.14), ("fgt", 0.40), ("skin", 0.45), ("muscle", 0.38), ("body", 0.40), ("lung", 0.03),
        ("heart", 0.40), ("lesion", 0.38),
    )  # fmt: skip
    t2: tuple[tuple[str, float], ...] = (
        ("fat", 0.85), ("fgt", 0.40), ("skin", 0.5), ("muscle", 0.22), ("body", 0.32), ("lung", 0.03),
        ("heart", 0.25), ("lesion", 0.40),
    )  # fmt: skip
    t2_fs: tuple[tuple[str, float], ...] = (
        ("fat", 0.12), ("fgt", 0.45), ("skin", 0.45), ("muscle", 0.24), ("body", 0.34), ("lung", 0.03),
        ("heart", 0.25), ("lesion", 0.45),
    )  # fmt: skip
    dwi_s0: tuple[tuple[str, float], ...] = (
        ("fat", 0.07), ("fgt", 0.45), ("skin", 0.15), ("muscle", 0.30), ("body", 0.32), ("lung", 0.01),
        ("heart", 0.15), ("lesion", 0.75),
    )  # fmt: skip
    adc: tuple[tuple[str, float], ...] = (
        ("fat", 0.5), ("fgt", 2.1), ("skin", 1.0), ("muscle", 1.4), ("body", 1.6), ("lung", 1.0),
        ("heart", 3.0), ("lesion", 1.2),
    )  # fmt: skip
    # DCE enhancement E (peak, tau_s, beta) per non-lesion tissue; FGT uses the BPE level instead
    enhancement: tuple[tuple[str, float, float, float], ...] = (
        ("fat", 0.0, 60.0, 0.0), ("skin", 0.25, 90.0, 0.3), ("muscle", 0.30, 80.0, 0.1),
        ("body", 0.35, 60.0, 0.0), ("lung", 0.05, 30.0, 0.0), ("heart", 2.2, 15.0, -0.45),
    )  # fmt: skip
    enhancement_ref: float = 0.4  # signal units of E = 1
    bpe_tau_s: float = 160.0
    lesion_s0_t2_exponent: float = 0.1  # DWI S0 of the lesion ~ (T2 ratio) ** exponent (weak T2 shine-through)
    fgt_adc_sd: float = 0.12

    def table(self, name: str) -> dict[str, float]:
        """One signal table as a dict (``name`` is a field name, e.g. ``"t2_fs"``)."""
        return dict(getattr(self, name))


@dataclass(frozen=True)
class T2Appearance:
    """T2 appearance of lesions as on breast MRI (the ``v2`` world); drawn after every other attribute.

    Benign lesions are a mixture: cysts (fluid, very bright), T2-bright fibroadenomas, and iso-intense ones.
    Cancers are iso- to hypointense; a share of them carries peritumoral oedema, a T2-bright shell of
    ``oedema_width_mm`` around the lesion. Triple-negative cancers are T2-bright with ``tnbc_bright_p``.
    With ``fat_sat`` the T2 of every site is fat-suppressed, so that bright lesions stand out from fat.
    Ratios are lesion / fibroglandular T2 signal (log-normal: median, sigma_log; cysts: uniform range).
    """

    benign_kind_p: tuple[float, float, float] = (0.35, 0.40, 0.25)  # T2_KINDS_BENIGN
    cyst_ratio: tuple[float, float] = (3.0, 4.5)
    bright_ratio: tuple[float, float] = (2.2, 0.18)
    iso_ratio: tuple[float, float] = (1.05, 0.12)
    malignant_ratio: tuple[float, float] = (0.72, 0.15)
    tnbc_bright_p: float = 0.5
    oedema_p: float = 0.3  # invasive cancers with peritumoral oedema
    oedema_ratio: tuple[float, float] = (1.5, 2.0)  # uniform range, x fibroglandular T2 signal
    oedema_width_mm: float = 3.0
    fat_sat: bool = True  # every site's T2 is fat-suppressed (as ds3's already is in v1)


T2_KINDS_BENIGN: tuple[str, ...] = ("cyst", "bright", "iso")


@dataclass(frozen=True)
class WorldParams:
    """The whole parameter set; :data:`PARAMS` is the default used by :func:`generate_study`.

    ``t2``: the T2 appearance model of the ``v2`` world; ``None`` (the ``v1`` world) draws the T2 ratio from
    each :class:`LesionClass`'s log-normal, with no texture or oedema.
    """

    benign: LesionClass = BENIGN
    malignant: LesionClass = MALIGNANT
    tnbc: LesionClass = TNBC
    pcr: PcrEffect = PcrEffect()
    kinetics: KineticShape = KineticShape()
    shape: Shape = Shape()
    population: Population = Population()
    tissues: Tissues = Tissues()
    t2: T2Appearance | None = None


PARAMS = WorldParams()

#: The phantom worlds by name. ``v2`` differs from ``v1`` only in the lesion's T2 signal (same seeds give the
#: same labels, anatomy, lesion geometry, DCE and T1; DWI differs only through the weak T2 shine-through of
#: the lesion's S0); ``v1`` is the world of cohorts written before ``v2`` existed.
WORLDS: dict[str, WorldParams] = {"v1": PARAMS, "v2": WorldParams(t2=T2Appearance())}


def get_world(name: str) -> WorldParams:
    """The world named ``name`` (``"v1"`` or ``"v2"``)."""
    try:
        return WORLDS[name]
    except KeyError:
        raise ValueError(f"unknown phantom world {name!r}; choose from {sorted(WORLDS)}") from None
