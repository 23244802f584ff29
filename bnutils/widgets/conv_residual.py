"""Explorer for notebook 08: a residual network at initialization, by depth and kind of branch.

For a fully connected residual network (``bnutils.residual.make_resnet``) of the chosen
depth and branch, one batch of the digits goes forward and one gradient goes back; the
figure shows the variance of the residual stream after every block on a log scale
(with the two reference laws, doubling per block and one unit per block), and the
title gives the final variance and the norm of the gradient that reaches the input.

Introduced in notebook 08.
"""

from __future__ import annotations

import functools

import numpy as np

from .._validation import check_int
from ..lab.plots import COLORS
from ..residual import gradient_norms, make_resnet, stream_variances

__all__ = ["BRANCH_LABELS", "init_profile", "plot_init_profile", "residual_init_explorer"]

MAX_DEPTH = 64

#: The explorer's choices: label -> ``make_resnet`` branch.
BRANCH_LABELS = {
    "none": "none",
    "BN in branch": "bn",
    "zero-init γ": "bn_zero_gamma",
    "SkipInit": "skipinit",
}

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(y, _pos=None) -> str:
    """Tick label 10ⁿ in plain text (mathtext labels made the redraw about 3× slower)."""
    return "10" + str(int(round(np.log10(y)))).translate(_SUPERSCRIPT) if y > 0 else ""


_COLOR = {"none": COLORS["plain"], "bn": COLORS["bn"], "bn_zero_gamma": COLORS["ln"],
          "skipinit": COLORS["gn"]}


@functools.lru_cache(maxsize=1)
def _batch(n: int = 64, seed: int = 0):
    """A fixed batch of digits (standardized pixels) and their labels."""
    from ..data import load_digits_split

    X, _, y, _ = load_digits_split(seed=seed)
    return X[:n], y[:n]


@functools.lru_cache(maxsize=512)
def _profile(depth: int, branch: str, width: int, seed: int):
    x, y = _batch()
    net = make_resnet(depth, branch, width=width, rng=seed)
    variances = stream_variances(net, x)
    weight_norms, input_norm = gradient_norms(net, x, y)
    return variances, weight_norms, input_norm


def init_profile(depth: int = 32, branch: str = "bn", width: int = 16, seed: int = 0) -> dict:
    """The residual stream's variance per block and the input gradient norm, at initialization.

    Parameters
    ----------
    depth : int in 1..64
        Number of residual blocks.
    branch : str
        A ``make_resnet`` branch: ``"none"``, ``"bn"``, ``"bn_zero_gamma"``,
        ``"skipinit"`` (or ``"bn_start"``).
    width : int, optional
        Width of the residual stream.
    seed : int, optional
        Seeds the weights.

    Returns
    -------
    dict
        ``variances`` (depth + 1,): the stream's variance entering block 1 and after each
        block; ``final_variance``: the last of them; ``growth``: final / initial variance;
        ``input_grad_norm``: ‖∂loss/∂x‖ for a batch of 64 digits; ``first_weight_grad``:
        ‖∂loss/∂W‖ of the stem.

    Examples
    --------
    >>> p = init_profile(8, "bn_zero_gamma")
    >>> p["growth"]
    1.0

    Introduced in notebook 08.
    """
    depth = check_int(depth, "depth")
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be ≤ {MAX_DEPTH}, got {depth}")
    variances, weight_norms, input_norm = _profile(depth, branch, check_int(width, "width"),
                                                   int(seed))
    return {
        "variances": variances.copy(),
        "final_variance": float(variances[-1]),
        "growth": float(variances[-1] / variances[0]),
        "input_grad_norm": float(input_norm),
        "first_weight_grad": float(weight_norms[0]),
    }


def plot_init_profile(profile: dict, depth: int, branch: str, label: str | None = None):
    """One panel: the stream's variance against the block index, on a log scale.

    Returns
    -------
    matplotlib Figure

    Introduced in notebook 08.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.16, top=0.9)
    k = np.arange(depth + 1)
    v = profile["variances"]
    v0 = v[0]
    ax.plot(k, v0 * 2.0 ** k, ls=":", color=COLORS["theory"], lw=1, label="doubling per block")
    ax.plot(k, v0 + k, ls="--", color=COLORS["theory"], lw=1, label="+1 per block")
    ax.plot(k, v, "-", color=_COLOR.get(branch, COLORS["other"]), lw=1.8,
            label=label or branch)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
    ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
    ax.yaxis.set_minor_locator(NullLocator())        # fewer artists: a faster redraw
    ax.set_ylim(0.5 * min(v.min(), v0), max(1e3, 4.0 * v.max()))   # ≥ 3 decades, all of v
    ax.set_xlim(0, depth)
    ax.set_xlabel("residual block k")
    ax.set_ylabel("variance of the stream (log scale)")
    ax.legend(loc="upper left", fontsize=8, frameon=True, framealpha=0.9, edgecolor="none")
    ax.set_title(f"{label or branch}, {depth} blocks: variance {profile['final_variance']:.3g} "
                 f"(×{profile['growth']:.3g}), input gradient ‖∂L/∂x‖ = "
                 f"{profile['input_grad_norm']:.3g}", fontsize=10)
    return fig


class _InitProfileView:
    """The explorer's figure, built once (``bnutils.widgets.live.LiveFigure``).

    The axes are fixed per branch: blocks 0 to ``MAX_DEPTH`` and the variance range of the
    deepest network of that branch, so that moving the depth redraws only the curve and
    the title over a stored background (a fresh log-scale figure took ~100 ms to draw).
    """

    def __init__(self):
        from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

        from .live import LiveFigure

        self.canvas = LiveFigure((6.4, 3.4))
        fig = self.canvas.fig
        ax = self.ax = fig.subplots()
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.16, top=0.9)
        self.theory = [ax.plot([], [], ls=":", color=COLORS["theory"], lw=1, label="doubling per block")[0],
                       ax.plot([], [], ls="--", color=COLORS["theory"], lw=1, label="+1 per block")[0]]
        self.curve = self.canvas.dynamic(ax.plot([], [], "-", lw=1.8)[0])
        self.title = self.canvas.dynamic(ax.set_title("", fontsize=10), over_static=True)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
        ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_xlim(0, MAX_DEPTH)
        ax.set_xlabel("residual block k")
        ax.set_ylabel("variance of the stream (log scale)")
        self.branch = None

    def update(self, profile: dict, depth: int, branch: str, label: str, width: int, seed: int):
        if branch != self.branch:        # new axes range, legend and colour: a new background
            deepest = init_profile(MAX_DEPTH, branch, width, seed)["variances"]
            v0 = deepest[0]
            k = np.arange(MAX_DEPTH + 1)
            self.theory[0].set_data(k, v0 * 2.0 ** k)
            self.theory[1].set_data(k, v0 + k)
            self.curve.set_color(_COLOR.get(branch, COLORS["other"]))
            self.curve.set_label(label)
            self.ax.set_ylim(0.5 * min(deepest.min(), v0), max(1e3, 4.0 * deepest.max()))
            if self.ax.get_legend() is not None:
                self.ax.get_legend().remove()
            self.ax.legend(handles=[*self.theory, self.curve], loc="upper left", fontsize=8,
                           frameon=True, framealpha=0.9, edgecolor="none")
            self.canvas.static_key = self.branch = branch
        self.curve.set_data(np.arange(depth + 1), profile["variances"])
        self.title.set_text(f"{label}, {depth} blocks: variance {profile['final_variance']:.3g} "
                            f"(×{profile['growth']:.3g}), input gradient ‖∂L/∂x‖ = "
                            f"{profile['input_grad_norm']:.3g}")


def residual_init_explorer(width: int = 16, seed: int = 0):
    """A depth slider and a choice of branch over the residual network at initialization.

    Returns
    -------
    ipywidgets.interactive
        Controls "depth" and "normalization"; ``w.result`` is the dict of numbers the
        figure shows (``final_variance``, ``growth``, ``input_grad_norm``); ``w.live`` is
        the ``bnutils.widgets.live.LiveFigure`` it redraws in place.

    Introduced in notebook 08.
    """
    import ipywidgets as widgets

    view = _InitProfileView()

    def set_curve(depth, normalization):
        label = next(k for k, v in BRANCH_LABELS.items() if v == normalization)
        profile = init_profile(depth, normalization, width, seed)
        view.update(profile, depth, normalization, label, width, seed)
        return profile

    def show(depth=32, normalization="bn"):
        profile = set_curve(depth, normalization)
        view.canvas.show()
        # Another branch redraws the axes (its own range and legend): prepare the others.
        view.canvas.warm(lambda b: set_curve(depth, b),
                         [b for b in BRANCH_LABELS.values() if b != normalization])
        return {k: profile[k] for k in ("final_variance", "growth", "input_grad_norm")}

    style = {"description_width": "initial"}
    w = widgets.interactive(
        show,
        depth=widgets.IntSlider(value=32, min=1, max=MAX_DEPTH, step=1, description="depth",
                                continuous_update=False, style=style),
        normalization=widgets.Dropdown(options=list(BRANCH_LABELS.items()), value="bn",
                                       description="normalization", style=style),
    )
    w.live = view.canvas
    return w
