"""The running-statistics explorer of notebook 06: numbers, figure, controls, redraw time."""

import matplotlib

matplotlib.use("Agg")

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
from redraw_helpers import assert_redraws_fast, controls  # tests/redraw_helpers.py

from bnutils.widgets.running_stats import (
    plot_running_stats,
    running_stats_explorer,
    simulate_running_stats,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_simulation_matches_the_update_rule():
    r = simulate_running_stats(momentum=0.2, batch_size=5, steps=40, seed=3)
    m, v = 0.0, 1.0
    for bm, bv in zip(r["batch_mean"], r["batch_var"]):
        m, v = 0.8 * m + 0.2 * bm, 0.8 * v + 0.2 * bv
    assert r["final_mean"] == pytest.approx(m, rel=1e-12)
    assert r["final_var"] == pytest.approx(v, rel=1e-12)
    assert r["step"][0] == 1 and len(r["step"]) == 40


def test_same_numbers_underneath_when_only_momentum_changes():
    a = simulate_running_stats(momentum=0.1, batch_size=16)
    b = simulate_running_stats(momentum=0.5, batch_size=16)
    np.testing.assert_array_equal(a["batch_mean"], b["batch_mean"])


def test_warmup_steps_formula():
    for m in (0.5, 0.1, 0.01):
        w = simulate_running_stats(momentum=m, steps=10)["warmup_steps"]
        assert (1 - m) ** w < 0.05 <= (1 - m) ** (w - 1)
    assert simulate_running_stats(momentum=1.0, steps=10)["warmup_steps"] == 1


def test_biased_variance_is_low_by_m_minus_1_over_m():
    biased = simulate_running_stats(batch_size=4, steps=3000, unbiased=False)
    unbiased = simulate_running_stats(batch_size=4, steps=3000, unbiased=True)
    assert biased["var_ratio"] == pytest.approx(0.75, abs=0.03)
    assert unbiased["var_ratio"] == pytest.approx(1.0, abs=0.04)


def test_jitter_grows_with_momentum_and_shrinks_with_batch_size():
    j = {(m, b): simulate_running_stats(momentum=m, batch_size=b, steps=600)["mean_jitter"]
         for m in (0.02, 0.5) for b in (4, 64)}
    assert j[(0.5, 4)] > j[(0.02, 4)] and j[(0.5, 4)] > j[(0.5, 64)]
    # theory for a stationary EMA: std = sigma / sqrt(B) * sqrt(m / (2 - m))
    assert j[(0.5, 64)] == pytest.approx(2.0 / 8 * math.sqrt(0.5 / 1.5), rel=0.2)


@pytest.mark.parametrize("kwargs, err", [
    (dict(momentum=0.0), ValueError),
    (dict(momentum=1.5), ValueError),
    (dict(batch_size=1), ValueError),
    (dict(batch_size=129), ValueError),
    (dict(batch_size=4.0), TypeError),
    (dict(steps=0), ValueError),
    (dict(pop_var=0.0), ValueError),
])
def test_simulation_rejects_bad_input(kwargs, err):
    with pytest.raises(err):
        simulate_running_stats(**kwargs)


def test_static_figure():
    sim = simulate_running_stats()
    fig = plot_running_stats(sim, 0.1, 32)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylabel() == "mean" and fig.axes[1].get_ylabel() == "variance"
    assert "momentum 0.1, batch size 32" in fig._suptitle.get_text()
    assert fig.axes[0].get_title().startswith(f"running mean: {sim['final_mean']:.2f}")
    # the warm-up marker only when it falls inside the plotted steps
    fig2 = plot_running_stats(simulate_running_stats(momentum=0.001), 0.001, 32)
    assert len([line for line in fig2.axes[0].lines if line.get_visible()]) == 3


@pytest.mark.parametrize(("momentum", "batch_size"), [(0.1, 32), (0.1, 2), (1.0, 4), (0.01, 128)])
def test_every_batch_value_is_in_view(momentum, batch_size):
    sim = simulate_running_stats(momentum=momentum, batch_size=batch_size)
    fig = plot_running_stats(sim, momentum, batch_size)
    for ax, key in zip(fig.axes, ("batch_mean", "batch_var"), strict=True):
        lo, hi = ax.get_ylim()
        assert lo < np.min(sim[key]) and np.max(sim[key]) < hi, (key, ax.get_ylim())


def test_widget_defaults_and_controls():
    w = running_stats_explorer()
    c = controls(w)
    assert sorted(c) == ["batch size", "momentum", "unbiased var"]
    assert w.result["warmup_steps"] == 29
    assert w.result == pytest.approx({k: simulate_running_stats()[k] for k in w.result})


def test_moving_sliders_updates_result_and_figure():
    w = running_stats_explorer()
    c = controls(w)
    c["momentum"].value = 0.01
    assert w.result["warmup_steps"] == 299
    c["batch size"].value = 4
    c["unbiased var"].value = False
    expected = simulate_running_stats(momentum=0.01, batch_size=4, unbiased=False)
    assert w.result["final_var"] == pytest.approx(expected["final_var"])
    assert w.result["var_ratio"] == pytest.approx(0.75, abs=0.08)
    title = w.live.fig._suptitle.get_text()
    assert "momentum 0.01, batch size 4, biased (ddof=0)" in title


def test_slider_limits():
    c = controls(running_stats_explorer())
    assert list(c["batch size"].options) == [2, 4, 8, 16, 32, 64, 128]   # powers of two
    with pytest.raises(Exception, match="[Ii]nvalid selection"):
        c["batch size"].value = 1000
    c["momentum"].value = 5.0
    assert c["momentum"].value == 1.0


def test_redraw_is_fast():
    w = running_stats_explorer()
    assert_redraws_fast(w, "momentum", [0.01, 0.03, 0.3, 1.0, 0.1])
    assert_redraws_fast(w, "batch size", [2, 8, 64, 128, 32])
