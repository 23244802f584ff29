"""The course's figure style, colours, markers and line styles, used by every notebook.

Call ``use_course_style()`` once in a notebook's setup cell; importing bnutils never
changes global settings by itself.

The colours are the Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"), chosen
so that every pair stays distinguishable for readers with deuteranopia, protanopia or
tritanopia (``tests/test_plots.py`` checks it under simulated colour-vision deficiency).
Colour is never the only cue: where methods are compared in one figure, each also has its
own marker and line style, and ``style(method)`` returns all three at once::

    ax.plot(x, y_bn, **style("bn"), label="BN")
    ax.plot(x, y_plain, **style("plain"), label="no normalization")
"""

from __future__ import annotations

__all__ = ["COLORS", "CYCLE", "LINESTYLES", "MARKERS", "style", "use_course_style"]

#: One colour per method, the same in every figure of the course (Okabe–Ito).
COLORS = {
    "plain": "#D55E00",      # no normalization: vermillion (reads as red)
    "bn": "#0072B2",         # batch norm: blue
    "ln": "#009E73",         # layer norm: bluish green
    "gn": "#CC79A7",         # group norm: reddish purple
    "in": "#E69F00",         # instance norm: orange
    "other": "#666666",      # anything else (batch values, batch-mates): dark grey
    "theory": "#000000",     # theoretical curves: black
}

#: One marker per method, so that curves differ without colour (same keys as COLORS).
MARKERS = {
    "plain": "s",            # square
    "bn": "o",               # circle
    "ln": "^",               # triangle up
    "gn": "D",               # diamond
    "in": "v",               # triangle down
    "other": "x",
    "theory": "",            # theory curves are smooth: no marker
}

#: One line style per method (same keys as COLORS); matplotlib ``linestyle`` values.
LINESTYLES = {
    "plain": "--",                         # dashed
    "bn": "-",                             # solid
    "ln": "-.",                            # dash-dot
    "gn": ":",                             # dotted
    "in": (0, (5, 1.5, 1, 1.5, 1, 1.5)),   # dash-dot-dot
    "other": (0, (1, 3)),                  # sparse dots
    "theory": (0, (7, 2)),                 # long dashes
}


def style(method: str, *, marker: bool = True, **overrides) -> dict:
    """Matplotlib keyword arguments (colour, marker, line style) for one method's curve.

    Parameters
    ----------
    method : str
        A key of ``COLORS``: "plain", "bn", "ln", "gn", "in", "other" or "theory".
    marker : bool, optional
        False leaves the marker out (for curves with hundreds of points).
    **overrides
        Further keyword arguments for ``plot`` (``lw``, ``ms``, ``markevery``, ...); they
        win over the defaults.

    Returns
    -------
    dict
        ``{"color": ..., "marker": ..., "linestyle": ...}`` updated with ``overrides``.

    Examples
    --------
    >>> style("bn")
    {'color': '#0072B2', 'marker': 'o', 'linestyle': '-'}
    >>> style("plain", marker=False, lw=1)
    {'color': '#D55E00', 'linestyle': '--', 'lw': 1}

    Introduced in notebook 00.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a str (a key of COLORS), got {type(method).__name__}")
    if method not in COLORS:
        raise ValueError(f"method must be one of {sorted(COLORS)}, got {method!r}")
    kwargs = {"color": COLORS[method]}
    if marker and MARKERS[method]:
        kwargs["marker"] = MARKERS[method]
    kwargs["linestyle"] = LINESTYLES[method]
    kwargs.update(overrides)
    return kwargs


#: The colours of curves drawn without a colour after ``use_course_style()``: the methods'
#: colours, then Okabe–Ito's sky blue and the grey (yellow is too pale on white).
CYCLE = [COLORS["bn"], COLORS["plain"], COLORS["ln"], COLORS["gn"], COLORS["in"], "#56B4E9",
         COLORS["other"]]

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
    """Set matplotlib's rcParams to the course style (sizes, grid, no top/right spines,
    colours from ``CYCLE``).

    Introduced in notebook 00.
    """
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(_STYLE)
    mpl.rcParams["axes.prop_cycle"] = cycler(color=CYCLE)
