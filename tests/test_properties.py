"""Property tests (hypothesis) over random shapes, scales, offsets and dtypes.

Data: x = offset + scale · N(0, 1) per feature, with scale in 1e-3 … 1e4 (log-uniform)
and offset in −1e4 … 1e4, cast to float32 or float64. References are computed in
float64 *from the cast values*, so float32 is judged on its own arithmetic, not on the
rounding of its input. Tolerances are in units of the normalized output and scale
with the dtype's machine epsilon.

The runs are derandomized (the same 50 examples each time) so that ``make test`` is
reproducible; for a wider search run e.g.
``BNUTILS_PROPERTY_EXAMPLES=2000 BNUTILS_PROPERTY_RANDOM=1 pytest tests/test_properties.py``.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnutils import (
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_forward,
    batchnorm_inference,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    update_running_stats,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("BNUTILS_PROPERTY_EXAMPLES", "50")),
    deadline=None,
    database=None,
    derandomize=not os.environ.get("BNUTILS_PROPERTY_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow],
)
EPS = 1e-5


def machine_eps(dtype):
    return float(np.finfo(dtype).eps)


@st.composite
def cases(draw, four_d=False, groups=False):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    if four_d:
        C = draw(st.sampled_from([1, 2, 4]) if groups else st.integers(1, 4))
        N, H, W = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        if not groups and N * H * W < 2:
            N = 2
        shape = (N, C, H, W)
    else:
        shape = (draw(st.integers(2, 16)), draw(st.integers(1, 8)))
    scale = 10.0 ** draw(st.floats(-3, 4))
    offset = draw(st.floats(-1e4, 1e4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    x = offset + (scale * rng.uniform(0.5, 2.0, C)).reshape(bshape) * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, C) * rng.choice([-1.0, 1.0], C)
    beta = rng.standard_normal(C)
    dout = rng.standard_normal(shape)
    G = draw(st.sampled_from([g for g in (1, 2, 4) if C % g == 0])) if groups else None
    return x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), dout.astype(dtype), G


def flat_channels(a):
    return np.moveaxis(np.asarray(a, dtype=np.float64), 1, -1).reshape(-1, a.shape[1])


def axes_of(ndim):
    return (0,) if ndim == 2 else (0, 2, 3)


def bshape(v, ndim):
    return np.asarray(v, dtype=np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def tolerance(dtype, x):
    """Error budget in units of x̂: the dtype's own rounding, plus the float64 rounding of
    a mean of size |x| relative to the spread (which the float64 reference shares)."""
    f = flat_channels(x)
    cond = np.max(np.abs(f)) / np.sqrt(f.var(axis=0).min() + EPS)
    return 2e3 * machine_eps(dtype) + 100 * machine_eps(np.float64) * cond


def check_normalized(x_hat, var, axes, dtype, tol):
    """Mean 0 and std sqrt(var/(var+eps)) (≈ 1 unless var is comparable with eps)."""
    h = np.asarray(x_hat, dtype=np.float64)
    assert np.all(np.abs(h.mean(axis=axes)) <= tol)
    assert np.all(np.abs(h.std(axis=axes) - np.sqrt(var / (var + EPS))) <= tol)


# --------------------------------------------------------------------------- BatchNorm


@SETTINGS
@given(cases() | cases(four_d=True))
def test_bn_forward_properties(case):
    x, gamma, beta, _, _ = case
    dtype = x.dtype
    out, cache = batchnorm_forward(x, gamma, beta, eps=EPS)
    assert out.dtype == dtype and cache.x_hat.dtype == dtype
    axes = axes_of(x.ndim)
    f = flat_channels(x)
    mu, var = f.mean(axis=0), f.var(axis=0)
    tol = tolerance(dtype, x)
    check_normalized(cache.x_hat, var, axes, dtype, tol)
    x_hat_ref = (x.astype(np.float64) - bshape(mu, x.ndim)) / bshape(np.sqrt(var + EPS), x.ndim)
    assert np.max(np.abs(cache.x_hat - x_hat_ref)) <= tol
    ref = x_hat_ref * bshape(gamma, x.ndim) + bshape(beta, x.ndim)
    assert np.max(np.abs(out - ref)) <= tol * (1 + np.max(np.abs(ref)))
    # gamma and beta then set the std and the mean
    o = out.astype(np.float64)
    ratio = np.sqrt(var / (var + EPS))
    assert np.all(np.abs(o.mean(axis=axes) - beta) <= tol * (1 + np.abs(beta) + np.abs(gamma)))
    assert np.all(np.abs(o.std(axis=axes) - np.abs(gamma) * ratio) <= tol * np.abs(gamma) * 2)


@SETTINGS
@given(cases() | cases(four_d=True))
def test_bn_backward_properties(case):
    x, gamma, beta, dout, _ = case
    dtype = x.dtype
    _, cache = batchnorm_forward(x, gamma, beta, eps=EPS)
    axes = axes_of(x.ndim)
    u = machine_eps(dtype)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    sdx, sdgamma, sdbeta = batchnorm_backward_staged(dout, cache)
    for a in (dx, dgamma, dbeta, sdx, sdgamma, sdbeta):
        assert a.dtype == dtype
    # the natural size of dx: |gamma| · inv_std · |dout|; its rounding error follows that
    # of x̂ (dx is a difference of terms of that size), see tolerance()
    size = np.max(np.abs(bshape(gamma * cache.inv_std, x.ndim) * dout))
    tol_dx = size * tolerance(dtype, x)
    # staged == compact
    assert np.max(np.abs(sdx - dx)) <= tol_dx
    assert np.max(np.abs(sdgamma - dgamma)) <= 10 * u * np.sum(np.abs(dout * cache.x_hat))
    assert np.all(np.abs(sdbeta - dbeta) <= 10 * u * np.sum(np.abs(flat_channels(dout)), axis=0))
    # Σ dx = 0 and Σ dx·x̂ = γ·inv_std·dγ·ε/(σ²+ε) per feature
    d = dx.astype(np.float64)
    h = cache.x_hat.astype(np.float64)
    m = cache.count
    # (Σ dx = −γ·inv_std/m · Σx̂ · dγ, so its rounding follows that of x̂: see tolerance())
    tol = m * tol_dx
    assert np.all(np.abs(d.sum(axis=axes)) <= tol)
    var = cache.var.astype(np.float64)
    expected = (gamma * cache.inv_std * dgamma).astype(np.float64) * EPS / (var + EPS)
    assert np.all(np.abs(np.sum(d * h, axis=axes) - expected) <= tol * (1 + np.max(np.abs(h))))
    # against the closed form computed here in float64 from the cache's x̂
    g = flat_channels(dout)
    fh = flat_channels(h)
    ref_db, ref_dg = g.sum(0), (g * fh).sum(0)
    ref_dx = (gamma * cache.inv_std).astype(np.float64) / m * (m * g - ref_db - fh * ref_dg)
    assert np.max(np.abs(flat_channels(dx) - ref_dx)) <= tol_dx
    assert np.all(np.abs(dbeta - ref_db) <= 10 * u * np.sum(np.abs(g), axis=0) + 1e-300)


@SETTINGS
@given(cases() | cases(four_d=True), st.floats(0.0, 1.0))
def test_bn_running_stats_and_inference_properties(case, momentum):
    x, gamma, beta, _, _ = case
    dtype = x.dtype
    C = x.shape[1]
    _, cache = batchnorm_forward(x, gamma, beta, eps=EPS)
    f = flat_channels(x)
    rm0, rv0 = np.full(C, 0.5, dtype), np.full(C, 2.0, dtype)
    rm, rv = update_running_stats(rm0, rv0, cache, momentum=momentum)
    assert rm.dtype == dtype and rv.dtype == dtype
    mu, var_unbiased = f.mean(0), f.var(0, ddof=1)
    u = 50 * machine_eps(dtype)
    assert np.all(np.abs(rm - ((1 - momentum) * 0.5 + momentum * mu)) <= u * (1 + np.abs(mu)))
    assert np.all(np.abs(rv - ((1 - momentum) * 2.0 + momentum * var_unbiased)) <= u * (2 + var_unbiased))
    # inference with the batch's own (biased) statistics reproduces the training output
    out_train, _ = batchnorm_forward(x, gamma, beta, eps=EPS)
    out_eval = batchnorm_inference(x, gamma, beta, cache.mean, cache.var, eps=EPS)
    assert out_eval.dtype == dtype
    # (eval mode cannot subtract the mean as exactly: its error grows with |mean| / std)
    cond = 1 + np.max(np.abs(f)) / np.sqrt(f.var(0).min() + EPS)
    tol = 50 * machine_eps(dtype) * cond * (1 + np.max(np.abs(out_train)))
    assert np.max(np.abs(out_eval.astype(np.float64) - out_train)) <= tol


# --------------------------------------------------------------------------- LayerNorm / GroupNorm


@SETTINGS
@given(cases())
def test_layernorm_properties(case):
    x, gamma, beta, dout, _ = case
    dtype = x.dtype
    x = np.ascontiguousarray(x.T) if x.shape[1] == 1 else x      # give LN ≥ 2 features too
    gamma = np.resize(gamma, x.shape[1]).astype(dtype)
    beta = np.resize(beta, x.shape[1]).astype(dtype)
    dout = np.resize(dout, x.shape).astype(dtype)
    out, cache = layernorm_forward(x, gamma, beta, eps=EPS)
    assert out.dtype == dtype
    rows = x.astype(np.float64)
    check_normalized(cache.x_hat.T, rows.var(axis=1), (0,), dtype, tolerance(dtype, x.T))
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    size = np.max(np.abs(cache.inv_std * gamma * dout))
    tol = x.shape[1] * size * tolerance(dtype, x.T)
    assert np.all(np.abs(dx.astype(np.float64).sum(axis=1)) <= tol)


@SETTINGS
@given(cases(four_d=True, groups=True))
def test_groupnorm_properties(case):
    x, gamma, beta, dout, G = case
    dtype = x.dtype
    if x[0].size // G < 2:      # one value per group: refused, as every normalization does
        with pytest.raises(ValueError, match="at least 2 values per group"):
            groupnorm_forward(x, gamma, beta, G, eps=EPS)
        return
    out, cache = groupnorm_forward(x, gamma, beta, G, eps=EPS)
    assert out.dtype == dtype
    N = x.shape[0]
    grouped = x.astype(np.float64).reshape(N * G, -1)
    check_normalized(cache.x_hat.reshape(N * G, -1).T, grouped.var(axis=1), (0,), dtype,
                     tolerance(dtype, grouped.T))
    dx, dgamma, dbeta = groupnorm_backward(dout, cache)
    assert dx.shape == x.shape and dx.dtype == dtype
    u = machine_eps(dtype)
    size = np.max(np.abs(cache.inv_std.max() * np.abs(gamma).max() * dout))
    sums = dx.astype(np.float64).reshape(N * G, -1).sum(axis=1)
    assert np.all(np.abs(sums) <= grouped.shape[1] * size * tolerance(dtype, grouped.T))
    np.testing.assert_allclose(dbeta, dout.astype(np.float64).sum(axis=(0, 2, 3)), rtol=50 * u,
                               atol=50 * u * np.abs(dout).sum())
