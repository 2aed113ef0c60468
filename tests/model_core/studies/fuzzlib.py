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
from pathlib import Path

import numpy as np

from tests.model_core.studies.fuzz_dicom import dicom_base, dicom_case
from tests.model_core.studies.fuzz_files import itk_bases, itk_case, itk_raw_case, nifti_base, nifti_case

# --- driver --------------------------------------------------------------------------------------------


def fuzz(fmt: str, n: int, work: Path, seed: int = 0) -> Counter[str]:
    """Run ``n`` cases of ``fmt``; outcome counts.

    Formats: ``nii``, ``nii.gz``, ``nrrd``, ``mha``, ``dicom`` (public readers) and ``mha-unchecked``
    (SimpleITK child fed mutated headers directly, to exercise the isolation).
    """
    rng = np.random.default_rng(seed)
    work.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    if fmt in ("nii", "nii.gz"):
        base = nifti_base(work)
        for i in range(n):
            counts[nifti_case(rng, base, work, i, gz=fmt == "nii.gz")] += 1
    elif fmt in ("nrrd", "mha"):
        bases = itk_bases(work)
        for i in range(n):
            counts[itk_case(rng, bases, work, i, "." + fmt)] += 1
    elif fmt == "mha-unchecked":
        bases = itk_bases(work)
        for i in range(n):
            counts[itk_raw_case(rng, bases, work, i)] += 1
    elif fmt == "dicom":
        base = dicom_base(work)
        for i in range(n):
            counts[dicom_case(rng, base, work, i)] += 1
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return counts


def failures(counts: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k.startswith(("ESCAPED", "BAD"))}


def summary(counts: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
