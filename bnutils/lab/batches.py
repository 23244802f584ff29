"""What the batch does to BN: non-i.i.d. batches, batch-mates, predicting in training mode.

BN normalizes each value with the statistics of its mini-batch, so in training mode a
sample's output depends on the batch it is in. These helpers make that visible:

* ``class_sorted_batches``, ``train_on_batches`` — train on batches that each hold one
  class (the opposite of i.i.d. batches), through the one training loop;
* ``train_mode_spread`` — how much one sample's BN output moves with its batch-mates;
* ``batch_mode_accuracy`` — accuracy when predicting in training mode (a forgotten
  ``model.eval()``), batch by batch;
* ``active_per_step`` — how many sequences of a padded batch are still running at step t
  (BN per time step sees a shrinking batch).

Running statistics and the model's mode are restored by every helper that runs the
model in training mode (``bnutils.inference.frozen_running_stats``).

Introduced in notebook 07.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_data_matrix, as_generator, check_int, check_labels, check_sequence
from ..inference import frozen_running_stats
from ..layers import Sequential
from ..training import one_blas_thread, train
from .layer_stats import check_sequential

__all__ = ["active_per_step", "batch_mode_accuracy", "class_sorted_batches",
           "train_mode_spread", "train_on_batches"]


# ----------------------------------------------------------------------------- non-i.i.d. batches
def class_sorted_batches(y, batch_size: int, num_batches: int, seed: int = 0) -> list:
    """Index batches that each hold consecutive samples of the class-sorted data.

    The training set is sorted by label and cut into batches of ``batch_size``; the
    batches are then visited in a random order (reshuffled each pass). So almost every
    batch holds a single class: the opposite of i.i.d. batches.

    Parameters
    ----------
    y : ndarray of int, shape (N,)
    batch_size : int in 1..N
    num_batches : int ≥ 1
        How many batches to return (passes over the data repeat as needed).
    seed : int, optional

    Returns
    -------
    list of ndarray of int, each shape (batch_size,)

    Raises
    ------
    ValueError
        ``y`` is not a 1-D array of integer labels ≥ 0 with at least one entry;
        ``batch_size`` or ``num_batches`` is out of range.
    TypeError
        ``batch_size``, ``num_batches`` or ``seed`` is not an integer.

    Examples
    --------
    >>> batches = class_sorted_batches(np.array([1, 0, 1, 0, 1, 0]), 3, num_batches=2)
    >>> [sorted(np.array([1, 0, 1, 0, 1, 0])[b].tolist()) for b in batches]
    [[0, 0, 0], [1, 1, 1]]

    Introduced in notebook 09.
    """
    y = check_labels(y)
    batch_size = check_int(batch_size, "batch_size", minimum=1, maximum=len(y))
    num_batches = check_int(num_batches, "num_batches", minimum=1)
    order = np.argsort(y, kind="stable")
    chunks = [order[i:i + batch_size] for i in range(0, len(y) - batch_size + 1, batch_size)]
    rng = as_generator(seed, "seed")
    batches = []
    while len(batches) < num_batches:
        batches += [chunks[i] for i in rng.permutation(len(chunks))]
    return batches[:num_batches]


def _check_batch(idx, i: int, n: int) -> np.ndarray:
    """Batch ``i`` of ``train_on_batches`` as a non-empty 1-D integer index array into ``range(n)``."""
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise ValueError(f"batches[{i}] must be a non-empty 1-D array of integer row indices; "
                         f"got shape {idx.shape}, dtype {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"batches[{i}] must hold row indices in 0..{n - 1}, got values from "
                         f"{idx.min()} to {idx.max()}")
    return idx


@one_blas_thread
def train_on_batches(model, X, y, batches, *, lr: float, callback=None) -> list:
    """Take one ``train`` step on each given batch of indices, in order; return the losses.

    ``bnutils.training.train`` draws its own shuffled batches; to control the batch
    composition we call it with ``steps=1`` on each batch.

    Parameters
    ----------
    model : Layer
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    batches : iterable of index arrays
        Each a non-empty 1-D array of integer row indices of ``X`` (in 0..N-1).
    lr : float
    callback : callable, optional
        ``callback(step, model)`` after every step, ``step`` counting from 1, as in
        ``train`` (e.g. to change a layer's setting on a schedule).

    Returns
    -------
    list of float
        The training loss of each step (NaN once a step diverged; training stops there).

    Raises
    ------
    ValueError
        ``X`` is not a finite (N, D) array, ``y`` not N integer labels, or a batch is
        empty, not integer, not 1-D or out of range (all checked before the first step).
    TypeError
        ``batches`` is not an iterable of index arrays, or ``callback`` is not callable.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> X, y = np.random.default_rng(0).normal(size=(6, 2)), np.array([0, 1, 0, 1, 0, 1])
    >>> len(train_on_batches(make_mlp([2, 4, 2]), X, y, [np.arange(3), np.arange(3, 6)], lr=0.1))
    2

    Introduced in notebook 09.
    """
    X = as_data_matrix(X, "X")
    y = check_labels(y, len(X))
    if isinstance(batches, (str, bytes)) or not hasattr(batches, "__iter__"):
        raise TypeError(f"batches must be an iterable of index arrays, got {batches!r}")
    batches = [_check_batch(idx, i, len(X)) for i, idx in enumerate(batches)]
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(step, model), got {callback!r}")
    losses = []
    # This function already runs with one BLAS thread (the decorator); calling ``train``'s
    # undecorated body skips re-entering the thread limit at every step, which cost ~6 ms a
    # step (measured: 200 steps 1.8 s -> 0.6 s), with exactly the same results.
    one_step = getattr(train, "__wrapped__", train)
    for step, idx in enumerate(batches, start=1):
        hist = one_step(model, X[idx], y[idx], lr=lr, steps=1, batch_size=len(idx))
        if hist.diverged:
            losses.append(float("nan"))
            break
        losses.append(hist.loss[-1])
        if callback is not None:
            callback(step, model)
    return losses


# ------------------------------------------------------------- train/test discrepancy, sequences
def train_mode_spread(model: Sequential, X, sample: int = 0, batch_sizes=(2, 4, 16, 64),
                      num_batches: int = 200, layer: int | None = None, seed: int = 0) -> dict:
    """How much one sample's BN output depends on the rest of its batch.

    For each batch size m, put sample ``sample`` of ``X`` into ``num_batches`` random
    batches of m samples, run each through ``model`` in training mode, and read that
    sample's output at ``layer`` (by default the first layer with running statistics:
    the first ``BatchNorm``). In eval mode the output is one fixed number; in training
    mode it changes with the batch-mates. Running statistics are restored afterwards,
    and the model's mode too.

    Parameters
    ----------
    model : Sequential
    X : ndarray, shape (N, D)
    sample : int in 0..N-1, optional
    batch_sizes : sequence of int in 2..N, optional
    num_batches : int ≥ 1, optional
    layer : int, optional
    seed : int, optional

    Returns
    -------
    dict
        ``"eval"``: the eval-mode output, shape (units,); ``"train"``: dict m -> array of
        shape (num_batches, units), the training-mode outputs of that sample.

    Raises
    ------
    TypeError
        ``model`` is not a Sequential; ``sample``, ``num_batches`` or an entry of
        ``batch_sizes`` is not an integer.
    ValueError
        ``X`` is not a finite (N, D) array; ``sample``, ``num_batches`` or a batch size is
        out of range; the model has no layer with running statistics.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> net = make_mlp([3, 4, 2], norm="bn")
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> res = train_mode_spread(net, X, batch_sizes=(2, 8), num_batches=5)
    >>> res["train"][8].shape, res["eval"].shape
    ((5, 4), (4,))

    Introduced in notebook 09.
    """
    check_sequential(model)
    X = as_data_matrix(X, "X")
    sample = check_int(sample, "sample", minimum=0, maximum=len(X) - 1)
    num_batches = check_int(num_batches, "num_batches", minimum=1)
    if layer is None:
        found = [i for i, lyr in enumerate(model.layers) if getattr(lyr, "running_stat_names", ())]
        if not found:
            raise ValueError("model has no BatchNorm layer (no layer with running statistics); "
                             "pass layer=")
        layer = found[0]
    batch_sizes = check_sequence(batch_sizes, "batch_sizes", check_int, minimum=2,
                                 maximum=len(X))
    rng = as_generator(seed, "seed")
    others = np.delete(np.arange(len(X)), sample)
    was_training = model.training
    try:
        with frozen_running_stats(model):
            model.eval()
            model.forward(X[sample:sample + 1])
            eval_out = np.array(model.outputs[layer][0])
            model.train()
            result = {}
            for m in batch_sizes:
                rows = []
                for _ in range(num_batches):
                    idx = np.concatenate([[sample], rng.choice(others, size=m - 1, replace=False)])
                    model.forward(X[idx])
                    rows.append(np.array(model.outputs[layer][0]))
                result[int(m)] = np.array(rows)
    finally:
        model.train() if was_training else model.eval()
    return {"eval": eval_out, "train": result}


def batch_mode_accuracy(model: Sequential, X, y, batch_size: int, order=None) -> float:
    """Accuracy when the model predicts in *training* mode, ``batch_size`` samples at a time.

    That is the classic BN bug (forgetting ``model.eval()``): each prediction then uses
    the statistics of its batch, so it depends on which samples it was batched with.
    ``order`` chooses the batching (e.g. sorted by class); the ragged last batch is
    dropped. Running statistics and the model's mode are restored afterwards.

    Parameters
    ----------
    model : Sequential
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    batch_size : int in 2..N
    order : ndarray of int, shape (N,), optional
        A permutation of ``range(N)``; default: the given order.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``X`` is not a finite (N, D) array, ``y`` not N integer labels, ``batch_size`` is
        not in 2..N, or ``order`` is not a permutation.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> net = make_mlp([3, 4, 2], norm="bn")
    >>> X, y = np.random.default_rng(0).normal(size=(10, 3)), np.arange(10) % 2
    >>> 0.0 <= batch_mode_accuracy(net, X, y, batch_size=5) <= 1.0
    True

    Introduced in notebook 09.
    """
    check_sequential(model)
    X = as_data_matrix(X, "X")
    y = check_labels(y, len(X))
    batch_size = check_int(batch_size, "batch_size", minimum=2, maximum=len(X))
    order = np.arange(len(X)) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(len(X))):
        raise ValueError("order must be a permutation of range(len(X))")
    stop = len(X) - len(X) % batch_size
    was_training = model.training
    try:
        with frozen_running_stats(model):
            model.train()
            correct = 0
            for start in range(0, stop, batch_size):
                idx = order[start:start + batch_size]
                correct += int(np.sum(np.argmax(model.forward(X[idx]), axis=1) == y[idx]))
    finally:
        model.train() if was_training else model.eval()
    return correct / stop


def active_per_step(lengths, max_steps: int | None = None) -> np.ndarray:
    """How many sequences of a batch are still running at each time step.

    A recurrent network with BN "per time step" normalizes step t over the sequences
    that are still running at t (the padded ones must be left out): its batch shrinks as
    the short sequences end.

    Parameters
    ----------
    lengths : array_like of int, shape (N,)
        Length of each sequence in the batch (≥ 1).
    max_steps : int ≥ 1, optional
        Number of steps to report (default: the longest length).

    Returns
    -------
    ndarray of int, shape (max_steps,)
        Entry t is the number of sequences with length > t.

    Examples
    --------
    >>> active_per_step([3, 1, 2, 5]).tolist()
    [4, 3, 2, 1, 1]

    Introduced in notebook 09.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0 or lengths.dtype.kind not in "iu" or lengths.min() < 1:
        raise ValueError(f"lengths must be a non-empty 1-D array of integers ≥ 1, got {lengths!r}")
    T = int(lengths.max()) if max_steps is None else check_int(max_steps, "max_steps", minimum=1)
    return (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1)
