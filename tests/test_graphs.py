"""The diagrams of notebooks 03 and 04 draw what they say."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bnutils.graphs import BN_GRAPH_NODES, draw_bn_graph, draw_reduction_axes  # noqa: E402


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
