"""The numerics of normalization, in one place (private): float64 sums, the float32
correction and inputs too large to square.

``normalize(x, axes, eps)`` is the one function the normalizations call (batch norm over
the batch, layer/group/instance norm and RMSNorm over the rows of a sample). It computes
``x_hat = (x - mean) / sqrt(var + eps)`` as the equations say, with two safeguards:

* **float32.** Sums accumulate in float64 (a float32 running sum of values near 1e4 loses
  the digits the normalized output is made of), and the variance takes two passes
  (centre, then square). A float32 mean near 1e4 is only good to ~1e-3; the centred
  values are small, so their own mean is that error, exactly: it is subtracted (the
  corrected two-pass algorithm; Björck; Chan, Golub & LeVeque 1983).
* **Overflow.** For inputs too large to square, see below.

Overflow:

Squaring ``x - mean`` overflows once ``|x - mean|`` exceeds ``sqrt(finfo.max)``, about
1.8e19 in float32 and 1.3e154 in float64; the variance becomes inf and every output
would silently collapse to β. Normalization does not care about the scale of ``x``
(``(a·x - a·mean) / (a·std) = (x - mean) / std``, up to ε), so the functions here
divide each slice by a power of two ``2**k ≥ max |x|`` first — exact, since only the
exponent changes — compute the moments of values of at most 1 (no square can overflow)
and scale the results back. ε is scaled with them (``ε / 4**k``).

``normalize`` computes the moments the plain way and takes this path only when the plain
variance came out non-finite for finite ``x`` (a cheap check), so the common path stays
as readable and as fast as the equations. Used by ``bnutils.batchnorm``,
``bnutils.normalization``, ``bnutils.sharded_bn`` and ``bnutils.scaling``.

It also holds ``scale_shift_backward``, the first step of every normalization's backward
(the gradients of γ and β), so that step is written once.

Introduced in notebook 03 (the numerics of the forward pass).
"""

from __future__ import annotations

import numpy as np

from ._validation import NonFiniteError

__all__ = ["check_variance_fits", "normalize", "normalize_scaled", "scale_shift_backward",
           "scaled_moments"]


def normalize(x: np.ndarray, axes: tuple, eps: float, centre: bool = True,
              var_must_fit: bool = False):
    """``x_hat = (x - mean) / sqrt(var + eps)`` over ``axes``, safe in float32 and for huge ``x``.

    Parameters
    ----------
    x : ndarray, float32 or float64, finite
    axes : tuple of int
        The axes the statistics are taken over (kept as size-1 axes in the results).
    eps : float > 0
    centre : bool, optional
        ``False`` (RMSNorm): divide by the root mean square, no mean is subtracted.
    var_must_fit : bool, optional
        Raise (``check_variance_fits``) where the variance exceeds ``x``'s dtype, for
        batch norm, which stores it; otherwise only ``x_hat`` and ``inv_std`` matter.

    Returns
    -------
    x_hat : ndarray, shape and dtype of ``x``
    mean, var, inv_std : ndarray, dtype of ``x``, keepdims shape
        The mean (0 without ``centre``), the biased variance (ddof=0; the mean square
        without ``centre``) and ``1 / sqrt(var + eps)``.

    Examples
    --------
    >>> x_hat, mean, var, inv_std = normalize(np.array([[1.0], [3.0]]), (0,), 1e-12)
    >>> x_hat.ravel(), mean.ravel(), var.ravel()
    (array([-1.,  1.]), array([2.]), array([1.]))
    """
    with np.errstate(over="ignore", invalid="ignore"):   # an overflow is caught below
        mean = (x.mean(axis=axes, keepdims=True, dtype=np.float64) if centre
                else np.zeros([1 if i in axes else n for i, n in enumerate(x.shape)]))
        x_centred = x - mean.astype(x.dtype) if centre else x
        if centre and x.dtype == np.float32:             # the corrected two-pass mean
            residual = x_centred.mean(axis=axes, keepdims=True, dtype=np.float64)
            x_centred -= residual.astype(x.dtype)
            mean += residual
        var = np.mean(np.square(x_centred), axis=axes, keepdims=True,
                      dtype=np.float64).astype(x.dtype)
    if not np.isfinite(var).all():
        # x is finite, so a square overflowed: |x - mean| above ~1e19 in float32 (~1e154
        # in float64). Normalization does not depend on the scale: redo it on x divided
        # by a power of two, and where the variance itself is beyond the dtype and must be
        # stored, say so rather than store inf.
        x_hat, mean, var, inv_std = normalize_scaled(x, axes, eps, centre)
        if var_must_fit:
            check_variance_fits(var, x.dtype)
        with np.errstate(over="ignore"):                 # var beyond float32: inf, unused
            return x_hat, mean.astype(x.dtype), var.astype(x.dtype), inv_std.astype(x.dtype)
    inv_std = 1.0 / np.sqrt(var + eps)
    return x_centred * inv_std, mean.astype(x.dtype), var, inv_std


def scaled_moments(x: np.ndarray, axes: tuple, centre: bool = True):
    """Moments of ``x`` over ``axes`` computed on ``x / 2**k``, with ``2**k ≥ max |x|``.

    Parameters
    ----------
    x : ndarray, float32 or float64, finite
    axes : tuple of int
        The axes to reduce (kept as size-1 axes in the results).
    centre : bool, optional
        ``False`` (RMSNorm): the "variance" is the mean square, no mean is subtracted.

    Returns
    -------
    k : ndarray of int, keepdims shape
        The exponent of each slice's scale.
    z_centred : ndarray, shape and dtype of ``x``
        ``(x - mean) / 2**k`` (or ``x / 2**k`` without ``centre``).
    mean : ndarray, float64, keepdims shape
        The mean of ``x`` (0 without ``centre``).
    var_z : ndarray, float64, keepdims shape
        The biased variance of ``x / 2**k`` (≤ 4, so it is always finite).

    Examples
    --------
    >>> k, zc, mean, var_z = scaled_moments(np.array([[1e200], [-1e200]]), (0,))
    >>> float(mean[0, 0]), float(np.ldexp(np.sqrt(var_z), k)[0, 0])     # mean 0, std 1e200
    (0.0, 1e+200)
    """
    peak = np.max(np.abs(x), axis=axes, keepdims=True)
    _, k = np.frexp(peak)                    # peak = f · 2**k with f in [0.5, 1): |x| ≤ 2**k
    z = np.ldexp(x, -k)                      # exact: only the exponent of each value changes
    if not centre:
        return k, z, np.zeros(k.shape), np.mean(np.square(z), axis=axes, keepdims=True,
                                                dtype=np.float64)
    mean_z = z.mean(axis=axes, keepdims=True, dtype=np.float64)
    zc = z - mean_z.astype(x.dtype)
    if x.dtype == np.float32:                # the corrected two-pass mean, as on the plain path
        residual = zc.mean(axis=axes, keepdims=True, dtype=np.float64)
        zc -= residual.astype(x.dtype)
        mean_z += residual
    var_z = np.mean(np.square(zc), axis=axes, keepdims=True, dtype=np.float64)
    return k, zc, np.ldexp(mean_z, k), var_z


def normalize_scaled(x: np.ndarray, axes: tuple, eps: float, centre: bool = True):
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` without squaring anything large.

    Returns
    -------
    x_hat : ndarray, shape and dtype of ``x``
    mean, var, inv_std : ndarray, float64, keepdims shape
        ``var`` is inf where the variance itself exceeds float64 (``|x|`` above ~1e154);
        ``mean``, ``inv_std`` and ``x_hat`` are always finite.

    Examples
    --------
    >>> x = np.array([[3e30], [1e30]], dtype=np.float32)   # squares overflow float32
    >>> x_hat, mean, var, inv_std = normalize_scaled(x, (0,), 1e-5)
    >>> x_hat.ravel(), f"{float(var[0, 0]):.3g}"
    (array([ 1., -1.], dtype=float32), '1e+60')
    """
    k, zc, mean, var_z = scaled_moments(x, axes, centre)
    # ε in the scaled units; it can underflow to 0, so keep it positive: a constant slice
    # then gives x_hat = 0 rather than 0 / 0.
    eps_z = np.maximum(np.ldexp(float(eps), -2 * k), np.finfo(np.float64).tiny)
    inv_std_z = 1.0 / np.sqrt(var_z + eps_z)
    x_hat = (zc * inv_std_z).astype(x.dtype)    # in float64: 1/std in scaled units can exceed float32
    with np.errstate(over="ignore"):         # a variance above float64's range is inf
        var = np.ldexp(var_z, 2 * k)
    return x_hat, mean, var, np.ldexp(inv_std_z, -k)


def check_variance_fits(var: np.ndarray, dtype, name: str = "x") -> None:
    """Raise a clear ``ValueError`` if a variance (float64) does not fit in ``dtype``.

    Batch norm stores the batch variance (for the running statistics and eval mode), so
    where it exceeds the dtype's range there is no right answer to return: say so
    instead of storing inf. The error is a ``NonFiniteError`` (a ``ValueError``): the
    variance would be inf, and ``bnutils.training.train`` reports it as divergence.
    """
    limit = float(np.finfo(dtype).max)
    if not np.all(var <= limit):
        worst = float(np.max(var))
        raise NonFiniteError(
            f"the values of {name} spread so far that their variance (about {worst:.3g}) "
            f"exceeds the largest {np.dtype(dtype).name} ({limit:.3g}): batch norm stores "
            f"the variance for its running statistics. Divide {name} by a constant first "
            f"(normalization does not depend on its scale)"
            + (", or use float64" if np.dtype(dtype) == np.float32 else ""))


def scale_shift_backward(dout: np.ndarray, x_hat: np.ndarray, axes: tuple):
    """The gradients of ``out = gamma * x_hat + beta`` with respect to ``gamma`` and ``beta``.

    Every normalization ends in this scale and shift, so every backward starts here.

    Parameters
    ----------
    dout : ndarray, the shape of ``x_hat``
        Upstream gradient ∂loss/∂out.
    x_hat : ndarray, (N, D) or (N, C, H, W)
        The normalized input the forward pass cached.
    axes : tuple of int
        The axes gamma and beta are shared over (the batch, and H, W for images).

    Returns
    -------
    dgamma, dbeta : ndarray
        ``Σ dout · x_hat`` and ``Σ dout`` over ``axes``: one value per feature or channel.

    Examples
    --------
    >>> dgamma, dbeta = scale_shift_backward(np.ones((2, 1)), np.array([[-1.0], [1.0]]), (0,))
    >>> dgamma, dbeta
    (array([0.]), array([2.]))
    """
    return np.sum(dout * x_hat, axis=axes), dout.sum(axis=axes)
