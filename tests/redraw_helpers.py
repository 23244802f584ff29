"""How the widget tests and ``make bench`` move a control and time the redraw.

Test-only (and benchmark) helpers, kept out of the course package a learner reads:

* ``controls(w)`` - an explorer's controls by their description;
* ``redraw_ms(w, name, values)`` - the time of each redraw after moving control ``name``
  through ``values``: the callback **and** the PNG the browser receives
  (benchmarks/course_runtime.py reports its median, wall clock);
* ``cpu_redraw_ms`` and ``assert_redraws_fast`` - the same in CPU time, and the budget the
  widget tests (tests/test_widgets_*.py) hold every control to.
"""

import io
import time

import matplotlib.pyplot as plt
import numpy as np

REDRAW_BUDGET_MS = 100      # issue #9: ≤ 100 ms median per slider move


def controls(w) -> dict:
    """The widget's controls by their description (not by child order)."""
    return {c.description: c for c in w.kwargs_widgets}


def png_of_pyplot_figures() -> int:
    """Encode every open pyplot figure as the inline backend does; total bytes."""
    total = 0
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        # matplotlib-inline's display: print_figure(fig, "png", bbox_inches="tight")
        fig.canvas.print_figure(buf, format="png", bbox_inches="tight", dpi=fig.dpi)
        total += len(buf.getvalue())
    return total


def redraw_ms(w, name: str, values, warm: bool = False, clock=time.perf_counter) -> list[float]:
    """Time in milliseconds of each redraw after setting control ``name`` to each of ``values``.

    A redraw is what a learner waits for in the kernel: the callback **and** drawing the
    figure to the PNG the browser receives. Explorers on ``LiveFigure`` make that PNG in
    their callback; for any other explorer every open pyplot figure is encoded here the
    way the inline backend does (``bbox_inches="tight"``). Figures are closed afterwards.
    Setting the value is the same path as a slider move in the browser.

    ``warm=True`` first draws what the explorer prepares between moves in an idle kernel
    (``LiveFigure.finish_warm``, untimed): the wait of a learner who pauses between
    moves. ``warm=False`` (default) times moves made back to back. ``clock`` is the wall
    clock by default (``cpu_redraw_ms``: CPU time).
    """
    control = controls(w)[name]
    live = getattr(w, "live", None)
    times = []
    for v in values:
        if warm and live is not None:
            live.finish_warm()
        t0 = clock()
        control.value = v
        png_of_pyplot_figures()
        times.append((clock() - t0) * 1e3)
        plt.close("all")
    return times


def cpu_redraw_ms(w, name, values) -> list[float]:
    """CPU time in ms of each redraw after setting control ``name`` to each of ``values``.

    The same redraw as ``redraw_ms`` (the callback and the PNG the browser receives),
    timed with ``time.process_time`` instead of the wall clock: a redraw is pure
    computation in this process (one BLAS thread), so on an idle machine the two agree,
    but only the CPU time stays put when other jobs share the cores (the suite runs on two
    pytest-xdist workers, beside kernels and a browser). The wall-clock latency a learner
    sees is measured by benchmarks/widget_latency.py.
    """
    return redraw_ms(w, name, values, clock=time.process_time)


def assert_redraws_fast(w, name, values, tries=3):
    """Assert that moving control ``name`` of widget ``w`` through ``values`` redraws fast:
    median CPU time per redraw under ``REDRAW_BUDGET_MS``.

    Takes the best of ``tries`` medians: even CPU time grows a little when a neighbour
    evicts this process's caches (the redraws take ~10-35 ms each).
    """
    best = min(float(np.median(cpu_redraw_ms(w, name, values))) for _ in range(tries))
    assert best < REDRAW_BUDGET_MS, f"moving {name!r}: median redraw {best:.0f} ms of CPU time"
