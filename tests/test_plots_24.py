"""bnutils.lab.sweeps.plot_sweeps: the min-max band stops where every seed diverged (issue 24).

Drawn on to such a value, the band of notebook 05's initial-weight sweep was a zero-width
sliver from s = 0.3 to the diverged s = 1: a faint stray diagonal that nothing explained.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _sweep(values, acc, diverged):
    from bnutils.lab.sweeps import SweepResult

    acc = np.asarray(acc, dtype=float)
    return SweepResult("lr", list(values), tuple(range(acc.shape[1])), acc, np.ones_like(acc),
                       np.asarray(diverged, dtype=bool))


def _band_xs(ax):
    (band,) = ax.collections
    return np.concatenate([path.vertices[:, 0] for path in band.get_paths()])


def test_band_stops_short_of_a_value_where_every_seed_diverged():
    from bnutils.lab.sweeps import plot_sweeps

    fig, ax = plt.subplots()
    # lr 1: one seed of two diverged (its accuracy counts as 0); lr 10: both diverged.
    res = _sweep([0.1, 1.0, 10.0], [[0.9, 0.95], [0.0, 0.8], [0.0, 0.0]],
                 [[False, False], [True, False], [True, True]])
    plot_sweeps(ax, {"no BN": res})
    xs = _band_xs(ax)
    assert xs.max() == 1.0 and xs.min() == 0.1      # the band covers 0.1 to 1 and no further
    line = ax.lines[0]
    assert np.isnan(line.get_ydata()[2])            # the line stops there too
    marks = [ln for ln in ax.lines if ln.get_label() == "no BN: diverged (NaN)"]
    assert list(marks[0].get_xdata()) == [10.0]     # the x says what happened at lr 10
    plt.close(fig)


def test_band_is_whole_when_nothing_diverged_everywhere():
    from bnutils.lab.sweeps import plot_sweeps

    fig, ax = plt.subplots()
    res = _sweep([0.1, 1.0, 10.0], [[0.9, 0.95], [0.0, 0.8], [0.5, 0.6]],
                 [[False, False], [True, False], [False, False]])
    plot_sweeps(ax, {"BN": res})
    xs = _band_xs(ax)
    assert xs.min() == 0.1 and xs.max() == 10.0
    plt.close(fig)
