"""From napari layers to a model input: which layers are DCE / DWI / T2, and the Study they make.

Layers opened by this plugin's reader or sample carry ``metadata["role"]`` (and ``phase`` / ``b_value``);
:func:`guess_inputs` fills the widget's pickers from that. Layers opened any other way have no role: the
user picks them by hand, and :func:`build_study` needs only their data and world placement. A layer's
RAS affine is ``metadata["affine"]`` when present, else it is rebuilt from the layer's own data-to-world
transform (``affine`` after ``scale``/``translate``/``rotate``/``shear``) by inverting
:func:`model_core.studies.orient.napari_affine`.
This module imports no Qt (napari only inside :func:`ras_affine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_core.studies.orient import LPS_TO_RAS
from model_core.studies.study import ClinicalInfo, Study, Volume

_REV4 = np.eye(4)[[2, 1, 0, 3]]


@dataclass
class InputChoice:
    """Layer names chosen for each model input. ``dce``: phase layers in temporal order (pre first);
    ``t1``: the optional non-contrast T1 the preprocessing uses for the breast mask (not a model input)."""

    dce: list[str] = field(default_factory=list)
    dwi: str | None = None
    t2: str | None = None
    t1: str | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, v in (("dce", self.dce), ("dwi", self.dwi), ("t2", self.t2)) if v)


def image_layers(layers: Sequence[Any]) -> list[Any]:
    """The 3-D image layers (not labels, not this plugin's saliency or MIP layers)."""
    out = []
    for layer in layers:
        meta = getattr(layer, "metadata", {}) or {}
        if type(layer).__name__ == "Image" and layer.ndim == 3 and not meta.get("mome_output"):
            out.append(layer)
    return out


def guess_inputs(layers: Sequence[Any]) -> InputChoice:
    """Pickers from layer metadata: DCE phases by ``phase``, the highest-b DWI, the T2 and T1 layers."""
    imgs = image_layers(layers)
    dce = sorted((lay for lay in imgs if lay.metadata.get("role") == "dce"),
                 key=lambda lay: lay.metadata.get("phase", 0))
    dwi = [lay for lay in imgs if lay.metadata.get("role") == "dwi"]
    t2 = [lay.name for lay in imgs if lay.metadata.get("role") == "t2"]
    t1 = [lay.name for lay in imgs if lay.metadata.get("role") == "t1"]
    best_dwi = max(dwi, key=lambda lay: float(lay.metadata.get("b_value") or 0.0)) if dwi else None
    return InputChoice([lay.name for lay in dce], best_dwi.name if best_dwi else None, (t2 or [None])[0],
                       (t1 or [None])[0])


def ras_affine(layer: Any) -> np.ndarray:
    """The layer's voxel ``(i, j, k)`` -> RAS mm affine (the data are shown as ``(k, j, i)``)."""
    meta = getattr(layer, "metadata", {}) or {}
    if "affine" in meta:
        return np.asarray(meta["affine"], dtype=np.float64)
    from napari.utils.transforms import Affine

    physical = Affine(scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear)
    world = np.asarray(layer.affine.affine_matrix @ physical.affine_matrix, dtype=np.float64)  # (k,j,i)->(S,P,L)
    return LPS_TO_RAS @ _REV4 @ world @ _REV4  # LPS_TO_RAS and _REV4 are their own inverses


def layer_volume(layer: Any) -> Volume:
    """The RAS :class:`Volume` of a 3-D image layer (a view of its data, float32)."""
    data = np.asarray(layer.data, dtype=np.float32).transpose(2, 1, 0)
    meta = dict((getattr(layer, "metadata", {}) or {}).get("volume_meta") or {})
    return Volume(data=data, affine=ras_affine(layer), source=str(layer.name), meta=meta)


def study_birads(layers: Sequence[Any]) -> str:
    """The BI-RADS category from the first layer whose metadata carries the study's clinical record."""
    for layer in layers:
        clinical = (getattr(layer, "metadata", {}) or {}).get("clinical") or {}
        if clinical.get("birads"):
            return str(clinical["birads"])
    return ""


def build_study(layers: Any, choice: InputChoice, birads: str = "") -> Study:
    """The Study the chosen layers make (``layers``: the viewer's layer list, indexable by name).

    Raises:
        ValueError: no layer chosen, or a chosen name is not an image layer.
    """
    if not choice.modalities:
        raise ValueError("choose at least one input layer (DCE, DWI or T2)")

    def get(name: str) -> Any:
        if name not in layers:
            raise ValueError(f"layer {name!r} is not open")
        return layers[name]

    dce = [layer_volume(get(n)) for n in choice.dce] or None
    dwi: dict[float, Volume] = {}
    if choice.dwi:
        lay = get(choice.dwi)
        dwi[float(lay.metadata.get("b_value") or 800.0)] = layer_volume(lay)
    t2 = layer_volume(get(choice.t2)) if choice.t2 else None
    t1 = layer_volume(get(choice.t1)) if choice.t1 else None
    first = get((choice.dce or [choice.dwi or choice.t2])[0])  # type: ignore[list-item]
    study_id = str((first.metadata or {}).get("study_id") or "napari-layers")
    return Study(dce=dce, dce_is_subtraction=bool((first.metadata or {}).get("dce_is_subtraction")), dwi=dwi,
                 t2=t2, t1=t1, clinical=ClinicalInfo(birads=birads or None), study_id=study_id)
