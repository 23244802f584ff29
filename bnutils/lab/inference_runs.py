"""Experiments on BN at inference: what the running averages cost during training.

``moving_vs_precise`` trains a BN network and, at checkpoints, compares its test accuracy
with the moving averages against a copy recalibrated with precise statistics
(``bnutils.inference.recalibrate_batchnorm``). The functions a learner reads (running
averages, frozen and precise statistics, folding) are in ``bnutils.inference``.

Introduced in notebook 06.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int, check_split
from ..inference import recalibrate_batchnorm
from ..models import make_mlp
from ..training import evaluate, one_blas_thread, train
from .runs import check_hidden, num_classes

__all__ = ["moving_vs_precise"]


@one_blas_thread
def moving_vs_precise(data, checkpoints, *, momentum: float = 0.1, hidden=(100, 100, 100),
                      activation: str = "sigmoid", init="lecun", lr: float = 0.5,
                      batch_size: int = 60, seed: int = 0) -> dict:
    """Test accuracy with the moving averages vs with precise statistics, during training.

    Trains ``make_mlp([D, *hidden, K], activation, norm="bn", momentum=momentum)`` with
    ``train``; at each checkpoint it evaluates the model as it is (eval mode, the running
    averages) and a copy recalibrated on the training set (``recalibrate_batchnorm``).

    Parameters
    ----------
    data : tuple
        ``(X_train, X_test, y_train, y_test)`` from ``bnutils.data.load_digits_split``.
    checkpoints : sequence of int
        Training steps after which to evaluate (increasing); training stops at the last.
    momentum : float, optional
        BN's momentum (PyTorch's convention). It changes only the running averages,
        never the weights: training-mode BN does not read them.
    hidden, activation, init, lr, batch_size, seed :
        The network and its training.

    Returns
    -------
    dict
        ``steps`` (list of int), ``moving`` and ``precise`` (ndarrays of test accuracies,
        one per checkpoint) and ``model`` (the trained model).

    Raises
    ------
    TypeError
        ``data`` is not the 4-tuple, ``hidden`` not a sequence of ints, a checkpoint not
        an int.
    ValueError
        The arrays of ``data`` do not fit together, a width or checkpoint is < 1, or there
        is no checkpoint.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int)
    >>> res = moving_vs_precise((X, X, y, y), [2, 4], hidden=(5,), batch_size=20)
    >>> res["steps"], res["moving"].shape, res["precise"].shape
    ([2, 4], (2,), (2,))

    Introduced in notebook 06.
    """
    X_train, X_test, y_train, y_test = check_split(data)
    hidden = check_hidden(hidden)
    steps = sorted({check_int(s, "checkpoints (each a step number)") for s in checkpoints})
    if not steps:
        raise ValueError(f"checkpoints must name at least one step, got {list(checkpoints)}")
    sizes = [X_train.shape[1], *hidden, num_classes(y_train, y_test)]
    model = make_mlp(sizes, activation, norm="bn", init=init, momentum=momentum, rng=seed)
    moving, precise = [], []

    def record(step, model):
        if step in steps:
            moving.append(evaluate(model, X_test, y_test)[0])
            precise_model = recalibrate_batchnorm(model, X_train, batch_size=batch_size, seed=seed)
            precise.append(evaluate(precise_model, X_test, y_test)[0])

    train(model, X_train, y_train, lr=lr, steps=steps[-1], batch_size=batch_size, seed=seed,
          callback=record)
    return {"steps": steps, "moving": np.array(moving), "precise": np.array(precise),
            "model": model}
