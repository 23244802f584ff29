"""Notebook 03's explorer: the sliders drive the BN output, the sigmoid and the noise panel."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from redraw_helpers import assert_redraws_fast, controls  # noqa: E402  (tests/redraw_helpers.py)

from bnutils import batchnorm_forward  # noqa: E402
from bnutils.widgets import forward as fw  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_default_state_matches_the_static_figure():
    w = fw.forward_explorer()
    assert w.result == fw.plot_forward_state()
    assert w.result == fw.forward_state(**fw.DEFAULTS)
    assert w.kwargs == fw.DEFAULTS
    assert (w.result["out_mean"], w.result["out_std"]) == (0.0, 1.0)


def test_controls_are_labelled():
    assert sorted(controls(fw.forward_explorer())) == sorted(
        ["γ (gamma)", "β (beta)", "ε (eps)", "batch size m", "batch #"])


def test_gamma_and_beta_set_the_output_std_and_mean():
    w = fw.forward_explorer()
    c = controls(w)
    c["γ (gamma)"].value = 2.5
    c["β (beta)"].value = -1.0
    assert w.result["out_mean"] == pytest.approx(-1.0, abs=1e-4)
    assert w.result["out_std"] == pytest.approx(2.5, abs=1e-4)
    c["γ (gamma)"].value = -2.0                       # a negative γ flips, the std stays |γ|
    assert w.result["out_std"] == pytest.approx(2.0, abs=1e-4)
    # the batch itself does not move
    assert w.result["batch_mean"] == fw.forward_state(**fw.DEFAULTS)["batch_mean"]


def test_eps_shrinks_the_output_std_as_theory_says():
    w = fw.forward_explorer()
    controls(w)["ε (eps)"].value = 10.0
    var = w.result["batch_std"] ** 2
    assert w.result["out_std"] == pytest.approx(np.sqrt(var / (var + 10.0)), abs=1e-3)
    assert w.result["out_std"] < 0.7


def test_output_agrees_with_bnutils():
    x = fw.batch_of_x(32, 5)
    out, cache = batchnorm_forward(x[:, None], np.array([1.7]), np.array([0.4]), eps=0.1)
    s = fw.forward_state(gamma=1.7, beta=0.4, eps=0.1, batch_size=32, batch=5)
    assert s["batch_mean"] == pytest.approx(float(cache.mean[0]), abs=1e-4)
    assert s["out_std"] == pytest.approx(float(out.std()), abs=1e-4)


def test_bn_moves_the_sigmoid_into_its_steep_region():
    s = fw.forward_state(**fw.DEFAULTS)
    assert s["slope_raw"] < 0.1 < 0.2 < s["slope_bn"] <= 0.25
    # with a large γ the network can leave the linear region again
    assert fw.forward_state(gamma=3.0)["slope_bn"] < s["slope_bn"] - 0.05


def test_batch_size_changes_the_noise_of_the_statistics():
    w = fw.forward_explorer()
    c = controls(w)
    spreads = {}
    for m in (4, 16, 64, 256):
        c["batch size m"].value = m
        r = w.result
        assert r["batch_size"] == m
        spreads[m] = r["spread_mean"]
        # measured within 15 % of σ/√m with 400 batches
        assert r["spread_mean"] == pytest.approx(r["theory_mean"], rel=0.15)
        assert r["theory_mean"] == pytest.approx(fw.POPULATION_STD / np.sqrt(m), abs=1e-4)
    # quadrupling m halves the spread
    assert spreads[4] / spreads[16] == pytest.approx(2.0, rel=0.2)
    assert spreads[64] / spreads[256] == pytest.approx(2.0, rel=0.2)


def test_batch_slider_draws_a_different_batch():
    w = fw.forward_explorer()
    first = w.result["batch_mean"]
    controls(w)["batch #"].value = 7
    assert w.result["batch_mean"] != first
    assert w.result["out_mean"] == 0.0 and w.result["out_std"] == 1.0


def test_figure_shows_the_numbers():
    w = fw.forward_explorer()
    controls(w)["batch size m"].value = 16
    fig = w.live.fig
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    r = w.result
    assert titles[0] == f"1. A batch of m = 16: μ_B = {r['batch_mean']:.2f}, σ_B = {r['batch_std']:.2f}"
    assert titles[1] == f"2. After BN (ε = 1e-05): mean {r['out_mean']:.2f}, std {r['out_std']:.2f}"
    assert titles[2] == (f"3. Mean sigmoid slope: {r['slope_raw']:.3f} without BN, "
                         f"{r['slope_bn']:.3f} with")
    assert titles[3].endswith("at m = 16")
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    # the image the browser gets is the figure as it is now
    assert w.live.png.startswith(b"\x89PNG")


def test_static_figure_is_the_explorer_figure():
    """The notebook's static figure (pyplot) and the explorer's show the same titles."""
    w = fw.forward_explorer()
    fw.plot_forward_state()
    assert [ax.get_title() for ax in plt.gcf().axes] == [ax.get_title() for ax in w.live.fig.axes]


def test_explorer_fits_a_laptop_screen():
    """1366 x 768 with the file browser open: a figure of at most 900 x 500 px under
    three rows of sliders (two columns)."""
    w = fw.forward_explorer()
    width, height = w.live.fig.canvas.get_width_height()
    assert width <= 900 and height <= 500
    rows = w.children[0]
    assert [len(col.children) for col in rows.children] == [3, 2]


def test_batch_size_steps_through_powers_of_two():
    c = controls(fw.forward_explorer())["batch size m"]
    assert list(c.options) == [(str(m), m) for m in fw.BATCH_SIZES] or list(c.options) == list(fw.BATCH_SIZES)
    assert fw.BATCH_SIZES == (2, 4, 8, 16, 32, 64, 128, 256)


def test_sliders_clamp_to_their_range():
    c = controls(fw.forward_explorer())
    with pytest.raises(Exception, match="[Ii]nvalid selection"):  # only the listed sizes
        c["batch size m"].value = 3
    c["γ (gamma)"].value = 10.0
    assert c["γ (gamma)"].value == 3.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        fw.batch_of_x(1)
    with pytest.raises(ValueError, match="batch"):
        fw.batch_of_x(4, -1)


@pytest.mark.parametrize(("name", "values"), [
    ("γ (gamma)", [0.5, 1.0, 1.5, 2.0, 2.5, 1.2, 0.8]),
    ("batch size m", [4, 8, 16, 32, 128, 256, 64]),
    ("ε (eps)", [1e-3, 1e-1, 1.0, 10.0, 100.0, 1e-5, 1e-2]),
])
def test_redraw_is_fast(name, values):
    w = fw.forward_explorer()
    assert_redraws_fast(w, name, values)


def test_values_beyond_the_axis_are_counted_not_lost():
    fw.plot_forward_state(gamma=3.0, beta=3.0, batch_size=256, batch=7)
    ax_y = plt.gcf().axes[1]
    x = fw.batch_of_x(256, 7)
    y = 3.0 * (x - x.mean()) / np.sqrt(x.var() + 1e-5) + 3.0
    beyond = int(np.sum(np.abs(y) > 10))
    assert beyond > 0
    assert f"{beyond} value(s) beyond ±10" in ax_y.texts[0].get_text()
    # they are drawn in the last bin: the histogram's last bar (up to x = 10) is not empty
    bars = ax_y.patches[0].get_data()
    assert bars.edges[-1] == 10.0 and bars.values[-1] >= 1
