"""Ioffe & Szegedy's Figure 1 in miniature: test accuracy, and one sigmoid input's
percentiles, over training with and without BN (notebook 05).

``figure1_run`` trains ``make_mlp([D, 100, 100, 100, K], "sigmoid", ...)`` and records the
last sigmoid's input with ``bnutils.lab.recorders.PercentileRecorder``; ``plot_figure1``
draws the two runs as the paper's panels (a)–(c).

Introduced in notebook 05.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int, check_split
from ..layers import Sigmoid
from ..models import make_mlp
from ..training import TrainingHistory, one_blas_thread
from .layer_stats import check_sequential
from .plots import COLORS, style
from .recorders import PercentileRecorder
from .runs import RunResult, num_classes, run_config

__all__ = [
    "Figure1Run",
    "figure1_run",
    "plot_figure1",
    "sigmoid_input_index",
]


# ----------------------------------------------------------------------------- Figure 1


def sigmoid_input_index(model) -> int:
    """Index of the layer whose output is the input of the model's last ``Sigmoid``.

    For ``make_mlp(..., "sigmoid")`` that is the last hidden ``Linear`` (no BN) or the
    last ``BatchNorm`` (BN before the activation).

    Introduced in notebook 05.
    """
    check_sequential(model)
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
    ``bnutils.lab.recorders.PercentileRecorder`` in mode ``"batch_stats"`` over the whole
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
    X_train, X_test, y_train, y_test = check_split(data)
    unit = check_int(unit, "unit", minimum=0, maximum=99)
    record_every = check_int(record_every, "record_every")
    eval_every = check_int(eval_every, "eval_every")
    probe_model = make_mlp([X_train.shape[1], 100, 100, 100, num_classes(y_train, y_test)],
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
