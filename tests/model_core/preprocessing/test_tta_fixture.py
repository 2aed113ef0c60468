"""The canvas transforms against the authors' TTA fixture: all 324 arrays bit-exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model_core.preprocessing.canvas import apply_resize_rule, pad_offset, to_canvas
from model_core.preprocessing.tta import INTERACTIVE_VERSIONS, TTA_VERSIONS, center, fit, tta_canvases, tta_versions

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
FIXTURE = SHARED / "fixtures" / "mome_parity" / "mome_tta_fixture.pt"
CASES = ("pad", "resize")
MODS = ("dce", "dwi", "t2")


@pytest.fixture(scope="module")
def fx() -> dict:
    if not FIXTURE.exists():
        pytest.skip(f"fixture not found: {FIXTURE}")
    return torch.load(FIXTURE, weights_only=True)


def _sizes(fx: dict) -> dict[str, tuple[int, int, int]]:
    return {m: tuple(fx["sizes"][f"{m}_size"]) for m in MODS}


def _inputs(fx: dict, case: str) -> dict[str, np.ndarray]:
    return {m: fx[f"{case}_input"][m].numpy() for m in MODS}


def test_fixture_inventory(fx: dict) -> None:
    keys = [k for k in fx if k.startswith("pad_pad") or k.startswith("resize_pad")]
    assert len(keys) == 108 and len(fx) == 115
    order = [k for k in fx if k.startswith("pad_pad")]
    assert order == [f"pad_pad{n}flip{m}" for n, m in TTA_VERSIONS]
    assert len(tta_versions()) == 54 and tta_versions("interactive") == INTERACTIVE_VERSIONS


@pytest.mark.parametrize("case", CASES)
def test_resized_and_center_bit_exact(fx: dict, case: str) -> None:
    sizes = _sizes(fx)
    inputs = _inputs(fx, case)
    for m in MODS:
        resized, _ = apply_resize_rule(inputs[m], sizes[m])
        assert torch.equal(torch.from_numpy(np.ascontiguousarray(resized)), fx[f"{case}_resized"][m]), m
    for m, (canvas, rec) in center(inputs, sizes).items():
        assert torch.equal(torch.from_numpy(canvas), fx[f"{case}_test_center"][m]), m
        assert rec.pad_op == 0 and rec.flip_op is None


@pytest.mark.parametrize("case", CASES)
def test_all_54_versions_bit_exact(fx: dict, case: str) -> None:
    """162 arrays per case through to_canvas, and again through the batched helper."""
    sizes = _sizes(fx)
    inputs = _inputs(fx, case)
    n_checked = 0
    for n, k in TTA_VERSIONS:
        want = fx[f"{case}_pad{n}flip{k}"]
        for m in MODS:
            canvas, rec = to_canvas(inputs[m], sizes[m], pad_op=n, flip_op=k)
            assert canvas.dtype == np.float32
            assert torch.equal(torch.from_numpy(canvas), want[m]), (case, n, k, m)
            n_checked += 1
    assert n_checked == 162
    tensors, records = tta_canvases(fit(inputs, sizes), TTA_VERSIONS)
    for b, (n, k) in enumerate(TTA_VERSIONS):
        for m in MODS:
            assert torch.equal(tensors[m][b], fx[f"{case}_pad{n}flip{k}"][m]), (case, n, k, m)
            assert records[b][m].pad_op == n and records[b][m].flip_op == k


def test_pad_op_table() -> None:
    f = (10, 20, 30)
    want = [(5, 10, 15), (0, 0, 0), (0, 0, 30), (0, 20, 0), (0, 20, 30),
            (10, 0, 0), (10, 0, 30), (10, 20, 0), (10, 20, 30)]  # fmt: skip
    assert [pad_offset(n, f) for n in range(9)] == want
