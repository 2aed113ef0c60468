"""NRRD / MetaImage reader: our header checks in-process, then SimpleITK in the isolating child process.

Flow: parse the text header (:mod:`~model_core.studies.nrrd` / :mod:`~model_core.studies.metaio`) -> limits and
"declared data present" checks (:func:`~model_core.studies.texthdr.check_text_header`) -> SimpleITK reads in
the child (:func:`~model_core.studies.isolate.read_with_sitk`) -> geometry checks -> LPS to RAS -> closest RAS+
reorientation.

SimpleITK gives the array as ``(z, y, x)`` with spacing/origin/direction in ``(x, y, z)`` LPS; we
transpose to ``(x, y, z)`` and build the RAS affine with :func:`~model_core.studies.orient.affine_from_itk`.
``meta["reorientation"]`` describes the ``(x, y, z)`` ITK index grid as "the file's own grid".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from model_core.errors import StudyReadError
from model_core.studies.isolate import read_with_sitk
from model_core.studies.metaio import is_metaio_path, parse_metaio_header
from model_core.studies.nrrd import is_nrrd_path, parse_nrrd_header
from model_core.studies.orient import affine_from_itk, reorient_to_ras
from model_core.studies.study import Volume
from model_core.studies.texthdr import TextHeader, check_text_header, data_digest
from model_core.studies.validate import DEFAULT_LIMITS, ReadLimits, check_affine, check_finite, reading

logger = logging.getLogger(__name__)


def is_itk_path(path: object) -> bool:
    """True for ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` names (case-insensitive)."""
    return is_nrrd_path(path) or is_metaio_path(path)


def inspect_itk_file(path: str | os.PathLike[str], limits: ReadLimits = DEFAULT_LIMITS) -> TextHeader:
    """Header-only checks for a NRRD / MetaImage file (no SimpleITK involved)."""
    p = Path(path)
    if not p.is_file():
        raise StudyReadError(p, "not a file")
    if is_nrrd_path(p):
        hdr = parse_nrrd_header(p)
    elif is_metaio_path(p):
        hdr = parse_metaio_header(p)
    else:
        raise StudyReadError(p, "not a NRRD (.nrrd/.nhdr) or MetaImage (.mha/.mhd) file name")
    check_text_header(hdr, limits)
    return hdr


def read_itk_file(path: str | os.PathLike[str], limits: ReadLimits = DEFAULT_LIMITS) -> Volume:
    """Read a NRRD / MetaImage volume as a RAS+ float32 :class:`Volume` ``(X, Y, Z)``."""
    p = Path(path)
    hdr = inspect_itk_file(p, limits)
    arr, geom = read_with_sitk(
        p, hdr.imageio, hdr.sizes, limits.max_bytes, limits.worker_timeout_s, hdr.dtype, data_digest(hdr)
    )
    with reading(p, "invalid geometry from SimpleITK"):
        spacing = np.asarray(geom["spacing"], dtype=np.float64).reshape(3)
        affine = affine_from_itk(spacing, geom["origin"], geom["direction"])
    if not np.allclose(spacing, hdr.spacing, rtol=1e-4, atol=1e-6):
        raise StudyReadError(
            p,
            f"SimpleITK reads spacing {spacing.round(6).tolist()} but the header declares "
            f"{[round(s, 6) for s in hdr.spacing]}",
        )
    affine = check_affine(p, affine, limits)
    data = np.ascontiguousarray(arr.transpose(2, 1, 0))
    del arr  # the (z, y, x) copy is no longer needed: peak memory stays at two volumes
    n_zeroed = check_finite(p, data, limits)
    with reading(p, "cannot reorient"):
        data, affine_ras, reorientation = reorient_to_ras(data, affine)
    meta: dict[str, Any] = {
        "format": hdr.kind,
        "reorientation": reorientation,
        "file_dtype": str(hdr.dtype),
        "encoding": hdr.encoding,
        "sitk_pixel": geom.get("pixel", ""),
    }
    if n_zeroed:
        meta["nonfinite_zeroed"] = n_zeroed
    return Volume(
        data=np.ascontiguousarray(data, dtype=np.float32), affine=affine_ras, source=str(p), meta=meta
    )
