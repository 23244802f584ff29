"""Convolution for small images: 3×3 and 1×1 kernels, stride 1, zero ("same") padding.

The convolution (strictly, the cross-correlation every deep-learning library calls
convolution) is computed the way CS231n and Caffe do it, with *im2col*: every k×k
patch of the zero-padded input becomes one row of a matrix, and the convolution is a
single matrix product with the flattened kernels. Its backward is two more matrix
products and *col2im*, which adds each row's gradient back into the patch it came
from. ``conv2d_loops`` is the same convolution written as six plain loops: slow, but
easy to read and the reference the fast version is tested against.

Shapes: ``x`` is ``(N, C_in, H, W)``, the kernels ``W`` are ``(C_out, C_in, k, k)``
with k = 1 or 3, the bias ``b`` is ``(C_out,)``; the output is ``(N, C_out, H, W)``
(padding ``(k - 1) // 2`` keeps the image size).

Also here: ``GlobalAvgPool`` ((N, C, H, W) → (N, C)) and ``Flatten``
((N, ...) → (N, features)), the layers that connect a convolutional body to a
classifier.

Introduced in notebook 08.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (
    as_float_array,
    as_generator,
    check_cache,
    check_dout,
    check_finite,
    check_int,
    check_positive,
    read_only,
)
from .layers import Layer

__all__ = [
    "Conv2d",
    "ConvCache",
    "Flatten",
    "GlobalAvgPool",
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_loops",
    "im2col",
]

KERNEL_SIZES = (1, 3)


def _check_images(x, name: str = "x") -> np.ndarray:
    x = as_float_array(x, name)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty batch of images, shape (N, C, H, W); "
                         f"got shape {x.shape}")
    check_finite(x, name)
    return x


def _check_kernels(W, c_in: int, dtype) -> np.ndarray:
    W = as_float_array(W, "W", dtype=dtype)
    if W.ndim != 4 or W.shape[2] != W.shape[3] or W.shape[2] not in KERNEL_SIZES:
        raise ValueError(f"W must hold square 1×1 or 3×3 kernels, shape (C_out, C_in, k, k) "
                         f"with k in {KERNEL_SIZES}; got shape {W.shape}")
    if W.shape[0] == 0:
        raise ValueError(f"W must hold at least one kernel (C_out ≥ 1); got shape {W.shape}")
    if W.shape[1] != c_in:
        raise ValueError(f"W has {W.shape[1]} input channels (shape {W.shape}) but x has "
                         f"{c_in} (x is (N, C_in, H, W))")
    check_finite(W, "W")
    return W


def _check_bias(b, c_out: int, dtype):
    if b is None:
        return None
    b = as_float_array(b, "b", dtype=dtype)
    if b.shape != (c_out,):
        raise ValueError(f"b must have shape ({c_out},), one value per output channel; "
                         f"got shape {b.shape}")
    check_finite(b, "b")
    return b


def im2col(x, kernel_size: int) -> np.ndarray:
    """Unfold every k×k patch of the zero-padded images into one row.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    kernel_size : int, 1 or 3
        k; the images are padded with ``(k - 1) // 2`` zeros on each side, so there is
        one patch per pixel.

    Returns
    -------
    cols : ndarray, shape (N * H * W, C * k * k)
        Row ``(n * H + i) * W + j`` holds the patch centred on pixel (i, j) of image n,
        ordered like ``W.reshape(C_out, -1)``'s columns: channel, then kernel row, then
        kernel column. A new array; ``x`` is not changed.

    Examples
    --------
    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> im2col(x, 3)[0]            # the 3×3 patch around pixel (0, 0), zero-padded
    array([0., 0., 0., 0., 0., 1., 0., 2., 3.])

    Introduced in notebook 08.
    """
    x = _check_images(x)
    k = check_int(kernel_size, "kernel_size")
    if k not in KERNEL_SIZES:
        raise ValueError(f"kernel_size must be 1 or 3, got {k}")
    N, C, H, W = x.shape
    p = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))).transpose(1, 0, 2, 3)   # (C, N, H+2p, W+2p)
    # Filled as its transpose, (C, k, k, N, H, W): k² shifted copies of the whole batch, each
    # a block copy, which is several times faster than gathering the patches one by one.
    cols_t = np.empty((C, k, k, N, H, W), dtype=x.dtype)
    for u in range(k):
        for v in range(k):
            cols_t[:, u, v] = xp[:, :, u:u + H, v:v + W]
    return cols_t.reshape(C * k * k, N * H * W).T


def col2im(cols, x_shape, kernel_size: int) -> np.ndarray:
    """The adjoint of ``im2col``: add every row back into the patch it came from.

    Where patches overlap (every pixel belongs to up to k² patches) the values add up,
    which is exactly what the gradient needs: a pixel's gradient is the sum over all the
    outputs it contributed to. Contributions to the zero padding are dropped.

    Parameters
    ----------
    cols : array_like, shape (N * H * W, C * k * k)
    x_shape : tuple (N, C, H, W)
    kernel_size : int, 1 or 3

    Returns
    -------
    x : ndarray, shape (N, C, H, W)

    Raises
    ------
    TypeError
        ``cols`` is not numeric, or ``kernel_size`` / an entry of ``x_shape`` is not an int.
    ValueError
        ``cols`` holds NaN/inf or does not have the shape ``x_shape`` and ``kernel_size``
        call for; ``kernel_size`` is not 1 or 3.

    Examples
    --------
    >>> x = np.ones((1, 1, 2, 2))
    >>> col2im(im2col(x, 3), x.shape, 3)     # each pixel lies in all 4 patches here
    array([[[[4., 4.],
             [4., 4.]]]])

    Introduced in notebook 08.
    """
    cols = as_float_array(cols, "cols")
    check_finite(cols, "cols")
    k = check_int(kernel_size, "kernel_size")
    if k not in KERNEL_SIZES:
        raise ValueError(f"kernel_size must be 1 or 3, got {k}")
    if len(tuple(x_shape)) != 4:
        raise ValueError(f"x_shape must be (N, C, H, W), got {x_shape!r}")
    N, C, H, W = (check_int(v, "x_shape entries") for v in x_shape)
    if cols.shape != (N * H * W, C * k * k):
        raise ValueError(f"cols must have shape (N*H*W, C*k*k) = {(N * H * W, C * k * k)} for "
                         f"x_shape {tuple(x_shape)} and kernel_size {k}; got {cols.shape}")
    p = (k - 1) // 2
    patches = cols.T.reshape(C, k, k, N, H, W)          # a view when cols came from im2col
    xp = np.zeros((C, N, H + 2 * p, W + 2 * p), dtype=cols.dtype)
    for u in range(k):                      # k² shifted adds, each over the whole batch
        for v in range(k):
            xp[:, :, u:u + H, v:v + W] += patches[:, u, v]
    return np.ascontiguousarray(xp[:, :, p:p + H, p:p + W].transpose(1, 0, 2, 3))


@dataclass(frozen=True)
class ConvCache:
    """What ``conv2d_backward`` needs from ``conv2d_forward``.

    Attributes
    ----------
    cols : ndarray, shape (N * H * W, C_in * k * k)
        ``im2col(x, k)``.
    W : ndarray, shape (C_out, C_in, k, k)
    x_shape : tuple (N, C_in, H, W)
    has_bias : bool

    The arrays are stored as read-only views (as in ``BatchNormCache``), so nobody edits
    a cache between forward and backward.
    """

    cols: np.ndarray
    W: np.ndarray
    x_shape: tuple
    has_bias: bool

    def __post_init__(self):
        object.__setattr__(self, "cols", read_only(self.cols))
        object.__setattr__(self, "W", read_only(self.W))


def conv2d_forward(x, W, b=None):
    """Convolve a batch of images with ``C_out`` kernels (stride 1, same-size output).

    ``out[n, o, i, j] = b[o] + Σ_{c, u, v} W[o, c, u, v] · x_pad[n, c, i + u, j + v]``,
    computed as one matrix product ``im2col(x) @ W.reshape(C_out, -1).T``.

    Parameters
    ----------
    x : array_like, shape (N, C_in, H, W)
    W : array_like, shape (C_out, C_in, k, k), k = 1 or 3
    b : array_like, shape (C_out,), optional

    Returns
    -------
    out : ndarray, shape (N, C_out, H, W)
    cache : ConvCache

    Raises
    ------
    TypeError
        An array is not numeric.
    ValueError
        ``x`` is not a non-empty (N, C_in, H, W) batch; ``W`` holds no kernel (C_out = 0),
        kernels that are not square 1×1 or 3×3, or a C_in other than x's; ``b`` does not
        have shape (C_out,); any of them holds NaN/inf.

    Examples
    --------
    >>> x = np.ones((1, 1, 3, 3))
    >>> out, _ = conv2d_forward(x, np.ones((1, 1, 3, 3)))
    >>> out[0, 0]                  # the number of in-image pixels in each 3×3 patch
    array([[4., 6., 4.],
           [6., 9., 6.],
           [4., 6., 4.]])

    Introduced in notebook 08.
    """
    x = _check_images(x)
    W = _check_kernels(W, x.shape[1], x.dtype)
    b = _check_bias(b, W.shape[0], x.dtype)
    N, _, H, Wd = x.shape
    c_out, k = W.shape[0], W.shape[2]
    cols = im2col(x, k)                                         # (N·H·W, C_in·k·k)
    out = W.reshape(c_out, -1) @ cols.T                         # (C_out, N·H·W)
    if b is not None:
        out += b[:, None]
    out = out.reshape(c_out, N, H, Wd).transpose(1, 0, 2, 3)    # (N, C_out, H, W)
    return np.ascontiguousarray(out), ConvCache(cols, W.copy(), x.shape, b is not None)


def conv2d_backward(dout, cache: ConvCache):
    """Gradients of the convolution: ``dx``, ``dW`` and ``db`` (None without bias).

    With ``cols = im2col(x)`` and ``out = cols @ Wm.T`` (``Wm = W.reshape(C_out, -1)``):
    ``dWm = dout_m.T @ cols``, ``dcols = dout_m @ Wm`` and ``dx = col2im(dcols)``, where
    ``dout_m`` is ``dout`` as an (N·H·W, C_out) matrix; ``db`` sums ``dout`` over N, H, W
    (one bias is shared by every position, as BN's β is).

    Parameters
    ----------
    dout : array_like, shape (N, C_out, H, W)
    cache : ConvCache
        From ``conv2d_forward``.

    Returns
    -------
    dx : ndarray, shape (N, C_in, H, W)
    dW : ndarray, shape (C_out, C_in, k, k)
    db : ndarray, shape (C_out,), or None if the forward had no bias

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal((2, 1, 4, 4))
    >>> out, cache = conv2d_forward(x, np.ones((2, 1, 1, 1)), np.zeros(2))
    >>> dx, dW, db = conv2d_backward(np.ones_like(out), cache)
    >>> float(dx[0, 0, 0, 0]), db
    (2.0, array([32., 32.]))

    Introduced in notebook 08.
    """
    check_cache(cache, ConvCache, "conv2d_forward")
    N, c_in, H, Wd = cache.x_shape
    c_out, k = cache.W.shape[0], cache.W.shape[2]
    dout = check_dout(dout, (N, c_out, H, Wd), of="the forward output")
    dout_t = dout.transpose(1, 0, 2, 3).reshape(c_out, N * H * Wd)     # dout_m.T: (C_out, N·H·W)
    dW = (dout_t @ cache.cols).reshape(cache.W.shape)
    dcols_t = cache.W.reshape(c_out, -1).T @ dout_t                     # dcols.T: (C_in·k·k, N·H·W)
    dx = col2im(dcols_t.T, cache.x_shape, k)
    db = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None
    return dx, dW, db


def conv2d_loops(x, W, b=None) -> np.ndarray:
    """The convolution as plain loops over images, output channels, pixels and the kernel.

    The readable definition ``conv2d_forward`` is tested against (slow: use it only on
    tiny inputs).

    Parameters
    ----------
    x : array_like, shape (N, C_in, H, W)
    W : array_like, shape (C_out, C_in, k, k), k = 1 or 3
    b : array_like, shape (C_out,), optional

    Returns
    -------
    out : ndarray, shape (N, C_out, H, W)

    Raises
    ------
    TypeError
        An array is not numeric.
    ValueError
        ``x`` is not a non-empty (N, C_in, H, W) batch; ``W`` holds no kernel (C_out = 0),
        kernels that are not square 1×1 or 3×3, or a C_in other than x's; ``b`` does not
        have shape (C_out,); any of them holds NaN/inf.

    Examples
    --------
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> float(conv2d_loops(x, np.ones((1, 1, 3, 3)))[0, 0, 1, 1])     # all nine pixels
    36.0

    Introduced in notebook 08.
    """
    x = _check_images(x)
    W = _check_kernels(W, x.shape[1], x.dtype)
    b = _check_bias(b, W.shape[0], x.dtype)
    N, C, H, Wd = x.shape
    c_out, k = W.shape[0], W.shape[2]
    p = (k - 1) // 2
    out = np.zeros((N, c_out, H, Wd), dtype=x.dtype)
    for n in range(N):
        for o in range(c_out):
            for i in range(H):
                for j in range(Wd):
                    total = 0.0 if b is None else b[o]
                    for c in range(C):
                        for u in range(k):
                            for v in range(k):
                                r, s = i + u - p, j + v - p
                                if 0 <= r < H and 0 <= s < Wd:      # outside: zero padding
                                    total += W[o, c, u, v] * x[n, c, r, s]
                    out[n, o, i, j] = total
    return out


class Conv2d(Layer):
    """Convolutional layer (3×3 or 1×1 kernels, stride 1, zero padding, same-size output).

    A thin stateful wrapper around ``conv2d_forward``/``conv2d_backward``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : {3, 1}, optional
    bias : bool, optional
        Whether the layer adds a bias per output channel (drop it when BN follows: BN's β
        does the same job and the bias would get zero gradient, notebook 05).
    init : {"he"} or float, optional
        He initialization, std √(2 / fan_in) with fan_in = in_channels·k² (for ReLU), or
        a float: the standard deviation itself.
    rng : numpy.random.Generator or int, optional
    dtype : numpy dtype, optional

    Attributes
    ----------
    W : ndarray, shape (out_channels, in_channels, k, k)
    b : ndarray, shape (out_channels,) or None
    dW, db : ndarray or None
        Set by ``backward``.

    Examples
    --------
    >>> conv = Conv2d(1, 4, rng=0)
    >>> conv.forward(np.ones((2, 1, 8, 8))).shape
    (2, 4, 8, 8)

    Introduced in notebook 08.
    """

    param_names = ("W", "b")
    cache_names = ("_cache",)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 bias: bool = True, init="he", rng=None, dtype=np.float64):
        in_channels = check_int(in_channels, "in_channels")
        out_channels = check_int(out_channels, "out_channels")
        kernel_size = check_int(kernel_size, "kernel_size")
        if kernel_size not in KERNEL_SIZES:
            raise ValueError(f"kernel_size must be 1 or 3, got {kernel_size}")
        fan_in = in_channels * kernel_size**2
        if isinstance(init, str):
            if init != "he":
                raise ValueError(f"init must be 'he' or a positive float, got {init!r}")
            std = np.sqrt(2.0 / fan_in)
        else:
            std = check_positive(init, "init (the weight standard deviation)")
        rng = as_generator(rng)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.W = (rng.standard_normal(shape) * std).astype(dtype)
        self.b = np.zeros(out_channels, dtype) if bias else None
        self._cache = None
        self.dW = self.db = None

    def forward(self, x):
        """x: (N, in_channels, H, W) -> out: (N, out_channels, H, W)."""
        x = self._start_forward(x, (4,), self.in_channels,
                                f"{self!r} expects x of shape (N, {self.in_channels}, H, W)")
        out, self._cache = conv2d_forward(x, self.W, self.b)
        return out

    def backward(self, dout):
        """dout: (N, out_channels, H, W) -> dx: (N, in_channels, H, W); sets ``dW``, ``db``."""
        if self._cache is None:
            raise RuntimeError("Conv2d.backward called before forward")
        dx, self.dW, self.db = conv2d_backward(dout, self._cache)
        return dx

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"bias={self.b is not None})")


class GlobalAvgPool(Layer):
    """Average each channel over the image: (N, C, H, W) → (N, C).

    The backward spreads each channel's gradient evenly over its H·W pixels.

    Examples
    --------
    >>> pool = GlobalAvgPool()
    >>> pool.forward(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[1.5, 5.5]])
    >>> pool.backward(np.array([[4.0, 8.0]]))[0, 1]
    array([[2., 2.],
           [2., 2.]])

    Introduced in notebook 08.
    """

    cache_names = ("_shape",)

    def __init__(self):
        self._shape = None

    def forward(self, x):
        self._shape = None
        x = _check_images(x)
        self._shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dout):
        if self._shape is None:
            raise RuntimeError("GlobalAvgPool.backward called before forward")
        N, C, H, W = self._shape
        dout = check_dout(dout, (N, C), of="the forward output")
        return np.broadcast_to(dout[:, :, None, None] / (H * W), self._shape).copy()

    def __repr__(self):
        return "GlobalAvgPool()"


class Flatten(Layer):
    """Flatten everything but the batch axis: (N, d1, d2, ...) → (N, d1·d2·...).

    ``forward`` raises ``ValueError`` for an ``x`` with fewer than 2 axes, no samples, no
    values per sample, or NaN/inf (like the other layers of a convolutional network,
    which refuse non-finite input), and ``TypeError`` for a non-numeric ``x``.

    Examples
    --------
    >>> Flatten().forward(np.zeros((2, 3, 4, 4))).shape
    (2, 48)

    Introduced in notebook 08.
    """

    cache_names = ("_shape",)

    def __init__(self):
        self._shape = None

    def forward(self, x):
        self._shape = None
        x = as_float_array(x, "x")
        if x.ndim < 2 or x.size == 0:
            raise ValueError(f"x must be a non-empty batch, shape (N, ...) with at least 2 axes "
                             f"and at least one value per sample; got shape {x.shape}")
        check_finite(x, "x")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1).copy()

    def backward(self, dout):
        if self._shape is None:
            raise RuntimeError("Flatten.backward called before forward")
        want = (self._shape[0], int(np.prod(self._shape[1:])))
        return check_dout(dout, want, of="the forward output").reshape(self._shape).copy()

    def __repr__(self):
        return "Flatten()"
