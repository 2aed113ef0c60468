"""``study.json``: an optional manifest naming which file of a study folder is which.

Schema (JSON object; every key optional except that at least one of dce / dwi / t2 must be present)::

    {
      "version": 1,
      "study_id": "case-001",                       # non-identifying label (default: folder name)
      "dce": ["pre.nii.gz", "post1.nii.gz", ...],   # pre-contrast first, then post phases in time order
          # or {"phases": [...]}                     # same as the list form
          # or {"pre": "pre.nii.gz", "post": [...]}  # same again (with "phases" too, they must agree)
          # or {"subtraction": ["sub1.nii.gz", ...]} # ready subtraction images (post - pre), in order
          # or {"file": "dce4d.nii.gz", "subtraction": false}   # one 4-D file, phases on the 4th axis
      "dwi": {"0": "dwi_b0.nii.gz", "800": "dwi_b800.nii.gz"},  # b-value (s/mm^2) -> file
          # or [{"b": 800, "file": "dwi_b800.nii.gz"}, ...]
          # or {"file": "dwi4d.nii.gz", "b_values": [0, 800]}   # one 4-D file, b-values on the 4th axis
      "t2": "t2.nii.gz",
      "t1": "t1_nonfs.nii.gz",                      # optional non-contrast T1 (breast mask)
      "birads": "4a",                               # "1".."6", "4a"/"4b"/"4c"
      "age": 52,
      "clinical": {"menopause": "post"},           # free-form JSON -> ClinicalInfo.extra
      "extra": {"label": "malignant"}              # free-form JSON -> ClinicalInfo.extra (e.g. phantom truth)
    }

Files are paths relative to the folder and must stay inside it (no absolute paths, no ``..`` leaving it);
each may be NIfTI (.nii/.nii.gz), NRRD/MetaImage (.nrrd/.nhdr/.mha/.mhd) or a sub-folder holding one DICOM
series. Unknown top-level keys are refused (a typo must not silently drop a sequence). The manifest file
is limited to 1 MiB.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model_core.errors import StudyReadError
from model_core.studies.study import ClinicalInfo, RoleDecision, Study, Volume
from model_core.studies.validate import DEFAULT_LIMITS, ReadLimits, check_study_counts, confined, reading

logger = logging.getLogger(__name__)

MANIFEST_NAME = "study.json"
_KEYS = {"version", "study_id", "dce", "dwi", "t2", "t1", "birads", "age", "clinical", "extra"}
_BIRADS = {"0", "1", "2", "3", "4", "4a", "4b", "4c", "5", "6"}
_MAX_BYTES = 1 << 20

VolumeReader = Callable[[Path, ReadLimits], Volume]


def load_manifest(path: Path) -> dict[str, Any]:
    """Parse and shape-check ``study.json`` (no image is read)."""
    with reading(path, "cannot read manifest"):
        if path.stat().st_size > _MAX_BYTES:
            raise StudyReadError(path, f"manifest larger than {_MAX_BYTES} bytes")
        doc = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys(path))
    if not isinstance(doc, dict):
        raise StudyReadError(path, "manifest must be a JSON object")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise StudyReadError(path, f"unknown manifest keys {unknown}; accepted: {sorted(_KEYS)}")
    if not any(k in doc for k in ("dce", "dwi", "t2")):
        raise StudyReadError(path, "manifest names no DCE, DWI or T2 image")
    return doc


def check_manifest(path: Path, doc: dict[str, Any], limits: ReadLimits) -> None:
    """Before any image is read: phase and b-value counts within the limits, every file one role only."""
    check_study_counts(path, _count(doc.get("dce")), _count(doc.get("dwi")), limits)
    _check_distinct(path, doc)


def _no_duplicate_keys(path: Path) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A ``json`` object hook refusing a key given twice in one object (JSON would keep the last)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        repeated = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        if repeated:
            raise StudyReadError(path, f"key(s) {repeated} given twice in one object; the manifest is ambiguous")
        return dict(pairs)

    return hook


def _count(spec: Any) -> int:
    """How many files a dce / dwi entry lists (0 when it names one 4-D file or is malformed)."""
    if isinstance(spec, list):
        return len(spec)
    if isinstance(spec, dict) and isinstance(spec.get("b_values"), list):
        return len(spec["b_values"])
    if isinstance(spec, dict) and "file" not in spec:
        lists = [v for k, v in spec.items() if k in ("phases", "subtraction", "post") and isinstance(v, list)]
        return max((len(v) + ("pre" in spec) for v in lists), default=len(spec))
    return 0


def _check_distinct(manifest: Path, doc: dict[str, Any]) -> None:
    """Refuse a file named for two roles or twice in one role (e.g. every DCE phase the same file)."""
    seen: dict[Path, str] = {}
    for what, rel in _named_files(doc):
        if not isinstance(rel, str) or not rel.strip():
            continue
        key = Path(os.path.normpath(manifest.parent / rel.strip()))
        with contextlib.suppress(OSError, RuntimeError):  # a loop is refused when the file is read
            key = key.resolve()
        if key in seen:
            raise StudyReadError(manifest, f"{rel!r} is named for both {seen[key]} and {what}; "
                                           "each image may have one role only")
        seen[key] = what


def _named_files(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    dce, dwi = doc.get("dce"), doc.get("dwi")
    if isinstance(dce, list):
        out += [(f"dce[{i}]", f) for i, f in enumerate(dce)]
    elif isinstance(dce, dict):
        names = dce.get("phases") or dce.get("subtraction") or [dce.get("pre"), *(dce.get("post") or [])]
        out += [(f"dce[{i}]", f) for i, f in enumerate(names if isinstance(names, list) else [])]
        out += [("dce.file", dce["file"])] if "file" in dce else []
    if isinstance(dwi, dict):
        out += [("dwi.file", dwi["file"])] if "file" in dwi else [(f"dwi[{b}]", f) for b, f in dwi.items()]
    elif isinstance(dwi, list):
        out += [(f"dwi[{i}]", e.get("file")) for i, e in enumerate(dwi) if isinstance(e, dict)]
    return out + [(role, doc[role]) for role in ("t2", "t1") if role in doc]


def _inside(manifest: Path, rel: Any, what: str) -> Path:
    if not isinstance(rel, str) or not rel.strip():
        raise StudyReadError(manifest, f"{what}: expected a relative file name, got {rel!r}")
    if Path(rel).is_absolute():
        raise StudyReadError(manifest, f"{what}: {rel!r} leaves the study folder; refused")
    target = confined(manifest.parent / rel, manifest.parent, manifest, what)
    if not target.exists():
        raise StudyReadError(manifest, f"{what}: {rel!r} does not exist")
    return target


def _split_channels(vol: Volume, key: str, values: list[Any]) -> list[Volume]:
    if vol.data.ndim == 3:
        return [vol]
    out = []
    for i in range(vol.data.shape[0]):
        meta = {**vol.meta, key: values[i] if i < len(values) else i}
        out.append(
            Volume(
                data=vol.data[i].copy(),
                affine=vol.affine,
                source=f"{vol.source}[{key}={meta[key]}]",
                meta=meta,
            )
        )
    return out


def _dce(man: Path, spec: Any, read: VolumeReader, limits: ReadLimits) -> tuple[list[Volume], bool]:
    if isinstance(spec, list):
        spec = {"phases": spec}
    if isinstance(spec, dict) and ("pre" in spec or "post" in spec):
        post = spec.get("post")
        if "pre" not in spec or not isinstance(post, list):
            raise StudyReadError(man, "dce: 'pre' needs 'post' (a list), and the other way round")
        derived = [spec["pre"], *post]
        if "phases" in spec and spec["phases"] != derived:
            raise StudyReadError(man, "dce: 'phases' and 'pre' + 'post' name different files")
        spec = {**spec, "phases": derived}
    if not isinstance(spec, dict) or len({"phases", "subtraction", "file"} & set(spec)) == 0:
        raise StudyReadError(
            man, "dce: expected a list, {'phases': [...]}, {'subtraction': [...]} or {'file': ...}"
        )
    if "file" in spec:
        sub = bool(spec.get("subtraction", False))
        vol = read(_inside(man, spec["file"], "dce.file"), limits)
        if vol.data.ndim != 4:
            raise StudyReadError(vol.source, "dce.file must be 4-D (phases on the 4th axis)")
        return _split_channels(vol, "phase", list(range(vol.data.shape[0]))), sub
    sub = isinstance(spec.get("subtraction"), list)
    files = spec["subtraction"] if sub else spec.get("phases")
    if not isinstance(files, list) or not files:
        raise StudyReadError(man, "dce: the phase list is empty or not a list")
    vols = []
    for i, rel in enumerate(files):
        vol = read(_inside(man, rel, f"dce[{i}]"), limits)
        if vol.data.ndim != 3:
            raise StudyReadError(vol.source, "each DCE phase file must be 3-D")
        vol.meta["phase"] = i
        vols.append(vol)
    if not sub and len(vols) < 2:
        raise StudyReadError(
            man,
            "dce: need the pre-contrast image and at least one post-contrast phase "
            "(or give 'subtraction' images)",
        )
    return vols, sub


def _dwi(man: Path, spec: Any, read: VolumeReader, limits: ReadLimits) -> dict[float, Volume]:
    pairs: list[tuple[Any, Any]]
    if isinstance(spec, dict) and "file" in spec:
        vol = read(_inside(man, spec["file"], "dwi.file"), limits)
        bs = spec.get("b_values")
        n = vol.data.shape[0] if vol.data.ndim == 4 else 1
        if not isinstance(bs, list) or len(bs) != n:
            raise StudyReadError(man, f"dwi.b_values must list {n} b-value(s) for {spec['file']!r}")
        vols = _split_channels(vol, "b_value", bs) if n > 1 else [vol]
        pairs = [(b, v) for b, v in zip(bs, vols, strict=True)]
    elif isinstance(spec, dict):
        pairs = [(b, read(_inside(man, rel, f"dwi[{b}]"), limits)) for b, rel in spec.items()]
    elif isinstance(spec, list) and all(isinstance(e, dict) and {"b", "file"} <= set(e) for e in spec):
        pairs = [(e["b"], read(_inside(man, e["file"], f"dwi[b={e['b']}]"), limits)) for e in spec]
    else:
        raise StudyReadError(
            man, "dwi: expected {b: file}, [{'b': .., 'file': ..}] or {'file': .., 'b_values': ..}"
        )
    out: dict[float, Volume] = {}
    for b, vol in pairs:
        if isinstance(b, bool):
            raise StudyReadError(man, f"dwi: b-value {b!r} is not a number")
        try:
            bval = float(b)
        except (TypeError, ValueError) as exc:
            raise StudyReadError(man, f"dwi: b-value {b!r} is not a number") from exc
        if not 0 <= bval <= 1e5 or bval in out:
            raise StudyReadError(man, f"dwi: b-value {b!r} out of range or repeated")
        if vol.data.ndim != 3:
            raise StudyReadError(vol.source, "DWI file must be 3-D (or use 'file' + 'b_values' for 4-D)")
        vol.meta["b_value"] = bval
        out[bval] = vol
    return out


def _clinical(man: Path, doc: dict[str, Any]) -> ClinicalInfo:
    birads = doc.get("birads")
    if birads is not None and str(birads).strip().lower() not in _BIRADS:
        raise StudyReadError(man, f"birads {birads!r} is not one of {sorted(_BIRADS)}")
    age = doc.get("age")
    if age is not None and (
        isinstance(age, bool) or not isinstance(age, (int, float)) or not 0 <= age <= 130
    ):
        raise StudyReadError(man, f"age {age!r} is not a number in 0..130")
    extra: dict[str, Any] = {}
    for key in ("clinical", "extra"):
        part = doc.get(key, {})
        if not isinstance(part, dict):
            raise StudyReadError(man, f"{key} must be a JSON object")
        extra.update(part)
    return ClinicalInfo(
        birads=None if birads is None else str(birads).strip().lower(),
        age=None if age is None else float(age),
        extra=extra,
    )


def read_manifest_study(manifest: Path, read: VolumeReader, limits: ReadLimits = DEFAULT_LIMITS) -> Study:
    """Build a :class:`Study` from ``study.json`` using ``read(path, limits)`` for each named image."""
    doc = load_manifest(manifest)
    check_manifest(manifest, doc, limits)
    study = Study(
        study_id=str(doc.get("study_id") or manifest.parent.name), clinical=_clinical(manifest, doc)
    )
    why = f"named in {MANIFEST_NAME}"
    if "dce" in doc:
        study.dce, study.dce_is_subtraction = _dce(manifest, doc["dce"], read, limits)
        for i, v in enumerate(study.dce):
            kind = (
                "subtraction" if study.dce_is_subtraction else ("pre-contrast" if i == 0 else f"post {i}")
            )
            study.decisions.append(RoleDecision(v.source, "dce", f"{why} ({kind})", {"phase": i}))
    if "dwi" in doc:
        study.dwi = _dwi(manifest, doc["dwi"], read, limits)
        for b, v in study.dwi.items():
            study.decisions.append(RoleDecision(v.source, "dwi", f"{why} (b={b:g})", {"b_value": b}))
    for role in ("t2", "t1"):
        if role in doc:
            vol = read(_inside(manifest, doc[role], role), limits)
            if vol.data.ndim != 3:
                raise StudyReadError(vol.source, f"{role} must be 3-D")
            setattr(study, role, vol)
            study.decisions.append(RoleDecision(vol.source, role, why))
    return study
