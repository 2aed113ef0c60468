"""Append-only audit log: one JSON line per run.

Off unless a path is given (``Predictor(audit_log=...)``, ``mome demo --audit PATH``) or the environment
variable ``MOME_AUDIT_LOG`` names a file; :func:`default_audit_path` suggests
``~/.local/state/napari-mome/audit.jsonl`` (``$XDG_STATE_HOME``) for front ends that want one. Never the
repository.

No patient identifiers: no names, no file paths (they often contain names), no DICOM UIDs, no host or user
name. The study is identified by a salted hash of its label and by sha256 digests of its voxel arrays
(with shapes and affines), which let a run be matched to its inputs without revealing them. Caveat: a
short, guessable label (e.g. a record number) can be recovered from its hash by trying candidates; use
non-identifying labels.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ENV_VAR = "MOME_AUDIT_LOG"
SCHEMA = "napari-mome-audit/1"
_SALT = "napari-mome-audit-v1:"

REQUIRED_FIELDS: tuple[str, ...] = (
    "schema", "timestamp", "run_id", "status", "study_key", "inputs", "nonfinite_voxels", "reader_decisions",
    "reorientation", "resampling", "model", "versions", "device", "dtype", "flags", "outputs", "duration_s",
)
"""Every audit line has these keys (17 >= the 12 required)."""


def hash_label(label: str) -> str | None:
    """Salted sha256 of a study label (first 16 hex digits); ``None`` for an empty label."""
    return hashlib.sha256((_SALT + label).encode()).hexdigest()[:16] if label else None


def array_digest(data: np.ndarray, affine: np.ndarray | None = None) -> str:
    """sha256 over shape, dtype, the C-order bytes and (when given) the float64 affine."""
    a = np.ascontiguousarray(data)
    h = hashlib.sha256(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(memoryview(a).cast("B"))  # type: ignore[arg-type]
    if affine is not None:
        h.update(np.ascontiguousarray(affine, dtype=np.float64).tobytes())
    return h.hexdigest()


def study_inputs(study: Any) -> dict[str, dict[str, Any]]:
    """Per input volume (``dce[k]``, ``dwi[b=..]``, ``t2``, ``t1``): sha256, shape, non-finite voxel count,
    reorientation applied by the reader. No paths, no names."""
    vols: list[tuple[str, Any]] = [(f"dce[{k}]", v) for k, v in enumerate(study.dce or [])]
    vols += [(f"dwi[b={b:g}]", v) for b, v in sorted(study.dwi.items())]
    vols += [(n, getattr(study, n)) for n in ("t2", "t1") if getattr(study, n) is not None]
    out = {}
    for name, v in vols:
        data = np.asarray(v.data)
        out[name] = {"sha256": array_digest(data, v.affine), "shape": list(data.shape),
                     "nonfinite": int(data.size - np.count_nonzero(np.isfinite(data))),
                     "reorientation": _plain(v.meta.get("reorientation"))}
    return out


def _plain(x: Any) -> Any:
    try:
        json.dumps(x)
        return x
    except (TypeError, ValueError):
        return str(x)


def default_audit_path() -> Path | None:
    """``$MOME_AUDIT_LOG`` if set, else ``None`` (off). See :func:`user_audit_path` for a suggestion."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else None


def user_audit_path() -> Path:
    """``$XDG_STATE_HOME/napari-mome/audit.jsonl`` (default ``~/.local/state/...``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "napari-mome" / "audit.jsonl"


def audit_record(
    *, run_id: str, status: str, result: Any = None, study_facts: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
    duration_s: float = 0.0, error: str = "",
) -> dict[str, Any]:
    """Build one audit line.

    Args:
        run_id: the run's id (also in the result).
        status: ``"ok"``, ``"cancelled"`` or ``"error"``.
        result: the :class:`~model_core.engine.result.Result` when the run finished.
        study_facts: the non-identifying study dict (``Result.study``), available even when the run failed.
        provenance: model / versions / device block (``Result.provenance``).
        settings: run flags (TTA, explain, IG steps).
        duration_s: wall time of the run.
        error: error class and message for failed runs (messages name files: only the class is kept).
    """
    facts = dict(study_facts or {})
    prov = dict(provenance or {})
    outputs: dict[str, Any] = {}
    if result is not None:
        outputs = {"probability": result.probability, "subsets": dict(result.subsets),
                   "shapley": dict(result.shapley), "tta_std": result.tta.get("std"),
                   "decision": result.decision.get("status"),
                   "ig_relative_error": None if result.explain is None else result.explain.get("relative_error")}
    rec = {
        "schema": SCHEMA,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        "run_id": run_id,
        "status": status,
        "error": error,
        "study_key": facts.get("study_key"),
        "birads": facts.get("birads"),
        "inputs": facts.get("inputs", {}),
        "nonfinite_voxels": int(sum(v.get("nonfinite", 0) for v in facts.get("inputs", {}).values())),
        "reader_decisions": facts.get("reader_decisions", {}),
        "reorientation": {k: v.get("reorientation") for k, v in facts.get("inputs", {}).items()},
        "resampling": facts.get("preprocessing", {}),
        "model": prov.get("model", {}),
        "versions": prov.get("versions", {}),
        "device": prov.get("device"),
        "dtype": prov.get("dtype"),
        "flags": dict(settings or prov.get("settings", {})),
        "outputs": outputs,
        "duration_s": round(float(duration_s), 4),
    }
    return rec


def append_audit(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line (the file and its folder are created; never rewritten)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=False, default=str)
    if "\n" in line:  # pragma: no cover - json.dumps without indent never emits newlines
        raise ValueError("audit record would span lines")
    with open(p, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
    log.debug("audit: %s %s -> %s", record.get("status"), record.get("run_id"), p.name)


def read_audit(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of an audit file, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def validate_record(rec: Mapping[str, Any]) -> list[str]:
    """Problems with an audit record (empty list = valid): missing required fields, a forbidden key."""
    problems = [f"missing field {k!r}" for k in REQUIRED_FIELDS if k not in rec]
    text = json.dumps(rec, default=str).lower()
    for bad in ("patient_name", "patientname", "patient_id", "hostname", "\"path\""):
        if bad in text:
            problems.append(f"forbidden key {bad!r}")
    return problems
