"""Dropout, and the variance shift it causes in a BatchNorm layer after it.

Inverted dropout (the convention of PyTorch and Keras): in training mode each value is
kept with probability ``q = 1 - p`` and divided by ``q``, so its *mean* is the same in
training and at inference, where dropout does nothing. Its *variance* is not: a value
``a`` becomes ``a · m / q`` with ``m ~ Bernoulli(q)``, whose variance over the masks and
the data is ``(Var a + E[a]²) / q − E[a]²`` instead of ``Var a``. A BN layer after
dropout learns its running variance from the training-mode (larger) variance and then
meets the smaller inference-time variance: the "variance shift" of Li et al. (2019).

Introduced in notebook 07.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import NonFiniteError, as_float_array, as_generator, check_dout, check_finite
from .layers import Layer

__all__ = ["Dropout", "dropout_backward", "dropout_forward", "dropout_variance"]


def _check_rate(p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise TypeError(f"p (the dropout rate) must be a number in [0, 1), got {p!r}")
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p (the dropout rate) must lie in [0, 1), got {p}")
    return p


def _check_input(x) -> np.ndarray:
    x = as_float_array(x, "x")
    if x.size == 0:
        raise ValueError(f"x must hold at least one value, got shape {x.shape}")
    check_finite(x, "x")
    return x


def dropout_forward(x, p: float, rng):
    """Training-mode inverted dropout: zero each value with probability ``p``, scale the rest.

    Parameters
    ----------
    x : array_like, any shape
    p : float in [0, 1)
        Probability of dropping a value.
    rng : numpy.random.Generator or int
        Source of the mask.

    Returns
    -------
    out : ndarray, shape of x
        ``x * mask / (1 - p)``.
    mask : ndarray of bool, shape of x
        True where the value was kept (the cache of ``dropout_backward``).

    Examples
    --------
    >>> out, mask = dropout_forward(np.ones(6), 0.5, rng=0)
    >>> out.tolist(), bool(np.all(out[mask] == 2.0))
    ([2.0, 0.0, 0.0, 0.0, 2.0, 2.0], True)

    Introduced in notebook 07.
    """
    x = _check_input(x)
    p = _check_rate(p)
    mask = as_generator(rng, "rng").random(x.shape) >= p
    return x * mask / (1.0 - p), mask


def dropout_backward(dout, mask, p: float):
    """Gradient of ``dropout_forward``: ``dout * mask / (1 - p)``; ``dx`` has the shape of ``dout``.

    Introduced in notebook 07.
    """
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"mask must be the boolean mask returned by dropout_forward, got dtype "
                        f"{mask.dtype}")
    dout = check_dout(dout, mask.shape, of="the forward input x")
    return dout * mask / (1.0 - _check_rate(p))


def dropout_variance(mean, var, p: float):
    """Training-mode variance of inverted dropout's output, for inputs of given mean and variance.

    With keep probability ``q = 1 - p`` and a mask independent of the input,
    ``Var[a·m/q] = (var + mean²) / q − mean²``; in eval mode the variance stays ``var``.
    So the ratio train/eval is ``1 + (p / q) · (var + mean²) / var`` — larger than one,
    and much larger for inputs with a large mean, such as ReLU outputs.

    Parameters
    ----------
    mean, var : float or array_like of the same shape
        Mean and variance of dropout's input (per unit), ``var ≥ 0``; either may be a
        single number shared by every unit.
    p : float in [0, 1)

    Returns
    -------
    ndarray
        The training-mode variance of the output.

    Examples
    --------
    >>> float(dropout_variance(1.0, 1.0, 0.5))      # (1 + 1) / 0.5 - 1
    3.0

    Introduced in notebook 07.
    """
    mean, var = as_float_array(mean, "mean"), as_float_array(var, "var")
    for value, name in ((mean, "mean"), (var, "var")):
        if value.size == 0:
            raise ValueError(f"{name} must hold at least one value, got shape {value.shape}")
    # One mean and one variance per unit: the same shape, or one number shared by every
    # unit. Broadcasting a (D, 1) var against a (D,) mean would give a (D, D) table.
    if mean.shape != var.shape and mean.ndim and var.ndim:
        raise ValueError(f"mean and var must have the same shape (one of each per unit), or "
                         f"one of them must be a single number; got mean of shape "
                         f"{mean.shape} and var of shape {var.shape}")
    check_finite(mean, "mean")
    check_finite(var, "var")
    if np.any(var < 0):
        raise ValueError("var must be ≥ 0 (it is a variance)")
    p = _check_rate(p)
    q = 1.0 - p
    with np.errstate(over="ignore", invalid="ignore"):    # checked just below
        train_var = (var + mean**2) / q - mean**2
        if not np.isfinite(train_var).all():
            # mean² overflowed, but the answer may still fit: the same variance written
            # var / q + mean² · p / q without squaring mean alone (exactly var when p = 0).
            train_var = var / q + (mean * math.sqrt(p / q)) ** 2
    if not np.isfinite(train_var).all():     # the variance itself is beyond the dtype
        raise NonFiniteError(
            f"mean or var is too large for the variance to fit in {train_var.dtype.name} "
            f"(largest |mean| = {float(np.max(np.abs(mean))):.3g}, largest var = "
            f"{float(np.max(var)):.3g}); divide the input by a constant c first (the variance "
            f"scales with c²)" + (", or use float64" if train_var.dtype == np.float32 else ""))
    return train_var


class Dropout(Layer):
    """Inverted dropout layer: ``dropout_forward`` in training mode, the identity in eval mode.

    Parameters
    ----------
    p : float in [0, 1)
        Drop probability.
    rng : numpy.random.Generator or int, optional
        Source of the masks (a new mask at every training-mode forward).

    Examples
    --------
    >>> layer = Dropout(0.5, rng=0)
    >>> layer.eval().forward(np.ones((1, 3))).tolist()
    [[1.0, 1.0, 1.0]]

    Introduced in notebook 07.
    """

    cache_names = ("_mask", "_eval_shape")

    def __init__(self, p: float = 0.5, rng=None):
        self.p = _check_rate(p)
        self.rng = as_generator(rng, "rng")
        self.training = True
        self._mask = None
        self._eval_shape = None

    def forward(self, x):
        self._mask = self._eval_shape = None       # a forward that raises leaves no stale cache
        if self.training:
            out, self._mask = dropout_forward(x, self.p, self.rng)
            return out
        x = _check_input(x)
        self._eval_shape = x.shape
        return x.copy()

    def backward(self, dout):
        if self._mask is not None:
            return dropout_backward(dout, self._mask, self.p)
        self._need_forward("_eval_shape")
        return check_dout(dout, self._eval_shape, of="the forward input x").copy()

    def __repr__(self):
        return f"Dropout(p={self.p:g})"
