"""Where and how torch runs: device, dtype, CPU threads and determinism, in one object.

The command line (or the napari widget) builds one :class:`Runtime` and hands it to the Predictor, the
benchmarks and training. :func:`set_threads` is the only place in the package that sets torch's thread
count.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from model_core.errors import ConfigError

Dtype = Literal["fp32", "bf16"]


def set_threads(threads: int) -> None:
    """Set torch's CPU thread count (process-wide)."""
    torch.set_num_threads(threads)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class Runtime:
    """Device, dtype, CPU threads and determinism for model calls.

    Attributes:
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dtype: ``"fp32"`` or ``"bf16"`` (autocast; weights stay fp32).
        threads: torch CPU threads (``None`` or 0: leave as is).
        deterministic: deterministic algorithms during calls; ``None``: on CUDA only (CPU kernels are
            already deterministic for a fixed thread count, and switching the mode on costs ~3 s the first
            time because it imports ``torch._inductor``).
    """

    device: str = "auto"
    dtype: Dtype = "fp32"
    threads: int | None = None
    deterministic: bool | None = None

    def __post_init__(self) -> None:
        if self.dtype not in ("fp32", "bf16"):
            raise ConfigError(f"dtype must be 'fp32' or 'bf16', got {self.dtype!r}")
        if self.threads is not None and self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")

    def torch_device(self) -> torch.device:
        dev = resolve_device(self.device)
        if dev.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        return dev

    def strict(self, device: torch.device) -> bool:
        """Whether deterministic-algorithm mode is switched on during calls on ``device``."""
        return device.type == "cuda" if self.deterministic is None else self.deterministic

    def apply_threads(self) -> None:
        """Set the thread count process-wide (for commands that run torch for their whole life)."""
        if self.threads:
            set_threads(self.threads)

    def amp(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on ``device`` when ``dtype`` is ``"bf16"``, else nothing."""
        if self.dtype == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def session(self, device: torch.device) -> Iterator[None]:
        """Thread count (and, when :meth:`strict`, deterministic algorithms) for the duration of a call,
        then restored."""
        threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        bench = torch.backends.cudnn.benchmark
        strict = self.strict(device)
        try:
            if self.threads:
                set_threads(self.threads)
            if strict:
                torch.use_deterministic_algorithms(True, warn_only=True)
                torch.backends.cudnn.benchmark = False
            yield
        finally:
            set_threads(threads)
            if strict:
                torch.use_deterministic_algorithms(det, warn_only=warn_only)
                torch.backends.cudnn.benchmark = bench
