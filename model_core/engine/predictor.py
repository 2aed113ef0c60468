"""The Predictor: one call from a :class:`~model_core.studies.study.Study` to a complete
:class:`~model_core.engine.result.Result`.

Pipeline (PRODUCT §5): preprocess -> canvases for each TTA version -> encode every modality once (the
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

No global state: the instance owns its model, device settings and the last run's cache. Thread count and
deterministic-algorithm flags are process-wide in torch; the Predictor sets them for the duration of each
call and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from model_core import __version__
from model_core.engine.audit import append_audit, audit_record, default_audit_path, hash_label, study_inputs
from model_core.engine.card import preprocess_options as card_preprocess_options
from model_core.engine.decision import Birads4Threshold, decide, threshold_from_card
from model_core.engine.explain import integrated_gradients, n_batches, on_canvas, to_native
from model_core.engine.progress import ProgressFn, Steps, StopFn
from model_core.engine.result import Result
from model_core.engine.shapley import efficiency, shapley_values
from model_core.engine.subsets import SUBSETS, SubsetCache, build_cache, n_available, subset_key, subset_probabilities
from model_core.errors import Cancelled, ConfigError
from model_core.network.config import MODALITIES, MomeConfig
from model_core.network.mome import Mome
from model_core.preprocessing.canvas import ResizeMethod
from model_core.preprocessing.preprocess import Prepared, PreprocessOptions, preprocess
from model_core.preprocessing.tta import fit, iter_tta_batches, tta_canvases, tta_versions
from model_core.studies.study import Study
from model_core.weights.native import ModelCard, load_native, sha256_file
from model_core.weights.official import load_official_state_dict

log = logging.getLogger(__name__)

TTA = Literal["none", "interactive", "full"]
StudyInput = Study | Prepared | Mapping[str, "torch.Tensor | None"]
"""What :meth:`Predictor.run` accepts: a Study, a Prepared study, or ready canvases."""
PACKAGES = ("torch", "numpy", "scipy", "nibabel", "captum", "safetensors", "pydicom", "SimpleITK")


@dataclass(frozen=True)
class RunOptions:
    """Settings of one Run.

    Attributes:
        tta: ``"none"``, ``"interactive"`` (6 versions) or ``"full"`` (54).
        explain: compute integrated-gradients saliency.
        ig_steps: IG integration points; ig_internal_batch: scaled inputs per forward/backward;
            ig_decades: graded-path pieces (:func:`model_core.engine.explain.path_segments`; 0 = plain captum).
        tta_batch: versions encoded per batch (memory bound); fuse_chunk: versions per fusion call.
        resize: canvas resize backend (``"exact"``: scipy, the authors' values).
    """

    tta: TTA = "none"
    explain: bool = True
    ig_steps: int = 32
    ig_internal_batch: int = 4
    ig_decades: int = 6
    tta_batch: int = 2
    fuse_chunk: int = 8
    resize: ResizeMethod = "exact"

    def __post_init__(self) -> None:
        if self.tta not in ("none", "interactive", "full"):
            raise ConfigError(f"tta must be 'none', 'interactive' or 'full', got {self.tta!r}")
        if min(self.ig_steps, self.ig_internal_batch, self.tta_batch, self.fuse_chunk) < 1:
            raise ConfigError("ig_steps, ig_internal_batch, tta_batch and fuse_chunk must be >= 1")

    def versions(self) -> tuple[tuple[int, int], ...]:
        return ((0, -1),) if self.tta == "none" else tta_versions(self.tta)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on (SOUP list), plus Python and model_core."""
    import platform

    out = {"python": platform.python_version(), "model_core": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 over the state dict (sorted keys, dtype, shape, bytes): an id for in-memory models."""
    h = hashlib.sha256()
    for k, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Predictor:
    """Runs MOME on studies. See the module docstring.

    Args:
        model: a :class:`Mome` (moved to ``device``, put in eval mode).
        card: its model card (BI-RADS 4 threshold, provenance), if any.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dtype: ``"fp32"`` or ``"bf16"`` (autocast; weights stay fp32).
        threads: torch CPU threads during calls (``None``: leave as is).
        preprocess_options: :class:`PreprocessOptions` (default: the card's, i.e. those the model was
            trained with; without a card the paper's).
        audit_log: JSONL file for audit lines; ``None``: ``$MOME_AUDIT_LOG`` or off.
        model_sha256: id of the weights (default: the card's, else a hash of the state dict).
        source: where the weights came from (file name, "untrained", ...), for provenance.
        keep_cache: keep the last run's subset cache in :attr:`cache` (for :meth:`subset_probability`).
    """

    def __init__(
        self, model: Mome, card: ModelCard | None = None, *, device: str | torch.device = "auto",
        dtype: Literal["fp32", "bf16"] = "fp32", threads: int | None = None,
        preprocess_options: PreprocessOptions | None = None, audit_log: str | os.PathLike[str] | None = None,
        model_sha256: str | None = None, source: str = "in-memory", keep_cache: bool = True,
    ) -> None:
        if dtype not in ("fp32", "bf16"):
            raise ConfigError(f"dtype must be 'fp32' or 'bf16', got {dtype!r}")
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        self.model = model.to(self.device).eval()
        self.card = card
        self.dtype = dtype
        self.threads = threads
        if preprocess_options is None:
            preprocess_options = card_preprocess_options(card)
        self.preprocess_options = preprocess_options
        self.audit_log = Path(audit_log) if audit_log is not None else default_audit_path()
        self.threshold: Birads4Threshold | None = threshold_from_card(card)
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
    def model_sha256(self) -> str:
        if self._sha is None:
            self._sha = state_sha256(self.model)
        return self._sha

    # ------------------------------------------------------------------ context
    def _amp(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def _strict(self) -> bool:
        """Deterministic-algorithm mode is switched on for CUDA only: CPU kernels are already deterministic
        for a fixed thread count, and the switch costs ~3 s the first time (it imports torch._inductor)."""
        return self.device.type == "cuda"

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Thread count (and, on CUDA, deterministic algorithms) for the duration of a call, then restored."""
        threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        bench = torch.backends.cudnn.benchmark
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            if self._strict:
                torch.use_deterministic_algorithms(True, warn_only=True)
                torch.backends.cudnn.benchmark = False
            yield
        finally:
            torch.set_num_threads(threads)
            if self._strict:
                torch.use_deterministic_algorithms(det, warn_only=warn_only)
                torch.backends.cudnn.benchmark = bench

    def provenance(self, options: RunOptions | None = None) -> dict[str, Any]:
        """Model id, versions, device, dtype, threads, determinism flags and settings."""
        card = self.card
        dev: dict[str, Any] = {"device": str(self.device)}
        if self.device.type == "cuda":
            dev["device_name"] = torch.cuda.get_device_name(self.device)
        return {
            "model": {"name": card.name if card else "mome", "sha256": self.model_sha256, "source": self.source,
                      "trained": bool(card and (card.training or card.metrics)), "config": self.cfg.to_dict()},
            "versions": package_versions(), **dev, "dtype": self.dtype,
            "threads": self.threads or torch.get_num_threads(),
            "determinism": {"deterministic_algorithms": self._strict or torch.are_deterministic_algorithms_enabled(),
                            "cudnn_benchmark": False if self._strict else torch.backends.cudnn.benchmark,
                            "cpu_fixed_threads": self.device.type == "cpu",
                            "float32_matmul_precision": torch.get_float32_matmul_precision()},
            "settings": {**asdict(options or RunOptions()), "preprocess": self.preprocess_options.to_dict()},
            "birads4_threshold": None if self.threshold is None else self.threshold.to_dict(),
        }

    # ------------------------------------------------------------------ steps
    def prepare(self, study: Study) -> Prepared:
        """Preprocess a study for this model's canvases (no model call)."""
        return preprocess(study, self.cfg.sizes, self.preprocess_options)

    def encode(self, prepared: Prepared, tta: TTA = "none", *, options: RunOptions | None = None,
               steps: Steps | None = None) -> SubsetCache:
        """Canvases for every TTA version, each modality encoded once: the subset cache."""
        opt = options or RunOptions(tta=tta)
        fitted = fit(prepared.arrays, self.cfg.sizes, opt.resize)
        batches = ((v, t) for v, t, _ in iter_tta_batches(fitted, opt.versions(), opt.tta_batch, self.device))
        with self._session(), self._amp():
            return build_cache(self.model, batches, steps=steps)

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
        with self._session(), self._amp():
            return float(subset_probabilities(self.model, cache, modalities).double().mean())

    # ------------------------------------------------------------------ the Run
    def run(
        self, study: StudyInput, *, tta: TTA = "none", explain: bool = True, ig_steps: int = 32,
        options: RunOptions | None = None, birads: str | None = None,
        progress: ProgressFn | None = None, should_stop: StopFn | None = None,
    ) -> Result:
        """Analyse one study (or an already prepared one). See the module docstring.

        Args:
            study: a :class:`Study`; a :class:`Prepared` (then ``birads`` gives the category); or ready
                canvases ``modality -> (1, C, X, Y, Z)`` at this model's canvas sizes (then only
                ``tta="none"``, and saliency stays on the canvas: ``space="canvas"``, identity affine).
            tta, explain, ig_steps: shortcuts for the :class:`RunOptions` fields (ignored when ``options``).
            birads: BI-RADS category; default ``study.clinical.birads``.
            progress, should_stop: callbacks (:mod:`model_core.engine.progress`), per step.
        Raises:
            Cancelled: ``should_stop`` returned True; PreprocessError, InputShapeError: bad input.
        """
        opt = options or RunOptions(tta=tta, explain=explain, ig_steps=ig_steps)
        run_id, t0 = uuid.uuid4().hex, time.perf_counter()
        if isinstance(study, Mapping):
            if opt.tta != "none":
                raise ConfigError("ready canvases cannot be re-augmented: use tta='none' or pass a Study")
            mods = tuple(m for m in MODALITIES if study.get(m) is not None)
        else:
            mods = study.modalities
        steps = Steps(1 + -(-len(opt.versions()) // opt.tta_batch) + n_available(mods)
                      + (n_batches(opt.ig_steps, opt.ig_internal_batch, opt.ig_decades) + 1 if opt.explain else 0),
                      progress, should_stop)
        facts: dict[str, Any] = {"modalities": list(mods)}
        try:
            with self._session():
                result = self._run(study, opt, birads, steps, facts, run_id)
        except Exception as exc:
            status = "cancelled" if isinstance(exc, Cancelled) else "error"
            self._audit(run_id, status, None, facts, opt, time.perf_counter() - t0, type(exc).__name__)
            raise
        result.timings["total"] = round(time.perf_counter() - t0, 4)
        self._audit(run_id, "ok", result, facts, opt, result.timings["total"])
        return result

    def _run(self, study: StudyInput, opt: RunOptions, birads: str | None, steps: Steps,
             facts: dict[str, Any], run_id: str) -> Result:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        steps.check("prepare")
        prepared: Prepared | None = None
        canvases: dict[str, torch.Tensor] | None = None
        if isinstance(study, Study):
            facts.update(self._study_facts(study))
            birads = birads if birads is not None else study.clinical.birads
            prepared = self.prepare(study)
        elif isinstance(study, Prepared):
            prepared = study
        else:
            canvases = {m: t.to(self.device, torch.float32) for m, t in study.items() if t is not None}
        facts["birads"] = birads
        if prepared is not None:
            facts["preprocessing"] = {
                m: {"reference": r.reference, "native_shape": list(r.native_shape), "shape": list(r.shape),
                    "crop": [list(r.crop_start), list(r.crop_stop)], "steps": list(r.steps)}
                for m, r in prepared.records.items()}
        steps.advance("prepare")
        timings["prepare"] = time.perf_counter() - t

        t = time.perf_counter()
        if prepared is not None:
            cache = self.encode(prepared, options=opt, steps=steps)
        else:
            assert canvases is not None
            with self._amp():
                cache = build_cache(self.model, [([(0, -1)], canvases)], steps=steps)
        self.cache = cache if self.keep_cache else None
        timings["encode"] = time.perf_counter() - t

        t = time.perf_counter()
        per: dict[str, np.ndarray | None] = {}
        with self._amp():
            for sub in SUBSETS:
                key = subset_key(sub)
                if not cache.available(sub):
                    per[key] = None
                    continue
                steps.check(f"subset {key}")
                per[key] = subset_probabilities(self.model, cache, sub, opt.fuse_chunk).double().cpu().numpy()
                steps.advance("subsets")
        subsets = {k: None if v is None else float(v.mean()) for k, v in per.items()}
        full = subset_key(cache.modalities)
        phi = shapley_values(subsets, available=cache.modalities)
        timings["subsets"] = time.perf_counter() - t
        pv = per[full]
        assert pv is not None
        tta = {"kind": opt.tta, "n_versions": cache.n_versions, "versions": [list(v) for v in cache.versions],
               "mean": float(pv.mean()), "std": float(pv.std()), "min": float(pv.min()), "max": float(pv.max()),
               "per_version": pv.tolist()}

        explain_info, saliency = None, {}
        if opt.explain:
            t = time.perf_counter()
            if prepared is not None:
                tensors, records = tta_canvases(fit(prepared.arrays, self.cfg.sizes, opt.resize), [(0, -1)],
                                                self.device)
            else:
                assert canvases is not None
                tensors, records = canvases, [{}]
            ig = integrated_gradients(self.model, tensors, n_steps=opt.ig_steps,
                                      internal_batch_size=opt.ig_internal_batch, decades=opt.ig_decades,
                                      steps=steps, autocast=self._amp)
            timings["explain"] = time.perf_counter() - t
            t = time.perf_counter()
            steps.check("map saliency")
            saliency = to_native(ig, prepared, records[0]) if prepared is not None else on_canvas(ig)
            steps.advance("map saliency")
            timings["map"] = time.perf_counter() - t
            explain_info = ig.summary()
            explain_info["canvas"] = {m: r.to_dict() for m, r in records[0].items()}

        decision = decide(subsets[full], birads, self.threshold, opt.tta).to_dict()  # type: ignore[arg-type]
        return Result(
            probability=subsets[full], subsets=subsets, shapley=phi,  # type: ignore[arg-type]
            shapley_check=efficiency(phi, subsets, cache.modalities), modalities=cache.modalities, tta=tta,
            decision=decision, explain=explain_info, provenance=self.provenance(opt), study=dict(facts),
            timings={k: round(v, 4) for k, v in timings.items()}, run_id=run_id,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), saliency=saliency,
        )

    @staticmethod
    def _study_facts(study: Study) -> dict[str, Any]:
        """Non-identifying facts: hashed label, input digests, reader decision counts."""
        roles = Counter(d.role for d in study.decisions)
        return {"study_key": hash_label(study.study_id), "modalities": list(study.modalities),
                "inputs": study_inputs(study),
                "reader_decisions": {"count": len(study.decisions), "roles": dict(sorted(roles.items()))}}

    def _audit(self, run_id: str, status: str, result: Result | None, facts: dict[str, Any], opt: RunOptions,
               duration: float, error: str = "") -> None:
        if self.audit_log is None:
            return
        prov = result.provenance if result is not None else self.provenance(opt)
        rec = audit_record(run_id=run_id, status=status, result=result, study_facts=facts, provenance=prov,
                           settings=asdict(opt), duration_s=duration, error=error)
        append_audit(self.audit_log, rec)
