"""``mome demo``: a synthetic study through the whole pipeline, no files needed.

A phantom study (fixed seed) is analysed by the shipped demo model (``resources/demo.safetensors`` +
``demo.card.json``: trained on synthetic phantoms, not for clinical use) when it is present, otherwise by an
**untrained** demo-preset network whose numbers are meaningless; both are said loudly. The output folder
gets ``result.json``, ``saliency_<modality>.nii.gz`` and, in ``study/``, the analysed study itself (NIfTI
files, its lesion mask and ``study.json``), so the saliency volumes can be overlaid on their images
(``mome view <out>/study``). The CLI prints a human summary last. The untrained network is
:func:`model_core.network.factory.untrained_model`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from model_core.engine.predictor import TTA, Predictor, RunOptions
from model_core.engine.progress import ProgressFn
from model_core.engine.result import Result
from model_core.network.config import MomeConfig
from model_core.network.factory import untrained_model
from model_core.phantom import generate_study
from model_core.phantom.params import get_world
from model_core.preprocessing.preprocess import PreprocessOptions
from model_core.weights.native import RESEARCH_USE

log = logging.getLogger(__name__)

DEMO_SEED = 1
"""A benign BI-RADS 4 phantom (ds1), for the downgrade use case. The shipped demo model gives it p 0.039,
just above its BI-RADS 4 threshold (0.030), so the demo shows "biopsy supported"; ``mome demo --seed 15``
(benign BI-RADS 4, p 0.029) shows the downgrade path."""
DEMO_IG_STEPS = RunOptions().ig_steps
"""IG steps of the demo: the Run's default (16 on a path scanned from the blurred baseline, doubled while
the completeness error is above 5 %). With the shipped demo model the error on the demo case is 1.1 % at 16
steps. The error is printed with every result."""
RESOURCES = Path(__file__).resolve().parents[1] / "resources"
DEMO_WEIGHTS = RESOURCES / "demo.safetensors"
UNTRAINED = "UNTRAINED network: numbers are meaningless"
TRAINED_ON_PHANTOMS = "demo weights trained on synthetic phantoms, not for clinical use"
STUDY_FOLDER = "study"
"""Sub-folder of the demo's output folder holding the analysed study."""
DEMO_PREPROCESS = PreprocessOptions(crop=("dce", "dwi", "t2"))
"""The demo preset's preprocessing (its DWI canvas holds the breast crop, not the whole field of view), as
recorded in the shipped demo model's card; used for an untrained demo-preset network."""


def untrained_preprocess(preset: str) -> PreprocessOptions | None:
    """Preprocessing for an untrained ``preset`` network: :data:`DEMO_PREPROCESS` for ``demo``, else
    ``None`` (the Predictor's default, the paper's)."""
    return DEMO_PREPROCESS if preset == "demo" else None


def demo_weights_path() -> Path | None:
    """The shipped demo weights, or ``None`` when they are not installed."""
    return DEMO_WEIGHTS if DEMO_WEIGHTS.is_file() else None


def demo_predictor(
    weights: str | os.PathLike[str] | None = None, *, preset: str = "demo", **kw: Any
) -> tuple[Predictor, str]:
    """The demo Predictor and its notice. ``weights``: a native model; default the shipped demo weights,
    else an untrained ``preset`` network."""
    path = Path(weights) if weights is not None else demo_weights_path()
    if path is not None:
        return Predictor.from_native(path, **kw), TRAINED_ON_PHANTOMS
    kw.setdefault("preprocess_options", untrained_preprocess(preset))
    return Predictor(untrained_model(MomeConfig.preset(preset)), source="untrained (seed 0)", **kw), UNTRAINED


def summary_lines(result: Result, notice: str) -> list[str]:
    """A short human-readable summary."""
    lines = [f"*** {notice} ***", result.intended_use or RESEARCH_USE,
             f"malignancy probability: {result.probability:.4f}"
             + (f" (TTA {result.tta['kind']}, {result.tta['n_versions']} versions, spread {result.tta['std']:.4f})"
                if result.tta["kind"] != "none" else " (single centred pass, no TTA)")]
    subs = ", ".join(f"{k}={'n/a' if v is None else f'{v:.4f}'}" for k, v in result.subsets.items())
    lines.append(f"with only these sequences: {subs}")
    chk = result.shapley_check
    empty = (result.shapley_empty or {}).get("description", "v(none)")
    lines.append("Shapley: " + ", ".join(f"{m}={v:+.4f}" for m, v in result.shapley.items())
                 + f"; sum {chk['sum_phi']:+.4f} = v(full) {chk['v_full']:.4f} - v(empty) {chk['v_empty']:.4f} "
                 f"({empty})")
    for m, why in result.unused_modalities.items():
        lines.append(f"{m}: not used by this model ({why})")
    if result.explain is not None:
        e = result.explain
        lines.append(f"saliency: IG {e['n_steps']} steps from {e['baseline']}; F(input) {e['f_input']:+.3f}, "
                     f"F(baseline) {e['f_baseline']:+.3f}, completeness error {100 * e['relative_error']:.2f}% "
                     f"({e['seconds']:.1f} s)")
    d = result.decision
    lines.append(f"BI-RADS {d.get('birads') or '?'}: {d['text']}" + (f" ({d['note']})" if d.get("note") else ""))
    lines.append(f"*** {notice} ***")
    return lines


def run_demo(
    out_dir: str | os.PathLike[str] | None = None, *, seed: int | None = None, tta: TTA = "none",
    explain: bool = True, ig_steps: int = DEMO_IG_STEPS, weights: str | os.PathLike[str] | None = None,
    preset: str = "demo", scale: float = 1.0, progress: ProgressFn | None = None, log_summary: bool = True,
    **predictor_kw: Any,
) -> tuple[Result, str]:
    """Generate the demo study, analyse it, write the outputs and the study (when ``out_dir``) and log a
    summary (unless ``log_summary=False``: the caller shows it).

    Returns:
        ``(result, notice)``; ``notice`` is :data:`UNTRAINED` or :data:`TRAINED_ON_PHANTOMS`.
    """
    seed = DEMO_SEED if seed is None else seed
    predictor, notice = demo_predictor(weights, preset=preset, **predictor_kw)
    log.warning("%s", notice)
    world = predictor.card.phantom_world if predictor.card is not None else "v1"
    case = generate_study(seed, scale=scale, params=get_world(world))
    log.info("phantom study %s (SYNTHETIC): %s, BI-RADS %s, ground truth %s", case.study.study_id,
             "+".join(case.study.modalities), case.study.clinical.birads,
             "malignant" if case.truth.malignant else "benign")
    result = predictor.run(case.study, options=RunOptions(tta=tta, explain=explain, ig_steps=ig_steps),
                           progress=progress)
    result.provenance["demo"] = {"notice": notice, "phantom_seed": seed, "phantom_scale": scale,
                                 "phantom_world": world,
                                 "synthetic": True, "ground_truth_malignant": bool(case.truth.malignant)}
    if out_dir is not None:
        from model_core.phantom.writers import write_nifti_study

        paths = result.write(out_dir)
        paths["study"] = write_nifti_study(case, Path(out_dir) / STUDY_FOLDER)
        log.info("wrote %s", ", ".join(sorted(str(p) for p in paths.values())))
    if log_summary:
        for line in summary_lines(result, notice):
            log.info("%s", line)
    return result, notice
