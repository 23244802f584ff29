"""Residual connections, SkipInit, and the measurements of deep networks at initialization.

A residual block computes ``out = x + branch(x)``: the *residual stream* ``x`` passes
through unchanged and the branch adds a correction. Stacking k blocks sums k branches
onto the input, so what happens to the stream's variance with depth decides whether a
deep residual network starts out as a near-identity map (trainable) or as an exploding
one. Here: the ``Residual`` layer, the ``SkipInit`` scalar (De & Smith 2020), a builder
for the fully connected residual networks of notebook 08 with four kinds of branch, and
the two measurements the notebook makes at initialization: the stream's variance after
every block, and the gradient norm of every weight layer and of the input.

Introduced in notebook 08.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_float_array,
    as_generator,
    check_dout,
    check_finite,
    check_int,
    check_model,
    check_real,
    stat_axes,
)
from .batchnorm import BatchNorm
from .conv import Conv2d
from .layers import Layer, Linear, ReLU, Sequential, iter_layers, softmax_cross_entropy

__all__ = [
    "BRANCHES",
    "Residual",
    "SkipInit",
    "gradient_norms",
    "make_resnet",
    "residual_block",
    "stream_variances",
]

#: The kinds of branch ``residual_block`` builds, and what each one is.
BRANCHES = {
    "none": "ReLU → Linear (no normalization)",
    "bn_start": "BN → ReLU → Linear (BN at the start of the branch)",
    "bn": "ReLU → Linear → BN (BN at the end of the branch)",
    "bn_zero_gamma": "ReLU → Linear → BN with γ = 0 at initialization (Goyal et al. 2017)",
    "skipinit": "ReLU → Linear → α·, α = 0 at initialization (SkipInit, De & Smith 2020)",
}


def _check_branch(branch: str) -> str:
    if not isinstance(branch, str) or branch not in BRANCHES:
        raise ValueError(f"branch must be one of {sorted(BRANCHES)}, got {branch!r}")
    return branch


class Residual(Layer):
    """A residual block: ``out = x + branch(x)``.

    The backward adds the two paths the gradient takes: straight through the identity,
    and back through the branch, ``dx = dout + branch.backward(dout)``. Its parameters
    are the branch's, its only child: ``"0.<name>"`` (``Layer.params``).

    Parameters
    ----------
    branch : Layer
        Any layer (usually a ``Sequential``) whose output has the shape of its input.

    Examples
    --------
    >>> block = Residual(Sequential(ReLU(), Linear(3, 3, bias=False, rng=0)))
    >>> x = np.ones((2, 3))
    >>> bool(np.allclose(block.forward(x), x + block.branch.forward(x)))
    True
    >>> sorted(block.params())          # child 0 (the branch), its layer 1, parameter W
    ['0.1.W']

    Introduced in notebook 08.
    """

    cache_names = ("_shape",)

    def __init__(self, branch):
        if not (hasattr(branch, "forward") and hasattr(branch, "backward")):
            raise TypeError(f"branch must be a layer with forward and backward methods, "
                            f"got {branch!r}")
        self.branch = branch
        self._shape = None

    def children(self):
        return [self.branch]

    def forward(self, x):
        """x: (N, ...) -> x + branch(x), same shape."""
        self._shape = None
        x = as_float_array(x, "x")
        out = self.branch.forward(x)
        if np.shape(out) != x.shape:
            raise ValueError(f"the branch must keep the shape of its input for x + branch(x): "
                             f"x has shape {x.shape}, branch(x) has shape {np.shape(out)}")
        self._shape = x.shape
        return x + out

    def backward(self, dout):
        """dout: like the output -> dout + branch.backward(dout)."""
        if self._shape is None:
            raise RuntimeError("Residual.backward called before forward")
        dout = check_dout(dout, self._shape, of="the forward output")
        return dout + self.branch.backward(dout)

    def __repr__(self):
        inner = repr(self.branch).replace("\n", "\n  ")
        return f"Residual(\n  {inner}\n)"


class SkipInit(Layer):
    """Multiply by one learned scalar α: ``out = α·x`` (α starts at 0 by default).

    Put at the end of a residual branch, it makes the block ``x + α·branch(x)``: with
    α = 0 every block is the identity at initialization, without any normalization
    (De & Smith 2020). ``dalpha = Σ dout·x`` over every entry; ``dx = α·dout``.

    Parameters
    ----------
    alpha : float, optional
        The initial value.

    Raises
    ------
    TypeError
        ``alpha`` is not a real number (a bool or a string is refused); ``forward``'s ``x``
        is not numeric.
    ValueError
        ``alpha`` is NaN/inf; ``forward``'s ``x`` is empty or holds NaN/inf.

    Attributes
    ----------
    alpha : ndarray, shape (1,)
        Learned (an array, so that SGD can update it in place).
    dalpha : ndarray, shape (1,)
        Set by ``backward``.

    Examples
    --------
    >>> s = SkipInit(0.5)
    >>> s.forward(np.array([[2.0, -4.0]]))
    array([[ 1., -2.]])
    >>> s.backward(np.array([[1.0, 1.0]])), s.dalpha
    (array([[0.5, 0.5]]), array([-2.]))

    Introduced in notebook 08.
    """

    param_names = ("alpha",)
    cache_names = ("_x",)

    def __init__(self, alpha: float = 0.0, dtype=np.float64):
        if isinstance(alpha, np.ndarray) and alpha.ndim != 0:
            raise ValueError(f"alpha must be a single number, got shape {alpha.shape}")
        self.alpha = np.array([check_real(alpha, "alpha")], dtype=dtype)
        self.dalpha = None
        self._x = None

    def forward(self, x):
        self._x = None
        x = as_float_array(x, "x")
        if x.size == 0:
            raise ValueError(f"x must hold at least one value, got shape {x.shape}")
        check_finite(x, "x")
        self._x = x
        return self.alpha[0] * x

    def backward(self, dout):
        if self._x is None:
            raise RuntimeError("SkipInit.backward called before forward")
        dout = check_dout(dout, self._x.shape, of="the forward output")
        self.dalpha = np.array([np.sum(dout * self._x)], dtype=self.alpha.dtype)
        return self.alpha[0] * dout

    def __repr__(self):
        return f"SkipInit(alpha={self.alpha[0]:g})"


def residual_block(width: int, branch: str = "bn", rng=None) -> Residual:
    """One fully connected residual block ``x + branch(x)`` of the kind ``branch`` names.

    Parameters
    ----------
    width : int
        D, the width of the residual stream (the branch maps (N, D) to (N, D)).
    branch : str, optional
        A key of ``BRANCHES``: ``"none"``, ``"bn_start"``, ``"bn"``, ``"bn_zero_gamma"``
        or ``"skipinit"``. The Linear layer has He initialization and, in the BN branches,
        no bias (BN's β does its job); its bias starts at 0 otherwise.
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    Residual

    Examples
    --------
    >>> residual_block(4, "bn_zero_gamma", rng=0)
    Residual(
      Sequential(
        ReLU(),
        Linear(4, 4, bias=False),
        BatchNorm(4, eps=1e-05, momentum=0.1)
      )
    )

    Introduced in notebook 08.
    """
    width = check_int(width, "width")
    branch = _check_branch(branch)
    rng = as_generator(rng)
    normalized = branch.startswith("bn")
    linear = Linear(width, width, bias=not normalized, rng=rng)
    if branch == "none":
        layers = [ReLU(), linear]
    elif branch == "bn_start":
        layers = [BatchNorm(width), ReLU(), linear]
    elif branch == "skipinit":
        layers = [ReLU(), linear, SkipInit(0.0)]
    else:
        bn = BatchNorm(width)
        if branch == "bn_zero_gamma":
            bn.gamma[:] = 0.0            # the branch outputs β = 0: the block is the identity
        layers = [ReLU(), linear, bn]
    return Residual(Sequential(*layers))


def make_resnet(depth: int, branch: str = "bn", width: int = 32, in_features: int = 64,
                num_classes: int = 10, rng=0) -> Sequential:
    """A fully connected residual network: ``Linear`` stem, ``depth`` blocks, ``Linear`` head.

    ``Linear(in_features, width) → depth × residual_block(width, branch) → ReLU →
    Linear(width, num_classes)``; weights He-initialized from ``rng``. The same ``rng``
    gives the same Linear weights whatever the branch, so the kinds of branch can be
    compared on the same initial weights.

    Parameters
    ----------
    depth : int
        Number of residual blocks (≥ 0).
    branch : str, optional
        A key of ``BRANCHES``.
    width, in_features, num_classes : int, optional
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    Sequential
        ``model[1:depth + 1]`` are the ``Residual`` blocks.

    Examples
    --------
    >>> net = make_resnet(3, "skipinit", width=8)
    >>> net.forward(np.ones((5, 64))).shape
    (5, 10)
    >>> sum(isinstance(layer, Residual) for layer in net.layers)
    3

    Introduced in notebook 08.
    """
    depth = check_int(depth, "depth", minimum=0)
    width = check_int(width, "width")
    in_features = check_int(in_features, "in_features")
    num_classes = check_int(num_classes, "num_classes")
    _check_branch(branch)
    rng = as_generator(rng)
    stem = Linear(in_features, width, rng=rng)
    blocks = [residual_block(width, branch, rng) for _ in range(depth)]
    return Sequential(stem, *blocks, ReLU(), Linear(width, num_classes, rng=rng))


def _stream_variance(out: np.ndarray) -> float:
    """Mean over features (or channels) of the variance over the batch (and pixels)."""
    return float(np.mean(np.var(out, axis=stat_axes(out.ndim))))


def stream_variances(model: Sequential, x) -> np.ndarray:
    """The variance of the residual stream at the input of the first block and after each block.

    Runs ``model.forward(x)`` once in its current mode and reads the output of the layer
    before the first ``Residual`` and of every ``Residual`` layer. "Variance" is the
    variance over the batch (and over the pixels, for images), averaged over the
    features (channels).

    Parameters
    ----------
    model : Sequential
        With ``Residual`` layers among its top-level layers, e.g. from ``make_resnet``.
    x : array_like, shape (N, ...)
        The network's input.

    Returns
    -------
    ndarray, shape (k + 1,)
        Entry 0 is the stream entering the first block, entry j the stream after block j.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((256, 64))
    >>> v = stream_variances(make_resnet(4, "bn"), x)
    >>> len(v), bool(np.all(np.diff(v) > 0))
    (5, True)

    Introduced in notebook 08.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a Sequential with Residual layers, got {type(model).__name__}")
    where = [i for i, layer in enumerate(model.layers) if isinstance(layer, Residual)]
    if not where:
        raise ValueError("model has no Residual layer among its layers")
    if where[0] == 0:
        raise ValueError("the first Residual must follow a stem layer (its input is the stream)")
    model.forward(x)
    return np.array([_stream_variance(model.outputs[i]) for i in [where[0] - 1] + where])


def gradient_norms(model, x, y) -> tuple[np.ndarray, float]:
    """Norms of the loss gradient at initialization: every weight matrix, and the input.

    One forward in the model's current mode, the mean softmax cross-entropy on labels
    ``y``, one backward.

    Parameters
    ----------
    model : Layer
        A classifier ending in logits, shape (N, K).
    x : array_like, shape (N, ...)
    y : array_like of int, shape (N,)

    Returns
    -------
    weight_norms : ndarray, shape (L,)
        ``‖∂loss/∂W‖`` (Frobenius norm) of every ``Linear`` and ``Conv2d`` layer, in order
        from the input to the output.
    input_norm : float
        ``‖∂loss/∂x‖``, the gradient that reaches the input.

    Raises
    ------
    TypeError
        ``model`` is not a layer (no forward/backward), or ``x`` is not numeric.
    ValueError
        Whatever the model's layers and ``softmax_cross_entropy`` refuse in ``x``, ``y``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((32, 64)), rng.integers(0, 10, 32)
    >>> norms, dx_norm = gradient_norms(make_resnet(2, "bn"), x, y)
    >>> norms.shape, bool(dx_norm > 0)
    ((4,), True)

    Introduced in notebook 08.
    """
    check_model(model)
    x = as_float_array(x, "x")
    logits = model.forward(x)
    _, dlogits = softmax_cross_entropy(logits, y)
    dx = model.backward(dlogits)
    weights = [layer for layer in iter_layers(model) if isinstance(layer, (Linear, Conv2d))]
    return (np.array([float(np.linalg.norm(layer.dW)) for layer in weights]),
            float(np.linalg.norm(dx)))
