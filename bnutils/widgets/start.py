"""Notebook 00's warm-up widget: shift and scale a sample, then standardize it.

Introduced in notebook 00.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from ..lab.plots import COLORS
from .live import nice_limit

__all__ = ["plot_standardize", "standardize_explorer"]


@functools.lru_cache(maxsize=1)
def _base() -> np.ndarray:
    """One fixed sample of 500 standard-normal values, shifted and scaled by the sliders
    (drawn on first use, not at import; read-only because every redraw shares it)."""
    base = np.random.default_rng(0).standard_normal(500)
    base.setflags(write=False)
    return base


#: Figure size (inches at 100 dpi).
FIGSIZE = (7, 3)
_BINS = np.linspace(-15, 15, 61)


class _StandardizeFigure:
    """The warm-up figure, built once; ``update`` moves the raw histogram and the legend."""

    def __init__(self, live: bool):
        from .live import LiveFigure

        self.canvas = LiveFigure(FIGSIZE, live=live)
        ax = self.ax = self.canvas.fig.subplots()
        dyn = self.canvas.dynamic
        empty = np.zeros(len(_BINS) - 1)
        self.raw = dyn(ax.stairs(empty, _BINS, fill=True, alpha=0.6, color=COLORS["plain"],
                                 label="raw"))
        # hatched as well as blue, so the two histograms differ without colour
        self.z = dyn(ax.stairs(empty, _BINS, fill=True, alpha=0.6, color=COLORS["bn"], hatch="///",
                               edgecolor="white", lw=0, label="standardized"))
        ax.set_xlim(-15, 15)
        ax.set_xlabel("value")
        ax.set_ylabel("count")
        ax.set_title("Standardizing moves any sample to mean 0 and std 1")
        self.canvas.fig.subplots_adjust(left=0.09, right=0.98, bottom=0.16, top=0.89)
        self.legend = None

    def update(self, raw, z, stats) -> None:
        raw_counts, z_counts = np.histogram(raw, _BINS)[0], np.histogram(z, _BINS)[0]
        self.raw.set_data(raw_counts)
        self.z.set_data(z_counts)
        self.raw.set_label(f"raw: mean {stats['raw_mean']:.2f}, std {stats['raw_std']:.2f}")
        self.z.set_label(f"standardized: mean {stats['z_mean']:.2f}, std {stats['z_std']:.2f}")
        # The y limit takes a few round values, so that the drawn axes repeat (LiveFigure).
        self.ax.set_ylim(0, nice_limit(1.1 * max(raw_counts.max(), z_counts.max())))
        if self.legend is not None:
            self.canvas.undynamic(self.legend)
            self.legend.remove()
        self.legend = self.canvas.dynamic(self.ax.legend(loc="upper left"))


def _draw_standardize(view: _StandardizeFigure, shift: float, scale: float) -> dict:
    raw = shift + scale * _base()
    z = (raw - raw.mean()) / raw.std()
    stats = {"raw_mean": round(float(raw.mean()), 3) + 0.0, "raw_std": round(float(raw.std()), 3),
             "z_mean": round(float(z.mean()), 3) + 0.0, "z_std": round(float(z.std()), 3)}
    view.update(raw, z, stats)
    view.canvas.show()
    return stats


def plot_standardize(shift: float = 3.0, scale: float = 2.0):
    """Draw the raw sample ``shift + scale * N(0, 1)`` and its standardized version.

    Returns
    -------
    dict
        ``raw_mean``, ``raw_std``, ``z_mean``, ``z_std`` (rounded to 3 decimals).

    Introduced in notebook 00.
    """
    return _draw_standardize(_StandardizeFigure(live=False), shift, scale)


def standardize_explorer():
    """Sliders for the shift and scale of the raw sample; the standardized one never moves.

    Returns
    -------
    ipywidgets.interactive
        ``w.result`` holds the dict returned by ``plot_standardize``; ``w.live`` is the
        ``bnutils.widgets.live.LiveFigure`` it redraws in place.

    Introduced in notebook 00.
    """
    view = _StandardizeFigure(live=True)

    def update(shift, scale):
        return _draw_standardize(view, shift, scale)

    style = {"description_width": "50px"}           # one width: the tracks start together
    w = widgets.interactive(
        update,
        shift=widgets.FloatSlider(value=3.0, min=-8.0, max=8.0, step=0.5, description="shift",
                                  style=style, continuous_update=False),
        scale=widgets.FloatSlider(value=2.0, min=0.2, max=4.0, step=0.2, description="scale",
                                  style=style, continuous_update=False),
    )
    w.live = view.canvas
    return w
