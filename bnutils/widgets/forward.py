"""Notebook 03's explorer: γ, β, ε and the batch size acting on one feature.

One feature ``x`` of a hidden layer is drawn from a normal distribution far from zero
(mean 4, std 3), where a sigmoid is nearly flat. The explorer shows a batch of it
before BN, after BN (``y = γ·x_hat + β``) and after a sigmoid, and how much the batch
statistics μ_B and σ_B change from one batch to the next, against the theory
σ/√m and σ/√(2m).

Introduced in notebook 03.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from .._validation import check_int
from ..plots import COLORS

__all__ = [
    "BATCH_SIZES",
    "DEFAULTS",
    "POPULATION_MEAN",
    "POPULATION_STD",
    "batch_of_x",
    "forward_explorer",
    "forward_state",
    "plot_forward_state",
    "spread_of_batch_stats",
]

#: Mean and std of the feature x before BN (a pre-activation far from 0).
POPULATION_MEAN, POPULATION_STD = 4.0, 3.0
#: Batch sizes at which the batch-to-batch spread is measured for the noise panel.
BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
#: The explorer's starting values (also the static figure's).
DEFAULTS = {"gamma": 1.0, "beta": 0.0, "eps": 1e-5, "batch_size": 64, "batch": 0}
#: Batches drawn per batch size to measure the spread of μ_B and σ_B.
N_REPEATS = 400


def _bars(ax, counts, edges, **kwargs):
    """A filled histogram as one polygon (fill_between), cheaper to draw than stairs or bars."""
    return ax.fill_between(edges, np.append(counts, counts[-1]), step="post", lw=0, **kwargs)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))      # = 1 / (1 + exp(-z)), without overflow


def batch_of_x(batch_size: int, batch: int = 0) -> np.ndarray:
    """Batch number ``batch`` of ``batch_size`` values of the feature x (seeded, reproducible).

    Returns
    -------
    x : ndarray, shape (batch_size,)
        Draws from N(POPULATION_MEAN, POPULATION_STD²).

    Examples
    --------
    >>> batch_of_x(8, 0).shape
    (8,)
    >>> bool(np.all(batch_of_x(8, 3) == batch_of_x(8, 3)))
    True
    """
    batch_size = check_int(batch_size, "batch_size", minimum=2)   # BN needs two values for a variance
    batch = check_int(batch, "batch", minimum=0)
    rng = np.random.default_rng([batch_size, batch, 3])
    return rng.normal(POPULATION_MEAN, POPULATION_STD, size=batch_size)


@functools.lru_cache(maxsize=512)
def spread_of_batch_stats(batch_size: int, repeats: int = N_REPEATS, seed: int = 0) -> tuple:
    """Std of μ_B and of σ_B across ``repeats`` batches of ``batch_size`` draws of x.

    Returns
    -------
    spread_mean, spread_std : float
        Measured batch-to-batch standard deviations of the batch mean and batch std.
        Theory for a normal feature: σ/√m and (for large m) σ/√(2m).

    Examples
    --------
    >>> s_mean, s_std = spread_of_batch_stats(100, repeats=2000)
    >>> bool(abs(s_mean - POPULATION_STD / 10) < 0.03)
    True
    """
    rng = np.random.default_rng([int(batch_size), int(seed), 7])
    xs = rng.normal(POPULATION_MEAN, POPULATION_STD, size=(int(repeats), int(batch_size)))
    return float(xs.mean(axis=1).std()), float(xs.std(axis=1).std())


_SPREAD_GRID = None


def _spread_grid():
    """The measured spreads on BATCH_SIZES, computed once (about 2 ms)."""
    global _SPREAD_GRID
    if _SPREAD_GRID is None:
        _SPREAD_GRID = np.array([spread_of_batch_stats(m) for m in BATCH_SIZES])
    return _SPREAD_GRID


def forward_state(gamma=1.0, beta=0.0, eps=1e-5, batch_size=64, batch=0) -> dict:
    """The numbers the explorer shows, for one setting of its sliders (no drawing).

    Returns
    -------
    dict
        ``batch_mean``, ``batch_std`` (μ_B and σ_B of x), ``out_mean``, ``out_std`` (of
        y = γ·x_hat + β), ``slope_bn``, ``slope_raw`` (mean sigmoid slope σ'(y) with BN and
        σ'(x) without; at most 0.25, reached at 0), ``spread_mean``, ``spread_std``
        (measured batch-to-batch std of μ_B and σ_B at this batch size) and their theory
        values ``theory_mean`` = σ/√m, ``theory_std`` = σ/√(2m); rounded to 4 decimals.

    Examples
    --------
    >>> s = forward_state(gamma=2.0, beta=1.0)
    >>> s["out_mean"], s["out_std"]
    (1.0, 2.0)
    """
    x = batch_of_x(batch_size, batch)
    mu, var = x.mean(), x.var()                        # μ_B, σ²_B (biased)
    x_hat = (x - mu) / np.sqrt(var + eps)
    y = gamma * x_hat + beta
    s_bn, s_raw = _sigmoid(y), _sigmoid(x)
    spread_mean, spread_std = spread_of_batch_stats(batch_size)
    m = float(batch_size)
    values = {
        "batch_size": int(batch_size),
        "batch_mean": mu, "batch_std": np.sqrt(var),
        "out_mean": y.mean(), "out_std": y.std(),
        "slope_bn": np.mean(s_bn * (1 - s_bn)), "slope_raw": np.mean(s_raw * (1 - s_raw)),
        "spread_mean": spread_mean, "spread_std": spread_std,
        "theory_mean": POPULATION_STD / np.sqrt(m), "theory_std": POPULATION_STD / np.sqrt(2 * m),
    }
    return {k: (v if isinstance(v, int) else round(float(v), 4) + 0.0) for k, v in values.items()}


def plot_forward_state(gamma=1.0, beta=0.0, eps=1e-5, batch_size=64, batch=0) -> dict:
    """Draw the explorer's four panels for one setting and return ``forward_state(...)``.

    Panels: the batch of x before BN; y = γ·x_hat + β after BN; the sigmoid of both;
    the batch-to-batch spread of μ_B and σ_B against the batch size (log-log).

    Introduced in notebook 03.
    """
    state = forward_state(gamma, beta, eps, batch_size, batch)
    x = batch_of_x(batch_size, batch)
    x_hat = (x - x.mean()) / np.sqrt(x.var() + eps)
    y = gamma * x_hat + beta
    grey, blue, black = COLORS["other"], COLORS["bn"], COLORS["theory"]

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.6))
    (ax_x, ax_y), (ax_s, ax_n) = axes

    # 1. before BN
    edges = np.linspace(-8, 16, 33)
    counts, _ = np.histogram(np.clip(x, -8, 16), edges)      # rare outliers go to the edge bins
    _bars(ax_x, counts, edges, color=grey, alpha=0.7)
    grid = np.linspace(-8, 16, 200)
    z = (grid - POPULATION_MEAN) / POPULATION_STD
    pdf = np.exp(-0.5 * z**2) / (POPULATION_STD * np.sqrt(2 * np.pi))
    ax_x.plot(grid, pdf * batch_size * (edges[1] - edges[0]), color=black, lw=1, ls=":")
    ax_x.axvline(state["batch_mean"], color=COLORS["plain"], lw=1.5)
    ax_x.fill_betweenx([0, 1], state["batch_mean"] - state["batch_std"],
                       state["batch_mean"] + state["batch_std"], color=COLORS["plain"], alpha=0.1,
                       lw=0, transform=ax_x.get_xaxis_transform())    # μ_B ± σ_B, full height
    ax_x.set(xlim=(-8, 16), ylim=(0, 1.5 * max(counts.max(), 1)),
             xlabel="x (before BN)", ylabel="count",
             title=f"1. A batch of m = {batch_size} values of x")
    # Text instead of legends throughout: a legend costs more than the rest of a panel.
    ax_x.text(0.02, 0.96, f"μ_B = {state['batch_mean']:.2f} (red line)\n"
              f"σ_B = {state['batch_std']:.2f} (shaded: μ_B ± σ_B)\n"
              "dotted: the whole population", transform=ax_x.transAxes, va="top", fontsize=9)

    # 2. after BN
    edges = np.linspace(-10, 10, 61)
    counts, _ = np.histogram(np.clip(y, -10, 10), edges)
    _bars(ax_y, counts, edges, color=blue, alpha=0.7)
    ax_y.axvline(state["out_mean"], color=black, lw=1.2)
    ax_y.set(xlim=(-10, 10), ylim=(0, 1.4 * max(counts.max(), 1)),
             xlabel="y = γ·x̂ + β (after BN)", ylabel="count",
             title=f"2. After BN: mean {state['out_mean']:.2f}, std {state['out_std']:.2f}")
    off_axis = int(np.sum(np.abs(y) > 10))
    note = f"\n{off_axis} value(s) beyond ±10,\nshown in the edge bin" if off_axis else ""
    ax_y.text(0.02, 0.95, f"γ = {gamma:.2f}, β = {beta:.2f}\nε = {eps:.0e}{note}",
              transform=ax_y.transAxes, va="top", fontsize=9)

    # 3. after a sigmoid, with and without BN
    edges = np.linspace(0, 1, 41)
    raw_counts, bn_counts = np.histogram(_sigmoid(x), edges)[0], np.histogram(_sigmoid(y), edges)[0]
    _bars(ax_s, raw_counts, edges, color=grey, alpha=0.45)
    _bars(ax_s, bn_counts, edges, color=blue, alpha=0.6)
    top = max(raw_counts[:12].max(), bn_counts[:12].max(), 1)     # bars under the text
    ax_s.set(xlim=(0, 1), ylim=(0, max(1.05 * max(raw_counts.max(), bn_counts.max()), 1.4 * top)),
             xlabel="sigmoid output", ylabel="count",
             title="3. After a sigmoid (slope σ′ is at most 0.25)")
    ax_s.text(0.02, 0.96, f"σ(x), no BN: mean slope {state['slope_raw']:.3f}",
              transform=ax_s.transAxes, va="top", fontsize=9, color=grey)
    ax_s.text(0.02, 0.87, f"σ(y), with BN: mean slope {state['slope_bn']:.3f}",
              transform=ax_s.transAxes, va="top", fontsize=9, color=blue)

    # 4. batch-to-batch noise of the statistics
    ms = np.array(BATCH_SIZES, dtype=float)
    spread = _spread_grid()
    mm = np.geomspace(2, 256, 50)
    ax_n.loglog(mm, POPULATION_STD / np.sqrt(mm), color=COLORS["plain"], lw=1)
    ax_n.loglog(mm, POPULATION_STD / np.sqrt(2 * mm), color=blue, lw=1, ls="--")
    ax_n.loglog(ms, spread[:, 0], "o", color=COLORS["plain"], ms=4)
    ax_n.loglog(ms, spread[:, 1], "s", color=blue, ms=4)
    ax_n.text(3.2, 2.3, "μ_B: theory σ/√m", color=COLORS["plain"], fontsize=9)
    ax_n.text(2.1, 0.3, "σ_B: theory ≈ σ/√(2m) (dashed)", color=blue, fontsize=9)
    ax_n.text(1.8, 0.115, "lines: theory, dots: measured on 400 batches", fontsize=8)
    ax_n.axvline(batch_size, color=black, lw=1, ls=":")
    ax_n.plot([batch_size], [state["spread_mean"]], "o", color=black, ms=7, mfc="none")
    ax_n.set(xlabel="batch size m", ylabel="std across batches",
             title=f"4. Noise of μ_B: ±{state['spread_mean']:.2f} at m = {batch_size}")
    ax_n.xaxis.set_major_locator(FixedLocator([2, 4, 8, 16, 32, 64, 128, 256]))
    ax_n.yaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.5, 1.0, 2.0]))
    for axis in (ax_n.xaxis, ax_n.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_locator(NullLocator())
    ax_n.set(xlim=(1.6, 320), ylim=(0.1, 3.0))
    fig.suptitle("One feature through BN: move γ, β, ε and the batch size", fontsize=12)
    # A fixed layout: tight_layout would measure every tick label and triple the redraw time.
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.9, wspace=0.22, hspace=0.42)
    plt.show()
    return state


def forward_explorer() -> widgets.interactive:
    """Sliders for γ, β, ε, the batch size and the batch drawn, driving ``plot_forward_state``.

    Returns
    -------
    ipywidgets.interactive
        ``w.result`` holds the dict of ``forward_state`` for the current sliders.

    Introduced in notebook 03.
    """
    style = {"description_width": "initial"}
    common = {"style": style, "continuous_update": False}
    return widgets.interactive(
        plot_forward_state,
        gamma=widgets.FloatSlider(value=DEFAULTS["gamma"], min=-3.0, max=3.0, step=0.1,
                                  description="γ (gamma)", **common),
        beta=widgets.FloatSlider(value=DEFAULTS["beta"], min=-3.0, max=3.0, step=0.1,
                                 description="β (beta)", **common),
        eps=widgets.FloatLogSlider(value=DEFAULTS["eps"], base=10, min=-5, max=2, step=0.5,
                                   description="ε (eps)", readout_format=".0e", **common),
        batch_size=widgets.IntSlider(value=DEFAULTS["batch_size"], min=2, max=256, step=1,
                                     description="batch size m", **common),
        batch=widgets.IntSlider(value=DEFAULTS["batch"], min=0, max=49, step=1,
                                description="batch #", **common),
    )
