"""Canvas helpers beyond the fixture: training augmentation, batches, records, the fast resize backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_core.preprocessing.canvas import CanvasRecord, apply_resize_rule, make_record, to_canvas
from model_core.preprocessing.tta import (
    INTERACTIVE_VERSIONS,
    TTA_VERSIONS,
    center,
    fit,
    iter_tta_batches,
    random_augment,
)
from model_core.studies.geometry import AxisMap

SIZES = {"dce": (16, 12, 8), "dwi": (8, 8, 4), "t2": (16, 12, 6)}


def _arrays(seed: int = 0, big: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"dce": (6, 20, 9, 5), "dwi": (1, 5, 7, 3), "t2": (1, 11, 12, 6)}
    if not big:
        shapes["dce"] = (6, 13, 9, 5)
    return {m: rng.standard_normal(s).astype(np.float32) for m, s in shapes.items()}


def test_random_augment_follows_the_recipe() -> None:
    arrays = _arrays()
    rng = np.random.default_rng(0)
    flips, offsets = set(), {m: set() for m in SIZES}
    for _ in range(300):
        out = random_augment(rng, arrays, SIZES)
        assert set(out) == set(SIZES)
        ks = {rec.flip_op for _, rec in out.values()}
        assert len(ks) == 1 and None not in ks  # one flip for all modalities, never identity
        flips |= ks
        for m, (canvas, rec) in out.items():
            free = np.array(rec.target) - np.array(rec.resized_shape)
            assert np.all(np.array(rec.offset) >= 0) and np.all(np.array(rec.offset) <= free)
            offsets[m].add(rec.offset)
            again = make_record(rec.input_shape, rec.target, rec.ratio, None, rec.flip_op, rec.offset)
            assert again == rec
            want, _ = to_canvas(arrays[m], SIZES[m], flip_op=rec.flip_op, offset=rec.offset)
            np.testing.assert_array_equal(canvas, want)
    assert flips == set(range(6))
    # offsets are uniform over [0, f] inclusive per axis: both ends get drawn
    dce_free = np.array(SIZES["dce"]) - np.array(arrays["dce"].shape[1:])
    seen = np.array(sorted(offsets["dce"]))
    assert np.all(seen.min(axis=0) == 0) and np.all(seen.max(axis=0) == dce_free)


def test_center_and_batches_match_to_canvas() -> None:
    arrays = _arrays(big=True)
    c = center(arrays, SIZES)
    fitted = fit(arrays, SIZES)
    assert fitted["dce"].ratio is not None and fitted["dwi"].ratio is None
    got = []
    for versions, tensors, records in iter_tta_batches(fitted, TTA_VERSIONS, batch_size=20):
        assert all(t.shape[0] == len(versions) and t.dtype == torch.float32 for t in tensors.values())
        got += versions
        for b, (n, k) in enumerate(versions):
            for m in SIZES:
                want, rec = to_canvas(arrays[m], SIZES[m], pad_op=n, flip_op=k)
                assert records[b][m] == rec
                assert torch.equal(tensors[m][b], torch.from_numpy(want))
    assert got == list(TTA_VERSIONS)
    for m, (canvas, rec) in c.items():
        want, want_rec = to_canvas(arrays[m], SIZES[m])
        np.testing.assert_array_equal(canvas, want)
        assert rec == want_rec and rec.pad_op == 0 and rec.flip_op is None
    assert len(INTERACTIVE_VERSIONS) == 6 and {k for _, k in INTERACTIVE_VERSIONS} == set(range(6))


def test_fast_resize_close_to_exact() -> None:
    x = np.random.default_rng(3).standard_normal((2, 41, 23, 17)).astype(np.float32)
    a, ra = apply_resize_rule(x, (32, 16, 16), "exact")
    b, rb = apply_resize_rule(x, (32, 16, 16), "fast")
    assert ra == rb and a.shape == b.shape
    assert float(np.abs(a - b).max()) < 2e-6


def test_record_json_and_index_map() -> None:
    canvas, rec = to_canvas(_arrays(big=True)["dce"], SIZES["dce"], pad_op=6, flip_op=4)
    assert CanvasRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    # canvas region corners map to the corners of the prepared array
    start, stop = rec.region()
    corners = np.array([start, np.array(stop) - 1], dtype=float)
    back = rec.index_map().to_parent(corners)
    assert sorted(back[:, 0]) == [0.0, 19.0]
    amap = rec.index_map()
    np.testing.assert_allclose(amap.to_child(amap.to_parent(corners)), corners)
    assert AxisMap.from_dict(amap.to_dict()) == amap


@pytest.mark.parametrize("bad", [dict(pad_op=9), dict(flip_op=6), dict(offset=(9, 0, 0))])
def test_bad_canvas_arguments(bad: dict) -> None:
    with pytest.raises(ValueError):
        to_canvas(np.zeros((1, 8, 8, 4), np.float32), (16, 12, 8), **bad)


def test_shared_pad_puts_every_sequence_at_the_same_relative_position() -> None:
    arrays = _arrays()
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        out = random_augment(rng, arrays, SIZES, shared_pad=True)
        fractions = []
        free = {m: tuple(t - s for t, s in zip(rec.target, rec.resized_shape, strict=True))
                for m, (_, rec) in out.items()}
        for m, (_, rec) in out.items():
            assert all(0 <= o <= f for o, f in zip(rec.offset, free[m], strict=True))
            fractions.append([o / f if f else None for o, f in zip(rec.offset, free[m], strict=True)])
        for axis in range(3):  # fractions of the free space agree up to rounding of the smallest free space
            vals = [f[axis] for f in fractions if f[axis] is not None]
            smallest = min((free[m][axis] for m in free if free[m][axis]), default=1)
            assert max(vals) - min(vals) <= 1.0 / smallest + 1e-9
        seen.add(out["dce"][1].offset)
        assert len({rec.flip_op for _, rec in out.values()}) == 1
    assert len(seen) > 20  # still random
    independent = random_augment(np.random.default_rng(1), arrays, SIZES)
    assert {m: r.offset for m, (_, r) in independent.items()} != {m: r.offset for m, (_, r) in out.items()}
