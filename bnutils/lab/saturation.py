"""Saturation: how much of an activation's output sits where the activation is flat.

``SATURATION`` states the rule per activation, ``saturation_fraction`` measures it on one
layer's output, and ``plot_activation_histograms`` draws a row of histograms per network
with the saturated fraction in each panel (e.g. from ``bnutils.lab.layer_stats``'s
``layer_statistics``)::

    saturation_fraction(np.tanh(z), "tanh")    # fraction with |a| > 0.99

Introduced in notebook 02.
"""

from __future__ import annotations

import numpy as np

from .. import NonFiniteError
from .._validation import as_float_array
from .plots import COLORS

__all__ = [
    "SATURATION",
    "plot_activation_histograms",
    "saturation_fraction",
]


#: When a unit counts as saturated, per activation: where its derivative is (almost) 0.
#: tanh: |a| > 0.99 (tanh' = 1 - a² < 0.02, 2 % of its maximum 1);
#: sigmoid: a < 0.01 or a > 0.99 (σ' = a(1 - a) < 0.0099, 4 % of its maximum 0.25);
#: relu: a = 0 (an inactive unit passes no gradient).
SATURATION = {
    "tanh": "|a| > 0.99",
    "sigmoid": "a < 0.01 or a > 0.99",
    "relu": "a = 0",
}
#: The values each activation can output (``saturation_fraction`` refuses anything else).
_OUTPUT_RANGE = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "relu": (0.0, np.inf)}


def saturation_fraction(out, activation: str = "tanh") -> float:
    """Fraction of the entries of an activation's output that sit where it is flat.

    Parameters
    ----------
    out : array_like, any shape
        Output of the activation (not its input).
    activation : {"tanh", "sigmoid", "relu"}, optional
        Decides the rule, see ``SATURATION``: tanh ``|a| > 0.99``; sigmoid
        ``a < 0.01 or a > 0.99``; relu ``a = 0``.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    TypeError
        ``out`` is not numeric.
    ValueError
        ``activation`` is unknown; ``out`` is empty; ``out`` holds NaN (a NaN entry is
        neither saturated nor unsaturated, and counting it as either would be a silent
        wrong answer); or ``out`` holds values that ``activation`` cannot output (outside
        [-1, 1] for tanh, outside [0, 1] for sigmoid, below 0 for relu; so ±inf is refused
        for tanh and sigmoid, while +inf is a possible relu output, not saturated). The
        last catches the activation's *input* passed by mistake.

    Notes
    -----
    Within the course the NaN case does not arise from a diverged network:
    ``layer_statistics`` computes the loss first, and ``softmax_cross_entropy`` refuses
    non-finite logits; ``bnutils.training.train`` stops at the first non-finite loss,
    before any callback sees the model.

    Examples
    --------
    >>> saturation_fraction(np.tanh([0.0, 1.0, 3.0, -4.0]))
    0.5
    >>> saturation_fraction([0.5, 1.5], "sigmoid")
    Traceback (most recent call last):
    ...
    ValueError: out is not a sigmoid output: sigmoid's values lie in [0, 1], got values from 0.5 to 1.5

    Introduced in notebook 02.
    """
    if activation not in SATURATION:
        raise ValueError(f"activation must be one of {sorted(SATURATION)}, got {activation!r}")
    a = as_float_array(out, "out")
    if a.size == 0:
        raise ValueError("out is empty")
    nan = np.isnan(a)
    if nan.any():
        raise NonFiniteError(f"out contains {int(nan.sum())} NaN value(s): a NaN is neither "
                             f"saturated nor unsaturated")
    low, high = _OUTPUT_RANGE[activation]
    if a.min() < low or a.max() > high:
        raise ValueError(f"out is not a {activation} output: {activation}'s values lie in "
                         f"[{low:g}, {high:g}], got values from {a.min():g} to {a.max():g}")
    if activation == "tanh":
        flat = np.abs(a) > 0.99
    elif activation == "sigmoid":
        flat = (a < 0.01) | (a > 0.99)
    else:
        flat = a == 0
    return float(np.mean(flat))



def plot_activation_histograms(rows: dict, bins: int = 40, value_range=None, color=None):
    """One row of histograms per network, one panel per activation layer, with saturation.

    Parameters
    ----------
    rows : dict of str -> list of LayerStats
        Row label (e.g. the initialization) -> ``layer_statistics`` of that network.
    bins : int, optional
    value_range : (float, float), optional
        Histogram range; (-1, 1) for tanh and (0, 1) for sigmoid by default.
    color : colour, optional

    Returns
    -------
    matplotlib Figure

    Introduced in notebook 02.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("rows is empty")
    n_rows = len(rows)
    n_cols = max(len(s) for s in rows.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.7 * n_cols + 0.8, 1.6 * n_rows + 0.6),
                             sharex=True, squeeze=False)
    for r, (label, stats) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(stats):
                ax.set_visible(False)
                continue
            s = stats[c]
            lo_hi = value_range or {"tanh": (-1, 1), "sigmoid": (0, 1)}.get(s.activation)
            ax.hist(s.out.ravel(), bins=bins, range=lo_hi, color=color or COLORS["bn"],
                    density=True)
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(f"layer {s.depth}: {100 * s.saturation:.0f} % sat.", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == n_rows - 1:
                ax.set_xlabel("activation", fontsize=8)
            ax.tick_params(labelsize=7)
    return fig
