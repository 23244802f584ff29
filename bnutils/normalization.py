"""The normalizations that do not depend on the batch, and their layers.

* ``layernorm_forward/backward`` and ``LayerNorm`` — each sample over its D features
  (Ba, Kiros & Hinton 2016).
* ``groupnorm_forward/backward`` and ``GroupNorm`` — each sample over groups of C/G
  channels and all of H, W (Wu & He 2018).
* ``instancenorm_forward/backward`` and ``InstanceNorm`` — each sample and channel over
  H, W (Ulyanov, Vedaldi & Lempitsky 2016): GroupNorm with G = C, the same code.
* ``rmsnorm_forward/backward`` and ``RMSNorm`` — each sample divided by the root mean
  square of its features, no centring and no shift β (Zhang & Sennrich 2019).

All four run on one kernel: reshape ``x`` so that each row holds the values that share
a mean and variance, normalize the rows, reshape back. LayerNorm has one row per
sample, GroupNorm (and so InstanceNorm) one row per sample and group; RMSNorm is
LayerNorm's rows without the centring.

Same contract as ``bnutils.batchnorm``: ``out, cache = *_forward(...)`` and
``dx, dgamma, ... = *_backward(dout, cache)``; biased variance, ε inside the square
root, two-pass variance with float64 sums, dtypes preserved, read-only caches, inputs
never modified. Each sample is normalized on its own, so these behave the same in
training and at inference and work with a batch of one; the layers have no running
statistics and ignore ``train()``/``eval()``.

Introduced in notebook 07.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._moments import normalize, scale_shift_backward
from ._validation import (
    as_float_array,
    check_cache,
    check_dout,
    check_finite,
    check_int,
    check_ndim,
    check_param,
    check_positive,
    per_channel,
    read_only,
    stat_axes,
)
from .layers import NormLayer

__all__ = [
    "GroupNorm",
    "GroupNormCache",
    "InstanceNorm",
    "LayerNorm",
    "LayerNormCache",
    "RMSNorm",
    "RMSNormCache",
    "groupnorm_backward",
    "groupnorm_forward",
    "instancenorm_backward",
    "instancenorm_forward",
    "layernorm_backward",
    "layernorm_forward",
    "rmsnorm_backward",
    "rmsnorm_forward",
]


# ----------------------------------------------------------------------------- the kernel
def _normalize_rows(z: np.ndarray, eps: float, centre: bool = True):
    """Normalize each row of a 2-D array over its columns: returns (z_hat, inv_std (rows, 1)).

    ``bnutils._moments.normalize`` over axis 1, as ``batchnorm_forward`` over the batch
    (float64 sums, the float32 correction, rows too large to square). With
    ``centre=False`` (RMSNorm) the rows are divided by their root mean square instead.
    """
    z_hat, _, _, inv_std = normalize(z, (1,), eps, centre)
    return z_hat, inv_std


def _normalize_rows_backward(dz_hat: np.ndarray, z_hat: np.ndarray, inv_std: np.ndarray,
                             centre: bool = True):
    """Gradient through ``_normalize_rows``: the BN formula with rows and columns swapped.

    ``dz = inv_std / m · (m · dz_hat − Σ dz_hat − z_hat · Σ dz_hat · z_hat)`` per row of m
    values; without the centring the ``− Σ dz_hat`` term (the mean's gradient) is absent.
    """
    m = z_hat.shape[1]
    inner = m * dz_hat - z_hat * np.sum(dz_hat * z_hat, axis=1, keepdims=True)
    if centre:
        inner -= dz_hat.sum(axis=1, keepdims=True)
    return (inv_std / m) * inner


# ----------------------------------------------------------------------------- LayerNorm
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
            object.__setattr__(self, name, read_only(getattr(self, name)))


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

    Introduced in notebook 09.
    """
    x = as_float_array(x, "x")
    check_ndim(x, "x", (2,), "(N, D)")
    check_finite(x, "x")
    if x.shape[1] == 0:
        raise ValueError(f"x must have at least one feature per sample; got shape {x.shape}")
    if x.shape[1] == 1:     # the rule of every normalization: one value per statistic is refused
        raise ValueError(f"layer norm needs at least 2 features per sample to compute its "
                         f"statistics; x has shape {x.shape}, i.e. 1 value per sample, so every "
                         f"output would be beta")
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
    check_cache(cache, LayerNormCache, "layernorm_forward")
    dout = check_dout(dout, cache.x_hat.shape, cache.x_hat.dtype)
    dgamma, dbeta = scale_shift_backward(dout, cache.x_hat, (0,))
    dx = _normalize_rows_backward(dout * cache.gamma, cache.x_hat, cache.inv_std)
    return dx, dgamma, dbeta


class LayerNorm(NormLayer):
    """Layer Normalization layer for (N, D) inputs; the same in training and eval mode.

    Parameters
    ----------
    num_features : int
    eps : float, optional

    Attributes
    ----------
    gamma, beta : ndarray, shape (num_features,)
    dgamma, dbeta : ndarray, shape (num_features,)
        Set by ``backward``.

    Examples
    --------
    >>> ln = LayerNorm(3)
    >>> np.round(ln.forward(np.array([[1.0, 2.0, 3.0]])), 4)
    array([[-1.2247,  0.    ,  1.2247]])

    Introduced in notebook 07.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, dtype=np.float64):
        super().__init__(num_features, eps, dtype)

    def _forward_train(self, x):
        out, self._cache = layernorm_forward(x, self.gamma, self.beta, self.eps)
        return out

    def _backward(self, dout):
        return layernorm_backward(dout, self._cache)

    def __repr__(self):
        return f"LayerNorm({self.num_features})"


# ----------------------------------------------------------------------------- GroupNorm
@dataclass(frozen=True)
class GroupNormCache:
    """Read-only cache of ``groupnorm_forward`` (and ``instancenorm_forward``).

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
            object.__setattr__(self, name, read_only(getattr(self, name)))


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

    Introduced in notebook 09.
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
    num_groups = check_int(num_groups, "num_groups")
    if C % num_groups != 0:
        raise ValueError(f"num_groups must be a positive divisor of the number of channels "
                         f"C={C}; got num_groups={num_groups}")
    N = x.shape[0]
    per_group = C // num_groups * int(np.prod(x.shape[2:]))
    if per_group < 2:      # as instance norm and batch norm: one value per statistic is refused
        raise ValueError(f"group norm needs at least 2 values per group (C/G·H·W ≥ 2); x has "
                         f"shape {x.shape} with num_groups={num_groups}, i.e. 1 value per group, "
                         f"so every output would be beta")
    grouped = x.reshape(N * num_groups, per_group)       # one row per (sample, group)
    z_hat, inv_std = _normalize_rows(grouped, eps)
    x_hat = z_hat.reshape(x.shape)
    out = x_hat * per_channel(gamma, x.ndim) + per_channel(beta, x.ndim)
    cache = GroupNormCache(x_hat=x_hat, gamma=gamma.copy(), inv_std=inv_std.reshape(N, num_groups),
                           eps=eps, num_groups=num_groups, count=grouped.shape[1])
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
    check_cache(cache, GroupNormCache, "groupnorm_forward")
    dout = check_dout(dout, cache.x_hat.shape, cache.x_hat.dtype)
    axes = stat_axes(dout.ndim)
    dgamma, dbeta = scale_shift_backward(dout, cache.x_hat, axes)
    N, G = cache.inv_std.shape
    rows = (N * G, cache.count)            # explicit: a batch of no samples has no rows
    dx_hat = (dout * per_channel(cache.gamma, dout.ndim)).reshape(rows)
    dx = _normalize_rows_backward(dx_hat, cache.x_hat.reshape(rows),
                                  cache.inv_std.reshape(N * G, 1))
    return dx.reshape(dout.shape), dgamma, dbeta


class GroupNorm(NormLayer):
    """Group Normalization layer for (N, C) or (N, C, H, W); the same in training and eval.

    Parameters
    ----------
    num_channels : int
    num_groups : int
        Must divide ``num_channels``.
    eps : float, optional

    Attributes
    ----------
    gamma, beta : ndarray, shape (num_channels,)
    dgamma, dbeta : ndarray, shape (num_channels,)
        Set by ``backward``.

    Examples
    --------
    >>> gn = GroupNorm(4, num_groups=2)
    >>> np.round(gn.forward(np.array([[1.0, 3.0, 10.0, 30.0]])), 4)
    array([[-1.,  1., -1.,  1.]])

    Introduced in notebook 07.
    """

    ndims = (2, 4)
    width_message = "{name}({n}) expects x with {n} channels on axis 1"
    width_name = "num_channels"

    def __init__(self, num_channels: int, num_groups: int, eps: float = 1e-5, dtype=np.float64):
        num_channels = check_int(num_channels, "num_channels")
        self.num_groups = check_int(num_groups, "num_groups")
        if num_channels % self.num_groups:
            raise ValueError(f"num_groups must divide num_channels={num_channels}; "
                             f"got num_groups={self.num_groups}")
        super().__init__(num_channels, eps, dtype)

    def _forward_train(self, x):
        out, self._cache = groupnorm_forward(x, self.gamma, self.beta, self.num_groups, self.eps)
        return out

    def _backward(self, dout):
        return groupnorm_backward(dout, self._cache)

    def __repr__(self):
        return f"GroupNorm({self.num_channels}, num_groups={self.num_groups})"


# ----------------------------------------------------------------------------- InstanceNorm
def instancenorm_forward(x, gamma, beta, eps: float = 1e-5):
    """Instance Normalization: normalize each sample's each channel over its H·W positions.

    ``x_hat[n, c] = (x[n, c] - mean(x[n, c])) / sqrt(var(x[n, c]) + eps)``,
    ``out = gamma[c] * x_hat + beta[c]``. It is ``groupnorm_forward`` with one channel
    per group (G = C), and is computed by it.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Needs H·W ≥ 2 (a single position has no spread to normalize).
    gamma, beta : array_like, shape (C,)
    eps : float, optional

    Returns
    -------
    out : ndarray, shape (N, C, H, W)
    cache : GroupNormCache
        With ``num_groups`` = C.

    Examples
    --------
    >>> x = np.array([[[[1.0, 3.0]], [[10.0, 30.0]]]])      # (1, 2, 1, 2)
    >>> out, _ = instancenorm_forward(x, np.ones(2), np.zeros(2))
    >>> np.round(out, 4).reshape(2, 2)
    array([[-1.,  1.],
           [-1.,  1.]])

    Introduced in notebook 06.
    """
    x = as_float_array(x, "x")
    check_ndim(x, "x", (4,), "(N, C, H, W)")
    if x.shape[2] * x.shape[3] < 2:
        raise ValueError(f"instance norm needs at least 2 positions (H·W ≥ 2) per channel; "
                         f"x has shape {x.shape}, so every output would be 0")
    return groupnorm_forward(x, gamma, beta, num_groups=x.shape[1], eps=eps)


def instancenorm_backward(dout, cache: GroupNormCache):
    """Backward pass of ``instancenorm_forward`` (``groupnorm_backward`` with G = C).

    The BN formula, with the sums taken over (H, W) of one sample and channel::

        dx = inv_std / m · (m · g − Σ g − x_hat · Σ g · x_hat),   g = dout · gamma,  m = H·W

    Parameters
    ----------
    dout : array_like, shape (N, C, H, W)
    cache : GroupNormCache
        From ``instancenorm_forward``.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (C,)

    Examples
    --------
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2) ** 2
    >>> out, cache = instancenorm_forward(x, np.ones(2), np.zeros(2))
    >>> dx, dgamma, dbeta = instancenorm_backward(np.ones_like(x), cache)
    >>> bool(np.abs(dx).max() < 1e-12)     # a constant upstream gradient is absorbed by the mean
    True

    Introduced in notebook 09.
    """
    check_cache(cache, GroupNormCache, "instancenorm_forward")
    if cache.x_hat.ndim != 4 or cache.num_groups != cache.x_hat.shape[1]:
        raise ValueError(f"cache must come from instancenorm_forward (one channel per group); "
                         f"this one has num_groups={cache.num_groups} for x of shape "
                         f"{cache.x_hat.shape}: use groupnorm_backward")
    return groupnorm_backward(dout, cache)


class InstanceNorm(GroupNorm):
    """Instance Normalization layer for (N, C, H, W): a ``GroupNorm`` with G = C.

    Parameters
    ----------
    num_channels : int
    eps : float, optional

    Attributes
    ----------
    gamma, beta : ndarray, shape (num_channels,)
    dgamma, dbeta : ndarray, shape (num_channels,)
        Set by ``backward``.

    Examples
    --------
    >>> layer = InstanceNorm(2)
    >>> np.round(layer.forward(np.array([[[[1.0, 3.0]], [[10.0, 30.0]]]])), 4).ravel()
    array([-1.,  1., -1.,  1.])

    Introduced in notebook 07.
    """

    ndims = (4,)
    shapes = "(N, {n}, H, W)"
    width_message = NormLayer.width_message

    def __init__(self, num_channels: int, eps: float = 1e-5, dtype=np.float64):
        super().__init__(num_channels, num_groups=num_channels, eps=eps, dtype=dtype)

    def _forward_train(self, x):
        out, self._cache = instancenorm_forward(x, self.gamma, self.beta, self.eps)
        return out

    def __repr__(self):
        return f"InstanceNorm({self.num_channels})"


# ----------------------------------------------------------------------------- RMSNorm
@dataclass(frozen=True)
class RMSNormCache:
    """Read-only cache of ``rmsnorm_forward``: ``x_hat`` (N, D), ``gamma`` (D,),
    ``inv_rms`` (N, 1), ``eps``.

    Examples
    --------
    >>> _, cache = rmsnorm_forward(np.array([[3.0, 4.0]]), np.ones(2), eps=1e-12)
    >>> np.round(1 / cache.inv_rms, 4)                   # the root mean square of (3, 4)
    array([[3.5355]])

    Introduced in notebook 07.
    """

    x_hat: np.ndarray
    gamma: np.ndarray
    inv_rms: np.ndarray
    eps: float

    def __post_init__(self):
        for name in ("x_hat", "gamma", "inv_rms"):
            object.__setattr__(self, name, read_only(getattr(self, name)))


def rmsnorm_forward(x, gamma, eps: float = 1e-8):
    """RMSNorm: divide each sample by the root mean square of its features; no centring.

    ``rms[n] = sqrt(mean(x[n]²) + eps)``, ``x_hat = x / rms``, ``out = gamma * x_hat``.
    Zhang & Sennrich (2019) keep LayerNorm's rescaling and drop its re-centring (and
    the shift β): one statistic per sample instead of two.

    Parameters
    ----------
    x : array_like, shape (N, D)
    gamma : array_like, shape (D,)
    eps : float, optional

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : RMSNormCache

    Examples
    --------
    >>> out, _ = rmsnorm_forward(np.array([[3.0, 4.0]]) , np.ones(2), eps=1e-12)
    >>> np.round(out * np.sqrt(12.5), 4)                 # rms of (3, 4) is sqrt(12.5)
    array([[3., 4.]])

    Introduced in notebook 09.
    """
    x = as_float_array(x, "x")
    check_ndim(x, "x", (2,), "(N, D)")
    check_finite(x, "x")
    if x.shape[1] == 0:
        raise ValueError(f"x must have at least one feature per sample; got shape {x.shape}")
    gamma = check_param(gamma, "gamma", x.shape[1], "feature", x.dtype)
    eps = check_positive(eps, "eps")
    x_hat, inv_rms = _normalize_rows(x, eps, centre=False)                       # inv_rms (N, 1)
    return x_hat * gamma, RMSNormCache(x_hat=x_hat, gamma=gamma.copy(), inv_rms=inv_rms, eps=eps)


def rmsnorm_backward(dout, cache: RMSNormCache):
    """Backward pass of ``rmsnorm_forward``.

    With ``g = dout · gamma`` and D features: ``dx = inv_rms · (g − x_hat · mean(g · x_hat))``
    (LayerNorm's formula without the ``− mean(g)`` term that came from the centring).

    Parameters
    ----------
    dout : array_like, shape (N, D)
    cache : RMSNormCache

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma : ndarray, shape (D,)

    Examples
    --------
    >>> out, cache = rmsnorm_forward(np.array([[1.0, -1.0]]), np.ones(2))
    >>> dx, dgamma = rmsnorm_backward(np.array([[1.0, -1.0]]), cache)
    >>> np.round(dx, 6) + 0.0                # moving along x itself does not change x / rms(x)
    array([[0., 0.]])

    Introduced in notebook 09.
    """
    check_cache(cache, RMSNormCache, "rmsnorm_forward")
    dout = check_dout(dout, cache.x_hat.shape, cache.x_hat.dtype)
    dgamma, _ = scale_shift_backward(dout, cache.x_hat, (0,))       # (RMSNorm has no beta)
    dx = _normalize_rows_backward(dout * cache.gamma, cache.x_hat, cache.inv_rms, centre=False)
    return dx, dgamma


class RMSNorm(NormLayer):
    """RMSNorm layer for (N, D) inputs (scale ``gamma`` only, no shift); the same in both modes.

    Parameters
    ----------
    num_features : int
    eps : float, optional

    Attributes
    ----------
    gamma, dgamma : ndarray, shape (num_features,)
        ``dgamma`` is set by ``backward``.

    Examples
    --------
    >>> layer = RMSNorm(2, eps=1e-12)
    >>> np.round(layer.forward(np.array([[3.0, 4.0]])) * np.sqrt(12.5), 4)
    array([[3., 4.]])

    Introduced in notebook 07.
    """

    param_names = ("gamma",)

    def __init__(self, num_features: int, eps: float = 1e-8, dtype=np.float64):
        super().__init__(num_features, eps, dtype)

    def _forward_train(self, x):
        out, self._cache = rmsnorm_forward(x, self.gamma, self.eps)
        return out

    def _backward(self, dout):
        return rmsnorm_backward(dout, self._cache)

    def __repr__(self):
        return f"RMSNorm({self.num_features})"
