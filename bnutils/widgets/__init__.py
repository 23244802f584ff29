"""Interactive explorers (ipywidgets), one module per notebook topic.

Each explorer is a function returning an ``ipywidgets.interactive`` whose callback
draws a figure and *returns* the numbers it shows, so tests can move a slider and
assert on ``w.result``. Explorers built on ``bnutils.widgets.live.LiveFigure`` also
carry that figure as ``w.figure``. How the tests and ``make bench`` move a control and
time its redraw lives with the tests (``tests/redraw_helpers.py``), not here.
"""

__all__ = []
