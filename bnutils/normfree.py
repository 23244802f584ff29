"""Normalizer-free tools: Weight Standardization and adaptive gradient clipping.

Weight Standardization (Qiao et al. 2019) normalizes each output unit's *weights* over
its fan-in, ``W_hat = (W - mean) / sqrt(var + eps)``, and is used together with
GroupNorm at small batches. Adaptive gradient clipping (AGC, Brock et al. 2021, the
NFNets paper) rescales a gradient unit by unit wherever ``‖G‖ / max(‖W‖, eps)`` exceeds
a threshold λ, so that one step cannot change a unit's weights by more than a fraction
λ of their size.

A "unit" is one output unit: a column of a ``Linear`` weight, shape (in_features,
out_features), or one output channel of a ``Conv2d`` weight, shape (C_out, C_in, k, k).
Its fan-in axes are written once, in ``fan_in_axes``. A 1-d parameter (a bias, a
SkipInit α) has one unit per entry, as in the NFNets code.

Introduced in notebook 09.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .conv import Conv2d
from .layers import Linear

__all__ = [
    "WSConv2d",
    "WSLinear",
    "WeightStandardizationCache",
    "adaptive_grad_clip",
    "fan_in_axes",
    "unitwise_norm",
    "weight_standardize_backward",
    "weight_standardize_forward",
]


def _as_float(value, name: str) -> np.ndarray:
    """``value`` as a float array (a float32 one stays float32), refusing non-numbers."""
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf")
    return arr


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def fan_in_axes(ndim: int) -> tuple:
    """The axes a weight's output unit spans: ``(0,)`` for a Linear weight (in, out),
    ``(1, 2, 3)`` for a Conv2d weight (C_out, C_in, k, k), ``()`` for a 1-d parameter.

    Examples
    --------
    >>> fan_in_axes(2), fan_in_axes(4), fan_in_axes(1)
    ((0,), (1, 2, 3), ())
    """
    axes = {1: (), 2: (0,), 4: (1, 2, 3)}
    if isinstance(ndim, bool) or not isinstance(ndim, (int, np.integer)):
        raise TypeError(f"ndim must be an int (1, 2 or 4), got {ndim!r}")
    if ndim not in axes:
        raise ValueError(f"ndim must be 1, 2 or 4: a parameter is 1-d (bias), 2-d (Linear weight, "
                         f"(in, out)) or 4-d (Conv2d weight, (C_out, C_in, k, k)); got ndim = {ndim}")
    return axes[int(ndim)]


def _sum_of_squares(x: np.ndarray, axes: tuple, name: str) -> np.ndarray:
    """Per-unit sum of squares, refusing values whose squares overflow the dtype.

    Introduced in notebook 09.
    """
    with np.errstate(over="ignore"):
        sumsq = np.sum(np.square(x), axis=axes, keepdims=True)
    if not np.all(np.isfinite(sumsq)):
        raise ValueError(f"{name} holds values too large to square in {x.dtype.name} (largest "
                         f"|{name}| = {float(np.max(np.abs(x))):.3g}); divide it by a constant first")
    return sumsq


def unitwise_norm(x) -> np.ndarray:
    """Euclidean norm of each output unit of ``x``, broadcastable against ``x``.

    Parameters
    ----------
    x : array_like, shape (D,), (in, out) or (C_out, C_in, k, k)

    Returns
    -------
    ndarray
        Shape (D,) (``|x|`` entry by entry), (1, out) or (C_out, 1, 1, 1).

    Examples
    --------
    >>> unitwise_norm(np.array([[3.0, 1.0], [4.0, 0.0]]))
    array([[5., 1.]])
    """
    return _unitwise_norm(_as_float(x, "x"), "x")


def _unitwise_norm(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim not in (1, 2, 4):
        raise ValueError(f"{name} must be 1-d (bias), 2-d (Linear weight, (in, out)) or 4-d "
                         f"(Conv2d weight, (C_out, C_in, k, k)); got shape {x.shape}")
    axes = fan_in_axes(x.ndim)
    if not axes:
        return np.abs(x)
    return np.sqrt(_sum_of_squares(x, axes, name))


def adaptive_grad_clip(grad, param, clipping: float = 0.01, eps: float = 1e-3) -> np.ndarray:
    """Adaptive gradient clipping (Brock et al. 2021), unit by unit; a new array.

    For each output unit i with gradient ``G_i`` and weights ``W_i``:
    ``G_i ← G_i · λ·max(‖W_i‖, eps) / ‖G_i‖`` if ``‖G_i‖ / max(‖W_i‖, eps) > λ``, else
    ``G_i`` unchanged. So a step ``lr · G_i`` changes a unit by at most ``lr·λ`` times its
    norm; ``eps`` keeps units that start at zero (a SkipInit α) from being frozen.

    Parameters
    ----------
    grad : array_like, shape like ``param``
    param : array_like, shape (D,), (in, out) or (C_out, C_in, k, k)
        The current weights (not modified).
    clipping : float, optional
        λ, the largest allowed ratio ``‖G_i‖ / max(‖W_i‖, eps)``.
    eps : float, optional

    Returns
    -------
    ndarray, shape like ``grad``

    Examples
    --------
    >>> W = np.array([[3.0, 1.0], [4.0, 0.0]])           # unit norms 5 and 1
    >>> G = np.array([[0.6, 0.0], [0.8, 0.001]])         # unit norms 1 and 0.001
    >>> adaptive_grad_clip(G, W, clipping=0.1)           # 1/5 > 0.1: scaled to 0.5; 0.001/1 kept
    array([[0.3  , 0.   ],
           [0.4  , 0.001]])

    Introduced in notebook 09.
    """
    grad = _as_float(grad, "grad")
    param = _as_float(param, "param")
    if grad.shape != param.shape:
        raise ValueError(f"grad must have the shape of param, {param.shape}; got {grad.shape}")
    clipping = _positive(clipping, "clipping")
    eps = _positive(eps, "eps")
    max_norm = clipping * np.maximum(_unitwise_norm(param, "param"), eps)
    grad_norm = _unitwise_norm(grad, "grad")
    # where the gradient is within bounds the factor is 1; the maximum avoids 0/0 for a
    # zero gradient (which is always within bounds)
    factor = np.where(grad_norm > max_norm, max_norm / np.maximum(grad_norm, 1e-300), 1.0)
    return grad * factor


@dataclass(frozen=True)
class WeightStandardizationCache:
    """What ``weight_standardize_backward`` needs: ``w_hat`` (shape of W) and
    ``inv_std`` (1 / sqrt(var + eps) per unit, broadcastable against W)."""

    w_hat: np.ndarray
    inv_std: np.ndarray


def weight_standardize_forward(W, eps: float = 1e-5):
    """Weight Standardization: each output unit's weights to mean 0, variance 1 over its fan-in.

    ``W_hat = (W - μ) / sqrt(σ² + eps)``, with μ, σ² the mean and (biased) variance of one
    unit's weights (Qiao et al. 2019, eq. 5–6): the activation normalization of LayerNorm,
    applied to the weights. The next layer's output then no longer depends on the scale
    or shift of each unit's weights.

    Parameters
    ----------
    W : array_like, shape (in, out) or (C_out, C_in, k, k)
        Not modified. A unit needs a fan-in of at least 2.
    eps : float, optional

    Returns
    -------
    W_hat : ndarray, shape of W
    cache : WeightStandardizationCache

    Examples
    --------
    >>> W_hat, _ = weight_standardize_forward(np.array([[1.0], [3.0]]), eps=1e-12)
    >>> np.round(W_hat.ravel(), 6)
    array([-1.,  1.])

    Introduced in notebook 09.
    """
    W = _as_float(W, "W")
    if W.ndim not in (2, 4):
        raise ValueError(f"W must be a 2-d Linear weight (in, out) or a 4-d Conv2d weight; "
                         f"got shape {W.shape}")
    axes = fan_in_axes(W.ndim)
    fan_in = int(np.prod([W.shape[a] for a in axes]))
    if fan_in < 2 or W.size == 0:
        raise ValueError(f"each unit of W needs a fan-in of at least 2 to standardize over; "
                         f"W has shape {W.shape} (fan-in {fan_in})")
    eps = _positive(eps, "eps")
    with np.errstate(over="ignore", invalid="ignore"):     # checked by _sum_of_squares
        centred = W - W.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(_sum_of_squares(centred, axes, "W") / fan_in + eps)
    w_hat = centred * inv_std
    return w_hat, WeightStandardizationCache(w_hat=w_hat, inv_std=inv_std)


def weight_standardize_backward(dW_hat, cache: WeightStandardizationCache) -> np.ndarray:
    """Backward pass of ``weight_standardize_forward``: the gradient with respect to W.

    ``dW = inv_std · (dW_hat − mean(dW_hat) − W_hat · mean(dW_hat · W_hat))``, means over
    each unit's fan-in (LayerNorm's backward, on the weights).

    Parameters
    ----------
    dW_hat : array_like, shape of W
    cache : WeightStandardizationCache

    Returns
    -------
    dW : ndarray, shape of W

    Introduced in notebook 09.
    """
    if not isinstance(cache, WeightStandardizationCache):
        raise TypeError(f"cache must be the WeightStandardizationCache that weight_standardize_forward "
                        f"returned, got {type(cache).__name__}")
    dW_hat = _as_float(dW_hat, "dW_hat")
    if dW_hat.shape != cache.w_hat.shape:
        raise ValueError(f"dW_hat must have the shape of W, {cache.w_hat.shape}; got {dW_hat.shape}")
    axes = fan_in_axes(dW_hat.ndim)
    mean_g = dW_hat.mean(axis=axes, keepdims=True)
    mean_gw = np.mean(dW_hat * cache.w_hat, axis=axes, keepdims=True)
    return cache.inv_std * (dW_hat - mean_g - cache.w_hat * mean_gw)


class _StandardizedWeight:
    """What WSLinear and WSConv2d add to their layer, written once: every forward
    standardizes ``W`` into ``W_hat`` and runs the layer's own forward and backward with
    ``W_hat`` in place of ``W``; ``backward`` then maps the layer's ``dW`` (for ``W_hat``)
    back to the raw ``W`` through ``weight_standardize_backward``."""

    def __init__(self, *args, eps: float = 1e-5, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = _positive(eps, "eps")
        self.W_hat = None
        self._wcache = None

    @contextmanager
    def _using_w_hat(self):
        raw = self.W
        self.W = self.W_hat                     # the layer's forward and backward use self.W
        try:
            yield
        finally:
            self.W = raw

    def forward(self, x):
        """The layer's forward with ``W_hat`` for ``W``; ``x`` and ``out`` as the layer's."""
        self._wcache = None
        self.W_hat, wcache = weight_standardize_forward(self.W, self.eps)
        with self._using_w_hat():
            out = super().forward(x)            # (clears the caches, so _wcache is set after)
        self._wcache = wcache
        return out

    def backward(self, dout):
        """The layer's backward with ``W_hat``; sets ``dW`` (for the raw ``W``) and ``db``."""
        self._need_forward("_wcache")
        with self._using_w_hat():
            dx = super().backward(dout)
        self.dW = weight_standardize_backward(self.dW, self._wcache)
        return dx


class WSLinear(_StandardizedWeight, Linear):
    """``Linear`` whose weight is standardized in every forward: ``out = x @ W_hat + b``.

    Same constructor as ``Linear``; ``W`` is the learned (raw) weight, ``W_hat`` the
    standardized one the last forward used. Use it before a GroupNorm (Qiao et al.
    2019): W_hat's columns have variance 1, so ``x @ W_hat`` is ``fan_in`` times larger
    than a He-initialized layer's output, which the normalization after it removes.

    Examples
    --------
    >>> layer = WSLinear(4, 3, rng=0)
    >>> out = layer.forward(np.ones((2, 4)))
    >>> np.allclose(layer.W_hat.mean(axis=0), 0), out.shape
    (True, (2, 3))

    Introduced in notebook 09.
    """

    cache_names = ("_x", "_wcache")

    def __repr__(self):
        return f"WSLinear({self.in_features}, {self.out_features}, bias={self.b is not None})"


class WSConv2d(_StandardizedWeight, Conv2d):
    """``Conv2d`` whose kernel is standardized per output channel in every forward.

    Same constructor as ``Conv2d``; ``W`` (C_out, C_in, k, k) is the learned kernel,
    ``W_hat`` the standardized one the last forward used.

    Examples
    --------
    >>> conv = WSConv2d(2, 3, kernel_size=3, rng=0)
    >>> conv.forward(np.ones((1, 2, 4, 4))).shape
    (1, 3, 4, 4)

    Introduced in notebook 09.
    """

    cache_names = ("_cache", "_wcache")

    def __repr__(self):
        return (f"WSConv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.b is not None})")
