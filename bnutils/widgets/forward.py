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
import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from .._validation import check_int
from ..lab.plots import COLORS
from .live import neighbours, nice_limit

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

    Introduced in notebook 03.
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

    Introduced in notebook 03.
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


#: Figure size (inches at 100 dpi): with the sliders in two columns the explorer fits a
#: 1366 x 768 screen with JupyterLab's file browser open.
FIGSIZE = (8.8, 4.9)
_EDGES_X, _EDGES_Y, _EDGES_S = np.linspace(-8, 16, 33), np.linspace(-10, 10, 61), np.linspace(0, 1, 41)


class _ForwardFigure:
    """The explorer's four panels, built once; ``update`` moves what the sliders change."""

    def __init__(self, live: bool):
        from .live import LiveFigure

        self.canvas = LiveFigure(FIGSIZE, live=live)
        fig, dyn = self.canvas.fig, self.canvas.dynamic
        grey, blue, black, red = COLORS["other"], COLORS["bn"], COLORS["theory"], COLORS["plain"]
        (ax_x, ax_y), (ax_s, ax_n) = fig.subplots(2, 2)
        self.axes = (ax_x, ax_y, ax_s, ax_n)
        small = {"fontsize": 8, "va": "top"}
        zeros = np.zeros(len(_EDGES_X) - 1)

        # 1. before BN
        self.bars_x = dyn(ax_x.stairs(zeros, _EDGES_X, fill=True, color=grey, alpha=0.7, lw=0))
        self.grid = np.linspace(-8, 16, 120)
        z = (self.grid - POPULATION_MEAN) / POPULATION_STD
        self.pdf = np.exp(-0.5 * z**2) / (POPULATION_STD * np.sqrt(2 * np.pi)) * (_EDGES_X[1] - _EDGES_X[0])
        self.pdf_line = dyn(ax_x.plot(self.grid, self.pdf, color=black, lw=1, ls=":")[0])
        self.mean_x = dyn(ax_x.axvline(0.0, color=red, lw=1.5))
        # μ_B ± σ_B: what axvspan draws (x in data units, y the axes' full height), made as
        # the Rectangle that update() moves with set_bounds; axvspan itself returns a
        # Polygon, without set_bounds, before Matplotlib 3.9.
        self.span_x = dyn(ax_x.add_patch(Rectangle((0.0, 0.0), 1.0, 1.0, transform=ax_x.get_xaxis_transform(),
                                                   color=red, alpha=0.1, lw=0)))
        ax_x.set(xlim=(-8, 16), xlabel="x (before BN)", ylabel="count")
        # The numbers go into the titles, which nothing moving overlaps (LiveFigure keeps
        # an unchanged title's image); a static text says what is what (no legends: a
        # legend costs more than the rest of a panel).
        self.title_x = dyn(ax_x.set_title(" "), over_static=True)
        ax_x.text(0.02, 0.96, "solid line: μ_B\nshaded: μ_B ± σ_B\ndotted: the population",
                  transform=ax_x.transAxes, **small)

        # 2. after BN
        self.bars_y = dyn(ax_y.stairs(np.zeros(len(_EDGES_Y) - 1), _EDGES_Y, fill=True, color=blue,
                                      alpha=0.7, lw=0))
        self.mean_y = dyn(ax_y.axvline(0.0, color=black, lw=1.2))
        ax_y.set(xlim=(-10, 10), xlabel="y = γ·x̂ + β (after BN)", ylabel="count")
        self.title_y = dyn(ax_y.set_title(" "), over_static=True)
        self.text_y = dyn(ax_y.text(0.02, 0.95, "", transform=ax_y.transAxes, **small))

        # 3. after a sigmoid, with and without BN
        empty = np.zeros(len(_EDGES_S) - 1)
        self.bars_raw = dyn(ax_s.stairs(empty, _EDGES_S, fill=True, color=grey, alpha=0.45, lw=0))
        # outlined, not filled: the two histograms overlap and must differ by more than colour
        self.bars_bn = dyn(ax_s.stairs(empty, _EDGES_S, fill=False, color=blue, lw=1.6))
        ax_s.set(xlim=(0, 1), xlabel="sigmoid output", ylabel="count")
        self.title_s = dyn(ax_s.set_title(" "), over_static=True)
        ax_s.text(0.02, 0.96, "filled grey: σ(x), no BN", transform=ax_s.transAxes, color=grey, **small)
        ax_s.text(0.02, 0.85, "blue outline: σ(y), with BN", transform=ax_s.transAxes, color=blue, **small)
        ax_s.text(0.02, 0.74, "(the slope σ′ is at most 0.25)", transform=ax_s.transAxes, **small)

        # 4. batch-to-batch noise of the statistics (static but for the marked batch size)
        ms = np.array(BATCH_SIZES, dtype=float)
        spread = _spread_grid()
        mm = np.geomspace(2, 256, 50)
        ax_n.loglog(mm, POPULATION_STD / np.sqrt(mm), color=red, lw=1)
        ax_n.loglog(mm, POPULATION_STD / np.sqrt(2 * mm), color=blue, lw=1, ls="--")
        ax_n.loglog(ms, spread[:, 0], "o", color=red, ms=3.5)
        ax_n.loglog(ms, spread[:, 1], "s", color=blue, ms=3.5)
        ax_n.text(3.2, 2.2, "μ_B: theory σ/√m", color=red, fontsize=8)
        ax_n.text(2.1, 0.28, "σ_B: theory ≈ σ/√(2m) (dashed)", color=blue, fontsize=8)
        ax_n.text(1.8, 0.115, "lines: theory, dots: measured on 400 batches", fontsize=7)
        self.mark_m = dyn(ax_n.axvline(64, color=black, lw=1, ls=":"))
        self.circle = dyn(ax_n.plot([64], [1.0], "o", color=black, ms=7, mfc="none")[0])
        ax_n.set(xlabel="batch size m", ylabel="std across batches")
        self.title_n = dyn(ax_n.set_title(" "), over_static=True)
        ax_n.xaxis.set_major_locator(FixedLocator(list(BATCH_SIZES)))
        ax_n.yaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.5, 1.0, 2.0]))
        for axis in (ax_n.xaxis, ax_n.yaxis):
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_locator(NullLocator())
        ax_n.set(xlim=(1.6, 320), ylim=(0.1, 3.0))
        fig.suptitle("One feature through BN: move γ, β, ε and the batch size", fontsize=11)
        # A fixed layout: tight_layout would measure every tick label on every redraw.
        fig.subplots_adjust(left=0.07, right=0.985, bottom=0.1, top=0.88, wspace=0.2, hspace=0.55)

    def update(self, state: dict, x, y, gamma, beta, eps) -> None:
        ax_x, ax_y, ax_s, ax_n = self.axes
        m = state["batch_size"]
        counts, _ = np.histogram(np.clip(x, -8, 16), _EDGES_X)   # rare outliers go to the edge bins
        self.bars_x.set_data(counts)
        self.pdf_line.set_ydata(self.pdf * m)
        # The y limits take a few round values (nice_limit), so that the drawn axes repeat.
        ax_x.set_ylim(0, nice_limit(1.5 * max(counts.max(), self.pdf.max() * m, 1)))
        mu, sd = state["batch_mean"], state["batch_std"]
        self.mean_x.set_xdata([mu, mu])
        self.span_x.set_bounds(mu - sd, 0, 2 * sd, 1)
        self.title_x.set_text(f"1. A batch of m = {m}: μ_B = {mu:.2f}, σ_B = {sd:.2f}")

        counts, _ = np.histogram(np.clip(y, -10, 10), _EDGES_Y)
        self.bars_y.set_data(counts)
        ax_y.set_ylim(0, nice_limit(1.4 * max(counts.max(), 1)))
        self.mean_y.set_xdata([state["out_mean"]] * 2)
        self.title_y.set_text(f"2. After BN (ε = {eps:.0e}): mean {state['out_mean']:.2f}, "
                              f"std {state['out_std']:.2f}")
        off_axis = int(np.sum(np.abs(y) > 10))
        note = f"{off_axis} value(s) beyond ±10,\nshown in the edge bin" if off_axis else ""
        self.text_y.set_text(note.strip())
        self.text_y.set_visible(bool(off_axis))

        raw_counts = np.histogram(_sigmoid(x), _EDGES_S)[0]
        bn_counts = np.histogram(_sigmoid(y), _EDGES_S)[0]
        self.bars_raw.set_data(raw_counts)
        self.bars_bn.set_data(bn_counts)
        top = max(raw_counts[:12].max(), bn_counts[:12].max(), 1)     # bars under the text
        ax_s.set_ylim(0, nice_limit(max(1.05 * max(raw_counts.max(), bn_counts.max()), 1.45 * top, 1)))
        self.title_s.set_text(f"3. Mean sigmoid slope: {state['slope_raw']:.3f} without BN, "
                              f"{state['slope_bn']:.3f} with")

        self.mark_m.set_xdata([m, m])
        self.circle.set_data([m], [state["spread_mean"]])
        self.title_n.set_text(f"4. Noise of μ_B: ±{state['spread_mean']:.2f} at m = {m}")


def _set_forward(view: _ForwardFigure, gamma, beta, eps, batch_size, batch) -> dict:
    """Set the panels for one setting of the sliders (not shown); returns ``forward_state``."""
    state = forward_state(gamma, beta, eps, batch_size, batch)
    x = batch_of_x(batch_size, batch)
    x_hat = (x - x.mean()) / np.sqrt(x.var() + eps)
    view.update(state, x, gamma * x_hat + beta, gamma, beta, eps)
    return state


def _draw_forward(view: _ForwardFigure, gamma, beta, eps, batch_size, batch) -> dict:
    state = _set_forward(view, gamma, beta, eps, batch_size, batch)
    view.canvas.show()
    return state


def plot_forward_state(gamma=1.0, beta=0.0, eps=1e-5, batch_size=64, batch=0) -> dict:
    """Draw the explorer's four panels for one setting and return ``forward_state(...)``.

    Panels: the batch of x before BN; y = γ·x_hat + β after BN; the sigmoid of both;
    the batch-to-batch spread of μ_B and σ_B against the batch size (log-log). The
    figure is a pyplot figure, shown with ``plt.show()``.

    Introduced in notebook 03.
    """
    return _draw_forward(_ForwardFigure(live=False), gamma, beta, eps, batch_size, batch)


def forward_explorer() -> widgets.interactive:
    """Sliders for γ, β, ε, the batch size and the batch drawn, driving the four panels.

    The batch size steps through the powers of two 2 … 256 (``BATCH_SIZES``), the values
    the notebook's text and the noise panel use. The sliders sit in two columns so that
    the explorer fits a laptop screen.

    Returns
    -------
    ipywidgets.interactive
        ``w.result`` holds the dict of ``forward_state`` for the current sliders;
        ``w.live`` is the ``LiveFigure`` it redraws in place (``w.live.fig``, ``w.live.png``).

    Introduced in notebook 03.
    """
    view = _ForwardFigure(live=True)

    def update(gamma, beta, eps, batch_size, batch):
        state = _draw_forward(view, gamma, beta, eps, batch_size, batch)
        # A new batch size redraws three panels' axes (new limits): prepare the next
        # batch size on either side.
        view.canvas.warm(lambda m: _set_forward(view, gamma, beta, eps, m, batch),
                         neighbours(BATCH_SIZES, batch_size))
        return state

    style = {"description_width": "100px"}          # one width: the tracks start together
    common = {"style": style, "continuous_update": False}
    w = widgets.interactive(
        update,
        gamma=widgets.FloatSlider(value=DEFAULTS["gamma"], min=-3.0, max=3.0, step=0.1,
                                  description="γ (gamma)", **common),
        beta=widgets.FloatSlider(value=DEFAULTS["beta"], min=-3.0, max=3.0, step=0.1,
                                 description="β (beta)", **common),
        eps=widgets.FloatLogSlider(value=DEFAULTS["eps"], base=10, min=-5, max=2, step=0.5,
                                   description="ε (eps)", readout_format=".0e", **common),
        batch_size=widgets.SelectionSlider(options=list(BATCH_SIZES), value=DEFAULTS["batch_size"],
                                           description="batch size m", **common),
        batch=widgets.IntSlider(value=DEFAULTS["batch"], min=0, max=49, step=1,
                                description="batch #", **common),
    )
    sliders = list(w.kwargs_widgets)
    w.children = (widgets.HBox([widgets.VBox(sliders[:3]), widgets.VBox(sliders[3:])]),
                  *w.children[len(sliders):])
    w.live = view.canvas
    return w
