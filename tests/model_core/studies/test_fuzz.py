"""Seeded fuzzing: mutated/truncated NIfTI, NRRD, MetaImage and DICOM inputs never escape the contract.

Every case ends as a valid volume (float32, finite, valid affine, shape = what the mutated header declares)
or a ``StudyReadError``; the test process never dies (SimpleITK runs in the isolated child; the
``mha-unchecked`` set feeds mutated headers straight to that child, where some kill it). The ``hostile``
set draws from the hardening classes (file lists, symlinks, cross-request buffers, memory budgets, card
tampering; :mod:`tests.model_core.studies.fuzz_hostile`), where a violation is also foreign voxels, a
mixed-up buffer, an unenforced budget or a tampered card accepted. The in-suite
run uses 300 cases per format; ``-m slow`` (or ``MOME_SLOW=1``) runs 3,000, as does
``scripts/fuzz_readers.py``, which prints the outcome counts.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytest

from tests.model_core.studies.fuzzlib import failures, fuzz, summary

FORMATS = ["nii", "nii.gz", "nrrd", "mha", "dicom", "mha-unchecked", "hostile"]


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _run(fmt: str, n: int, tmp_path: Path, seed: int) -> None:
    counts = fuzz(fmt, n, tmp_path, seed=seed)
    assert sum(counts.values()) == n
    assert not failures(counts), summary(counts)
    loaded = sum(v for k, v in counts.items() if k.split(":")[-1] == "loaded")
    assert loaded > 0 and n - loaded > 0, summary(counts)  # both paths exercised


@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_300(fmt: str, tmp_path: Path) -> None:
    _run(fmt, 300, tmp_path, seed=20260501)


def _slow_selected(config: pytest.Config) -> bool:
    return "slow" in (config.getoption("markexpr") or "") or os.environ.get("MOME_SLOW") == "1"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_3000(fmt: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if not _slow_selected(request.config):
        pytest.skip("large fuzz run: use -m slow or MOME_SLOW=1")
    _run(fmt, 3000, tmp_path, seed=7)
