"""Folding a BatchNorm layer in eval mode into the linear layer before it.

Introduced in notebook 06.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_finite, check_param, check_positive, check_running_stats

__all__ = ["fold_batchnorm"]


def fold_batchnorm(weight, bias, gamma, beta, running_mean, running_var, eps: float = 1e-5):
    """Fold ``BN_eval(x @ weight + bias)`` into one affine map ``x @ weight' + bias'``.

    In eval mode BN is a fixed per-feature affine map,
    ``scale = gamma / sqrt(running_var + eps)``, ``out = scale * (z - running_mean) + beta``,
    so with ``z = x @ weight + bias``::

        weight' = weight * scale              (each output column scaled)
        bias'   = (bias - running_mean) * scale + beta

    This is exact for inference only: in training mode BN uses the batch statistics,
    which change with every batch, so no fixed weights can reproduce it.

    Parameters
    ----------
    weight : array_like, shape (D_in, D), D_in ≥ 1 and D ≥ 1
        For ``z = x @ weight + bias``.
    bias : array_like of shape (D,), or None
        None means a linear layer without bias (zeros).
    gamma, beta, running_mean, running_var : array_like, shape (D,)
    eps : float, optional

    Returns
    -------
    weight, bias : ndarray, shapes (D_in, D) and (D,)
        New arrays; the inputs are not modified.

    Examples
    --------
    >>> W, b = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([1.0, 0.0])
    >>> Wf, bf = fold_batchnorm(W, b, np.ones(2), np.zeros(2), np.array([1.0, 0.0]),
    ...                         np.array([4.0, 1.0]), eps=1e-12)
    >>> np.round(Wf, 6), np.round(bf, 6) + 0.0
    (array([[1., 0.],
           [0., 1.]]), array([0., 0.]))

    Introduced in notebook 06.
    """
    weight = as_float_array(weight, "weight")
    if weight.ndim != 2 or 0 in weight.shape:   # (checked before bias: its D comes from here)
        raise ValueError(f"weight must have shape (D_in, D) with D_in ≥ 1 and D ≥ 1, for "
                         f"z = x @ weight + bias; got shape {weight.shape}")
    check_finite(weight, "weight")
    D = weight.shape[1]
    dtype = weight.dtype
    bias = np.zeros(D, dtype) if bias is None else check_param(bias, "bias", D, "output feature", dtype)
    gamma = check_param(gamma, "gamma", D, "output feature", dtype)
    beta = check_param(beta, "beta", D, "output feature", dtype)
    running_mean, running_var = check_running_stats(
        running_mean, running_var, D, "output feature", dtype)
    eps = check_positive(eps, "eps")
    scale = gamma / np.sqrt(running_var + eps)
    return weight * scale, (bias - running_mean) * scale + beta
