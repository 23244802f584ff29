"""Batch Renormalization (Ioffe 2017): BN corrected towards the running statistics.

In training, ``x_hat = (x - mean_B) / sigma_B · r + d`` with ``r = clip(sigma_B / sigma,
1/r_max, r_max)`` and ``d = clip((mean_B - mean) / sigma, -d_max, d_max)`` (sigma_B and sigma
the batch and running standard deviations, ε included), ``r`` and ``d`` constants in the
backward pass; ``r_max = 1, d_max = 0`` is plain BN. ``batchrenorm_forward/backward`` and
the ``BatchRenorm`` layer. Same contract as ``bnutils.batchnorm`` (biased variance, ε
inside the square root, read-only caches, inputs never modified, bad input raises
``ValueError``/``TypeError``); the running statistics are updated with
``bnutils.batchnorm.update_running_stats``.

Introduced in notebook 09.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._moments import scale_shift_backward
from ._validation import (
    Checked,
    as_float_array,
    check_cache,
    check_dout,
    check_features,
    check_ndim,
    check_param,
    check_positive,
    per_channel,
    read_only,
)
from .batchnorm import (
    BatchNorm,
    BatchNormCache,
    batchnorm_backward,
    batchnorm_forward,
)
from .layers import NormLayer

__all__ = [
    "BatchRenorm",
    "BatchRenormCache",
    "batchrenorm_backward",
    "batchrenorm_forward",
]


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
    dgamma, dbeta = scale_shift_backward(dout, cache.x_hat, axes)
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
