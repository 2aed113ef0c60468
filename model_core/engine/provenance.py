"""What a result records about its run: package versions, a hash of in-memory weights, study facts."""

from __future__ import annotations

import hashlib
import platform
from collections import Counter
from importlib import metadata
from typing import Any, Protocol

import torch

from model_core import __version__
from model_core.engine.audit import hash_label, study_inputs
from model_core.engine.decision import Birads4Threshold
from model_core.network.config import MomeConfig
from model_core.preprocessing.preprocess import Prepared, PreprocessOptions
from model_core.runtime import Runtime
from model_core.studies.study import Study
from model_core.weights.native import ModelCard

PACKAGES = ("torch", "numpy", "scipy", "nibabel", "captum", "safetensors", "pydicom", "SimpleITK")


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on (SOUP list), plus Python and model_core."""
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


def preprocessing_facts(prepared: Prepared) -> dict[str, Any]:
    """What preprocessing did to each modality (reference grid, shapes, crop, steps)."""
    return {m: {"reference": r.reference, "native_shape": list(r.native_shape), "shape": list(r.shape),
                "crop": [list(r.crop_start), list(r.crop_stop)], "steps": list(r.steps)}
            for m, r in prepared.records.items()}


def study_facts(study: Study) -> dict[str, Any]:
    """Non-identifying facts: hashed label, input digests, reader decision counts."""
    roles = Counter(d.role for d in study.decisions)
    return {"study_key": hash_label(study.study_id), "modalities": list(study.modalities),
            "inputs": study_inputs(study),
            "reader_decisions": {"count": len(study.decisions), "roles": dict(sorted(roles.items()))}}


class Provenanced(Protocol):
    """What :func:`run_provenance` reads from a Predictor."""

    card: ModelCard | None
    source: str
    device: torch.device
    runtime: Runtime
    preprocess_options: PreprocessOptions
    threshold: Birads4Threshold | None

    @property
    def model_sha256(self) -> str: ...
    @property
    def cfg(self) -> MomeConfig: ...
    @property
    def dtype(self) -> str: ...
    @property
    def threads(self) -> int | None: ...


def run_provenance(p: Provenanced, settings: dict[str, Any]) -> dict[str, Any]:
    """Model id, versions, device, dtype, threads, determinism flags and the run's ``settings``."""
    card = p.card
    strict = p.runtime.strict(p.device)
    dev: dict[str, Any] = {"device": str(p.device)}
    if p.device.type == "cuda":
        dev["device_name"] = torch.cuda.get_device_name(p.device)
    return {
        "model": {"name": card.name if card else "mome", "sha256": p.model_sha256, "source": p.source,
                  "trained": bool(card and (card.training or card.metrics)), "config": p.cfg.to_dict()},
        "versions": package_versions(), **dev, "dtype": p.dtype,
        "threads": p.threads or torch.get_num_threads(),
        "determinism": {"deterministic_algorithms": strict or torch.are_deterministic_algorithms_enabled(),
                        "cudnn_benchmark": False if strict else torch.backends.cudnn.benchmark,
                        "cpu_fixed_threads": p.device.type == "cpu",
                        "float32_matmul_precision": torch.get_float32_matmul_precision()},
        "settings": {**settings, "preprocess": p.preprocess_options.to_dict()},
        "birads4_threshold": None if p.threshold is None else p.threshold.to_dict(),
    }
