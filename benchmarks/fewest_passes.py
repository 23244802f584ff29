"""The fewest-passes NumPy BN: how close can any NumPy version get to a fused kernel?

Not a candidate for ``bnutils``. It exists to measure a bound: BN's training-mode
forward + backward written with as few NumPy calls over the big arrays as the algebra
allows, with no input checks, no fallback and no safety net:

* forward, 4 passes: ``Σx`` (a BLAS matrix-vector product) and ``Σx²`` (``einsum``),
  read block by block, then ``out = a·x + b`` in 2 in-place steps, with
  ``a = γ/σ`` and ``b = β − μ·γ/σ`` per feature;
* backward, 6 passes: ``Σ dout`` and ``Σ dout·x``, then
  ``dx = s·dout − c1·x − c0`` in 4 steps (a per-feature ``s``, ``c1``, ``c0``).

The price: the variance comes from ``E[x²] − μ²``, and ``out`` and ``dx`` from terms of
size ``|x|``, so every result loses about ``log2(1 + μ²/σ²)`` bits to cancellation. For
the benchmark's inputs (μ = 1, σ = 2) that is harmless; for a feature with mean 1e4 and
standard deviation 1 in float32 the variance is garbage. ``bnutils.batchnorm_forward`` therefore
always centres first (two-pass statistics, x_hat stored)
and validates its input.

Nothing NumPy offers fuses the steps further: there is no fused multiply-add ufunc, and
``einsum`` and BLAS can multiply or sum but not scale-and-shift per column in one pass.
So this is about the least work a NumPy BN can do, and ``run.py`` times it next to
PyTorch's fused kernel. 2-D input only; it validates nothing.
"""

import numpy as np

import bnutils

# Rows per block: the passes after the first find the block in the L2 cache.
ROWS = 32


def _row_blocks(n):
    return [slice(i, min(i + ROWS, n)) for i in range(0, n, ROWS)]


def _column_sums(a, b, blocks):
    """``Σa`` and ``Σa·b`` over the rows of (N, D) ``a`` and ``b``, shape (D,) each, float64.

    One read of ``a`` and ``b`` per block of ``ROWS`` rows (while the block is in cache);
    the per-block partial sums are added in float64.
    """
    d = a.shape[1]
    ones = np.ones(ROWS, a.dtype)
    s1 = np.empty((len(blocks), d), a.dtype)
    s2 = np.empty((len(blocks), d), a.dtype)
    for i, s in enumerate(blocks):
        ab = a[s]
        np.matmul(ones[:ab.shape[0]], ab, out=s1[i])          # Σa of the block
        np.einsum("ij,ij->j", ab, b[s], out=s2[i])            # Σa·b of the block
    return s1.sum(axis=0, dtype=np.float64), s2.sum(axis=0, dtype=np.float64)


def forward(x, gamma, beta, eps=1e-5):
    """``out, cache`` for 2-D ``x`` (N, D), in ``x``'s dtype; one-pass statistics."""
    n = x.shape[0]
    blocks = _row_blocks(n)
    sum_x, sum_x2 = _column_sums(x, x, blocks)
    mean = sum_x / n
    var = np.maximum(sum_x2 / n - mean * mean, 0.0)                            # cancels
    inv_std = 1.0 / np.sqrt(var + eps)
    a = (gamma * inv_std).astype(x.dtype)
    b = (beta - mean * gamma * inv_std).astype(x.dtype)
    out = np.empty_like(x)
    for s in blocks:
        ob = np.multiply(x[s], a, out=out[s])
        np.add(ob, b, out=ob)
    return out, (x, mean, var, inv_std, gamma)


def backward(dout, cache):
    """``dx, dgamma, dbeta`` from ``Σ dout`` and ``Σ dout·x``; ``dx`` in 4 steps per block."""
    x, mean, _, inv_std, gamma = cache
    n, d = x.shape
    blocks = _row_blocks(n)
    dbeta, sum_dout_x = _column_sums(dout, x, blocks)
    dgamma = inv_std * (sum_dout_x - mean * dbeta)                             # cancels
    # dx = γ/σ · (dout − mean(dout) − x_hat · mean(dout · x_hat)), x_hat = (x − μ)/σ
    scale = gamma * inv_std
    k = dgamma / n * inv_std
    s32 = scale.astype(x.dtype)
    c1 = (scale * k).astype(x.dtype)
    c0 = (scale * (dbeta / n - k * mean)).astype(x.dtype)
    dx = np.empty_like(dout)
    scratch = np.empty((ROWS, d), x.dtype)
    for s in blocks:
        dxb = np.multiply(dout[s], s32, out=dx[s])
        t = np.multiply(x[s], c1, out=scratch[:dxb.shape[0]])
        np.subtract(dxb, t, out=dxb)
        np.subtract(dxb, c0, out=dxb)
    return dx, dgamma.astype(x.dtype), dbeta.astype(x.dtype)


def update_running_stats(running_mean, running_var, cache, momentum=0.1):
    """The running statistics from this version's cache, by bnutils's one rule."""
    x, mean, var, _, _ = cache
    return bnutils.update_running_stats(running_mean, running_var, momentum=momentum,
                                        mean=mean, var=var, count=x.shape[0])
