"""Layers with one small interface, enough to build and train an MLP in NumPy.

Every layer has ``forward(x) -> out`` and ``backward(dout) -> dx``; layers with
parameters expose them in ``params()`` and their gradients (after ``backward``) in
``grads()``, both dicts keyed by the same names. ``train()`` and ``eval()`` switch the
mode (only ``BatchNorm`` behaves differently) and return the layer, so
``model.eval()`` chains. The maths lives in the pure functions of
``bnutils.batchnorm``; the classes only keep state.

Introduced in notebook 01 (Linear, Sequential, first trained), notebook 02
(activations), notebook 03 (BatchNorm) and notebook 05 (training).
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_finite, check_fraction, check_positive
from .batchnorm import (
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference,
    update_running_stats,
)

__all__ = [
    "BatchNorm",
    "Layer",
    "Linear",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "accuracy",
    "mse_loss",
    "softmax_cross_entropy",
]


class Layer:
    """Base class: no parameters, a ``training`` flag, ``train()``/``eval()``."""

    training: bool = True

    def params(self) -> dict:
        """Parameter arrays by name (the live arrays, updated in place by SGD)."""
        return {}

    def grads(self) -> dict:
        """Gradients of the parameters from the last ``backward``, by the same names."""
        return {}

    def train(self):
        """Switch to training mode; returns ``self``."""
        self.training = True
        return self

    def eval(self):
        """Switch to evaluation mode; returns ``self``."""
        self.training = False
        return self

    def __call__(self, x):
        return self.forward(x)

    def _need_forward(self, attr):
        if getattr(self, attr, None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")

    def _need_backward(self, attr):
        if getattr(self, attr, None) is None:
            raise RuntimeError(f"{type(self).__name__}.grads() called before backward")

    @staticmethod
    def _check_dout(dout, shape):
        """``dout`` as a float array of the forward output's shape (no silent broadcasting)."""
        dout = as_float_array(dout, "dout")
        if dout.shape != tuple(shape):
            raise ValueError(f"dout must have the shape of the forward output, {tuple(shape)}; "
                             f"got {dout.shape}")
        check_finite(dout, "dout")
        return dout


class Linear(Layer):
    """Fully connected layer ``out = x @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, optional
        Whether the layer has a bias ``b`` (a bias right before BN is redundant).
    init : {"he", "xavier"} or float, optional
        Weight initialization: He (std √(2/in), for ReLU); "xavier", std √(1/in), for
        sigmoid/tanh — Glorot's √(2/(in+out)) when in = out, also known as LeCun's
        initialization; or a float: the standard deviation itself.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (seeded for reproducibility).
    dtype : numpy dtype, optional

    Attributes
    ----------
    W : ndarray, shape (in_features, out_features)
    b : ndarray, shape (out_features,) or None

    Examples
    --------
    >>> layer = Linear(3, 2, rng=0)
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)

    Introduced in notebook 02.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="he",
                 rng=None, dtype=np.float64):
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(init, str):
            stds = {"he": np.sqrt(2.0 / in_features), "xavier": np.sqrt(1.0 / in_features)}
            if init not in stds:
                raise ValueError(f"init must be 'he', 'xavier' or a positive float, got {init!r}")
            std = stds[init]
        else:
            std = check_positive(init, "init (the weight standard deviation)")
        rng = np.random.default_rng(rng)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.W = (rng.standard_normal((in_features, out_features)) * std).astype(dtype)
        self.b = np.zeros(out_features, dtype) if bias else None
        self._x = None
        self.dW = self.db = None

    def params(self):
        return {"W": self.W} if self.b is None else {"W": self.W, "b": self.b}

    def grads(self):
        self._need_backward("dW")
        return {"W": self.dW} if self.b is None else {"W": self.dW, "b": self.db}

    def forward(self, x):
        """x: (N, in_features) -> out: (N, out_features)."""
        x = as_float_array(x, "x")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects x of shape "
                             f"(N, {self.in_features}); got {x.shape}")
        check_finite(x, "x")
        self._x = x
        out = x @ self.W
        return out if self.b is None else out + self.b

    def backward(self, dout):
        """dout: (N, out_features) -> dx: (N, in_features); sets ``dW`` and ``db``."""
        self._need_forward("_x")
        dout = self._check_dout(dout, (self._x.shape[0], self.out_features))
        self.dW = self._x.T @ dout
        if self.b is not None:
            self.db = dout.sum(axis=0)
        return dout @ self.W.T

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.b is not None})"


class BatchNorm(Layer):
    """Batch Normalization layer: batch statistics in training, running ones in eval.

    A thin stateful wrapper around ``batchnorm_forward``/``batchnorm_backward`` (train)
    and ``batchnorm_inference`` (eval). Works on (N, D) and (N, C, H, W) inputs.

    Parameters
    ----------
    num_features : int
        D or C.
    eps : float, optional
    momentum : float in [0, 1], optional
        PyTorch's convention: ``running = (1 - momentum) * running + momentum * batch``.
    dtype : numpy dtype, optional

    Attributes
    ----------
    gamma, beta : ndarray, shape (num_features,)
        Learned; start at 1 and 0.
    running_mean, running_var : ndarray, shape (num_features,)
        Not learned: updated in every training-mode forward; start at 0 and 1.
    dgamma, dbeta : ndarray, shape (num_features,)
        Set by ``backward``.

    Examples
    --------
    >>> bn = BatchNorm(2)
    >>> out = bn.forward(np.array([[1.0, 2.0], [3.0, 6.0]]))
    >>> np.round(bn.running_mean, 3)
    array([0.2, 0.4])
    >>> bn.eval().forward(np.array([[1.0, 2.0]])).shape
    (1, 2)

    Introduced in notebook 03.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float64):
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)):
            raise TypeError(f"num_features must be an integer, got {num_features!r}")
        if num_features < 1:
            raise ValueError(f"num_features must be ≥ 1, got {num_features}")
        self.num_features = int(num_features)
        self.eps = check_positive(eps, "eps")
        self.momentum = check_fraction(momentum, "momentum")
        self.gamma = np.ones(num_features, dtype)
        self.beta = np.zeros(num_features, dtype)
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)
        self.training = True
        self._cache = None
        self._eval_scale = None
        self.dgamma = self.dbeta = None

    def params(self):
        return {"gamma": self.gamma, "beta": self.beta}

    def grads(self):
        self._need_backward("dgamma")
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def _check_width(self, x):
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm(num_features={self.num_features}) expects x of shape "
                             f"(N, {self.num_features}) or (N, {self.num_features}, H, W); "
                             f"got {x.shape}")

    def forward(self, x):
        """Normalize ``x``; in training mode also update the running statistics."""
        x = as_float_array(x, "x")
        self._check_width(x)
        if self.training:
            out, cache = batchnorm_forward(x, self.gamma, self.beta, self.eps)
            self.running_mean, self.running_var = update_running_stats(
                self.running_mean, self.running_var, cache, self.momentum)
            self._cache, self._eval_scale = cache, None
            return out
        out = batchnorm_inference(x, self.gamma, self.beta, self.running_mean,
                                  self.running_var, self.eps)
        # Eval-mode BN is an affine map; keep what its backward needs (frozen-BN fine-tuning).
        inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
        axes = (0,) if out.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if out.ndim == 2 else (1, -1, 1, 1)
        x_hat = (x - self.running_mean.reshape(shape)) * inv_std.reshape(shape)
        self._cache, self._eval_scale = None, (x_hat, inv_std, axes, shape)
        return out

    def backward(self, dout):
        """Gradient w.r.t. the input; sets ``dgamma`` and ``dbeta``."""
        if self._cache is not None:
            dx, self.dgamma, self.dbeta = batchnorm_backward(dout, self._cache)
            return dx
        self._need_forward("_eval_scale")
        x_hat, inv_std, axes, shape = self._eval_scale
        dout = self._check_dout(dout, x_hat.shape)
        self.dbeta = dout.sum(axis=axes)
        self.dgamma = np.sum(dout * x_hat, axis=axes)
        return dout * (self.gamma * inv_std).reshape(shape)

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps:g}, momentum={self.momentum:g})"


class ReLU(Layer):
    """``out = max(0, x)``; the gradient passes where ``x > 0``.

    Examples
    --------
    >>> relu = ReLU()
    >>> relu.forward(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
    >>> relu.backward(np.array([[5.0, 5.0]]))
    array([[0., 5.]])

    Introduced in notebook 02.
    """

    def forward(self, x):
        x = as_float_array(x, "x")
        self._mask = x > 0
        return np.where(self._mask, x, x.dtype.type(0))

    def backward(self, dout):
        self._need_forward("_mask")
        return self._check_dout(dout, self._mask.shape) * self._mask

    def __repr__(self):
        return "ReLU()"


class Sigmoid(Layer):
    """``out = 1 / (1 + exp(-x))``, computed without overflow; ``dx = dout·out·(1 − out)``.

    Examples
    --------
    >>> sig = Sigmoid()
    >>> sig.forward(np.array([[-1000.0, 0.0, 1000.0]]))
    array([[0. , 0.5, 1. ]])
    >>> sig.backward(np.ones((1, 3)))          # at most 1/4, and ~0 when saturated
    array([[0.  , 0.25, 0.  ]])

    Introduced in notebook 02.
    """

    def forward(self, x):
        x = as_float_array(x, "x")
        # exp of a non-positive number never overflows: use the form that needs one.
        e = np.exp(-np.abs(x))
        self._out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self._out

    def backward(self, dout):
        self._need_forward("_out")
        return self._check_dout(dout, self._out.shape) * self._out * (1.0 - self._out)

    def __repr__(self):
        return "Sigmoid()"


class Tanh(Layer):
    """``out = tanh(x)``; ``dx = dout·(1 − out²)``.

    Examples
    --------
    >>> t = Tanh()
    >>> np.round(t.forward(np.array([[0.0, 1.0]])), 4)
    array([[0.   , 0.7616]])
    >>> np.round(t.backward(np.ones((1, 2))), 4)
    array([[1.  , 0.42]])

    Introduced in notebook 02.
    """

    def forward(self, x):
        self._out = np.tanh(as_float_array(x, "x"))
        return self._out

    def backward(self, dout):
        self._need_forward("_out")
        return self._check_dout(dout, self._out.shape) * (1.0 - self._out**2)

    def __repr__(self):
        return "Tanh()"


class Sequential(Layer):
    """Layers applied in order. ``outputs`` keeps each layer's output of the last forward.

    Parameters
    ----------
    *layers : Layer

    Examples
    --------
    >>> net = Sequential(Linear(4, 8, rng=0), BatchNorm(8), ReLU(), Linear(8, 3, rng=1))
    >>> net.forward(np.ones((5, 4))).shape
    (5, 3)
    >>> len(net.outputs)
    4

    Introduced in notebook 02.
    """

    def __init__(self, *layers: Layer):
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not (hasattr(layer, "forward") and hasattr(layer, "backward")):
                raise TypeError(f"layer {i} ({layer!r}) has no forward/backward methods")
        self.layers = list(layers)
        self.outputs: list = []

    def forward(self, x):
        self.outputs = []
        for layer in self.layers:
            x = layer.forward(x)
            self.outputs.append(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def train(self):
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self):
        self.training = False
        for layer in self.layers:
            layer.eval()
        return self

    def params(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params().items()}

    def grads(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads().items()}

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"


def softmax_cross_entropy(logits, y):
    """Mean softmax cross-entropy loss and its gradient w.r.t. the logits.

    Parameters
    ----------
    logits : array_like, shape (N, K)
    y : array_like of int, shape (N,)
        Class labels in ``0 .. K-1``.

    Returns
    -------
    loss : float
    dlogits : ndarray, shape (N, K)
        ``(softmax(logits) - onehot(y)) / N``.

    Examples
    --------
    >>> loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6) == round(float(np.log(4)), 6)
    True

    Introduced in notebook 02.
    """
    logits = as_float_array(logits, "logits")
    y = np.asarray(y)
    if logits.ndim != 2 or 0 in logits.shape:
        raise ValueError(f"logits must have shape (N, K) with N ≥ 1 samples and K ≥ 1 classes, "
                         f"got {logits.shape}")
    if y.shape != (logits.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"y must hold {logits.shape[0]} integer labels, shape ({logits.shape[0]},); "
                         f"got shape {y.shape}, dtype {y.dtype}")
    K = logits.shape[1]
    if y.size and (y.min() < 0 or y.max() >= K):
        raise ValueError(f"labels must lie in 0..{K - 1}, got values from {y.min()} to {y.max()}")
    check_finite(logits, "logits")
    shifted = logits - logits.max(axis=1, keepdims=True)       # stable log-softmax
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = logits.shape[0]
    loss = -float(np.mean(log_probs[np.arange(N), y]))
    dlogits = np.exp(log_probs)
    dlogits[np.arange(N), y] -= 1.0
    return loss, dlogits / N


def mse_loss(pred, target):
    """Mean squared error ``mean((pred - target)²)`` and its gradient w.r.t. ``pred``.

    Parameters
    ----------
    pred, target : array_like, same shape

    Returns
    -------
    loss : float
    dpred : ndarray, shape like ``pred``

    Examples
    --------
    >>> mse_loss(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    (2.0, array([0., 2.]))

    Introduced in notebook 04.
    """
    pred = as_float_array(pred, "pred")
    target = as_float_array(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    diff = pred - target
    return float(np.mean(diff**2)), 2.0 * diff / diff.size


def accuracy(logits, y) -> float:
    """Fraction of rows whose largest logit is at the true label.

    Examples
    --------
    >>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
    0.5

    Introduced in notebook 05.
    """
    logits = as_float_array(logits, "logits")
    y = np.asarray(y)
    if logits.ndim != 2 or logits.shape[0] == 0 or y.shape != (logits.shape[0],):
        raise ValueError(f"accuracy needs logits of shape (N, K) with N ≥ 1 and N labels y of "
                         f"shape (N,); got logits {logits.shape} and y {y.shape}")
    return float(np.mean(np.argmax(logits, axis=1) == y))
