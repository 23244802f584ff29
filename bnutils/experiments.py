"""Training experiments: runs, sweeps, gradient-descent variants, a miniature Figure 1.

Everything here builds models with ``bnutils.models.make_mlp`` and trains them with the
one training loop, ``bnutils.training.train``; this module only sets up runs, records
what they show and draws it. ``data`` is always the 4-tuple
``(X_train, X_test, y_train, y_test)`` returned by ``bnutils.data.load_digits_split``.

* ``run_config`` — one run; ``sweep`` — runs that differ in one setting (learning rate,
  initialization, batch size, …), as a ``SweepResult``; ``format_sweeps``,
  ``plot_sweeps`` show several sweeps side by side (notebooks 05 and 07);
* ``figure1_run``, ``plot_figure1`` — Ioffe & Szegedy's Figure 1 in miniature (notebook 05);
* ``gd_variants``, ``is_stable``, ``largest_stable_lr`` (notebook 05);
* ``swap_norm``, ``train_models``, ``NORM_LABELS`` — put a BN variant where ``make_mlp``
  put BatchNorm, and train several models alike (notebook 07).

The matrices involved are small (batches of 60, layers of 100 units), where one BLAS
thread is faster than several competing for the cores, so the runs here use one
(via threadpoolctl, when it is installed).

Introduced in notebook 05 (and reused in notebook 07).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._validation import (
    as_data_matrix,
    check_int,
    check_labels,
    check_learning_rate,
    check_sequence,
    check_split,
)
from .batchnorm import BatchNorm
from .diagnostics import PercentileRecorder, _check_sequential
from .layers import Layer, Sequential, Sigmoid
from .models import make_mlp
from .plots import COLORS, style
from .training import TrainingHistory, one_blas_thread, train

__all__ = [
    "NORM_LABELS",
    "Figure1Run",
    "RunResult",
    "SweepResult",
    "figure1_run",
    "format_sweeps",
    "gd_variants",
    "is_stable",
    "largest_stable_lr",
    "plot_figure1",
    "plot_gd_variants",
    "plot_sweeps",
    "run_config",
    "sigmoid_input_index",
    "swap_norm",
    "sweep",
    "train_models",
]

#: Display names of ``make_mlp``'s normalizations (its ``norm`` argument), e.g. for a sweep
#: over them.
NORM_LABELS = {None: "no normalization", "bn": "BatchNorm", "ln": "LayerNorm",
               "gn": "GroupNorm"}


_check_data = check_split      # the one check of a (X_train, X_test, y_train, y_test) tuple


def _check_hidden(hidden) -> tuple:
    """``hidden`` as a tuple of widths, each an int ≥ 1 (empty: no hidden layer)."""
    return tuple(check_sequence(hidden, "hidden", check_int, allow_empty=True))


def _num_classes(*ys) -> int:
    return int(max(int(np.max(y)) for y in ys)) + 1


# ----------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    """One training run: its configuration, history and headline numbers.

    Attributes
    ----------
    config : dict
        The keyword arguments of ``run_config`` that defined the run.
    history : TrainingHistory
    model : Sequential
        The trained model.
    final_accuracy : float
        Test accuracy after the last step (0.0 if training diverged).
    final_loss : float
        Mean training loss over the last 10 % of the steps (inf if training diverged).
    """

    config: dict
    history: TrainingHistory
    model: object
    final_accuracy: float
    final_loss: float

    @property
    def diverged(self) -> bool:
        """True if the loss or the parameters became NaN/inf."""
        return self.history.diverged


def _final_loss(history: TrainingHistory, steps: int) -> float:
    if history.diverged or not history.loss:
        return float("inf")
    k = max(1, steps // 10)
    return float(np.mean(history.loss[-k:]))


@one_blas_thread
def run_config(data, *, hidden: Sequence[int] = (100, 100, 100), activation: str = "relu",
               norm: str | None = None, norm_position: str = "before", bias: bool = True,
               init="he", num_groups: int = 4, lr: float = 0.1, steps: int = 200,
               batch_size: int = 60, seed: int = 0, eval_every: int | None = None,
               callback: Callable | None = None, log_every: int | None = None) -> RunResult:
    """Build ``make_mlp([D, *hidden, K], ...)`` and train it with ``train``; one call, one run.

    Parameters
    ----------
    data : tuple
        ``(X_train, X_test, y_train, y_test)``.
    hidden : sequence of int, optional
        Widths of the hidden layers.
    activation, norm, norm_position, bias, init, num_groups :
        Passed to ``make_mlp`` (``norm`` is one of the keys of ``NORM_LABELS``;
        ``num_groups`` matters for ``norm="gn"`` only).
    lr, steps, batch_size :
        Passed to ``train``.
    seed : int, optional
        Seeds both the initial weights and the shuffling.
    eval_every : int, optional
        Evaluate on the test set every so many steps (default: only after the last step).
    callback, log_every :
        Passed to ``train``.

    Returns
    -------
    RunResult

    Raises
    ------
    TypeError
        ``data`` is not the 4-tuple, or ``hidden`` is not a sequence of ints (e.g. a
        string).
    ValueError
        The arrays of ``data`` do not fit together, or a width in ``hidden`` is < 1; and
        whatever ``make_mlp`` and ``train`` refuse.

    Examples
    --------
    >>> from bnutils.data import load_digits_split
    >>> run = run_config(load_digits_split(), norm="bn", lr=0.5, steps=50)
    >>> run.diverged, run.final_accuracy > 0.8
    (False, True)

    Introduced in notebook 05.
    """
    X_train, X_test, y_train, y_test = _check_data(data)
    hidden = _check_hidden(hidden)
    config = dict(hidden=hidden, activation=activation, norm=norm,
                  norm_position=norm_position, bias=bias, init=init, num_groups=num_groups,
                  lr=lr, steps=steps, batch_size=batch_size, seed=seed)
    sizes = [X_train.shape[1], *hidden, _num_classes(y_train, y_test)]
    model = make_mlp(sizes, activation, norm=norm, norm_position=norm_position, bias=bias,
                     init=init, num_groups=num_groups, rng=seed)
    history = train(model, X_train, y_train, lr=lr, steps=steps, batch_size=batch_size,
                    X_test=X_test, y_test=y_test, eval_every=eval_every or steps, seed=seed,
                    callback=callback, log_every=log_every)
    if history.diverged:
        # train() stops at the first non-finite loss; record the test accuracy as 0.
        return RunResult(config, history, model, 0.0, float("inf"))
    return RunResult(config, history, model, history.final_accuracy, _final_loss(history, steps))


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
        _check_hidden(config["hidden"])                   # at once, not at the first run
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

    Each sweep also gets its own marker and line style (``bnutils.plots.style``): "no BN"
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


# ----------------------------------------------------------------------------- GD variants


@one_blas_thread
def gd_variants(data, epochs: int = 3, batch_size: int = 32, lrs: dict | None = None,
                hidden: Sequence[int] = (32,), seed: int = 0) -> dict:
    """Batch, stochastic and mini-batch gradient descent on the same model for equal epochs.

    Batch GD uses all N training samples per update, stochastic GD one, mini-batch GD
    ``batch_size``; every variant sees each sample ``epochs`` times. A small ReLU MLP
    without BN (BN cannot run on a batch of one).

    Parameters
    ----------
    data : tuple
    epochs : int, optional
    batch_size : int, optional
        The mini-batch size.
    lrs : dict, optional
        Learning rate per variant: keys "batch", "stochastic", "mini-batch". Defaults to
        0.5, 0.01 and 0.1 (a smaller step for the noisier, more frequent updates).
    hidden : sequence of int, optional
    seed : int, optional

    Returns
    -------
    dict of str -> RunResult
        Keys "batch", "stochastic", "mini-batch".

    Raises
    ------
    TypeError
        ``epochs`` or ``batch_size`` is not an integer; ``data`` or ``hidden`` has the
        wrong type.
    ValueError
        ``epochs < 1``, or ``batch_size`` not in 1..N (N training samples).

    Introduced in notebook 05.
    """
    X_train = _check_data(data)[0]
    n = len(X_train)
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size", maximum=n)
    hidden = _check_hidden(hidden)
    lrs = {"batch": 0.5, "stochastic": 0.01, "mini-batch": 0.1, **(lrs or {})}
    sizes = {"batch": n, "stochastic": 1, "mini-batch": batch_size}
    return {name: run_config(data, hidden=hidden, lr=lrs[name], batch_size=bs,
                             steps=epochs * (n // bs), seed=seed)
            for name, bs in sizes.items()}


def plot_gd_variants(runs: dict, n_train: int):
    """Training loss against the number of samples processed, for ``gd_variants``' runs.

    Each loss is measured on the batch about to be used, before its update. The
    stochastic curve is a running mean over 50 updates (a single sample's loss jumps
    by orders of magnitude).

    Returns
    -------
    matplotlib Figure

    Introduced in notebook 05.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    methods = {"batch": "plain", "stochastic": "other", "mini-batch": "bn"}    # colour and dashes
    for name, run in runs.items():
        bs = run.config["batch_size"]
        loss = np.asarray(run.history.loss)
        # loss[i] is measured on batch i+1 before its update, after i * bs samples
        seen = np.arange(len(loss)) * bs / n_train
        label = f"{name} (batch {bs}, {len(loss)} updates)"
        if name == "stochastic":
            k = 50
            loss = np.convolve(loss, np.ones(k) / k, mode="valid")
            seen = seen[k - 1:]
            label += f", mean of {k}"
        if name == "stochastic":           # a dense, noisy curve: markers and dots would vanish in it
            kw = style("other", marker=False, linestyle="-")
        else:                              # markers (every few updates) tell the others apart without colour
            kw = style(methods.get(name, "other"), markevery=max(1, len(loss) // 12), ms=5)
        ax.plot(seen, loss, **kw, lw=1.6, label=label)
    ax.set_xlabel("epochs (passes over the training set)")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title("Same data, same number of epochs: how often you update matters")
    ax.legend(loc="lower left")
    return fig


# ----------------------------------------------------------------------------- Figure 1


def sigmoid_input_index(model) -> int:
    """Index of the layer whose output is the input of the model's last ``Sigmoid``.

    For ``make_mlp(..., "sigmoid")`` that is the last hidden ``Linear`` (no BN) or the
    last ``BatchNorm`` (BN before the activation).

    Introduced in notebook 05.
    """
    _check_sequential(model)
    idx = [i for i, layer in enumerate(model.layers) if isinstance(layer, Sigmoid)]
    if not idx or idx[-1] == 0:
        raise ValueError("model has no Sigmoid layer with a layer before it")
    return idx[-1] - 1


@dataclass
class Figure1Run:
    """One run of the Figure-1 miniature.

    Attributes
    ----------
    result : RunResult
    steps : ndarray, shape (R,)
        Steps at which the percentiles were recorded (0 = before training).
    percentiles : ndarray, shape (R, 3)
        15th, 50th and 85th percentiles of the sigmoid input at those steps.
    """

    result: RunResult
    steps: np.ndarray
    percentiles: np.ndarray

    @property
    def history(self) -> TrainingHistory:
        return self.result.history


@one_blas_thread
def figure1_run(data, norm: str | None, *, steps: int = 1200, lr: float = 0.1,
                batch_size: int = 60, unit: int = 0, record_every: int = 10,
                eval_every: int = 20, seed: int = 0, log_every: int | None = None) -> Figure1Run:
    """Train the 3×100 sigmoid network of Ioffe & Szegedy's Figure 1, recording a sigmoid input.

    ``make_mlp([D, 100, 100, 100, K], "sigmoid", norm=norm, init="lecun")``, trained by
    SGD; the test accuracy is recorded every ``eval_every`` steps and the 15/50/85th
    percentiles of unit ``unit``'s input to the last hidden sigmoid every
    ``record_every`` steps, starting before the first update: a
    ``bnutils.diagnostics.PercentileRecorder`` in mode ``"batch_stats"`` over the whole
    test set (BN normalizes it with its own statistics, as during training).

    Parameters
    ----------
    data : tuple
    norm : None or "bn"
    steps, lr, batch_size, seed, log_every :
        Passed to ``train``.
    unit : int, optional
    record_every, eval_every : int, optional

    Returns
    -------
    Figure1Run

    Raises
    ------
    TypeError
        ``unit``, ``record_every`` or ``eval_every`` is not an integer; ``data`` is not
        the 4-tuple.
    ValueError
        ``norm`` is not None or "bn"; ``unit < 0``, ``unit`` ≥ 100 (the layer's width),
        ``record_every < 1`` or ``eval_every < 1``.

    Introduced in notebook 05.
    """
    if norm not in (None, "bn"):
        raise ValueError(f"norm must be None or 'bn', got {norm!r}")
    X_train, X_test, y_train, y_test = _check_data(data)
    unit = check_int(unit, "unit", minimum=0, maximum=99)
    record_every = check_int(record_every, "record_every")
    eval_every = check_int(eval_every, "eval_every")
    probe_model = make_mlp([X_train.shape[1], 100, 100, 100, _num_classes(y_train, y_test)],
                           "sigmoid", norm=norm, init="lecun", rng=seed)
    # The whole test set in training mode with its own batch statistics (running
    # statistics untouched): what the sigmoid sees during training, on a fixed batch.
    recorder = PercentileRecorder(sigmoid_input_index(probe_model), unit, mode="batch_stats",
                                  x=X_test, every=record_every)
    recorder(0, probe_model)  # before training: make_mlp with the same seed builds the same net
    result = run_config(data, hidden=(100, 100, 100), activation="sigmoid", norm=norm,
                        init="lecun", lr=lr, steps=steps, batch_size=batch_size, seed=seed,
                        eval_every=eval_every, callback=recorder, log_every=log_every)
    return Figure1Run(result, np.array(recorder.steps), recorder.values)


def plot_figure1(plain: Figure1Run, bn: Figure1Run):
    """Three panels after Ioffe & Szegedy (2015), Figure 1: (a) test accuracy, (b, c) percentiles.

    (b) and (c) share their y axis, so the two distributions can be compared directly.

    Returns
    -------
    matplotlib Figure

    Introduced in notebook 05.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.4))
    ax = axes[0]
    for run, label, method in ((plain, "without BN", "plain"), (bn, "with BN", "bn")):
        ax.plot(run.history.eval_steps, run.history.test_accuracy,
                **style(method, marker=len(run.history.eval_steps) <= 30, ms=4), label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("(a) test accuracy")
    ax.legend(loc="lower right")
    lo = min(plain.percentiles.min(), bn.percentiles.min())
    hi = max(plain.percentiles.max(), bn.percentiles.max())
    pad = 0.08 * (hi - lo)
    for ax, run, title, color in ((axes[1], plain, "(b) without BN", COLORS["plain"]),
                                  (axes[2], bn, "(c) with BN", COLORS["bn"])):
        p = run.percentiles
        ax.fill_between(run.steps, p[:, 0], p[:, 2], color=color, alpha=0.18, lw=0,
                        label="15th-85th percentile")
        ax.plot(run.steps, p[:, 1], color=color, lw=1.8, label="median")
        ax.plot(run.steps, p[:, 0], color=color, lw=0.8)
        ax.plot(run.steps, p[:, 2], color=color, lw=0.8)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("training step")
        ax.set_ylabel("input of one sigmoid")
        ax.set_title(f"{title}: one sigmoid's input")
    axes[1].legend(loc="upper left")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- stability


def is_stable(history: TrainingHistory, num_classes: int, last: int = 10) -> bool:
    """Did a run train stably? No divergence, and a final loss below guessing's ``ln K``.

    "Final loss" is the mean training loss of the last ``last`` steps. A classifier that
    outputs the uniform distribution over K classes has cross-entropy ``ln K``, so a run
    whose loss stays above it did not diverge but learned nothing.

    Raises
    ------
    TypeError
        ``history`` is not a TrainingHistory, or ``num_classes`` / ``last`` is not an
        integer.
    ValueError
        ``num_classes < 1`` or ``last < 1``.

    Examples
    --------
    >>> h = TrainingHistory(steps=[1, 2], loss=[2.5, 1.0])
    >>> is_stable(h, num_classes=10, last=1)
    True

    Introduced in notebook 05.
    """
    if not isinstance(history, TrainingHistory):
        raise TypeError(f"history must be a TrainingHistory, got {type(history).__name__}")
    num_classes = check_int(num_classes, "num_classes")
    last = check_int(last, "last")
    if history.diverged or not history.loss:
        return False
    final = float(np.mean(history.loss[-last:]))
    return bool(np.isfinite(final) and final < math.log(num_classes))


@one_blas_thread
def largest_stable_lr(make_model: Callable, lrs, X, y, *, steps: int = 100,
                      batch_size: int = 60, seed: int = 0):
    """The largest learning rate in ``lrs`` at which a fresh model trains stably (``is_stable``).

    Every learning rate gets a new model from ``make_model()`` and ``steps`` steps of
    ``train(model, X, y, lr=lr, steps=steps, batch_size=batch_size, seed=seed)``.

    Parameters
    ----------
    make_model : callable
        ``make_model()`` returns a fresh model.
    lrs : sequence of float ≥ 0
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    steps, batch_size, seed : int, optional
        Passed to ``train``.

    Returns
    -------
    float or None
        None if no learning rate is stable.

    Raises
    ------
    TypeError
        ``make_model`` is not a function (a model itself is refused: every learning rate
        needs a fresh one), ``lrs`` is not a sequence of numbers.
    ValueError
        ``lrs`` is empty or holds a negative/non-finite rate, ``X`` is not a finite
        (N, D) array, ``y`` not N integer labels.

    Introduced in notebook 05.
    """
    if not callable(make_model) or hasattr(make_model, "forward"):   # (a model is callable too)
        raise TypeError(f"make_model must be a function that builds a fresh model (e.g. "
                        f"lambda: make_mlp(...)), got {type(make_model).__name__}")
    check_sequence(lrs, "lrs", check_learning_rate)    # (the given values are returned as given)
    X = as_data_matrix(X, "X")
    y = check_labels(y, len(X))
    best = None
    num_classes = _num_classes(y)
    for lr in sorted(lrs):
        history = train(make_model(), X, y, lr=lr, steps=steps, batch_size=batch_size, seed=seed)
        if is_stable(history, num_classes):
            best = lr
    return best


# ----------------------------------------------------------------------------- BN variants in place of BN


def swap_norm(model: Sequential, factory: Callable[[int], Layer]) -> Sequential:
    """Replace every ``BatchNorm`` layer of ``model`` by ``factory(num_features)``, in place.

    Build the network with ``make_mlp(..., norm="bn")`` and swap in a variant
    (``NoisyBatchNorm``, ``ShardedBatchNorm``, ``BatchRenorm``, …): the weights stay
    exactly those of the BN network with the same seed.

    Parameters
    ----------
    model : Sequential
    factory : callable
        ``factory(num_features) -> Layer``.

    Returns
    -------
    Sequential
        The same ``model`` (for chaining).

    Examples
    --------
    >>> from bnutils.bn_variants import ShardedBatchNorm
    >>> net = swap_norm(make_mlp([4, 8, 2], norm="bn"), lambda d: ShardedBatchNorm(d, 2))
    >>> net[1]
    ShardedBatchNorm(8, num_devices=2, sync=False)

    Introduced in notebook 07.
    """
    _check_sequential(model)
    if not callable(factory):
        raise TypeError(f"factory must be callable as factory(num_features), got {factory!r}")
    found = False
    for i, layer in enumerate(model.layers):
        if isinstance(layer, BatchNorm):
            model.layers[i] = factory(layer.num_features)
            found = True
    if not found:
        raise ValueError("model has no BatchNorm layer to replace; build it with norm='bn'")
    return model


@one_blas_thread
def train_models(models: dict, X, y, X_test=None, y_test=None, *, callbacks: dict | None = None,
                 **train_kwargs) -> dict:
    """Train each model of ``models`` with ``bnutils.training.train`` and the same settings.

    Parameters
    ----------
    models : dict of str -> Layer
        Label -> freshly built model (trained in place).
    X, y : training data
    X_test, y_test : ndarray, optional
        Evaluated every ``eval_every`` steps (see ``train``).
    callbacks : dict of str -> callable, optional
        A ``train`` callback for some of the labels.
    **train_kwargs
        ``lr``, ``steps``, ``batch_size``, ``eval_every``, ``seed``, … passed to ``train``.

    Returns
    -------
    dict of str -> TrainingHistory
        By the same labels, in the same order.

    Examples
    --------
    >>> X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> runs = train_models({"plain": make_mlp([3, 8, 2]), "BN": make_mlp([3, 8, 2], norm="bn")},
    ...                     X, y, X, y, lr=0.1, steps=10, batch_size=10, eval_every=5)
    >>> list(runs), runs["BN"].eval_steps
    (['plain', 'BN'], [5, 10])

    Introduced in notebook 07.
    """
    if not isinstance(models, dict) or not models:
        raise TypeError("models must be a non-empty dict mapping a label to a model")
    callbacks = callbacks or {}
    unknown = set(callbacks) - set(models)
    if unknown:
        raise ValueError(f"callbacks for labels that are not in models: {sorted(unknown)}")
    return {label: train(model, X, y, X_test=X_test, y_test=y_test,
                         callback=callbacks.get(label), **train_kwargs)
            for label, model in models.items()}
