"""The residual-network explorer of notebook 08: numbers, figure, controls, redraw time."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from redraw_helpers import assert_redraws_fast, controls  # tests/redraw_helpers.py

from bnutils.residual import make_resnet, stream_variances
from bnutils.widgets.conv_residual import (
    BRANCH_LABELS,
    _batch,
    init_profile,
    plot_init_profile,
    residual_init_explorer,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_profile_matches_a_direct_measurement():
    p = init_profile(12, "bn", width=16, seed=3)
    x, _ = _batch()
    direct = stream_variances(make_resnet(12, "bn", width=16, rng=3), x)
    np.testing.assert_allclose(p["variances"], direct)
    assert p["final_variance"] == pytest.approx(direct[-1])
    assert p["growth"] == pytest.approx(direct[-1] / direct[0])


def test_the_four_kinds_of_branch_at_depth_32():
    p = {b: init_profile(32, b) for b in BRANCH_LABELS.values()}
    assert p["none"]["growth"] > 1e5                      # exponential
    assert 10 < p["bn"]["growth"] < 40                    # about 1 + 32 / v0
    assert p["bn_zero_gamma"]["growth"] == pytest.approx(1.0)
    assert p["skipinit"]["growth"] == pytest.approx(1.0)
    assert p["none"]["input_grad_norm"] > 100 * p["bn"]["input_grad_norm"]


def test_profile_is_a_copy():
    p = init_profile(4, "bn")
    p["variances"][:] = 0.0
    assert init_profile(4, "bn")["variances"][0] > 0


@pytest.mark.parametrize(("kwargs", "err"), [
    ({"depth": 0}, ValueError), ({"depth": 65}, ValueError), ({"depth": 3.0}, TypeError),
    ({"branch": "batchnorm"}, ValueError), ({"width": 0}, ValueError),
])
def test_profile_rejects_bad_input(kwargs, err):
    with pytest.raises(err):
        init_profile(**{"depth": 4, "branch": "bn", **kwargs})


def test_static_figure():
    p = init_profile(32, "bn")
    fig = plot_init_profile(p, 32, "bn", "BN in branch")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "residual block k"
    assert "BN in branch, 32 blocks" in ax.get_title()
    assert f"{p['final_variance']:.3g}" in ax.get_title()
    lo, hi = ax.get_ylim()
    assert lo <= p["variances"].min() and hi >= p["variances"].max()
    big = init_profile(64, "none")
    assert plot_init_profile(big, 64, "none").axes[0].get_ylim()[1] >= big["variances"].max()


def test_widget_defaults_and_controls():
    w = residual_init_explorer()
    c = controls(w)
    assert sorted(c) == ["depth", "normalization"]
    assert c["depth"].value == 32 and c["normalization"].value == "bn"
    assert w.result == pytest.approx({k: init_profile(32, "bn")[k]
                                      for k in ("final_variance", "growth", "input_grad_norm")})


def test_moving_controls_updates_result_and_figure():
    w = residual_init_explorer()
    c = controls(w)
    c["normalization"].value = "skipinit"
    assert w.result["growth"] == pytest.approx(1.0)
    c["depth"].value = 10
    c["normalization"].value = "none"
    assert w.result["final_variance"] == pytest.approx(init_profile(10, "none")["final_variance"])
    assert "none, 10 blocks" in w.live.fig.axes[0].get_title()
    c["depth"].value = 1000
    assert c["depth"].value == 64


def test_redraw_is_fast():
    w = residual_init_explorer()
    assert_redraws_fast(w, "depth", [8, 16, 40, 64, 33, 20, 50])
    assert_redraws_fast(w, "normalization", ["none", "bn_zero_gamma", "skipinit", "bn"])
