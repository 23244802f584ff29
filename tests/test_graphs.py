"""The diagrams of notebooks 03, 04 and 07 draw what they say; normalization_set finds
the values each normalization normalizes together."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnutils import batchnorm_forward, groupnorm_forward  # noqa: E402
from bnutils.lab.graphs import (  # noqa: E402
    BN_GRAPH_NODES,
    draw_bn_graph,
    draw_reduction_axes,
    normalization_set,
    plot_normalization_sets,
)
from bnutils.normalization import instancenorm_forward  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_bn_graph_has_every_node_with_both_passes():
    fig = draw_bn_graph()
    texts = _texts(fig)
    for _, forward, backward in BN_GRAPH_NODES.values():
        assert forward in texts and backward in texts
    assert "dxmu = dx_hat·inv_std\n+ 2·xmu·dsq" in texts        # the two-way node adds
    fig.canvas.draw()
    # no node text spills out of the figure
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    for t in fig.axes[0].texts:
        ext = t.get_window_extent(renderer)
        assert box.x0 <= ext.x0 and ext.x1 <= box.x1


def test_reduction_axes_figure():
    fig = draw_reduction_axes(n=4, d=5, c=3, hw=3)
    assert len(fig.axes) == 2
    assert any("4·3·3 = 36" in t for t in _texts(fig))
    highlighted = [p for p in fig.axes[0].patches if p.get_facecolor()[:3] != (0.91, 0.91, 0.91)]
    assert len(fig.axes[0].patches) == 4 * 5
    assert len(highlighted) >= 4                              # one column of N cells
    assert len(fig.axes[1].patches) == 4 * 3 * 3 * 3


def test_reduction_axes_rejects_a_missing_feature():
    with pytest.raises(ValueError, match="feature"):
        draw_reduction_axes(d=2, c=2, feature=2)


# ----------------------------------------------------------------------------- which values share statistics
def _ones(x):
    return np.ones(x.shape[1]), np.zeros(x.shape[1])


@pytest.mark.parametrize(("fn", "count", "axes_all"), [
    (lambda x: batchnorm_forward(x, *_ones(x))[0], 4 * 2 * 2, (0, 2, 3)),
    (lambda x: groupnorm_forward(x, *_ones(x), 1)[0], 6 * 2 * 2, (1, 2, 3)),
    (lambda x: instancenorm_forward(x, *_ones(x))[0], 2 * 2, (2, 3)),
    (lambda x: groupnorm_forward(x, *_ones(x), 3)[0], 2 * 2 * 2, None),
])
def test_normalization_set_finds_the_values_that_share_statistics(fn, count, axes_all):
    mask = normalization_set(fn, shape=(4, 6, 2, 2), index=(3, 0, 1, 0))
    assert mask.sum() == count and mask[3, 0, 1, 0]
    if axes_all is not None:
        assert mask.all(axis=axes_all).any()


def test_normalization_set_and_plot_bad_input():
    with pytest.raises(ValueError, match="4 entries"):
        normalization_set(lambda x: x, shape=(4, 6))
    with pytest.raises(ValueError, match="4-D"):
        plot_normalization_sets({"bad": np.ones((2, 3), dtype=bool)})
    with pytest.raises(ValueError, match="at least one"):
        plot_normalization_sets({})


def test_plot_normalization_sets_draws_one_panel_per_mask():
    mask = normalization_set(lambda x: batchnorm_forward(x, *_ones(x))[0])
    fig = plot_normalization_sets({"BN": mask, "BN again": mask}, captions={"BN": "over N, H, W"},
                                  title="which values share statistics")
    assert len(fig.axes) == 2
    assert fig._suptitle.get_text() == "which values share statistics"
    assert fig.axes[0].get_title() == "BN"
    assert any(t.get_text() == "over N, H, W" for t in fig.axes[0].texts)
