"""Weight Normalization (Salimans & Kingma 2016): normalize the weights, not the activations.

``W = g · v / ‖v‖`` per output unit: ``weightnorm_forward/backward`` and the
``WeightNormLinear`` layer. No batch statistics, so nothing differs between training and
evaluation. Bad input raises ``ValueError``/``TypeError``; inputs are never modified.

Introduced in notebook 09.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (
    NonFiniteError,
    as_float_array,
    as_generator,
    check_cache,
    check_dout,
    check_finite,
    check_int,
    check_ndim,
    check_param,
    read_only,
)
from .layers import Layer

__all__ = [
    "WeightNormCache",
    "WeightNormLinear",
    "weightnorm_backward",
    "weightnorm_forward",
]


@dataclass(frozen=True)
class WeightNormCache:
    """Read-only cache of ``weightnorm_forward``: ``w_hat`` = v/‖v‖ (in, out), ``g`` (out,),
    ``norm`` = ‖v‖ per column (out,)."""

    w_hat: np.ndarray
    g: np.ndarray
    norm: np.ndarray

    def __post_init__(self):
        for name in ("w_hat", "g", "norm"):
            object.__setattr__(self, name, read_only(getattr(self, name)))


def weightnorm_forward(v, g):
    """Weight Normalization: the weight matrix as a direction times a learned length.

    ``W[:, j] = g[j] · v[:, j] / ‖v[:, j]‖`` for each output unit j. No batch statistics:
    the *weights* are normalized, not the activations.

    Parameters
    ----------
    v : array_like, shape (in_features, out_features)
        Direction parameters; no column may be all zeros. Values whose squares overflow
        the dtype (float64 above ~1e154) or lose digits below its smallest normal number
        (float64 below ~1e-155) raise a ``ValueError``: divide or multiply ``v`` by a constant.
    g : array_like, shape (out_features,)
        Length of each column.

    Returns
    -------
    W : ndarray, shape (in_features, out_features)
    cache : WeightNormCache

    Examples
    --------
    >>> W, _ = weightnorm_forward(np.array([[3.0], [4.0]]), np.array([10.0]))
    >>> W.ravel()
    array([6., 8.])

    Introduced in notebook 09.
    """
    v = as_float_array(v, "v")
    check_ndim(v, "v", (2,), "(in_features, out_features)")
    check_finite(v, "v")
    if 0 in v.shape:
        raise ValueError(f"v must have at least one input and one output unit; got shape {v.shape}")
    g = check_param(g, "g", v.shape[1], "output unit", v.dtype)
    with np.errstate(over="ignore", under="ignore"):     # both are checked just below
        sumsq = np.sum(np.square(v), axis=0)
    norm = np.sqrt(sumsq)
    if not np.isfinite(norm).all():          # v / inf would silently give W = 0
        raise NonFiniteError(
            f"v holds values too large to square in {v.dtype.name} (largest |v| = "
            f"{float(np.max(np.abs(v))):.3g}), so its column norms overflow; divide v by a "
            f"constant first (W = g · v / ‖v‖ does not depend on the scale of v)")
    zeros = np.flatnonzero(~np.any(v, axis=0))
    if zeros.size:
        raise ValueError(f"every column of v needs a non-zero norm; columns "
                         f"{zeros.tolist()} are all zeros")
    # Squares below the smallest normal number keep only some of their digits (none below
    # ~1e-162 in float64): W would be silently off (by 3% at |v| ~ 1e-161). Each is rounded
    # by at most half the smallest subnormal; refuse where that could reach 100 ulps.
    info = np.finfo(v.dtype)
    tiny = np.flatnonzero(sumsq < v.shape[0] * float(info.smallest_subnormal) / (200 * float(info.eps)))
    if tiny.size:
        raise ValueError(f"v holds values too small to square accurately in {v.dtype.name} in "
                         f"columns {tiny.tolist()} (largest |v| there = "
                         f"{float(np.max(np.abs(v[:, tiny]))):.3g}); multiply v by a constant "
                         f"first (W = g · v / ‖v‖ does not depend on the scale of v)")
    w_hat = v / norm
    return w_hat * g, WeightNormCache(w_hat=w_hat, g=g.copy(), norm=norm)


def weightnorm_backward(dW, cache: WeightNormCache):
    """Backward pass of ``weightnorm_forward``.

    ``dg[j] = Σ_i dW[i, j] · w_hat[i, j]`` and
    ``dv[:, j] = g[j] / ‖v[:, j]‖ · (dW[:, j] − w_hat[:, j] · dg[j])``: the gradient of ``v``
    is the part of ``dW`` orthogonal to ``v``, scaled by ``g / ‖v‖``.

    Parameters
    ----------
    dW : array_like, shape (in_features, out_features)
    cache : WeightNormCache

    Returns
    -------
    dv : ndarray, shape (in_features, out_features)
    dg : ndarray, shape (out_features,)

    Examples
    --------
    >>> W, cache = weightnorm_forward(np.array([[3.0], [4.0]]), np.array([1.0]))
    >>> dv, dg = weightnorm_backward(np.array([[3.0], [4.0]]), cache)
    >>> np.round(dv, 12) + 0.0, dg                  # dW along v only changes the length
    (array([[0.],
           [0.]]), array([5.]))

    Introduced in notebook 09.
    """
    check_cache(cache, WeightNormCache, "weightnorm_forward")
    dW = as_float_array(dW, "dW", dtype=cache.w_hat.dtype)
    if dW.shape != cache.w_hat.shape:
        raise ValueError(f"dW must have the shape of W, {cache.w_hat.shape}; got {dW.shape}")
    check_finite(dW, "dW")
    dg = np.sum(dW * cache.w_hat, axis=0)
    dv = (cache.g / cache.norm) * (dW - cache.w_hat * dg)
    return dv, dg


class WeightNormLinear(Layer):
    """Fully connected layer with weight normalization: ``out = x @ (g · v/‖v‖) + b``.

    Parameters
    ----------
    in_features, out_features : int
    rng : numpy.random.Generator or int, optional
        Seeds the initial direction ``v``; ``g`` starts at ``sqrt(2)`` (He-like length).

    Attributes
    ----------
    v : ndarray, shape (in_features, out_features)
    g, b : ndarray, shape (out_features,)
    W : ndarray, shape (in_features, out_features)
        ``g · v/‖v‖`` as used by the last forward.
    dv, dg, db : ndarray
        Set by ``backward``.

    Examples
    --------
    >>> layer = WeightNormLinear(3, 2, rng=0)
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)

    Introduced in notebook 07.
    """

    param_names = ("v", "g", "b")
    cache_names = ("_x", "_wcache")

    def __init__(self, in_features: int, out_features: int, rng=None, dtype=np.float64):
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        rng = as_generator(rng)
        self.v = rng.standard_normal((self.in_features, self.out_features)).astype(dtype)
        self.g = np.full(self.out_features, np.sqrt(2.0), dtype)
        self.b = np.zeros(self.out_features, dtype)
        self.W = None
        self._x = self._wcache = None
        self.dv = self.dg = self.db = None

    def forward(self, x):
        self._x = self._wcache = None          # a forward that raises leaves no stale cache
        x = as_float_array(x, "x")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"WeightNormLinear({self.in_features}, {self.out_features}) expects "
                             f"x of shape (N, {self.in_features}); got {x.shape}")
        check_finite(x, "x")
        self.W, wcache = weightnorm_forward(self.v, self.g)
        self._x, self._wcache = x, wcache
        return x @ self.W + self.b

    def backward(self, dout):
        self._need_forward("_x")
        dout = check_dout(dout, (self._x.shape[0], self.out_features), self._x.dtype,
                          of="the forward output")
        self.dv, self.dg = weightnorm_backward(self._x.T @ dout, self._wcache)
        self.db = dout.sum(axis=0)
        return dout @ self.W.T

    def __repr__(self):
        return f"WeightNormLinear({self.in_features}, {self.out_features})"
