"""Study -> model-ready arrays (paper "Data preprocessing"; docs/model.md, *Preprocessing*).

:func:`preprocess` turns a :class:`~model_core.studies.study.Study` into one float32 array ``(C, X, Y, Z)`` per
modality present (DCE C=6, DWI C=1, T2 C=1), cropped and standardised but not yet on the canvas (that
is :mod:`model_core.preprocessing.canvas` / :mod:`model_core.preprocessing.tta`), plus an exact,
JSON-serialisable record of every step so that maps can be brought back to each modality's native voxel
grid (:mod:`model_core.preprocessing.inverse`).

Per modality, on the grid of its *reference volume* (DCE: ``dce[0]``; DWI: the highest-b image; T2):

* **Breast mask** (:mod:`model_core.preprocessing.breast_mask`), computed once on a coarse grid from T1 (else
  pre-contrast DCE, else T2, ...) and carried to every grid through world (RAS mm) coordinates.
* **Crop** to the mask's bounding box plus ``crop_margin_mm`` (modalities in ``options.crop``; the paper
  crops DCE and T2, and only standardises DWI), then **mask out** (zero) air and chest there
  (``apply_mask``).
* **DCE**: subtraction images ``post_k - pre`` (unless the study already holds subtraction images);
  when the phase count differs from 6, interpolation along the phase axis as
  ``scipy.ndimage.zoom(order=1, mode='grid-constant')`` with scipy's default ``grid_mode=False``
  (:func:`phase_weights`): corner-aligned, so the first and last phases are kept exactly and, e.g.,
  5 -> 6 gives ``[v0, .2v0+.8v1, .4v1+.6v2, .6v2+.4v3, .8v3+.2v4, v4]`` (the mode never acts, since no
  sample falls outside). Six phases pass through untouched.
* **DWI**: the image with the highest b-value, standardised only (paper).
* **T2**: the paper resizes T2 to 384 x 384 x 32 before cropping. Default ``t2_resample="cap"``: each
  axis is down-sampled (linear, corner-aligned) by ``min(1, t2_matrix_i / native_i)``, i.e. only when
  the native matrix is larger than the paper's; ``"exact"`` applies ``t2_matrix_i / native_i`` always;
  ``"never"`` keeps the native grid. The factor is applied to the crop (same voxel size as resizing the
  whole volume, cheaper).
* **Standardisation** to zero mean, unit variance. Default ``normalize="volume"``: one mean/std over all
  channels, so the relative amplitude of the DCE phases (the enhancement kinetics: wash-in, plateau,
  wash-out) survives; ``"channel"`` standardises each phase separately. ``normalize_in_mask`` computes
  the statistics inside the mask only and sets voxels outside it to 0 (the canvas padding value).

Coordinates: arrays ``(C, X, Y, Z)`` in the Study's canonical RAS+ axis order; affines map voxel index to
RAS mm. ``ModalityRecord.index_map()`` maps prepared indices to native indices of the reference volume.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from model_core.errors import PreprocessError
from model_core.preprocessing.breast_mask import BreastMask, MaskOptions, choose_mask_source, compute_breast_mask
from model_core.preprocessing.intensity import (
    DCE_PHASES,
    check_phase_budget,
    interpolate_phases,
    phase_weights,
    standardize,
)
from model_core.preprocessing.record import ModalityRecord
from model_core.studies.geometry import AxisMap, Size3, zoom_linear
from model_core.studies.study import Study, Volume

logger = logging.getLogger(__name__)

MODALITIES = ("dce", "dwi", "t2")

__all__ = [
    "MODALITIES",
    "ModalityRecord",
    "Prepared",
    "PreprocessOptions",
    "interpolate_phases",
    "phase_weights",
    "preprocess",
    "standardize",
]


MAX_DCE_PHASES = 64
"""Most DCE phases a model may ask the preprocessing to interpolate to."""

MAX_T2_MATRIX = 2048
"""Largest T2 resampling matrix size per axis."""


@dataclass(frozen=True)
class PreprocessOptions:
    """Preprocessing choices (defaults follow the paper where it is explicit; see the module docstring)."""

    mask: bool = True
    mask_options: MaskOptions = MaskOptions()
    crop: tuple[str, ...] = ("dce", "t2")
    crop_margin_mm: float = 5.0
    apply_mask: bool = True
    normalize: Literal["volume", "channel"] = "volume"
    normalize_in_mask: bool = False
    dce_phases: int = DCE_PHASES
    t2_matrix: tuple[int, int, int] | None = (384, 384, 32)
    t2_resample: Literal["cap", "exact", "never"] = "cap"

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop", tuple(self.crop))
        if self.t2_matrix is not None:
            object.__setattr__(self, "t2_matrix", tuple(int(v) for v in self.t2_matrix))
        if set(self.crop) - set(MODALITIES):
            raise PreprocessError(f"options.crop names unknown modalities: {self.crop}")
        if self.normalize not in ("volume", "channel"):
            raise PreprocessError(f"normalize must be 'volume' or 'channel', got {self.normalize!r}")
        if self.t2_resample not in ("cap", "exact", "never"):
            raise PreprocessError(f"t2_resample must be 'cap', 'exact' or 'never', got {self.t2_resample!r}")
        if isinstance(self.dce_phases, bool) or not isinstance(self.dce_phases, int):
            raise PreprocessError(f"dce_phases must be an integer, got {self.dce_phases!r}")
        if not 1 <= self.dce_phases <= MAX_DCE_PHASES or not 0 <= self.crop_margin_mm <= 1000:
            raise PreprocessError(f"dce_phases must be in 1..{MAX_DCE_PHASES} and crop_margin_mm in 0..1000 mm")
        if self.t2_matrix is not None and (
            len(self.t2_matrix) != 3 or not all(2 <= v <= MAX_T2_MATRIX for v in self.t2_matrix)
        ):
            raise PreprocessError(f"t2_matrix must be 3 sizes in 2..{MAX_T2_MATRIX}, got {self.t2_matrix}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["crop"] = list(self.crop)
        d["t2_matrix"] = None if self.t2_matrix is None else list(self.t2_matrix)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreprocessOptions:
        """Options from their dict (a model card's ``preprocess``).

        Raises:
            PreprocessError: unknown keys or invalid values.
        """
        try:
            kw = dict(d)
            kw["mask_options"] = MaskOptions(**kw.get("mask_options", {}))
            return cls(**kw)
        except PreprocessError:
            raise
        except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise PreprocessError(f"invalid preprocessing options: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True, eq=False)
class Prepared:
    """The result of :func:`preprocess`.

    Attributes:
        arrays: modality -> float32 ``(C, X, Y, Z)`` (standardised; not yet on the canvas).
        records: modality -> :class:`ModalityRecord`.
        masks: modality -> bool ``(X, Y, Z)`` breast mask on the prepared grid (masked modalities only).
        breast_mask: the mask on its working grid (``None`` when masking was off).
        sizes: the canvas sizes the arrays are meant for (modality -> ``(X, Y, Z)``).
        options: the options used.
        timings: seconds per stage (``mask``, ``dce``, ``dwi``, ``t2``, ``total``).
    """

    arrays: dict[str, np.ndarray]
    records: dict[str, ModalityRecord]
    masks: dict[str, np.ndarray]
    breast_mask: BreastMask | None
    sizes: dict[str, Size3]
    options: PreprocessOptions
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.arrays)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (records, options, sizes, mask metadata; no voxel data)."""
        return {
            "records": {m: r.to_dict() for m, r in self.records.items()},
            "options": self.options.to_dict(),
            "sizes": {m: list(s) for m, s in self.sizes.items()},
            "breast_mask": None if self.breast_mask is None else self.breast_mask.to_dict(),
        }

    @staticmethod
    def records_from_dict(d: Mapping[str, Any]) -> dict[str, ModalityRecord]:
        """The records from :meth:`to_dict` output (all :mod:`model_core.preprocessing.inverse` needs)."""
        return {m: ModalityRecord.from_dict(r) for m, r in d["records"].items()}


def _check_volume(v: Volume, name: str) -> None:
    if not isinstance(v, Volume):
        raise PreprocessError(f"{name}: expected a Volume, got {type(v).__name__}")
    if v.data.ndim != 3 or min(v.data.shape) < 1:
        raise PreprocessError(f"{name}: expected a 3-D array (X, Y, Z), got shape {v.data.shape}")
    if not np.issubdtype(v.data.dtype, np.number) or np.issubdtype(v.data.dtype, np.complexfloating):
        raise PreprocessError(f"{name}: unsupported dtype {v.data.dtype}")
    a = v.affine
    if not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise PreprocessError(f"{name}: affine is not finite and invertible")


def _validate(study: Study) -> None:
    if not isinstance(study, Study):
        raise PreprocessError(f"expected a Study, got {type(study).__name__}")
    if not study.modalities:
        raise PreprocessError("the study has no DCE, DWI or T2 image; at least one is needed")
    if study.dce:
        for k, v in enumerate(study.dce):
            _check_volume(v, f"dce[{k}]")
        ref = study.dce[0]
        for k, v in enumerate(study.dce[1:], start=1):
            if not v.same_grid(ref):
                raise PreprocessError(f"dce[{k}] is not on the grid of dce[0] (shape or affine differ)")
        if not study.dce_is_subtraction and len(study.dce) < 2:
            raise PreprocessError("DCE needs a pre-contrast and at least one post-contrast phase")
    for b, v in study.dwi.items():
        if not np.isfinite(b) or b < 0:
            raise PreprocessError(f"invalid DWI b-value {b!r}")
        _check_volume(v, f"dwi[b={b:g}]")
    for name in ("t2", "t1"):
        v = getattr(study, name)
        if v is not None:
            _check_volume(v, name)


def _sizes_of(sizes: Any) -> dict[str, Size3]:
    if sizes is None:
        return {}
    sizes = getattr(sizes, "sizes", sizes)
    return {m: tuple(int(v) for v in s) for m, s in dict(sizes).items()}  # type: ignore[misc]


def _box(
    vol: Volume, modality: str, bmask: BreastMask | None, opt: PreprocessOptions
) -> tuple[Size3, Size3, bool]:
    """Crop box on ``vol``'s grid and whether the modality is masked."""
    full = ((0, 0, 0), vol.spatial_shape)
    if bmask is None or modality not in opt.crop:
        return (*full, False)  # type: ignore[return-value]
    box = bmask.crop_box(vol.affine, vol.spatial_shape, opt.crop_margin_mm)
    if box is None:
        logger.warning("%s: breast mask does not overlap the field of view; not cropped", modality)
        return (*full, False)  # type: ignore[return-value]
    return (*box, opt.apply_mask and bmask.fallback is None)  # type: ignore[return-value]


def _slices(start: Sequence[int], stop: Sequence[int]) -> tuple[slice, slice, slice]:
    return tuple(slice(a, b) for a, b in zip(start, stop, strict=True))  # type: ignore[return-value]


def _dce_array(study: Study, sl: tuple[slice, ...], opt: PreprocessOptions) -> tuple[np.ndarray, dict, list]:
    vols = study.dce or []
    steps: list[str] = []
    shape = tuple(s.stop - s.start for s in sl)
    check_phase_budget(len(vols) - (0 if study.dce_is_subtraction else 1), opt.dce_phases, shape)
    if study.dce_is_subtraction:
        sub = np.empty((len(vols), *shape), dtype=np.float32)
        for k, v in enumerate(vols):
            sub[k] = v.data[sl]
        steps.append(f"{len(vols)} subtraction images given")
    else:
        pre = vols[0].data[sl]
        sub = np.empty((len(vols) - 1, *shape), dtype=np.float32)
        for k, v in enumerate(vols[1:]):
            np.subtract(v.data[sl], pre, out=sub[k], casting="same_kind")
        steps.append(f"subtraction post_k - pre for {len(vols) - 1} post-contrast phases")
    n = sub.shape[0]
    extra: dict[str, Any] = {"phases_in": n, "subtraction_given": bool(study.dce_is_subtraction)}
    if n != opt.dce_phases:
        extra["phase_weights"] = phase_weights(n, opt.dce_phases).tolist()
        sub = interpolate_phases(sub, opt.dce_phases)
        steps.append(f"phases interpolated {n} -> {opt.dce_phases} (zoom order 1, grid-constant)")
    return sub, extra, steps


def _t2_shape(vol: Volume, crop_shape: Size3, opt: PreprocessOptions) -> tuple[Size3, list[float]]:
    if opt.t2_matrix is None or opt.t2_resample == "never":
        return crop_shape, [1.0, 1.0, 1.0]
    f = [m / n for m, n in zip(opt.t2_matrix, vol.spatial_shape, strict=True)]
    if opt.t2_resample == "cap":
        f = [min(1.0, v) for v in f]
    return tuple(max(1, int(round(c * v))) for c, v in zip(crop_shape, f, strict=True)), f  # type: ignore[return-value]


def _prepare_modality(study: Study, modality: str, bmask: BreastMask | None, opt: PreprocessOptions
                      ) -> tuple[np.ndarray, ModalityRecord, np.ndarray | None]:
    """One modality on its reference grid: crop, (DCE subtraction / T2 resampling), mask, standardise.

    Returns:
        the array ``(C, X, Y, Z)``, its record, and the breast mask on its grid (``None`` when not masked).
    """
    if modality == "dce":
        ref, reference = study.dce[0], "dce[0]"  # type: ignore[index]
    elif modality == "dwi":
        b = float(study.highest_b)  # type: ignore[arg-type]
        ref, reference = study.dwi[b], f"dwi[b={b:g}]"
    else:
        ref, reference = study.t2, "t2"
    assert ref is not None
    start, stop, masked = _box(ref, modality, bmask, opt)
    sl = _slices(start, stop)
    crop_shape: Size3 = tuple(b - a for a, b in zip(start, stop, strict=True))  # type: ignore[assignment]
    steps = [f"crop {list(start)}:{list(stop)} of {list(ref.spatial_shape)}"]
    extra: dict[str, Any] = {}
    owned = True
    if modality == "dce":
        arr, extra, more = _dce_array(study, sl, opt)
        steps += more
    elif modality == "dwi":
        arr, owned = ref.data[sl][None], False
        extra["b_value"] = b
        steps.append(f"highest b-value image (b={b:g} of {sorted(study.dwi)})")
    else:
        shape, factors = _t2_shape(ref, crop_shape, opt)
        extra["resample_factors"] = factors
        if shape != crop_shape:
            arr = zoom_linear(ref.data[sl][None], shape)
            steps.append(f"resampled {list(crop_shape)} -> {list(shape)} (linear, corner-aligned)")
        else:
            arr, owned = ref.data[sl][None], False
    shape = tuple(arr.shape[1:])
    rec_map = AxisMap.corner_zoom(crop_shape, shape).then(AxisMap.shift(start))
    pmask = None
    if masked:
        assert bmask is not None
        pmask = bmask.on_grid(ref.affine @ rec_map.matrix(), shape)
        if owned:
            arr *= pmask
        else:
            arr, owned = np.multiply(arr, pmask, dtype=np.float32), True
        steps.append("outside the breast mask set to 0")
    in_mask = pmask if opt.normalize_in_mask else None
    inplace = owned and arr.dtype == np.float32
    arr, means, stds = standardize(arr, opt.normalize, in_mask, inplace=inplace)
    steps.append(f"standardised ({opt.normalize}{', in mask' if in_mask is not None else ''})")
    record = ModalityRecord(
        modality=modality,
        reference=reference,
        native_shape=ref.spatial_shape,
        native_affine=tuple(tuple(float(v) for v in r) for r in ref.affine),
        crop_start=start,
        crop_stop=stop,
        shape=shape,  # type: ignore[arg-type]
        channels=int(arr.shape[0]),
        masked=masked,
        norm_mean=means,
        norm_std=stds,
        steps=tuple(steps),
        extra=extra,
    )
    return arr, record, pmask


def preprocess(study: Study, sizes: Any = None, options: PreprocessOptions | None = None) -> Prepared:
    """Preprocess a study (see the module docstring).

    Args:
        study: the study; any non-empty subset of DCE, DWI and T2 (T1 optional, for the mask).
        sizes: canvas sizes, a mapping ``modality -> (X, Y, Z)`` or a ``MomeConfig``; stored in the result
            for the canvas step, and every present modality must have one when given.
        options: :class:`PreprocessOptions`.

    Returns:
        :class:`Prepared`. The Study's arrays are never modified.

    Raises:
        PreprocessError: no modality, malformed volumes, mismatched DCE phases, NaN/Inf, bad options.
    """
    opt = options or PreprocessOptions()
    t_start = time.perf_counter()
    _validate(study)
    size_map = _sizes_of(sizes)
    missing = [m for m in study.modalities if size_map and m not in size_map]
    if missing:
        raise PreprocessError(f"no canvas size for modalities {missing}")
    timings: dict[str, float] = {}

    bmask: BreastMask | None = None
    if opt.mask and any(m in opt.crop for m in study.modalities):
        t0 = time.perf_counter()
        name, vols = choose_mask_source(study)
        bmask = compute_breast_mask(vols, name, opt.mask_options)
        timings["mask"] = time.perf_counter() - t0

    arrays: dict[str, np.ndarray] = {}
    records: dict[str, ModalityRecord] = {}
    masks: dict[str, np.ndarray] = {}
    for modality in study.modalities:
        t0 = time.perf_counter()
        arrays[modality], records[modality], pmask = _prepare_modality(study, modality, bmask, opt)
        if pmask is not None:
            masks[modality] = pmask
        timings[modality] = time.perf_counter() - t0
        logger.debug("%s prepared: %s", modality, "; ".join(records[modality].steps))
    timings["total"] = time.perf_counter() - t_start
    return Prepared(arrays, records, masks, bmask, size_map, opt, timings)
