"""The course's figure style and colours, used by every notebook.

Call ``use_course_style()`` once in a notebook's setup cell; importing bnutils never
changes global settings by itself.
"""

from __future__ import annotations

__all__ = ["COLORS", "use_course_style"]

#: One colour per method, the same in every figure of the course.
COLORS = {
    "plain": "#d62728",      # no normalization: red
    "bn": "#1f77b4",         # batch norm: blue
    "ln": "#2ca02c",         # layer norm: green
    "gn": "#9467bd",         # group norm: purple
    "in": "#8c564b",         # instance norm: brown
    "other": "#7f7f7f",      # grey
    "theory": "#000000",     # theoretical curves: black
}

_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "font.size": 10,
    "image.cmap": "viridis",
}


def use_course_style() -> None:
    """Set matplotlib's rcParams to the course style (sizes, grid, no top/right spines)."""
    import matplotlib as mpl

    mpl.rcParams.update(_STYLE)
