"""The evaluation tests use the training tests' small phantom cohorts and tiny config."""

from tests.model_core.train.conftest import _one_thread, cohorts, tiny_cfg

__all__ = ["_one_thread", "cohorts", "tiny_cfg"]
