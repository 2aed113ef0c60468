"""npe2 reader: NIfTI / NRRD / MetaImage files, DICOM series and study folders -> napari image layers.

Contract (npe2 ``reader`` command ``napari_get_reader(path)``): ``path`` is a ``str`` or a list of them.
The hook returns ``None`` quickly (no voxel read; a few file-name checks and at most ~20 132-byte magic
probes) for anything it cannot read, and never raises. Otherwise it returns a callable that reads and
returns ``[(data, kwargs, "image"), ...]``; on a bad file that callable raises
:class:`~model_core.errors.StudyReadError` (a ``ValueError``), which napari shows as a notification.
This module imports neither napari nor Qt.

Layers
------
* A study folder (``study.json``, DICOM series or named image files) gives one layer per volume, in the
  order DCE phases (``DCE_t0`` = pre-contrast, ``DCE_t1``...; ``DCE_sub1``... for ready subtraction
  images), DWI (``DWI_b0``, ``DWI_b800``...), ``T2``, ``T1``. DCE phases are separate layers (not one 4-D
  layer) because DWI/T2 live on other grids and each phase is a model input of its own. Only one layer
  is visible at first: the first post-contrast DCE phase if there is one, else the first layer.
* A single file gives one layer named after the file (a 4-D file: one 4-D layer, channel axis first).
  A single ``.dcm`` file gives the layers of its series (read from the files of its folder). Viewing never
  needs a study: a file that is not one opens as a plain image.
* Masks and label maps (a file name containing ``label``, ``mask`` or ``seg``, or a study manifest's
  ``extra.mask``) open as a half-transparent ``"labels"`` layer over the image (the MOME widget draws them
  as contours); a study's mask is loaded with its study.

Display: contrast limits are robust percentiles (:data:`CONTRAST_PERCENTILES`, on a strided sample), not
min/max; each role has its colormap (:data:`ROLE_COLORMAPS`).

Axes and world space (all layers share one world frame)
-------------------------------------------------------
``Volume.data`` is RAS+ ``(i, j, k)``; the layer data is the view ``data.transpose(2, 1, 0)`` = ``(k, j, i)``
(4-D: ``(C, k, j, i)``) and the world axes are ``(S, P, L)`` mm (LPS reversed, as SimpleITK-based readers
use), see :func:`model_core.studies.orient.napari_affine`. The default 2-D view is then axial in radiological
convention. When that mapping is axis-aligned the layer gets ``scale`` + ``translate`` (exact); an oblique
volume gets the full ``affine``.

``metadata``: ``role`` ("dce", "dwi", "t2", "t1" or None), ``affine`` (4x4 RAS, voxel (i, j, k) -> mm),
``napari_affine``, ``source``, ``spacing``, ``reorientation``, ``phase`` / ``b_value`` where relevant,
``dce_is_subtraction``, ``study_id``, ``decisions`` (the reader's role report as dicts), ``clinical``, and
``volume_meta`` (the reader's full ``Volume.meta``). :func:`volume_from_layer` rebuilds the ``Volume``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model_core.studies.sniff import sniff

logger = logging.getLogger(__name__)

CONTRAST_PERCENTILES = (0.5, 99.5)
ROLE_COLORMAPS = {"dce": "gray", "dwi": "magma", "t2": "bone", "t1": "gray"}
LABEL_WORDS = ("label", "mask", "seg")
_SAMPLE_VOXELS = 200_000

LayerData = tuple[np.ndarray, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerData]]


def napari_get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Return a reader callable for ``path`` (str or list of str), or ``None``. Never raises."""
    try:
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        if not paths or not all(isinstance(p, (str, os.PathLike)) for p in paths):
            return None
        if any(sniff(p) is None for p in paths):
            return None
    except (OSError, ValueError, TypeError):
        return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Read ``path`` (or each of a list) into napari layer tuples. Raises ``StudyReadError`` on bad input."""
    from model_core.errors import StudyReadError
    from model_core.studies import read_study, read_volume
    from model_core.studies.dicom import read_series_of_file

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        kind = sniff(p)
        if kind in ("folder", "manifest"):
            folder = Path(p) if Path(p).is_dir() else Path(p).parent
            layers += study_layers(read_study(p), folder)
        elif kind == "dicom":
            vols = read_series_of_file(p)
            for i, vol in enumerate(vols):
                name = _series_name(vol) + (f"_{i}" if len(vols) > 1 else "")
                layers.append(volume_layer(vol, name, role=None))
        elif kind in ("nifti", "itk"):
            stem = _file_stem(p)
            vol = read_volume(p)
            layers.append(label_layer(vol, stem) if is_label_name(stem) and vol.data.ndim == 3
                          else volume_layer(vol, stem, role=None))
        else:
            raise StudyReadError(p, "not a readable image file or study folder")
    return layers


def _file_stem(path: str | os.PathLike[str]) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_label_name(name: str) -> bool:
    """True for names of masks and label maps (``lesion_mask``, ``labels``, ``tumour_seg`` ...)."""
    low = name.lower()
    return any(word in low for word in LABEL_WORDS)


def robust_limits(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits: the :data:`CONTRAST_PERCENTILES` of a strided sample of ``data`` (any shape)."""
    flat = np.asarray(data).reshape(-1)
    step = max(1, flat.size // _SAMPLE_VOXELS)
    sample = flat[::step].astype(np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, CONTRAST_PERCENTILES))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _series_name(vol: Any) -> str:
    desc = str(vol.meta.get("series_description") or "").strip()
    number = vol.meta.get("series_number")
    return desc or f"series_{number}"


def volume_layer(vol: Any, name: str, role: str | None, **extra: Any) -> LayerData:
    """One napari layer tuple for a :class:`~model_core.studies.study.Volume` (see the module docstring)."""
    from model_core.studies.orient import napari_affine

    naff = napari_affine(vol.affine)
    if vol.data.ndim == 3:
        data = vol.data.transpose(2, 1, 0)
    else:
        data = vol.data.transpose(0, 3, 2, 1)
    kwargs: dict[str, Any] = {"name": name, "colormap": ROLE_COLORMAPS.get(role or "", "gray"),
                              "contrast_limits": robust_limits(data)}
    kwargs.update(_placement(naff, vol.data.ndim))
    kwargs["metadata"] = {
        "role": role,
        "affine": np.array(vol.affine),
        "napari_affine": naff,
        "source": vol.source,
        "spacing": vol.spacing,
        "reorientation": vol.meta.get("reorientation"),
        "volume_meta": dict(vol.meta),
        **extra,
    }
    return data, kwargs, "image"


def _placement(naff: np.ndarray, ndim: int) -> dict[str, Any]:
    """``scale`` + ``translate`` for an axis-aligned napari affine, else the full ``affine``."""
    from model_core.studies.orient import is_axis_aligned

    lead = [1.0] if ndim == 4 else []
    if is_axis_aligned(naff):
        return {"scale": tuple(lead + np.diag(naff)[:3].tolist()),
                "translate": tuple([0.0] * len(lead) + naff[:3, 3].tolist())}
    if ndim == 3:
        return {"affine": naff}
    big = np.eye(5)
    big[1:, 1:] = naff
    return {"affine": big}


def label_layer(vol: Any, name: str, **extra: Any) -> LayerData:
    """A ``"labels"`` layer tuple for a 3-D mask or label map: integer labels (a float mask is rounded),
    half transparent, on the same world placement as :func:`volume_layer` gives its grid. (A labels layer's
    ``contour`` is not a constructor argument in napari 0.9; the MOME widget switches mask layers to
    contours, :func:`napari_mome._widget.MomeWidget`.)"""
    from model_core.studies.orient import napari_affine

    naff = napari_affine(vol.affine)
    values = np.rint(np.nan_to_num(np.asarray(vol.data, dtype=np.float64))).transpose(2, 1, 0)
    dtype = np.uint8 if values.min() >= 0 and values.max() < 256 else np.int32
    kwargs: dict[str, Any] = {"name": name, "opacity": 0.5, "metadata": {
        "role": "mask", "affine": np.array(vol.affine), "napari_affine": naff, "source": vol.source,
        "spacing": vol.spacing, **extra}}
    kwargs.update(_placement(naff, 3))
    return values.astype(dtype), kwargs, "labels"


def volume_from_layer(data: np.ndarray, metadata: dict[str, Any]) -> Any:
    """Rebuild the RAS ``Volume`` from a layer made here (undoes the ``(k, j, i)`` view)."""
    from model_core.studies.study import Volume

    arr = np.asarray(data)
    arr = arr.transpose(2, 1, 0) if arr.ndim == 3 else arr.transpose(0, 3, 2, 1)
    return Volume(
        data=arr,
        affine=np.asarray(metadata["affine"]),
        source=str(metadata.get("source", "")),
        meta=dict(metadata.get("volume_meta") or {}),
    )


def study_layers(study: Any, folder: str | os.PathLike[str] | None = None, mask: Any = None) -> list[LayerData]:
    """Layer tuples for every volume of a :class:`~model_core.studies.study.Study`, in model order, then its
    lesion mask as a labels layer: ``mask`` (a ``Volume``), else the manifest's ``extra.mask`` file read
    from ``folder``."""
    common = {
        "study_id": study.study_id,
        "dce_is_subtraction": study.dce_is_subtraction,
        "decisions": [dataclasses.asdict(d) for d in study.decisions],
        "clinical": dataclasses.asdict(study.clinical),
    }
    layers: list[LayerData] = []
    visible_index = 0
    for i, vol in enumerate(study.dce or []):
        name = f"DCE_sub{i + 1}" if study.dce_is_subtraction else f"DCE_t{i}"
        layers.append(volume_layer(vol, name, "dce", phase=i, n_phases=len(study.dce), **common))
        if i == 1 and not study.dce_is_subtraction:
            visible_index = len(layers) - 1
    for b, vol in sorted(study.dwi.items()):
        layers.append(volume_layer(vol, f"DWI_b{b:g}", "dwi", b_value=float(b), **common))
    if study.t2 is not None:
        layers.append(volume_layer(study.t2, "T2", "t2", **common))
    if study.t1 is not None:
        layers.append(volume_layer(study.t1, "T1", "t1", **common))
    for i, (_, kwargs, _) in enumerate(layers):
        kwargs["visible"] = i == visible_index
    mask_vol = mask if mask is not None else _manifest_mask(study, folder)
    if mask_vol is not None:
        layers.append(label_layer(mask_vol, "lesion_mask", study_id=study.study_id))
    return layers


def _manifest_mask(study: Any, folder: str | os.PathLike[str] | None) -> Any:
    """The volume named by the manifest's ``extra.mask`` (relative to ``folder``), or ``None``."""
    from model_core.studies import read_volume

    name = study.clinical.extra.get("mask")
    if folder is None or not isinstance(name, str):
        return None
    path = Path(folder) / name
    if not path.is_file() or path.resolve().parent != Path(folder).resolve():
        logger.warning("study %s: mask %r not found beside its study.json", study.study_id, name)
        return None
    return read_volume(path)
