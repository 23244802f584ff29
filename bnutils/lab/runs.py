"""One training run: ``run_config`` builds a network and trains it, ``RunResult`` keeps it.

Everything in ``bnutils.lab`` that trains builds models with ``bnutils.models.make_mlp``
and trains them with the one training loop, ``bnutils.training.train``; these modules only
set up runs, record what they show and draw it. ``data`` is always the 4-tuple
``(X_train, X_test, y_train, y_test)`` returned by ``bnutils.data.load_digits_split``.

``NORM_LABELS`` names ``make_mlp``'s normalizations; ``check_hidden`` and ``num_classes``
are the one check of a ``hidden`` argument and the one count of classes of every run in
``bnutils.lab`` (helpers of the package, not in ``__all__``: each caller checks its labels
first).

The matrices involved are small (batches of 60, layers of 100 units), where one BLAS
thread is faster than several competing for the cores, so the runs use one (via
threadpoolctl, when it is installed).

Introduced in notebook 05 (and reused in notebook 07).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import check_int, check_sequence, check_split
from ..models import make_mlp
from ..training import TrainingHistory, one_blas_thread, train

__all__ = [
    "NORM_LABELS",
    "RunResult",
    "run_config",
]


#: Display names of ``make_mlp``'s normalizations (its ``norm`` argument), e.g. for a sweep
#: over them.
NORM_LABELS = {None: "no normalization", "bn": "BatchNorm", "ln": "LayerNorm",
               "gn": "GroupNorm"}


def check_hidden(hidden) -> tuple:
    """``hidden`` as a tuple of widths, each an int ≥ 1 (empty: no hidden layer).

    The one check of the ``hidden`` argument of the runs in ``bnutils.lab``.

    Examples
    --------
    >>> check_hidden([100, 100])
    (100, 100)
    """
    return tuple(check_sequence(hidden, "hidden", check_int, allow_empty=True))


def num_classes(*ys) -> int:
    """The number of classes of integer labels ``ys`` (each ``(N,)``): the largest label + 1.

    Examples
    --------
    >>> num_classes(np.array([0, 2]), np.array([1]))
    3
    """
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
    X_train, X_test, y_train, y_test = check_split(data)
    hidden = check_hidden(hidden)
    config = dict(hidden=hidden, activation=activation, norm=norm,
                  norm_position=norm_position, bias=bias, init=init, num_groups=num_groups,
                  lr=lr, steps=steps, batch_size=batch_size, seed=seed)
    sizes = [X_train.shape[1], *hidden, num_classes(y_train, y_test)]
    model = make_mlp(sizes, activation, norm=norm, norm_position=norm_position, bias=bias,
                     init=init, num_groups=num_groups, rng=seed)
    history = train(model, X_train, y_train, lr=lr, steps=steps, batch_size=batch_size,
                    X_test=X_test, y_test=y_test, eval_every=eval_every or steps, seed=seed,
                    callback=callback, log_every=log_every)
    if history.diverged:
        # train() stops at the first non-finite loss; record the test accuracy as 0.
        return RunResult(config, history, model, 0.0, float("inf"))
    return RunResult(config, history, model, history.final_accuracy, _final_loss(history, steps))
