"""Notebook 07's explorer: one sample's normalized value, as its batch-mates change.

A fixed data set of 512 samples with 16 features (``bnutils.data.batch_mates_data``:
each feature with its own mean and spread, each sample with its own offset; built on
first use, not at import). Sample 0 is put into ``N_BATCHES`` random
batches of a chosen size and normalized with BatchNorm, LayerNorm or GroupNorm. The
left panel shows how its normalized value of feature 0 varies across those batches
(with BN it depends on the batch-mates; with LayerNorm or GroupNorm it does not); the
right panel shows one of the batches, normalized against raw values.

Introduced in notebook 07.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from .._validation import check_int
from ..batchnorm import batchnorm_forward
from ..data import batch_mates_data
from ..lab.plots import COLORS
from ..normalization import groupnorm_forward, layernorm_forward
from .live import neighbours, nice_limit

__all__ = ["BATCH_SIZES", "DEFAULTS", "NORMS", "batch_mates_explorer", "batch_mates_state",
           "plot_batch_mates"]

#: The normalizations the explorer offers, with the colour of each.
NORMS = {"BatchNorm": COLORS["bn"], "LayerNorm": COLORS["ln"], "GroupNorm": COLORS["gn"]}
#: The batch sizes of the slider.
BATCH_SIZES = (2, 3, 4, 8, 16, 32, 64)
#: The starting values (also those of the static figure).
DEFAULTS = {"norm": "BatchNorm", "batch_size": 4}
#: How many random batches sample 0 is put into.
N_BATCHES = 200
#: The feature that is followed, and GroupNorm's number of groups.
FEATURE, GROUPS = 0, 4



def _normalize(norm: str, x: np.ndarray) -> np.ndarray:
    ones, zeros = np.ones(x.shape[1]), np.zeros(x.shape[1])
    if norm == "BatchNorm":
        return batchnorm_forward(x, ones, zeros)[0]
    if norm == "LayerNorm":
        return layernorm_forward(x, ones, zeros)[0]
    return groupnorm_forward(x, ones, zeros, GROUPS)[0]


def batch_mates_state(norm: str = "BatchNorm", batch_size: int = 4) -> dict:
    """The numbers the explorer shows for one setting.

    Parameters
    ----------
    norm : {"BatchNorm", "LayerNorm", "GroupNorm"}
    batch_size : int ≥ 2

    Returns
    -------
    dict
        ``values`` (N_BATCHES,): sample 0's normalized feature 0 in each batch;
        ``spread``, ``mean``: their std and mean; ``reference``: its value when normalized
        with the statistics of all 512 samples (BN's eval mode with exact running
        statistics; for LayerNorm/GroupNorm simply its value); ``at_pm1``: the fraction
        of batches where |value| > 0.99; ``example_raw``, ``example_out`` (batch_size,):
        feature 0 of the first batch before and after normalization.

    Examples
    --------
    >>> state = batch_mates_state("BatchNorm", 2)       # a batch of two: ±1 (or nearly)
    >>> state["at_pm1"] > 0.95
    True
    >>> batch_mates_state("LayerNorm", 8)["spread"]
    0.0

    Introduced in notebook 07.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {sorted(NORMS)}, got {norm!r}")
    data = batch_mates_data()
    batch_size = check_int(batch_size, "batch_size", minimum=2, maximum=len(data))
    rng = np.random.default_rng([batch_size, 11])
    others = np.arange(1, len(data))
    values, example_raw, example_out = [], None, None
    for k in range(N_BATCHES):
        idx = np.concatenate([[0], rng.choice(others, size=batch_size - 1, replace=False)])
        out = _normalize(norm, data[idx])
        values.append(out[0, FEATURE])
        if k == 0:
            example_raw, example_out = data[idx, FEATURE], out[:, FEATURE]
    values = np.array(values)
    if norm == "BatchNorm":
        reference = (data[0, FEATURE] - data[:, FEATURE].mean()) / np.sqrt(data[:, FEATURE].var() + 1e-5)
    else:
        reference = _normalize(norm, data[:1])[0, FEATURE]
    spread = float(values.std())
    return {"values": values, "spread": round(spread, 12) + 0.0, "mean": float(values.mean()),
            "reference": float(reference), "at_pm1": float(np.mean(np.abs(values) > 0.99)),
            "example_raw": example_raw, "example_out": example_out}


#: Figure size (inches at 100 dpi).
FIGSIZE = (10, 3.6)
_EDGES = np.linspace(-3, 3, 49)


class _BatchMatesFigure:
    """The two panels, built once; ``update`` moves what the controls change."""

    def __init__(self, live: bool):
        from .live import LiveFigure

        self.canvas = LiveFigure(FIGSIZE, live=live)
        fig, dyn = self.canvas.fig, self.canvas.dynamic
        self.ax_h, self.ax_b = ax_h, ax_b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
        self.bars = dyn(ax_h.stairs(np.zeros(len(_EDGES) - 1), _EDGES, fill=True, alpha=0.8))
        self.reference = dyn(ax_h.axvline(0.0, color="black", lw=2))
        ax_h.set(xlim=(-3, 3), xlabel="normalized value of sample 0, feature 0",
                 ylabel="number of batches")
        self.title_h = dyn(ax_h.set_title(" "), over_static=True)
        self.legend_h = None
        self.mates = dyn(ax_b.scatter([], [], color=COLORS["other"], s=18, label="its batch-mates"))
        self.sample0 = dyn(ax_b.scatter([], [], s=60, zorder=3, label="sample 0"))
        ax_b.axhline(0.0, color="black", lw=0.6)
        feature = batch_mates_data()[:, FEATURE]
        ax_b.set(xlim=(feature.min() - 0.5, feature.max() + 0.5), ylim=(-4, 4),
                 xlabel="raw value (feature 0)", ylabel="normalized value",
                 title="One of those batches")
        self.legend_b = None
        self.norm = None
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)

    def update(self, state: dict, norm: str, batch_size: int) -> None:
        color = NORMS[norm]
        counts, _ = np.histogram(state["values"], bins=_EDGES)
        self.bars.set_data(counts)
        self.bars.set_color(color)
        self.reference.set_xdata([state["reference"]] * 2)
        # A few round y limits, so that the drawn axes repeat (LiveFigure).
        self.ax_h.set_ylim(0, nice_limit(1.45 * counts.max()))
        self.title_h.set_text(f"{norm}, batch size {batch_size}: spread {state['spread']:.2f}")
        raw, out = state["example_raw"], state["example_out"]
        self.mates.set_offsets(np.column_stack([raw[1:], out[1:]]))
        self.sample0.set_offsets(np.column_stack([raw[:1], out[:1]]))
        self.sample0.set_color(color)
        if norm != self.norm:
            self._legends(norm, color)

    def _legends(self, norm: str, color) -> None:
        """The legends say what the colours are; they change only with the normalization,
        so they are static artists (LiveFigure.static_key)."""
        self.norm = self.canvas.static_key = norm
        self.bars.set_label(f"in {N_BATCHES} random batches")
        self.reference.set_label("with the statistics of all 512 samples" if norm == "BatchNorm"
                                 else "its value (the same in every batch)")
        for name, ax in (("legend_h", self.ax_h), ("legend_b", self.ax_b)):
            old = getattr(self, name)
            if old is not None:
                old.remove()
            setattr(self, name, ax.legend(loc="upper left", fontsize=8))


def plot_batch_mates(norm: str = "BatchNorm", batch_size: int = 4) -> dict:
    """Draw the explorer's two panels for one setting and return ``batch_mates_state``.

    Introduced in notebook 09.
    """
    state = batch_mates_state(norm, batch_size)
    view = _BatchMatesFigure(live=False)
    view.update(state, norm, batch_size)
    view.canvas.show()
    return state


@functools.lru_cache(maxsize=len(NORMS) * len(BATCH_SIZES))
def _cached_state(norm: str, batch_size: int) -> dict:
    """``batch_mates_state``, kept for the few settings the explorer offers (read-only arrays)."""
    state = batch_mates_state(norm, batch_size)
    for value in state.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return state


def batch_mates_explorer() -> widgets.interactive:
    """A dropdown for the normalization and a slider for the batch size, driving ``plot_batch_mates``.

    Returns
    -------
    ipywidgets.interactive
        ``w.result`` is the ``batch_mates_state`` of the current setting (a copy);
        ``w.live`` is the ``LiveFigure`` it redraws in place.

    Introduced in notebook 09.
    """
    view = _BatchMatesFigure(live=True)

    def set_panels(norm, batch_size):
        state = dict(_cached_state(norm, batch_size))
        view.update(state, norm, batch_size)
        return state

    def update(norm, batch_size):
        state = set_panels(norm, batch_size)
        view.canvas.show()
        # A new batch size (new y limits) or normalization (new legends) redraws axes:
        # prepare the next batch size on either side and the other normalizations.
        view.canvas.warm(lambda s: set_panels(*s),
                         [(norm, m) for m in neighbours(BATCH_SIZES, batch_size)]
                         + [(n, batch_size) for n in NORMS if n != norm])
        return state

    style = {"description_width": "90px"}  # the whole label, and one width for both controls
    w = widgets.interactive(
        update,
        norm=widgets.Dropdown(options=list(NORMS), value=DEFAULTS["norm"], description="normalization",
                              style=style),
        batch_size=widgets.SelectionSlider(options=list(BATCH_SIZES), value=DEFAULTS["batch_size"],
                                           description="batch size", continuous_update=False,
                                           style=style),
    )
    w.live = view.canvas
    return w
