"""Reference implementations of training-mode BN: readable, not fast.

Two independent ways to compute what ``bnutils.batchnorm`` computes, kept for teaching,
for testing the fast code against, and for timing the ladder from loops to vectorized
code:

* ``*_loops``: explicit Python loops over features and samples, one scalar at a time,
  exactly as the equations of Ioffe & Szegedy (2015, Algorithm 1 and Section 3) read
  ((N, D) batches, computed in float64).
* ``*_naive``: the same equations vectorized literally with NumPy, one array per
  symbol of the paper (``dx_hat``, ``dvar``, ``dmean``), without the simplifications of
  ``bnutils.batchnorm_backward``'s compact form ((N, D) or (N, C, H, W), dtype kept; the
  "naive NumPy" of ``benchmarks/run.py``).

Both return the same ``BatchNormCache`` as ``bnutils.batchnorm_forward``, so any forward
can be paired with any backward. The module also has the per-feature Jacobian of the
normalization (analytic and by finite differences), used in notebook 04.

Introduced in notebook 04.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._validation import (
    as_float_array,
    check_cache,
    check_dout,
    check_finite,
    check_ndim,
    check_no_overflow,
    check_positive,
    per_channel,
    stat_axes,
)
from .batchnorm import BatchNormCache, check_inputs

__all__ = [
    "batchnorm_backward_loops",
    "batchnorm_backward_naive",
    "batchnorm_forward_loops",
    "batchnorm_forward_naive",
    "normalization_jacobian",
    "numerical_jacobian",
]


# The textbook formulas square x - mean; beyond ~1e154 (float64) or ~1e19 (float32) the
# squares overflow and the output would silently come out as beta.
_TOO_LARGE = ("its squares overflow {dtype} in the textbook variance formula; divide x by a "
              "constant first (the output does not depend on its scale), or use "
              "bnutils.batchnorm.batchnorm_forward, which computes the statistics of inputs "
              "too large to square")


def _prepare_2d(x, gamma, beta, eps):
    """The public forward's checks, for the loops: (N, D) only, computed in float64."""
    x = as_float_array(x, "x", dtype=np.float64)
    check_ndim(x, "x", (2,), "(N, D) (the loop versions handle fully connected batches only; "
                             "use bnutils.batchnorm_forward for (N, C, H, W))")
    return check_inputs(x, gamma, beta, eps, training=True)


def _prepare_backward_2d(dout, cache):
    check_cache(cache, BatchNormCache, "a *_forward function")
    if len(cache.shape) != 2:
        raise ValueError(f"the loop backward handles (N, D) batches only; the cache is "
                         f"for shape {cache.shape}")
    return check_dout(dout, cache.shape, np.float64)


def batchnorm_forward_loops(x, gamma, beta, eps: float = 1e-5):
    """Training-mode BN forward with explicit Python loops (one feature, one sample at a time).

    For each feature j: ``mean_j = (1/N) Σ_i x_ij``, ``var_j = (1/N) Σ_i (x_ij - mean_j)²``,
    ``x_hat_ij = (x_ij - mean_j) / sqrt(var_j + eps)``, ``out_ij = gamma_j x_hat_ij + beta_j``.

    Parameters
    ----------
    x : array_like, shape (N, D), N ≥ 2
    gamma, beta : array_like, shape (D,)
    eps : float, optional

    Returns
    -------
    out : ndarray, shape (N, D), float64
    cache : BatchNormCache
        Interchangeable with the cache of ``bnutils.batchnorm_forward``.

    Examples
    --------
    >>> out, cache = batchnorm_forward_loops([[1.0], [3.0]], [1.0], [0.0])
    >>> np.round(out.ravel(), 4) + 0.0
    array([-1.,  1.])

    Introduced in notebook 04.
    """
    x, gamma, beta, eps = _prepare_2d(x, gamma, beta, eps)
    n, d = x.shape
    out = np.empty((n, d))
    x_hat = np.empty((n, d))
    mean, var, inv_std = np.empty(d), np.empty(d), np.empty(d)
    for j in range(d):
        with np.errstate(over="ignore", invalid="ignore"):   # checked just below
            total = 0.0
            for i in range(n):
                total += x[i, j]
            mu = total / n                              # μ_B
            total = 0.0
            for i in range(n):
                total += (x[i, j] - mu) ** 2
            sigma2 = total / n                          # σ²_B (biased)
        check_no_overflow(sigma2, _TOO_LARGE.format(dtype="float64"), x=x)
        inv = 1.0 / (sigma2 + eps) ** 0.5               # 1 / sqrt(σ²_B + ε)
        for i in range(n):
            x_hat[i, j] = (x[i, j] - mu) * inv
            out[i, j] = gamma[j] * x_hat[i, j] + beta[j]
        mean[j], var[j], inv_std[j] = mu, sigma2, inv
    cache = BatchNormCache(x_hat=x_hat, gamma=gamma.copy(), mean=mean, var=var,
                           inv_std=inv_std, eps=eps, axes=(0,), count=n)
    return out, cache


def batchnorm_backward_loops(dout, cache: BatchNormCache):
    """Training-mode BN backward with explicit Python loops, following the paper's chain rule.

    Per feature (sums over the N samples, ``xmu = x - mean``, ``s = var + eps``)::

        dx_hat_i = dout_i · gamma
        dvar     = Σ_i dx_hat_i · xmu_i · (-1/2) · s^(-3/2)
        dmean    = Σ_i dx_hat_i · (-1/sqrt(s)) + dvar · Σ_i (-2 xmu_i) / N
        dx_i     = dx_hat_i / sqrt(s) + dvar · 2 xmu_i / N + dmean / N
        dgamma   = Σ_i dout_i · x_hat_i,   dbeta = Σ_i dout_i

    Parameters
    ----------
    dout : array_like, shape (N, D)
    cache : BatchNormCache
        From any of the forward functions, for an (N, D) input.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)

    Examples
    --------
    >>> out, cache = batchnorm_forward_loops([[1.0], [2.0], [4.0]], [1.0], [0.0])
    >>> dx, dgamma, dbeta = batchnorm_backward_loops([[1.0], [0.0], [0.0]], cache)
    >>> round(float(dx.sum()), 12) + 0.0
    0.0

    Introduced in notebook 04.
    """
    dout = _prepare_backward_2d(dout, cache)
    n, d = dout.shape
    dx = np.empty((n, d))
    dgamma, dbeta = np.empty(d), np.empty(d)
    for j in range(d):
        gamma, inv = float(cache.gamma[j]), float(cache.inv_std[j])
        std = 1.0 / inv
        xmu = [float(cache.x_hat[i, j]) * std for i in range(n)]     # x - μ, recovered
        dx_hat = [float(dout[i, j]) * gamma for i in range(n)]
        dvar = 0.0
        for i in range(n):
            dvar += dx_hat[i] * xmu[i] * -0.5 * inv**3
        dmean, sum_xmu = 0.0, 0.0
        for i in range(n):
            dmean += -dx_hat[i] * inv
            sum_xmu += -2.0 * xmu[i]
        dmean += dvar * sum_xmu / n
        g, b = 0.0, 0.0
        for i in range(n):
            dx[i, j] = dx_hat[i] * inv + dvar * 2.0 * xmu[i] / n + dmean / n
            g += float(dout[i, j]) * float(cache.x_hat[i, j])
            b += float(dout[i, j])
        dgamma[j], dbeta[j] = g, b
    return dx, dgamma, dbeta


def batchnorm_forward_naive(x, gamma, beta, eps: float = 1e-5):
    """Training-mode BN forward, the textbook equations vectorized literally.

    One whole-array NumPy expression per equation of the paper, as most study notes
    write it: no preallocation, no blocking, the plain two-pass variance. It is also
    the "naive NumPy" that ``benchmarks/run.py`` times ``bnutils`` against, so it keeps
    the dtype of ``x`` (float32 stays float32) and takes ``(N, C, H, W)`` input too.

    Parameters
    ----------
    x : array_like, shape (N, D) or (N, C, H, W), at least 2 values per feature/channel
    gamma, beta : array_like, shape (D,) or (C,)
    eps : float, optional

    Returns
    -------
    out : ndarray, shape like ``x``
    cache : BatchNormCache

    Examples
    --------
    >>> out, _ = batchnorm_forward_naive(np.arange(1, 16).reshape(5, 3), np.ones(3), np.zeros(3))
    >>> np.round(out[:, 0], 4)
    array([-1.4142, -0.7071,  0.    ,  0.7071,  1.4142])

    Introduced in notebook 04.
    """
    # The public forward's checks; the dtype of x is kept (float32 stays float32).
    x, gamma, beta, eps = check_inputs(x, gamma, beta, eps, training=True)
    axes = stat_axes(x.ndim)
    g, b = per_channel(gamma, x.ndim), per_channel(beta, x.ndim)
    with np.errstate(over="ignore", invalid="ignore"):        # checked just below
        mean = x.mean(axis=axes, keepdims=True)               # (1, D) or (1, C, 1, 1)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)   # biased
    check_no_overflow(var, _TOO_LARGE.format(dtype=x.dtype.name), x=x)
    x_hat = (x - mean) / np.sqrt(var + eps)                  # shape like x
    out = g * x_hat + b
    mean, var = mean.ravel(), var.ravel()
    cache = BatchNormCache(x_hat=x_hat, gamma=gamma.copy(), mean=mean, var=var,
                           inv_std=1.0 / np.sqrt(var + eps), eps=eps, axes=axes,
                           count=x.size // x.shape[1])
    return out, cache


def batchnorm_backward_naive(dout, cache: BatchNormCache):
    """Training-mode BN backward, the paper's chain-rule equations vectorized literally.

    The same equations as ``batchnorm_backward_loops`` with one array per symbol
    (``dx_hat``, ``dvar``, ``dmean``); no algebraic simplification, so it does more
    work than ``bnutils.batchnorm_backward``. Takes any ``BatchNormCache`` (2-D or 4-D).

    Parameters
    ----------
    dout : array_like, shape like ``x``
    cache : BatchNormCache

    Returns
    -------
    dx : ndarray, shape like ``x``
    dgamma, dbeta : ndarray, shape (D,) or (C,)

    Examples
    --------
    >>> out, cache = batchnorm_forward_naive([[1.0], [2.0], [4.0]], [2.0], [0.0])
    >>> dx, dgamma, dbeta = batchnorm_backward_naive([[1.0], [0.0], [0.0]], cache)
    >>> float(dbeta[0])
    1.0

    Introduced in notebook 04.
    """
    check_cache(cache, BatchNormCache, "a *_forward function")
    dout = check_dout(dout, cache.shape, cache.x_hat.dtype)
    nd, axes, m = dout.ndim, cache.axes, cache.count
    var, gamma = per_channel(cache.var, nd), per_channel(cache.gamma, nd)
    std = np.sqrt(var + cache.eps)
    xmu = cache.x_hat * std                                               # x - mean
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * xmu, axis=axes, keepdims=True) * -0.5 * (var + cache.eps) ** -1.5
    dmean = np.sum(-dx_hat / std, axis=axes, keepdims=True) \
        + dvar * np.sum(-2.0 * xmu, axis=axes, keepdims=True) / m
    dx = dx_hat / std + dvar * 2.0 * xmu / m + dmean / m
    dgamma = np.sum(dout * cache.x_hat, axis=axes)
    dbeta = np.sum(dout, axis=axes)
    return dx, dgamma, dbeta


def normalization_jacobian(x, eps: float = 1e-5) -> np.ndarray:
    """The N×N Jacobian ∂x_hat/∂x of the normalization of one feature, in closed form.

    ``J = (1/sqrt(var + eps)) · (I - 11ᵀ/N - x_hat x_hatᵀ/N)``, symmetric. ``J @ 1 = 0``
    exactly (a shift of the batch changes nothing) and
    ``J @ x_hat = x_hat · eps / (sqrt(var + eps) · (var + eps))``, which is ≈ 0 when
    ``eps`` ≪ ``var`` (a rescaling of the batch changes almost nothing).

    Parameters
    ----------
    x : array_like, shape (N,)
        One feature's values across the batch, N ≥ 2.
    eps : float, optional

    Returns
    -------
    J : ndarray, shape (N, N), ``J[i, k] = ∂x_hat_i / ∂x_k``
        float64 whatever the dtype of ``x``: a reference, computed at full precision.

    Examples
    --------
    >>> J = normalization_jacobian([1.0, 2.0, 4.0])
    >>> np.round(J @ np.ones(3), 12) + 0.0
    array([0., 0., 0.])

    Introduced in notebook 04.
    """
    x = as_float_array(x, "x", dtype=np.float64)
    check_ndim(x, "x", (1,), "(N,) (one feature across the batch)")
    check_finite(x, "x")
    if x.shape[0] < 2:
        raise ValueError(f"x needs at least 2 values, got shape {x.shape}")
    eps = check_positive(eps, "eps")
    n = x.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):        # checked just below
        var = x.var()
    check_no_overflow(var, "its squares overflow float64; divide x by a constant c first "
                           "(J scales with 1/c)", x=x)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - x.mean()) * inv_std
    return inv_std * (np.eye(n) - np.ones((n, n)) / n - np.outer(x_hat, x_hat) / n)


def numerical_jacobian(f: Callable[[np.ndarray], np.ndarray], x, h: float = 1e-5) -> np.ndarray:
    """Jacobian of a vector function by centred finite differences, one column per input.

    ``J[:, k] ≈ (f(x + h e_k) - f(x - h e_k)) / (2h)``. ``f`` gets a fresh copy of ``x``
    each time; ``x`` is never modified.

    Parameters
    ----------
    f : callable
        Maps an array of shape (N,) to an array of shape (M,).
    x : array_like, shape (N,)
    h : float, optional

    Returns
    -------
    J : ndarray, shape (M, N), float64

    Raises
    ------
    TypeError
        ``f`` is not callable, or ``x`` is not numeric.
    ValueError
        ``x`` is not 1-D, is empty, or holds NaN/inf; ``h`` is not a finite number > 0.

    Examples
    --------
    >>> J = numerical_jacobian(lambda v: np.array([v[0] * v[1], v[1]]), [2.0, 3.0])
    >>> np.round(J, 6) + 0.0
    array([[3., 2.],
           [0., 1.]])

    Introduced in notebook 04.
    """
    if not callable(f):
        raise TypeError(f"f must be a function of one array, got {f!r}")
    x = as_float_array(x, "x", dtype=np.float64)
    check_ndim(x, "x", (1,), "(N,)")
    if x.size == 0:
        raise ValueError("x must hold at least one value, got an empty array")
    check_finite(x, "x")
    h = check_positive(h, "h")
    columns = []
    for k in range(x.shape[0]):
        plus, minus = x.copy(), x.copy()
        plus[k] += h
        minus[k] -= h
        columns.append((np.asarray(f(plus), dtype=np.float64)
                        - np.asarray(f(minus), dtype=np.float64)) / (2.0 * h))
    return np.stack(columns, axis=1)
