"""The synthetic phantom world: procedural multiparametric breast MRI studies with ground truth.

Everything here is SYNTHETIC and labelled as such (DICOM/NIfTI descriptions, ``study.json``,
``truth.json``). Public API::

    from model_core.phantom import generate_study, write_case, write_cohort, SITES
    case = generate_study(seed=7, site="ds1")            # PhantomCase: .study, .mask, .truth, .labels()
    case.study.dce[0].data.shape                          # (144, 112, 48) float32, RAS+ (i, j, k)
    write_case(case, "out/case7", formats=("nifti", "dicom"))
    write_cohort(200, "ds2", seed=1, out_dir="out/ds2", workers=2)   # + out/ds2/cohort.csv

Generative model (per study; all parameters in :mod:`model_core.phantom.params`, sites in
:mod:`model_core.phantom.sites`)
---------------------------------------------------------------------------------------------------
1. Labels (:mod:`.truth`). malignant ~ Bernoulli(site prevalence) unless forced; field strength from the
   site's protocol mix; age ~ Normal by class (malignant older); breast density and background
   parenchymal enhancement (BPE: minimal / mild / moderate / marked) from latent normal scores that
   fall with age (younger: denser, more BPE). Among malignant: TNBC ~ Bernoulli(0.15); pCR ~
   Bernoulli(0.45 if TNBC else 0.20). Benign: tnbc False, pcr None.
2. Lesion attributes, drawn from the class-conditional distribution ``BENIGN``, ``MALIGNANT`` or ``TNBC``:
   equivalent diameter (log-normal, clipped to 5-40 mm); shape round / oval / irregular / spiculated
   (margin follows: circumscribed / irregular / spiculated); internal enhancement homogeneous /
   heterogeneous / rim; delayed curve type persistent / plateau / washout with a late slope in the type's
   range; wash-in amplitude and time constant (log-normal); ADC (normal); T2 ratio to FGT (log-normal).
   Every attribute overlaps between classes. TNBC: rounder, more rim enhancement, T2-brighter, larger,
   slightly higher ADC. pCR (malignant only) shows before treatment as stronger, faster enhancement,
   lower ADC and a smaller tumour (``PcrEffect``).
3. Simulated reader: a Goettingen-like score (shape, margin, pattern, initial rise, delayed phase; 0-8)
   plus Normal(0, 0.6) noise, cut into BI-RADS 2 / 3 / 4 / 5 (4 split into 4a/4b/4c). The reader sees the
   DCE evidence only, so BI-RADS 2/3 are mostly benign, 5 mostly malignant and 4 is mixed; DWI and T2
   carry extra evidence inside BI-RADS 4 (the downgrade use case).
4. Anatomy (:mod:`.anatomy`), world space: prone axial body with two breast ellipsoids, skin, fat,
   thresholded smooth random-field FGT (volume fraction = density), patchy BPE field, pectoral muscle,
   lungs, heart, torso; smooth coil sensitivity. The lesion (:mod:`.lesion`) is a star-shaped solid
   (base ellipsoid x radial lobes / spicules) placed inside one breast, preferably in FGT.
5. Images (:mod:`.sequences`), each on its own grid (DCE finest, DWI coarsest): partial-volume tissue
   mixing; DCE pre + post phases with ``E(t) = A (1 - exp(-t / tau)) (1 + beta late(t))``; DWI
   ``S0 exp(-b ADC)`` per b-value; T2 (and optional T1) signal tables; magnitude noise per site.
   The lesion mask (DCE grid) overlays the lesion in every sequence because all are rendered from the
   same world-space objects.

Worlds (:data:`model_core.phantom.params.WORLDS`): ``v1`` (the default, above) and ``v2``, where lesions
get their breast-MRI T2 appearance (benign cysts and T2-bright fibroadenomas, iso- to hypointense cancers
with peritumoral oedema, fat-suppressed T2 at every site; :class:`~model_core.phantom.params.T2Appearance`)
and nothing else changes; ``generate_study(..., params=get_world("v2"))``, ``write_cohort(..., world="v2")``.

Evidence split (``python -m model_core.evaluation.separability --site ds1 --n 200 --scale 1.0``: hand
features inside the true mask, 5-fold logistic). ds1: single features AUROC 0.93 (DCE washout), 0.92
(initial rise), 0.79 (shape irregularity), 0.96 (DWI ADC), 0.95 (T2 darkness); logistic on the DCE
features 0.974, DCE + DWI 0.998, DCE + T2 0.992, all 1.000 (BI-RADS 4 only: 0.90 -> 1.00); median
generation 0.24 s per study. These features
are measured inside the true mask; a network must also find the lesion, which is why the DWI lesion is
made conspicuous at high b (bright against FGT and skin; see :mod:`.params`), as in clinical DWI.
"""

from __future__ import annotations

from model_core.phantom.cohort import case_seed, write_cohort
from model_core.phantom.generate import PhantomCase, generate_study
from model_core.phantom.params import PARAMS, WorldParams
from model_core.phantom.sites import SITES, GridSpec, Protocol, SiteProfile, get_site
from model_core.phantom.truth import CaseTruth, LesionTruth
from model_core.phantom.writers import write_case

__all__ = [
    "PARAMS", "SITES", "CaseTruth", "GridSpec", "LesionTruth", "PhantomCase", "Protocol", "SiteProfile",
    "WorldParams", "case_seed", "generate_study", "get_site", "write_case", "write_cohort",
]  # fmt: skip
