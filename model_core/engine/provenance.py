"""What a result records about its run: package versions, a hash of in-memory weights, study facts."""

from __future__ import annotations

import hashlib
import platform
from collections import Counter
from importlib import metadata
from typing import Any

import torch

from model_core import __version__
from model_core.engine.audit import hash_label, study_inputs
from model_core.preprocessing.preprocess import Prepared
from model_core.studies.study import Study

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
