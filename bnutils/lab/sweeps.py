"""Sweeps: runs that differ in one setting, side by side.

``sweep`` repeats ``bnutils.lab.runs.run_config`` over the values of one setting
(learning rate, initialization, batch size, …) and random seeds, as a ``SweepResult``;
``format_sweeps`` prints several sweeps as one table and ``plot_sweeps`` draws them
(notebooks 05 and 07).

Introduced in notebook 05 (and reused in notebook 07).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..training import one_blas_thread
from .plots import style
from .runs import check_hidden, run_config

__all__ = [
    "SweepResult",
    "format_sweeps",
    "plot_sweeps",
    "sweep",
]


# ----------------------------------------------------------------------------- sweeps


@dataclass
class SweepResult:
    """Runs that differ in one setting (and the seed): what ``sweep`` returns.

    Compare several normalizations (or other fixed settings) with one sweep each, in a
    dict by label, as ``format_sweeps`` and ``plot_sweeps`` expect.

    Attributes
    ----------
    param : str
        The ``run_config`` argument that was varied (e.g. ``"lr"``, ``"init"``,
        ``"batch_size"``).
    values : list
        Its values, in order.
    seeds : tuple of int
    accuracy, loss : ndarray, shape (len(values), len(seeds))
        Final test accuracy and final training loss of each run.
    diverged : ndarray of bool, shape (len(values), len(seeds))
    config : dict
        The settings shared by all runs.
    """

    param: str
    values: list
    seeds: tuple
    accuracy: np.ndarray
    loss: np.ndarray
    diverged: np.ndarray
    config: dict = field(default_factory=dict)

    @property
    def mean_accuracy(self) -> np.ndarray:
        """Mean test accuracy over the seeds, one per value (diverged runs count as 0)."""
        return self.accuracy.mean(axis=1)


@one_blas_thread
def sweep(data, param: str, values, *, seeds: Sequence[int] = (0,), **config) -> SweepResult:
    """Run ``run_config`` for every value of one setting and every seed.

    Runs with the same seed start from the same weights and shuffle the data the same
    way, so within one seed only the swept setting differs. A sweep over
    ``"batch_size"``, one per normalization, is Wu & He's (2018) Figure 1 in miniature
    (notebook 07).

    Parameters
    ----------
    data : tuple
        ``(X_train, X_test, y_train, y_test)``.
    param : str
        A keyword argument of ``run_config`` (e.g. ``"lr"``, ``"init"``, ``"batch_size"``,
        ``"norm_position"``).
    values : sequence, length V
    seeds : sequence of int, length S, optional
    **config
        The other ``run_config`` settings, shared by all runs.

    Returns
    -------
    SweepResult
        ``accuracy``, ``loss``, ``diverged`` of shape (V, S).

    Raises
    ------
    TypeError
        ``values`` or ``seeds`` is not a sequence (a string is refused: it is not a list
        of values); and whatever ``run_config`` refuses for a value or setting.
    ValueError
        ``param`` is not a setting of ``run_config``, a setting is unknown or given twice,
        or ``values`` / ``seeds`` is empty.

    Examples
    --------
    >>> from bnutils.data import load_digits_split
    >>> from bnutils.lab.runs import NORM_LABELS
    >>> res = sweep(load_digits_split(), "lr", [0.1, 1.0], steps=20, hidden=(16,))
    >>> res.accuracy.shape
    (2, 1)
    >>> by_norm = {norm: sweep(load_digits_split(), "batch_size", [2, 16], norm=norm,
    ...                        hidden=(16,), steps=20) for norm in (None, "bn")}
    >>> print(format_sweeps({NORM_LABELS[n]: res for n, res in by_norm.items()}))
    batch_size  no normalization  BatchNorm
    ----------  ----------------  ---------
    2           ...               ...
    16          ...               ...

    Introduced in notebook 05 (the batch-size sweep in notebook 07).
    """
    allowed = set(inspect.signature(run_config).parameters) - {"data"}
    if param not in allowed or param in ("seed", "callback", "log_every", "eval_every"):
        raise ValueError(f"param must be a setting of run_config such as 'lr' or 'init'; got {param!r}")
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"unknown run_config settings: {sorted(unknown)}")
    if param in config:
        raise ValueError(f"{param!r} is the swept setting; do not also pass it as a fixed setting")
    for name, given in (("values", values), ("seeds", seeds)):
        if isinstance(given, (str, bytes)) or not hasattr(given, "__iter__"):
            raise TypeError(f"{name} must be a sequence (e.g. a list), got {given!r}")
    values, seeds = list(values), tuple(seeds)
    if not values or not seeds:
        raise ValueError("values and seeds must not be empty")
    if "hidden" in config:
        check_hidden(config["hidden"])                   # at once, not at the first run
    shape = (len(values), len(seeds))
    acc, loss, div = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    for i, v in enumerate(values):
        for j, s in enumerate(seeds):
            r = run_config(data, seed=s, **{param: v}, **config)
            acc[i, j], loss[i, j], div[i, j] = r.final_accuracy, r.final_loss, r.diverged
    return SweepResult(param, values, seeds, acc, loss, div, dict(config))


def _cell(res: SweepResult, i: int) -> str:
    if res.diverged[i].all():
        return "diverged"
    a = res.accuracy[i]
    text = f"{a.mean():.3f}"
    if len(a) > 1:
        text += f" ({a.min():.2f}-{a.max():.2f})"
    if res.diverged[i].any():
        text += f" {int(res.diverged[i].sum())} div."
    return text


def format_sweeps(results: dict, value_format: str = "{:g}") -> str:
    """A text table of final test accuracies: one row per value, one column per sweep.

    With several seeds a cell shows the mean and, in brackets, the range over seeds.

    Parameters
    ----------
    results : dict of str -> SweepResult
        The sweeps to compare (same ``param`` and ``values``), by column label.
    value_format : str, optional
        Format of the swept values.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        ``results`` is not a dict, or one of its values is not a SweepResult.
    ValueError
        ``results`` is empty, or its sweeps vary different settings or values.

    Introduced in notebook 05.
    """
    if not isinstance(results, dict):
        raise TypeError(f"results must be a dict of label -> SweepResult, got "
                        f"{type(results).__name__}")
    if not results:
        raise ValueError("results must contain at least one SweepResult")
    first = next(iter(results.values()))
    for label, res in results.items():
        if not isinstance(res, SweepResult):
            raise TypeError(f"results[{label!r}] is a {type(res).__name__}, not a SweepResult")
        if res.values != first.values or res.param != first.param:
            raise ValueError("all sweeps in one table must vary the same setting over the same values")
    rows = [[first.param] + list(results)]
    for i, v in enumerate(first.values):
        rows.append([value_format.format(v)] + [_cell(res, i) for res in results.values()])
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_sweeps(ax, results: dict, colors: dict | None = None, logx: bool = True):
    """Final test accuracy against the swept value, one line per sweep; diverged runs as ×.

    Parameters
    ----------
    ax : matplotlib Axes
    results : dict of str -> SweepResult
    colors : dict of str -> colour, optional
        By label; defaults to the course colours for "no BN" / "BN".
    logx : bool, optional

    Returns
    -------
    ax

    Notes
    -----
    With more than one seed, a band shows the lowest to the highest accuracy of the
    seeds; like the line, it stops short of a value at which every seed diverged.

    Each sweep also gets its own marker and line style (``bnutils.lab.plots.style``): "no BN"
    and "BN" those of "plain" and "bn", any other label the next method's, so that the
    lines differ without colour.

    Introduced in notebook 05.
    """
    known = {"no BN": "plain", "BN": "bn"}
    spare = iter([m for m in ("bn", "plain", "ln", "gn", "in")
                  if m not in {known.get(label) for label in results}])
    colors = colors or {}
    for label, res in results.items():
        x = np.asarray(res.values, dtype=float)
        kw = style(known.get(label) or next(spare, "other"))
        color = kw["color"] = colors.get(label, kw["color"])
        bad = res.diverged.all(axis=1)
        mean = np.where(bad, np.nan, res.mean_accuracy)
        ax.plot(x, mean, **kw, label=label)
        if len(res.seeds) > 1:
            # The band stops where the line does: drawn on to a value where every seed
            # diverged it would be a sliver (or a faint stray edge) that nothing explains.
            ax.fill_between(x, res.accuracy.min(axis=1), res.accuracy.max(axis=1), where=~bad,
                            color=color, alpha=0.15, lw=0)
        if bad.any():
            ax.plot(x[bad], np.zeros(bad.sum()), "x", color=color, ms=10, mew=2.5,
                    label=f"{label}: diverged (NaN)")
    if logx:
        ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("test accuracy")
    ax.legend()
    return ax
