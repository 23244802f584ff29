"""Issue 24: notebook 05's gradient-descent figure tells its three curves apart without colour."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bnutils.data import load_digits_split  # noqa: E402
from bnutils.lab import learning_rates  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_gd_variants_curves_differ_in_marker_or_line_style():
    data = load_digits_split()
    runs = learning_rates.gd_variants(data, epochs=1)
    fig = learning_rates.plot_gd_variants(runs, len(data[0]))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3
    looks = [(line.get_marker(), line.get_linestyle()) for line in lines]
    assert len(set(looks)) == 3, f"two curves differ only by colour: {looks}"
    # the mini-batch curve (126 updates at 3 epochs, 42 at one) carries markers on some points only
    mini = lines[2]
    assert mini.get_marker() not in ("None", "", None)
    assert mini.get_markevery() not in (None, 1)
