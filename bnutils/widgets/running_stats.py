"""Explorer for notebook 06: how BN's running mean and variance converge, by momentum and batch size.

A stream of mini-batches is drawn from one population (one feature, known mean and
variance); after every batch the running statistics are updated with PyTorch's rule
``running = (1 - momentum) * running + momentum * batch``, starting from 0 and 1 as in
BN. The figure shows how fast the start values are forgotten (≈ 1/momentum steps) and
how much the estimates jitter around the population values (more for a larger momentum
and a smaller batch), and, with the biased batch variance, the (m−1)/m bias of the
running variance.

Introduced in notebook 06.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._validation import check_int
from ..inference import running_average
from ..lab.plots import COLORS
from .live import neighbours

__all__ = ["BATCH_SIZES", "plot_running_stats", "running_stats_explorer", "simulate_running_stats"]

MAX_BATCH = 128


def simulate_running_stats(momentum: float = 0.1, batch_size: int = 32, steps: int = 300,
                           pop_mean: float = 2.0, pop_var: float = 4.0, unbiased: bool = True,
                           seed: int = 0) -> dict:
    """Running mean and variance of BN over a stream of batches from one population.

    The samples are ``N(pop_mean, pop_var)``; batch t is the first ``batch_size`` columns
    of row t of one seeded ``(steps, 128)`` table, so changing ``batch_size`` or
    ``momentum`` keeps the same underlying numbers.

    Parameters
    ----------
    momentum : float in (0, 1]
        PyTorch's convention (weight of the new batch).
    batch_size : int in 2..128
    steps : int ≥ 1
    pop_mean, pop_var : float
        The population the batches come from (``pop_var`` > 0).
    unbiased : bool, optional
        Blend in the unbiased batch variance (ddof=1, as PyTorch and bnutils do) or the
        biased one (ddof=0, as Keras does).
    seed : int, optional

    Returns
    -------
    dict
        ``step`` (steps,), ``batch_mean``, ``batch_var``, ``running_mean``,
        ``running_var`` (each (steps,)), and the numbers the explorer shows:
        ``final_mean``, ``final_var``, ``warmup_steps`` (steps until the start values
        weigh less than 5 %, i.e. (1 − momentum)^t < 0.05), ``mean_jitter`` (std of the
        running mean over the second half of the steps), ``var_ratio`` (the average batch
        variance divided by ``pop_var``: about (m − 1)/m for the biased variance, 1 for the
        unbiased one; the running variance settles around this multiple of ``pop_var``).

    Examples
    --------
    >>> r = simulate_running_stats(momentum=0.1, batch_size=32)
    >>> r["warmup_steps"]
    29
    >>> abs(r["final_mean"] - 2.0) < 0.3
    True

    Introduced in notebook 06.
    """
    momentum = float(momentum)
    if not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum must lie in (0, 1], got {momentum}")
    batch_size = check_int(batch_size, "batch_size", minimum=2, maximum=MAX_BATCH)
    steps = check_int(steps, "steps", minimum=1, maximum=100_000)
    if not pop_var > 0:
        raise ValueError(f"pop_var must be > 0, got {pop_var}")
    rng = np.random.default_rng(seed)
    x = pop_mean + math.sqrt(pop_var) * rng.standard_normal((steps, MAX_BATCH))[:, :batch_size]
    batch_mean = x.mean(axis=1)
    batch_var = x.var(axis=1, ddof=1 if unbiased else 0)
    running_mean = running_average(batch_mean, momentum, init=0.0)
    running_var = running_average(batch_var, momentum, init=1.0)
    half = steps // 2
    warmup = 1 if momentum == 1.0 else math.ceil(math.log(0.05) / math.log(1.0 - momentum))
    return {
        "step": np.arange(1, steps + 1),
        "batch_mean": batch_mean,
        "batch_var": batch_var,
        "running_mean": running_mean,
        "running_var": running_var,
        "pop_mean": float(pop_mean),
        "pop_var": float(pop_var),
        "final_mean": float(running_mean[-1]),
        "final_var": float(running_var[-1]),
        "warmup_steps": int(warmup),
        "mean_jitter": float(running_mean[half:].std()),
        "var_ratio": float(batch_var.mean() / pop_var),
    }


#: The batch sizes of the explorer's slider (the powers of two up to MAX_BATCH).
BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)
#: Figure size (inches at 100 dpi).
FIGSIZE = (10.0, 3.9)
#: The explorer's starting momentum (PyTorch's default).
DEFAULT_MOMENTUM = 0.1


class _RunningStatsFigure:
    """The two panels, built once; ``update`` moves what momentum and batch size change."""

    def __init__(self, live: bool):
        from .live import LiveFigure

        self.canvas = LiveFigure(FIGSIZE, live=live)
        fig, dyn = self.canvas.fig, self.canvas.dynamic
        self.axes = fig.subplots(1, 2)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.26, top=0.80, wspace=0.2)
        self.batch, self.running, self.pop, self.warmup, self.titles = [], [], [], [], []
        for ax, name in zip(self.axes, ("mean", "variance")):
            # The batch values change only with the batch size and the variance switch:
            # static artists (LiveFigure.static_key), so moving the momentum redraws lines only.
            self.batch.append(ax.plot([], [], ".", ms=2.5, color=COLORS["other"], alpha=0.5,
                                      label="batch value")[0])
            self.running.append(dyn(ax.plot([], [], color=COLORS["bn"], lw=1.8,
                                            label="running value")[0]))
            self.pop.append(ax.axhline(0.0, color=COLORS["theory"], ls="--", lw=1,
                                       label="population value"))
            self.warmup.append(dyn(ax.axvline(1.0, color=COLORS["plain"], ls=":", lw=1.2,
                                              label="start value weighs < 5 %")))
            ax.set_xlabel("training step (batches seen)")
            ax.set_ylabel(name)
            self.titles.append(dyn(ax.set_title(" "), over_static=True))
        handles, labels = self.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
        self.suptitle = dyn(fig.suptitle(" "), over_static=True)

    def update(self, sim: dict, momentum: float, batch_size: int, unbiased: bool) -> None:
        step = sim["step"]
        self.canvas.static_key = (batch_size, unbiased, len(step))   # what the batch dots show
        panels = ((sim["batch_mean"], sim["running_mean"], sim["pop_mean"], 0.0),
                  (sim["batch_var"], sim["running_var"], sim["pop_var"], 1.0))
        for k, (batch, running, pop, start) in enumerate(panels):
            ax = self.axes[k]
            self.batch[k].set_data(step, batch)
            self.running[k].set_data(step, running)
            self.pop[k].set_ydata([pop, pop])
            self.warmup[k].set_xdata([sim["warmup_steps"]] * 2)
            self.warmup[k].set_visible(sim["warmup_steps"] <= step[-1])
            ax.set_xlim(0, step[-1] + 1)
            # Every batch value stays in view (percentiles clipped the largest batch variances).
            lo, hi = float(np.min(batch)), float(np.max(batch))
            pad = 0.05 * (hi - lo)
            ax.set_ylim(min(lo, start, pop) - pad, max(hi, start, pop) + pad)
        self.titles[0].set_text(f"running mean: {sim['final_mean']:.2f} at the end "
                                f"(population {sim['pop_mean']:g})")
        self.titles[1].set_text(f"running variance: {sim['final_var']:.2f} at the end "
                                f"(population {sim['pop_var']:g})")
        kind = "unbiased (ddof=1)" if unbiased else "biased (ddof=0)"
        self.suptitle.set_text(f"momentum {momentum:.3g}, batch size {batch_size}, {kind} batch "
                               f"variance; average batch variance / population = {sim['var_ratio']:.2f}")


def plot_running_stats(sim: dict, momentum: float, batch_size: int, unbiased: bool = True):
    """Two panels: running mean and running variance against the step, for ``simulate_running_stats``.

    Returns
    -------
    matplotlib Figure
        A pyplot figure (show it with ``plt.show()``).

    Introduced in notebook 06.
    """
    view = _RunningStatsFigure(live=False)
    view.update(sim, momentum, batch_size, unbiased)
    return view.canvas.fig


@functools.lru_cache(maxsize=64)
def _simulation(momentum, batch_size, steps, pop_mean, pop_var, unbiased, seed) -> dict:
    """``simulate_running_stats``, kept for the settings an explorer revisits (read-only arrays)."""
    sim = simulate_running_stats(momentum, batch_size, steps, pop_mean, pop_var, unbiased, seed)
    for value in sim.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return sim


def running_stats_explorer(steps: int = 300, pop_mean: float = 2.0, pop_var: float = 4.0,
                           seed: int = 0):
    """Sliders for momentum and batch size (and a biased/unbiased switch) over the running statistics.

    The batch size steps through the powers of two 2 … 128 (``BATCH_SIZES``).

    Returns
    -------
    ipywidgets.interactive
        Controls "momentum", "batch size", "unbiased var"; ``w.result`` is the dict of
        numbers the figure shows (``final_mean``, ``final_var``, ``warmup_steps``,
        ``mean_jitter``, ``var_ratio``); ``w.live`` is the ``LiveFigure`` it redraws.

    Introduced in notebook 06.
    """
    import ipywidgets as widgets

    view = _RunningStatsFigure(live=True)

    def set_panels(momentum, batch_size, unbiased):
        sim = _simulation(momentum, batch_size, steps, pop_mean, pop_var, unbiased, seed)
        view.update(sim, momentum, batch_size, unbiased)
        return sim

    def show(momentum=DEFAULT_MOMENTUM, batch_size=32, unbiased=True):
        sim = set_panels(momentum, batch_size, unbiased)
        view.canvas.show()
        # A new batch size or variance switch redraws both axes (new batch dots, new
        # limits): prepare the next batch size on either side and the other switch
        # position. The backgrounds do not depend on the momentum, so they are drawn
        # from the default momentum's simulations (kept by _simulation's cache).
        view.canvas.warm(lambda s: set_panels(DEFAULT_MOMENTUM, *s),
                         [(m, unbiased) for m in neighbours(BATCH_SIZES, batch_size)]
                         + [(batch_size, not unbiased)])
        return {k: sim[k] for k in ("final_mean", "final_var", "warmup_steps", "mean_jitter",
                                    "var_ratio")}

    style = {"description_width": "90px"}
    w = widgets.interactive(
        show,
        momentum=widgets.FloatLogSlider(value=DEFAULT_MOMENTUM, base=10, min=-3, max=0, step=0.1,
                                        description="momentum", readout_format=".3f",
                                        continuous_update=False, style=style),
        batch_size=widgets.SelectionSlider(options=list(BATCH_SIZES), value=32,
                                           description="batch size", continuous_update=False,
                                           style=style),
        unbiased=widgets.Checkbox(value=True, description="unbiased var", style=style),
    )
    w.live = view.canvas
    return w
