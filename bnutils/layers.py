"""Layers with one small interface, enough to build and train an MLP in NumPy.

Every layer has ``forward(x) -> out`` and ``backward(dout) -> dx``; a layer declares its
parameters once, by name, in ``param_names`` (gradient of ``p``: attribute ``"d" + p``),
and ``Layer`` turns that into ``params()`` and ``grads()``, dicts keyed by the same
names. ``train()`` and ``eval()`` switch the mode (only normalization layers such as
``bnutils.batchnorm.BatchNorm`` behave differently) and return the layer, so
``model.eval()`` chains. Each normalization layer lives beside its pure functions
(``BatchNorm`` in ``bnutils.batchnorm``); this module holds the base class, ``Linear``,
the activations, ``Sequential`` and the losses.

Introduced in notebook 01 (Linear, Sequential, first trained), notebook 02
(activations) and notebook 05 (training).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ._validation import (
    as_float_array,
    as_generator,
    check_bool,
    check_dout,
    check_finite,
    check_int,
    check_model,
    check_no_overflow,
    check_positive,
)

__all__ = [
    "Layer",
    "Linear",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "accuracy",
    "in_mode",
    "iter_layers",
    "mse_loss",
    "seed_random_layers",
    "softmax_cross_entropy",
]


class Layer:
    """Base class: parameters declared once by name, a ``training`` flag, sub-layers.

    A subclass lists its parameter attributes in ``param_names`` (the gradient of
    parameter ``p`` is the attribute ``"d" + p``, set by ``backward``) and the state a
    training-mode forward updates in ``running_stat_names``; ``params()``, ``grads()``,
    ``train()`` and ``eval()`` are written once here and recurse into ``children()``.

    Attributes
    ----------
    param_names : tuple of str
        Names of the parameter attributes, e.g. ``("W", "b")``; an attribute that is
        ``None`` (a ``Linear`` without bias) is skipped.
    running_stat_names : tuple of str
        Names of the non-learned state a training-mode forward updates, e.g.
        ``("running_mean", "running_var")`` (see ``bnutils.inference``).
    training : bool
        The mode; ``train()`` and ``eval()`` set it.
    cache_names : tuple of str
        Names of what a forward pass keeps for ``backward`` (its input, a mask, a cache
        object); ``clear_caches()`` sets them back to ``None``.
    rng, seed_from_train
        A layer that draws random numbers in its forward pass (noisy BN, dropout) keeps
        its ``numpy.random.Generator`` in ``rng``. Built without a seed (``rng=None``),
        it sets ``seed_from_train = True``: ``bnutils.training.train(seed=...)`` then
        gives it a generator derived from that seed (``seed_random_layers``), so a run
        is reproducible from its seed alone. A layer built with an explicit ``rng``
        keeps it.

    Introduced in notebook 02.
    """

    param_names: tuple = ()
    running_stat_names: tuple = ()
    cache_names: tuple = ()
    training: bool = True
    seed_from_train: bool = False

    def children(self) -> list:
        """The sub-layers (none for a plain layer; ``Sequential`` returns its layers)."""
        return []

    def params(self) -> dict:
        """Parameter arrays by name (the live arrays, updated in place by SGD).

        A layer's own parameters are keyed by their names; those of its ``i``-th child
        by ``"{i}.{name}"``, so a ``Sequential`` gives ``"0.W"``, ``"1.gamma"``, ….
        """
        own = {}
        for name in self.param_names:
            value = getattr(self, name)
            if value is not None:
                own[name] = value
        for i, child in enumerate(self.children()):
            own.update({f"{i}.{k}": v for k, v in child.params().items()})
        return own

    def grads(self) -> dict:
        """Gradients of the parameters from the last ``backward``, keyed like ``params()``."""
        own = {}
        for name in self.param_names:
            if getattr(self, name) is None:
                continue
            grad = getattr(self, "d" + name, None)
            if grad is None:
                raise RuntimeError(f"{type(self).__name__}.grads() called before backward")
            own[name] = grad
        for i, child in enumerate(self.children()):
            own.update({f"{i}.{k}": v for k, v in child.grads().items()})
        return own

    def clear_caches(self):
        """Forget what the last forward kept for ``backward``, here and in every sub-layer.

        Returns ``self``. Parameters, their gradients and running statistics stay. A
        cache holds arrays the size of the last batch (a convolution's keeps every patch
        of every image), so a model kept after training, in a dict of results say, holds
        memory it will not use again; ``bnutils.training.evaluate`` calls this when it is
        done. ``backward`` then needs a new forward first (it says so).

        Examples
        --------
        >>> net = Sequential(Linear(3, 2, rng=0), ReLU())
        >>> _ = net.forward(np.ones((4, 3)))
        >>> net.clear_caches().outputs, net[0]._x is None
        ([], True)
        """
        for name in self.cache_names:
            setattr(self, name, None)
        for child in self.children():
            child.clear_caches()
        return self

    def train(self):
        """Switch this layer and its sub-layers to training mode; returns ``self``."""
        self.training = True
        for child in self.children():
            child.train()
        return self

    def eval(self):
        """Switch this layer and its sub-layers to evaluation mode; returns ``self``."""
        self.training = False
        for child in self.children():
            child.eval()
        return self

    def __call__(self, x):
        return self.forward(x)

    def _start_forward(self, x, ndims: tuple, width: int, expects: str) -> np.ndarray:
        """The start of a forward pass: forget the caches (so a forward that raises leaves
        none stale), convert ``x`` once and check its shape: ``x.ndim`` in ``ndims``,
        ``width`` on axis 1, else ``ValueError(f"{expects}; got {x.shape}")``."""
        self.clear_caches()
        x = as_float_array(x, "x")
        if x.ndim not in ndims or x.shape[1] != width:
            raise ValueError(f"{expects}; got {x.shape}")
        return x

    def _need_forward(self, attr):
        if getattr(self, attr, None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")



class NormLayer(Layer):
    """Base of the normalization layers: what every one of them does, written once.

    ``forward`` forgets the last forward's caches (so a forward that raises leaves no
    stale cache), converts ``x`` once and checks its width (``num_features`` on axis 1,
    with the layer's one message), then runs ``_forward_train`` or, in eval mode,
    ``_forward_eval`` (by default the same: the per-sample normalizations do not depend
    on the mode). ``backward`` refuses to run before a forward, then sets ``dgamma``
    (and ``dbeta``) from what ``_backward`` returns. A subclass writes only its maths:
    ``_forward_train(x)`` returning ``out`` (and keeping its cache), and
    ``_backward(dout)`` returning ``(dx, dgamma, dbeta)`` (``(dx, dgamma)`` without β).

    Parameters
    ----------
    num_features : int
        D or C: the width on axis 1.
    eps : float
        Checked to be > 0.
    dtype : numpy dtype
        Of ``gamma`` (ones) and ``beta`` (zeros).

    Class attributes
    ----------------
    ndims : tuple of int
        The accepted numbers of dimensions of ``x``.
    shapes : str
        The accepted shapes for the message, with ``{n}`` for ``num_features``.
    width_message : str
        The message for an ``x`` of the wrong shape (fields ``name``, ``n``, ``shapes``;
        "; got (shape)" follows).
    width_name : str
        The constructor's name for the width (``"num_features"``; GroupNorm's
        ``"num_channels"``), in its error messages and as an attribute.

    Introduced in notebook 03 (``BatchNorm``).
    """

    param_names = ("gamma", "beta")
    cache_names = ("_cache",)
    ndims: tuple = (2,)
    shapes: str = "(N, {n})"
    width_message: str = "{name}({n}) expects x of shape {shapes}"
    width_name: str = "num_features"

    def __init__(self, num_features: int, eps: float, dtype=np.float64):
        self.num_features = check_int(num_features, self.width_name)
        setattr(self, self.width_name, self.num_features)     # GroupNorm: num_channels
        self.eps = check_positive(eps, "eps")
        self.gamma = np.ones(self.num_features, dtype)
        self.dgamma = None
        if "beta" in self.param_names:
            self.beta = np.zeros(self.num_features, dtype)
            self.dbeta = None
        for name in self.cache_names:
            setattr(self, name, None)

    def forward(self, x):
        """Normalize ``x`` (training or eval mode, see the class)."""
        n = self.num_features
        x = self._start_forward(x, self.ndims, n, self.width_message.format(
            name=type(self).__name__, n=n, shapes=self.shapes.format(n=n)))
        return self._forward_train(x) if self.training else self._forward_eval(x)

    def _forward_eval(self, x):
        return self._forward_train(x)

    def backward(self, dout):
        """Gradient w.r.t. the input; sets ``dgamma`` (and ``dbeta``)."""
        if all(getattr(self, name) is None for name in self.cache_names):
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        dx, self.dgamma, *dbeta = self._backward(dout)
        if dbeta:
            self.dbeta = dbeta[0]
        return dx


@contextmanager
def in_mode(model, training: bool):
    """Context manager: run ``model`` in training (``True``) or eval mode, then put back
    every layer's own mode, even if the block raises.

    A model may hold a layer deliberately kept in eval mode (a frozen BN inside a
    training network); ``model.train()`` afterwards would wake it up, this does not.

    Examples
    --------
    >>> net = Sequential(Linear(2, 2, rng=0), Tanh().eval())
    >>> with in_mode(net, False):
    ...     [layer.training for layer in iter_layers(net)]
    [False, False, False]
    >>> [layer.training for layer in iter_layers(net)]
    [True, True, False]

    Introduced in notebook 05.
    """
    training = check_bool(training, "training")
    modes = [(layer, getattr(layer, "training", True)) for layer in iter_layers(model)]
    if training:
        model.train()
    else:
        model.eval()
    try:
        yield model
    finally:
        for layer, mode in modes:
            layer.training = mode


def seed_random_layers(model, seed: int) -> int:
    """Reseed every layer of ``model`` that asks for it (``seed_from_train``); see ``Layer``.

    The layer at position ``i`` of ``iter_layers(model)`` gets
    ``np.random.default_rng([seed, i])``: the same seed gives the same noise, and two
    noisy layers do not share one stream. ``bnutils.training.train`` calls this.

    Returns
    -------
    int
        How many layers were reseeded.

    Examples
    --------
    >>> from bnutils.noisy_bn import NoisyBatchNorm
    >>> a, b = NoisyBatchNorm(2), NoisyBatchNorm(2)          # no rng: unseeded
    >>> seed_random_layers(a, 0), seed_random_layers(b, 0)
    (1, 1)
    >>> bool(a.rng.random() == b.rng.random())
    True

    Introduced in notebook 07.
    """
    seed = check_int(seed, "seed", minimum=0)
    count = 0
    for i, layer in enumerate(iter_layers(model)):
        if getattr(layer, "seed_from_train", False):
            layer.rng = np.random.default_rng([seed, i])
            count += 1
    return count


def iter_layers(model):
    """Yield ``model`` and every layer inside it, depth first, in forward order.

    Parameters
    ----------
    model : Layer
        A layer or a container of layers (``Sequential``, ``Residual``, …), found through
        ``children()``.

    Examples
    --------
    >>> net = Sequential(Linear(2, 2, rng=0), Sequential(ReLU(), Tanh()))
    >>> [type(layer).__name__ for layer in iter_layers(net)]
    ['Sequential', 'Linear', 'Sequential', 'ReLU', 'Tanh']

    Introduced in notebook 06.
    """
    check_model(model)
    yield model
    children = getattr(model, "children", None)
    for child in (children() if children is not None else []):
        yield from iter_layers(child)


class Linear(Layer):
    """Fully connected layer ``out = x @ W + b``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, optional
        Whether the layer has a bias ``b`` (a bias right before BN is redundant).
    init : {"he", "lecun", "glorot"} or float, optional
        Weight initialization, a Gaussian with standard deviation: "he" √(2/in) (He et al.
        2015, for ReLU); "lecun" √(1/in) (LeCun et al. 1998, for tanh and sigmoid);
        "glorot" √(2/(in+out)) (Glorot & Bengio 2010, often called Xavier initialization;
        it equals LeCun's when in = out); or a float: the standard deviation itself.
        "xavier" is refused as ambiguous: blog posts use it for both of the last two.
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (seeded for reproducibility).
    dtype : numpy dtype, optional

    Attributes
    ----------
    W : ndarray, shape (in_features, out_features)
    b : ndarray, shape (out_features,) or None
    dW, db : ndarray or None
        Set by ``backward``.

    Examples
    --------
    >>> layer = Linear(3, 2, rng=0)
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)

    Introduced in notebook 01.
    """

    param_names = ("W", "b")
    cache_names = ("_x",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="he",
                 rng=None, dtype=np.float64):
        in_features = check_int(in_features, "in_features")
        out_features = check_int(out_features, "out_features")
        if isinstance(init, str):
            stds = {"he": np.sqrt(2.0 / in_features), "lecun": np.sqrt(1.0 / in_features),
                    "glorot": np.sqrt(2.0 / (in_features + out_features))}
            if init == "xavier":
                raise ValueError("init='xavier' is ambiguous: Glorot and Bengio's ('Xavier') std is "
                                 "'glorot', sqrt(2 / (in + out)); the std sqrt(1 / in) is LeCun's, "
                                 "'lecun'")
            if init not in stds:
                raise ValueError(f"init must be 'he', 'lecun', 'glorot' or a positive float, "
                                 f"got {init!r}")
            std = stds[init]
        else:
            std = check_positive(init, "init (the weight standard deviation)")
        bias = check_bool(bias, "bias")
        rng = as_generator(rng)
        self.in_features, self.out_features = in_features, out_features
        self.W = (rng.standard_normal((in_features, out_features)) * std).astype(dtype)
        self.b = np.zeros(out_features, dtype) if bias else None
        self._x = None
        self.dW = self.db = None

    def forward(self, x):
        """x: (N, in_features) -> out: (N, out_features)."""
        x = self._start_forward(x, (2,), self.in_features, f"Linear({self.in_features}, "
                                f"{self.out_features}) expects x of shape (N, {self.in_features})")
        check_finite(x, "x")
        self._x = x
        out = x @ self.W
        return out if self.b is None else out + self.b

    def backward(self, dout):
        """dout: (N, out_features) -> dx: (N, in_features); sets ``dW`` and ``db``."""
        self._need_forward("_x")
        dout = check_dout(dout, (self._x.shape[0], self.out_features), of="the forward output")
        self.dW = self._x.T @ dout
        if self.b is not None:
            self.db = dout.sum(axis=0)
        return dout @ self.W.T

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.b is not None})"


class ReLU(Layer):
    """``out = max(0, x)``; the gradient passes where ``x > 0``. A NaN in ``x`` stays NaN in
    ``out`` (as in PyTorch), so a NaN being hunted down does not vanish here.

    Examples
    --------
    >>> relu = ReLU()
    >>> relu.forward(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
    >>> relu.backward(np.array([[5.0, 5.0]]))
    array([[0., 5.]])

    Introduced in notebook 05.
    """

    cache_names = ("_mask",)

    def forward(self, x):
        self._mask = None
        x = as_float_array(x, "x")
        self._mask = x > 0
        return np.maximum(x, x.dtype.type(0))         # NaN propagates (np.where(x > 0) drops it)

    def backward(self, dout):
        self._need_forward("_mask")
        return check_dout(dout, self._mask.shape, of="the forward output") * self._mask

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

    Introduced in notebook 08.
    """

    cache_names = ("_out",)

    def forward(self, x):
        self._out = None
        x = as_float_array(x, "x")
        # exp of a non-positive number never overflows: use the form that needs one.
        e = np.exp(-np.abs(x))
        self._out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self._out

    def backward(self, dout):
        self._need_forward("_out")
        return check_dout(dout, self._out.shape, of="the forward output") * self._out * (1.0 - self._out)

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

    cache_names = ("_out",)

    def forward(self, x):
        self._out = None
        self._out = np.tanh(as_float_array(x, "x"))
        return self._out

    def backward(self, dout):
        self._need_forward("_out")
        return check_dout(dout, self._out.shape, of="the forward output") * (1.0 - self._out**2)

    def __repr__(self):
        return "Tanh()"


class Sequential(Layer):
    """Layers applied in order. ``outputs`` keeps each layer's output of the last forward.

    Parameters
    ----------
    *layers : Layer

    Examples
    --------
    >>> net = Sequential(Linear(4, 8, rng=0), ReLU(), Linear(8, 8, rng=1), Linear(8, 3, rng=2))
    >>> net.forward(np.ones((5, 4))).shape
    (5, 3)
    >>> len(net.outputs)
    4

    Introduced in notebook 01.
    """

    def __init__(self, *layers: Layer):
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not (hasattr(layer, "forward") and hasattr(layer, "backward")):
                raise TypeError(f"layer {i} ({layer!r}) has no forward/backward methods")
        self.layers = list(layers)
        self.outputs: list = []
        self._complete = False         # did the last forward run through every layer?

    def forward(self, x):
        # If a layer raises, the layers after it still hold the caches of the previous
        # batch: backward must not mix them with this one, so it checks this flag.
        self._complete = False
        self.outputs = []
        for layer in self.layers:
            x = layer.forward(x)
            self.outputs.append(x)
        self._complete = True
        return x

    def backward(self, dout):
        if not getattr(self, "_complete", False):
            raise RuntimeError("Sequential.backward called before forward (or after a "
                               "forward that raised)")
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def children(self):
        return list(self.layers)

    def clear_caches(self):
        self.outputs = []
        self._complete = False
        return super().clear_caches()

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

    Introduced in notebook 05.
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
        raise ValueError(f"y (the labels) must lie in 0..{K - 1}, one per column of logits; got "
                         f"values from {y.min()} to {y.max()}")
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
    if pred.size == 0:
        raise ValueError(f"pred and target must not be empty, got shape {pred.shape}")
    check_finite(pred, "pred")
    check_finite(target, "target")
    with np.errstate(over="ignore", invalid="ignore"):        # checked just below
        diff = pred - target
        loss = np.mean(diff**2)
    check_no_overflow(loss, f"the squared error (pred - target)² overflows {diff.dtype.name}; "
                            f"divide both by a constant c first (the loss scales with c²)",
                      pred=pred, target=target)
    return float(loss), 2.0 * diff / diff.size


def accuracy(logits, y) -> float:
    """Fraction of rows whose largest logit is at the true label.

    Examples
    --------
    >>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
    0.5

    Introduced in notebook 06.
    """
    logits = as_float_array(logits, "logits")
    y = np.asarray(y)
    if logits.ndim != 2 or 0 in logits.shape or y.shape != (logits.shape[0],):
        raise ValueError(f"accuracy needs logits of shape (N, K) with N, K ≥ 1 and N labels y "
                         f"of shape (N,); got logits {logits.shape} and y {y.shape}")
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= logits.shape[1]:
        raise ValueError(f"y must hold integer labels in 0..{logits.shape[1] - 1} (one per "
                         f"column of logits); got dtype {y.dtype}, values {np.unique(y)[:5]}")
    check_finite(logits, "logits")
    return float(np.mean(np.argmax(logits, axis=1) == y))
