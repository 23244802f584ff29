"""Fast kernels behind ``batchnorm_forward`` and ``batchnorm_backward`` (private).

The readable versions of the same computation are the ones the course teaches:
``bnutils.batchnorm.batchnorm_backward_staged`` (node by node), the compact closed form
in ``bnutils.batchnorm._backward_compact``, the forward in
``bnutils.batchnorm._forward_readable`` and the loop/naive versions in
``bnutils.reference``. This module computes the same numbers with less memory traffic;
``tests/test_fast.py`` checks that the two agree (2-D and 4-D, float32 and float64,
inputs with a large mean) and ``benchmarks/run.py`` measures the difference.

BN is *memory bound*: per element it does a handful of flops but every NumPy call
reads and writes whole arrays. So the time is roughly the number of full-array passes,
and each trick below removes passes or makes one pass cheaper (measured on a 2-core
Xeon, (1024, 4096) float32, fwd + bwd: readable 111 ms, this module 37 ms, a plain copy
plus one 3-operand add 9 ms; see ``benchmarks/README.md``):

* **Preallocated outputs, operations with ``out=``.** ``a * b + c`` makes a temporary
  for ``a * b`` (a fresh allocation, i.e. page faults, plus an extra write and read);
  ``np.multiply(a, b, out=r); np.add(r, c, out=r)`` reuses ``r``. Only the arrays that
  are returned (``out``, ``x_hat``, ``dx``) are ever allocated.
* **Reductions as BLAS matrix-vector products with a ones vector.** ``ones @ x`` sums
  the rows of ``x`` with an optimized, SIMD BLAS kernel; it is faster than
  ``x.sum(axis=0)`` and much faster than ``x.mean(axis=0, dtype=float64)``, which
  converts every element. Sums stay in ``x``'s dtype inside a chunk of at most
  ``_CHUNK`` rows and are added up across chunks in float64, which bounds the float32
  rounding error; chunks that fit in the L2 cache also make the reductions faster.
* **Two-pass variance via ``einsum``.** ``np.einsum('ij,ij->j', xc, xc)`` is
  ``Σ xc²`` without the temporary ``xc**2``; ``x.var`` would make two temporaries.
* **Corrected two-pass mean (Björck; Chan, Golub & LeVeque 1983).** The float32 mean
  of values near 1e4 is only good to about 1e-3. After centring, the mean of the
  centred values, ``r``, is that error, computed accurately because the centred values
  are small. The variance is then ``mean(xc²) − r²`` and ``x_hat = (xc − r) / σ``. The
  extra pass ``xc − r`` is skipped when ``|r| / σ`` is below a quarter of the dtype's
  machine epsilon, i.e. when it would not change ``x_hat`` beyond rounding.
* **The simplified backward.** With ``m`` values per feature,
  ``dx = γ/σ · (dout − mean(dout) − x_hat · mean(dout · x_hat))``: two reductions and
  four in-place passes, instead of the staged graph's dozen arrays (the biggest single
  win).
* **Per-channel vectors pre-expanded to long rows.** For ``(N, C, H, W)`` the array is
  viewed as ``(N, C·H·W)`` and a ``(C,)`` vector is repeated to ``(C·H·W,)``
  (``np.repeat(v, H·W)``, 1/N of the array's size), so each NumPy call runs N long inner
  loops instead of N·C short ones; the reductions view it as ``(N·C, H·W)`` and sum
  over the last axis, then over N. Reducing over axes (0, 2, 3) in place is about
  twice as fast as transposing to ``(N·H·W, C)`` first.
* **Validation rides on the reductions.** A NaN or ±inf anywhere in ``x`` (or ``dout``)
  makes its sums non-finite, so no separate ``isfinite`` pass is needed: the kernels
  return ``None`` and the caller locates the bad value on that (rare) error path.

The kernels take inputs that are already validated and converted (float32 or float64,
2-D or 4-D, parameters of the same dtype, at least 2 values per feature) and never
modify them.

Introduced in notebook 04 (the timing ladder, ``bnutils.timing``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["backward", "forward"]

# Column sums of (N, D) arrays run over chunks of at most _CHUNK rows and _CHUNK_SIZE
# elements: BLAS accumulates in the array's dtype within a chunk, the chunks' sums are
# added in float64, which keeps float32 sums accurate (error ~ sqrt(128)·eps instead of
# sqrt(N)·eps); and a chunk that fits in the L2 cache makes the reductions ~1.5x faster
# than one BLAS call over the whole array (measured at (1024, 4096) float32).
_CHUNK = 128
_CHUNK_SIZE = 1 << 19
# The residual |r| / sigma below which the extra pass "x_hat -= r" cannot change x_hat.
_NEGLIGIBLE = {np.dtype(np.float32): np.finfo(np.float32).eps / 4,
               np.dtype(np.float64): np.finfo(np.float64).eps / 4}


def _quiet():
    """A non-finite sum is reported by returning None, so the reductions must not warn."""
    return np.errstate(over="ignore", invalid="ignore")   # a fresh one each time: not reusable


def _layout(shape: tuple) -> tuple[int, int, int]:
    """``(n, c, hw)``: batch size, features or channels, and H·W (1 for 2-D)."""
    n, c = shape[0], shape[1]
    hw = 1 if len(shape) == 2 else shape[2] * shape[3]
    return n, c, hw


def _channel_sums(a: np.ndarray, n: int, c: int, hw: int, b: np.ndarray | None = None) -> np.ndarray:
    """Per-channel ``Σ a`` (or ``Σ a·b`` if ``b`` is given) over the batch (and H, W), float64.

    ``a`` and ``b`` are ``(n, c·hw)`` views. 2-D: BLAS ``ones @ a`` (or the fused
    ``einsum`` product) per chunk of rows (see ``_CHUNK``). 4-D: row sums of the
    ``(n·c, hw)`` view with ``einsum``, then a float64 sum over the batch.
    """
    if hw == 1:
        rows = max(1, min(_CHUNK, _CHUNK_SIZE // c))
        if b is None:
            ones = np.ones(min(n, rows), a.dtype)
        if n <= rows:                                   # one chunk: no loop, no accumulator
            part = ones @ a if b is None else np.einsum("ij,ij->j", a, b)
            return part.astype(np.float64)
        total = np.zeros(c)
        for i in range(0, n, rows):
            block = a[i:i + rows]
            if b is None:
                total += ones[:block.shape[0]] @ block
            else:
                total += np.einsum("ij,ij->j", block, b[i:i + rows])
        return total
    a2 = a.reshape(n * c, hw)
    if b is None:
        rows = np.einsum("ij->i", a2)
    else:
        rows = np.einsum("ij,ij->i", a2, b.reshape(n * c, hw))
    return rows.reshape(n, c).sum(axis=0, dtype=np.float64)


def _expand(v: np.ndarray, hw: int) -> np.ndarray:
    """A per-channel vector as one long row matching the ``(n, c·hw)`` view."""
    return v if hw == 1 else np.repeat(v, hw)


def forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float):
    """Training-mode BN forward on validated input; ``None`` if a sum is not finite.

    Parameters
    ----------
    x : ndarray, float32 or float64, shape (N, D) or (N, C, H, W)
        At least 2 values per feature/channel.
    gamma, beta : ndarray, shape (D,) or (C,), dtype of ``x``
    eps : float > 0

    Returns
    -------
    (out, x_hat, mean, var, inv_std) or None
        ``out``, ``x_hat`` shaped like ``x``; the rest ``(D,)``/``(C,)``, all in
        ``x``'s dtype. ``None`` when ``Σ x`` or ``Σ (x − mean)²`` is not finite: ``x``
        holds NaN/inf, or a sum overflowed; the caller decides what to do.

    Examples
    --------
    >>> out, x_hat, mean, var, inv_std = forward(np.array([[1.0], [3.0]]), np.ones(1),
    ...                                          np.zeros(1), 1e-5)
    >>> np.round(out.ravel(), 4), mean, var
    (array([-1.,  1.]), array([2.]), array([1.]))
    """
    dtype = x.dtype
    n, c, hw = _layout(x.shape)
    m = n * hw
    x2 = x.reshape(n, c * hw)
    with _quiet():
        total = _channel_sums(x2, n, c, hw)                # pass 1: read x
    if not np.isfinite(total).all():
        return None
    mean = (total / m).astype(dtype)                       # the mean, rounded to dtype
    x_hat = np.subtract(x2, _expand(mean, hw))             # pass 2: x_hat holds xc = x - mean
    with _quiet():
        sq = _channel_sums(x_hat, n, c, hw, x_hat) / m     # pass 3: mean(xc²)
        # float32 only (float64 keeps the plain two-pass, as the readable path does):
        resid = _channel_sums(x_hat, n, c, hw) / m if dtype == np.float32 else None   # pass 4
    if not np.isfinite(sq).all():
        return None
    if resid is None:
        var = sq.astype(dtype)                             # biased variance
    else:                                                  # mean's rounding error removed
        var = np.maximum(sq - resid * resid, 0.0).astype(dtype)
        mean = (mean + resid).astype(dtype)
    inv_std = 1.0 / np.sqrt(var + eps)
    if resid is not None and np.max(np.abs(resid) * inv_std) > _NEGLIGIBLE[dtype]:
        np.subtract(x_hat, _expand(resid.astype(dtype), hw), out=x_hat)   # only for large means
    np.multiply(x_hat, _expand(inv_std, hw), out=x_hat)    # pass 5: x_hat
    out = np.multiply(x_hat, _expand(gamma, hw))           # pass 6
    np.add(out, _expand(beta, hw), out=out)                # pass 7: out = gamma x_hat + beta
    return out.reshape(x.shape), x_hat.reshape(x.shape), mean, var, inv_std


def backward(dout: np.ndarray, x_hat: np.ndarray, gamma: np.ndarray, inv_std: np.ndarray):
    """Training-mode BN backward on validated input; ``None`` if a sum is not finite.

    ``dx = gamma · inv_std · (dout − mean(dout) − x_hat · mean(dout · x_hat))``,
    ``dbeta = Σ dout``, ``dgamma = Σ dout · x_hat`` (sums over the batch and H, W).

    Parameters
    ----------
    dout, x_hat : ndarray, float32 or float64, shape (N, D) or (N, C, H, W), same dtype
    gamma, inv_std : ndarray, shape (D,) or (C,), same dtype

    Returns
    -------
    (dx, dgamma, dbeta) or None
        ``None`` when ``Σ dout`` or ``Σ dout · x_hat`` is not finite (NaN/inf in ``dout``
        or an overflow).

    Examples
    --------
    >>> _, x_hat, _, _, inv_std = forward(np.array([[1.0], [2.0], [4.0]]), np.ones(1),
    ...                                   np.zeros(1), 1e-5)
    >>> dx, dgamma, dbeta = backward(np.array([[1.0], [0.0], [0.0]]), x_hat, np.ones(1), inv_std)
    >>> round(float(dx.sum()), 12) + 0.0, dbeta
    (0.0, array([1.]))
    """
    dtype = dout.dtype
    n, c, hw = _layout(dout.shape)
    m = n * hw
    d2 = dout.reshape(n, c * hw)
    x2 = x_hat.reshape(n, c * hw)
    with _quiet():
        dbeta = _channel_sums(d2, n, c, hw)                # pass 1: read dout
        dgamma = _channel_sums(d2, n, c, hw, x2)           # pass 2: read dout, x_hat
    if not (np.isfinite(dbeta).all() and np.isfinite(dgamma).all()):
        return None
    dx = np.multiply(x2, _expand((dgamma / m).astype(dtype), hw))     # x_hat · mean(dout x_hat)
    np.subtract(d2, dx, out=dx)                                         # dout − ...
    np.subtract(dx, _expand((dbeta / m).astype(dtype), hw), out=dx)    # ... − mean(dout)
    np.multiply(dx, _expand(gamma * inv_std, hw), out=dx)               # · gamma / sigma
    return dx.reshape(dout.shape), dgamma.astype(dtype), dbeta.astype(dtype)
