"""Explanatory diagrams: which values share one mean and variance, and BN's graph.

* ``draw_reduction_axes`` — the axes BN reduces over, (N, D) and (N, C, H, W) (notebook 03);
* ``draw_bn_graph`` — BN's computational graph with both passes (notebook 04);
* ``normalization_set``, ``plot_normalization_sets`` — which values a normalization
  (BN, LayerNorm, GroupNorm, InstanceNorm, …) normalizes together, found by running it,
  drawn as blocks of cubes (notebook 07).

Drawing code (matplotlib patches, text and voxels); ``normalization_set`` is the only
function that runs a normalization, so that the cubes come from the code, not from a
drawing.

Introduced in notebook 03 (``draw_reduction_axes``), notebook 04 (``draw_bn_graph``) and
notebook 07 (``normalization_set``, ``plot_normalization_sets``).
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from .plots import COLORS

__all__ = ["BN_GRAPH_NODES", "draw_bn_graph", "draw_reduction_axes", "normalization_set",
           "plot_normalization_sets"]

_HIGHLIGHT = COLORS["bn"]
_CELL = "#e8e8e8"


def draw_reduction_axes(n: int = 4, d: int = 5, c: int = 3, hw: int = 3, feature: int = 1):
    """Draw which values share one mean and variance: (N, D) on the left, (N, C, H, W) on the right.

    Left: a batch of ``n`` samples with ``d`` features, one column highlighted (one
    feature, its statistics taken over the N samples). Right: ``n`` samples with ``c``
    channels, each an ``hw``×``hw`` image; one channel highlighted in every sample (its
    statistics are taken over N, H and W together).

    Returns
    -------
    fig : matplotlib.figure.Figure

    Introduced in notebook 03.
    """
    if not (0 <= feature < min(d, c)):
        raise ValueError(f"feature must index a feature and a channel (0 ≤ feature < {min(d, c)}), "
                         f"got {feature}")
    fig, (ax_fc, ax_conv) = plt.subplots(1, 2, figsize=(10, 3.8),
                                         gridspec_kw={"width_ratios": [1, 1.9]})
    for ax in (ax_fc, ax_conv):
        ax.set_aspect("equal")
        ax.axis("off")

    # (N, D): one cell per value
    for i in range(n):
        for j in range(d):
            on = j == feature
            ax_fc.add_patch(Rectangle((j, n - 1 - i), 0.92, 0.92,
                                      facecolor=_HIGHLIGHT if on else _CELL,
                                      alpha=0.85 if on else 1.0, edgecolor="white"))
    ax_fc.annotate("", xy=(-0.35, -0.05), xytext=(-0.35, n), arrowprops={"arrowstyle": "->"})
    ax_fc.text(-0.6, n / 2, "N samples", rotation=90, ha="center", va="center")
    ax_fc.annotate("", xy=(d, n + 0.3), xytext=(0, n + 0.3), arrowprops={"arrowstyle": "->"})
    ax_fc.text(d / 2, n + 0.6, "D features", ha="center")
    ax_fc.set(xlim=(-1.0, d + 0.3), ylim=(-1.3, n + 1.2))
    ax_fc.set_title("Fully connected (N, D)")
    ax_fc.text(d / 2, -0.7, "μ and σ² of one feature:\nmean over the N values of its column",
               ha="center", va="top", fontsize=9, color=_HIGHLIGHT)

    # (N, C, H, W): each (sample, channel) is a small hw×hw image
    size = 1.0 / hw * 0.9
    gap_c, gap_n = 1.25, 1.25
    for i in range(n):
        for k in range(c):
            on = k == feature
            x0, y0 = k * gap_c, (n - 1 - i) * gap_n
            for a in range(hw):
                for b in range(hw):
                    corner = (x0 + b * (size + 0.02), y0 + a * (size + 0.02))
                    ax_conv.add_patch(Rectangle(corner, size, size,
                                                facecolor=_HIGHLIGHT if on else _CELL,
                                                alpha=0.85 if on else 1.0, edgecolor="none"))
    width = (c - 1) * gap_c + 1.0
    arrow = {"arrowstyle": "->"}
    ax_conv.annotate("", xy=(-0.3, -0.05), xytext=(-0.3, n * gap_n - 0.2), arrowprops=arrow)
    ax_conv.text(-0.55, n * gap_n / 2, "N samples", rotation=90, ha="center", va="center")
    ax_conv.annotate("", xy=(width, n * gap_n), xytext=(0, n * gap_n), arrowprops=arrow)
    ax_conv.text(width / 2, n * gap_n + 0.25, "C channels, each an H×W image", ha="center")
    ax_conv.text(width + 0.4, n * gap_n / 2,
                 "μ and σ² of one channel:\nmean over N·H·W values\n"
                 f"(here {n}·{hw}·{hw} = {n * hw * hw});\n"
                 "γ, β: one per channel", va="center", fontsize=9, color=_HIGHLIGHT)
    ax_conv.set(xlim=(-0.9, width + 3.6), ylim=(-1.3, n * gap_n + 0.8))
    ax_conv.set_title("Convolutional (N, C, H, W): spatial BN")
    fig.suptitle("Which values share one mean and variance (blue)", fontsize=12)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.86, bottom=0.02, wspace=0.05)
    return fig


#: The nodes of the BN graph: name -> (position, forward formula, backward formula).
BN_GRAPH_NODES = {
    "x": ((0.0, 0.0), "x  (N, D)", "dx = dxmu + dmu / m"),
    "mu": ((2.4, 2.2), "mu = mean(x)", "dmu = -Σ dxmu"),
    "xmu": ((4.2, 0.0), "xmu = x - mu", "dxmu = dx_hat·inv_std\n+ 2·xmu·dsq"),
    "sq": ((5.9, 2.2), "sq = xmu²", "dsq = dvar / m"),
    "var": ((8.9, 2.2), "var = mean(sq)", "dvar = dstd / (2·std)"),
    "std": ((11.9, 2.2), "std = √(var + ε)", "dstd = -dinv_std / std²"),
    "inv_std": ((14.9, 2.2), "inv_std = 1 / std", "dinv_std = Σ dx_hat·xmu"),
    "x_hat": ((10.4, 0.0), "x_hat = xmu·inv_std", "dx_hat = dout·γ"),
    "out": ((14.9, 0.0), "out = γ·x_hat + β", "dγ = Σ dout·x_hat\ndβ = Σ dout"),
}

_EDGES = [("x", "mu"), ("x", "xmu"), ("mu", "xmu"), ("xmu", "sq"), ("sq", "var"),
          ("var", "std"), ("std", "inv_std"), ("xmu", "x_hat"), ("inv_std", "x_hat"),
          ("x_hat", "out")]


def draw_bn_graph():
    """Draw training-mode BN as a computational graph, one box per elementary operation.

    Each box shows the node's forward formula (black) and what its backward step
    computes (orange). Arrows run forward; gradients run against them. ``xmu`` feeds two
    nodes, so its gradient is the sum of two contributions; Σ sums over the batch.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Introduced in notebook 04.
    """
    fig, ax = plt.subplots(figsize=(12, 4.4))
    ax.axis("off")
    box_w, box_h = 2.7, 1.25
    orange = COLORS["plain"]
    for (x0, y0), fwd, bwd in BN_GRAPH_NODES.values():
        ax.add_patch(FancyBboxPatch((x0 - box_w / 2, y0 - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.05,rounding_size=0.15",
                                    facecolor="white", edgecolor="#444444", lw=1.2))
        ax.text(x0, y0 + 0.27, fwd, ha="center", va="center", fontsize=9.5, fontweight="bold")
        ax.text(x0, y0 - 0.22, bwd, ha="center", va="center", fontsize=8.5, color=orange)

    def anchor(name, toward):
        (x0, y0), _, _ = BN_GRAPH_NODES[name]
        (x1, y1), _, _ = BN_GRAPH_NODES[toward]
        if abs(y1 - y0) < 1e-9:                         # same row: left/right sides
            return (x0 + box_w / 2 * (1 if x1 > x0 else -1), y0)
        return (x0 + (0.4 if x1 > x0 else -0.4), y0 + box_h / 2 * (1 if y1 > y0 else -1))

    for a, b in _EDGES:
        ax.add_patch(FancyArrowPatch(anchor(a, b), anchor(b, a), arrowstyle="-|>",
                                     mutation_scale=12,
                                     color="#444444", lw=1.1, shrinkA=2, shrinkB=2))
    # parameters entering the last node
    (xo, yo), _, _ = BN_GRAPH_NODES["out"]
    for dx, label in ((-0.5, "γ"), (0.5, "β")):
        ax.annotate(label, xy=(xo + dx, yo - box_h / 2), xytext=(xo + dx, yo - 1.45), ha="center",
                    fontsize=11, arrowprops={"arrowstyle": "-|>", "color": "#444444"})
    ax.annotate("", xy=(xo + box_w / 2 + 0.9, yo), xytext=(xo + box_w / 2, yo),
                arrowprops={"arrowstyle": "-|>", "color": "#444444"})
    ax.text(xo + box_w / 2 + 1.0, yo, "loss\n(dout flows\nback in)", va="center", fontsize=8.5)
    ax.text(-1.3, -1.6, "black: forward pass    orange: backward pass (Σ = sum over the batch, "
            "m = batch size)", fontsize=9, color="#444444")
    ax.set(xlim=(-1.5, 18.6), ylim=(-1.9, 3.0))
    ax.set_title("Training-mode BN as a computational graph (one feature; the backward "
                 "pass runs right to left)")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.02)
    return fig


def normalization_set(norm_fn: Callable, shape=(4, 6, 2, 2), index=(1, 2, 0, 0), seed: int = 0):
    """Which outputs move when one input value moves: the values normalized together.

    Perturbs ``x[index]`` and returns a boolean mask of the outputs of ``norm_fn`` that
    change. Those are exactly the values that share a mean and variance with it (the
    perturbed value changes its own output, and through the shared statistics every
    other output of its set). The answer comes from the code, not from a drawing.

    Parameters
    ----------
    norm_fn : callable
        ``norm_fn(x) -> out`` on an (N, C, H, W) array.
    shape : tuple of 4 int, optional
    index : tuple of 4 int, optional
    seed : int, optional

    Returns
    -------
    mask : ndarray of bool, shape ``shape``

    Examples
    --------
    >>> from bnutils import batchnorm_forward
    >>> bn = lambda x: batchnorm_forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]))[0]
    >>> mask = normalization_set(bn, shape=(2, 3, 1, 2), index=(0, 1, 0, 0))
    >>> mask.sum(axis=(0, 2, 3)).tolist()        # all of channel 1, over N, H, W
    [0, 4, 0]

    Introduced in notebook 09.
    """
    if len(shape) != 4 or len(index) != 4:
        raise ValueError(f"shape and index must have 4 entries (N, C, H, W), got {shape} and {index}")
    x = np.random.default_rng(seed).normal(size=shape)
    base = np.asarray(norm_fn(x))
    bumped = x.copy()
    bumped[tuple(index)] += 0.5
    return np.abs(np.asarray(norm_fn(bumped)) - base) > 1e-9


def plot_normalization_sets(masks: dict, captions: dict | None = None, title: str | None = None,
                            color=COLORS["bn"]):
    """Draw each mask as an (N, C, H·W) block of cubes, in the style of Wu & He (2018, Fig. 2).

    N runs to the right, C into the page, H·W (the positions, flattened) upwards; the
    cubes of the mask are coloured. Pick the perturbed index of ``normalization_set`` on
    the visible faces (last sample, first channel) so that the whole set shows.

    Parameters
    ----------
    masks : dict of str -> bool ndarray, shape (N, C, H, W)
        Title -> mask from ``normalization_set``.
    captions : dict of str -> str, optional
        A line under each block (e.g. the axes the statistics are taken over).
    title : str, optional
        A title above all the blocks.
    color : str, optional
        Colour of the cubes that are normalized together.

    Returns
    -------
    fig : matplotlib Figure

    Introduced in notebook 09.
    """
    from matplotlib.colors import LightSource

    if not masks:
        raise ValueError("masks must hold at least one mask")
    light = LightSource(azdeg=135, altdeg=50)           # from the front right: both faces lit
    captions = captions or {}
    fig = plt.figure(figsize=(2.9 * len(masks), 3.4))
    for i, (name, mask) in enumerate(masks.items()):
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 4:
            raise ValueError(f"masks[{name!r}] must be 4-D (N, C, H, W), got shape {mask.shape}")
        ax = fig.add_subplot(1, len(masks), i + 1, projection="3d")
        N, C, H, W = mask.shape
        block = mask.reshape(N, C, H * W)                  # voxel axes: x = N, y = C, z = H·W
        colors = np.empty(block.shape, dtype=object)
        colors[...] = "#e6e6e6"
        colors[block] = color
        ax.voxels(np.ones(block.shape, dtype=bool), facecolors=colors, edgecolor="#666666",
                  linewidth=0.4, shade=True, lightsource=light)
        ax.set_box_aspect((N, C, H * W))
        ax.view_init(elev=22, azim=-58)
        ax.set_axis_off()
        ax.text(N / 2, -0.6, -0.2, "N", ha="center", va="top", fontsize=10)
        ax.text(N + 0.4, C / 2, -0.2, "C", ha="left", va="top", fontsize=10)
        ax.text(-0.4, 0, H * W / 2, "H·W", ha="right", va="center", fontsize=10)
        ax.set_title(name, fontsize=11, pad=-4)
        if name in captions:
            ax.text2D(0.5, -0.02, captions[name], transform=ax.transAxes, ha="center", va="top",
                      fontsize=9)
    top = 0.92
    if title:
        fig.suptitle(title, fontsize=12)
        top = 0.82
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.14, top=top, wspace=0.0)
    return fig
