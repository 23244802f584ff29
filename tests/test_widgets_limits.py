"""Notebook 09's explorer: the batch size and the normalization drive the batch-mates panels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from redraw_helpers import assert_redraws_fast, controls  # noqa: E402  (tests/redraw_helpers.py)

from bnutils import batchnorm_forward  # noqa: E402
from bnutils.widgets import limits as wl  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_default_state_matches_the_static_figure():
    w = wl.batch_mates_explorer()
    assert w.kwargs == wl.DEFAULTS
    _same(w.result, wl.plot_batch_mates(**wl.DEFAULTS))
    _same(w.result, wl.batch_mates_state(**wl.DEFAULTS))


def test_controls_are_labelled_and_offer_the_documented_choices():
    c = controls(wl.batch_mates_explorer())
    assert sorted(c) == ["batch size", "normalization"]
    assert list(c["batch size"].options) == list(wl.BATCH_SIZES)
    assert list(c["normalization"].options) == list(wl.NORMS)


def test_batch_of_two_gives_plus_or_minus_one_with_bn():
    w = wl.batch_mates_explorer()
    controls(w)["batch size"].value = 2
    assert w.result["at_pm1"] > 0.95
    assert np.allclose(np.abs(w.result["example_out"]), 1.0, atol=0.01)
    assert "batch size 2" in w.live.fig.axes[0].get_title()


def test_bn_spread_shrinks_with_the_batch_and_centres_on_the_population_value():
    spreads = [wl.batch_mates_state("BatchNorm", m)["spread"] for m in (4, 16, 64)]
    assert spreads[0] > spreads[1] > spreads[2] > 0
    big = wl.batch_mates_state("BatchNorm", 64)
    assert abs(big["mean"] - big["reference"]) < 0.1


@pytest.mark.parametrize("norm", ["LayerNorm", "GroupNorm"])
def test_batch_independent_norms_do_not_care_about_the_batch_mates(norm):
    w = wl.batch_mates_explorer()
    c = controls(w)
    c["normalization"].value = norm
    for m in (2, 16):
        c["batch size"].value = m
        assert w.result["spread"] == 0.0
        assert w.result["mean"] == pytest.approx(w.result["reference"], abs=1e-12)
    assert w.live.fig.axes[0].get_title().startswith(norm)


def test_example_batch_is_really_normalized_with_bn():
    state = wl.batch_mates_state("BatchNorm", 8)
    out, _ = batchnorm_forward(state["example_raw"][:, None], np.ones(1), np.zeros(1))
    np.testing.assert_allclose(state["example_out"], out[:, 0], rtol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="norm must be"):
        wl.batch_mates_state("InstanceNorm", 4)
    with pytest.raises(ValueError, match="batch_size"):
        wl.batch_mates_state("BatchNorm", 1)


def test_redraw_is_fast():
    w = wl.batch_mates_explorer()
    assert_redraws_fast(w, "batch size", [2, 3, 4, 8, 16, 32, 64])
    assert_redraws_fast(w, "normalization", ["LayerNorm", "GroupNorm", "BatchNorm"] * 2)
