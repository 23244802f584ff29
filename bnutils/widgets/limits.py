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

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from .._validation import check_int
from ..batchnorm import batchnorm_forward
from ..data import batch_mates_data
from ..normalization import groupnorm_forward, layernorm_forward
from ..plots import COLORS

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


def plot_batch_mates(norm: str = "BatchNorm", batch_size: int = 4) -> dict:
    """Draw the explorer's two panels for one setting and return ``batch_mates_state``.

    Introduced in notebook 07.
    """
    state = batch_mates_state(norm, batch_size)
    color = NORMS[norm]
    fig, (ax_h, ax_b) = plt.subplots(1, 2, figsize=(11, 3.8),
                                     gridspec_kw={"width_ratios": [1.4, 1]})
    counts, edges = np.histogram(state["values"], bins=48, range=(-3, 3))
    ax_h.stairs(counts, edges, fill=True, color=color, alpha=0.8,
                label=f"in {N_BATCHES} random batches of {batch_size}")
    ax_h.axvline(state["reference"], color="black", lw=2,
                 label="with the statistics of all 512 samples" if norm == "BatchNorm"
                 else "its value (the same in every batch)")
    ax_h.set(xlim=(-3, 3), ylim=(0, 1.45 * counts.max()),
             xlabel="normalized value of sample 0, feature 0",
             ylabel="number of batches",
             title=f"{norm}, batch size {batch_size}: spread {state['spread']:.2f}")
    ax_h.legend(loc="upper left", fontsize=8)
    raw, out = state["example_raw"], state["example_out"]
    ax_b.scatter(raw[1:], out[1:], color=COLORS["other"], s=18, label="its batch-mates")
    ax_b.scatter(raw[:1], out[:1], color=color, s=60, zorder=3, label="sample 0")
    ax_b.axhline(0.0, color="black", lw=0.6)
    feature = batch_mates_data()[:, FEATURE]
    ax_b.set(xlim=(feature.min() - 0.5, feature.max() + 0.5), ylim=(-4, 4),
             xlabel="raw value (feature 0)", ylabel="normalized value",
             title="One of those batches")
    ax_b.legend(loc="upper left", fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    plt.show()
    return state


def batch_mates_explorer() -> widgets.interactive:
    """A dropdown for the normalization and a slider for the batch size, driving ``plot_batch_mates``.

    Returns
    -------
    ipywidgets.interactive
        ``w.result`` is the ``batch_mates_state`` of the current setting.

    Introduced in notebook 07.
    """
    style = {"description_width": "initial"}  # show the whole label, not "normaliza…"
    return widgets.interactive(
        plot_batch_mates,
        norm=widgets.Dropdown(options=list(NORMS), value=DEFAULTS["norm"], description="normalization",
                              style=style),
        batch_size=widgets.SelectionSlider(options=list(BATCH_SIZES), value=DEFAULTS["batch_size"],
                                           description="batch size", continuous_update=False,
                                           style=style),
    )
