"""Outcome labels for the reader fuzzing (see fuzzlib.py): loaded / rejected:<cause> / ESCAPED / BAD."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model_core.errors import StudyReadError
from model_core.studies.validate import check_affine

INTERESTING_INTS = [0, 1, 2, 3, 4, 5, 7, 8, 255, 256, 1024, 2048, 4095, 4096, 32767, -1, -32768, 65535]
INTERESTING_FLOATS = [
    0.0,
    -1.0,
    1e-30,
    1e30,
    float("nan"),
    float("inf"),
    -float("inf"),
    0.5,
    20.0,
    20.5,
    352.0,
    351.0,
    1e9,
]


# --- outcome -------------------------------------------------------------------------------------------


def classify_error(err: StudyReadError) -> str:
    msg = str(err)
    if "process died" in msg:
        return "rejected:sitk-died"
    if "timed out" in msg:
        return "rejected:sitk-timeout"
    if "SimpleITK cannot read" in msg:
        return "rejected:sitk-error"
    if err.__cause__ is not None:
        cause = type(err.__cause__)
        name = f"{cause.__module__}.{cause.__name__}" if cause.__name__ == "error" else cause.__name__
        return f"rejected:{name}"
    return "rejected:check"


def check_loaded(vol, expected_shape: tuple[int, ...] | None) -> str:
    """``loaded`` or ``BAD:<why>`` for a volume a reader returned."""
    if vol.data.dtype != np.float32:
        return "BAD:dtype"
    if not np.isfinite(vol.data).all():
        return "BAD:nonfinite"
    try:
        check_affine(vol.source, vol.affine)
    except StudyReadError:
        return "BAD:affine"
    original = tuple(vol.meta["reorientation"]["original_shape"])
    channels = (vol.data.shape[0],) if vol.data.ndim == 4 else ()
    if expected_shape is None or original + channels != tuple(expected_shape):
        return f"BAD:shape {original + channels} vs header {expected_shape}"
    return "loaded"


def run_case(read: Callable[[], object], expected: Callable[[], tuple[int, ...] | None]) -> str:
    try:
        vol = read()
    except StudyReadError as err:
        return classify_error(err)
    except Exception as err:  # noqa: BLE001 - the fuzz harness must record any escape, not crash
        return f"ESCAPED:{type(err).__name__}: {str(err)[:120]}"
    if not hasattr(vol, "data"):  # a Study: check every volume in it
        vols = [*(vol.dce or []), *vol.dwi.values(), *(v for v in (vol.t2, vol.t1) if v is not None)]
        outs = {check_loaded(v, tuple(v.meta["reorientation"]["original_shape"])) for v in vols}
        return "loaded" if outs <= {"loaded"} else sorted(outs - {"loaded"})[0]
    return check_loaded(vol, expected())


def trim_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    s = list(shape)
    while len(s) > 3 and s[-1] == 1:
        s.pop()
    return tuple(s)
