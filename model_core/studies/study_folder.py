"""Study folders without a manifest: DICOM series (classified from tags) or loose image files (by name).

* :func:`read_dicom_study`: header analysis of every series, broken stacks refused (missing slices,
  uneven spacing), benign ones recorded as ignored, roles from :func:`~model_core.studies.dicom_classify.classify`,
  then pixel data of the chosen series only.
* :func:`read_files_study`: NIfTI / NRRD / MetaImage files at the top of the folder, roles from their names
  (``dce_0``, ``pre``, ``post1``, ``ph2``, ``sub1``, ``dwi_b800``, ``b0``, ``t2``, ``t1``); DCE phases are
  ordered by the number in the name, ``pre`` first; files named like masks/labels are skipped. Every
  choice is a :class:`~model_core.studies.study.RoleDecision`. Use ``study.json`` when names are not this clear.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from model_core.errors import StudyReadError
from model_core.studies.dicom import assemble_volume
from model_core.studies.dicom_classify import (
    B_IN_TEXT,
    DCE_TEXT,
    DWI_TEXT,
    PRE_TEXT,
    SUB_TEXT,
    T1_TEXT,
    T2_TEXT,
    Assignment,
    classify,
    normalise_text,
)
from model_core.studies.dicom_headers import read_folder_headers
from model_core.studies.study import RoleDecision, Study, Volume
from model_core.studies.validate import DEFAULT_LIMITS, ReadLimits, confined

logger = logging.getLogger(__name__)

_MASK = re.compile(r"mask|label|seg|roi|lesion|truth")
_PHASE_NO = re.compile(r"(?:dce|dyn|ph(?:ase)?|post|sub|t)\s?(\d+)")
_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def read_dicom_study(folder: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Study:
    """Read a folder of DICOM series as a :class:`Study` (roles from tags and descriptions)."""
    series, n_other = read_folder_headers(folder, limits)
    if not series:
        raise StudyReadError(
            folder, "no DICOM image files found" + (f" ({n_other} non-image objects)" if n_other else "")
        )
    decisions: list[RoleDecision] = []
    for s in series:
        if s.problem and s.fatal:
            raise StudyReadError(f"{folder} [{s.label}] ({s.first.path.name})", s.problem)
        if s.problem:
            decisions.append(RoleDecision(s.label, "ignored", s.problem, {"series_uid": s.uid}))
    if all(s.problem.startswith("a single 2-D slice") for s in series):
        raise StudyReadError(
            folder,
            f"a single 2-D slice is not a study: the folder holds {len(series)} series, "
            "each a single slice; MOME needs 3-D DCE/DWI/T2 series",
        )
    c = classify(series)
    decisions += c.decisions
    if not (c.dce or c.dwi or c.t2):
        summary = "; ".join(f"{d.source}: {d.reason}" for d in decisions[:6])
        raise StudyReadError(folder, f"no usable DCE, DWI or T2 series ({summary})")
    study = Study(study_id=folder.name, decisions=decisions, dce_is_subtraction=c.dce_is_subtraction)

    def vol(a: Assignment) -> Volume:
        return assemble_volume(folder, a.series, a.sub, limits)

    if c.dce:
        study.dce = []
        for i, a in enumerate(c.dce):
            v = vol(a)
            v.meta["phase"] = i
            study.dce.append(v)
    for b, a in sorted(c.dwi.items()):
        v = vol(a)
        v.meta["b_value"] = b
        study.dwi[b] = v
    study.t2 = vol(c.t2) if c.t2 else None
    study.t1 = vol(c.t1) if c.t1 else None
    logger.info("%s: %d DICOM series -> %s", folder, len(series), ", ".join(study.modalities) or "nothing")
    return study


def _stem(p: Path) -> str:
    name = p.name.lower()
    for suf in _SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def _natural(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_files_study(
    folder: Path, read: Callable[[Path, ReadLimits], Volume], limits: ReadLimits = DEFAULT_LIMITS
) -> Study:
    """Read loose image files of ``folder`` as a :class:`Study`, roles from file names."""
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES)),
        key=lambda p: _natural(p.name.lower()),
    )
    for p in files:
        confined(p, folder, p, "image file")
    study = Study(study_id=folder.name)
    dce: list[tuple[float, Path]] = []
    sub: list[tuple[float, Path]] = []
    for p in files:
        s = normalise_text(_stem(p))
        if _MASK.search(s):
            study.decisions.append(RoleDecision(str(p), "ignored", "named like a mask/label"))
        elif DWI_TEXT.search(s):
            m = B_IN_TEXT.search(s)
            if m is None:
                study.decisions.append(
                    RoleDecision(str(p), "ignored", "DWI without b-value in name; use study.json")
                )
                continue
            b = float(m.group(1))
            if b in study.dwi:
                study.decisions.append(RoleDecision(str(p), "ignored", f"b={b:g} already taken"))
                continue
            v = read(p, limits)
            if v.data.ndim != 3:
                study.decisions.append(
                    RoleDecision(str(p), "ignored", "4-D DWI file; name b-values in study.json")
                )
                continue
            v.meta["b_value"] = b
            study.dwi[b] = v
            study.decisions.append(RoleDecision(str(p), "dwi", f"file name says b={b:g}", {"b_value": b}))
        elif SUB_TEXT.search(s) or DCE_TEXT.search(s):
            m = _PHASE_NO.search(s)
            order = -1.0 if PRE_TEXT.search(s) else (float(m.group(1)) if m else float("inf"))
            (sub if SUB_TEXT.search(s) else dce).append((order, p))
        elif T2_TEXT.search(s) and study.t2 is None:
            study.t2 = read(p, limits)
            study.decisions.append(RoleDecision(str(p), "t2", "file name says T2"))
        elif T1_TEXT.search(s) and study.t1 is None:
            study.t1 = read(p, limits)
            study.decisions.append(RoleDecision(str(p), "t1", "file name says T1"))
        else:
            study.decisions.append(RoleDecision(str(p), "ignored", "no role recognised from the file name"))
    chosen, is_sub = (dce, False) if dce else (sub, True)
    for _, p in sub if dce else []:
        study.decisions.append(
            RoleDecision(str(p), "ignored", "original DCE phases present; subtraction unused")
        )
    if chosen:
        chosen.sort(key=lambda t: t[0])  # stable: natural file-name order breaks ties
        vols: list[Volume] = []
        for _, p in chosen:
            v = read(p, limits)
            parts = (
                [v]
                if v.data.ndim == 3
                else [
                    Volume(v.data[i].copy(), v.affine, f"{v.source}[phase={i}]", dict(v.meta))
                    for i in range(v.data.shape[0])
                ]
            )
            vols.extend(parts)
        for i, v in enumerate(vols):
            v.meta["phase"] = i
            kind = "subtraction" if is_sub else ("pre-contrast" if i == 0 else f"post {i}")
            study.decisions.append(RoleDecision(v.source, "dce", f"file name order -> phase {i} ({kind})"))
        study.dce, study.dce_is_subtraction = vols, is_sub
    if not study.modalities:
        summary = (
            "; ".join(f"{Path(d.source).name}: {d.reason}" for d in study.decisions[:6]) or "no image files"
        )
        raise StudyReadError(folder, f"no DCE, DWI or T2 image recognised ({summary}); add a study.json")
    return study
