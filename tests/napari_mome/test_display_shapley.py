"""The Shapley panel reads v(empty) from the Result's efficiency check and greys out unused sequences."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from model_core.engine.result import Result  # noqa: E402
from napari_mome._display import UNUSED_NOTE, draw_shapley, v_full_empty  # noqa: E402


def _result(**kw: object) -> Result:
    base = dict(probability=0.9, subsets={"none": 0.40, "dce+dwi+t2": 0.9}, shapley={"dce": 0.3, "dwi": 0.1,
                "t2": 0.0}, shapley_check={"v_full": 0.9, "v_empty": 0.5, "sum_phi": 0.4, "error": 0.0},
                modalities=("dce", "dwi", "t2"), tta={}, decision={}, explain=None, provenance={}, study={})
    base.update(kw)
    return Result(**base)  # type: ignore[arg-type]


def test_v_empty_is_the_one_the_bars_add_up_to() -> None:
    r = _result(shapley_empty={"kind": "reference", "v_empty": 0.5}, unused_modalities={"t2": "constant"})
    assert v_full_empty(r) == (0.9, 0.5)  # not the CLS-only subset value 0.40
    fig, ax = plt.subplots()
    draw_shapley(ax, r)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    notes = [a for a in ax.texts if a.get_text() == UNUSED_NOTE]
    assert labels == ["DCE", "DWI", "T2"] and len(notes) == 1 and notes[0].xy[1] == labels.index("T2")
    assert ax.get_title().startswith("reference mean v(empty) 0.500")
    plt.close(fig)
