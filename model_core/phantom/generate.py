"""``generate_study``: one synthetic multiparametric breast MRI study with ground truth.

Random streams: ``SeedSequence([seed, crc32(site.name)])`` is split into four independent streams (truth,
anatomy, lesion geometry, noise), so labels and geometry never depend on ``scale`` and the same
``(seed, site)`` always gives bitwise-identical arrays (on one machine and library stack).

Geometry: each sequence has its own axis-aligned grid (site protocol, see :mod:`model_core.phantom.sites`)
centred on the patient's field-of-view centre; the affine maps voxel ``(i, j, k)`` to RAS+ mm with
positive diagonal (canonical order: i -> Right, j -> Anterior, k -> Superior, as
:mod:`model_core.studies.study`). The lesion mask is given on the DCE grid.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_core.phantom.anatomy import FOV_CENTRE_BODY, AnatomyParams, sample_anatomy, tissue_fractions
from model_core.phantom.fields import Axes
from model_core.phantom.lesion import LesionGeometry, sample_lesion_geometry
from model_core.phantom.params import PARAMS, WorldParams
from model_core.phantom.sequences import add_noise, combine_lesion, dce_images, dwi_images, t1_image, t2_image
from model_core.phantom.sites import GridSpec, SiteProfile, get_site
from model_core.phantom.truth import CaseTruth, sample_truth
from model_core.studies.study import ClinicalInfo, Study, Volume


@dataclass
class PhantomCase:
    """A generated study with its ground truth.

    Attributes:
        study: the images (``dce = [pre, post1..postN]``, ``dwi = {b: Volume}``, ``t2``, optional ``t1``)
            and clinical info (BI-RADS, age, BPE, field strength; never the diagnosis).
        mask: lesion mask, float32 {0, 1} on the DCE grid (voxels at least half inside the lesion; never
            empty, see :func:`lesion_mask`).
        truth: every label and latent lesion attribute.
        site: the site profile used.
        seed: the generator seed; ``generate_study(seed, site.name, scale=scale)`` reproduces the case.
        scale: resolution factor (1 = the site's demo matrices).
        lesion_centre_mm: world RAS position of the lesion centre.
    """

    study: Study
    mask: Volume
    truth: CaseTruth
    site: SiteProfile
    seed: int
    scale: float
    lesion_centre_mm: tuple[float, float, float]

    @property
    def case_id(self) -> str:
        return self.study.study_id

    @property
    def patient_id(self) -> str:
        """Non-identifying DICOM PatientID, ``PHANTOM-xxxxxxxx``."""
        return patient_id(self.seed, self.site.name)

    def labels(self) -> dict[str, Any]:
        """Flat label record (one cohort-manifest row without paths)."""
        t = self.truth
        les = t.lesion
        return {
            "case_id": self.case_id, "seed": self.seed, "site": self.site.name, "malignant": int(t.malignant),
            "birads": t.birads, "birads_subcategory": t.birads_subcategory, "age": t.age, "bpe": t.bpe,
            "density": t.density, "field_strength": t.field_strength, "tnbc": int(t.tnbc),
            "pcr": "" if t.pcr is None else int(t.pcr), "lesion_diameter_mm": round(les.diameter_mm, 2),
            "shape": les.shape, "margin": les.margin, "enhancement_pattern": les.pattern,
            "kinetic_type": les.kinetic_type, "adc": round(les.adc, 4), "t2_ratio": round(les.t2_ratio, 4),
            "side": les.side, "n_post": self.site.n_post, "b_max": max(self.site.b_values),
            "t2_kind": les.t2_kind, "t2_oedema": round(les.t2_oedema, 4),
        }  # fmt: skip


def patient_id(seed: int, site: str) -> str:
    return "PHANTOM-" + hashlib.sha256(f"{site}:{seed}".encode()).hexdigest()[:8].upper()


def case_streams(seed: int, site: SiteProfile) -> list[np.random.SeedSequence]:
    """The four independent seed sequences (truth, anatomy, lesion, noise) of one case."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.SeedSequence([int(seed), zlib.crc32(site.name.encode())]).spawn(4)


def grid_affine(spec: GridSpec, centre_world: np.ndarray) -> np.ndarray:
    """Voxel -> RAS affine of ``spec`` centred at ``centre_world + spec.offset_mm``: float64 ``(4, 4)``."""
    aff = np.eye(4)
    sp = np.asarray(spec.spacing, dtype=np.float64)
    aff[:3, :3] = np.diag(sp)
    centre = np.asarray(centre_world, np.float64) + np.asarray(spec.offset_mm)
    aff[:3, 3] = centre - sp * (np.asarray(spec.shape) - 1) / 2.0
    return aff


def lesion_mask(fraction: np.ndarray) -> np.ndarray:
    """Binary float32 mask from lesion partial volumes: voxels at least half inside the lesion, or the
    single most-covered voxel when the lesion is smaller than half a voxel everywhere (never empty)."""
    mask = (fraction >= 0.5).astype(np.float32)
    if not mask.any() and fraction.max() > 0:
        mask[np.unravel_index(int(np.argmax(fraction)), fraction.shape)] = 1.0
    return mask


class _Renderer:
    """Caches tissue maps per grid so sequences sharing a grid (T1/T2) compute them once."""

    def __init__(self, anat: AnatomyParams, lesion: LesionGeometry) -> None:
        self.anat, self.lesion = anat, lesion
        self._cache: dict[bytes, dict[str, np.ndarray]] = {}

    def maps(
        self, affine: np.ndarray, shape: tuple[int, int, int], dce: bool = False
    ) -> dict[str, np.ndarray]:
        """Tissue + lesion maps; ``dce`` adds the enhancement fields (BPE, lesion heterogeneity)."""
        key = affine.tobytes() + np.asarray(shape).tobytes() + bytes([dce])
        if key not in self._cache:
            axes = Axes.from_affine(affine, shape)
            tissues = tissue_fractions(self.anat, axes, with_bpe=dce)
            self._cache[key] = combine_lesion(tissues, self.lesion.maps(axes, with_hetero=dce))
        return self._cache[key]


def _volume(data: np.ndarray, aff: np.ndarray, **meta: Any) -> Volume:
    return Volume(np.ascontiguousarray(data, dtype=np.float32), aff.copy(), source="phantom", meta=meta)


def _clinical(truth: CaseTruth, prof: SiteProfile) -> ClinicalInfo:
    """The clinical facts a reader would have: BI-RADS, age and the phantom's description."""
    return ClinicalInfo(
        birads=truth.birads,
        age=truth.age,
        extra={
            "birads_subcategory": truth.birads_subcategory, "bpe": truth.bpe, "density": truth.density,
            "field_strength": truth.field_strength, "site": prof.name, "phantom": True,
        },
    )  # fmt: skip


def generate_study(
    seed: int,
    site: str | SiteProfile = "ds1",
    *,
    label: int | None = None,
    scale: float = 1.0,
    params: WorldParams = PARAMS,
    with_t1: bool | None = None,
) -> PhantomCase:
    """Generate one phantom study.

    Args:
        seed: non-negative integer; with ``site`` it fixes everything.
        site: ``"ds1"``, ``"ds2"``, ``"ds3"`` or a :class:`SiteProfile`.
        label: force malignant (1) or benign (0); None draws from the site's prevalence.
        scale: matrix-size factor (same field of view); 1 = demo resolution, e.g. 0.5 for fast tests.
        params: generative-model parameters (default :data:`model_core.phantom.params.PARAMS`).
        with_t1: include a non-contrast T1 (default: when the site protocol has a T1 grid).

    Returns:
        The :class:`PhantomCase` (study, lesion mask on the DCE grid, truth).
    """
    prof = get_site(site)
    s_truth, s_anat, s_lesion, s_noise = case_streams(seed, prof)
    truth = sample_truth(np.random.default_rng(s_truth), prof, params, label)
    anat = sample_anatomy(np.random.default_rng(s_anat), truth, params.tissues)
    lesion = sample_lesion_geometry(np.random.default_rng(s_lesion), truth, anat, params)
    proto = prof.protocols[truth.protocol_index]
    noise_rng = np.random.default_rng(s_noise)
    centre = np.asarray(FOV_CENTRE_BODY) + np.asarray(anat.offset)
    render = _Renderer(anat, lesion)
    case_id = f"{prof.name}-{seed:010d}"

    def grid(spec: GridSpec) -> tuple[np.ndarray, tuple[int, int, int], Axes]:
        s = spec.scaled(scale)
        aff = grid_affine(s, centre)
        return aff, s.shape, Axes.from_affine(aff, s.shape)

    # DCE
    aff, shape, axes = grid(proto.dce)
    maps = render.maps(aff, shape, dce=True)
    bias = anat.bias(axes, prof.bias_amplitude)
    clean = dce_images(maps, truth, params, prof.post_times_s, prof.dce_fat_sat)
    times = (0.0, *prof.post_times_s)
    dce = [
        _volume(add_noise(noise_rng, img, proto.noise_dce, bias), aff, role="dce", phase=p, time_s=times[p],
            series_description="DCE pre" if p == 0 else f"DCE post{p}")
        for p, img in enumerate(clean)
    ]  # fmt: skip
    mask = _volume(lesion_mask(maps["lesion"]), aff, role="mask")
    # DWI
    aff, shape, axes = grid(proto.dwi)
    bias = anat.bias(axes, prof.bias_amplitude)
    dwi = {
        b: _volume(add_noise(noise_rng, img, proto.noise_dwi, bias, rician=True), aff, role="dwi", b_value=b,
               series_description=f"DWI b{int(b)}")
        for b, img in dwi_images(render.maps(aff, shape), truth, params, prof.b_values, anat.fgt_adc).items()
    }  # fmt: skip
    # T2
    aff, shape, axes = grid(proto.t2)
    bias = anat.bias(axes, prof.bias_amplitude)
    t2_clean = t2_image(render.maps(aff, shape), truth, params, prof.t2_fat_sat, axes.spacing)
    t2 = _volume(add_noise(noise_rng, t2_clean, proto.noise_t2, bias), aff, role="t2", series_description="T2")
    # T1 (optional)
    t1 = None
    if (proto.t1 is not None) if with_t1 is None else with_t1:
        aff, shape, axes = grid(proto.t1 or proto.t2)
        bias = anat.bias(axes, prof.bias_amplitude)
        t1_clean = t1_image(render.maps(aff, shape), params)
        t1 = _volume(
            add_noise(noise_rng, t1_clean, proto.noise_t1, bias), aff, role="t1", series_description="T1"
        )
    study = Study(dce=dce, dwi=dwi, t2=t2, t1=t1, clinical=_clinical(truth, prof), study_id=case_id)
    return PhantomCase(
        study=study, mask=mask, truth=truth, site=prof, seed=int(seed), scale=float(scale),
        lesion_centre_mm=tuple(float(v) for v in lesion.centre),  # type: ignore[arg-type]
    )  # fmt: skip
