"""Batch Normalization: forward, backward, inference and running statistics, in NumPy.

Conventions (stated once here, tested in ``tests/test_batchnorm.py``):

* **Shapes.** ``x`` is ``(N, D)`` (a batch of N samples with D features) or
  ``(N, C, H, W)`` (images). Statistics are per feature over N, or per channel over
  N, H and W; ``gamma``, ``beta``, ``running_mean`` and ``running_var`` have shape
  ``(D,)`` or ``(C,)``. The reductions run over those axes directly, no transposes.
* **Normalization** uses the batch mean and the *biased* batch variance (ddof=0):
  ``x_hat = (x - mean) / sqrt(var + eps)``, ``out = gamma * x_hat + beta``.
  ε sits *inside* the square root.
* **Running statistics** use PyTorch's momentum convention,
  ``new = (1 - momentum) * old + momentum * batch`` (default 0.1). Keras puts its
  momentum on the *old* value, ``new = momentum * old + (1 - momentum) * batch``, so
  Keras's momentum is 1 − PyTorch's: PyTorch 0.1 is Keras 0.9, and Keras's default
  0.99 is PyTorch 0.01. The running variance uses the *unbiased* batch variance
  (ddof=1). They start at ``running_mean = 0`` and ``running_var = 1``.
* **Numerics.** ``batchnorm_forward`` and ``batchnorm_backward`` read as the equations
  below; what floating point needs lives in one private module, ``bnutils._moments``:
  sums in float64, the variance in two passes (centre, then square) with the float32
  mean corrected by the mean of the centred values, and inputs too large to square
  (float32 beyond ~1e19) normalized after dividing by a power of two; a variance beyond
  the dtype's range raises a ``ValueError``. float32 in, float32 out; float64 in,
  float64 out; integers are promoted to float64. No function modifies its inputs.
* **Speed.** From ``bnutils._fast.MIN_SIZE`` (8192) values on, ``batchnorm_forward`` and
  ``batchnorm_backward`` hand the same computation to the private ``bnutils._fast``
  (fewer passes over memory: 2-3x faster at (1024, 4096), ``make bench``; the course's
  batches are smaller); ``tests/test_fast.py`` checks that it returns the same numbers.

Introduced in notebook 03 (forward, inference) and notebook 04 (backward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _fast
from ._moments import normalize, scale_shift_backward
from ._validation import (
    Checked,
    as_float_array,
    check_cache,
    check_dout,
    check_features,
    check_finite,
    check_fraction,
    check_int,
    check_ndim,
    check_param,
    check_positive,
    check_running_stats,
    per_channel,
    read_only,
    stat_axes,
)
from .layers import NormLayer

__all__ = [
    "BatchNorm",
    "BatchNormCache",
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_staged",
    "batchnorm_inference",
    "batchnorm_inference_backward",
    "update_running_stats",
]

_SHAPES = "(N, D) or (N, C, H, W)"


@dataclass(frozen=True)
class BatchNormCache:
    """What the backward pass needs from a training-mode forward pass (read-only).

    Attributes
    ----------
    x_hat : ndarray, shape like ``x``
        The normalized input ``(x - mean) / sqrt(var + eps)``.
    gamma : ndarray, shape (D,) or (C,)
        The scale used in the forward pass (a copy).
    mean, var : ndarray, shape (D,) or (C,)
        Batch mean and biased batch variance (ddof=0).
    inv_std : ndarray, shape (D,) or (C,)
        ``1 / sqrt(var + eps)``.
    eps : float
        The ε of the forward pass.
    axes : tuple of int
        The axes the statistics were taken over: ``(0,)`` or ``(0, 2, 3)``.
    count : int
        Values per feature or channel, m = N (2-D) or N·H·W (4-D).

    The arrays are stored as read-only views, so that nobody edits a cache between
    forward and backward (the arrays passed in stay writable).
    """

    x_hat: np.ndarray
    gamma: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    inv_std: np.ndarray
    eps: float
    axes: tuple
    count: int

    def __post_init__(self):
        for name in ("x_hat", "gamma", "mean", "var", "inv_std"):
            object.__setattr__(self, name, read_only(getattr(self, name)))

    @property
    def shape(self) -> tuple:
        """Shape of the forward input ``x`` (and of ``dout``, ``dx``)."""
        return self.x_hat.shape


def check_inputs(x, gamma, beta, eps, training=False, dtype=None, finite=True):
    """Validate and convert the arguments of the forward functions: the one entry check.

    Returns ``x`` as a float array (``dtype`` if given: the loop reference uses float64),
    ``gamma`` and ``beta`` of shape (D,) or (C,) in its dtype, and ``eps``. ``training``:
    also require the 2 values per feature/channel that batch statistics need.
    ``finite=False`` leaves the NaN/inf check to the caller (the fast kernels find NaN/inf
    in their sums, which saves a pass). Raises a ``ValueError`` or ``TypeError`` naming
    the argument (see ``batchnorm_forward``).
    """
    x = as_float_array(x, "x", dtype=dtype)
    check_ndim(x, "x", (2, 4), _SHAPES)
    if finite:
        check_finite(x, "x")
    check_features(x, "x")
    what = "feature" if x.ndim == 2 else "channel"
    count = x.size // x.shape[1]
    if training and count < 2:
        raise ValueError(
            f"training-mode batch norm needs at least 2 values per {what} to compute batch "
            f"statistics; x has shape {x.shape}, i.e. {count} value per {what}. Use a larger "
            f"batch, or batchnorm_inference (eval mode) for a single sample")
    gamma = check_param(gamma, "gamma", x.shape[1], what, x.dtype)
    beta = check_param(beta, "beta", x.shape[1], what, x.dtype)
    eps = check_positive(eps, "eps")
    return x, gamma, beta, eps


def batchnorm_forward(x, gamma, beta, eps: float = 1e-5):
    """Batch Normalization in training mode: normalize with the statistics of this batch.

    ``mean = mean(x)``, ``var = mean((x - mean)²)`` over the batch (and H, W),
    ``x_hat = (x - mean) / sqrt(var + eps)``, ``out = gamma * x_hat + beta``.

    Parameters
    ----------
    x : array_like, shape (N, D) or (N, C, H, W)
        The batch. Needs at least 2 values per feature/channel (N ≥ 2, or N·H·W ≥ 2).
    gamma, beta : array_like, shape (D,) or (C,)
        Learned scale and shift.
    eps : float, optional
        Added to the variance inside the square root; must be > 0.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x`` (float64 for integer ``x``)
    cache : BatchNormCache
        Everything ``batchnorm_backward`` and ``update_running_stats`` need.

    Raises
    ------
    ValueError
        Wrong number of dimensions, parameters of the wrong shape, NaN/inf in ``x``,
        ``eps`` ≤ 0, or fewer than 2 values per feature/channel.
    TypeError
        Non-numeric input.

    Examples
    --------
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> out, cache = batchnorm_forward(x, np.ones(2), np.zeros(2))
    >>> np.round(out, 4)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> cache.mean
    array([ 2., 20.])

    Introduced in notebook 03.
    """
    x, gamma, beta, eps = check_inputs(x, gamma, beta, eps, training=True, finite=False)
    axes, nd = stat_axes(x.ndim), x.ndim
    fast = _fast.forward(x, gamma, beta, eps) if x.size >= _fast.MIN_SIZE else None
    if fast is not None:        # a large batch: the same numbers in fewer passes (see above)
        out, x_hat, mean, var, inv_std = fast
        return out, BatchNormCache(x_hat, gamma.copy(), mean, var, inv_std, eps, axes,
                                   count=x.size // x.shape[1])
    check_finite(x, "x")        # (the kernels return None for NaN/inf: named here)
    # μ_B = mean(x), σ²_B = mean((x − μ_B)²) over the batch (and H, W), then
    # x_hat = (x − μ_B) / sqrt(σ²_B + ε); bnutils._moments.normalize computes exactly these,
    # kept exact in float32 and for values too large to square.
    x_hat, mean, var, inv_std = normalize(x, axes, eps, var_must_fit=True)
    out = x_hat * per_channel(gamma, nd)                            # scale and shift
    out += per_channel(beta, nd)
    mean, var, inv_std = mean.reshape(-1), var.reshape(-1), inv_std.reshape(-1)   # (D,)
    return out, BatchNormCache(x_hat, gamma.copy(), mean, var, inv_std, eps, axes,
                               count=x.size // x.shape[1])


def _prepare_backward(dout, cache, finite=True) -> np.ndarray:
    check_cache(cache, BatchNormCache, "batchnorm_forward")
    return check_dout(dout, cache.shape, cache.x_hat.dtype, finite=finite)


def batchnorm_backward(dout, cache: BatchNormCache):
    """Backward pass of training-mode BN in its compact closed form.

    With ``m`` values per feature and sums over the batch (and H, W)::

        dbeta  = Σ dout
        dgamma = Σ dout · x_hat
        dx     = gamma / (m · sqrt(var + eps)) · (m · dout − dbeta − x_hat · dgamma)

    The mean and variance depend on every sample, so each ``dx_i`` sees the whole batch;
    ``batchnorm_backward_staged`` derives the same result node by node.

    Parameters
    ----------
    dout : array_like, shape like ``x``
        Upstream gradient ∂loss/∂out.
    cache : BatchNormCache
        From ``batchnorm_forward``.

    Returns
    -------
    dx : ndarray, shape like ``x``
    dgamma, dbeta : ndarray, shape (D,) or (C,)

    Raises
    ------
    ValueError
        ``dout`` of the wrong shape or with NaN/inf.
    TypeError
        ``cache`` is not a ``BatchNormCache``.

    Examples
    --------
    >>> x = np.array([[1.0], [2.0], [4.0]])
    >>> out, cache = batchnorm_forward(x, np.ones(1), np.zeros(1))
    >>> dx, dgamma, dbeta = batchnorm_backward(np.array([[1.0], [0.0], [0.0]]), cache)
    >>> round(float(dx.sum()), 12) + 0.0      # the gradients of a batch sum to zero
    0.0

    Introduced in notebook 04.
    """
    dout = _prepare_backward(dout, cache, finite=False)
    x_hat, m, nd = cache.x_hat, cache.count, dout.ndim
    fast = _fast.backward(dout, x_hat, cache.gamma, cache.inv_std) if dout.size >= _fast.MIN_SIZE else None
    if fast is not None:        # a large batch: the same closed form in fewer passes
        return fast
    check_finite(dout, "dout")  # (the kernels return None for NaN/inf: named here)
    dgamma, dbeta = scale_shift_backward(dout, x_hat, cache.axes)   # Σ dout · x_hat, Σ dout
    scale = cache.gamma * cache.inv_std / m                         # gamma / (m·σ), (D,)
    dx = m * dout
    dx -= per_channel(dbeta, nd)
    dx -= x_hat * per_channel(dgamma, nd)
    dx *= per_channel(scale, nd)
    return dx, dgamma, dbeta


def batchnorm_backward_staged(dout, cache: BatchNormCache):
    """Backward pass of training-mode BN, node by node through the computational graph.

    The forward pass as a graph of simple nodes (m values per feature)::

        mu = mean(x);  xmu = x - mu;  sq = xmu²;  var = mean(sq)
        std = sqrt(var + eps);  inv_std = 1 / std;  x_hat = xmu · inv_std
        out = gamma · x_hat + beta

    Each line below is the local derivative of one node times the gradient flowing
    into it; ``xmu`` feeds two nodes, so its two gradients add. Slower than
    ``batchnorm_backward`` but easier to check line by line; the two agree to rounding.

    Parameters
    ----------
    dout : array_like, shape like ``x``
    cache : BatchNormCache

    Returns
    -------
    dx : ndarray, shape like ``x``
    dgamma, dbeta : ndarray, shape (D,) or (C,)

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [2.0, 5.0], [4.0, 1.0]])
    >>> out, cache = batchnorm_forward(x, np.array([2.0, 0.5]), np.zeros(2))
    >>> dout = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    >>> a, b = batchnorm_backward_staged(dout, cache), batchnorm_backward(dout, cache)
    >>> all(np.allclose(u, v) for u, v in zip(a, b))
    True

    Introduced in notebook 04.
    """
    dout = _prepare_backward(dout, cache)
    nd, axes, m = dout.ndim, cache.axes, cache.count
    x_hat = cache.x_hat
    std = np.sqrt(cache.var + cache.eps)                      # (D,)
    xmu = x_hat * per_channel(std, nd)                       # x - mu, recovered
    # out = gamma * x_hat + beta
    dgamma, dbeta = scale_shift_backward(dout, x_hat, axes)
    dx_hat = dout * per_channel(cache.gamma, nd)
    # x_hat = xmu * inv_std          (two inputs)
    dinv_std = np.sum(dx_hat * xmu, axis=axes)
    dxmu_direct = dx_hat * per_channel(cache.inv_std, nd)
    # inv_std = 1 / std
    dstd = -dinv_std / std**2
    # std = sqrt(var + eps)
    dvar = dstd * 0.5 / std
    # var = mean(sq) over m values
    dsq = np.broadcast_to(per_channel(dvar / m, nd), dout.shape)
    # sq = xmu ** 2
    dxmu_through_var = 2.0 * xmu * dsq
    # xmu = x - mu                   (xmu's two gradients add up first)
    dxmu = dxmu_direct + dxmu_through_var
    dmu = -np.sum(dxmu, axis=axes)
    # mu = mean(x) over m values, and x's direct path into xmu
    dx = dxmu + per_channel(dmu / m, nd)
    return dx, dgamma, dbeta


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps: float = 1e-5):
    """Batch Normalization in evaluation mode: normalize with the running statistics.

    ``out = gamma * (x - running_mean) / sqrt(running_var + eps) + beta``; no batch
    statistics are computed, so each sample's output depends on that sample alone and
    a batch of one is fine.

    Parameters
    ----------
    x : array_like, shape (N, D) or (N, C, H, W)
    gamma, beta, running_mean, running_var : array_like, shape (D,) or (C,)
        ``running_var`` must be ≥ 0.
    eps : float, optional

    Returns
    -------
    out : ndarray, same shape as ``x``

    Examples
    --------
    >>> batchnorm_inference(np.array([[3.0]]), np.ones(1), np.zeros(1),
    ...                     np.array([1.0]), np.array([4.0]), eps=1e-12)
    array([[1.]])

    Introduced in notebook 06.
    """
    x, gamma, beta, eps = check_inputs(x, gamma, beta, eps)
    what = "feature" if x.ndim == 2 else "channel"
    running_mean, running_var = check_running_stats(
        running_mean, running_var, x.shape[1], what, x.dtype)
    # Centre, then one scale and one shift. (Folding the mean into the shift,
    # x * scale + (beta - running_mean * scale), subtracts two numbers of size
    # |mean| / std: in float32 at mean 1e4, std 1e-2 that is 1e6, and an error of ~0.1.)
    scale = gamma / np.sqrt(running_var + eps)
    x_centered = x - per_channel(running_mean, x.ndim)
    return x_centered * per_channel(scale, x.ndim) + per_channel(beta, x.ndim)


def update_running_stats(running_mean, running_var, cache: BatchNormCache | None = None,
                         momentum: float = 0.1, *, mean=None, var=None, count=None):
    """Blend a batch's statistics into the running estimates (PyTorch's convention).

    ``new_mean = (1 - momentum) * running_mean + momentum * batch_mean`` and the same
    for the variance, which uses the *unbiased* batch variance ``var * m / (m - 1)``.
    This is the one place the rule is written: every layer with running statistics
    (``BatchNorm``, Batch Renorm, sharded and noisy BN) and the recalibration in
    ``bnutils.inference`` call it.

    Parameters
    ----------
    running_mean, running_var : array_like, shape (D,) or (C,)
        The current estimates (initially 0 and 1); ``running_var`` ≥ 0.
    cache : BatchNormCache, optional
        From ``batchnorm_forward`` on this batch. Give either ``cache`` or all three of
        ``mean``, ``var`` and ``count``.
    momentum : float in [0, 1], optional
        Weight of the new batch; 0 keeps the old values, 1 replaces them. (Not the
        heavy-ball momentum of SGD, which is ``sgd_momentum`` in ``bnutils.training``.)
    mean, var : array_like, shape (D,) or (C,), keyword-only
        The batch mean and the *biased* batch variance (ddof=0), for statistics that do
        not come from a ``BatchNormCache`` (e.g. one device's shard).
    count : int ≥ 2, keyword-only
        Values per feature/channel behind ``mean`` and ``var`` (N, or N·H·W).

    Returns
    -------
    running_mean, running_var : ndarray, shape (D,) or (C,)
        New arrays, in the batch statistics' dtype; the inputs are not modified.

    Examples
    --------
    >>> x = np.array([[0.0], [2.0]])
    >>> _, cache = batchnorm_forward(x, np.ones(1), np.zeros(1))
    >>> update_running_stats(np.zeros(1), np.ones(1), cache, momentum=0.5)
    (array([0.5]), array([1.5]))
    >>> update_running_stats(np.zeros(1), np.ones(1), momentum=0.5,
    ...                      mean=np.array([1.0]), var=np.array([1.0]), count=2)
    (array([0.5]), array([1.5]))

    Introduced in notebook 06.
    """
    momentum = check_fraction(momentum, "momentum")
    given = [name for name, v in (("mean", mean), ("var", var), ("count", count)) if v is not None]
    if cache is not None:
        check_cache(cache, BatchNormCache, "batchnorm_forward")
        if given:
            raise TypeError(f"give either cache or mean, var and count, not both "
                            f"(got cache and {', '.join(given)})")
        mean, var, count = cache.mean, cache.var, cache.count
        what = "feature" if cache.x_hat.ndim == 2 else "channel"
    elif len(given) < 3:
        missing = sorted({"mean", "var", "count"} - set(given))
        raise TypeError(f"update_running_stats needs a cache, or all of mean, var and count "
                        f"(missing: {', '.join(missing)})")
    else:
        count = check_int(count, "count", minimum=2)
        mean = as_float_array(mean, "mean")
        if mean.ndim != 1 or mean.size == 0:
            raise ValueError(f"mean must have shape (D,) or (C,), got {mean.shape}")
        check_finite(mean, "mean")
        var = check_param(var, "var", mean.shape[0], "feature/channel", mean.dtype)
        if (var < 0).any():
            raise ValueError(f"var must be ≥ 0 (it is a variance); got {var}")
        what = "feature/channel"
    size, dtype = mean.shape[0], mean.dtype
    running_mean, running_var = check_running_stats(
        running_mean, running_var, size, what, dtype)
    unbiased_var = var * (count / (count - 1))
    new_mean = (1.0 - momentum) * running_mean + momentum * mean
    new_var = (1.0 - momentum) * running_var + momentum * unbiased_var
    return new_mean.astype(dtype, copy=False), new_var.astype(dtype, copy=False)


def batchnorm_inference_backward(dout, x, gamma, running_mean, running_var, eps: float = 1e-5):
    """Backward pass of eval-mode BN (``batchnorm_inference``), e.g. for frozen-BN fine-tuning.

    With the running statistics fixed, eval-mode BN is an affine map of each sample
    alone, ``out = gamma * x_hat + beta`` with ``x_hat = (x - running_mean) /
    sqrt(running_var + eps)``; so, with sums over the batch (and H, W)::

        dx     = dout · gamma / sqrt(running_var + eps)
        dgamma = Σ dout · x_hat
        dbeta  = Σ dout

    Unlike the training-mode backward there is no term through the batch statistics.

    Parameters
    ----------
    dout : array_like, shape like ``x``
    x : array_like, shape (N, D) or (N, C, H, W)
        The input of the forward pass.
    gamma, running_mean, running_var : array_like, shape (D,) or (C,)
        As given to ``batchnorm_inference``.
    eps : float, optional

    Returns
    -------
    dx : ndarray, shape like ``x``
    dgamma, dbeta : ndarray, shape (D,) or (C,)

    Examples
    --------
    >>> dx, dgamma, dbeta = batchnorm_inference_backward(
    ...     np.ones((2, 1)), np.array([[1.0], [5.0]]), np.array([2.0]), np.array([1.0]),
    ...     np.array([4.0]), eps=1e-12)
    >>> dx.ravel(), dgamma, dbeta
    (array([1., 1.]), array([2.]), array([2.]))

    Introduced in notebook 06.
    """
    x, gamma, _, eps = check_inputs(x, gamma, np.zeros(np.shape(gamma)), eps)
    what = "feature" if x.ndim == 2 else "channel"
    running_mean, running_var = check_running_stats(
        running_mean, running_var, x.shape[1], what, x.dtype)
    dout = check_dout(dout, x.shape, x.dtype)
    axes = stat_axes(x.ndim)
    inv_std = 1.0 / np.sqrt(running_var + eps)
    x_hat = (x - per_channel(running_mean, x.ndim)) * per_channel(inv_std, x.ndim)
    dgamma, dbeta = scale_shift_backward(dout, x_hat, axes)
    dx = dout * per_channel(gamma * inv_std, x.ndim)
    return dx, dgamma, dbeta


def _stored_like(running_mean, running_var, new):
    """The updated running statistics ``new`` in the dtype the layer keeps them in: a
    float32 layer fed a float64 batch stays float32 (its state never changes dtype)."""
    return (new[0].astype(running_mean.dtype, copy=False),
            new[1].astype(running_var.dtype, copy=False))


class BatchNorm(NormLayer):
    """Batch Normalization layer: batch statistics in training, running ones in eval.

    A thin stateful wrapper around the functions above: ``batchnorm_forward`` /
    ``batchnorm_backward`` and ``update_running_stats`` in training mode,
    ``batchnorm_inference`` / ``batchnorm_inference_backward`` in eval mode. Works on
    (N, D) and (N, C, H, W) inputs.

    Parameters
    ----------
    num_features : int
        D or C.
    eps : float, optional
    momentum : float in [0, 1], optional
        The weight of each new batch in the running statistics, PyTorch's convention:
        ``running = (1 - momentum) * running + momentum * batch`` (Keras's momentum is
        1 − this). It never changes the weights; the heavy-ball momentum of the
        optimizer is a different thing, ``sgd_momentum`` in ``bnutils.training``.
    dtype : numpy dtype, optional
        Of the parameters and running statistics, which keep it whatever dtype ``x`` has
        (the output follows NumPy's rules, as ``Linear``'s does).

    Attributes
    ----------
    gamma, beta : ndarray, shape (num_features,)
        Learned; start at 1 and 0.
    running_mean, running_var : ndarray, shape (num_features,)
        Not learned: updated in every training-mode forward; start at 0 and 1.
    dgamma, dbeta : ndarray, shape (num_features,)
        Set by ``backward``.

    Examples
    --------
    >>> bn = BatchNorm(2)
    >>> out = bn.forward(np.array([[1.0, 2.0], [3.0, 6.0]]))
    >>> np.round(bn.running_mean, 3)
    array([0.2, 0.4])
    >>> bn.eval().forward(np.array([[1.0, 2.0]])).shape
    (1, 2)

    Introduced in notebook 03.
    """

    running_stat_names = ("running_mean", "running_var")
    cache_names = ("_cache", "_eval_x")   # training mode: the cache; eval mode: the input
    ndims = (2, 4)
    shapes = "(N, {n}) or (N, {n}, H, W)"
    width_message = "{name}(num_features={n}) expects x of shape {shapes}"
    # checked on every assignment: bn.momentum = 5 raises at once, not at the next forward
    eps = Checked(check_positive)
    momentum = Checked(check_fraction)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype=np.float64):
        super().__init__(num_features, eps, dtype)
        self.momentum = momentum
        self.running_mean = np.zeros(self.num_features, dtype)
        self.running_var = np.ones(self.num_features, dtype)

    def _forward_train(self, x):
        out, cache, stats = self._batch_forward(x)
        self.running_mean, self.running_var = _stored_like(
            self.running_mean, self.running_var, update_running_stats(
                self.running_mean, self.running_var, momentum=self.momentum, **stats))
        self._cache = cache
        return out

    def _forward_eval(self, x):
        out = batchnorm_inference(x, self.gamma, self.beta, self.running_mean,
                                  self.running_var, self.eps)
        self._eval_x = x               # eval-mode BN is affine: its backward needs only x
        return out

    def _backward(self, dout):
        if self._cache is not None:
            return self._batch_backward(dout, self._cache)
        return batchnorm_inference_backward(dout, self._eval_x, self.gamma, self.running_mean,
                                            self.running_var, self.eps)

    # The training-mode maths, the one thing a variant of BN (Batch Renorm) replaces.
    def _batch_forward(self, x):
        """``(out, cache, stats)``: ``stats``, the keywords of ``update_running_stats`` that
        give this batch's statistics (here its ``BatchNormCache``)."""
        out, cache = batchnorm_forward(x, self.gamma, self.beta, self.eps)
        return out, cache, {"cache": cache}

    def _batch_backward(self, dout, cache):
        return batchnorm_backward(dout, cache)

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps:g}, momentum={self.momentum:g})"
