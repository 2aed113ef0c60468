"""``mome bench``: forward time and peak memory, measured in clean child processes.

Every case runs in its own Python process so that its peak RSS is its own (``ru_maxrss`` of that
process, which includes the interpreter, torch and the model: ``rss_before_forward_mb`` says how much of
the peak was there before the first forward). Times are medians of ``repeats`` runs after one warm-up.
The machine's matmul throughput (fp32 and bf16) is measured in the same run so that figures from
different machines can be compared.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from model_core import Mome, MomeConfig
from model_core.bench.child import run_child
from model_core.runtime import set_threads

log = logging.getLogger(__name__)

DTYPES = ("fp32", "bf16")
ATTENTION = ("segment", "dense")


@dataclass(frozen=True)
class ForwardCase:
    """One forward benchmark: a preset at its canvas size, batch 1 unless set."""

    preset: str = "base"
    dtype: str = "fp32"  # "fp32" | "bf16" (autocast)
    attention: str = "segment"  # "segment" (ours) | "dense" (the authors' L x L mask)
    threads: int = 2
    repeats: int = 3
    batch: int = 1
    device: str = "cpu"
    seed: int = 0


def _median_time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return times


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5, budget_s: float = 20.0) -> dict[str, float]:
    """Measured ``n x n`` matmul throughput in GFLOP/s for fp32 and bf16 (median of ``repeats``).

    bf16 is measured on a smaller matrix first; where the CPU has no bf16 units it runs at a tiny
    fraction of fp32, and the larger size would take minutes.
    """
    import torch

    set_threads(threads)
    out: dict[str, float] = {}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        size = n
        a = torch.randn(256, 256, dtype=dt)
        t = time.perf_counter()
        a @ a
        probe = 2 * 256**3 / max(time.perf_counter() - t, 1e-9)
        while size > 256 and 2 * size**3 * (repeats + 1) / probe > budget_s:
            size //= 2
        a, b = torch.randn(size, size, dtype=dt), torch.randn(size, size, dtype=dt)

        def mm(a: torch.Tensor = a, b: torch.Tensor = b) -> torch.Tensor:
            return a @ b

        mm()
        med = statistics.median(_median_time(mm, repeats))
        out[f"{name}_gflops"] = round(2 * size**3 / med / 1e9, 1)
        out[f"{name}_matrix"] = size
    return out


def run_forward_case(case: ForwardCase) -> dict[str, Any]:
    """Run one case in this process and return its figures (called in the child)."""
    import torch

    set_threads(case.threads)
    torch.manual_seed(case.seed)
    cfg = MomeConfig.preset(case.preset)
    dev = torch.device(case.device)
    model = Mome(cfg).eval().to(dev)
    g = torch.Generator().manual_seed(case.seed)
    with torch.no_grad():  # a trained-looking model: adapters and head non-zero
        for p in model.parameters():
            if p.dim() >= 2 and float(p.abs().max()) == 0.0:
                p.normal_(0.0, 0.02, generator=g)
        model.head.weight.normal_(0.0, 0.5, generator=g)
    x = {m: torch.randn(case.batch, cfg.in_chans[m], *cfg.sizes[m], generator=g).to(dev) for m in cfg.sizes}
    dense = case.attention == "dense"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=case.dtype == "bf16")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    probs: list[float] = []

    def step() -> None:
        with torch.inference_mode(), amp:
            probs[:] = model(**x, dense_mask=dense).float().softmax(-1)[:, 1].tolist()

    times = _median_time(step, 1 + case.repeats, sync)
    res: dict[str, Any] = {
        **asdict(case),
        "forward_s_median": round(statistics.median(times[1:]), 3),
        "forward_s_runs": [round(t, 3) for t in times[1:]],
        "warmup_s": round(times[0], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_forward_mb": round(rss_before, 1),
        "tokens": 1 + sum(cfg.num_tokens(m) for m in cfg.sizes),
        "p_malignant": probs,
    }
    if dev.type == "cuda":
        res["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return res


def machine_info(threads: int) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                            "threads": threads, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def bench_forward(
    preset: str = "base", dtypes: Sequence[str] = DTYPES, attention: Sequence[str] = ATTENTION, threads: int = 2,
    repeats: int = 3, device: str = "cpu", timeout: float = 1800.0, force_bf16: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The forward benchmark: every (dtype, attention) case in a child process, plus matmul GFLOP/s.

    On a CPU whose bf16 matmul runs below a quarter of fp32 (no AVX512-BF16 / AMX units), the bf16
    forward would only measure the emulation; it is skipped with the reason unless ``force_bf16``.
    """
    report: dict[str, Any] = {"machine": machine_info(threads)}
    if device == "cpu":
        report["matmul"] = run_child("matmul", {"threads": threads}, timeout)
    cases = []
    for dt in dtypes:
        for att in attention:
            cases.append(ForwardCase(preset, dt, att, threads, repeats, device=device))
    results = []
    for case in cases:
        mm = report.get("matmul", {})
        if (case.dtype == "bf16" and device == "cpu" and not force_bf16
                and mm.get("bf16_gflops", 0) < 0.25 * mm.get("fp32_gflops", 0)):
            results.append({**asdict(case), "skipped": (
                f"bf16 matmul runs at {mm.get('bf16_gflops')} GFLOP/s here vs fp32 {mm.get('fp32_gflops')}: "
                "this CPU has no bf16 units, so a bf16 forward would only measure emulation "
                "(use --force-bf16 to run it anyway)")})
            continue
        if progress:
            progress(f"{case.preset} {case.dtype} {case.attention}")
        results.append(run_child("forward", asdict(case), timeout))
    report["forward"] = results
    fp32 = next((r for r in results if r.get("dtype") == "fp32" and r.get("attention") == "segment"
                 and "forward_s_median" in r), None)
    for r in results:
        if fp32 is not None and r is not fp32 and "p_malignant" in r:
            r["delta_p_vs_fp32_segment"] = round(max(abs(a - b) for a, b in
                                                     zip(r["p_malignant"], fp32["p_malignant"], strict=True)), 6)
    return report
