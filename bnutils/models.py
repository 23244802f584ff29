"""Model building blocks shared by the training notebooks: norm layers and an MLP builder.

Introduced in notebook 05 (``make_mlp``) and notebook 07 (``LayerNorm``, ``GroupNorm``).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_positive
from .layers import BatchNorm, Layer, Linear, ReLU, Sequential, Sigmoid, Tanh
from .normalization import (
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
)

__all__ = ["ACTIVATIONS", "GroupNorm", "LayerNorm", "make_mlp"]

#: Activation name -> layer class, for ``make_mlp``.
ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class LayerNorm(Layer):
    """Layer Normalization layer for (N, D) inputs; the same in training and eval mode.

    Parameters
    ----------
    num_features : int
    eps : float, optional

    Examples
    --------
    >>> ln = LayerNorm(3)
    >>> np.round(ln.forward(np.array([[1.0, 2.0, 3.0]])), 4)
    array([[-1.2247,  0.    ,  1.2247]])

    Introduced in notebook 07.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, dtype=np.float64):
        self.num_features = _check_count(num_features, "num_features")
        self.eps = check_positive(eps, "eps")
        self.gamma = np.ones(self.num_features, dtype)
        self.beta = np.zeros(self.num_features, dtype)
        self._cache = None
        self.dgamma = self.dbeta = None

    def params(self):
        return {"gamma": self.gamma, "beta": self.beta}

    def grads(self):
        self._need_backward("dgamma")
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def forward(self, x):
        if np.ndim(x) != 2 or np.shape(x)[1] != self.num_features:
            raise ValueError(f"LayerNorm({self.num_features}) expects x of shape "
                             f"(N, {self.num_features}); got {np.shape(x)}")
        out, self._cache = layernorm_forward(x, self.gamma, self.beta, self.eps)
        return out

    def backward(self, dout):
        self._need_forward("_cache")
        dx, self.dgamma, self.dbeta = layernorm_backward(dout, self._cache)
        return dx

    def __repr__(self):
        return f"LayerNorm({self.num_features})"


class GroupNorm(Layer):
    """Group Normalization layer for (N, C) or (N, C, H, W); the same in training and eval.

    Parameters
    ----------
    num_channels : int
    num_groups : int
        Must divide ``num_channels``.
    eps : float, optional

    Examples
    --------
    >>> gn = GroupNorm(4, num_groups=2)
    >>> np.round(gn.forward(np.array([[1.0, 3.0, 10.0, 30.0]])), 4)
    array([[-1.,  1., -1.,  1.]])

    Introduced in notebook 07.
    """

    def __init__(self, num_channels: int, num_groups: int, eps: float = 1e-5, dtype=np.float64):
        self.num_channels = _check_count(num_channels, "num_channels")
        self.num_groups = _check_count(num_groups, "num_groups")
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_groups must divide num_channels={self.num_channels}; "
                             f"got num_groups={self.num_groups}")
        self.eps = check_positive(eps, "eps")
        self.gamma = np.ones(self.num_channels, dtype)
        self.beta = np.zeros(self.num_channels, dtype)
        self._cache = None
        self.dgamma = self.dbeta = None

    def params(self):
        return {"gamma": self.gamma, "beta": self.beta}

    def grads(self):
        self._need_backward("dgamma")
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def forward(self, x):
        if np.ndim(x) not in (2, 4) or np.shape(x)[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_channels}) expects x with {self.num_channels} "
                             f"channels on axis 1; got {np.shape(x)}")
        out, self._cache = groupnorm_forward(x, self.gamma, self.beta, self.num_groups, self.eps)
        return out

    def backward(self, dout):
        self._need_forward("_cache")
        dx, self.dgamma, self.dbeta = groupnorm_backward(dout, self._cache)
        return dx

    def __repr__(self):
        return f"GroupNorm({self.num_channels}, num_groups={self.num_groups})"


def make_mlp(sizes, activation: str = "relu", norm: str | None = None,
             norm_position: str = "before", bias: bool = True, init="he", num_groups: int = 4,
             momentum: float = 0.1, eps: float = 1e-5, rng=0, dtype=np.float64) -> Sequential:
    """Build ``Linear → [norm] → activation`` blocks, then a final ``Linear``.

    Parameters
    ----------
    sizes : sequence of int
        ``[D_in, hidden_1, …, hidden_k, K]``; at least two entries.
    activation : {"relu", "sigmoid", "tanh"}, optional
    norm : {None, "bn", "ln", "gn"}, optional
        Normalization after each hidden Linear layer (not after the output layer).
    norm_position : {"before", "after"}, optional
        Normalize the pre-activation (``Linear → norm → act``, as in the BN paper) or the
        activation (``Linear → act → norm``).
    bias : bool, optional
        Bias in the hidden Linear layers (redundant right before BN: β absorbs it).
        The output layer always has a bias.
    init : {"he", "xavier"} or float, optional
        Weight initialization of every Linear layer (see ``Linear``).
    num_groups : int, optional
        For ``norm="gn"``.
    momentum, eps : float, optional
        For ``norm="bn"`` (and ``eps`` for every norm).
    rng : int or numpy.random.Generator, optional
        Seeds the weights; the same seed gives the same weights with or without norm.

    Returns
    -------
    Sequential

    Examples
    --------
    >>> make_mlp([2, 8, 3], norm="bn")
    Sequential(
      Linear(2, 8, bias=True),
      BatchNorm(8, eps=1e-05, momentum=0.1),
      ReLU(),
      Linear(8, 3, bias=True)
    )

    Introduced in notebook 05.
    """
    sizes = [_check_count(s, "every entry of sizes") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least [D_in, K], got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    norms = {None: None, "bn": BatchNorm, "ln": LayerNorm, "gn": GroupNorm}
    if norm not in norms:
        raise ValueError(f"norm must be None, 'bn', 'ln' or 'gn', got {norm!r}")
    if norm_position not in ("before", "after"):
        raise ValueError(f"norm_position must be 'before' or 'after', got {norm_position!r}")
    rng = np.random.default_rng(rng)

    def make_norm(width):
        if norm == "bn":
            return BatchNorm(width, eps=eps, momentum=momentum, dtype=dtype)
        if norm == "ln":
            return LayerNorm(width, eps=eps, dtype=dtype)
        return GroupNorm(width, num_groups=num_groups, eps=eps, dtype=dtype)

    layers = []
    for d_in, d_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(Linear(d_in, d_out, bias=bias, init=init, rng=rng, dtype=dtype))
        act = ACTIVATIONS[activation]()
        if norm is None:
            layers.append(act)
        elif norm_position == "before":
            layers += [make_norm(d_out), act]
        else:
            layers += [act, make_norm(d_out)]
    layers.append(Linear(sizes[-2], sizes[-1], bias=True, init=init, rng=rng, dtype=dtype))
    return Sequential(*layers)
