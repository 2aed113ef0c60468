"""A benchmark of the plugin as a user meets it: ``python -m napari_mome._bench [--ig-steps N]``.

It opens a shown viewer, the sample study and the MOME widget, clicks Run (saliency on), waits for the
result and prints one JSON line: peak resident memory of the process (``ru_maxrss``), the Run's wall time,
the longest gap between 10 ms GUI-timer ticks while it ran, and the time to show the result. Needs a
display (on a headless machine: ``xvfb-run -a -s "-screen 0 1400x1000x24" python -m napari_mome._bench``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any


def measure(ig_steps: int) -> dict[str, Any]:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.open_sample("napari-mome", "mome_demo")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mome", "MOME classifier")
    app = QApplication.instance()
    assert app is not None
    t = time.perf_counter()
    while not widget.model_ready or time.perf_counter() - t < 2.0:  # model loaded, first paints done
        app.processEvents()
        time.sleep(0.01)
    widget.ig_steps.setValue(ig_steps)
    ticks: list[float] = []
    stages: list[tuple[float, str]] = []
    widget._relay.progress.connect(lambda done, total, stage: stages.append((time.perf_counter(), stage)))
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    widget.run_button.click()
    while widget.running:
        app.processEvents()
        time.sleep(0.002)
    timer.stop()
    tm = widget.timings
    marks = [tm["clicked"], *[x for x in ticks if tm["clicked"] < x < tm["received"]], tm["received"]]
    gaps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    at = max(range(len(gaps)), key=gaps.__getitem__)
    after = [name for when, name in stages if when <= marks[at]][-1:] or ["(before the first step)"]
    out = {"ig_steps": ig_steps, "probability": widget.result.probability if widget.result else None,
           "run_s": round(tm["received"] - tm["clicked"], 3),
           "longest_gui_gap_ms": round(1000 * gaps[at], 1), "gap_at_s": round(marks[at] - tm["clicked"], 2),
           "gap_after_stage": after[0], "gaps_over_200ms": sum(g > 0.2 for g in gaps),
           "show_result_s": round(tm["shown"] - tm["received"], 3) if "shown" in tm else None,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    viewer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_mome._bench", description=__doc__)
    parser.add_argument("--ig-steps", type=int, default=32)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(measure(args.ig_steps)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
