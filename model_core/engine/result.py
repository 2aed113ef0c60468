"""The result of one analysis: a JSON-serialisable record plus saliency volumes written as NIfTI.

``Result.write(out_dir)`` writes ``result.json`` and ``saliency_<modality>.nii.gz`` (float32, the native
affine of the modality's reference volume, voxel -> RAS mm); ``Result.read(out_dir)`` reads both back.

NIfTI-1 stores the affine in float32; when that would move any affine entry by more than 1e-7 (real
scanner geometry often has such values), the file is written as NIfTI-2 (float64 affine) instead, so the
affine always survives a round trip within 1e-6. Both are read by nibabel, ITK, 3D Slicer and our reader.

Saliency values are interpolated from the canvas (a per-voxel density): they are not redistributed to
conserve sums; the canvas totals are in ``explain.attribution_totals``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from model_core.engine.subsets import subset_key
from model_core.weights.native import RESEARCH_USE

SCHEMA = "napari-mome-result/1"
VOLATILE = ("run_id", "created", "timings")
"""Top-level fields that differ between identical runs (excluded by ``to_dict(volatile=False)``)."""


def _affine_fits_float32(affine: np.ndarray, tol: float = 1e-7) -> bool:
    a = np.asarray(affine, dtype=np.float64)
    return bool(np.abs(a.astype(np.float32).astype(np.float64) - a).max() <= tol)


@dataclass(eq=False)
class Saliency:
    """One saliency map.

    Attributes:
        modality: ``"dce"``, ``"dwi"`` or ``"t2"``.
        data: float32 ``(X, Y, Z)`` on the grid of ``reference``.
        affine: float64 ``(4, 4)`` voxel -> RAS mm of that grid (identity for canvas-space maps).
        reference: the volume whose grid this is (``"dce[0]"``, ``"dwi[b=800]"``, ``"t2"``, ``"canvas"``).
        space: ``"native"`` (the input volume's grid) or ``"canvas"`` (inputs given as ready tensors).
    """

    modality: str
    data: np.ndarray
    affine: np.ndarray
    reference: str
    space: str = "native"

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.data.ndim != 3 or self.affine.shape != (4, 4):
            raise ValueError(f"saliency must be (X, Y, Z) with a 4x4 affine, got {self.data.shape}")

    @property
    def filename(self) -> str:
        return f"saliency_{self.modality}.nii.gz"

    def summary(self) -> dict[str, Any]:
        d = self.data.astype(np.float64)
        return {"file": self.filename, "reference": self.reference, "space": self.space,
                "shape": list(self.data.shape), "affine": self.affine.tolist(), "min": float(d.min()),
                "max": float(d.max()), "sum": float(d.sum()), "abs_sum": float(np.abs(d).sum())}

    def to_nifti(self) -> nib.Nifti1Image | nib.Nifti2Image:
        cls = nib.Nifti1Image if _affine_fits_float32(self.affine) else nib.Nifti2Image
        img = cls(self.data, self.affine)
        img.set_sform(self.affine, code=1)
        img.set_qform(self.affine, code=1)
        img.header["descrip"] = b"MOME IG saliency; research use only"
        return img

    def write(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        nib.save(self.to_nifti(), str(path))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str], modality: str, reference: str = "", space: str = "native") -> Saliency:
        img: Any = nib.load(str(path))
        return cls(modality, np.asarray(img.dataobj, dtype=np.float32), img.affine, reference, space)


def _clean(obj: Any) -> Any:
    """Make ``obj`` JSON-clean: numpy scalars/arrays to Python, tuples to lists; NaN/Inf refused."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError("non-finite number in a result")
    if hasattr(obj, "to_dict"):
        return _clean(obj.to_dict())
    return obj


@dataclass(eq=False)
class Result:
    """Everything one Run produced.

    Attributes:
        probability: malignancy probability with every available modality: the TTA mean when TTA is on,
            else the centred, unflipped canvas (the val/test transform).
        subsets: subset key (``"dce+dwi+t2"``, ..., ``"none"`` = CLS-only prior) -> probability on the same
            versions (TTA mean), ``None`` where the study lacks a modality of the subset.
        shapley: modality -> exact Shapley value; ``v(S)`` = the ``subsets`` values for non-empty ``S`` and
            ``v(∅)`` = ``shapley_empty["v_empty"]``; absent modalities get 0.
        shapley_check: ``v_full``, ``v_empty``, ``sum_phi``, ``error`` (the efficiency identity, against the
            ``v(∅)`` used).
        shapley_empty: which ``v(∅)`` was used: ``kind`` (``"reference"``: the model's mean probability over
            the card's reference cohort; ``"prior"``: the CLS-only forward), ``v_empty``, ``description``,
            ``n`` and ``cohort_digest`` of the reference cohort, ``note``
            (:func:`model_core.engine.reference.empty_value`).
        unused_modalities: modality -> reason, for sequences the model card's figures say this model does not
            use (show them as "not used by this model", not as a Shapley bar).
        modalities: modalities present in the study.
        tta: ``kind``, ``n_versions``, ``versions``, ``mean``, ``std`` (population), ``min``, ``max``,
            ``per_version`` (probability with all available modalities, per version).
        decision: the BI-RADS 4 decision (:class:`model_core.engine.decision.Decision` as a dict).
        explain: IG settings and completeness (``None`` when not explained).
        provenance: model id/sha256, package versions, device, dtype, threads, determinism, settings.
        study: non-identifying study facts (hashed id, BI-RADS, input digests, shapes).
        timings: seconds per stage.
        saliency: modality -> :class:`Saliency` (written as NIfTI, not part of the JSON).
    """

    probability: float
    subsets: dict[str, float | None]
    shapley: dict[str, float]
    shapley_check: dict[str, float]
    modalities: tuple[str, ...]
    tta: dict[str, Any]
    decision: dict[str, Any]
    explain: dict[str, Any] | None
    provenance: dict[str, Any]
    study: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    created: str = ""
    intended_use: str = RESEARCH_USE
    saliency: dict[str, Saliency] = field(default_factory=dict)
    shapley_empty: dict[str, Any] = field(default_factory=dict)
    unused_modalities: dict[str, str] = field(default_factory=dict)
    schema: str = SCHEMA

    # ------------------------------------------------------------------ access
    def subset_probability(self, modalities: str | Iterable[str]) -> float | None:
        """Probability with only ``modalities`` (``"dce+t2"``, ``("dwi",)``, ``"none"``); ``None`` when the
        study lacks one of them. A dictionary lookup: every subset was computed at Run time."""
        return self.subsets[subset_key(modalities)]

    @property
    def predicted_malignant(self) -> bool:
        return self.probability >= 0.5

    # ------------------------------------------------------------------ JSON
    def to_dict(self, volatile: bool = True) -> dict[str, Any]:
        """JSON-ready dict; ``volatile=False`` drops ``run_id``, ``created`` and ``timings`` (for comparing
        two runs)."""
        d: dict[str, Any] = {
            "schema": self.schema, "intended_use": self.intended_use, "run_id": self.run_id,
            "created": self.created, "probability": self.probability, "modalities": list(self.modalities),
            "subsets": self.subsets, "shapley": self.shapley, "shapley_check": self.shapley_check,
            "shapley_empty": self.shapley_empty, "unused_modalities": self.unused_modalities,
            "tta": self.tta, "decision": self.decision, "explain": self.explain,
            "saliency": {m: s.summary() for m, s in self.saliency.items()},
            "study": self.study, "provenance": self.provenance, "timings": self.timings,
        }
        if not volatile:
            for k in VOLATILE:
                d.pop(k)
            if d["explain"] is not None:
                d["explain"] = {k: v for k, v in d["explain"].items() if k != "seconds"}
        return _clean(d)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], saliency: Mapping[str, Saliency] | None = None) -> Result:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a napari-mome result (schema {d.get('schema')!r})")
        return cls(
            probability=float(d["probability"]), subsets=dict(d["subsets"]), shapley=dict(d["shapley"]),
            shapley_check=dict(d["shapley_check"]), modalities=tuple(d["modalities"]), tta=dict(d["tta"]),
            decision=dict(d["decision"]), explain=None if d.get("explain") is None else dict(d["explain"]),
            provenance=dict(d["provenance"]), study=dict(d["study"]), timings=dict(d.get("timings", {})),
            run_id=d.get("run_id", ""), created=d.get("created", ""),
            intended_use=d.get("intended_use", RESEARCH_USE), saliency=dict(saliency or {}),
            shapley_empty=dict(d.get("shapley_empty", {})), unused_modalities=dict(d.get("unused_modalities", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> Result:
        return cls.from_dict(json.loads(text))

    # ------------------------------------------------------------------ files
    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``result.json`` and one ``saliency_<modality>.nii.gz`` per map; returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {m: s.write(out / s.filename) for m, s in self.saliency.items()}
        paths["result"] = out / "result.json"
        paths["result"].write_text(self.to_json() + "\n")
        return paths

    @classmethod
    def read(cls, out_dir: str | os.PathLike[str]) -> Result:
        """Read what :meth:`write` wrote (saliency volumes included when present)."""
        out = Path(out_dir)
        d = json.loads((out / "result.json").read_text())
        sal: dict[str, Saliency] = {}
        entries: dict[str, Any] = d.get("saliency", {})
        for m, s in entries.items():
            p = out / s["file"]
            if p.is_file():
                sal[m] = Saliency.read(p, m, s.get("reference", ""), s.get("space", "native"))
        return cls.from_dict(d, sal)
