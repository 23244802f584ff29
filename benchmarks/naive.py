"""The naive textbook BN for the benchmark: the paper's equations as whole-array NumPy.

The same expressions as ``bnutils.reference.batchnorm_forward_naive`` /
``batchnorm_backward_naive`` (``tests/test_benchmark.py`` checks they agree), with the
two things the benchmark needs and the teaching version does not have: the input's
dtype is kept (float32 stays float32, so the comparison with the fast path is fair),
and ``(N, C, H, W)`` input is reduced over axes (0, 2, 3) with ``keepdims``. Like
textbook code it validates nothing.
"""

import numpy as np


def _axes_shape(ndim):
    return ((0,), (1, -1)) if ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


def forward(x, gamma, beta, eps=1e-5):
    """``out, cache``: mean, biased variance, x_hat, out = gamma · x_hat + beta."""
    axes, shape = _axes_shape(x.ndim)
    gamma, beta = gamma.reshape(shape), beta.reshape(shape)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    x_hat = (x - mean) / np.sqrt(var + eps)
    out = gamma * x_hat + beta
    return out, (x_hat, gamma, mean, var, eps, axes)


def backward(dout, cache):
    """``dx, dgamma, dbeta`` through the paper's chain rule (dx_hat, dvar, dmean)."""
    x_hat, gamma, _, var, eps, axes = cache
    m = dout.size // dout.shape[1]
    std = np.sqrt(var + eps)
    xmu = x_hat * std
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * xmu, axis=axes, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmean = np.sum(-dx_hat / std, axis=axes, keepdims=True) \
        + dvar * np.sum(-2.0 * xmu, axis=axes, keepdims=True) / m
    dx = dx_hat / std + dvar * 2.0 * xmu / m + dmean / m
    dgamma = np.sum(dout * x_hat, axis=axes)
    dbeta = np.sum(dout, axis=axes)
    return dx, dgamma, dbeta


def update_running_stats(running_mean, running_var, cache, momentum=0.1):
    """PyTorch's rule with the unbiased batch variance; new arrays."""
    x_hat, _, mean, var, _, _ = cache
    m = x_hat.size // x_hat.shape[1]
    new_mean = (1 - momentum) * running_mean + momentum * mean.ravel()
    new_var = (1 - momentum) * running_var + momentum * var.ravel() * (m / (m - 1))
    return new_mean, new_var
