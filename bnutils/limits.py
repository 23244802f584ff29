"""Experiment helpers for notebook 07: where BN helps, where it breaks, what to use instead.

Everything here trains with ``bnutils.training.train`` (there is no second training
loop); the helpers only build models, choose batches, record what happens during
training, and probe the loss landscape.

* ``swap_norm`` — put another normalization layer where ``make_mlp`` put BatchNorm.
* ``train_models`` — train several models on the same data, same settings.
* ``PercentileRecorder`` — a ``train`` callback recording percentiles of one unit.
* ``loss_and_grads``, ``landscape_probe``, ``train_with_probes`` — Santurkar et al.'s
  loss-landscape measurements along the gradient direction.
* ``batch_size_sweep`` — test accuracy of several normalizations across batch sizes.
* ``class_sorted_batches``, ``train_on_batches`` — training on non-i.i.d. batches.
* ``batch_mode_accuracy`` — accuracy when predicting in training mode, batch by batch.
* ``train_mode_spread`` — how much a sample's normalized value depends on its batch-mates.
* ``active_per_step`` — how many sequences of a padded batch are still running at step t.
* ``normalization_set``, ``plot_normalization_sets`` — which values share statistics.

The networks are small (batches of ≤ 64, layers of 64 units); for such matrices one
BLAS thread is faster than several competing for the cores, so the training helpers
run with one (via threadpoolctl, which comes with scikit-learn).

Introduced in notebook 07.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .batchnorm import BatchNorm
from .layers import Layer, Sequential, softmax_cross_entropy
from .models import make_mlp
from .training import evaluate, one_blas_thread, train

__all__ = [
    "NORM_LABELS",
    "PercentileRecorder",
    "ProbeHistory",
    "SweepResult",
    "batch_size_sweep",
    "class_sorted_batches",
    "landscape_probe",
    "loss_and_grads",
    "normalization_set",
    "plot_normalization_sets",
    "active_per_step",
    "batch_mode_accuracy",
    "swap_norm",
    "train_mode_spread",
    "train_models",
    "train_on_batches",
    "train_with_probes",
]

#: Display names of the normalizations used in the sweeps.
NORM_LABELS = {"none": "no normalization", "bn": "BatchNorm", "ln": "LayerNorm",
               "gn": "GroupNorm"}


def _check_model(model):
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils Sequential (e.g. from make_mlp), "
                        f"got {type(model).__name__}")


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
    _check_model(model)
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


@dataclass
class PercentileRecorder:
    """A ``train`` callback: percentiles of one unit of one layer's output, every step.

    It reads ``model.outputs[layer]`` (the output of that layer for the training batch
    of the step just taken), column ``unit``.

    Parameters
    ----------
    layer : int
        Index into the ``Sequential`` (e.g. the layer whose output feeds a sigmoid).
    unit : int
    percentiles : sequence of float, optional

    Attributes
    ----------
    steps : list of int
    values : list of ndarray
        One array of the requested percentiles per step; ``as_array()`` stacks them.

    Examples
    --------
    >>> rec = PercentileRecorder(layer=0, unit=0)
    >>> net = make_mlp([2, 3, 2])
    >>> X, y = np.random.default_rng(0).normal(size=(8, 2)), np.array([0, 1] * 4)
    >>> _ = train(net, X, y, lr=0.1, steps=3, batch_size=4, callback=rec)
    >>> rec.as_array().shape
    (3, 3)

    Introduced in notebook 07.
    """

    layer: int
    unit: int
    percentiles: Sequence = (15, 50, 85)
    steps: list = field(default_factory=list)
    values: list = field(default_factory=list)

    def __call__(self, step, model):
        column = np.asarray(model.outputs[self.layer])[:, self.unit]
        self.steps.append(step)
        self.values.append(np.percentile(column, self.percentiles))

    def as_array(self) -> np.ndarray:
        """The recorded percentiles, shape (steps, len(percentiles))."""
        return np.array(self.values).reshape(len(self.values), len(self.percentiles))


# ----------------------------------------------------------------------------- landscape probes
def _stateful_arrays(model):
    """Arrays that a training-mode forward changes: running statistics of every layer."""
    out = []
    for layer in model.layers:
        for name in ("running_mean", "running_var"):
            if hasattr(layer, name):
                out.append((layer, name, getattr(layer, name).copy()))
    return out


def loss_and_grads(model: Sequential, X, y):
    """Training-mode loss on ``(X, y)`` and copies of all parameter gradients.

    Parameters
    ----------
    model : Sequential
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)

    Returns
    -------
    loss : float
    grads : dict of str -> ndarray
        Keyed like ``model.params()``.

    Examples
    --------
    >>> net = make_mlp([2, 3, 2])
    >>> loss, grads = loss_and_grads(net, np.ones((4, 2)), np.array([0, 1, 0, 1]))
    >>> sorted(grads) == sorted(net.params())
    True

    Introduced in notebook 07.
    """
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

    The model's parameters and running statistics are restored afterwards.

    Parameters
    ----------
    model : Sequential
        In training mode (BN uses the batch statistics of ``X``).
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    step_sizes : sequence of float > 0

    Returns
    -------
    dict with float values ``loss_range``, ``grad_change``, ``beta``, ``grad_norm``

    Examples
    --------
    >>> net = make_mlp([2, 4, 2], rng=0)
    >>> X, y = np.random.default_rng(1).normal(size=(8, 2)), np.array([0, 1] * 4)
    >>> probe = landscape_probe(net, X, y, [0.1, 0.2])
    >>> sorted(probe)
    ['beta', 'grad_change', 'grad_norm', 'loss_range']

    Introduced in notebook 07.
    """
    _check_model(model)
    step_sizes = np.asarray(step_sizes, dtype=float)
    if step_sizes.ndim != 1 or step_sizes.size == 0 or np.any(step_sizes <= 0):
        raise ValueError(f"step_sizes must be a non-empty 1-D list of numbers > 0, got {step_sizes}")
    params = model.params()
    saved = {k: v.copy() for k, v in params.items()}
    state = _stateful_arrays(model)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
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
        for layer, name, value in state:
            setattr(layer, name, value)
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
    steps : ndarray of int
    loss_range, grad_change, beta, grad_norm : ndarray of float
    """

    history: object
    steps: np.ndarray
    loss_range: np.ndarray
    grad_change: np.ndarray
    beta: np.ndarray
    grad_norm: np.ndarray


@one_blas_thread
def train_with_probes(model: Sequential, X, y, *, lr: float, steps: int, batch_size: int,
                      step_sizes, every: int = 10, seed: int = 0, **train_kwargs) -> ProbeHistory:
    """Train with ``bnutils.training.train`` and run ``landscape_probe`` every ``every`` steps.

    Each probe uses a fresh random batch of ``batch_size`` training samples (seeded).

    Parameters
    ----------
    model : Sequential
    X, y : training data
    lr, steps, batch_size, seed : as in ``train``
    step_sizes : sequence of float
        Passed to ``landscape_probe`` (e.g. multiples of ``lr``).
    every : int, optional
    **train_kwargs
        Passed on to ``train`` (e.g. ``X_test``, ``y_test``).

    Returns
    -------
    ProbeHistory

    Examples
    --------
    >>> X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> res = train_with_probes(make_mlp([3, 8, 2]), X, y, lr=0.1, steps=20, batch_size=10,
    ...                         step_sizes=[0.1, 0.2], every=10)
    >>> res.steps.tolist()
    [10, 20]

    Introduced in notebook 07.
    """
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    rng = np.random.default_rng(seed + 12345)
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


# ----------------------------------------------------------------------------- batch-size sweep
@dataclass
class SweepResult:
    """Final test accuracies of ``batch_size_sweep``.

    Attributes
    ----------
    norms : tuple of str
    batch_sizes : tuple of int
    accuracy : ndarray, shape (len(norms), len(batch_sizes))
        Eval-mode test accuracy after training (0.0 if the run diverged).
    """

    norms: tuple
    batch_sizes: tuple
    accuracy: np.ndarray

    def row(self, norm: str) -> np.ndarray:
        """Accuracies of one normalization across the batch sizes."""
        return self.accuracy[self.norms.index(norm)]


@one_blas_thread
def batch_size_sweep(X, y, X_test, y_test, *, norms=("none", "bn", "ln", "gn"),
                     batch_sizes=(2, 4, 8, 16, 32, 64), sizes=(64, 64, 64, 10),
                     activation: str = "relu", init="he", lr: float = 0.05, steps: int = 300,
                     num_groups: int = 8, seed: int = 0) -> SweepResult:
    """Train one network per (normalization, batch size) and record its test accuracy.

    Every run has the same initial weights (``make_mlp(..., rng=seed)``), the same learning
    rate and the same number of steps, so within one batch size only the normalization
    differs. (Wu & He 2018, Fig. 1, compare BN and GN on ImageNet this way.)

    Parameters
    ----------
    X, y, X_test, y_test : ndarray
    norms : sequence of {"none", "bn", "ln", "gn"}
    batch_sizes : sequence of int ≥ 2
    sizes, activation, init, num_groups : passed to ``make_mlp``
    lr, steps, seed : passed to ``train``

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)
    >>> res = batch_size_sweep(X, y, X, y, norms=("none", "bn"), batch_sizes=(2, 8),
    ...                        sizes=(4, 8, 2), steps=5)
    >>> res.accuracy.shape
    (2, 2)

    Introduced in notebook 07.
    """
    norms = tuple(norms)
    batch_sizes = tuple(int(b) for b in batch_sizes)
    for n in norms:
        if n not in NORM_LABELS:
            raise ValueError(f"norms must be among {sorted(NORM_LABELS)}, got {n!r}")
    if not batch_sizes or min(batch_sizes) < 2:
        raise ValueError(f"batch_sizes must be integers ≥ 2 (BN needs two samples), got {batch_sizes}")
    acc = np.zeros((len(norms), len(batch_sizes)))
    for i, norm in enumerate(norms):
        for j, bs in enumerate(batch_sizes):
            model = make_mlp(list(sizes), activation, norm=None if norm == "none" else norm,
                             init=init, num_groups=num_groups, rng=seed)
            hist = train(model, X, y, lr=lr, steps=steps, batch_size=bs, seed=seed)
            acc[i, j] = 0.0 if hist.diverged else evaluate(model, X_test, y_test)[0]
    return SweepResult(norms=norms, batch_sizes=batch_sizes, accuracy=acc)


# ----------------------------------------------------------------------------- non-i.i.d. batches
def class_sorted_batches(y, batch_size: int, num_batches: int, seed: int = 0) -> list:
    """Index batches that each hold consecutive samples of the class-sorted data.

    The training set is sorted by label and cut into batches of ``batch_size``; the
    batches are then visited in a random order (reshuffled each pass). So almost every
    batch holds a single class: the opposite of i.i.d. batches.

    Parameters
    ----------
    y : ndarray of int, shape (N,)
    batch_size : int
    num_batches : int
        How many batches to return (passes over the data repeat as needed).
    seed : int, optional

    Returns
    -------
    list of ndarray of int

    Examples
    --------
    >>> batches = class_sorted_batches(np.array([1, 0, 1, 0, 1, 0]), 3, num_batches=2)
    >>> [sorted(np.array([1, 0, 1, 0, 1, 0])[b].tolist()) for b in batches]
    [[0, 0, 0], [1, 1, 1]]

    Introduced in notebook 07.
    """
    y = np.asarray(y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or not 1 <= batch_size <= len(y):
        raise ValueError(f"batch_size must be an integer in 1..{len(y)}, got {batch_size!r}")
    order = np.argsort(y, kind="stable")
    chunks = [order[i:i + batch_size] for i in range(0, len(y) - batch_size + 1, batch_size)]
    rng = np.random.default_rng(seed)
    batches = []
    while len(batches) < num_batches:
        batches += [chunks[i] for i in rng.permutation(len(chunks))]
    return batches[:num_batches]


@one_blas_thread
def train_on_batches(model, X, y, batches, *, lr: float) -> list:
    """Take one ``train`` step on each given batch of indices, in order; return the losses.

    ``bnutils.training.train`` draws its own shuffled batches; to control the batch
    composition we call it with ``steps=1`` on each batch.

    Parameters
    ----------
    model : Layer
    X, y : ndarray
    batches : iterable of index arrays
    lr : float

    Returns
    -------
    list of float
        The training loss of each step (NaN once a step diverged; training stops there).

    Examples
    --------
    >>> X, y = np.random.default_rng(0).normal(size=(6, 2)), np.array([0, 1, 0, 1, 0, 1])
    >>> len(train_on_batches(make_mlp([2, 4, 2]), X, y, [np.arange(3), np.arange(3, 6)], lr=0.1))
    2

    Introduced in notebook 07.
    """
    losses = []
    for idx in batches:
        idx = np.asarray(idx)
        hist = train(model, X[idx], y[idx], lr=lr, steps=1, batch_size=len(idx))
        if hist.diverged:
            losses.append(float("nan"))
            break
        losses.append(hist.loss[-1])
    return losses


# ------------------------------------------------------------- train/test discrepancy, sequences
def train_mode_spread(model: Sequential, X, sample: int = 0, batch_sizes=(2, 4, 16, 64),
                      num_batches: int = 200, layer: int | None = None, seed: int = 0) -> dict:
    """How much one sample's BN output depends on the rest of its batch.

    For each batch size m, put sample ``sample`` of ``X`` into ``num_batches`` random
    batches of m samples, run each through ``model`` in training mode, and read that
    sample's output at ``layer`` (by default the first ``BatchNorm`` layer). In eval mode
    the output is one fixed number; in training mode it changes with the batch-mates.
    Running statistics are restored afterwards, and the model's mode too.

    Parameters
    ----------
    model : Sequential
    X : ndarray, shape (N, D)
    sample : int, optional
    batch_sizes : sequence of int ≥ 2, optional
    num_batches : int, optional
    layer : int, optional
    seed : int, optional

    Returns
    -------
    dict
        ``"eval"``: the eval-mode output, shape (units,); ``"train"``: dict m -> array of
        shape (num_batches, units), the training-mode outputs of that sample.

    Examples
    --------
    >>> net = make_mlp([3, 4, 2], norm="bn")
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> res = train_mode_spread(net, X, batch_sizes=(2, 8), num_batches=5)
    >>> res["train"][8].shape, res["eval"].shape
    ((5, 4), (4,))

    Introduced in notebook 07.
    """
    _check_model(model)
    X = np.asarray(X)
    if layer is None:
        found = [i for i, lyr in enumerate(model.layers) if isinstance(lyr, BatchNorm)]
        if not found:
            raise ValueError("model has no BatchNorm layer; pass layer=")
        layer = found[0]
    if min(batch_sizes) < 2 or max(batch_sizes) > len(X):
        raise ValueError(f"batch_sizes must lie in 2..{len(X)}, got {tuple(batch_sizes)}")
    rng = np.random.default_rng(seed)
    others = np.delete(np.arange(len(X)), sample)
    state = _stateful_arrays(model)
    was_training = model.training
    try:
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
        for lyr, name, value in state:
            setattr(lyr, name, value)
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
    batch_size : int ≥ 2
    order : ndarray of int, optional
        A permutation of ``range(N)``; default: the given order.

    Returns
    -------
    float

    Examples
    --------
    >>> net = make_mlp([3, 4, 2], norm="bn")
    >>> X, y = np.random.default_rng(0).normal(size=(10, 3)), np.arange(10) % 2
    >>> 0.0 <= batch_mode_accuracy(net, X, y, batch_size=5) <= 1.0
    True

    Introduced in notebook 07.
    """
    _check_model(model)
    X, y = np.asarray(X), np.asarray(y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or not 2 <= batch_size <= len(X):
        raise ValueError(f"batch_size must be an integer in 2..{len(X)}, got {batch_size!r}")
    order = np.arange(len(X)) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(len(X))):
        raise ValueError("order must be a permutation of range(len(X))")
    stop = len(X) - len(X) % batch_size
    state = _stateful_arrays(model)
    was_training = model.training
    try:
        model.train()
        correct = 0
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            correct += int(np.sum(np.argmax(model.forward(X[idx]), axis=1) == y[idx]))
    finally:
        for lyr, name, value in state:
            setattr(lyr, name, value)
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
    max_steps : int, optional
        Number of steps to report (default: the longest length).

    Returns
    -------
    ndarray of int, shape (max_steps,)
        Entry t is the number of sequences with length > t.

    Examples
    --------
    >>> active_per_step([3, 1, 2, 5]).tolist()
    [4, 3, 2, 1, 1]

    Introduced in notebook 07.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0 or lengths.dtype.kind not in "iu" or lengths.min() < 1:
        raise ValueError(f"lengths must be a non-empty 1-D array of integers ≥ 1, got {lengths!r}")
    T = int(lengths.max()) if max_steps is None else int(max_steps)
    return (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1)


# ----------------------------------------------------------------------------- which values share statistics
def normalization_set(norm_fn: Callable, shape=(4, 6, 2, 2), index=(1, 2, 0, 0), seed: int = 0):
    """Which outputs move when one input value moves: the values normalized together.

    Perturbs ``x[index]`` and returns a boolean mask of the outputs of ``norm_fn`` that
    change. Those are exactly the values that share a mean and variance with it (the
    perturbed value changes its own output, and through the shared statistics every
    other output of its set). The answer comes from the code, not from a drawing.

    Parameters
    ----------
    norm_fn : callable
        ``norm_fn(x) -> out`` on an (N, C, H, W) array.
    shape : tuple of 4 int, optional
    index : tuple of 4 int, optional
    seed : int, optional

    Returns
    -------
    mask : ndarray of bool, shape ``shape``

    Examples
    --------
    >>> from bnutils import batchnorm_forward
    >>> bn = lambda x: batchnorm_forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]))[0]
    >>> mask = normalization_set(bn, shape=(2, 3, 1, 2), index=(0, 1, 0, 0))
    >>> mask.sum(axis=(0, 2, 3)).tolist()        # all of channel 1, over N, H, W
    [0, 4, 0]

    Introduced in notebook 07.
    """
    if len(shape) != 4 or len(index) != 4:
        raise ValueError(f"shape and index must have 4 entries (N, C, H, W), got {shape} and {index}")
    x = np.random.default_rng(seed).normal(size=shape)
    base = np.asarray(norm_fn(x))
    bumped = x.copy()
    bumped[tuple(index)] += 0.5
    return np.abs(np.asarray(norm_fn(bumped)) - base) > 1e-9


def plot_normalization_sets(masks: dict, captions: dict | None = None, title: str | None = None,
                            color="#1f77b4"):
    """Draw each mask as an (N, C, H·W) block of cubes, in the style of Wu & He (2018, Fig. 2).

    N runs to the right, C into the page, H·W (the positions, flattened) upwards; the
    cubes of the mask are coloured. Pick the perturbed index of ``normalization_set`` on
    the visible faces (last sample, first channel) so that the whole set shows.

    Parameters
    ----------
    masks : dict of str -> bool ndarray, shape (N, C, H, W)
        Title -> mask from ``normalization_set``.
    captions : dict of str -> str, optional
        A line under each block (e.g. the axes the statistics are taken over).
    title : str, optional
        A title above all the blocks.
    color : str, optional
        Colour of the cubes that are normalized together.

    Returns
    -------
    fig : matplotlib Figure

    Introduced in notebook 07.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LightSource

    if not masks:
        raise ValueError("masks must hold at least one mask")
    light = LightSource(azdeg=135, altdeg=50)           # from the front right: both faces lit
    captions = captions or {}
    fig = plt.figure(figsize=(2.9 * len(masks), 3.4))
    for i, (name, mask) in enumerate(masks.items()):
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 4:
            raise ValueError(f"masks[{name!r}] must be 4-D (N, C, H, W), got shape {mask.shape}")
        ax = fig.add_subplot(1, len(masks), i + 1, projection="3d")
        N, C, H, W = mask.shape
        block = mask.reshape(N, C, H * W)                  # voxel axes: x = N, y = C, z = H·W
        colors = np.empty(block.shape, dtype=object)
        colors[...] = "#e6e6e6"
        colors[block] = color
        ax.voxels(np.ones(block.shape, dtype=bool), facecolors=colors, edgecolor="#666666",
                  linewidth=0.4, shade=True, lightsource=light)
        ax.set_box_aspect((N, C, H * W))
        ax.view_init(elev=22, azim=-58)
        ax.set_axis_off()
        ax.text(N / 2, -0.6, -0.2, "N", ha="center", va="top", fontsize=10)
        ax.text(N + 0.4, C / 2, -0.2, "C", ha="left", va="top", fontsize=10)
        ax.text(-0.4, 0, H * W / 2, "H·W", ha="right", va="center", fontsize=10)
        ax.set_title(name, fontsize=11, pad=-4)
        if name in captions:
            ax.text2D(0.5, -0.02, captions[name], transform=ax.transAxes, ha="center", va="top",
                      fontsize=9)
    top = 0.92
    if title:
        fig.suptitle(title, fontsize=12)
        top = 0.82
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.14, top=top, wspace=0.0)
    return fig
