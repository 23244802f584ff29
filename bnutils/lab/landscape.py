"""The loss landscape along the gradient: Santurkar et al.'s (2018) measurements.

Why does BN help, if not by reducing internal covariate shift? Santurkar, Tsipras, Ilyas
and Madry measure how the loss and its gradient change along a gradient step
(their Fig. 4):

    loss, grads = loss_and_grads(model, X, y)              # training-mode loss and ∇L
    probe = landscape_probe(model, X, y, step_sizes)       # loss_range, grad_change, beta
    res = train_with_probes(model, X, y, lr=..., steps=..., batch_size=...,
                            step_sizes=..., every=10)      # a ProbeHistory

Every probe restores the model's parameters and running statistics; training is done
by the one training loop, ``bnutils.training.train``.

Introduced in notebook 07.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import (
    as_data_matrix,
    check_int,
    check_labels,
    check_model,
    check_positive,
    check_sequence,
)
from ..inference import frozen_running_stats
from ..layers import Sequential, softmax_cross_entropy
from ..training import TrainingHistory, one_blas_thread, train
from .layer_stats import check_sequential

__all__ = ["ProbeHistory", "landscape_probe", "loss_and_grads", "train_with_probes"]


def loss_and_grads(model: Sequential, X, y):
    """Training-mode loss on ``(X, y)`` and copies of all parameter gradients.

    One forward and one backward in the model's current mode (in training mode a BN
    layer also updates its running statistics, as a training step would).

    Parameters
    ----------
    model : Sequential
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)

    Returns
    -------
    loss : float
    grads : dict of str -> ndarray
        Keyed like ``model.params()``; copies, so later backward passes leave them alone.

    Raises
    ------
    TypeError
        ``model`` is not a layer (no forward/backward).
    ValueError
        Whatever the model's layers and ``softmax_cross_entropy`` refuse in ``X`` and
        ``y`` (non-finite values, wrong shapes, labels out of range).

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> net = make_mlp([2, 3, 2])
    >>> loss, grads = loss_and_grads(net, np.ones((4, 2)), np.array([0, 1, 0, 1]))
    >>> sorted(grads) == sorted(net.params())
    True

    Introduced in notebook 07.
    """
    check_model(model)
    logits = model.forward(X)
    loss, dlogits = softmax_cross_entropy(logits, y)
    model.backward(dlogits)
    return loss, {k: np.array(g, copy=True) for k, g in model.grads().items()}


def landscape_probe(model: Sequential, X, y, step_sizes) -> dict:
    """Probe the loss along the gradient direction, as Santurkar et al. (2018, Fig. 4) do.

    With θ the current parameters and g = ∇L(θ) on the batch ``(X, y)``, evaluate
    L(θ − η g) and ∇L(θ − η g) for each η in ``step_sizes`` and return

    * ``loss_range`` = max_η L − min_η L (including η = 0): how much the loss changes
      along the step — the "variation of the loss";
    * ``grad_change`` = max_η ‖∇L(θ − η g) − g‖: how far the gradient moves —
      "gradient predictiveness" (small = the gradient stays a good guide);
    * ``beta`` = max_η ‖∇L(θ − η g) − g‖ / ‖η g‖: the "effective β-smoothness".

    The model's parameters and running statistics (of every layer that has them,
    ``bnutils.inference.frozen_running_stats``) are restored afterwards.

    Parameters
    ----------
    model : Sequential
        In training mode (BN uses the batch statistics of ``X``).
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    step_sizes : sequence of float > 0, shape (S,)

    Returns
    -------
    dict with float values ``loss_range``, ``grad_change``, ``beta``, ``grad_norm``

    Raises
    ------
    TypeError
        ``model`` is not a Sequential; ``step_sizes`` is not a sequence of numbers.
    ValueError
        ``step_sizes`` is empty or holds a step ≤ 0 or NaN/inf.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> net = make_mlp([2, 4, 2], rng=0)
    >>> X, y = np.random.default_rng(1).normal(size=(8, 2)), np.array([0, 1] * 4)
    >>> probe = landscape_probe(net, X, y, [0.1, 0.2])
    >>> sorted(probe)
    ['beta', 'grad_change', 'grad_norm', 'loss_range']

    Introduced in notebook 07.
    """
    check_sequential(model)
    step_sizes = np.array(check_sequence(step_sizes, "step_sizes", check_positive))
    params = model.params()
    saved = {k: v.copy() for k, v in params.items()}
    try:
        with frozen_running_stats(model), np.errstate(over="ignore", invalid="ignore"):
            loss0, g0 = loss_and_grads(model, X, y)
            gnorm = float(np.sqrt(sum(np.sum(g**2) for g in g0.values())))
            losses, changes = [loss0], []
            for eta in step_sizes:
                for k, p in params.items():
                    p[...] = saved[k] - eta * g0[k]
                loss, g = loss_and_grads(model, X, y)
                losses.append(loss)
                changes.append(float(np.sqrt(sum(np.sum((g[k] - g0[k]) ** 2) for k in g0))))
    finally:
        for k, p in params.items():
            p[...] = saved[k]
    changes = np.array(changes)
    return {"loss_range": float(np.max(losses) - np.min(losses)),
            "grad_change": float(changes.max()),
            "beta": float(np.max(changes / (step_sizes * max(gnorm, 1e-300)))),
            "grad_norm": gnorm}


@dataclass
class ProbeHistory:
    """What ``train_with_probes`` recorded: the training history and one probe per ``every`` steps.

    Attributes
    ----------
    history : TrainingHistory
    steps : ndarray of int, shape (P,)
        The steps after which a probe was taken.
    loss_range, grad_change, beta, grad_norm : ndarray of float, shape (P,)
        The ``landscape_probe`` results at those steps.
    """

    history: TrainingHistory
    steps: np.ndarray
    loss_range: np.ndarray
    grad_change: np.ndarray
    beta: np.ndarray
    grad_norm: np.ndarray


@one_blas_thread
def train_with_probes(model: Sequential, X, y, *, lr: float, steps: int, batch_size: int,
                      step_sizes, every: int = 10, seed: int = 0, **train_kwargs) -> ProbeHistory:
    """Train with ``bnutils.training.train`` and run ``landscape_probe`` every ``every`` steps.

    Each probe uses a fresh random batch of ``batch_size`` training samples (seeded); the
    probes change neither the parameters nor the running statistics, so training goes
    exactly as without them.

    Parameters
    ----------
    model : Sequential
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    lr, steps, batch_size, seed : as in ``train``
    step_sizes : sequence of float
        Passed to ``landscape_probe`` (e.g. multiples of ``lr``).
    every : int ≥ 1, optional
    **train_kwargs
        Passed on to ``train`` (e.g. ``X_test``, ``y_test``).

    Returns
    -------
    ProbeHistory

    Raises
    ------
    TypeError, ValueError
        As ``landscape_probe`` for ``step_sizes`` (checked before training starts), as
        ``train`` for the rest; ``every`` must be an int ≥ 1.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> res = train_with_probes(make_mlp([3, 8, 2]), X, y, lr=0.1, steps=20, batch_size=10,
    ...                         step_sizes=[0.1, 0.2], every=10)
    >>> res.steps.tolist()
    [10, 20]

    Introduced in notebook 07.
    """
    every = check_int(every, "every", minimum=1)
    check_sequence(step_sizes, "step_sizes", check_positive)    # now, not at the first probe
    X = as_data_matrix(X, "X")                  # a list is a matrix too: probes index it
    y = check_labels(y, len(X))
    rng = np.random.default_rng(seed + 12345)     # a stream apart from train()'s shuffling
    records = []

    def probe(step, net):
        if step % every == 0:
            idx = rng.choice(len(X), size=batch_size, replace=False)
            records.append((step, landscape_probe(net, X[idx], y[idx], step_sizes)))

    history = train(model, X, y, lr=lr, steps=steps, batch_size=batch_size, seed=seed,
                    callback=probe, **train_kwargs)
    keys = ("loss_range", "grad_change", "beta", "grad_norm")
    return ProbeHistory(history=history, steps=np.array([s for s, _ in records], dtype=int),
                        **{k: np.array([r[k] for _, r in records]) for k in keys})
