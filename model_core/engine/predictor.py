"""The Predictor: one call from a :class:`~model_core.studies.study.Study` to a complete
:class:`~model_core.engine.result.Result`.

Pipeline, one method a stage (:meth:`Predictor.prepare`, :meth:`~Predictor.encode`,
:meth:`~Predictor.subsets`, :meth:`~Predictor.explain`, :meth:`~Predictor.decide`; :meth:`~Predictor.run` composes
them): preprocess -> canvases for each TTA version -> encode every modality once (the
subset cache, :mod:`model_core.engine.subsets`) -> the 8 subset probabilities from the cache -> exact Shapley
values (:mod:`model_core.engine.shapley`) -> integrated gradients on the centred canvas mapped back to each input's
voxel grid (:mod:`model_core.engine.explain`) -> the BI-RADS 4 rule (:mod:`model_core.engine.decision`) -> provenance
and an audit line (:mod:`model_core.engine.audit`).

Semantics:

* ``tta="none"``: one canvas, the val/test transform (centred, unflipped). ``"interactive"``: 6 versions
  (centred x 6 flips); ``"full"``: the paper's 54. Probabilities (never logits) are averaged; every subset
  value and hence the Shapley values use the same versions, so ``subsets["dce+dwi+t2"] == probability``.
* Saliency is computed on the centred, unflipped canvas whatever the TTA setting.
* A modality the study lacks: subsets needing it are ``None``; its Shapley value is exactly 0.

Entry points, one input type each: :meth:`Predictor.run` (a :class:`Study`), :meth:`Predictor.run_prepared`
(a :class:`Prepared` study) and :meth:`Predictor.run_canvases` (ready canvases).

No global state: the instance owns its model, its :class:`~model_core.runtime.Runtime` and the last run's
cache. Thread count and deterministic-algorithm flags are process-wide in torch; the Runtime sets them for
the duration of each call and restores them afterwards.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_core.engine.audit import append_audit, audit_record, default_audit_path, hash_label
from model_core.engine.baselines import baselines_for, canvas_regions, describe
from model_core.engine.card import intended_use
from model_core.engine.card import preprocess_options as card_preprocess_options
from model_core.engine.decision import Birads4Threshold, decide, threshold_from_card
from model_core.engine.explain import integrated_gradients, n_batches, on_canvas, to_native
from model_core.engine.options import TTA, RunOptions
from model_core.engine.progress import ProgressFn, Steps, StopFn
from model_core.engine.provenance import preprocessing_facts, run_provenance, state_sha256, study_facts
from model_core.engine.reference import empty_value, reference_from_card, unused_modalities
from model_core.engine.result import Result, Saliency
from model_core.engine.shapley import efficiency, shapley_values
from model_core.engine.subsets import (
    PRIOR_KEY,
    SUBSETS,
    Scores,
    SubsetCache,
    build_cache,
    n_available,
    subset_key,
    subset_probabilities,
)
from model_core.errors import Cancelled, ConfigError
from model_core.network.config import MODALITIES, MomeConfig
from model_core.network.mome import Mome
from model_core.preprocessing.preprocess import Prepared, PreprocessOptions, preprocess
from model_core.preprocessing.tta import fit, iter_tta_batches, tta_canvases
from model_core.runtime import Dtype, Runtime
from model_core.studies.study import Study
from model_core.weights.native import ModelCard, load_native, sha256_file
from model_core.weights.official import load_official_state_dict

log = logging.getLogger(__name__)

Canvases = Mapping[str, "torch.Tensor | None"]
"""Ready canvases ``modality -> (1, C, X, Y, Z)`` at a model's canvas sizes (``None``: modality absent)."""


@dataclass
class _Inputs:
    """One Run's input after its entry point: a Prepared study or ready canvases, plus study facts."""

    prepared: Prepared | None
    canvases: dict[str, torch.Tensor] | None
    modalities: tuple[str, ...]
    birads: str | None
    facts: dict[str, Any] = field(default_factory=dict)


class Predictor:
    """Runs MOME on studies. See the module docstring.

    Args:
        model: a :class:`Mome` (moved to the runtime's device, put in eval mode).
        card: its model card (BI-RADS 4 threshold, provenance), if any.
        runtime: device, dtype, threads and determinism (:class:`~model_core.runtime.Runtime`); when
            ``None`` it is built from ``device``, ``dtype`` and ``threads``.
        device, dtype, threads: the :class:`Runtime` fields, for callers without a Runtime.
        preprocess_options: :class:`PreprocessOptions` (default: the card's, i.e. those the model was
            trained with; without a card the paper's).
        audit_log: JSONL file for audit lines; ``None``: ``$MOME_AUDIT_LOG`` or off.
        model_sha256: id of the weights (default: the card's, else a hash of the state dict).
        source: where the weights came from (file name, "untrained", ...), for provenance.
        keep_cache: keep the last run's subset cache in :attr:`cache` (for :meth:`subset_probability`).
    """

    def __init__(
        self, model: Mome, card: ModelCard | None = None, *, runtime: Runtime | None = None,
        device: str | torch.device = "auto", dtype: Dtype = "fp32", threads: int | None = None,
        preprocess_options: PreprocessOptions | None = None, audit_log: str | os.PathLike[str] | None = None,
        model_sha256: str | None = None, source: str = "in-memory", keep_cache: bool = True,
    ) -> None:
        self.runtime = runtime or Runtime(str(device), dtype, threads)
        self.device = self.runtime.torch_device()
        self.model = model.to(self.device).eval()
        self.card = card
        if preprocess_options is None:
            preprocess_options = card_preprocess_options(card)
        self.preprocess_options = preprocess_options
        self.audit_log = Path(audit_log) if audit_log is not None else default_audit_path()
        self.threshold: Birads4Threshold | None = threshold_from_card(card)
        self.reference = reference_from_card(card)
        self.source = source
        self.keep_cache = keep_cache
        self.cache: SubsetCache | None = None
        self._sha = model_sha256 or (card.weights_sha256 if card is not None and card.weights_sha256 else None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_native(cls, path: str | os.PathLike[str], **kw: Any) -> Predictor:
        """Load ``<name>.safetensors`` + ``<name>.card.json`` (sha256 verified) and wrap it."""
        model, card = load_native(path)
        return cls(model, card, source=Path(path).name, **kw)

    @classmethod
    def from_official(cls, path: str | os.PathLike[str], cfg: MomeConfig | None = None, **kw: Any) -> Predictor:
        """The authors' ``.pth`` (strict, safe loading) into a model of config ``cfg`` (default: base)."""
        model = Mome(cfg or MomeConfig(), init=False)
        load_official_state_dict(model, path)
        return cls(model, kw.pop("card", None), model_sha256=sha256_file(path), source=Path(path).name, **kw)

    @property
    def cfg(self) -> MomeConfig:
        return self.model.cfg

    @property
    def dtype(self) -> Dtype:
        return self.runtime.dtype

    @property
    def threads(self) -> int | None:
        return self.runtime.threads

    @property
    def model_sha256(self) -> str:
        if self._sha is None:
            self._sha = state_sha256(self.model)
        return self._sha

    # ------------------------------------------------------------------ context
    def amp(self) -> AbstractContextManager[Any]:
        """The runtime's autocast on this Predictor's device."""
        return self.runtime.amp(self.device)

    @contextmanager
    def session(self) -> Iterator[None]:
        """The runtime's threads and determinism for the duration of a call."""
        with self.runtime.session(self.device):
            yield

    def provenance(self, options: RunOptions | None = None) -> dict[str, Any]:
        """Model id, versions, device, dtype, threads, determinism flags and settings."""
        return run_provenance(self, asdict(options or RunOptions()))

    # ------------------------------------------------------------------ stages
    def prepare(self, study: Study) -> Prepared:
        """Stage 1: preprocess a study for this model's canvases (no model call)."""
        return preprocess(study, self.cfg.sizes, self.preprocess_options)

    def encode(self, prepared: Prepared, tta: TTA = "none", *, options: RunOptions | None = None,
               steps: Steps | None = None) -> SubsetCache:
        """Stage 2: canvases for every TTA version, each modality encoded once: the subset cache."""
        opt = options or RunOptions(tta=tta)
        fitted = fit(prepared.arrays, self.cfg.sizes, opt.resize)
        batches = ((v, t) for v, t, _ in iter_tta_batches(fitted, opt.versions(), opt.tta_batch, self.device))
        with self.session(), self.amp():
            return build_cache(self.model, batches, steps=steps)

    def encode_canvases(self, canvases: Canvases, *, steps: Steps | None = None) -> SubsetCache:
        """Stage 2 for ready canvases (one version, centred and unflipped)."""
        tensors = {m: t.to(self.device, torch.float32) for m, t in canvases.items() if t is not None}
        with self.session(), self.amp():
            return build_cache(self.model, [([(0, -1)], tensors)], steps=steps)

    def subsets(self, cache: SubsetCache, options: RunOptions | None = None, steps: Steps | None = None) -> Scores:
        """Stage 3: the 8 subset probabilities from the cache, exact Shapley values and the TTA spread."""
        opt = options or RunOptions()
        steps = steps or Steps()
        per: dict[str, np.ndarray | None] = {}
        with self.session(), self.amp():
            for sub in SUBSETS:
                key = subset_key(sub)
                if not cache.available(sub):
                    per[key] = None
                    continue
                steps.check(f"subset {key}")
                per[key] = subset_probabilities(self.model, cache, sub, opt.fuse_chunk).double().cpu().numpy()
                steps.advance("subsets")
        subsets = {k: None if v is None else float(v.mean()) for k, v in per.items()}
        v_empty, empty_record = empty_value(opt.shapley_empty, subsets, self.reference, opt.tta)
        game = {**subsets, PRIOR_KEY: v_empty}
        phi = shapley_values(game, available=cache.modalities)
        pv = per[subset_key(cache.modalities)]
        assert pv is not None
        tta = {"kind": opt.tta, "n_versions": cache.n_versions, "versions": [list(v) for v in cache.versions],
               "mean": float(pv.mean()), "std": float(pv.std()), "min": float(pv.min()), "max": float(pv.max()),
               "per_version": pv.tolist()}
        return Scores(subsets, phi, efficiency(phi, game, cache.modalities), cache.modalities, tta, empty_record)

    def explain(self, prepared: Prepared, options: RunOptions | None = None, steps: Steps | None = None,
                timings: dict[str, float] | None = None) -> tuple[dict[str, Any], dict[str, Saliency]]:
        """Stage 4: integrated gradients on the centred, unflipped canvas, mapped back to each input's grid.

        Returns:
            ``(summary, saliency)``: the IG summary (steps, completeness error, canvas records) and
            modality -> :class:`Saliency` on the native grid.
        """
        opt = options or RunOptions()
        tensors, records = tta_canvases(fit(prepared.arrays, self.cfg.sizes, opt.resize), [(0, -1)], self.device)
        return self._explain(tensors, records[0], prepared, opt, steps or Steps(), timings)

    def explain_canvases(self, canvases: Canvases, options: RunOptions | None = None, steps: Steps | None = None,
                         timings: dict[str, float] | None = None) -> tuple[dict[str, Any], dict[str, Saliency]]:
        """Stage 4 for ready canvases: the saliency stays on the canvas (``space="canvas"``)."""
        tensors = {m: t.to(self.device, torch.float32) for m, t in canvases.items() if t is not None}
        return self._explain(tensors, {}, None, options or RunOptions(), steps or Steps(), timings)

    def _explain(self, tensors: dict[str, torch.Tensor], records: Mapping[str, Any], prepared: Prepared | None,
                 opt: RunOptions, steps: Steps, timings: dict[str, float] | None
                 ) -> tuple[dict[str, Any], dict[str, Saliency]]:
        timings = {} if timings is None else timings
        t = time.perf_counter()
        regions = canvas_regions(prepared, self.cfg.sizes, opt.resize) if prepared is not None else {}
        base = baselines_for(tensors, opt.ig_baseline, regions, opt.ig_sigma)
        with self.session():
            ig = integrated_gradients(self.model, tensors, n_steps=opt.ig_steps,
                                      internal_batch_size=opt.ig_internal_batch, decades=opt.ig_decades,
                                      steps=steps, autocast=self.amp, baselines=base,
                                      baseline_text=describe(opt.ig_baseline, opt.ig_sigma), scan=opt.scan,
                                      target_error=opt.ig_target_error, max_steps=opt.ig_max_steps)
        timings["explain"] = time.perf_counter() - t
        t = time.perf_counter()
        steps.check("map saliency")
        saliency = to_native(ig, prepared, records) if prepared is not None else on_canvas(ig)
        steps.advance("map saliency")
        timings["map"] = time.perf_counter() - t
        info = ig.summary()
        info["canvas"] = {m: r.to_dict() for m, r in records.items()}
        return info, saliency

    def decide(self, probability: float, birads: str | None, tta: TTA = "none") -> dict[str, Any]:
        """Stage 5: the BI-RADS 4 rule on the probability, with this model's threshold."""
        return decide(probability, birads, self.threshold, tta).to_dict()

    def subset_probability(self, source: Result | SubsetCache | None, modalities: str | Iterable[str]) -> float | None:
        """Probability with only ``modalities``: from a Result (a lookup) or a cache (fusion layers only,
        averaged over its versions); ``source=None`` uses the last run's cache. ``None`` when unavailable."""
        if isinstance(source, Result):
            return source.subset_probability(modalities)
        cache = source if source is not None else self.cache
        if cache is None:
            raise ValueError("no cache: run a study first or pass a Result / SubsetCache")
        if not cache.available(modalities):
            return None
        with self.session(), self.amp():
            return float(subset_probabilities(self.model, cache, modalities).double().mean())

    # ------------------------------------------------------------------ the Run
    def run(
        self, study: Study, *, tta: TTA = "none", explain: bool = True, ig_steps: int = 16,
        options: RunOptions | None = None, birads: str | None = None,
        progress: ProgressFn | None = None, should_stop: StopFn | None = None,
    ) -> Result:
        """Analyse one study: every stage in turn, with provenance and an audit line.

        Args:
            study: the :class:`Study`.
            tta, explain, ig_steps: shortcuts for the :class:`RunOptions` fields (ignored when ``options``).
            birads: BI-RADS category; default ``study.clinical.birads``.
            progress, should_stop: callbacks (:mod:`model_core.engine.progress`), per step.
        Raises:
            Cancelled: ``should_stop`` returned True; PreprocessError, InputShapeError: bad input.
        """
        def load(facts: dict[str, Any]) -> _Inputs:
            facts.update(study_facts(study))
            category = birads if birads is not None else study.clinical.birads
            return _Inputs(self.prepare(study), None, study.modalities, category)

        opt = options or RunOptions(tta=tta, explain=explain, ig_steps=ig_steps)
        return self._execute(study.modalities, load, opt, progress, should_stop)

    def run_prepared(
        self, prepared: Prepared, *, birads: str | None = None, options: RunOptions | None = None,
        progress: ProgressFn | None = None, should_stop: StopFn | None = None,
    ) -> Result:
        """:meth:`run` for an already prepared study (``birads`` gives the category)."""
        return self._execute(prepared.modalities, lambda facts: _Inputs(prepared, None, prepared.modalities, birads),
                             options or RunOptions(), progress, should_stop)

    def run_canvases(
        self, canvases: Canvases, *, birads: str | None = None, options: RunOptions | None = None,
        progress: ProgressFn | None = None, should_stop: StopFn | None = None,
    ) -> Result:
        """:meth:`run` for ready canvases ``modality -> (1, C, X, Y, Z)`` at this model's canvas sizes: only
        ``tta="none"``, and the saliency stays on the canvas (``space="canvas"``, identity affine)."""
        opt = options or RunOptions()
        if opt.tta != "none":
            raise ConfigError("ready canvases cannot be re-augmented: use tta='none' or pass a Study")
        mods = tuple(m for m in MODALITIES if canvases.get(m) is not None)
        ready = {m: t for m, t in canvases.items() if t is not None}
        return self._execute(mods, lambda facts: _Inputs(None, ready, mods, birads), opt, progress, should_stop)

    def _execute(self, mods: tuple[str, ...], load: Callable[[dict[str, Any]], _Inputs], opt: RunOptions,
                 progress: ProgressFn | None, should_stop: StopFn | None) -> Result:
        """Plan the steps, run the stages in the runtime's session and write the audit line."""
        run_id, t0 = uuid.uuid4().hex, time.perf_counter()
        ig = n_batches(opt.ig_steps, opt.ig_internal_batch, opt.ig_decades, opt.scan) + 1 if opt.explain else 0
        steps = Steps(1 + -(-len(opt.versions()) // opt.tta_batch) + n_available(mods) + ig, progress, should_stop)
        facts: dict[str, Any] = {"modalities": list(mods)}
        try:
            with self.session():
                result = self._stages(load, opt, steps, facts, run_id)
        except Exception as exc:
            status = "cancelled" if isinstance(exc, Cancelled) else "error"
            self._audit(run_id, status, None, facts, opt, time.perf_counter() - t0, type(exc).__name__)
            raise
        result.timings["total"] = round(time.perf_counter() - t0, 4)
        self._audit(run_id, "ok", result, facts, opt, result.timings["total"])
        return result

    def _stages(self, load: Callable[[dict[str, Any]], _Inputs], opt: RunOptions, steps: Steps,
                facts: dict[str, Any], run_id: str) -> Result:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        steps.check("prepare")
        inp = load(facts)
        facts["birads"] = inp.birads
        if inp.prepared is not None:
            facts["preprocessing"] = preprocessing_facts(inp.prepared)
        steps.advance("prepare")
        timings["prepare"] = time.perf_counter() - t

        t = time.perf_counter()
        if inp.prepared is not None:
            cache = self.encode(inp.prepared, options=opt, steps=steps)
        else:
            assert inp.canvases is not None
            cache = self.encode_canvases(inp.canvases, steps=steps)
        self.cache = cache if self.keep_cache else None
        timings["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        scores = self.subsets(cache, opt, steps)
        timings["subsets"] = time.perf_counter() - t

        explain_info: dict[str, Any] | None = None
        saliency: dict[str, Saliency] = {}
        if opt.explain and inp.prepared is not None:
            explain_info, saliency = self.explain(inp.prepared, opt, steps, timings)
        elif opt.explain:
            assert inp.canvases is not None
            explain_info, saliency = self.explain_canvases(inp.canvases, opt, steps, timings)

        return Result(
            probability=scores.probability, subsets=scores.subsets, shapley=scores.shapley,
            shapley_check=scores.shapley_check, shapley_empty=scores.shapley_empty,
            unused_modalities=unused_modalities(self.reference), intended_use=intended_use(self.card),
            modalities=scores.modalities, tta=scores.tta,
            decision=self.decide(scores.probability, inp.birads, opt.tta), explain=explain_info,
            provenance=self.provenance(opt), study=dict(facts),
            timings={k: round(v, 4) for k, v in timings.items()}, run_id=run_id,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), saliency=saliency,
        )

    def audit_failure(self, label: str, exc: BaseException, duration: float) -> None:
        """One audit line for a study that failed before its Run began (e.g. it could not be read)."""
        self._audit(uuid.uuid4().hex, "error", None, {"study_key": hash_label(label)}, RunOptions(), duration,
                    type(exc).__name__)

    def _audit(self, run_id: str, status: str, result: Result | None, facts: dict[str, Any], opt: RunOptions,
               duration: float, error: str = "") -> None:
        if self.audit_log is None:
            return
        prov = result.provenance if result is not None else self.provenance(opt)
        rec = audit_record(run_id=run_id, status=status, result=result, study_facts=facts, provenance=prov,
                           settings=asdict(opt), duration_s=duration, error=error)
        append_audit(self.audit_log, rec)
