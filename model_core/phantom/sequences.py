"""Signal models: tissue fractions -> noise-free images -> noisy magnitude images, per sequence.

For a voxel with tissue fractions ``f_t`` (partial volumes) the noise-free signal is ``sum_t f_t S_t``:

* T1 / T2 / DCE pre-contrast: ``S_t`` from :class:`model_core.phantom.params.Tissues` (fat-suppressed
  tables where the site says so). Lesion T2 = ``t2_ratio * S_fgt`` (the necrotic core of rim lesions x
  ``rim_core_t2_factor``, its ADC + ``rim_core_adc_shift``).
* DCE post phase at time ``t``: pre + ``ref * sum_t f_t E_t(t)`` with
  ``E(t) = A (1 - exp(-t / tau)) (1 + beta * clip((t - t_early) / (t_late - t_early), 0))``. FGT enhances
  with the case's BPE level (persistent, ``tau = bpe_tau_s``) modulated by a patchy field; the lesion's
  enhancement is its truth curve times a spatial factor (homogeneous ~1; heterogeneous: random field;
  rim: core x ``rim_core_enhancement``).
* DWI at b: ``sum_t f_t S0_t exp(-b ADC_t)`` (partial volumes mix signals, not ADCs). Lesion
  ``S0 = S0_lesion * t2_ratio ** lesion_s0_t2_exponent`` (weak T2 shine-through, so that the T2-bright
  benign lesions' higher S0 does not cancel their higher ADC in the highest-b image, the model's only DWI
  input).

Every image is multiplied by a smooth coil-sensitivity field. Noise: DCE, T1 and T2 get ``|S + n|`` with
Gaussian ``n`` (a folded normal: Rician in the background, Gaussian where SNR is high); DWI gets true Rician
noise ``|S + n1 + i n2|``. Noise sd per sequence and site is in :class:`model_core.phantom.sites.Protocol`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from model_core.phantom.params import KineticShape, WorldParams
from model_core.phantom.truth import CaseTruth

Maps = dict[str, np.ndarray]
_NORMAL = ("fat", "fgt", "skin", "muscle", "body", "lung", "heart")


def curve(t: float, peak: float, tau: float, beta: float, k: KineticShape) -> float:
    """Enhancement ``E(t)`` of the kinetic model (see module docstring); 0 for ``t <= 0``."""
    if t <= 0:
        return 0.0
    late = max(0.0, (t - k.t_early_s) / (k.t_late_s - k.t_early_s))
    return float(peak * (1.0 - np.exp(-t / tau)) * (1.0 + beta * late))


def _mix(maps: Maps, table: dict[str, float], lesion_solid: float, lesion_core: float) -> np.ndarray:
    out = np.zeros(maps["fat"].shape, np.float32)
    for t in _NORMAL:
        v = table[t]
        if v:
            out += maps[t] * np.float32(v)
    out += maps["solid"] * np.float32(lesion_solid) + maps["core"] * np.float32(lesion_core)
    return out


def combine_lesion(maps: Maps, lesion: Maps) -> Maps:
    """Insert the lesion: it replaces fat and FGT (the soft tissue) where it lies.

    Adds ``solid`` (lesion minus core) and ``core`` fractions and the lesion enhancement weight; scales
    ``fat`` and ``fgt`` by ``1 - lesion``.
    """
    raw = lesion["lesion"]
    frac = raw * maps["soft"]
    core = np.minimum(lesion["core"], raw) * maps["soft"]
    out = dict(maps)
    out["fat"] = maps["fat"] * (1.0 - raw)
    out["fgt"] = maps["fgt"] * (1.0 - raw)
    out["solid"] = (frac - core).astype(np.float32, copy=False)
    out["core"] = core.astype(np.float32, copy=False)
    out["lesion"] = frac.astype(np.float32, copy=False)
    out["hetero"] = lesion["hetero"]
    return out


def _core_t2_factor(truth: CaseTruth, params: WorldParams) -> float:
    """T2 (and DWI S0) factor of the lesion core: necrotic (brighter) only for rim-enhancing lesions."""
    return params.shape.rim_core_t2_factor if truth.lesion.pattern == "rim" else 1.0


def t2_image(
    maps: Maps, truth: CaseTruth, params: WorldParams, fat_sat: bool, spacing_mm: tuple[float, float, float]
) -> np.ndarray:
    """Noise-free T2-weighted image ``(I, J, K)`` on a grid of ``spacing_mm``.

    With a peritumoral oedema (``truth.lesion.t2_oedema > 0``, v2 world) a shell of about
    ``params.t2.oedema_width_mm`` around the lesion takes ``t2_oedema x`` the fibroglandular signal.
    """
    fat_sat = fat_sat or (params.t2 is not None and params.t2.fat_sat)
    table = params.tissues.table("t2_fs" if fat_sat else "t2")
    solid = truth.lesion.t2_ratio * table["fgt"]
    out = _mix(maps, table, solid, solid * _core_t2_factor(truth, params))
    if truth.lesion.t2_oedema > 0.0 and params.t2 is not None:
        shell = oedema_shell(maps["lesion"], maps["soft"], spacing_mm, params.t2.oedema_width_mm)
        out = out * (1.0 - shell) + shell * np.float32(truth.lesion.t2_oedema * table["fgt"])
    return out


def oedema_shell(
    lesion: np.ndarray, soft: np.ndarray, spacing_mm: tuple[float, float, float], width_mm: float
) -> np.ndarray:
    """Fraction ``(I, J, K)`` of each voxel in the oedema shell: soft tissue within about ``width_mm`` of
    the lesion (a Gaussian halo of the lesion's partial volume), outside the lesion."""
    sigma = [0.5 * width_mm / float(s) for s in spacing_mm]
    halo = ndi.gaussian_filter(lesion.astype(np.float32), sigma, mode="constant")
    return (np.clip(3.0 * halo, 0.0, 1.0) * (1.0 - lesion) * soft).astype(np.float32)


def t1_image(maps: Maps, params: WorldParams) -> np.ndarray:
    """Noise-free non-contrast, non-fat-suppressed T1 image ``(I, J, K)``."""
    table = params.tissues.table("t1")
    return _mix(maps, table, table["lesion"], table["lesion"])


def dwi_images(maps: Maps, truth: CaseTruth, params: WorldParams, b_values: tuple[float, ...],
               fgt_adc: float) -> dict[float, np.ndarray]:  # fmt: skip
    """Noise-free DWI per b-value (s/mm^2): ``{b: (I, J, K)}``."""
    tis = params.tissues
    s0 = tis.table("dwi_s0")
    adc = tis.table("adc")
    adc["fgt"] = fgt_adc
    les_s0 = s0["lesion"] * truth.lesion.t2_ratio**tis.lesion_s0_t2_exponent
    core_s0 = les_s0 * _core_t2_factor(truth, params) ** tis.lesion_s0_t2_exponent
    core_adc = truth.lesion.adc + (params.shape.rim_core_adc_shift if truth.lesion.pattern == "rim" else 0.0)
    out = {}
    for b in b_values:
        table = {t: s0[t] * float(np.exp(-b * 1e-3 * adc[t])) for t in _NORMAL}
        solid = les_s0 * float(np.exp(-b * 1e-3 * truth.lesion.adc))
        core = core_s0 * float(np.exp(-b * 1e-3 * core_adc))
        out[float(b)] = _mix(maps, table, solid, core)
    return out


def lesion_enhancement_weight(maps: Maps, truth: CaseTruth, params: WorldParams) -> np.ndarray:
    """Spatial factor of the lesion's enhancement, weighted by partial volume ``(I, J, K)``."""
    sp = params.shape
    amp = {"homogeneous": 0.08, "heterogeneous": sp.hetero_amp, "rim": 0.15}[truth.lesion.pattern]
    spatial = np.clip(1.0 + amp * maps["hetero"], 0.1, None)
    core_w = sp.rim_core_enhancement if truth.lesion.pattern == "rim" else 1.0
    return ((maps["solid"] + core_w * maps["core"]) * spatial).astype(np.float32, copy=False)


def dce_images(maps: Maps, truth: CaseTruth, params: WorldParams, times_s: tuple[float, ...],
               fat_sat: bool) -> list[np.ndarray]:  # fmt: skip
    """Noise-free DCE ``[pre, post_1, ..., post_N]``, each ``(I, J, K)``."""
    tis = params.tissues
    k = params.kinetics
    table = tis.table("dce_fs" if fat_sat else "dce")
    pre = _mix(maps, table, table["lesion"], table["lesion"])
    les_w = lesion_enhancement_weight(maps, truth, params)
    bpe_w = (maps["fgt"] * maps["bpe"]).astype(np.float32, copy=False)
    les = truth.lesion
    enh = {name: (a, tau, beta) for name, a, tau, beta in tis.enhancement}
    out = [pre]
    for t in times_s:
        phase = pre.copy()
        phase += les_w * np.float32(tis.enhancement_ref * curve(t, les.peak_enhancement, les.uptake_tau_s,
                                                                les.late_slope, k))  # fmt: skip
        phase += bpe_w * np.float32(tis.enhancement_ref * curve(t, truth.bpe_level, tis.bpe_tau_s, 0.0, k))
        for name, (a, tau, beta) in enh.items():
            if a:
                phase += maps[name] * np.float32(tis.enhancement_ref * curve(t, a, tau, beta, k))
        out.append(phase)
    return out


def add_noise(
    rng: np.random.Generator, image: np.ndarray, sd: float, bias: np.ndarray, rician: bool = False
) -> np.ndarray:
    """Apply the coil field and magnitude noise; returns float32 ``>= 0`` of the same shape."""
    s = image * bias
    n1 = rng.standard_normal(s.shape, dtype=np.float32)
    s += np.float32(sd) * n1
    if rician:
        n2 = rng.standard_normal(s.shape, dtype=np.float32)
        return np.sqrt(s * s + (np.float32(sd) * n2) ** 2).astype(np.float32, copy=False)
    return np.abs(s, out=s)
