"""Study readers: NIfTI, NRRD / MetaImage, DICOM series and ``study.json`` folders -> ``Volume`` / ``Study``.

Public API::

    from model_core.studies import read_study, read_volume, ReadLimits
    study = read_study("/data/case001")          # folder: study.json, DICOM series, or named image files
    vol = read_volume("/data/case001/t2.nii.gz")  # one file (or a folder holding one DICOM series)
    vol = read_volume(path, limits=ReadLimits(max_bytes=256 << 20))  # smaller cap

Every volume is float32, reoriented to the closest RAS+ axes (permute/flip only), with an exact 4x4
voxel -> RAS mm affine and ``meta["reorientation"]`` (see :mod:`model_core.studies.orient`). Every failure is a
:class:`~model_core.errors.StudyReadError` (``GeometryError`` for DCE phases on different grids) naming the
file and the problem, with the library's exception as ``__cause__``.

Formats and where they are read:

* NIfTI (``.nii``, ``.nii.gz``): nibabel, in-process, header checked first (:mod:`.nifti`).
* NRRD (``.nrrd``, ``.nhdr``) and MetaImage (``.mha``, ``.mhd``): header parsed and checked in Python,
  voxels read by SimpleITK in an isolating child process (:mod:`.itkfile`, :mod:`.isolate`).
* DICOM: pydicom, ``force=False``; a folder's series are grouped, sorted by position and classified
  (:mod:`.dicom_headers`, :mod:`.dicom`, :mod:`.dicom_classify`). A single 2-D slice is refused both as a
  volume and as a study.
* ``study.json`` manifest (:mod:`.manifest`), else file names (:mod:`.study_folder`).

Importing this package is cheap (numpy only); nibabel, pydicom and the readers load on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from model_core.errors import StudyReadError
from model_core.studies.sniff import IMAGE_SUFFIXES, MANIFEST_NAME, sniff
from model_core.studies.study import Study, Volume
from model_core.studies.validate import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_BYTES,
    ReadLimits,
    StudyBudget,
    validate_study,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "IMAGE_SUFFIXES",
    "ReadLimits",
    "read_study",
    "read_volume",
    "sniff",
]


def read_volume(path: str | os.PathLike[str], limits: ReadLimits | None = None) -> Volume:
    """Read one image volume as float32 RAS+ ``(X, Y, Z)`` (or ``(C, X, Y, Z)`` for 4-D files / split series).

    ``path`` is a NIfTI / NRRD / MetaImage file or a folder holding exactly one DICOM series.
    """
    from model_core.studies.dicom import read_dicom_volume
    from model_core.studies.itkfile import read_itk_file
    from model_core.studies.nifti import read_nifti

    lim = limits or DEFAULT_LIMITS
    p = Path(path)
    kind = sniff(p) if p.exists() else None
    if kind == "nifti":
        return read_nifti(p, lim)
    if kind == "itk":
        return read_itk_file(p, lim)
    if kind in ("dicom", "folder"):
        return read_dicom_volume(p, lim)
    if not p.exists():
        raise StudyReadError(p, "no such file or folder")
    raise StudyReadError(
        p,
        "unsupported file type (NIfTI .nii/.nii.gz, NRRD .nrrd/.nhdr, MetaImage .mha/.mhd "
        "or a DICOM series folder)",
    )


def _budgeted_reader(folder: Path, limits: ReadLimits) -> Callable[[Path, ReadLimits], Volume]:
    """``read_volume`` that refuses the volume taking the study past ``limits.max_study_bytes``."""
    budget = StudyBudget(folder, limits)

    def read(path: Path, lim: ReadLimits) -> Volume:
        return budget.add(read_volume(path, lim))

    return read


def read_study(path: str | os.PathLike[str], limits: ReadLimits | None = None) -> Study:
    """Read a study folder (or its ``study.json``) as a validated :class:`Study`.

    Order: ``study.json`` if present; else DICOM series if any DICOM file is found; else image files
    classified by name. Each role decision is in ``study.decisions``. DCE phases must share one grid
    (:class:`~model_core.errors.GeometryError` otherwise).
    """
    from model_core.studies.dicom_headers import scan_folder
    from model_core.studies.manifest import read_manifest_study
    from model_core.studies.study_folder import read_dicom_study, read_files_study

    lim = limits or DEFAULT_LIMITS
    p = Path(path)
    if p.is_file() and p.name.lower() == MANIFEST_NAME:
        p = p.parent
    if p.is_file():
        if sniff(p) == "dicom":
            raise StudyReadError(
                p, "a single 2-D slice is not a study: give the folder holding the DICOM series"
            )
        raise StudyReadError(
            p,
            "a study is a folder (DICOM series, image files or a study.json); use read_volume for one file",
        )
    if not p.is_dir():
        raise StudyReadError(p, "no such folder")
    if (p / MANIFEST_NAME).is_file():
        study = read_manifest_study(p / MANIFEST_NAME, _budgeted_reader(p, lim), lim)
    elif scan_folder(p, lim):
        study = read_dicom_study(p, lim)
    else:
        study = read_files_study(p, _budgeted_reader(p, lim), lim)
    return validate_study(study, lim)
