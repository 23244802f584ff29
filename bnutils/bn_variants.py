"""Variants of Batch Normalization that keep the batch statistics but change how they are
used, and Weight Normalization, which normalizes the weights instead.

* ``batchrenorm_forward/backward`` and the ``BatchRenorm`` layer — BN corrected towards
  the running statistics by ``r`` and ``d`` (Ioffe 2017).
* ``device_stats``, ``merge_batch_stats``, ``sharded_batchnorm_forward/backward`` and
  ``ShardedBatchNorm`` — BN on a batch split across simulated devices, with per-device
  or synchronized (SyncBN) statistics.
* ``NoisyBatchNorm`` — BN followed by random shifts and scales that change at every
  step: the "noisy BN" of Santurkar et al. 2018.
* ``weightnorm_forward/backward`` and ``WeightNormLinear`` — ``W = g · v / ‖v‖``
  (Salimans & Kingma 2016).

The batch-independent normalizations (LayerNorm, GroupNorm, InstanceNorm, RMSNorm) are
in ``bnutils.normalization``. Same contract as ``bnutils.batchnorm``:
``out, cache = *_forward(...)`` and ``dx, ... = *_backward(dout, cache)``; biased
variance, ε inside the square root, read-only caches, inputs never modified, bad input
raises ``ValueError``/``TypeError``. Every layer here that keeps running statistics
updates them with ``bnutils.batchnorm.update_running_stats``, the one momentum and
unbiased-variance rule, and lists them in ``running_stat_names``.

Introduced in notebook 07.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._moments import check_variance_fits
from ._validation import (
    Checked,
    NonFiniteError,
    as_float_array,
    as_generator,
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
    BatchNormCache,
    batchnorm_backward,
    batchnorm_forward,
)
from .layers import Layer, NormLayer

__all__ = [
    "BatchRenorm",
    "BatchRenormCache",
    "NoisyBatchNorm",
    "ShardedBatchNorm",
    "ShardedBatchNormCache",
    "WeightNormCache",
    "WeightNormLinear",
    "batchrenorm_backward",
    "batchrenorm_forward",
    "device_stats",
    "merge_batch_stats",
    "sharded_batchnorm_backward",
    "sharded_batchnorm_forward",
    "weightnorm_backward",
    "weightnorm_forward",
]


# ----------------------------------------------------------------------------- Batch Renormalization
def _check_r_max(value, name: str = "r_max") -> float:
    value = check_positive(value, name)          # a real, finite number (TypeError for "3")
    if value < 1:
        raise ValueError(f"{name} must be ≥ 1 (r is clipped to [1/r_max, r_max]), got {value}")
    return value


def _check_d_max(value, name: str = "d_max") -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type "
                        f"{type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number ≥ 0 (d is clipped to "
                         f"[-d_max, d_max]), got {value}")
    return float(value)


@dataclass(frozen=True)
class BatchRenormCache:
    """Read-only cache of ``batchrenorm_forward``.

    ``x_hat`` is the corrected normalized input ``(x − mean)/σ_B · r + d``; ``gamma`` the
    scale of the forward pass; ``r``, ``d`` the corrections (held constant in the
    backward pass); ``bn`` the ``BatchNormCache`` of plain BN (γ = 1, β = 0) on the same
    batch: its ``x_hat`` is ``(x − mean)/σ_B``, and it holds the batch ``mean``, the
    biased ``var``, ``inv_std`` = 1/σ_B, ``axes`` and ``count``.
    """

    x_hat: np.ndarray
    gamma: np.ndarray
    r: np.ndarray
    d: np.ndarray
    bn: BatchNormCache

    def __post_init__(self):
        for name in ("x_hat", "gamma", "r", "d"):
            object.__setattr__(self, name, read_only(getattr(self, name)))


def batchrenorm_forward(x, gamma, beta, running_mean, running_var, r_max: float = 3.0,
                        d_max: float = 5.0, eps: float = 1e-5):
    """Batch Renormalization (Ioffe 2017) in training mode.

    With batch statistics μ_B, σ_B = sqrt(σ²_B + ε) and running ones μ, σ = sqrt(σ² + ε)::

        r = clip(σ_B / σ, 1/r_max, r_max)        d = clip((μ_B − μ) / σ, −d_max, d_max)
        x_hat = (x − μ_B) / σ_B · r + d           out = gamma · x_hat + beta

    When r and d are not clipped, ``x_hat = (x − μ) / σ``: the output is what eval mode
    would give, so training and inference agree. ``r`` and ``d`` are treated as
    constants by the backward pass (no gradient flows through them). With
    ``r_max = 1, d_max = 0`` this is plain BN.

    Parameters
    ----------
    x : array_like, shape (N, D) or (N, C, H, W)
    gamma, beta, running_mean, running_var : array_like, shape (D,) or (C,)
    r_max : float ≥ 1, optional
    d_max : float ≥ 0, optional
    eps : float, optional

    Returns
    -------
    out : ndarray, shape like ``x``
    cache : BatchRenormCache

    Examples
    --------
    >>> x = np.array([[1.0], [3.0]])                     # batch mean 2, batch std ~1
    >>> out, cache = batchrenorm_forward(x, np.ones(1), np.zeros(1), np.array([0.0]),
    ...                                  np.array([4.0]), eps=1e-12)
    >>> np.round(cache.r, 4), np.round(cache.d, 4)        # sigma_B / sigma, (mu_B - mu) / sigma
    (array([0.5]), array([1.]))
    >>> np.round(out.ravel(), 4)                          # = (x - 0) / 2, the eval-mode output
    array([0.5, 1.5])

    Introduced in notebook 09.
    """
    r_max, d_max = _check_r_max(r_max), _check_d_max(d_max)
    x = as_float_array(x, "x")
    check_ndim(x, "x", (2, 4), "(N, D) or (N, C, H, W)")
    check_features(x, "x")                 # before gamma: an empty x is the mistake
    size, dtype, nd = x.shape[1], x.dtype, x.ndim
    what = "feature" if nd == 2 else "channel"
    gamma = check_param(gamma, "gamma", size, what, dtype)
    beta = check_param(beta, "beta", size, what, dtype)
    running_mean = check_param(running_mean, "running_mean", size, what, dtype)
    running_var = check_param(running_var, "running_var", size, what, dtype)
    if np.any(running_var < 0):
        raise ValueError(f"running_var must be ≥ 0 (it is a variance); got {running_var}")
    # plain BN with gamma = 1, beta = 0 gives the batch statistics and (x - mean) / sigma_B
    _, bn_cache = batchnorm_forward(x, np.ones(size, dtype), np.zeros(size, dtype), eps)
    eps = bn_cache.eps
    sigma_b = np.sqrt(bn_cache.var + eps)
    sigma = np.sqrt(running_var + eps)
    r = np.clip(sigma_b / sigma, 1.0 / r_max, r_max).astype(dtype)
    # μ_B − μ as the mean of x − μ: the float32 μ_B near 1e4 is only good to ~1e-3, and
    # d = (μ_B − μ) / σ would carry that error (a tenth, at σ = 1e-2).
    mean_shift = np.mean(x - per_channel(running_mean, nd), axis=bn_cache.axes, dtype=np.float64)
    d = np.clip(mean_shift / sigma, -d_max, d_max).astype(dtype)
    x_hat = bn_cache.x_hat * per_channel(r, nd) + per_channel(d, nd)
    out = x_hat * per_channel(gamma, nd) + per_channel(beta, nd)
    return out, BatchRenormCache(x_hat=x_hat, gamma=gamma.copy(), r=r, d=d, bn=bn_cache)


def batchrenorm_backward(dout, cache: BatchRenormCache):
    """Backward pass of ``batchrenorm_forward`` with ``r`` and ``d`` held constant.

    ``out = gamma · (r · x_bn + d) + beta`` with ``x_bn`` plain BN's normalized input, so
    the gradient w.r.t. ``x`` is BN's backward (γ = 1) of the upstream gradient
    ``gamma · r · dout``; ``dgamma = Σ dout · x_hat``, ``dbeta = Σ dout``.

    Parameters
    ----------
    dout : array_like, shape like ``x``
    cache : BatchRenormCache

    Returns
    -------
    dx : ndarray, shape like ``x``
    dgamma, dbeta : ndarray, shape (D,) or (C,)

    Examples
    --------
    >>> x = np.array([[1.0], [2.0], [4.0]])
    >>> out, cache = batchrenorm_forward(x, np.ones(1), np.zeros(1), np.zeros(1), np.ones(1))
    >>> dx, dgamma, dbeta = batchrenorm_backward(np.ones((3, 1)), cache)
    >>> round(float(dx.sum()), 12) + 0.0
    0.0

    Introduced in notebook 09.
    """
    check_cache(cache, BatchRenormCache, "batchrenorm_forward")
    dout = check_dout(dout, cache.x_hat.shape, cache.x_hat.dtype)
    axes = cache.bn.axes
    dbeta = dout.sum(axis=axes)
    dgamma = np.sum(dout * cache.x_hat, axis=axes)
    dx_bn = dout * per_channel(cache.gamma * cache.r, dout.ndim)        # ∂loss/∂x_bn
    dx, _, _ = batchnorm_backward(dx_bn, cache.bn)
    return dx, dgamma, dbeta


class BatchRenorm(BatchNorm):
    """Batch Renormalization layer: ``batchrenorm_forward`` in training, BN's eval mode in eval.

    Parameters
    ----------
    num_features : int
    r_max, d_max : float, optional
        Clipping limits of the corrections, ``r_max`` ≥ 1 and ``d_max`` ≥ 0 (Ioffe starts
        at 1 and 0, i.e. plain BN, and relaxes them to 3 and 5 during training; set the
        attributes to change them: ``r_max``, ``d_max``, ``eps`` and ``momentum`` are
        checked on every assignment).
    eps : float, optional
    momentum : float in [0, 1], optional
        The weight of each new batch in the running statistics (PyTorch's convention,
        as in ``BatchNorm``; not SGD's momentum).

    Attributes
    ----------
    gamma, beta, running_mean, running_var : ndarray, shape (num_features,)
    dgamma, dbeta : ndarray, shape (num_features,)
        Set by ``backward``.

    Examples
    --------
    >>> layer = BatchRenorm(2)
    >>> layer.forward(np.array([[1.0, 2.0], [3.0, 6.0]])).shape
    (2, 2)

    Introduced in notebook 09.
    """

    width_message = NormLayer.width_message
    # checked on every assignment (layer.r_max = 0.5 raises at once)
    r_max = Checked(_check_r_max)
    d_max = Checked(_check_d_max)

    def __init__(self, num_features: int, r_max: float = 3.0, d_max: float = 5.0,
                 eps: float = 1e-5, momentum: float = 0.1, dtype=np.float64):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        self.r_max, self.d_max = r_max, d_max

    # BatchNorm's train/eval bookkeeping (running statistics from the plain BN statistics
    # of the batch, eval mode) is inherited; only the training-mode maths differ.
    def _batch_forward(self, x):
        out, cache = batchrenorm_forward(x, self.gamma, self.beta, self.running_mean,
                                         self.running_var, self.r_max, self.d_max, self.eps)
        return out, cache, {"cache": cache.bn}

    def _batch_backward(self, dout, cache):
        return batchrenorm_backward(dout, cache)

    def __repr__(self):
        return f"BatchRenorm({self.num_features}, r_max={self.r_max:g}, d_max={self.d_max:g})"


# ----------------------------------------------------------------------------- Weight Normalization
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


# ----------------------------------------------------------------------------- noisy BN (Santurkar et al.)
class NoisyBatchNorm(BatchNorm):
    """BN followed by random shifts and scales that change at every training step.

    In training mode, after ``y = BatchNorm(x)`` it draws, *for each step and each
    feature*, a scale ``s ~ exp(U(−log scale, log scale))`` and a shift
    ``m ~ U(−shift, shift)``, and returns ``s · y + m``. So the next layer's input never
    has a stable distribution: its mean and spread jump at every step (deliberately
    large internal covariate shift). This is a simplified version of the "noisy BN" of
    Santurkar et al. (2018), who also drew the noise independently for every sample.
    In eval mode it is plain BN (the noise is a training-time perturbation, and its scale
    has geometric mean 1 and its shift mean 0).

    Parameters
    ----------
    num_features : int
    shift : float ≥ 0, optional
        Half-width of the uniform shift.
    scale : float ≥ 1, optional
        The scale lies in [1/scale, scale].
    rng : numpy.random.Generator or int, optional
        Source of the noise. Without it, ``bnutils.training.train`` seeds the layer from
        its own ``seed``.
    eps, momentum : float, optional
        As in ``BatchNorm``.

    Attributes
    ----------
    last_scale, last_shift : ndarray, shape (num_features,)
        The noise of the last training-mode forward.

    Examples
    --------
    >>> layer = NoisyBatchNorm(3, shift=1.0, scale=2.0, rng=0)
    >>> out = layer.forward(np.random.default_rng(1).normal(size=(8, 3)))
    >>> bool(np.all((layer.last_scale >= 0.5) & (layer.last_scale <= 2.0)))
    True

    Introduced in notebook 07.
    """

    def __init__(self, num_features: int, shift: float = 1.0, scale: float = 2.0, rng=None,
                 eps: float = 1e-5, momentum: float = 0.1, dtype=np.float64):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        if isinstance(shift, bool) or not isinstance(shift, (int, float, np.floating)) \
                or not np.isfinite(shift) or shift < 0:
            raise ValueError(f"shift must be a finite number ≥ 0, got {shift!r}")
        scale = check_positive(scale, "scale")
        if scale < 1:
            raise ValueError(f"scale must be ≥ 1 (the scale is drawn from [1/scale, scale]), "
                             f"got {scale}")
        self.shift, self.scale = float(shift), scale
        self.rng = as_generator(rng)
        self.seed_from_train = rng is None     # train(seed=...) seeds it (see Layer)
        self.last_scale = np.ones(self.num_features)
        self.last_shift = np.zeros(self.num_features)

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        log_s = np.log(self.scale)
        self.last_scale = np.exp(self.rng.uniform(-log_s, log_s, self.num_features))
        self.last_shift = self.rng.uniform(-self.shift, self.shift, self.num_features)
        return out * per_channel(self.last_scale, out.ndim) + per_channel(self.last_shift, out.ndim)

    def backward(self, dout):
        if self._cache is not None:                        # training mode: undo the scale first
            dout = check_dout(dout, self._cache.x_hat.shape, self._cache.x_hat.dtype)
            dout = dout * per_channel(self.last_scale, dout.ndim)
        return super().backward(dout)

    def __repr__(self):
        return f"NoisyBatchNorm({self.num_features}, shift={self.shift:g}, scale={self.scale:g})"


# ----------------------------------------------------------------------------- multi-device BN
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
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * cache.x_hat, axis=0)
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
