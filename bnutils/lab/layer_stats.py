"""Looking inside a network, layer by layer: statistics, perturbations.

Everything here works on a ``bnutils.layers.Sequential`` (e.g. from
``bnutils.models.make_mlp``) and never changes its parameters::

    idx = activation_indices(model)            # where the ReLU/Sigmoid/Tanh layers sit
    stats = layer_statistics(model, x, y)      # one LayerStats per activation layer
    print(format_layer_table(stats))
    change = perturbation_propagation(model, x, rel_size=0.01)   # (len(model),)

``check_sequential`` is the one check of the ``model`` argument of ``bnutils.lab`` (a
helper of the package, not in ``__all__``).
How saturated an activation is lives in ``bnutils.lab.saturation``; the training-time
recorder in ``bnutils.lab.recorders``.

Introduced in notebook 02 (and reused in notebooks 05 and 07).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_generator, check_positive
from ..layers import Linear, ReLU, Sequential, Sigmoid, Tanh, softmax_cross_entropy
from .saturation import saturation_fraction

__all__ = [
    "LayerStats",
    "activation_indices",
    "format_layer_table",
    "layer_statistics",
    "perturbation_propagation",
]


_ACTIVATIONS = {Tanh: "tanh", Sigmoid: "sigmoid", ReLU: "relu"}
_DIRECTION_STREAM = 20150211  # keeps perturbation directions apart from weight-init streams


def check_sequential(model) -> None:
    """Refuse a ``model`` that is not a ``bnutils.layers.Sequential``, naming the argument.

    The one check of this package's ``model`` arguments: they read ``model.layers`` and
    ``model.outputs``, which only a Sequential has.

    Examples
    --------
    >>> check_sequential([1, 2])
    Traceback (most recent call last):
        ...
    TypeError: model must be a bnutils.layers.Sequential (e.g. from make_mlp), got list
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils.layers.Sequential (e.g. from make_mlp), "
                        f"got {type(model).__name__}")


def _activation_name(layer) -> str | None:
    for cls, name in _ACTIVATIONS.items():
        if isinstance(layer, cls):
            return name
    return None


def activation_indices(model) -> list[int]:
    """Positions in ``model`` (a Sequential) of its ReLU, Sigmoid and Tanh layers.

    The input of the activation at position ``i`` is ``model.outputs[i - 1]``.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> activation_indices(make_mlp([4, 8, 8, 3], "tanh"))
    [1, 3]

    Introduced in notebook 02.
    """
    check_sequential(model)
    return [i for i, layer in enumerate(model.layers) if _activation_name(layer) is not None]



@dataclass(frozen=True)
class LayerStats:
    """Statistics of one activation layer for one batch (see ``layer_statistics``).

    Attributes
    ----------
    index : int
        Position of the activation layer in the Sequential.
    depth : int
        1 for the first hidden layer, 2 for the second, ...
    activation : str
        "tanh", "sigmoid" or "relu".
    mean, std : float
        Of the activation's output over the batch and the units.
    saturation : float
        ``saturation_fraction`` of the output.
    grad_std : float
        Standard deviation of ∂loss/∂(output of this layer): the gradient flowing back
        into this layer.
    weight_grad_norm, weight_norm : float
        Frobenius norms of ∂loss/∂W and of W for the Linear layer that feeds this
        activation.
    out : ndarray, shape (N, width)
        The output itself (for histograms).
    """

    index: int
    depth: int
    activation: str
    mean: float
    std: float
    saturation: float
    grad_std: float
    weight_grad_norm: float
    weight_norm: float
    out: np.ndarray = field(repr=False, compare=False)


def layer_statistics(model, x, y, loss_fn=softmax_cross_entropy) -> list[LayerStats]:
    """Forward and backward one batch; describe every activation layer.

    The model runs in its current mode (in training mode a BatchNorm layer also updates
    its running statistics, as one training forward would). Parameters are not changed;
    the layers' stored gradients (``dW`` …) are overwritten.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, D)
    y : ndarray
        Targets for ``loss_fn`` (class labels for the default softmax cross-entropy).
    loss_fn : callable, optional
        ``loss, dlogits = loss_fn(logits, y)``.

    Returns
    -------
    list of LayerStats
        One per activation layer, in order.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> model = make_mlp([4, 8, 8, 3], "tanh", init="lecun", rng=0)
    >>> x = np.random.default_rng(0).standard_normal((16, 4))
    >>> stats = layer_statistics(model, x, np.zeros(16, dtype=int))
    >>> [s.depth for s in stats]
    [1, 2]

    Introduced in notebook 02.
    """
    check_sequential(model)
    logits = model.forward(x)
    _, dout = loss_fn(logits, y)
    douts = [None] * len(model)
    for i in range(len(model) - 1, -1, -1):
        douts[i] = dout                    # ∂loss/∂(output of layer i)
        dout = model.layers[i].backward(dout)
    stats = []
    last_linear = None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Linear):
            last_linear = layer
            continue
        name = _activation_name(layer)
        if name is None:
            continue
        out = np.asarray(model.outputs[i])
        stats.append(LayerStats(
            index=i, depth=len(stats) + 1, activation=name,
            mean=float(out.mean()), std=float(out.std()),
            saturation=saturation_fraction(out, name),
            grad_std=float(np.std(douts[i])),
            weight_grad_norm=float("nan") if last_linear is None else float(np.linalg.norm(last_linear.dW)),
            weight_norm=float("nan") if last_linear is None else float(np.linalg.norm(last_linear.W)),
            out=out,
        ))
    return stats


def format_layer_table(stats: Sequence[LayerStats]) -> str:
    """A fixed-width table of ``layer_statistics`` results, deterministic to print.

    Raises
    ------
    TypeError
        ``stats`` is not a sequence of ``LayerStats``.

    Examples
    --------
    >>> print(format_layer_table([]).splitlines()[0])
    layer    mean    std  saturated  grad std (∂L/∂a)  |∂L/∂W|

    Introduced in notebook 02.
    """
    if isinstance(stats, (str, bytes)) or not hasattr(stats, "__iter__"):
        raise TypeError(f"stats must be the list of LayerStats returned by layer_statistics, "
                        f"got {type(stats).__name__}")
    stats = list(stats)
    for i, s in enumerate(stats):
        if not isinstance(s, LayerStats):
            raise TypeError(f"stats[{i}] must be a LayerStats (from layer_statistics), got "
                            f"{type(s).__name__}")
    lines = ["layer    mean    std  saturated  grad std (∂L/∂a)  |∂L/∂W|"]
    for s in stats:
        lines.append(f"{s.depth:5d}  {round(s.mean, 3) + 0.0:6.3f}  {s.std:5.3f}  "
                     f"{100 * s.saturation:7.1f} %  {s.grad_std:16.2e}  {s.weight_grad_norm:7.2e}")
    return "\n".join(lines)


def perturbation_propagation(model, x, rel_size: float = 0.01, layers=None,
                             rng=0) -> np.ndarray:
    """Relative change of every layer's output when some weights change by ``rel_size``.

    Each chosen Linear layer's ``W`` is replaced by ``W + ΔW``, with ``ΔW`` a random
    direction of Frobenius norm ``rel_size · ‖W‖`` (a 1 % change for 0.01); the batch
    ``x`` goes through the network before and after, and the function returns, for each
    layer ``j``, ``‖out'_j - out_j‖ / ‖out_j‖`` (Frobenius norms over the batch).
    The weights are restored afterwards.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, D)
    rel_size : float, optional
    layers : sequence of int, optional
        Positions (in ``model``) of the Linear layers to perturb; by default the first
        Linear layer only.
    rng : int or numpy.random.Generator, optional
        Seeds the directions. An integer seed gives a stream different from
        ``default_rng(seed)``, so the direction is never the model's own initial weights
        even when the model was built with the same seed.

    Returns
    -------
    ndarray, shape (len(model),)
        Select the activations with ``activation_indices(model)``.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> model = make_mlp([4, 8, 3], "tanh", rng=0)
    >>> change = perturbation_propagation(model, np.ones((5, 4)), rel_size=0.01)
    >>> change.shape
    (3,)

    Introduced in notebook 02.
    """
    check_sequential(model)
    rel_size = check_positive(rel_size, "rel_size")
    if layers is None:
        linear = [i for i, layer in enumerate(model.layers) if isinstance(layer, Linear)]
        if not linear:
            raise ValueError("model has no Linear layer to perturb")
        layers = linear[:1]
    for i in layers:
        if not (isinstance(i, (int, np.integer)) and 0 <= i < len(model)
                and isinstance(model.layers[i], Linear)):
            raise ValueError(f"layers must hold positions of Linear layers in the model; "
                             f"{i!r} is not one")
    as_generator(rng)       # only to reject a bad rng with a message naming it
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        # Not default_rng(rng): a model built with make_mlp(..., rng=rng) drew its weights
        # from that very stream, and the "random" direction would then be W itself.
        rng = np.random.default_rng([int(rng), _DIRECTION_STREAM])
    rng = np.random.default_rng(rng)
    model.forward(x)
    before = [np.array(o, copy=True) for o in model.outputs]
    saved = {i: model.layers[i].W for i in layers}
    try:
        for i in layers:
            W = saved[i]
            direction = rng.standard_normal(W.shape)
            model.layers[i].W = W + rel_size * np.linalg.norm(W) * direction / np.linalg.norm(direction)
        model.forward(x)
        after = model.outputs
        change = np.array([np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)
                           for a, b in zip(after, before)])
    finally:
        for i, W in saved.items():
            model.layers[i].W = W
    return change
