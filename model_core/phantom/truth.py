"""Ground truth of one phantom study: labels and the lesion's latent attributes.

Sampled first, from its own random stream, so labels never depend on the image resolution (``scale``).
The order of draws is fixed; changing it changes every cohort, so append new draws at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_core.phantom.params import (
    BPE_LEVELS,
    DENSITIES,
    KINETICS,
    PATTERNS,
    SHAPES,
    T2_KINDS_BENIGN,
    LesionClass,
    T2Appearance,
    WorldParams,
)
from model_core.phantom.sites import Protocol, SiteProfile


@dataclass(frozen=True)
class LesionTruth:
    """Latent attributes of the single lesion (see :mod:`model_core.phantom.params` for units)."""

    diameter_mm: float  # equivalent diameter of the smooth base ellipsoid (spicules extend beyond)
    shape: str  # SHAPES
    margin: str  # "circumscribed", "irregular", "spiculated"
    pattern: str  # PATTERNS: internal enhancement
    kinetic_type: str  # KINETICS: delayed-phase curve type
    peak_enhancement: float  # A of E(t) = A (1 - exp(-t/tau)) (1 + beta late(t))
    uptake_tau_s: float
    late_slope: float  # beta
    adc: float  # 1e-3 mm^2/s (solid part)
    t2_ratio: float  # lesion / fibroglandular T2 signal (solid part)
    side: str  # "left" or "right" breast
    t2_kind: str = "solid"  # v2 world: "cyst", "bright", "iso" (benign), "bright", "hypo" (malignant)
    t2_oedema: float = 0.0  # v2 world: T2 of the peritumoral oedema shell / fibroglandular T2 (0 = none)

    def initial_rise(self, t_s: float = 90.0) -> float:
        """E at ``t_s`` seconds (the reader's "initial rise")."""
        return float(self.peak_enhancement * (1.0 - np.exp(-t_s / self.uptake_tau_s)))


@dataclass(frozen=True)
class CaseTruth:
    """All labels of one study.

    ``tnbc`` is False and ``pcr`` None for benign studies (pCR only exists for treated cancers).
    """

    malignant: bool
    birads: str  # "2", "3", "4", "5"
    birads_subcategory: str  # "4a"/"4b"/"4c" within category 4, else equal to ``birads``
    reader_score: float  # the simulated reader's noisy Goettingen-like score
    age: float
    density: str  # "a".."d"
    fgt_fraction: float
    bpe: str  # BPE_LEVELS
    bpe_level: float  # late FGT enhancement E
    field_strength: float
    protocol_index: int
    tnbc: bool
    pcr: bool | None
    lesion: LesionTruth

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lesion"] = dataclasses.asdict(self.lesion)
        return d


def _choice(rng: np.random.Generator, names: tuple[str, ...], p: tuple[float, ...]) -> str:
    pp = np.asarray(p, dtype=np.float64)
    return names[int(rng.choice(len(names), p=pp / pp.sum()))]


def _lognormal(rng: np.random.Generator, median: float, sigma_log: float) -> float:
    return float(median * np.exp(sigma_log * rng.standard_normal()))


def _protocol(rng: np.random.Generator, site: SiteProfile) -> tuple[int, Protocol]:
    w = np.array([p.weight for p in site.protocols], dtype=np.float64)
    idx = int(rng.choice(len(w), p=w / w.sum()))
    return idx, site.protocols[idx]


def reader_points(lesion: LesionTruth) -> float:
    """Goettingen-like score (0..8): shape, margin, internal pattern, initial rise, delayed phase."""
    pts = {"round": 0.0, "oval": 0.0, "irregular": 1.0, "spiculated": 1.0}[lesion.shape]
    pts += {"circumscribed": 0.0, "irregular": 1.0, "spiculated": 1.0}[lesion.margin]
    pts += {"homogeneous": 0.0, "heterogeneous": 1.0, "rim": 2.0}[lesion.pattern]
    rise = lesion.initial_rise()
    pts += 0.0 if rise < 0.5 else (1.0 if rise < 1.0 else 2.0)
    pts += {"persistent": 0.0, "plateau": 1.0, "washout": 2.0}[lesion.kinetic_type]
    return pts


def _sample_lesion(
    rng: np.random.Generator, cls: LesionClass, params: WorldParams, pcr: bool | None
) -> LesionTruth:
    k = params.kinetics
    pe = params.pcr
    diameter = _lognormal(rng, cls.diameter_median_mm, cls.diameter_sigma_log)
    shape = _choice(rng, SHAPES, cls.shape_p)
    pattern = _choice(rng, PATTERNS, cls.pattern_p)
    kinetic = _choice(rng, KINETICS, cls.kinetic_p)
    peak = _lognormal(rng, cls.peak_median, cls.peak_sigma_log)
    tau = _lognormal(rng, cls.tau_median_s, cls.tau_sigma_log)
    lo, hi = {"persistent": k.beta_persistent, "plateau": k.beta_plateau, "washout": k.beta_washout}[kinetic]
    beta = float(rng.uniform(lo, hi))
    adc = float(cls.adc_mean + cls.adc_sd * rng.standard_normal())
    t2 = _lognormal(rng, cls.t2_median, cls.t2_sigma_log)
    side = "left" if rng.random() < 0.5 else "right"
    if pcr:
        peak *= pe.peak_factor
        tau *= pe.tau_factor
        adc += pe.adc_shift
        diameter *= pe.diameter_factor
    margin = {"round": "circumscribed", "oval": "circumscribed", "irregular": "irregular"}.get(
        shape, "spiculated"
    )
    return LesionTruth(
        diameter_mm=float(np.clip(diameter, 5.0, 40.0)),
        shape=shape,
        margin=margin,
        pattern=pattern,
        kinetic_type=kinetic,
        peak_enhancement=float(np.clip(peak, 0.15, 4.0)),
        uptake_tau_s=float(np.clip(tau, 10.0, 400.0)),
        late_slope=beta,
        adc=float(np.clip(adc, 0.5, 2.6)),
        t2_ratio=float(np.clip(t2, 0.4, 4.0)),
        side=side,
    )


def _t2_appearance(
    rng: np.random.Generator, t2: T2Appearance, lesion: LesionTruth, malignant: bool, tnbc: bool
) -> LesionTruth:
    """The lesion with its T2 kind, T2 ratio and oedema drawn from ``t2`` (the v2 world)."""
    if not malignant:
        kind = _choice(rng, T2_KINDS_BENIGN, t2.benign_kind_p)
    else:
        kind = "bright" if tnbc and rng.random() < t2.tnbc_bright_p else "hypo"
    if kind == "cyst":
        ratio = float(rng.uniform(*t2.cyst_ratio))
    else:
        median, sigma = {"bright": t2.bright_ratio, "iso": t2.iso_ratio, "hypo": t2.malignant_ratio}[kind]
        ratio = _lognormal(rng, median, sigma)
    oedema = 0.0
    if malignant and rng.random() < t2.oedema_p:
        oedema = float(rng.uniform(*t2.oedema_ratio))
    return dataclasses.replace(lesion, t2_ratio=float(np.clip(ratio, 0.4, 5.0)), t2_kind=kind, t2_oedema=oedema)


def sample_truth(
    rng: np.random.Generator, site: SiteProfile, params: WorldParams, label: int | None = None
) -> CaseTruth:
    """Draw every label and the lesion's latent attributes.

    Args:
        rng: the case's truth stream.
        site: decides the prevalence and the scanner protocol (field strength).
        params: the generative model's parameters.
        label: force malignant (1) or benign (0); None draws from ``site.prevalence``.
    """
    pop = params.population
    u_label = rng.random()
    malignant = bool(u_label < site.prevalence) if label is None else bool(int(label))
    protocol_index, protocol = _protocol(rng, site)
    mean, sd = pop.age_malignant if malignant else pop.age_benign
    age = float(np.clip(mean + sd * rng.standard_normal(), *pop.age_range))
    z_density = rng.standard_normal() - 0.035 * (age - 50.0)
    density_idx = int(np.searchsorted(pop.density_cuts, z_density))
    fgt_fraction = float(
        np.clip(pop.density_fgt_fraction[density_idx] + 0.04 * rng.standard_normal(), 0.04, 0.8)
    )
    z_bpe = 0.6 * z_density + 0.8 * rng.standard_normal() - 0.02 * (age - 50.0)
    bpe_idx = int(np.searchsorted(pop.bpe_cuts, z_bpe))
    bpe_level = float(pop.bpe_level[bpe_idx] * np.exp(0.2 * rng.standard_normal()))
    tnbc = bool(malignant and rng.random() < pop.p_tnbc)
    pcr: bool | None = None
    if malignant:
        p = params.pcr.p_pcr_tnbc if tnbc else params.pcr.p_pcr_other
        pcr = bool(rng.random() < p)
    cls = (params.tnbc if tnbc else params.malignant) if malignant else params.benign
    lesion = _sample_lesion(rng, cls, params, pcr)
    score = reader_points(lesion) + pop.reader_noise_sd * rng.standard_normal()
    if params.t2 is not None:  # drawn last: every other attribute is the v1 world's
        lesion = _t2_appearance(rng, params.t2, lesion, malignant, tnbc)
    birads = ("2", "3", "4", "5")[int(np.searchsorted(pop.birads_cuts, score))]
    sub = birads
    if birads == "4":
        sub = ("4a", "4b", "4c")[int(np.searchsorted(pop.birads4_sub_cuts, score))]
    return CaseTruth(
        malignant=malignant,
        birads=birads,
        birads_subcategory=sub,
        reader_score=float(score),
        age=round(age, 1),
        density=DENSITIES[density_idx],
        fgt_fraction=fgt_fraction,
        bpe=BPE_LEVELS[bpe_idx],
        bpe_level=bpe_level,
        field_strength=protocol.field_strength,
        protocol_index=protocol_index,
        tnbc=tnbc,
        pcr=pcr,
        lesion=lesion,
    )
