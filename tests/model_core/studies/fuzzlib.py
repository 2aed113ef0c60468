"""Seeded mutation fuzzing of the study readers (used by test_fuzz.py and scripts/fuzz_readers.py).

Each case writes one mutated file (or DICOM folder) under a work folder, reads it with the public readers
and returns an outcome label:

* ``loaded``: a volume came back; it was then checked: float32, finite, valid affine, and its shape in the
  file's own grid equals the shape that the (mutated) header declares, read independently here.
* ``rejected:<what>``: a :class:`StudyReadError`; ``<what>`` is the library exception kept as
  ``__cause__``, or ``check`` (our own header/voxel checks), ``sitk-error`` / ``sitk-died`` /
  ``sitk-timeout`` (isolated SimpleITK child).
* ``ESCAPED:<Type>`` / ``BAD:<reason>``: contract violations (an exception other than StudyReadError, or a
  loaded volume that breaks an invariant). Tests assert there are none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_core.bench.read import traced_peak
from tests.model_core.studies.fuzz_dicom import dicom_base, dicom_case
from tests.model_core.studies.fuzz_files import itk_bases, itk_case, itk_raw_case, nifti_base, nifti_case
from tests.model_core.studies.fuzz_hostile import card_base, hostile_case

MEMORY_BUDGET = 64 << 20
"""Peak memory one fuzz case may use: every corpus file is a few KB (its volume under 1 KB as float32),
so the stated read budget (2x the declared float32 data plus at most one 32 MiB slab) stays far below."""

# --- driver --------------------------------------------------------------------------------------------


def fuzz(fmt: str, n: int, work: Path, seed: int = 0, peaks: list[int] | None = None,
         memory_budget: int = MEMORY_BUDGET) -> Counter[str]:
    """Run ``n`` cases of ``fmt``; outcome counts.

    Formats: ``nii``, ``nii.gz``, ``nrrd``, ``mha``, ``dicom`` (public readers), ``mha-unchecked``
    (SimpleITK child fed mutated headers directly, to exercise the isolation) and ``hostile`` (file lists,
    symlinks, cross-request buffers, memory budgets and card tampering: :mod:`.fuzz_hostile`).

    With ``peaks`` (a list), every case runs under tracemalloc
    (:func:`model_core.bench.read.traced_peak`), its peak is appended, and a case whose peak passes
    ``memory_budget`` becomes ``BAD:memory``.
    """
    rng = np.random.default_rng(seed)
    work.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    case = _case_runner(fmt, rng, work)
    for i in range(n):
        if peaks is None:
            counts[case(i)] += 1
            continue
        out, error, peak = traced_peak(lambda i=i: case(i))  # type: ignore[misc]
        peaks.append(peak)
        counts["BAD:memory" if peak > memory_budget else str(out) if error is None else f"ESCAPED:{error!r}"] += 1
    return counts


def _case_runner(fmt: str, rng: np.random.Generator, work: Path) -> Callable[[int], str]:
    if fmt in ("nii", "nii.gz"):
        nbase = nifti_base(work)
        return lambda i: nifti_case(rng, nbase, work, i, gz=fmt == "nii.gz")
    if fmt in ("nrrd", "mha"):
        bases = itk_bases(work)
        return lambda i: itk_case(rng, bases, work, i, "." + fmt)
    if fmt == "mha-unchecked":
        raw_bases = itk_bases(work)
        return lambda i: itk_raw_case(rng, raw_bases, work, i)
    if fmt == "dicom":
        dbase = dicom_base(work)
        return lambda i: dicom_case(rng, dbase, work, i)
    if fmt == "hostile":
        card = card_base()
        return lambda i: hostile_case(rng, work, i, card)
    raise ValueError(f"unknown format {fmt!r}")


def failures(counts: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k.startswith(("ESCAPED", "BAD"))}


def summary(counts: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
