"""Batch Normalization on a batch split across (simulated) devices: per-device statistics,
as data-parallel training without synchronization computes them, or synchronized ones
(SyncBN), merged exactly from each device's count, mean and sum of squares.

``device_stats``, ``merge_batch_stats``, ``sharded_batchnorm_forward/backward`` and the
``ShardedBatchNorm`` layer. Same contract as ``bnutils.batchnorm``.

Introduced in notebook 07.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._moments import check_variance_fits, scale_shift_backward
from ._validation import (
    NonFiniteError,
    as_float_array,
    check_cache,
    check_dout,
    check_features,
    check_finite,
    check_int,
    check_ndim,
    check_param,
    check_positive,
    per_channel,
    read_only,
    stat_axes,
)
from .batchnorm import (
    BatchNorm,
)

__all__ = [
    "ShardedBatchNorm",
    "ShardedBatchNormCache",
    "device_stats",
    "merge_batch_stats",
    "sharded_batchnorm_backward",
    "sharded_batchnorm_forward",
]


def device_stats(x_shards):
    """What each device sends in synchronized BN: its count, mean and centred sum of squares.

    Device k computes, per feature, its count ``n_k``, its mean ``mean_k`` and
    ``m2_k = Σ (x - mean_k)²`` over its own samples (two passes over its shard, so no
    digits are lost when the mean is large). ``merge_batch_stats`` combines them into
    the statistics of the whole batch. The statistics are returned (and exchanged) in
    float64 whatever the dtype of the shards: a float32 mean near 1e4 is only good to
    about 1e-3, which is a tenth of a standard deviation of 1e-2.

    Parameters
    ----------
    x_shards : sequence of array_like, each shape (N_k, D) or (N_k, C, H, W)
        One part of the batch per device (sizes may differ); each needs at least one
        value per feature.

    Returns
    -------
    counts : ndarray of int, shape (K,)
        Values per feature on each device (N_k, or N_k·H·W).
    means, m2s : ndarray, float64, shape (K, D) or (K, C)
        Each device's mean and centred sum of squares per feature.

    Raises
    ------
    ValueError
        An empty shard, NaN/inf, shards of different feature shapes, or values so large
        that their squares overflow float64 (|x| above ~1e154).
    TypeError
        ``x_shards`` is not a list of arrays.

    Examples
    --------
    >>> counts, means, m2s = device_stats([np.array([[1.0], [3.0]]), np.array([[5.0]])])
    >>> counts, means.ravel(), m2s.ravel()
    (array([2, 1]), array([2., 5.]), array([2., 0.]))

    Introduced in notebook 09.
    """
    if isinstance(x_shards, np.ndarray) or not isinstance(x_shards, (list, tuple)) \
            or len(x_shards) == 0:
        raise TypeError(f"x_shards must be a non-empty list of arrays, one per device; got "
                        f"{type(x_shards).__name__}")
    shards = [as_float_array(s, f"x_shards[{k}]") for k, s in enumerate(x_shards)]
    first = shards[0]
    for k, s in enumerate(shards):
        name = f"x_shards[{k}]"
        check_ndim(s, name, (2, 4), "(N_k, D) or (N_k, C, H, W)")
        if s.shape[1:] != first.shape[1:]:
            raise ValueError(f"every shard must have the same feature shape; x_shards[0] has "
                             f"{first.shape[1:]}, {name} has {s.shape[1:]}")
        if s.size == 0:
            raise ValueError(f"{name} is empty (shape {s.shape}): every device needs at least "
                             f"one value per feature to compute its statistics")
        check_finite(s, name)
    axes = stat_axes(first.ndim)
    counts = np.array([s.size // s.shape[1] for s in shards])
    means, m2s = [], []
    for k, s in enumerate(shards):
        s = s.astype(np.float64, copy=False)
        mean = s.mean(axis=axes)                                         # pass 1
        with np.errstate(over="ignore", invalid="ignore"):               # checked below
            m2 = np.sum(np.square(s - per_channel(mean, s.ndim)), axis=axes)  # pass 2
        if not (np.isfinite(mean).all() and np.isfinite(m2).all()):
            raise NonFiniteError(f"x_shards[{k}] holds values too large to square in float64 "
                             f"(largest |x| = {np.max(np.abs(s)):.3g}); divide the batch by a "
                             f"constant first (normalization does not depend on its scale)")
        means.append(mean)
        m2s.append(m2)
    return counts, np.stack(means), np.stack(m2s)


def merge_batch_stats(counts, means, m2s):
    """The whole batch's mean and biased variance from each device's ``device_stats``.

    Chan, Golub & LeVeque's parallel formula, all devices at once: with ``M = Σ n_k``::

        mean = Σ n_k · mean_k / M
        var  = (Σ m2_k + Σ n_k · (mean_k − mean)²) / M

    The spread *within* each device plus the spread *between* the device means. Every
    term is a sum of squares of deviations, so no digits cancel. (The one-pass
    ``Σx² / M − mean²`` from devices' sums of x and x² subtracts two numbers of size
    mean², and loses everything when |mean| ≫ std: at mean 1e8 and std 1 in float64
    its variance is off by hundreds.)

    Parameters
    ----------
    counts : array_like of int, shape (K,)
        Values per feature on each device, each ≥ 1.
    means, m2s : array_like, shape (K, D)
        Per-device means and centred sums of squares (``m2s`` ≥ 0).

    Returns
    -------
    mean, var : ndarray, float64, shape (D,)

    Examples
    --------
    >>> merge_batch_stats([2, 1], [[2.0], [5.0]], [[2.0], [0.0]])      # the batch 1, 3, 5
    (array([3.]), array([2.66666667]))

    Introduced in notebook 09.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0 or counts.dtype.kind not in "iu" \
            or np.any(counts < 1):
        raise ValueError(f"counts must be a non-empty 1-D array of positive integers (values "
                         f"per feature on each device), got {counts!r}")
    means = as_float_array(means, "means", dtype=np.float64)
    m2s = as_float_array(m2s, "m2s", dtype=np.float64)
    K = counts.shape[0]
    for name, a in (("means", means), ("m2s", m2s)):
        if a.ndim != 2 or a.shape[0] != K or a.shape[1] == 0:
            raise ValueError(f"{name} must have shape ({K}, D), one row per device; "
                             f"got {a.shape}")
        check_finite(a, name)
    if means.shape != m2s.shape:
        raise ValueError(f"means and m2s must have the same shape, got {means.shape} and "
                         f"{m2s.shape}")
    if np.any(m2s < 0):
        raise ValueError("m2s must be ≥ 0 (they are sums of squared deviations)")
    n = counts.astype(np.float64)[:, None]                               # (K, 1)
    total = n.sum()
    mean = np.sum(n * means, axis=0) / total
    with np.errstate(over="ignore"):                                     # checked below
        var = (m2s.sum(axis=0) + np.sum(n * np.square(means - mean), axis=0)) / total
    if not np.isfinite(var).all():
        raise NonFiniteError(f"the merged variance overflows float64: the device statistics "
                             f"means (largest |mean| {float(np.max(np.abs(means))):.3g}) and "
                             f"m2s (largest {float(np.max(m2s)):.3g}) are too large; divide "
                             f"the batch by a constant first")
    return mean, var


@dataclass(frozen=True)
class ShardedBatchNormCache:
    """Read-only cache of ``sharded_batchnorm_forward``.

    ``x_hat`` (whole batch), ``gamma``, ``inv_std`` (K, D) per device (identical rows
    when ``sync``), ``num_devices`` K, ``sync``, ``mean``, ``var`` (K, D) the statistics
    each device used.
    """

    x_hat: np.ndarray
    gamma: np.ndarray
    inv_std: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    num_devices: int
    sync: bool

    def __post_init__(self):
        for name in ("x_hat", "gamma", "inv_std", "mean", "var"):
            object.__setattr__(self, name, read_only(getattr(self, name)))


# Below this |x| (divided by sqrt(N)) no sum of squares in device_stats or
# merge_batch_stats can overflow float64: each is at most 8·N·max|x|².
_PLAIN_LIMIT = math.sqrt(float(np.finfo(np.float64).max) / 8.0)


def _sharded_stats(shards, sync: bool):
    """The mean and biased variance, (K, D) float64, that each of the K devices uses."""
    counts, means, m2s = device_stats(list(shards))                      # float64, (K, D)
    if sync:                                   # one all-reduce: every device gets the same
        mean, var = merge_batch_stats(counts, means, m2s)
        K = len(shards)
        return np.tile(mean, (K, 1)), np.tile(var, (K, 1))
    return means, m2s / counts[:, None]        # each device keeps its own statistics


def sharded_batchnorm_forward(x, gamma, beta, num_devices: int, sync: bool = False,
                              eps: float = 1e-5):
    """BN on a batch split evenly across ``num_devices`` simulated devices.

    Without ``sync`` each device normalizes its N/K samples with its *own* statistics
    (what data-parallel training does by default). With ``sync`` the devices exchange
    their ``device_stats`` (count, mean, centred sum of squares), ``merge_batch_stats``
    combines them, and every device normalizes with the statistics of the whole batch
    (SyncBN): the result equals ``batchnorm_forward`` on the whole batch to within the
    rounding of the dtype (``tests/test_bn_variants.py`` checks it, also at mean 1e8).
    Values too large to square (float64 beyond ~1e153) are handled as ``batchnorm_forward``
    handles them: the statistics are taken on ``x`` divided by a power of two, and a
    variance beyond the dtype's range raises a ``ValueError``.

    Parameters
    ----------
    x : array_like, shape (N, D)
        N must be a multiple of ``num_devices``.
    gamma, beta : array_like, shape (D,)
    num_devices : int
    sync : bool, optional
    eps : float, optional

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : ShardedBatchNormCache

    Examples
    --------
    >>> x = np.array([[0.0], [2.0], [10.0], [14.0]])
    >>> out, _ = sharded_batchnorm_forward(x, np.ones(1), np.zeros(1), 2, eps=1e-12)
    >>> out.ravel()                                      # each pair normalized on its own
    array([-1.,  1., -1.,  1.])

    Introduced in notebook 07.
    """
    x = as_float_array(x, "x")
    check_ndim(x, "x", (2,), "(N, D)")
    check_features(x, "x")
    check_finite(x, "x")
    D = x.shape[1]
    gamma = check_param(gamma, "gamma", D, "feature", x.dtype)
    beta = check_param(beta, "beta", D, "feature", x.dtype)
    eps = check_positive(eps, "eps")
    K = check_int(num_devices, "num_devices")
    if not isinstance(sync, (bool, np.bool_)):
        raise TypeError(f"sync must be True or False, got {sync!r}")
    N = x.shape[0]
    if N % K:
        raise ValueError(f"the batch of {N} samples does not split evenly across "
                         f"num_devices={K}; choose a divisor of {N}")
    if N < 2:
        raise ValueError(f"BN needs at least 2 samples in the batch (one sample normalizes to 0); "
                         f"got x of shape {x.shape}")
    if N // K < 2 and not sync:
        raise ValueError(f"with per-device statistics every device needs at least 2 samples; "
                         f"{N} samples on {K} devices leaves {N // K}")
    shards = x.reshape(K, N // K, D)                                     # (K, N/K, D)
    if float(np.max(np.abs(x))) <= _PLAIN_LIMIT / math.sqrt(N):          # the common case
        mean, var = _sharded_stats(shards, sync)                         # float64, (K, D)
    else:
        # The sums of squares in device_stats and the merge (at most 8·N·max|x|²) could
        # overflow float64. Normalization does not depend on the scale of x, so, as
        # batchnorm_forward does (bnutils._moments), take the statistics of x / 2**k, with
        # 2**k ≥ max|x| per feature (exact: only exponents change), and scale them back.
        _, k = np.frexp(np.max(np.abs(x), axis=0))                       # (D,)
        mean_z, var_z = _sharded_stats(np.ldexp(shards, -k), sync)
        with np.errstate(over="ignore"):       # a variance beyond float64 is inf: refused below
            mean, var = np.ldexp(mean_z, k), np.ldexp(var_z, 2 * k)
    check_variance_fits(var, x.dtype)
    inv_std = 1.0 / np.sqrt(var + eps)                                   # (K, D), float64
    # Centre in x's dtype with the float64 mean split into a rounded part and the rest
    # (mean_hi + mean_lo): a float32 mean near 1e4 alone would be off by ~1e-3.
    mean_hi = mean.astype(x.dtype)
    mean_lo = (mean - mean_hi).astype(x.dtype)
    centred = (shards - mean_hi[:, None, :]) - mean_lo[:, None, :]
    x_hat = (centred * inv_std.astype(x.dtype)[:, None, :]).reshape(N, D)
    out = x_hat * gamma + beta
    cache = ShardedBatchNormCache(x_hat=x_hat, gamma=gamma.copy(),
                                  inv_std=inv_std.astype(x.dtype), mean=mean_hi,
                                  var=var.astype(x.dtype), eps=eps, num_devices=K,
                                  sync=bool(sync))
    return out, cache


def sharded_batchnorm_backward(dout, cache: ShardedBatchNormCache):
    """Backward pass of ``sharded_batchnorm_forward``.

    Each device needs ``Σ g`` and ``Σ g · x_hat`` (``g = dout · gamma``) over the samples
    that shared its statistics: its own shard without ``sync``, the whole batch with
    ``sync`` (a second all-reduce, this time of two gradient sums).

    Parameters
    ----------
    dout : array_like, shape (N, D)
    cache : ShardedBatchNormCache

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
        Summed over all devices (what data-parallel training all-reduces anyway).

    Examples
    --------
    >>> x = np.array([[0.0], [2.0], [10.0], [15.0]])
    >>> out, cache = sharded_batchnorm_forward(x, np.ones(1), np.zeros(1), 2)
    >>> dx, dgamma, dbeta = sharded_batchnorm_backward(np.array([[1.0], [0], [0], [0]]), cache)
    >>> np.round(dx[2:], 12) + 0.0               # device 1 never saw sample 0
    array([[0.],
           [0.]])

    Introduced in notebook 07.
    """
    check_cache(cache, ShardedBatchNormCache, "sharded_batchnorm_forward")
    dout = check_dout(dout, cache.x_hat.shape, cache.x_hat.dtype)
    K, N = cache.num_devices, dout.shape[0]
    dgamma, dbeta = scale_shift_backward(dout, cache.x_hat, (0,))
    g = (dout * cache.gamma).reshape(K, N // K, -1)                      # (K, N/K, D)
    x_hat = cache.x_hat.reshape(K, N // K, -1)
    sum_g, sum_gx = g.sum(axis=1, keepdims=True), np.sum(g * x_hat, axis=1, keepdims=True)
    m = N // K
    if cache.sync:                                                       # all-reduce the sums
        sum_g = np.broadcast_to(sum_g.sum(axis=0, keepdims=True), sum_g.shape)
        sum_gx = np.broadcast_to(sum_gx.sum(axis=0, keepdims=True), sum_gx.shape)
        m = N
    dx = cache.inv_std[:, None, :] / m * (m * g - sum_g - x_hat * sum_gx)
    return dx.reshape(dout.shape), dgamma, dbeta


class ShardedBatchNorm(BatchNorm):
    """BN layer whose training batch is split across ``num_devices`` simulated devices.

    Training mode uses ``sharded_batchnorm_forward``. The running statistics are updated
    from device 0's statistics without ``sync`` (as data-parallel training does when it
    keeps device 0's buffers) and from the global ones with ``sync``. Eval mode is plain
    BN inference. ``num_devices = 1`` is ordinary BN.

    Parameters
    ----------
    num_features : int
    num_devices : int
    sync : bool, optional
    eps, momentum : float, optional

    Examples
    --------
    >>> layer = ShardedBatchNorm(2, num_devices=2)
    >>> layer.forward(np.arange(16.0).reshape(8, 2)).shape
    (8, 2)

    Introduced in notebook 07.
    """

    def __init__(self, num_features: int, num_devices: int, sync: bool = False,
                 eps: float = 1e-5, momentum: float = 0.1, dtype=np.float64):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        self.num_devices = check_int(num_devices, "num_devices")
        if not isinstance(sync, (bool, np.bool_)):
            raise TypeError(f"sync must be True or False, got {sync!r}")
        self.sync = bool(sync)

    # BatchNorm's bookkeeping is inherited; the training-mode maths are the sharded ones.
    def _batch_forward(self, x):
        out, cache = sharded_batchnorm_forward(x, self.gamma, self.beta, self.num_devices,
                                               self.sync, self.eps)
        # device 0's statistics (the same on every device with sync), from its m values
        m = x.shape[0] if self.sync else x.shape[0] // self.num_devices
        return out, cache, {"mean": cache.mean[0], "var": cache.var[0], "count": m}

    def _batch_backward(self, dout, cache):
        return sharded_batchnorm_backward(dout, cache)

    def __repr__(self):
        return f"ShardedBatchNorm({self.num_features}, num_devices={self.num_devices}, sync={self.sync})"
