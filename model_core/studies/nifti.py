"""NIfTI-1/-2 reader (``.nii``, ``.nii.gz``) via nibabel, in-process, header first.

Order of checks (no voxel is read before all header checks pass):

1. Header extensions are bounded (<= 8 MiB, esize chain inside vox_offset) before nibabel reads them;
   then nibabel parses the header (its own checks: sizeof_hdr, magic, datatype, ...).
2. Shape: 3-D, or 4-D with phases/b-values on the 4th axis (trailing singleton axes dropped); every spatial
   axis in ``[min_dim, max_dim]``; ``prod(shape) * 4 <= ReadLimits.max_bytes``.
3. Data type: real numbers only (no complex, no RGB).
4. Affine (sform if ``sform_code > 0``, else qform if ``qform_code > 0``, nibabel's rule): finite, well
   conditioned, spacing in ``(0, 20]`` mm. Both codes 0 (no orientation at all) is refused. When sform and
   qform are both set but disagree by more than 1e-3 mm a warning names both codes and the chosen sform.
5. The data size: ``vox_offset + nbytes`` must equal the file size (``.nii``) or the gzip size trailer
   (``.nii.gz``, modulo 2^32): a short file is refused, never zero-filled, and so is one holding more
   data than declared (a header whose shape was changed).
6. With the qform in use, ``pixdim`` 1-3 must be positive (nibabel would silently use 1 mm for 0).

Voxels are then read as float32 slab by slab (scl_slope/inter applied by nibabel), each slab's shape
compared with the approved one, non-finite voxels are refused (or zeroed, see
:class:`~model_core.studies.validate.ReadLimits`), and the array is reoriented to the closest RAS+ axes.

Output: :class:`~model_core.studies.study.Volume` with ``data`` ``(X, Y, Z)`` or ``(C, X, Y, Z)`` (4th file axis
moved first), RAS affine, ``meta`` with ``format``, ``reorientation``, ``qform_code``, ``sform_code``,
``file_dtype``.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from model_core.errors import StudyReadError
from model_core.studies.orient import reorient_to_ras
from model_core.studies.study import Volume
from model_core.studies.validate import DEFAULT_LIMITS, ReadLimits, check_affine, check_finite, check_shape, reading

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_NIB_ERRORS = (HeaderDataError, ImageFileError)
MAX_EXTENSION_BYTES = 8 << 20
"""Largest total of NIfTI header extensions accepted (nibabel reads every extension into memory)."""


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    """True for names ending in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _check_extensions(path: Path) -> None:
    """Bound the header extensions before nibabel reads them (a small .nii.gz can declare gigabytes).

    Reads the fixed header and at most ``MAX_EXTENSION_BYTES``; walks the ``esize`` chain. Headers this
    cannot interpret (unknown sizeof_hdr) are left to nibabel, which refuses them.
    """
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(544)
        for order in ("<", ">"):
            sizeof = int(np.frombuffer(head[:4], dtype=order + "i4")[0]) if len(head) >= 4 else 0
            if sizeof in (348, 540):
                break
        else:
            return
        if len(head) < sizeof + 4 or head[sizeof] == 0:
            return  # no extension flag: nibabel reads no extension
        if sizeof == 348:
            offset = float(np.frombuffer(head[108:112], dtype=order + "f4")[0])
        else:
            offset = float(np.frombuffer(head[168:176], dtype=order + "i8")[0])
        room = offset - (sizeof + 4)
        if not math.isfinite(offset) or room > MAX_EXTENSION_BYTES:
            raise StudyReadError(
                path,
                f"header extensions up to vox_offset {offset:.6g} exceed the "
                f"{MAX_EXTENSION_BYTES >> 20} MiB limit",
            )
        if room < 16:
            return
        f.seek(sizeof + 4)
        region = f.read(int(room))
    pos = 0
    while pos + 16 <= len(region):
        esize = int(np.frombuffer(region[pos : pos + 4], dtype=order + "i4")[0])
        if esize < 16 or pos + esize > room:
            raise StudyReadError(
                path,
                f"header extension at byte {sizeof + 4 + pos} has size {esize}, which "
                f"overruns vox_offset {offset:.0f}",
            )
        pos += esize


def _choose_affine(path: Path, img: Any) -> tuple[np.ndarray, dict[str, Any]]:
    hdr = img.header
    q_code, s_code = int(hdr["qform_code"]), int(hdr["sform_code"])
    info: dict[str, Any] = {"qform_code": q_code, "sform_code": s_code}
    if q_code <= 0 and s_code <= 0:
        raise StudyReadError(
            path,
            "no orientation: qform_code and sform_code are both 0, so the voxel-to-"
            "patient mapping is unknown",
        )
    if s_code > 0:
        affine = hdr.get_sform()
        if q_code > 0:
            qform = hdr.get_qform()
            if np.all(np.isfinite(qform)) and not np.allclose(qform, affine, atol=1e-3):
                logger.warning(
                    "%s: qform (code %d) and sform (code %d) disagree by %.3g mm; using the sform",
                    path,
                    q_code,
                    s_code,
                    float(np.abs(qform - affine).max()),
                )
                info["qform_sform_disagree"] = True
        info["affine_from"] = "sform"
    else:
        affine = hdr.get_qform()
        info["affine_from"] = "qform"
    return np.asarray(affine, dtype=np.float64), info


def inspect_nifti(
    path: str | os.PathLike[str], limits: ReadLimits = DEFAULT_LIMITS
) -> tuple[Any, tuple[int, ...], np.ndarray, dict[str, Any]]:
    """Header-only checks. Returns ``(image, approved_shape, affine, info)``; reads no voxel."""
    p = Path(path)
    if not p.is_file():
        raise StudyReadError(p, "not a file")
    if not is_nifti_path(p):
        raise StudyReadError(p, "not a NIfTI file name (.nii or .nii.gz)")
    with reading(p, "cannot parse NIfTI header", _NIB_ERRORS):
        _check_extensions(p)
        img = nib.load(p)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise StudyReadError(p, f"not a NIfTI image (nibabel read a {type(img).__name__})")
        raw_shape = tuple(int(s) for s in img.shape)
        dtype = np.dtype(img.get_data_dtype())
    shape = check_shape(p, raw_shape, limits)
    if dtype.kind not in "iuf" or dtype.fields is not None:
        raise StudyReadError(p, f"unsupported voxel type {dtype} (real numbers only; no complex or RGB)")
    with reading(p, "invalid orientation in header", _NIB_ERRORS):
        affine, info = _choose_affine(p, img)
    affine = check_affine(p, affine, limits)
    offset = int(img.dataobj.offset)  # type: ignore[attr-defined]
    min_offset = int(img.header.sizeof_hdr) + 4
    if offset < min_offset:
        raise StudyReadError(p, f"vox_offset {offset} lies inside the header (needs >= {min_offset})")
    _check_data_size(p, offset + math.prod(raw_shape) * dtype.itemsize)
    if info["affine_from"] == "qform":
        pixdim = _file_pixdim(p, img)  # as stored: nibabel replaces a 0 by 1 when it loads the header
        if not all(math.isfinite(v) and v > 0 for v in pixdim):
            raise StudyReadError(p, f"pixdim {pixdim}: voxel sizes must be positive (the qform needs them)")
    info["file_dtype"] = str(dtype)
    return img, shape, affine, info


def _file_pixdim(path: Path, img: Any) -> list[float]:
    """``pixdim[1:4]`` as stored in the file (NIfTI-1: float32 at byte 76; NIfTI-2: float64 at byte 104)."""
    nifti2 = isinstance(img, nib.Nifti2Image)
    code = img.header.endianness + ("f8" if nifti2 else "f4")
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with reading(path, "cannot read pixdim"), opener(path, "rb") as f:
        head = f.read(168)
    return [float(v) for v in np.frombuffer(head, dtype=code, count=8, offset=104 if nifti2 else 76)[1:4]]


def _check_data_size(path: Path, need: int) -> None:
    """The file must hold exactly the data the header declares: the file size (``.nii``) or the gzip
    size trailer, modulo 2^32 (``.nii.gz``), must equal ``vox_offset + data bytes``."""
    size = path.stat().st_size
    if str(path).lower().endswith(".gz"):
        if size < 18:
            raise StudyReadError(path, f"truncated: {size} bytes is no gzip file")
        with open(path, "rb") as f:
            f.seek(size - 4)
            isize = int.from_bytes(f.read(4), "little")
        if isize != need % (1 << 32):
            raise StudyReadError(
                path, f"the gzip data hold {isize} bytes (size trailer, mod 2^32), the header declares {need} "
                "(vox_offset + voxel data): truncated, or a header that does not match its data"
            )
    elif need > size:
        raise StudyReadError(path, f"truncated: header needs {need} bytes (vox_offset + data), the file has {size}")
    elif need < size:
        raise StudyReadError(
            path, f"more data than declared: header needs {need} bytes (vox_offset + data), the file has {size}"
        )


_SLAB_BYTES = 32 << 20
"""Most bytes of file data converted at a time (bounds the reader's memory above its float32 output)."""


def _read_float32(img: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The voxels as float32 ``(X, Y, Z)``, or ``(C, X, Y, Z)`` for a 4-D ``shape`` (channels first), read
    slab by slab along z (and per channel), so that a wide file type (float64, int64) is never held whole:
    peak memory is the output plus one slab."""
    raw = tuple(int(s) for s in img.shape)
    nx, ny, nz = shape[:3]
    channels = shape[3] if len(shape) == 4 else 1
    itemsize = max(np.dtype(img.get_data_dtype()).itemsize, 8)  # scaled slabs come back as float64
    step = max(1, _SLAB_BYTES // max(1, nx * ny * itemsize))
    out = np.empty((channels, nx, ny, nz), dtype=np.float32)
    proxy = img.dataobj
    extra = (0,) * (len(raw) - 3 - (len(shape) == 4))  # trailing singleton axes in the file
    for c in range(channels):
        lead = (c,) if len(shape) == 4 else ()
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            slab = np.asarray(proxy[(slice(None), slice(None), slice(z0, z1), *lead, *extra)])
            if slab.shape != (nx, ny, z1 - z0):
                raise StudyReadError(img.get_filename(), f"voxel slab {slab.shape} does not match the header")
            out[c, :, :, z0:z1] = slab
    return out[0] if len(shape) == 3 else out


def read_nifti(path: str | os.PathLike[str], limits: ReadLimits = DEFAULT_LIMITS) -> Volume:
    """Read a NIfTI file as a RAS+ :class:`Volume` (float32). Raises ``StudyReadError`` on any problem."""
    p = Path(path)
    img, shape, affine, info = inspect_nifti(p, limits)
    with reading(p, "cannot read voxel data", _NIB_ERRORS):
        data = _read_float32(img, shape)
    n_zeroed = check_finite(p, data, limits)
    with reading(p, "cannot reorient"):
        data, affine_ras, reorientation = reorient_to_ras(data, affine)
    data = np.ascontiguousarray(data, dtype=np.float32)
    meta: dict[str, Any] = {"format": "nifti", "reorientation": reorientation, **info}
    if n_zeroed:
        meta["nonfinite_zeroed"] = n_zeroed
    return Volume(data=data, affine=affine_ras, source=str(p), meta=meta)
