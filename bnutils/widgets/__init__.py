"""Interactive explorers (ipywidgets), one module per notebook topic.

Each explorer is a function returning an ``ipywidgets.interactive`` whose callback
draws a figure and *returns* the numbers it shows, so tests can move a slider and
assert on ``w.result``. The helpers here are shared by tests and benchmarks.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["controls", "median_redraw_ms"]


def controls(w) -> dict:
    """The widget's controls by their description (not by child order)."""
    return {c.description: c for c in w.kwargs_widgets}


def median_redraw_ms(w, name: str, values) -> float:
    """Median wall time in milliseconds for the callback to run after setting a control.

    Sets control ``name`` to each of ``values`` in turn (the same path as a slider drag
    in the browser) and times each redraw in-process. Figures are closed afterwards.
    """
    import matplotlib.pyplot as plt

    control = controls(w)[name]
    times = []
    for v in values:
        t0 = time.perf_counter()
        control.value = v
        times.append((time.perf_counter() - t0) * 1e3)
        plt.close("all")
    return float(np.median(times))
