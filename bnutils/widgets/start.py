"""Notebook 00's warm-up widget: shift and scale a sample, then standardize it.

Introduced in notebook 00.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from ..plots import COLORS

__all__ = ["plot_standardize", "standardize_explorer"]

@functools.lru_cache(maxsize=1)
def _base() -> np.ndarray:
    """One fixed sample of 500 standard-normal values, shifted and scaled by the sliders
    (drawn on first use, not at import; read-only because every redraw shares it)."""
    base = np.random.default_rng(0).standard_normal(500)
    base.setflags(write=False)
    return base


def plot_standardize(shift: float = 3.0, scale: float = 2.0):
    """Draw the raw sample ``shift + scale * N(0, 1)`` and its standardized version.

    Returns
    -------
    dict
        ``raw_mean``, ``raw_std``, ``z_mean``, ``z_std`` (rounded to 3 decimals).
    """
    raw = shift + scale * _base()
    z = (raw - raw.mean()) / raw.std()
    stats = {"raw_mean": round(float(raw.mean()), 3) + 0.0, "raw_std": round(float(raw.std()), 3),
             "z_mean": round(float(z.mean()), 3) + 0.0, "z_std": round(float(z.std()), 3)}
    fig, ax = plt.subplots(figsize=(7, 3))
    bins = np.linspace(-15, 15, 61)
    ax.hist(raw, bins=bins, alpha=0.6, color=COLORS["plain"],
            label=f"raw: mean {stats['raw_mean']:.2f}, std {stats['raw_std']:.2f}")
    ax.hist(z, bins=bins, alpha=0.6, color=COLORS["bn"],
            label=f"standardized: mean {stats['z_mean']:.2f}, std {stats['z_std']:.2f}")
    ax.set_xlim(-15, 15)
    ax.set_xlabel("value")
    ax.set_ylabel("count")
    ax.set_title("Standardizing moves any sample to mean 0 and std 1")
    ax.legend(loc="upper left")
    plt.show()
    return stats


def standardize_explorer():
    """Sliders for the shift and scale of the raw sample; the standardized one never moves.

    Returns
    -------
    ipywidgets.interactive
        ``w.result`` holds the dict returned by ``plot_standardize``.
    """
    style = {"description_width": "initial"}
    return widgets.interactive(
        plot_standardize,
        shift=widgets.FloatSlider(value=3.0, min=-8.0, max=8.0, step=0.5, description="shift",
                                  style=style, continuous_update=False),
        scale=widgets.FloatSlider(value=2.0, min=0.2, max=4.0, step=0.2, description="scale",
                                  style=style, continuous_update=False),
    )
