"""Notebook 01's explorer: feature-scale ratio and learning rate → loss contours and GD path.

The data are ``bnutils.data.scaled_problem``: the synthetic cohort of
``bnutils.data.make_cohort`` (cgpa, iq → an aptitude score), standardized with its own
statistics and centred, so the bias drops out and the loss is a function of the two
weights only, with the second feature multiplied by ``scale_ratio``: at ratio 1 the
features are on the same scale, at ratio 10 the second one is ten times wider, as raw
iq is next to raw cgpa.

Introduced in notebook 01.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..data import scaled_problem
from ..lab.plots import COLORS, LINESTYLES
from ..scaling import (
    DescentResult,
    best_fixed_lr,
    condition_number,
    gradient_descent,
    mse_hessian,
)
from .live import nice_limit

__all__ = ["plot_contours", "plot_excess_loss", "scaling_explorer", "show_descent"]

PATH_COLOR = COLORS["plain"]
#: Line styles of the excess-loss curves in order (dashed is taken by the tolerance line).
_CURVE_STYLES = ("-", LINESTYLES["ln"], LINESTYLES["gn"], LINESTYLES["in"])
#: One format for the feature-scale ratio in the slider's readout, the printed line and the
#: figure title, so that all three show the same number (2**3.75 reads 13.45 everywhere).
RATIO_FORMAT = ".4g"


def _window(X, result: DescentResult, pad: float = 0.12):
    """The region to draw: the path (as far as it stays inside the starting contour,
    which GD with a stable rate never leaves) and the minimum, with a margin."""
    H = mse_hessian(X)
    gap0 = max(result.loss[0] - result.loss_star, 1e-12)
    half = np.sqrt(2.0 * gap0 * np.diag(np.linalg.pinv(H)))
    inside = np.all(np.abs(result.path - result.w_star) <= 1.05 * half, axis=1)
    points = np.vstack([result.path[inside], result.path[:1], result.w_star[None]])
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = pad * np.max(hi - lo)
    return lo - margin, hi + margin


def plot_contours(ax, X, y, result: DescentResult, names=("$w_1$", "$w_2$"),
                  max_markers: int = 60, box_aspect: float = 0.8, legend_loc: str = "lower right"):
    """Draw the loss contours around the minimum and the GD path on ``ax`` (equal axes).

    Contours are drawn at excess losses ``L - L*`` spaced geometrically from 1e-3 (yellow,
    innermost) to 1 times the starting gap; the thick grey one passes through the start.
    The legend names both kinds. Equal axis scales keep the geometry GD sees: its steps
    are perpendicular to these contours.

    Parameters
    ----------
    ax : matplotlib Axes
    X, y : ndarray, shapes (N, 2) and (N,)
        The problem ``result`` was run on.
    result : DescentResult
        From ``bnutils.scaling.gradient_descent`` on ``(X, y)``.
    names : pair of str, optional
        Axis labels for the two weights.
    max_markers : int, optional
        Dots mark the first ``max_markers`` iterates; the rest of the path is a line.
    box_aspect : float, optional
        Height / width of the axes box; the window is widened to keep equal scales.
    legend_loc : str, optional
        Where the legend goes (a matplotlib ``loc``): choose a corner the path avoids.

    Introduced in notebook 01.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_contours draws two-feature problems; X has shape {X.shape}")
    lo, hi = _window(X, result)
    # Equal scales on both axes without matplotlib's datalim juggling: fix the box shape
    # and widen the shorter side of the window to match it.
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    if half[1] < box_aspect * half[0]:
        half[1] = box_aspect * half[0]
    else:
        half[0] = half[1] / box_aspect
    ax.set_box_aspect(box_aspect)
    (x0, y0), (x1, y1) = centre - half, centre + half
    g1, g2 = np.meshgrid(np.linspace(x0, x1, 120), np.linspace(y0, y1, 120))
    d = np.stack([g1 - result.w_star[0], g2 - result.w_star[1]], axis=-1)   # (120, 120, 2)
    H = mse_hessian(X)
    excess = 0.5 * np.einsum("...i,ij,...j->...", d, H, d)
    gap0 = max(result.loss[0] - result.loss_star, 1e-12)
    levels = gap0 * np.geomspace(1e-3, 1.0, 10)
    ax.contour(g1, g2, excess, levels=levels, cmap="viridis_r", linewidths=0.8)
    ax.contour(g1, g2, excess, levels=[gap0], colors="0.3", linewidths=1.6)
    path = result.path
    ax.plot(path[:, 0], path[:, 1], "-", color=PATH_COLOR, lw=1.0, label="GD path")
    k = min(len(path), max_markers)
    ax.plot(path[:k, 0], path[:k, 1], "o", color=PATH_COLOR, ms=2.5)
    ax.plot(*path[0], "s", color="k", ms=6, label="start")
    ax.plot(*result.w_star, "*", color="k", ms=12, label="minimum")
    _contour_legend_entries(ax)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.legend(loc=legend_loc, frameon=True, framealpha=0.85, fontsize=8)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])


#: Legend labels of the two kinds of contour line (the figures' text refers to them).
CONTOUR_LABEL = "contours of the loss (yellow: lowest)"
START_CONTOUR_LABEL = "contour through the start"


def _contour_legend_entries(ax) -> None:
    """Empty lines that give the legend an entry for each kind of contour."""
    ax.plot([], [], color=matplotlib.colormaps["viridis_r"](0.6), lw=0.8, label=CONTOUR_LABEL)
    ax.plot([], [], color="0.3", lw=1.6, label=START_CONTOUR_LABEL)


def plot_excess_loss(ax, results: dict, colors: dict | None = None):
    """Excess loss ``(L - L*) / (L(w0) - L*)`` against the step, log scale, one curve each.

    Parameters
    ----------
    ax : matplotlib Axes
    results : dict of str -> DescentResult
        Curve label -> run.
    colors : dict of str -> colour, optional

    Notes
    -----
    Each curve also gets its own line style (solid, dash-dot, dotted, ...; dashed is the
    tolerance line), so that the curves differ without colour.

    Introduced in notebook 01.
    """
    tol = None
    for k, (label, result) in enumerate(results.items()):
        gap0 = max(result.loss[0] - result.loss_star, 1e-300)
        rel = np.maximum((result.loss - result.loss_star) / gap0, 1e-18)
        color = None if colors is None else colors.get(label)
        ax.plot(np.arange(len(rel)), rel, color=color, lw=1.5, ls=_CURVE_STYLES[k % len(_CURVE_STYLES)],
                label=f"{label}: {result.summary()}")
        tol = result.tol
    if tol is not None:
        ax.axhline(tol, color="0.4", ls="--", lw=1)
        # Centred just below the line: every curve stops at the step that crosses the
        # tolerance, so the middle of the axes under the line is always clear (a label at
        # the left edge was crossed by a curve that converges in a few steps).
        ax.text(0.5, tol, "tolerance", transform=ax.get_yaxis_transform(), va="top",
                ha="center", color="0.3", fontsize=8)
    ax.set_yscale("log")
    # Whole steps only: a run that diverges after a few steps would get ticks at 0.5, 1.5 ...
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_ylim(min(tol or 1e-6, 1.0) / 10, 1e2)
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("excess loss (relative to start)")
    ax.legend(loc="upper right")


#: Figure size (inches at 100 dpi) of ``show_descent`` and the explorer.
FIGSIZE = (10, 4.2)
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(y, _pos=None) -> str:
    """Tick label 10ⁿ in plain text, for powers of ten ('' between them)."""
    if y <= 0:
        return ""
    n = np.log10(y)
    return "10" + str(int(round(n))).translate(_SUPERSCRIPT) if abs(n - round(n)) < 1e-9 else ""


def _contour_window(X, result: DescentResult, box_aspect: float, pad: float = 0.08):
    """The explorer's window: the starting contour's bounding box (with a margin), widened to
    ``box_aspect``. It depends on the problem only, not on the learning rate: a stable run
    never leaves the starting contour, so moving the rate keeps the drawn contours."""
    H = mse_hessian(X)
    gap0 = max(result.loss[0] - result.loss_star, 1e-12)
    half = np.sqrt(2.0 * gap0 * np.diag(np.linalg.pinv(H))) * (1 + pad)
    if half[1] < box_aspect * half[0]:
        half[1] = box_aspect * half[0]
    else:
        half[0] = half[1] / box_aspect
    return result.w_star - half, result.w_star + half


class _DescentFigure:
    """Loss contours with the GD path, and the excess loss against the step.

    Built once; ``update`` redraws the contours only when the problem (the ratio)
    changes, and moves the path and the loss curve for every learning rate.
    """

    BOX_ASPECT = 0.8

    def __init__(self, live: bool):
        from .live import LiveFigure

        self.canvas = LiveFigure(FIGSIZE, live=live)
        fig, dyn = self.canvas.fig, self.canvas.dynamic
        self.ax1, self.ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.28)
        self.ax1.set_box_aspect(self.BOX_ASPECT)
        self.path = dyn(self.ax1.plot([], [], "-", color=PATH_COLOR, lw=1.0, label="GD path")[0])
        self.dots = dyn(self.ax1.plot([], [], "o", color=PATH_COLOR, ms=2.5)[0])
        self.start = dyn(self.ax1.plot([], [], "s", color="k", ms=6, label="start")[0])
        self.minimum = dyn(self.ax1.plot([], [], "*", color="k", ms=12, label="minimum")[0])
        _contour_legend_entries(self.ax1)
        self.ax1.legend(loc="lower right", frameon=True, framealpha=0.85, fontsize=8)
        self.contours = []
        self.ratio = None
        self.curve = dyn(self.ax2.plot([], [], color=PATH_COLOR, lw=1.5)[0])
        self.tol_line = self.ax2.axhline(1e-6, color="0.4", ls="--", lw=1)
        # Centred just below the line: every curve stops at the step that crosses the
        # tolerance, so the middle of the axes under the line is always clear.
        self.tol_text = self.ax2.text(0.5, 1e-6, "tolerance", transform=self.ax2.get_yaxis_transform(),
                                      va="top", ha="center", color="0.3", fontsize=8)
        self.ax2.set_yscale("log")
        # plain-text labels 10⁻⁶: mathtext ones make drawing the axis several times slower
        self.ax2.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
        # Whole steps only: a run that diverges after a few steps would get ticks at 0.5, 1.5 ...
        self.ax2.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        self.ax2.set_xlabel("gradient-descent step")
        self.ax2.set_ylabel("excess loss (relative to start)")
        # The run's verdict goes into the title (no legend: it costs more than the curve).
        self.title2 = dyn(self.ax2.set_title(" "), over_static=True)

    def _draw_problem(self, X, result: DescentResult, scale_ratio: float, kappa: float) -> None:
        """Contours, start, minimum and labels: everything that depends on the ratio only."""
        ax = self.ax1
        for cs in self.contours:
            cs.remove()
        (x0, y0), (x1, y1) = _contour_window(X, result, self.BOX_ASPECT)
        # The contours of a quadratic are ellipses: drawn exactly, as lines, instead of
        # contouring a grid (smooth even when the valley is a few pixels high).
        H = mse_hessian(X)
        evals, evecs = np.linalg.eigh(H)
        t = np.linspace(0, 2 * np.pi, 200)
        circle = np.stack([np.cos(t), np.sin(t)])                        # (2, 200)
        unit = evecs @ (circle / np.sqrt(np.maximum(evals, 1e-300))[:, None])
        gap0 = max(result.loss[0] - result.loss_star, 1e-12)
        levels = gap0 * np.geomspace(1e-3, 1.0, 10)
        # coloured as contour(cmap="viridis_r") colours them: linear in the level
        colors = matplotlib.colormaps["viridis_r"]((levels - levels[0]) / (levels[-1] - levels[0]))
        self.contours = []
        for level, color in zip(levels, colors):       # excess = 0.5 dᵀHd = level
            d = np.sqrt(2 * level) * unit
            self.contours += ax.plot(result.w_star[0] + d[0], result.w_star[1] + d[1],
                                     color=color, lw=0.8)
        d = np.sqrt(2 * gap0) * unit                   # the contour through the start, thick
        self.contours += ax.plot(result.w_star[0] + d[0], result.w_star[1] + d[1], color="0.3",
                                 lw=1.6)
        self.start.set_data([result.path[0, 0]], [result.path[0, 1]])
        self.minimum.set_data([result.w_star[0]], [result.w_star[1]])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("$w_1$ (feature 1, std 1)")
        ax.set_ylabel(f"$w_2$ (feature 2, std {scale_ratio:{RATIO_FORMAT}})")
        ax.set_title(f"Loss contours and GD path, ratio {scale_ratio:{RATIO_FORMAT}}, "
                     f"$\\kappa$ = {kappa:.0f}")
        self.ratio = scale_ratio

    def update(self, X, result: DescentResult, scale_ratio: float, lr: float, kappa: float,
               max_markers: int = 60) -> None:
        if scale_ratio != self.ratio:
            self._draw_problem(X, result, scale_ratio, kappa)
        self.canvas.static_key = scale_ratio          # the contours drawn
        path = result.path
        self.path.set_data(path[:, 0], path[:, 1])
        k = min(len(path), max_markers)
        self.dots.set_data(path[:k, 0], path[:k, 1])
        gap0 = max(result.loss[0] - result.loss_star, 1e-300)
        rel = np.maximum((result.loss - result.loss_star) / gap0, 1e-18)
        self.curve.set_data(np.arange(len(rel)), rel)
        verdict = "diverged" if result.diverged else result.summary()
        self.title2.set_text(f"Excess loss at lr {lr:.3g}: {verdict}")
        self.tol_line.set_ydata([result.tol, result.tol])
        self.tol_text.set_y(result.tol)
        # The step axis ends on a round number (nice_limit), so that the drawn axes repeat.
        self.ax2.set_xlim(0, nice_limit(max(len(rel) - 1, 1)))
        self.ax2.set_ylim(min(result.tol, 1.0) / 10, 1e2)


#: The ratio slider's steps, in powers of two: 1, 2^0.25, ..., 2^4 = 16.
RATIO_STEP, RATIO_MAX = 0.25, 4
#: The learning-rate slider's steps, in powers of ten: 10^-3, 10^-2.95, ..., 1.
LR_STEP, LR_MIN = 0.05, -3


def _descent_numbers(scale_ratio: float, lr: float, max_steps: int):
    X, y = scaled_problem(scale_ratio)
    H = mse_hessian(X)
    lam_max = float(np.linalg.eigvalsh(H)[-1])
    result = gradient_descent(X, y, lr=lr, max_steps=max_steps)
    numbers = {
        "scale_ratio": float(scale_ratio),
        "lr": float(lr),
        "kappa": condition_number(H),
        "best_lr": best_fixed_lr(H),
        "max_stable_lr": 2.0 / lam_max,
        "steps": result.steps,
        "diverged": result.diverged,
        "summary": result.summary(),
    }
    return X, result, numbers


def _print_numbers(numbers: dict) -> None:
    # Two lines of at most ~70 characters: a narrow output area wraps them at spaces
    # instead of breaking a number in two.
    print(f"scale ratio {numbers['scale_ratio']:{RATIO_FORMAT}}, condition number "
          f"{numbers['kappa']:.1f}: lr {numbers['lr']:.3g} -> {numbers['summary']}")
    print(f"best fixed lr {numbers['best_lr']:.3g}, diverges above {numbers['max_stable_lr']:.3g}")


def _set_descent(view: _DescentFigure, scale_ratio: float, lr: float, max_steps: int) -> dict:
    """Set both panels for one setting (not shown); returns the numbers."""
    X, result, numbers = _descent_numbers(scale_ratio, lr, max_steps)
    view.update(X, result, scale_ratio, lr, numbers["kappa"])
    return numbers


def _show(view: _DescentFigure, scale_ratio: float, lr: float, max_steps: int) -> dict:
    numbers = _set_descent(view, scale_ratio, lr, max_steps)
    _print_numbers(numbers)
    view.canvas.show()
    return numbers


def show_descent(scale_ratio: float = 4.0, lr: float = 0.05, max_steps: int = 5000,
                 plot: bool = True) -> dict:
    """Run GD on ``scaled_problem(scale_ratio)`` with rate ``lr``; draw and return the numbers.

    Returns
    -------
    dict
        ``scale_ratio``, ``lr``, ``kappa`` (condition number of the Hessian),
        ``best_lr`` (``2/(λmax+λmin)``), ``max_stable_lr`` (``2/λmax``), ``steps``
        (None if not converged), ``diverged`` and ``summary`` (the printed line).

    Introduced in notebook 01.
    """
    if not plot:
        numbers = _descent_numbers(scale_ratio, lr, max_steps)[2]
        _print_numbers(numbers)
        return numbers
    return _show(_DescentFigure(live=False), scale_ratio, lr, max_steps)


def scaling_explorer(max_steps: int = 5000):
    """Sliders for the feature-scale ratio and the learning rate, redrawing ``show_descent``.

    Returns
    -------
    ipywidgets.interactive
        ``w.result`` is the dict returned by ``show_descent`` for the current sliders;
        ``w.live`` is the ``bnutils.widgets.live.LiveFigure`` it redraws in place.

    Introduced in notebook 01.
    """
    import ipywidgets as widgets

    view = _DescentFigure(live=True)

    def update(scale_ratio, lr):
        numbers = _show(view, scale_ratio, lr, max_steps)
        # A new ratio redraws both axes (new contours and step axis), a new learning rate
        # the step axis: prepare the next ratio and learning rate on either side.
        k = round(np.log2(scale_ratio) / RATIO_STEP)
        ratios = [2.0 ** (j * RATIO_STEP) for j in (k - 1, k + 1) if 0 <= j * RATIO_STEP <= RATIO_MAX]
        i = round(np.log10(lr) / LR_STEP)
        lrs = [10.0 ** (j * LR_STEP) for j in (i - 1, i + 1) if LR_MIN <= j * LR_STEP <= 0]
        view.canvas.warm(lambda s: _set_descent(view, *s, max_steps),
                         [(r, lr) for r in ratios] + [(scale_ratio, a) for a in lrs])
        return numbers

    style = {"description_width": "130px"}        # one width: the tracks start together
    layout = widgets.Layout(width="440px")
    w = widgets.interactive(
        update,
        scale_ratio=widgets.FloatLogSlider(value=4.0, base=2, min=0, max=RATIO_MAX, step=RATIO_STEP,
                                           description="feature-scale ratio", style=style,
                                           readout_format=RATIO_FORMAT,
                                           layout=layout, continuous_update=False),
        lr=widgets.FloatLogSlider(value=0.05, base=10, min=LR_MIN, max=0, step=LR_STEP,
                                  description="learning rate", readout_format=".3g",
                                  style=style, layout=layout, continuous_update=False),
    )
    w.live = view.canvas
    return w
