"""Write a :class:`~model_core.phantom.generate.PhantomCase` to disk: NIfTI + ``study.json``, DICOM, truth.

Layout of one case folder (``write_case(case, out_dir)``)::

    out_dir/
      truth.json                  every label and latent lesion attribute (never read by the model)
      nifti/                      a study folder
        study.json                manifest, see below
        dce_pre.nii.gz  dce_post1.nii.gz ... dce_postN.nii.gz     one 3-D file per DCE phase
        dwi_b0.nii.gz  dwi_b1000.nii.gz                           one 3-D file per b-value
        t2.nii.gz  [t1.nii.gz]  lesion_mask.nii.gz (uint8, DCE grid)
                                  (``.nii`` instead of ``.nii.gz`` with ``compress=False``)
      dicom/                      a study folder of DICOM series (see :mod:`model_core.phantom.dicom`)
        01_dce_pre/IM0001.dcm ...

NIfTI files are float32 in canonical RAS+ order with the exact affine as both sform and qform (code 1).
The manifest follows the reader's schema (:mod:`model_core.studies.manifest`): ``dce`` carries both
``{"pre", "post"}`` and the equivalent ``phases`` list; ``dwi`` maps b-value strings to files; the lesion
mask (not a model input) is named under ``extra.mask``, since unknown top-level keys are refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from model_core.phantom.generate import PhantomCase
from model_core.studies.study import Volume

log = logging.getLogger(__name__)

FORMATS = ("nifti", "dicom")
MASK_NAME = "lesion_mask.nii.gz"
"""The mask of a compressed study (``lesion_mask.nii`` in an uncompressed one)."""


def _b_name(b: float) -> str:
    return f"{b:g}"


def write_nifti_volume(vol: Volume, path: Path, dtype: type = np.float32) -> Path:
    """One 3-D volume as NIfTI-1 with its affine as sform and qform (code 1, "scanner"), units mm."""
    img = nib.Nifti1Image(np.asarray(vol.data, dtype=dtype), vol.affine)
    img.set_sform(vol.affine, code=1)
    img.set_qform(vol.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = b"napari-mome phantom (synthetic)"
    nib.save(img, str(path))
    return path


def manifest(case: PhantomCase, files: dict[str, Any]) -> dict[str, Any]:
    """The ``study.json`` document for the NIfTI folder; ``files`` holds the names written."""
    clinical = dict(case.study.clinical.extra)
    doc: dict[str, Any] = {
        "version": 1,
        "study_id": case.case_id,
        "dce": {"pre": files["dce"][0], "post": files["dce"][1:], "phases": files["dce"]},
        "dwi": files["dwi"],
        "t2": files["t2"],
    }
    if "t1" in files:
        doc["t1"] = files["t1"]
    doc.update(
        birads=case.study.clinical.birads,
        age=case.study.clinical.age,
        clinical=clinical,
        extra={"mask": files["mask"], "phantom_seed": case.seed, "phantom_site": case.site.name,
               "phantom_scale": case.scale, "dce_times_s": [0.0, *case.site.post_times_s]},
    )  # fmt: skip
    return doc


def write_nifti_study(case: PhantomCase, folder: Path, compress: bool = True) -> Path:
    """All sequences, the mask and ``study.json`` into ``folder``; returns the manifest path.

    ``compress=False`` writes ``.nii`` files: faster to write and read, larger on disk (noisy float32
    images barely compress).
    """
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".nii.gz" if compress else ".nii"
    st = case.study
    if not st.dce or st.t2 is None:
        raise ValueError(f"{case.case_id}: a phantom study needs DCE and T2")
    files: dict[str, Any] = {"dce": [], "dwi": {}}
    for p, vol in enumerate(st.dce):
        name = ("dce_pre" if p == 0 else f"dce_post{p}") + ext
        write_nifti_volume(vol, folder / name)
        files["dce"].append(name)
    for b, vol in sorted(st.dwi.items()):
        name = f"dwi_b{_b_name(b)}{ext}"
        write_nifti_volume(vol, folder / name)
        files["dwi"][_b_name(b)] = name
    write_nifti_volume(st.t2, folder / f"t2{ext}")
    files["t2"] = f"t2{ext}"
    if st.t1 is not None:
        write_nifti_volume(st.t1, folder / f"t1{ext}")
        files["t1"] = f"t1{ext}"
    mask_name = MASK_NAME if compress else MASK_NAME.removesuffix(".gz")
    write_nifti_volume(case.mask, folder / mask_name, dtype=np.uint8)
    files["mask"] = mask_name
    path = folder / "study.json"
    path.write_text(json.dumps(manifest(case, files), indent=2) + "\n", encoding="utf-8")
    return path


def truth_document(case: PhantomCase) -> dict[str, Any]:
    """Ground truth as JSON: labels, lesion attributes, centre (world RAS mm), generator settings."""
    return {
        "case_id": case.case_id,
        "patient_id": case.patient_id,
        "seed": case.seed,
        "site": case.site.name,
        "scale": case.scale,
        "labels": case.labels(),
        "truth": case.truth.to_dict(),
        "lesion_centre_ras_mm": list(case.lesion_centre_mm),
        "synthetic": True,
    }


def write_case(
    case: PhantomCase, out_dir: str | Path, formats: Iterable[str] = FORMATS, dicom_manifest: bool = False,
    compress: bool = True,
) -> dict[str, Path]:
    """Write one case into ``out_dir`` (created): ``truth.json`` plus a ``nifti/`` and/or ``dicom/`` folder.

    Args:
        case: from :func:`model_core.phantom.generate_study`.
        out_dir: the case folder.
        formats: any of ``"nifti"``, ``"dicom"``.
        dicom_manifest: also write a ``study.json`` into ``dicom/`` naming the series folders (off by
            default, so readers classify the series from their tags).
        compress: NIfTI as ``.nii.gz`` (default) or ``.nii``.

    Returns:
        ``{"root": ..., "truth": ..., "nifti": <folder>, "dicom": <folder>}`` for what was written.
    """
    fmts = tuple(formats)
    bad = sorted(set(fmts) - set(FORMATS))
    if bad:
        raise ValueError(f"unknown formats {bad}; choose from {FORMATS}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {"root": root}
    if "nifti" in fmts:
        write_nifti_study(case, root / "nifti", compress)
        out["nifti"] = root / "nifti"
    if "dicom" in fmts:
        from model_core.phantom.dicom import write_dicom_study

        write_dicom_study(case, root / "dicom", manifest=dicom_manifest)
        out["dicom"] = root / "dicom"
    truth_path = root / "truth.json"  # last: its presence marks a complete case
    truth_path.write_text(json.dumps(truth_document(case), indent=2) + "\n", encoding="utf-8")
    out["truth"] = truth_path
    log.debug("wrote %s (%s)", root, ", ".join(fmts))
    return out
