"""Normalizations that do not depend on the batch: LayerNorm and GroupNorm.

Same contract as ``bnutils.batchnorm``: ``out, cache = *_forward(...)`` and
``dx, dgamma, dbeta = *_backward(dout, cache)``; biased variance, ε inside the square
root, two-pass variance, dtypes preserved, inputs never modified. Each sample is
normalized on its own, so these behave the same in training and at inference and
work with a batch of one.

Introduced in notebook 07.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array, check_finite, check_ndim, check_param, check_positive

__all__ = [
    "GroupNormCache",
    "LayerNormCache",
    "groupnorm_backward",
    "groupnorm_forward",
    "layernorm_backward",
    "layernorm_forward",
]


@dataclass(frozen=True)
class LayerNormCache:
    """Read-only cache of ``layernorm_forward``: ``x_hat`` (N, D), ``gamma`` (D,),
    ``inv_std`` (N, 1), ``eps``."""

    x_hat: np.ndarray
    gamma: np.ndarray
    inv_std: np.ndarray
    eps: float

    def __post_init__(self):
        for name in ("x_hat", "gamma", "inv_std"):
            view = np.asarray(getattr(self, name)).view()
            view.flags.writeable = False  # a read-only view: the caller's array stays writable
            object.__setattr__(self, name, view)


@dataclass(frozen=True)
class GroupNormCache:
    """Read-only cache of ``groupnorm_forward``.

    ``x_hat`` has the shape of ``x``; ``inv_std`` is (N, G) per sample and group;
    ``num_groups`` G; ``count`` is the number of values in one group, (C/G)·H·W.
    """

    x_hat: np.ndarray
    gamma: np.ndarray
    inv_std: np.ndarray
    eps: float
    num_groups: int
    count: int

    def __post_init__(self):
        for name in ("x_hat", "gamma", "inv_std"):
            view = np.asarray(getattr(self, name)).view()
            view.flags.writeable = False  # a read-only view: the caller's array stays writable
            object.__setattr__(self, name, view)


def _check_dout(dout, x_hat):
    dout = as_float_array(dout, "dout", dtype=x_hat.dtype)
    if dout.shape != x_hat.shape:
        raise ValueError(f"dout must have the shape of the forward input x, {x_hat.shape}; "
                         f"got {dout.shape}")
    check_finite(dout, "dout")
    return dout


def _normalize_rows(z: np.ndarray, eps: float):
    """Normalize each row of a 2-D array over its columns: returns (z_hat, inv_std (rows, 1)).

    Two passes with float64 sums, as in ``batchnorm_forward``: for float32 rows near 1e4
    a float32 mean is off by ~1e-3, so its residual is subtracted as well.
    """
    mean = z.mean(axis=1, keepdims=True, dtype=np.float64)
    zc = z - mean.astype(z.dtype)
    if z.dtype == np.float32:
        zc -= zc.mean(axis=1, keepdims=True, dtype=np.float64).astype(z.dtype)
    var = np.mean(np.square(zc), axis=1, keepdims=True, dtype=np.float64).astype(z.dtype)
    inv_std = 1.0 / np.sqrt(var + eps)
    return zc * inv_std, inv_std


def _normalize_rows_backward(dz_hat: np.ndarray, z_hat: np.ndarray, inv_std: np.ndarray):
    """Gradient through row-wise normalization: the BN formula with rows and columns swapped."""
    m = z_hat.shape[1]
    return (inv_std / m) * (m * dz_hat - dz_hat.sum(axis=1, keepdims=True)
                            - z_hat * np.sum(dz_hat * z_hat, axis=1, keepdims=True))


def layernorm_forward(x, gamma, beta, eps: float = 1e-5):
    """Layer Normalization: normalize each sample over its D features.

    ``x_hat[n] = (x[n] - mean(x[n])) / sqrt(var(x[n]) + eps)``, ``out = gamma * x_hat + beta``.

    Parameters
    ----------
    x : array_like, shape (N, D)
    gamma, beta : array_like, shape (D,)
    eps : float, optional

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : LayerNormCache

    Examples
    --------
    >>> out, _ = layernorm_forward(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2))
    >>> np.round(out, 4)
    array([[-1.,  1.]])

    Introduced in notebook 07.
    """
    x = as_float_array(x, "x")
    check_ndim(x, "x", (2,), "(N, D)")
    check_finite(x, "x")
    if x.shape[1] == 0:
        raise ValueError(f"x must have at least one feature per sample; got shape {x.shape}")
    gamma = check_param(gamma, "gamma", x.shape[1], "feature", x.dtype)
    beta = check_param(beta, "beta", x.shape[1], "feature", x.dtype)
    eps = check_positive(eps, "eps")
    x_hat, inv_std = _normalize_rows(x, eps)
    out = x_hat * gamma + beta
    return out, LayerNormCache(x_hat=x_hat, gamma=gamma.copy(), inv_std=inv_std, eps=eps)


def layernorm_backward(dout, cache: LayerNormCache):
    """Backward pass of ``layernorm_forward``.

    Parameters
    ----------
    dout : array_like, shape (N, D)
    cache : LayerNormCache

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)

    Examples
    --------
    >>> out, cache = layernorm_forward(np.array([[1.0, 2.0, 4.0]]), np.ones(3), np.zeros(3))
    >>> dx, dgamma, dbeta = layernorm_backward(np.ones((1, 3)), cache)
    >>> np.round(dx, 6) + 0.0
    array([[0., 0., 0.]])

    Introduced in notebook 07.
    """
    if not isinstance(cache, LayerNormCache):
        raise TypeError(f"cache must be a LayerNormCache, got {type(cache).__name__}")
    dout = _check_dout(dout, cache.x_hat)
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * cache.x_hat, axis=0)
    dx = _normalize_rows_backward(dout * cache.gamma, cache.x_hat, cache.inv_std)
    return dx, dgamma, dbeta


def _per_channel(v, ndim):
    return v.reshape(1, -1) if ndim == 2 else v.reshape(1, -1, 1, 1)


def groupnorm_forward(x, gamma, beta, num_groups: int, eps: float = 1e-5):
    """Group Normalization: normalize each sample over groups of C/G channels (and H, W).

    With G = 1 this is LayerNorm over (C, H, W); with G = C it is InstanceNorm.

    Parameters
    ----------
    x : array_like, shape (N, C) or (N, C, H, W)
    gamma, beta : array_like, shape (C,)
        Per-channel scale and shift (applied after the per-group normalization).
    num_groups : int
        G; must divide C.
    eps : float, optional

    Returns
    -------
    out : ndarray, shape like ``x``
    cache : GroupNormCache

    Examples
    --------
    >>> x = np.array([[1.0, 3.0, 10.0, 30.0]])
    >>> out, _ = groupnorm_forward(x, np.ones(4), np.zeros(4), num_groups=2)
    >>> np.round(out, 4)
    array([[-1.,  1., -1.,  1.]])

    Introduced in notebook 07.
    """
    x = as_float_array(x, "x")
    check_ndim(x, "x", (2, 4), "(N, C) or (N, C, H, W)")
    check_finite(x, "x")
    if 0 in x.shape[1:]:
        raise ValueError(f"x must have at least one value per sample in each of C, H and W; "
                         f"got shape {x.shape}")
    C = x.shape[1]
    gamma = check_param(gamma, "gamma", C, "channel", x.dtype)
    beta = check_param(beta, "beta", C, "channel", x.dtype)
    eps = check_positive(eps, "eps")
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"num_groups must be an integer, got {num_groups!r}")
    if num_groups < 1 or C % num_groups != 0:
        raise ValueError(f"num_groups must be a positive divisor of the number of channels "
                         f"C={C}; got num_groups={num_groups}")
    N = x.shape[0]
    grouped = x.reshape(N * num_groups, -1)              # one row per (sample, group)
    z_hat, inv_std = _normalize_rows(grouped, eps)
    x_hat = z_hat.reshape(x.shape)
    out = x_hat * _per_channel(gamma, x.ndim) + _per_channel(beta, x.ndim)
    cache = GroupNormCache(x_hat=x_hat, gamma=gamma.copy(), inv_std=inv_std.reshape(N, num_groups),
                           eps=eps, num_groups=int(num_groups), count=grouped.shape[1])
    return out, cache


def groupnorm_backward(dout, cache: GroupNormCache):
    """Backward pass of ``groupnorm_forward``.

    Parameters
    ----------
    dout : array_like, shape like ``x``
    cache : GroupNormCache

    Returns
    -------
    dx : ndarray, shape like ``x``
    dgamma, dbeta : ndarray, shape (C,)

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 4.0, 8.0]])
    >>> out, cache = groupnorm_forward(x, np.ones(4), np.zeros(4), num_groups=1)
    >>> dx, dgamma, dbeta = groupnorm_backward(np.ones((1, 4)), cache)
    >>> dbeta
    array([1., 1., 1., 1.])

    Introduced in notebook 07.
    """
    if not isinstance(cache, GroupNormCache):
        raise TypeError(f"cache must be a GroupNormCache, got {type(cache).__name__}")
    dout = _check_dout(dout, cache.x_hat)
    axes = (0,) if dout.ndim == 2 else (0, 2, 3)
    dbeta = dout.sum(axis=axes)
    dgamma = np.sum(dout * cache.x_hat, axis=axes)
    N, G = cache.inv_std.shape
    dx_hat = (dout * _per_channel(cache.gamma, dout.ndim)).reshape(N * G, -1)
    dx = _normalize_rows_backward(dx_hat, cache.x_hat.reshape(N * G, -1),
                                  cache.inv_std.reshape(N * G, 1))
    return dx.reshape(dout.shape), dgamma, dbeta
