"""Native -> canvas -> native: a marker at a known world position comes back within one voxel.

The study has a different, axis-aligned grid per sequence (DCE 0.7x0.7x1.5 mm, DWI 1.8x1.8x4, T2
0.9x0.9x3, T1 1.0x1.0x2.0 for the mask), each with its own origin. Checked per modality, for the centred
canvas and all 54 TTA versions, on canvases that force down-scaling and on canvases that only pad:
exact point maps both ways, agreement of the point map with where the marker lands in the canvas data,
and the map inverse (canvas_to_native) putting the marker back on the native grid.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_core.bench.preprocess import synthetic_study
from model_core.preprocessing.canvas import CanvasRecord
from model_core.preprocessing.inverse import (
    canvas_to_native,
    canvas_to_native_index,
    native_to_canvas_index,
    world_to_native_index,
)
from model_core.preprocessing.preprocess import Prepared, preprocess
from model_core.preprocessing.tta import TTA_VERSIONS, fit

DOWN = {"dce": (96, 64, 32), "dwi": (64, 32, 16), "t2": (96, 64, 16)}  # every modality is down-scaled
PAD = {"dce": (192, 112, 48), "dwi": (96, 64, 16), "t2": (160, 96, 32)}  # everything fits: pad only
VERSIONS = [(0, -1), *TTA_VERSIONS]  # (0, -1) = the centred val/test canvas, no flip


@pytest.fixture(scope="module")
def study():
    return synthetic_study(
        scale=0.4,
        dce=((200, 130, 40), (0.7, 0.7, 1.5), (0.0, 3.0, 0.0)),
        n_post=5,
        dwi=((78, 56, 15), (1.8, 1.8, 4.0), (1.3, 2.0, -2.0)),
        t2=((156, 110, 20), (0.9, 0.9, 3.0), (-0.7, 4.0, 1.5)),
        t1=((150, 100, 32), (1.0, 1.0, 2.0), (0.4, 1.0, -0.6)),
    )


@pytest.fixture(scope="module")
def prepared(study) -> Prepared:
    return preprocess(study, DOWN)


def _centroid(a: np.ndarray, near: np.ndarray, radius: int) -> np.ndarray:
    """Centroid of the top half of the peak nearest to ``near`` (within ``radius`` voxels)."""
    lo = np.maximum(np.floor(near).astype(int) - radius, 0)
    hi = np.minimum(np.ceil(near).astype(int) + radius + 1, a.shape)
    box = a[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    peak = np.unravel_index(np.argmax(box), box.shape)
    w = np.clip(box - 0.5 * box[peak], 0, None)
    grid = np.indices(box.shape).reshape(3, -1)
    return lo + (grid * w.ravel()).sum(axis=1) / w.sum()


def test_mask_source_and_crop(prepared: Prepared) -> None:
    assert prepared.breast_mask is not None and prepared.breast_mask.source == "t1"
    assert prepared.breast_mask.info.get("chest") == "removed"
    assert prepared.records["dwi"].crop_start == (0, 0, 0)  # paper: DWI is only standardised
    for m in ("dce", "t2"):
        r = prepared.records[m]
        assert r.masked and r.crop_shape != r.native_shape
    assert prepared.arrays["dce"].shape[0] == 6


@pytest.mark.parametrize("sizes", [DOWN, PAD], ids=["downscale", "pad-only"])
def test_marker_round_trip(study, sizes) -> None:
    prep = preprocess(study, sizes)
    marker = np.array(study.clinical.extra["marker_mm"])
    fitted = fit(prep, sizes)
    for m in ("dce", "dwi", "t2"):
        rec = prep.records[m]
        truth = world_to_native_index(marker, rec.affine)[0]
        ratio = fitted[m].ratio
        assert (ratio is not None and ratio < 1) if sizes is DOWN else ratio is None, (m, ratio)
        for n, k in VERSIONS:
            canvas, crec = fitted[m].canvas(n, None if k < 0 else k)
            where = f"{m} version ({n}, {k})"
            # 1. exact point maps both ways
            c = native_to_canvas_index(truth, m, prep, crec)[0]
            assert np.all(c >= 0) and np.all(c <= np.array(crec.target) - 1), where
            np.testing.assert_allclose(canvas_to_native_index(c, m, prep, crec)[0], truth, atol=1e-9)
            # 2. the point map agrees with the data: the marker sits there on the canvas
            found = _centroid(canvas.sum(axis=0), c, radius=3)
            assert np.max(np.abs(found - c)) <= 1.0, (where, found, c)
            # 3. the map inverse puts it back on the native grid, within one voxel
            native, affine = canvas_to_native(canvas, m, prep, crec)
            assert native.shape == rec.native_shape and native.dtype == np.float32
            np.testing.assert_array_equal(affine, rec.affine)
            back = _centroid(native, truth, radius=6)
            assert np.max(np.abs(back - truth)) <= 1.0, (where, back, truth)


def test_inverse_from_json_records(study, prepared: Prepared) -> None:
    """The records alone (through JSON) are enough for the inverse."""
    d = json.loads(json.dumps(prepared.to_dict()))
    records = Prepared.records_from_dict(d)
    assert records == prepared.records
    canvas, crec = fit(prepared, DOWN)["t2"].canvas(5, 3)
    crec2 = CanvasRecord.from_dict(json.loads(json.dumps(crec.to_dict())))
    assert crec2 == crec
    a, _ = canvas_to_native(canvas, "t2", prepared, crec)
    b, _ = canvas_to_native(canvas, "t2", records, crec2)
    np.testing.assert_array_equal(a, b)
    outside = np.ones(a.shape, dtype=bool)
    r = records["t2"]
    outside[tuple(slice(s, e) for s, e in zip(r.crop_start, r.crop_stop, strict=True))] = False
    assert np.all(a[outside] == 0)


def test_inverse_rejects_mismatched_record(prepared: Prepared) -> None:
    _, crec = fit(prepared, DOWN)["dce"].canvas(0, None)
    with pytest.raises(ValueError):
        canvas_to_native(np.zeros(DOWN["t2"], np.float32), "t2", prepared, crec)
