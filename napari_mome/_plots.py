"""Matplotlib canvases for the dock widget, themed like the viewer (napari-matplotlib's approach)."""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


def theme_colors(viewer: Any) -> dict[str, str]:
    """Background, text and grid colours of the viewer's current theme."""
    from napari.utils.theme import get_theme

    theme = get_theme(viewer.theme)
    return {"bg": theme.canvas.as_hex(), "text": theme.text.as_hex(), "grid": theme.foreground.as_hex()}


class ThemedCanvas(FigureCanvasQTAgg):
    """A one-axes figure in the viewer's colours. ``redraw(fn)`` clears, calls ``fn(ax)``, restyles, draws."""

    def __init__(self, viewer: Any, height: float = 2.2) -> None:
        super().__init__(Figure(figsize=(3.5, height)))
        self.viewer = viewer
        self.ax = self.figure.add_subplot(111)
        self.figure.subplots_adjust(left=0.16, right=0.95, bottom=0.24, top=0.86)  # fixed: layout engines cost
        # ~0.2 s per draw in software rendering
        self.setMinimumWidth(260)
        self.setFixedHeight(int(height * 80))  # a canvas that changes size re-renders (~0.2 s in software)
        self._style()

    def _style(self) -> None:
        c = theme_colors(self.viewer)
        self.figure.set_facecolor(c["bg"])
        ax = self.ax
        ax.set_facecolor(c["bg"])
        for spine in ax.spines.values():
            spine.set_color(c["grid"])
        ax.tick_params(colors=c["text"], labelsize=8)
        ax.xaxis.label.set_color(c["text"])
        ax.yaxis.label.set_color(c["text"])
        ax.title.set_color(c["text"])
        for t in ax.texts:
            t.set_color(c["text"])

    def redraw(self, fn: Any) -> Any:
        """Clear, draw with ``fn(ax)`` and render now (synchronously: the result is on screen when this
        returns, and the time it takes is part of showing a result)."""
        self.ax.clear()
        self._style()
        out = fn(self.ax)
        self._style()
        self.draw()
        return out

    def blank(self) -> None:
        """Empty axes, drawn at the next paint (no synchronous render)."""
        self.ax.clear()
        self.ax.set_axis_off()
        self.draw_idle()
