"""Gradient-descent variants and the largest learning rate that trains stably.

``gd_variants`` trains one network by full-batch, mini-batch and stochastic gradient
descent (``plot_gd_variants`` draws the three); ``is_stable`` says whether a run stayed
finite and learned, ``largest_stable_lr`` finds the largest learning rate of a list at
which a fresh model does (notebook 05).

Introduced in notebook 05.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .._validation import (
    as_data_matrix,
    check_int,
    check_labels,
    check_learning_rate,
    check_sequence,
    check_split,
)
from ..training import TrainingHistory, one_blas_thread, train
from .plots import style
from .runs import check_hidden, num_classes, run_config

__all__ = [
    "gd_variants",
    "is_stable",
    "largest_stable_lr",
    "plot_gd_variants",
]


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
    X_train = check_split(data)[0]
    n = len(X_train)
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size", maximum=n)
    hidden = check_hidden(hidden)
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
    classes = num_classes(y)
    for lr in sorted(lrs):
        history = train(make_model(), X, y, lr=lr, steps=steps, batch_size=batch_size, seed=seed)
        if is_stable(history, classes):
            best = lr
    return best
