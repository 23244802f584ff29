"""BN at inference: running averages, train- vs eval-mode helpers, precise statistics, folding.

The running statistics follow PyTorch's convention (see ``bnutils.batchnorm``):
``running = (1 - momentum) * running + momentum * batch``. Keras writes the same rule
with the weights swapped, ``running = momentum * running + (1 - momentum) * batch``, so
a PyTorch ``momentum`` of m equals a Keras ``momentum`` of 1 - m.

The experiment that trains a network to compare the moving averages with precise
statistics, ``moving_vs_precise``, is in the course layer (``bnutils.lab.inference_runs``).

Introduced in notebook 06.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np

from ._validation import as_float_array, check_finite, check_fraction, check_int
from .batchnorm import BatchNorm
from .folding import fold_batchnorm
from .layers import Linear, Sequential, in_mode, iter_layers
from .training import minibatches

__all__ = [
    "batch_stats_forward",
    "batchnorm_layers",
    "fold_sequential",
    "frozen_running_stats",
    "recalibrate_batchnorm",
    "restore_running_stats",
    "running_average",
    "running_stat_layers",
    "save_running_stats",
]


def running_average(values, momentum: float, init: float = 0.0, convention: str = "pytorch"):
    """Exponential moving average of a sequence, in PyTorch's or Keras's convention.

    PyTorch: ``r_t = (1 - momentum) * r_{t-1} + momentum * v_t`` (``momentum`` weighs the
    new value). Keras: ``r_t = momentum * r_{t-1} + (1 - momentum) * v_t`` (``momentum``
    weighs the old value). ``r_0 = init``.

    Parameters
    ----------
    values : array_like, shape (T,) or (T, D)
        The batch statistics, one row per step.
    momentum : float in [0, 1]
    init : float or array_like, optional
        The starting value (BN starts the running mean at 0 and the running variance at 1).
    convention : {"pytorch", "keras"}, optional

    Returns
    -------
    ndarray, shape like ``values``
        The running value after each step.

    Examples
    --------
    >>> running_average([10.0, 10.0], momentum=0.1)
    array([1. , 1.9])
    >>> running_average([10.0, 10.0], momentum=0.9, convention="keras")
    array([1. , 1.9])

    Introduced in notebook 06.
    """
    values = as_float_array(values, "values")
    if values.ndim not in (1, 2) or len(values) == 0:
        raise ValueError(f"values must have shape (T,) or (T, D) with T ≥ 1; got {values.shape}")
    momentum = check_fraction(momentum, "momentum")
    if convention not in ("pytorch", "keras"):
        raise ValueError(f"convention must be 'pytorch' or 'keras', got {convention!r}")
    new_weight = momentum if convention == "pytorch" else 1.0 - momentum
    out = np.empty_like(values)
    check_finite(values, "values")
    if isinstance(init, (bool, np.bool_)):
        raise TypeError(f"init must be a number or an array of numbers, got {init!r}")
    init = as_float_array(init, "init")
    check_finite(init, "init")
    r = np.broadcast_to(init, values.shape[1:]).astype(values.dtype)
    for t, v in enumerate(values):
        r = (1.0 - new_weight) * r + new_weight * v
        out[t] = r
    return out


def batchnorm_layers(model) -> list:
    """The ``BatchNorm`` layers of a model (its sub-layers at any depth, or ``[model]``).

    Subclasses count (noisy and sharded BN); Batch Renorm is not a ``BatchNorm``. For
    every layer with running statistics, whatever its class, see ``running_stat_layers``.

    Examples
    --------
    >>> net = Sequential(Linear(2, 3, rng=0), BatchNorm(3), Linear(3, 3, rng=1), BatchNorm(3))
    >>> batchnorm_layers(net) == [net[1], net[3]]
    True

    Introduced in notebook 06.
    """
    return [layer for layer in iter_layers(model) if isinstance(layer, BatchNorm)]


def running_stat_layers(model) -> list:
    """Every layer of ``model`` (itself included) that keeps running statistics.

    A layer says which of its attributes a training-mode forward updates in
    ``running_stat_names`` (``BatchNorm``: ``("running_mean", "running_var")``); this
    returns the layers for which that tuple is not empty, depth first.

    Parameters
    ----------
    model : Layer
        A layer or a container such as ``Sequential``.

    Returns
    -------
    list of Layer

    Examples
    --------
    >>> net = Sequential(Linear(2, 3, rng=0), BatchNorm(3), Linear(3, 1, rng=1))
    >>> running_stat_layers(net) == [net[1]]
    True

    Introduced in notebook 06.
    """
    return [layer for layer in iter_layers(model) if getattr(layer, "running_stat_names", ())]


def save_running_stats(model) -> list:
    """Copies of the running statistics of every layer of ``model`` that has them.

    Returns
    -------
    list of (Layer, dict)
        One ``(layer, {name: copy of the array})`` per layer of ``running_stat_layers``;
        give it to ``restore_running_stats``.

    Examples
    --------
    >>> bn = BatchNorm(1)
    >>> saved = save_running_stats(bn)
    >>> _ = bn.forward(np.array([[5.0], [7.0]]))
    >>> restore_running_stats(saved)
    >>> bn.running_mean
    array([0.])

    Introduced in notebook 06.
    """
    return [(layer, {name: np.copy(getattr(layer, name)) for name in layer.running_stat_names})
            for layer in running_stat_layers(model)]


def restore_running_stats(saved: list) -> None:
    """Put back the running statistics that ``save_running_stats`` copied.

    Each layer gets a fresh copy, so ``saved`` can be restored again later.

    Parameters
    ----------
    saved : list of (Layer, dict)
        From ``save_running_stats``.

    Raises
    ------
    TypeError
        ``saved`` is not a list of ``(layer, dict)`` pairs (checked before anything is
        restored).

    Examples
    --------
    >>> net = Sequential(Linear(1, 1, rng=0), BatchNorm(1))
    >>> saved = save_running_stats(net)
    >>> net[1].running_var = np.array([9.0])
    >>> restore_running_stats(saved)
    >>> net[1].running_var
    array([1.])

    Introduced in notebook 06.
    """
    if not isinstance(saved, (list, tuple)) or not all(
            isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict)
            for entry in saved):
        raise TypeError(f"saved must be the list of (layer, dict) pairs returned by "
                        f"save_running_stats, got {type(saved).__name__}")
    for layer, state in saved:
        for name, value in state.items():
            setattr(layer, name, np.copy(value))


@contextmanager
def frozen_running_stats(model):
    """Context manager: whatever runs inside leaves every layer's running statistics as it was.

    Covers every layer that declares ``running_stat_names`` (BatchNorm and its variants
    such as Batch Renorm), at any depth; they are restored even if the block raises.

    Examples
    --------
    >>> bn = BatchNorm(1)
    >>> with frozen_running_stats(bn):
    ...     _ = bn.forward(np.array([[5.0], [7.0]]))
    >>> bn.running_mean
    array([0.])

    Introduced in notebook 07.
    """
    saved = save_running_stats(model)
    try:
        yield model
    finally:
        restore_running_stats(saved)


def batch_stats_forward(model, X):
    """Forward ``X`` in training mode (BN uses the statistics of ``X`` itself), side-effect free.

    What a training step would compute on the batch ``X``, without updating the running
    statistics of any layer that has them (``frozen_running_stats``) and with every
    layer's mode restored afterwards. Useful to look at a batch
    through the training-mode network, or to show how a sample's output depends on its
    batch-mates.

    Parameters
    ----------
    model : Sequential
    X : ndarray, shape (N, D_in), N ≥ 2

    Returns
    -------
    ndarray, shape (N, K)
        The model's output; ``model.outputs`` holds each layer's output.

    Examples
    --------
    >>> net = Sequential(Linear(1, 1, rng=0), BatchNorm(1))
    >>> out = batch_stats_forward(net, np.array([[1.0], [3.0]]))
    >>> np.round(np.abs(out), 3)
    array([[1.],
           [1.]])
    >>> net[1].running_mean
    array([0.])

    Introduced in notebook 05.
    """
    # Every layer's own mode comes back (a model may hold a layer frozen in eval mode).
    with in_mode(model, True), frozen_running_stats(model):
        return model.forward(X)


def recalibrate_batchnorm(model, X, batch_size: int = 60, seed: int = 0):
    """Precise BN statistics: a copy of ``model`` whose running statistics are re-estimated.

    With the weights frozen, one pass over ``X`` in mini-batches of ``batch_size`` runs the
    network in training mode (exactly what it saw while training); every layer with
    running statistics then holds the plain average, over the batches, of the batch
    mean and unbiased batch variance it saw, instead of an exponential moving average.
    Late layers see the normalized outputs of earlier layers, as in training.

    How: each such layer blends its batch statistics into its running ones with
    ``update_running_stats`` and its ``momentum``; with momentum ``1/k`` at the k-th
    batch, ``r_k = (1 - 1/k) r_(k-1) + b_k / k`` is exactly the average of ``b_1 .. b_k``.
    So this works for every layer that does so (``BatchNorm``, noisy BN, Batch Renorm,
    sharded BN, which tracks its first device's statistics), whatever its class.

    Parameters
    ----------
    model : Layer
        E.g. a ``Sequential``. Not modified.
    X : ndarray, shape (N, D_in)
        Usually the training set.
    batch_size : int, optional
        The training batch size (the statistics of batches of this size are averaged),
        2 ≤ batch_size ≤ N.
    seed : int, optional
        Seeds the shuffling into batches.

    Returns
    -------
    Layer
        A deep copy with new running statistics in every layer that has them, in the
        mode ``model`` was in.

    Raises
    ------
    ValueError
        ``model`` has no layer with running statistics.
    TypeError
        A layer with running statistics has no ``momentum`` through which its running
        average can be turned into a plain average.

    Examples
    --------
    >>> net = Sequential(BatchNorm(1))
    >>> X = np.arange(8.0).reshape(8, 1)
    >>> precise = recalibrate_batchnorm(net, X, batch_size=4)
    >>> float(precise[0].running_mean[0]), float(net[0].running_mean[0])
    (3.5, 0.0)

    Introduced in notebook 07 (notebook 06, section 5, describes it).
    """
    X = as_float_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must have shape (N, D_in); got {X.shape}")
    if X.size == 0:
        raise ValueError(f"X must hold at least one sample and one feature; got shape {X.shape}")
    # BN needs ≥ 2 samples per batch, and X has len(X).
    batch_size = check_int(batch_size, "batch_size", 2, maximum=len(X))
    new = copy.deepcopy(model)
    layers = running_stat_layers(new)
    if not layers:
        raise ValueError("model has no BatchNorm layer (no layer with running statistics) "
                         "to recalibrate")
    for layer in layers:
        if not isinstance(getattr(layer, "momentum", None), float):
            raise TypeError(f"recalibrate_batchnorm cannot recalibrate {type(layer).__name__}: it "
                            f"has running statistics but no float `momentum` with which it "
                            f"blends them (see bnutils.batchnorm.update_running_stats)")
    was_training = getattr(new, "training", True)
    momenta = [layer.momentum for layer in layers]
    new.train()
    try:
        for k, idx in enumerate(minibatches(len(X), batch_size, seed), start=1):
            for layer in layers:
                layer.momentum = 1.0 / k        # the k-th batch gets weight 1/k: a plain mean
            new.forward(X[idx])
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if not was_training:
        new.eval()
    return new


def fold_sequential(model):
    """Fold every ``Linear → BatchNorm`` pair of a model into one ``Linear`` (for inference).

    Uses ``bnutils.fold_batchnorm`` with each BN layer's running statistics, so the
    folded model reproduces ``model`` **in eval mode** (to rounding) with one layer fewer
    per pair. Other layers are copied unchanged.

    Parameters
    ----------
    model : Sequential
        Every ``BatchNorm`` must directly follow a ``Linear`` layer. Not modified.

    Returns
    -------
    Sequential
        In eval mode.

    Raises
    ------
    ValueError
        If a ``BatchNorm`` does not directly follow a ``Linear`` (e.g. BN placed after
        the activation), since then there is no layer right before it to absorb it.

    Examples
    --------
    >>> net = Sequential(Linear(3, 4, rng=0), BatchNorm(4), Linear(4, 2, rng=1))
    >>> folded = fold_sequential(net)
    >>> len(net), len(folded)
    (3, 2)
    >>> X = np.ones((5, 3))
    >>> bool(np.allclose(net.eval().forward(X), folded.forward(X)))
    True

    Introduced in notebook 06.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
    layers = []
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, BatchNorm):
            layers.append(copy.deepcopy(layer))
            continue
        prev = model.layers[i - 1] if i > 0 else None
        if not isinstance(prev, Linear):
            raise ValueError(f"layer {i} ({layer!r}) does not directly follow a Linear layer "
                             f"(it follows {prev!r}); only Linear → BatchNorm pairs can be folded")
        W, b = fold_batchnorm(prev.W, prev.b, layer.gamma, layer.beta, layer.running_mean,
                              layer.running_var, eps=layer.eps)
        fused = Linear(prev.in_features, prev.out_features, bias=True, init=1.0, rng=0,
                       dtype=W.dtype)
        fused.W, fused.b = W, b
        layers[-1] = fused
    return Sequential(*layers).eval()
