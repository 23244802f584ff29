"""Notebook 00's widget: sliders move the raw sample; the standardized one stays at 0/1."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from redraw_helpers import assert_redraws_fast, controls  # noqa: E402  (tests/redraw_helpers.py)

from bnutils.widgets.start import plot_standardize, standardize_explorer  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_default_state_matches_the_static_figure():
    w = standardize_explorer()
    assert w.result == plot_standardize()
    assert w.result["z_mean"] == 0.0 and w.result["z_std"] == 1.0


def test_moving_the_sliders_moves_the_raw_sample_only():
    w = standardize_explorer()
    before = w.result
    c = controls(w)
    c["shift"].value = -5.0
    c["scale"].value = 4.0
    after = w.result
    assert after["raw_mean"] < before["raw_mean"] - 7  # moved by about -8
    assert after["raw_std"] == pytest.approx(2 * before["raw_std"], rel=1e-6)
    assert (after["z_mean"], after["z_std"]) == (0.0, 1.0)
    legend = [t.get_text() for t in w.live.fig.axes[0].get_legend().get_texts()]
    assert legend[0].startswith(f"raw: mean {after['raw_mean']:.2f}")


def test_sliders_clamp_to_their_range():
    c = controls(standardize_explorer())
    c["scale"].value = 100.0
    assert c["scale"].value == 4.0


def test_redraw_is_fast():
    w = standardize_explorer()
    assert_redraws_fast(w, "shift", [-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 1.0])
