"""Numerical gradients by centred finite differences: the one checker the course uses.

Introduced in notebook 04.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._validation import as_float_array, check_finite, check_positive

__all__ = ["numerical_gradient", "rel_error"]


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of the scalar function ``f`` at ``x`` by centred differences.

    ``df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / (2h)``, whose error is O(h²).
    ``f`` is called on a fresh copy of ``x`` each time, so a function that ignores
    its argument (or mutates it) cannot pass by accident; ``x`` itself is never changed.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to a scalar (e.g. ``lambda x: np.sum(out(x) * dout)``).
    x : ndarray, any shape
        The point at which to differentiate, finite; computed in float64.
    h : float > 0, optional
        The step. 1e-5 balances truncation error (~h²) against round-off (~1e-16/h).

    Returns
    -------
    grad : ndarray, same shape as ``x``, float64

    Examples
    --------
    >>> g = numerical_gradient(lambda v: float(np.sum(v ** 2)), np.array([1.0, -2.0]))
    >>> np.round(g, 6)
    array([ 2., -4.])

    Introduced in notebook 04.
    """
    h = check_positive(h, "h")          # a finite number > 0 (h = NaN/inf: every entry NaN)
    if not callable(f):
        raise TypeError(f"f must be a function of x returning a scalar, got {type(f).__name__}")
    x = np.array(as_float_array(x, "x", dtype=np.float64))  # our own copy
    if x.size == 0:
        raise ValueError(f"x must hold at least one value to differentiate at; got shape {x.shape}")
    check_finite(x, "x")                # at NaN/inf, f(x + h) - f(x - h) is NaN: no gradient
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        plus = x.copy()
        plus[idx] += h
        minus = x.copy()
        minus[idx] -= h
        fp, fm = f(plus), f(minus)
        if np.ndim(fp) != 0 or np.ndim(fm) != 0:
            raise ValueError("f must return a scalar; wrap it, e.g. lambda x: np.sum(g(x) * dout)")
        fp, fm = float(fp), float(fm)
        if not (math.isfinite(fp) and math.isfinite(fm)):     # the difference would be NaN
            raise ValueError(f"f returned a non-finite value ({fp} at x{list(idx)} + h, {fm} at "
                             f"x{list(idx)} - h): there is no gradient to estimate")
        grad[idx] = (fp - fm) / (2.0 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest element-wise relative error ``|a - b| / max(1e-8, |a| + |b|)``.

    For a correct float64 gradient compared with ``numerical_gradient``, expect about
    1e-7 or less; 1e-2 or more means a bug.

    Examples
    --------
    >>> rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9])) < 1e-9
    True

    Introduced in notebook 04.
    """
    # A NaN would make the result NaN, and `err > tol` is False for NaN: refuse it here.
    a = as_float_array(a, "a", dtype=np.float64)
    b = as_float_array(b, "b", dtype=np.float64)
    check_finite(a, "a")
    check_finite(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
