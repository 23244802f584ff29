"""Interactive explorers (ipywidgets), one module per notebook topic.

Each explorer is a function returning an ``ipywidgets.interactive`` whose callback
draws a figure and *returns* the numbers it shows, so tests can move a slider and
assert on ``w.result``. Explorers built on ``bnutils.widgets.live.LiveFigure`` also
carry that figure as ``w.figure``. The helpers here are shared by tests and benchmarks.
"""

from __future__ import annotations

import io
import time

import numpy as np

__all__ = ["controls", "median_redraw_ms", "redraw_ms"]


def controls(w) -> dict:
    """The widget's controls by their description (not by child order)."""
    return {c.description: c for c in w.kwargs_widgets}


def _png_of_pyplot_figures() -> int:
    """Encode every open pyplot figure as the inline backend does; total bytes."""
    import matplotlib.pyplot as plt

    total = 0
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        # matplotlib-inline's display: print_figure(fig, "png", bbox_inches="tight")
        fig.canvas.print_figure(buf, format="png", bbox_inches="tight", dpi=fig.dpi)
        total += len(buf.getvalue())
    return total


def redraw_ms(w, name: str, values, warm: bool = False) -> list[float]:
    """Wall time in milliseconds of each redraw after setting control ``name`` to each of ``values``.

    A redraw is what a learner waits for in the kernel: the callback **and** drawing the
    figure to the PNG the browser receives. Explorers on ``LiveFigure`` make that PNG in
    their callback; for any other explorer every open pyplot figure is encoded here the
    way the inline backend does (``bbox_inches="tight"``). Figures are closed afterwards.
    Setting the value is the same path as a slider move in the browser.

    ``warm=True`` first draws what the explorer prepares between moves in an idle kernel
    (``LiveFigure.finish_warm``, untimed): the wait of a learner who pauses between
    moves. ``warm=False`` (default) times moves made back to back.

    Introduced in notebook 00.
    """
    import matplotlib.pyplot as plt

    control = controls(w)[name]
    live = getattr(w, "live", None)
    times = []
    for v in values:
        if warm and live is not None:
            live.finish_warm()
        t0 = time.perf_counter()
        control.value = v
        _png_of_pyplot_figures()
        times.append((time.perf_counter() - t0) * 1e3)
        plt.close("all")
    return times


def median_redraw_ms(w, name: str, values, warm: bool = False) -> float:
    """Median of ``redraw_ms(w, name, values, warm)``: callback plus drawing the PNG, in ms.

    Introduced in notebook 00.
    """
    return float(np.median(redraw_ms(w, name, values, warm)))
