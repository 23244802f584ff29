"""Notebook 01's explorer: the scale-ratio and learning-rate sliders redraw contours and path."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from redraw_helpers import assert_redraws_fast, controls  # noqa: E402  (tests/redraw_helpers.py)

from bnutils.data import scaled_problem  # noqa: E402
from bnutils.scaling import condition_number, gradient_descent, mse_hessian  # noqa: E402
from bnutils.widgets.scaling import (  # noqa: E402
    plot_contours,
    plot_excess_loss,
    scaling_explorer,
    show_descent,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_default_state_matches_the_static_figure(capsys):
    w = scaling_explorer()
    assert w.result == show_descent()
    assert w.result["scale_ratio"] == 4.0 and w.result["lr"] == 0.05
    assert w.result["steps"] is not None and not w.result["diverged"]
    assert "condition number 17.0" in capsys.readouterr().out


def test_ratio_one_is_well_conditioned_and_larger_ratios_are_not():
    kappas = [show_descent(r, 0.01, plot=False)["kappa"] for r in (1.0, 4.0, 16.0)]
    assert kappas[0] < 2 and 14 < kappas[1] < 20 and kappas[2] > 200
    # κ grows like the square of the ratio
    assert kappas[2] / kappas[1] == pytest.approx(16, rel=0.1)


def test_moving_the_ratio_at_a_fixed_rate_ends_in_divergence():
    w = scaling_explorer()
    c = controls(w)
    c["learning rate"].value = 0.05
    c["feature-scale ratio"].value = 1.0
    assert w.result["steps"] is not None
    c["feature-scale ratio"].value = 8.0
    assert w.result["diverged"] and w.result["summary"].startswith("diverged")
    assert w.result["max_stable_lr"] < 0.05


def test_best_rate_beats_a_small_one_and_the_cap_is_reported():
    best = show_descent(4.0, show_descent(4.0, 0.01, plot=False)["best_lr"], plot=False)
    slow = show_descent(4.0, 0.001, max_steps=500, plot=False)
    assert best["steps"] < 80
    assert slow["steps"] is None and slow["summary"] == "did not converge in 500 steps"


def test_sliders_clamp_to_their_range():
    c = controls(scaling_explorer())
    c["feature-scale ratio"].value = 1000.0
    assert c["feature-scale ratio"].value == 16.0
    c["learning rate"].value = 50.0
    assert c["learning rate"].value == 1.0


def test_the_figure_shows_contours_path_and_loss_curve():
    w = scaling_explorer()
    controls(w)["feature-scale ratio"].value = 2.0
    fig = w.live.fig
    ax_contour, ax_loss = fig.axes[:2]
    assert "ratio 2" in ax_contour.get_title()
    assert ax_contour.get_ylabel().startswith("$w_2$ (feature 2, std 2")
    assert ax_loss.get_title() == f"Excess loss at lr 0.05: {w.result['summary']}"
    controls(w)["learning rate"].value = 0.5
    assert w.result["diverged"] and ax_loss.get_title() == "Excess loss at lr 0.5: diverged"
    assert ax_loss.get_yscale() == "log"
    # equal scales on both axes: data ratio equals the box aspect
    (x0, x1), (y0, y1) = ax_contour.get_xlim(), ax_contour.get_ylim()
    assert (y1 - y0) / (x1 - x0) == pytest.approx(ax_contour.get_box_aspect(), rel=1e-9)


def test_plot_helpers_on_their_own():
    X, y = scaled_problem(3.0)
    result = gradient_descent(X, y, lr=0.05)
    fig, (a1, a2) = plt.subplots(1, 2)
    plot_contours(a1, X, y, result, names=("a", "b"))
    plot_excess_loss(a2, {"run": result})
    assert a1.get_xlabel() == "a" and len(a2.get_lines()) == 2   # curve + tolerance line
    assert condition_number(mse_hessian(X)) > 5
    with pytest.raises(ValueError, match="two-feature"):
        plot_contours(a1, np.ones((3, 3)), np.ones(3), result)


def test_redraw_is_fast():
    w = scaling_explorer()
    assert_redraws_fast(w, "feature-scale ratio", [1.0, 2.0, 8.0, 16.0, 4.0, 2.0, 1.0])
    assert_redraws_fast(w, "learning rate", [0.001, 0.01, 0.03, 0.1, 0.5, 0.05, 0.02])


def test_ratio_reads_the_same_on_the_slider_in_the_text_and_in_the_title(capsys):
    # issue 19: the slider showed 13.5 while the printed line said 13.45 (2**3.75 = 13.454)
    w = scaling_explorer()
    slider = controls(w)["feature-scale ratio"]
    slider.value = 2 ** 3.75
    shown = format(slider.value, slider.readout_format)
    assert shown == "13.45"
    out = capsys.readouterr().out
    assert f"scale ratio {shown}," in out
    assert f"ratio {shown}," in w.live.fig.axes[0].get_title()


def test_printed_lines_fit_a_narrow_output_area(capsys):
    for ratio, lr in [(4.0, 0.05), (2 ** 3.75, 0.001), (16.0, 0.5)]:
        show_descent(ratio, lr, max_steps=500, plot=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(len(line) for line in lines) <= 90, lines


def test_steps_axis_has_whole_steps_after_an_early_divergence():
    X, y = scaled_problem(8.0)
    result = gradient_descent(X, y, lr=0.5)
    assert result.diverged and len(result.loss) < 12       # a short run: few steps to tick
    fig, ax = plt.subplots()
    plot_excess_loss(ax, {"run": result})
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_tolerance_label_sits_under_its_line_in_the_middle():
    # issue 19: at the left edge, a curve that converges in a few steps covered the label
    X, y = scaled_problem(1.0)
    fast = gradient_descent(X, y, lr=0.5)
    fig, ax = plt.subplots()
    plot_excess_loss(ax, {"fast": fast})
    (label,) = [t for t in ax.texts if t.get_text() == "tolerance"]
    assert label.get_position() == (0.5, fast.tol)
    assert label.get_va() == "top" and label.get_ha() == "center"
