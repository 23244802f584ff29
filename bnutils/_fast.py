"""Fast kernels behind ``batchnorm_forward`` and ``batchnorm_backward`` (private).

The readable version of the same computation is the one the course teaches, in the
public functions of ``bnutils.batchnorm`` (``batchnorm_forward`` and ``batchnorm_backward``
run it for small inputs, where it is as fast; ``batchnorm_backward_staged`` goes node by
node) and the loop/naive versions in ``bnutils.reference``. This module computes the
same numbers with less memory traffic; ``tests/test_fast.py`` checks that they agree
(2-D and 4-D, float32 and float64, inputs with a large mean) and ``benchmarks/run.py``
measures the difference (results in ``benchmarks/README.md``).

BN is *memory bound*: per element it does a handful of flops, but every NumPy call
streams whole arrays through memory. The time is roughly the number of passes over
arrays that do not fit in the cache, so each trick below removes a pass, makes one
cheaper, or keeps the data in the cache between passes:

* **Preallocated outputs, operations with ``out=``.** ``a * b + c`` makes a temporary
  for ``a * b`` (a fresh allocation, an extra write and an extra read);
  ``np.multiply(a, b, out=r); np.add(r, c, out=r)`` reuses ``r``. Only the arrays that
  are returned (``out``, ``x_hat``, ``dx``) are allocated.
* **Cache blocking.** The passes that follow each other (centre, then the sums of the
  centred values; scale, shift; the four steps of ``dx``) run block by block, on a
  few rows at a time (``_BLOCK`` elements, a few hundred KB), so that the second and
  later passes over a block find it in the L2 cache instead of main memory.
* **Reductions as BLAS matrix-vector products with a ones vector.** ``ones @ block``
  sums the rows of a block with an optimized SIMD kernel, faster than
  ``block.sum(axis=0)`` and much faster than ``x.mean(axis=0, dtype=float64)``, which
  converts every element. (For 4-D blocks, ``einsum('ij->i', ...)`` over H·W.)
  Within a block (at most ``_CHUNK`` rows) the sums run in ``x``'s dtype; the blocks'
  sums are added in float64, which bounds the float32 rounding error.
* **Two-pass variance via ``einsum``.** ``np.einsum('ij,ij->j', xc, xc)`` is
  ``Σ xc²`` without the temporary ``xc**2`` that ``x.var`` would make.
* **Corrected two-pass mean (float32; Björck; Chan, Golub & LeVeque 1983).** A float32
  mean of values near 1e4 is only good to about 1e-3. After centring, the mean of the
  centred values, ``r``, is that error, computed accurately because the centred values
  are small. The variance is then ``mean(xc²) − r²`` and ``x_hat = (xc − r) / σ``. The
  step ``xc − r`` is skipped when ``|r| / σ`` is below half the machine epsilon, i.e.
  when it would move ``x_hat`` by less than half a unit in the last place of 1 (less
  than the rounding of any ``|x_hat| ≥ 1``). float64 keeps the plain two-pass
  algorithm, as the readable path does.
* **The simplified backward.** With ``m`` values per feature,
  ``dx = γ/σ · (dout − mean(dout) − x_hat · mean(dout · x_hat))``: two sums and four
  in-place steps, instead of the staged graph's dozen intermediate arrays (the
  biggest single win over the naive version).
* **Per-channel vectors pre-expanded to long rows.** For ``(N, C, H, W)`` the array is
  viewed as ``(N, C·H·W)`` and a ``(C,)`` vector is repeated to ``(C·H·W,)``
  (``np.repeat(v, H·W)``, 1/N of the array's size), so each NumPy call runs a few long
  inner loops instead of N·C short ones. The sums view a block as ``(k·C, H·W)``,
  sum each row, then add over the k samples: the reduction over axes (0, 2, 3)
  happens in place, without transposing to ``(N·H·W, C)``.
* **Validation rides on the reductions.** A NaN or ±inf anywhere in ``x`` (or ``dout``)
  makes the sums non-finite, so no separate ``isfinite`` pass is needed: the kernels
  return ``None`` and the caller locates the bad value on that (rare) error path.

The kernels take inputs that are already validated and converted (float32 or float64,
2-D or 4-D, parameters of the same dtype, at least 2 values per feature) and never
modify them.

Introduced in notebook 04 (the timing ladder, ``bnutils.timing``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_SIZE", "backward", "forward"]

# A block is at most _CHUNK rows of the (N, C·H·W) view and about _BLOCK elements
# (512 KB of float32): small enough that the passes over one block stay in the L2
# cache, large enough that the Python loop over blocks costs little. At most 128 rows
# are summed in the array's dtype before the block's sum is added in float64
# (float32 error ~ sqrt(128)·eps rather than sqrt(N)·eps).
_CHUNK = 128
_BLOCK = 1 << 17
# The public functions use these kernels for inputs of at least MIN_SIZE values; below
# that, NumPy's fixed cost per call, not passes over memory, sets the time, and the
# readable code in bnutils.batchnorm is as fast (benchmarks/README.md).
MIN_SIZE = 1 << 13
# The residual |r| / sigma below which the step "x_hat -= r" is skipped: it would move
# x_hat by less than half an ulp of 1.
_NEGLIGIBLE = {np.dtype(np.float32): np.finfo(np.float32).eps / 2,
               np.dtype(np.float64): np.finfo(np.float64).eps / 2}


def _quiet():
    """A non-finite sum is reported by returning None, so the reductions must not warn."""
    return np.errstate(over="ignore", invalid="ignore")   # a fresh one each time: not reusable


def _layout(shape: tuple) -> tuple[int, int, int]:
    """``(n, c, hw)``: batch size, features or channels, and H·W (1 for 2-D)."""
    n, c = shape[0], shape[1]
    hw = 1 if len(shape) == 2 else shape[2] * shape[3]
    return n, c, hw


def _rows_per_block(length: int) -> int:
    """Rows of the ``(n, length)`` view in one block: at most _CHUNK, ~_BLOCK elements."""
    return max(1, min(_CHUNK, _BLOCK // length))


def _blocks(n: int, length: int) -> list[slice]:
    """Row slices of the ``(n, length)`` view, each at most _CHUNK rows and ~_BLOCK elements."""
    rows = _rows_per_block(length)
    return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]


_ONES = {}


def _ones(n: int, dtype) -> np.ndarray:
    """A read-only vector of ``n`` ones (kept, since small batches ask for it every step)."""
    key = (n, np.dtype(dtype))
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:                    # many batch sizes: start afresh
            _ONES.clear()
        ones = _ONES[key] = np.ones(n, dtype)
        ones.flags.writeable = False
    return ones


def _sum(a: np.ndarray, c: int, hw: int, ones: np.ndarray) -> np.ndarray:
    """Per-channel sum of one block ``a`` of shape ``(k, c·hw)``, in ``a``'s dtype."""
    k = a.shape[0]
    if hw == 1:
        return ones[:k] @ a                                   # BLAS: Σ over the k rows
    return np.einsum("ij->i", a.reshape(k * c, hw)).reshape(k, c).sum(axis=0)


def _dot(a: np.ndarray, b: np.ndarray, c: int, hw: int) -> np.ndarray:
    """Per-channel ``Σ a·b`` of one block (no temporary for ``a·b``), in ``a``'s dtype."""
    k = a.shape[0]
    if hw == 1:
        return np.einsum("ij,ij->j", a, b)
    rows = np.einsum("ij,ij->i", a.reshape(k * c, hw), b.reshape(k * c, hw))
    return rows.reshape(k, c).sum(axis=0)


def _add_up(parts: list) -> np.ndarray:
    """Sum the per-block results: in float64 if there are several, else the one as it is.

    (For a single block, skipping the conversions saves several NumPy calls, which is
    what small batches pay for; its sum was accumulated in the array's dtype anyway.)
    """
    if len(parts) == 1:
        return parts[0]
    total = parts[0].astype(np.float64)
    for p in parts[1:]:
        total += p
    return total


def _as(v: np.ndarray, dtype) -> np.ndarray:
    """``v`` in ``dtype`` (no call at all if it already is)."""
    return v if v.dtype == dtype else v.astype(dtype)


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
        ``x``'s dtype. ``None`` when the sums are not finite: ``x`` holds NaN/inf, or a
        sum overflowed; the caller decides what to do.

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
    if _is_small(n, c, hw, dtype):
        if x.ndim == 2:
            return _forward_small(x, gamma, beta, eps)
        res = _forward_small(x2, gamma, beta, eps)       # (N, C, 1, 1)
        return None if res is None else (res[0].reshape(x.shape), res[1].reshape(x.shape), *res[2:])
    blocks = _blocks(n, c * hw)
    ones = _ones(blocks[0].stop, dtype)
    f32 = dtype == np.float32                    # float32: corrected two-pass
    x_hat = np.empty(x2.shape, dtype)
    with _quiet():       # NaN/inf in x (or an overflow) makes Σ xc² non-finite: checked below
        mean = _as(_add_up([_sum(x2[s], c, hw, ones) for s in blocks]) / m, dtype)   # pass 1
        mean_row = _expand(mean, hw)
        sq, resid = [], []
        for s in blocks:                         # pass 2: xc = x - mean, Σ xc², Σ xc
            xc = np.subtract(x2[s], mean_row, out=x_hat[s])
            sq.append(_dot(xc, xc, c, hw))
            if f32:
                resid.append(_sum(xc, c, hw, ones))
        var = _add_up(sq) / m                    # mean(xc²)
        if not np.isfinite(var).all():
            return None
        if f32:                                  # remove the float32 mean's rounding error
            resid = _add_up(resid) / m
            var -= resid * resid
            np.maximum(var, 0.0, out=var)
            mean = _as(mean + resid, dtype)
        var = _as(var, dtype)                    # biased variance
    inv_std = 1.0 / np.sqrt(var + eps)
    shift = f32 and np.max(np.abs(resid) * inv_std) > _NEGLIGIBLE[dtype]
    resid_row = _expand(_as(resid, dtype), hw) if shift else None
    inv_row, gamma_row, beta_row = _expand(inv_std, hw), _expand(gamma, hw), _expand(beta, hw)
    out = np.empty(x2.shape, dtype)
    for s in blocks:                             # pass 3: x_hat, out = gamma x_hat + beta
        xb, ob = x_hat[s], out[s]
        if shift:
            np.subtract(xb, resid_row, out=xb)
        np.multiply(xb, inv_row, out=xb)
        np.multiply(xb, gamma_row, out=ob)
        np.add(ob, beta_row, out=ob)
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
    if _is_small(n, c, hw, dtype):
        res = _backward_small(d2, x2, gamma, inv_std)
        if res is None or dout.ndim == 2:
            return res
        return res[0].reshape(dout.shape), *res[1:]        # (N, C, 1, 1)
    blocks = _blocks(n, c * hw)
    ones = _ones(blocks[0].stop, dtype)
    with _quiet():
        dbeta, dgamma = [], []
        for s in blocks:                         # pass 1: Σ dout, Σ dout · x_hat
            dbeta.append(_sum(d2[s], c, hw, ones))
            dgamma.append(_dot(d2[s], x2[s], c, hw))
        dbeta, dgamma = _add_up(dbeta), _add_up(dgamma)
        if not (np.isfinite(dbeta).all() and np.isfinite(dgamma).all()):
            return None
    k_row = _expand(_as(dgamma / m, dtype), hw)
    mean_row = _expand(_as(dbeta / m, dtype), hw)
    scale_row = _expand(gamma * inv_std, hw)
    dx = np.empty(d2.shape, dtype)
    for s in blocks:                             # pass 2: dx, four steps per block
        o = np.multiply(x2[s], k_row, out=dx[s])  # x_hat · mean(dout · x_hat)
        np.subtract(d2[s], o, out=o)              # dout − ...
        np.subtract(o, mean_row, out=o)           # ... − mean(dout)
        np.multiply(o, scale_row, out=o)          # · gamma / sigma
    return dx.reshape(dout.shape), _as(dgamma, dtype), _as(dbeta, dtype)


# Small (N, D) batches that fit in one block: the same steps as forward/backward in
# straight-line code. At this size NumPy's fixed cost per call (about a microsecond)
# is comparable to the work itself, so every call saved counts: measured on one
# thread, the kernels' forward + backward take 0.11 ms instead of 0.14 ms at (64, 256)
# float32, which is what keeps the public functions no slower than the naive NumPy
# version there (benchmarks/README.md). From about 256 KB on, the unblocked passes no
# longer stay in the L2 cache and the blocked code above is faster again.
_SMALL_BYTES = 1 << 18


def _is_small(n: int, c: int, hw: int, dtype) -> bool:
    """Whether a batch takes the straight-line code: (N, D), one block, at most 256 KB."""
    return hw == 1 and n <= _rows_per_block(c) and n * c * np.dtype(dtype).itemsize <= _SMALL_BYTES

def _forward_small(x, gamma, beta, eps):
    n, dtype = x.shape[0], x.dtype
    ones = _ones(n, dtype)
    with _quiet():
        mean = ones @ x
        mean /= n
        x_hat = x - mean                                  # xc
        var = np.einsum("ij,ij->j", x_hat, x_hat)
        var /= n                                          # mean(xc²)
        if not np.isfinite(var).all():
            return None
        f32 = dtype == np.float32
        if f32:                                           # corrected two-pass
            resid = ones @ x_hat
            resid /= n
            var -= resid * resid
            np.maximum(var, 0.0, out=var)
            mean += resid
    inv_std = 1.0 / np.sqrt(var + eps)
    if f32 and (np.abs(resid) * inv_std).max() > _NEGLIGIBLE[dtype]:
        x_hat -= resid
    x_hat *= inv_std
    out = x_hat * gamma
    out += beta
    return out, x_hat, mean, var, inv_std


def _backward_small(dout, x_hat, gamma, inv_std):
    n = dout.shape[0]
    with _quiet():
        dbeta = _ones(n, dout.dtype) @ dout
        dgamma = np.einsum("ij,ij->j", dout, x_hat)
        if not np.isfinite(dbeta + dgamma).all():       # inf - inf is NaN: caught too
            return None
    dx = x_hat * (dgamma / n)
    np.subtract(dout, dx, out=dx)
    dx -= dbeta / n
    dx *= gamma * inv_std
    return dx, dgamma, dbeta
