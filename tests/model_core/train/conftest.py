"""Small phantom cohorts shared by the training tests (generated once per session, scale 0.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_core.network.config import MomeConfig


@pytest.fixture(scope="session")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"train": ds1 (8 cases: 5 malignant), "val": ds2 (6 cases: 3 malignant), "cache": shared cache}``."""
    from model_core.phantom import write_cohort

    root = tmp_path_factory.mktemp("train_cohorts")
    train = write_cohort(8, "ds1", 1, root / "train", scale=0.5, formats=("nifti",), progress=False)
    val = write_cohort(6, "ds2", 2, root / "val", scale=0.5, formats=("nifti",), progress=False)
    return {"train": train, "val": val, "cache": root / "cache"}


@pytest.fixture(scope="session")
def tiny_cfg() -> MomeConfig:
    return MomeConfig.preset("tiny")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny models gain nothing from a second thread, and on a shared machine a busy core stalls every
    parallel region; one thread keeps these tests fast and their timing stable."""
    import torch

    torch.set_num_threads(1)
