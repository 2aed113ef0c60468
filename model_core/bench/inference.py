"""``mome bench inference``: the costs of the analysis a user clicks for, in one child process.

Everything is measured in the same process on the same phantom study so that ratios compare like with
like: a full forward on the centred canvas; encoding (the cache) and one subset from the cache, as a
fraction of the forward; all 8 subset values (encode + 8 fusions) in forwards; a toggle
(:meth:`Predictor.subset_probability` from the cache); a whole Run without TTA with and without
integrated gradients (preprocessing included); IG alone and its completeness error; TTA throughput
(interactive, and the paper's 54 versions when asked). Times are medians of ``repeats`` runs after a
warm-up. The network is the seeded untrained demo network, or a native model given as ``weights`` (the
shipped demo model for the acceptance figures: with a scanned IG path the work depends on the weights
only through the optional refinement, off by default). The fp32 matmul throughput is measured in the same
child before and after, and each Run time is also given as ``seconds x GFLOP/s`` (GFLOP at the measured
peak), which varies less than seconds on a shared, noisy machine.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from model_core.bench.child import run_child
from model_core.engine.demo import untrained_preprocess
from model_core.engine.predictor import Predictor, RunOptions
from model_core.engine.subsets import SUBSETS, build_cache, subset_key, subset_logits, subset_values
from model_core.network.config import MomeConfig
from model_core.network.factory import untrained_model
from model_core.phantom import generate_study
from model_core.phantom.params import get_world
from model_core.preprocessing.tta import fit, tta_canvases
from model_core.runtime import Runtime


@dataclass(frozen=True)
class InferenceCase:
    """One inference benchmark."""

    preset: str = "demo"
    threads: int = 2
    repeats: int = 3
    ig_steps: int = 16
    ig_repeats: int = 3
    tta_full: bool = False
    device: str = "cpu"
    dtype: str = "fp32"
    seed: int = 1
    weights: str = ""


def _timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[float, list[float], Any]:
    """Median seconds of ``repeats`` runs after one warm-up, the runs, and the last return value."""
    out = None
    times = []
    for i in range(repeats + 1):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times), [round(t, 4) for t in times], out


def _tta_throughput(pred: Predictor, prepared: Any, kind: Any, reps: int, sync: Callable[[], None]) -> dict[str, Any]:
    """Encoding ``kind``'s TTA versions and the 8 subsets from that cache: seconds and versions per second."""
    def enc() -> Any:
        return pred.encode(prepared, kind)

    t_s, _, tc = _timed(enc, reps, sync)

    def subs() -> Any:
        return [pred.subset_probability(tc, s) for s in SUBSETS]

    s8_s, _, _ = _timed(subs, reps, sync)
    return {"versions": tc.n_versions, "encode_s": round(t_s, 3), "versions_per_s": round(tc.n_versions / t_s, 2),
            "subsets8_s": round(s8_s, 3)}


def _predictor(case: InferenceCase) -> Predictor:
    """The case's Predictor: the native model ``case.weights``, else the untrained ``case.preset`` network."""
    runtime = Runtime(case.device, case.dtype, case.threads)  # type: ignore[arg-type]
    runtime.apply_threads()
    if case.weights:
        return Predictor.from_native(case.weights, runtime=runtime, keep_cache=False, audit_log=None)
    return Predictor(untrained_model(MomeConfig.preset(case.preset)), runtime=runtime, keep_cache=False,
                     preprocess_options=untrained_preprocess(case.preset), audit_log=None)


def _ig_figures(pred: Predictor, study: Any, case: InferenceCase, sync: Callable[[], None]) -> dict[str, Any]:
    """A Run with saliency: seconds (median of ``ig_repeats``), steps used, F(input), F(baseline), error."""
    ig_opt = RunOptions(explain=True, ig_steps=case.ig_steps)
    ig_s, ig_runs, ri = _timed(lambda: pred.run(study, options=ig_opt), case.ig_repeats, sync)
    e = ri.explain
    return {"run_no_tta_ig_s": round(ig_s, 3), "run_no_tta_ig_runs": ig_runs, "ig_s": ri.timings.get("explain"),
            "ig_steps": case.ig_steps, "ig_steps_used": e["n_steps"], "ig_baseline": e["baseline"],
            "ig_f_input": e["f_input"], "ig_f_baseline": e["f_baseline"], "ig_relative_error": e["relative_error"],
            "ig_convergence_delta": e["convergence_delta"], "ig_internal_batch": ig_opt.ig_internal_batch}


def _at_peak(res: dict[str, Any], before: float, threads: int) -> None:
    """The fp32 matmul peak (before and after the case) and the Run times as GFLOP at that peak."""
    from model_core.bench.forward import matmul_gflops

    after = matmul_gflops(threads, budget_s=5.0)["fp32_gflops"]
    peak = statistics.median([before, after])
    res["matmul_fp32_gflops"] = {"before": before, "after": after, "used": peak}
    for key in ("run_no_tta_no_ig_s", "run_no_tta_ig_s"):
        if key in res:
            res[key.removesuffix("_s") + "_gflop_at_peak"] = round(res[key] * peak, 1)


def run_inference_case(case: InferenceCase) -> dict[str, Any]:
    """Run the case in this process and return its figures (called in the child)."""
    from model_core.bench.forward import matmul_gflops

    torch.set_num_threads(case.threads)
    peak_before = matmul_gflops(case.threads, budget_s=5.0)["fp32_gflops"]
    pred = _predictor(case)
    cfg = pred.cfg
    dev = pred.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    world = pred.card.phantom_world if pred.card is not None else "v1"
    study = generate_study(case.seed, params=get_world(world)).study
    r = case.repeats
    res: dict[str, Any] = {**asdict(case), "device_used": str(dev)}

    prep_s, _, prepared = _timed(lambda: pred.prepare(study), r, sync)
    x, _ = tta_canvases(fit(prepared.arrays, cfg.sizes), [(0, -1)], dev)
    model = pred.model

    def forward() -> Any:
        with torch.inference_mode(), pred.amp():
            return model(**x)

    def cache() -> Any:
        with pred.amp():
            return build_cache(model, [([(0, -1)], x)])

    fwd_s, fwd_runs, _ = _timed(forward, r, sync)
    enc_s, _, c = _timed(cache, r, sync)
    sub_s: dict[str, float] = {}
    for s in SUBSETS:
        def one(s: tuple[str, ...] = s) -> Any:
            with pred.amp():
                return subset_logits(model, c, s)
        sub_s[subset_key(s)] = _timed(one, r, sync)[0]

    def all8() -> Any:
        with pred.amp():
            return subset_values(model, build_cache(model, [([(0, -1)], x)]))

    all8_s, _, _ = _timed(all8, r, sync)
    toggle_s, _, _ = _timed(lambda: pred.subset_probability(c, "dce+t2"), r, sync)
    res.update({
        "prepare_s": round(prep_s, 4),
        "forward_s": round(fwd_s, 4), "forward_runs": fwd_runs,
        "encode_s": round(enc_s, 4),
        "subset_from_cache_s": {k: round(v, 4) for k, v in sub_s.items()},
        "subset_full_over_forward": round(sub_s["dce+dwi+t2"] / fwd_s, 4),
        "subset_max_over_forward": round(max(sub_s.values()) / fwd_s, 4),
        "all8_s": round(all8_s, 4), "all8_in_forwards": round(all8_s / fwd_s, 3),
        "toggle_s": round(toggle_s, 5),
    })

    no_ig = RunOptions(explain=False)
    run_s, run_runs, rr = _timed(lambda: pred.run(study, options=no_ig), r, sync)
    res.update({"run_no_tta_no_ig_s": round(run_s, 4), "run_no_tta_no_ig_runs": run_runs,
                "run_no_tta_no_ig_stages": rr.timings})

    if case.ig_repeats > 0:
        res.update(_ig_figures(pred, study, case, sync))

    for kind in ("interactive", "full") if case.tta_full else ("interactive",):
        res.setdefault("tta_throughput", {})[kind] = _tta_throughput(pred, prepared, kind,
                                                                     r if kind == "interactive" else 1, sync)

    _at_peak(res, peak_before, case.threads)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if dev.type == "cuda":
        res["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return res


def bench_inference(
    preset: str = "demo", threads: int = 2, repeats: int = 3, device: str = "cpu", *, ig_steps: int = 16,
    ig_repeats: int | None = None, tta_full: bool = False, dtype: str = "fp32", timeout: float = 3600.0,
    weights: str = "",
) -> dict[str, Any]:
    """The inference benchmark in a clean child process (see the module docstring); targets are in the
    report next to the figures."""
    case = InferenceCase(preset, threads, repeats, ig_steps, repeats if ig_repeats is None else ig_repeats,
                         tta_full, device, dtype, weights=weights)
    res = run_child("inference", asdict(case), timeout)
    res["targets"] = {"subset_full_over_forward": "<= 0.3", "all8_in_forwards": "<= 2.5",
                      "run_no_tta_no_ig_s": "<= 1 s (demo preset, CPU)", "toggle_s": "<= 0.2 s",
                      "ig_relative_error": "< 0.05",
                      "run_no_tta_ig_s": "<= 8 s (demo model, this 2-core CPU)"}
    return res
