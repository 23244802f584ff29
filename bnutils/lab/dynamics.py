"""Watching a network train: update-to-data ratios, histograms over time, gradient shift.

Two instruments that record a network *during* training, step by step::

    trace = trace_training(model, X, y, lr=0.1, steps=300, batch_size=60, record_every=10)
    trace.ratios                 # (steps, L): log10 ||lr * dW|| / ||W||, one column per Linear
    trace.activations[i]         # (R, N * D): layer i's outputs at the R recorded steps
    image = histogram_image(trace.activations[i], edges)     # (R, bins), for plt.imshow

    shift = trace_gradient_shift(model, X, y, lr=0.1, steps=200, batch_size=60, every=10)
    shift.l2, shift.cosine       # (P, L): Santurkar et al.'s optimization-based ICS

The update-to-data ratio is how far one step moves a weight matrix relative to its size
(Karpathy's "makemore" lectures watch it per layer; about -3, a thousandth per step, is
the usual rule of thumb). The gradient shift is the second definition of internal
covariate shift in Santurkar, Tsipras, Ilyas and Madry, *How Does Batch Normalization Help
Optimization?* (NeurIPS 2018, Definition 2.1): for layer i, the change of its gradient on
the same batch when only the layers before it take their step.

Both work on a ``bnutils.layers.Sequential`` (e.g. ``make_mlp``) trained by plain SGD
with the softmax cross-entropy loss, the course's training step.

Introduced in notebook 05 (and notebook 07 for the gradient shift).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from bnutils import NonFiniteError  # what a layer raises on NaN/inf (as in train)
from bnutils.layers import Linear, ReLU, Sequential, Sigmoid, Tanh, softmax_cross_entropy
from bnutils.training import minibatches, sgd_step

ACTIVATIONS = (ReLU, Sigmoid, Tanh)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_sequential(model) -> None:
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils.layers.Sequential, got {type(model).__name__}")


def _check_data(X, y):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be a matrix (N, D), got shape {X.shape}")
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},) to match X, got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or inf")
    return X, y


def _check_run(model, X, y, lr, steps, batch_size, seed):
    """The arguments of a training run that records as it goes, checked (both runs here
    take them): returns ``X, y, lr, steps, batch_size`` converted."""
    _check_sequential(model)
    X, y = _check_data(X, y)
    lr = _positive_float(lr, "lr")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return X, y, lr, steps, batch_size


def update_to_data_ratio(W, dW, lr) -> float:
    """log10 of ``||lr * dW|| / ||W||`` (Frobenius norms): how far one SGD step moves W.

    Parameters
    ----------
    W, dW : ndarray, same shape
        A weight matrix and its gradient.
    lr : float
        The learning rate of the step.

    Returns
    -------
    float
        -3 means the step changes W by a thousandth of its size; ``-inf`` for a zero gradient.

    Examples
    --------
    >>> round(update_to_data_ratio(np.ones((2, 2)), np.full((2, 2), 0.5), lr=0.02), 6)
    -2.0
    """
    W, dW = np.asarray(W, dtype=float), np.asarray(dW, dtype=float)
    if W.shape != dW.shape:
        raise ValueError(f"W and dW must have the same shape, got {W.shape} and {dW.shape}")
    lr = _positive_float(lr, "lr")
    with np.errstate(over="ignore"):          # a blown-up W or dW gives an inf ratio, not a warning
        norm_w = np.linalg.norm(W)
    if norm_w == 0:
        raise ValueError("W is all zeros: the ratio ||lr * dW|| / ||W|| is undefined")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return float(np.log10(lr * np.linalg.norm(dW) / norm_w))


def linear_indices(model) -> list[int]:
    """Positions of the ``Linear`` layers in a ``Sequential``."""
    _check_sequential(model)
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, Linear)]


def activation_positions(model) -> list[int]:
    """Positions of the activation layers (ReLU, Sigmoid, Tanh) in a ``Sequential``."""
    _check_sequential(model)
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, ACTIVATIONS)]


def forward_backward(model, x, y, watch=()):
    """One forward and backward pass that also returns what the ``watch`` layers saw.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, D); y : ndarray of int, shape (N,)
    watch : sequence of int
        Layer positions whose output, and the gradient of the loss with respect to that
        output, are returned.

    Returns
    -------
    loss : float
    outputs, grads : dict int -> ndarray
        ``outputs[i]`` is layer i's output, ``grads[i]`` dL/d(output), each (N, D_i).
        The layers' parameter gradients (``model.grads()``) are set as by ``backward``.
    """
    _check_sequential(model)
    watch = [int(i) for i in watch]
    for i in watch:
        if not 0 <= i < len(model.layers):
            raise ValueError(f"watch holds layer {i}, but the model has layers 0-{len(model.layers) - 1}")
    logits = model.forward(x)
    loss, dout = softmax_cross_entropy(logits, y)
    outputs = {i: model.outputs[i] for i in watch}
    grads = {}
    for i in reversed(range(len(model.layers))):
        if i in outputs:
            grads[i] = dout
        dout = model.layers[i].backward(dout)
    return float(loss), outputs, grads


def _guarded(model, x, y, watch=()):
    """``forward_backward`` during training: a blow-up (NaN/inf) gives a NaN loss, as in ``train``."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            return forward_backward(model, x, y, watch)
        except NonFiniteError:
            return float("nan"), {}, {}


@dataclass
class TrainingTrace:
    """What ``trace_training`` recorded.

    Attributes
    ----------
    linear : list of int
        Positions of the Linear layers, the columns of ``ratios``.
    ratios : ndarray, shape (T, L)
        log10 ||lr·dW|| / ||W|| of each Linear layer at each of the T steps (W before the step).
    loss : ndarray, shape (T,)
    record_steps : ndarray, shape (R,)
        The steps (1-based) at which ``activations`` and ``gradients`` were taken.
    activations, gradients : dict int -> ndarray, shape (R, N * D_i)
        The watched layers' outputs on the step's batch, and dL/d(output), flattened.
    diverged : bool
        The loss became NaN or inf; the arrays stop at the last finite step.
    """

    linear: list
    ratios: np.ndarray
    loss: np.ndarray
    record_steps: np.ndarray
    activations: dict = field(default_factory=dict)
    gradients: dict = field(default_factory=dict)
    diverged: bool = False


def trace_training(model, X, y, *, lr, steps, batch_size=60, seed=0, record_every=10,
                   watch=None) -> TrainingTrace:
    """Train ``model`` by plain SGD and record update-to-data ratios and histograms' raw values.

    The batches are drawn exactly as ``bnutils.training.train`` draws them (same seed, same
    order), and each step is the same forward, backward and update.

    Parameters
    ----------
    model : Sequential
        Trained in place.
    X : ndarray, shape (N, D); y : ndarray of int, shape (N,)
    lr : float; steps, batch_size : int; seed : int
    record_every : int, optional
        Record the watched layers' outputs and gradients at steps 1, 1 + record_every, ….
    watch : sequence of int, optional
        Layer positions to record; by default every activation layer.

    Returns
    -------
    TrainingTrace

    Introduced in notebook 05.
    """
    X, y, lr, steps, batch_size = _check_run(model, X, y, lr, steps, batch_size, seed)
    record_every = _positive_int(record_every, "record_every")
    watch = activation_positions(model) if watch is None else [int(i) for i in watch]
    linear = linear_indices(model)
    if not linear:
        raise ValueError("model has no Linear layer: there is no update-to-data ratio to record")
    rng = np.random.default_rng(seed)
    ratios, losses, record_steps = [], [], []
    acts = {i: [] for i in watch}
    grads = {i: [] for i in watch}
    model.train()
    step, diverged = 0, False
    while step < steps and not diverged:
        for idx in minibatches(len(X), batch_size, rng):
            recording = step % record_every == 0
            loss, outs, gouts = _guarded(model, X[idx], y[idx], watch if recording else ())
            if not np.isfinite(loss) or not all(np.all(np.isfinite(model.layers[i].dW)) for i in linear):
                diverged = True
                break
            # the ratio of the step about to be taken: W before the update, as Karpathy's
            ratios.append([update_to_data_ratio(model.layers[i].W, model.layers[i].dW, lr)
                           for i in linear])
            losses.append(loss)
            if recording:
                record_steps.append(step + 1)
                for i in watch:
                    acts[i].append(outs[i].ravel().copy())
                    grads[i].append(gouts[i].ravel().copy())
            sgd_step(model, lr)
            step += 1
            if step >= steps:
                break
    return TrainingTrace(linear=linear, ratios=np.array(ratios, dtype=float).reshape(-1, len(linear)),
                         loss=np.array(losses), record_steps=np.array(record_steps, dtype=int),
                         activations={i: np.array(v) for i, v in acts.items()},
                         gradients={i: np.array(v) for i, v in grads.items()}, diverged=diverged)


def histogram_image(samples, edges) -> np.ndarray:
    """One histogram per row of ``samples``: a (steps x bins) image of a distribution over time.

    Parameters
    ----------
    samples : ndarray, shape (R, n)
        R recordings of n values (e.g. ``TrainingTrace.activations[i]``).
    edges : ndarray, shape (bins + 1,)
        Increasing bin edges; values outside them are not counted.

    Returns
    -------
    ndarray, shape (R, bins)
        The fraction of each row's n values in each bin (a row sums to at most 1).

    Examples
    --------
    >>> histogram_image(np.array([[0.1, 0.2, 0.9, 5.0]]), edges=[0.0, 0.5, 1.0])
    array([[0.5 , 0.25]])

    Introduced in notebook 05.
    """
    samples = np.asarray(samples, dtype=float)
    edges = np.asarray(edges, dtype=float)
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise ValueError(f"samples must be a matrix (recordings, values), got shape {samples.shape}")
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("edges must be a 1-d increasing sequence of at least two bin edges")
    return np.array([np.histogram(row, bins=edges)[0] for row in samples]) / samples.shape[1]


def gradient_shift(model, x, y, lr) -> dict:
    """Santurkar et al.'s ICS of each Linear layer at one step: how its gradient changes
    when only the layers before it take their SGD step.

    For Linear layer i, ``G`` is the gradient of the loss on the batch ``(x, y)`` with respect
    to its weights; ``G'`` is the same gradient, on the same batch, after every parameter of
    the layers before layer i has moved by ``-lr`` times its own gradient (layer i and the
    layers after it unchanged). ``model`` itself is not changed (the probes run on copies,
    so BN's running statistics do not move either).

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, D); y : ndarray of int, shape (N,)
    lr : float

    Returns
    -------
    dict
        ``"layers"``: positions of the Linear layers after the first (the first has no
        layer before it); ``"l2"``: ||G - G'||; ``"relative"``: ||G - G'|| / ||G||;
        ``"cosine"``: cos(G, G'); each an ndarray of shape (L,).
    """
    _check_sequential(model)
    x, y = _check_data(x, y)
    lr = _positive_float(lr, "lr")
    layers = linear_indices(model)[1:]
    if not layers:
        raise ValueError("model needs at least two Linear layers: the first has no layer before it")
    base = copy.deepcopy(model)
    base.train()
    forward_backward(base, x, y)
    l2, rel, cos = [], [], []
    for i in layers:
        g = base.layers[i].dW.copy()
        moved = copy.deepcopy(base)
        for layer in moved.layers[:i]:           # the step of the layers before layer i
            grads = layer.grads()
            for name, p in layer.params().items():
                p -= lr * grads[name]
        forward_backward(moved, x, y)
        g2 = moved.layers[i].dW
        diff = np.linalg.norm(g - g2)
        norms = np.linalg.norm(g) * np.linalg.norm(g2)
        l2.append(diff)
        rel.append(diff / np.linalg.norm(g) if np.linalg.norm(g) > 0 else np.nan)
        cos.append(float(np.sum(g * g2) / norms) if norms > 0 else np.nan)
    return {"layers": layers, "l2": np.array(l2), "relative": np.array(rel), "cosine": np.array(cos)}


@dataclass
class GradientShiftTrace:
    """What ``trace_gradient_shift`` recorded: P probes of L layers each.

    Attributes
    ----------
    layers : list of int
        The Linear layers probed (every one but the first).
    steps : ndarray, shape (P,)
        The steps (1-based) probed, before their update.
    l2, relative, cosine : ndarray, shape (P, L)
        See ``gradient_shift``.
    loss : ndarray, shape (T,)
    diverged : bool
    """

    layers: list
    steps: np.ndarray
    l2: np.ndarray
    relative: np.ndarray
    cosine: np.ndarray
    loss: np.ndarray
    diverged: bool = False


def trace_gradient_shift(model, X, y, *, lr, steps, batch_size=60, seed=0,
                         every=10) -> GradientShiftTrace:
    """Train ``model`` by plain SGD (batches as ``bnutils.training.train`` draws them) and
    measure ``gradient_shift`` on the step's own batch at steps 1, 1 + every, ….

    Returns
    -------
    GradientShiftTrace

    Introduced in notebook 07.
    """
    X, y, lr, steps, batch_size = _check_run(model, X, y, lr, steps, batch_size, seed)
    every = _positive_int(every, "every")
    rng = np.random.default_rng(seed)
    probed, rows, losses = [], [], []
    layers = linear_indices(model)[1:]
    model.train()
    step, diverged = 0, False
    while step < steps and not diverged:
        for idx in minibatches(len(X), batch_size, rng):
            loss, _, _ = _guarded(model, X[idx], y[idx])
            if not np.isfinite(loss):
                diverged = True
                break
            if step % every == 0:           # probed before the update, on the step's batch
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    rows.append(gradient_shift(model, X[idx], y[idx], lr))
                probed.append(step + 1)
            losses.append(loss)
            sgd_step(model, lr)
            step += 1
            if step >= steps:
                break

    def stack(key):
        return np.array([r[key] for r in rows], dtype=float).reshape(-1, len(layers))

    return GradientShiftTrace(layers=layers, steps=np.array(probed, dtype=int), l2=stack("l2"),
                              relative=stack("relative"), cosine=stack("cosine"),
                              loss=np.array(losses), diverged=diverged)
