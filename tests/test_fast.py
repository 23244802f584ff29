"""The fast BN kernels (bnutils._fast, behind batchnorm_forward/backward) equal the readable code.

The readable versions are the public functions themselves, ``batchnorm_forward`` and
``batchnorm_backward``, which run their one-line-per-equation code for inputs below
``bnutils._fast.MIN_SIZE`` values (here forced for every size with ``readable_forward``
/ ``readable_backward``), and ``batchnorm_backward_staged`` (node by node). Each
comparison runs in 2-D and 4-D, float32 and float64, with small and large means (the
float32 stability of the corrected two-pass mean), with more rows than one reduction
chunk, and on both kernels' code paths (the straight-line one for small (N, D) batches
and the blocked one).
"""

import re
import sys
import warnings

import numpy as np
import pytest

from bnutils import _fast, batchnorm_backward, batchnorm_backward_staged, batchnorm_forward
from bnutils.gradcheck import numerical_gradient, rel_error

# (64, 33) and (4, 3, 1, 1) fit the kernels' straight-line code for small batches;
# (300, 7) and (130, 600) are more rows, resp. more bytes, than it takes.
SHAPES = [(2, 1), (5, 3), (64, 33), (300, 7), (130, 600), (3, 2, 4, 5), (4, 3, 1, 1), (2, 5, 7, 3),
          (9, 4, 8, 8)]
DTYPES = [np.float32, np.float64]
# Tolerances by dtype, relative to the size of the quantity (x_hat and out are O(1)).
TOL = {np.float32: 2e-5, np.float64: 1e-10}


def make(shape, dtype, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    bshape = (1, c) + (1,) * (len(shape) - 2)
    x = offset + rng.uniform(-2, 2, c).reshape(bshape) + rng.uniform(0.5, 3, c).reshape(bshape) \
        * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)
    beta = rng.standard_normal(c)
    dout = rng.standard_normal(shape)
    return tuple(a.astype(dtype) for a in (x, gamma, beta, dout))


def _with_min_size(size, fn, *args):
    saved = _fast.MIN_SIZE
    _fast.MIN_SIZE = size
    try:
        return fn(*args)
    finally:
        _fast.MIN_SIZE = saved


def readable_forward(x, gamma, beta, eps=1e-5):
    """``batchnorm_forward``'s readable code, whatever the size of ``x``."""
    return _with_min_size(sys.maxsize, batchnorm_forward, x, gamma, beta, eps)


def readable_backward(dout, cache):
    """``batchnorm_backward``'s readable code, whatever the size of ``dout``."""
    return _with_min_size(sys.maxsize, batchnorm_backward, dout, cache)


@pytest.fixture
def fast_everywhere(monkeypatch):
    """Let every input size take the fast kernels, so small shapes test them too."""
    monkeypatch.setattr(_fast, "MIN_SIZE", 0)


def close(actual, desired, tol, what):
    scale = max(1.0, float(np.max(np.abs(desired))))
    np.testing.assert_allclose(actual, desired, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("offset", [0.0, 1e4], ids=["mean0", "mean1e4"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_equals_readable(shape, dtype, offset, fast_everywhere):
    x, gamma, beta, _ = make(shape, dtype, offset)
    out, cache = batchnorm_forward(x, gamma, beta, 1e-5)
    ref_out, ref = readable_forward(x, gamma, beta, 1e-5)
    tol = TOL[dtype]
    close(out, ref_out, tol, "out")
    close(cache.x_hat, ref.x_hat, tol, "x_hat")
    np.testing.assert_allclose(cache.mean, ref.mean, rtol=tol, atol=tol, err_msg="mean")
    np.testing.assert_allclose(cache.var, ref.var, rtol=tol, err_msg="var")
    np.testing.assert_allclose(cache.inv_std, ref.inv_std, rtol=tol, err_msg="inv_std")
    assert (cache.axes, cache.count, cache.eps) == (ref.axes, ref.count, ref.eps)
    np.testing.assert_array_equal(cache.gamma, ref.gamma)
    for a in (out, cache.x_hat, cache.mean, cache.var, cache.inv_std):
        assert a.dtype == dtype
    assert out.shape == cache.x_hat.shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backward_equals_compact_and_staged(shape, dtype, fast_everywhere):
    x, gamma, beta, dout = make(shape, dtype, seed=1)
    _, cache = batchnorm_forward(x, gamma, beta)
    fast = batchnorm_backward(dout, cache)
    for name, ref in [("compact", readable_backward(dout, cache)),
                      ("staged", batchnorm_backward_staged(dout, cache))]:
        for what, a, b in zip(("dx", "dgamma", "dbeta"), fast, ref):
            close(a, b, 10 * TOL[dtype], f"{what} vs {name}")
            assert a.dtype == dtype and a.shape == b.shape


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernels_equal_readable_when_called_directly(shape, dtype):
    """The kernels themselves (not a fallback in the public functions) give the numbers."""
    x, gamma, beta, dout = make(shape, dtype, seed=5)
    res = _fast.forward(x, gamma, beta, 1e-5)
    assert res is not None
    out, x_hat, mean, var, inv_std = res
    ref_out, ref = readable_forward(x, gamma, beta, 1e-5)
    tol = TOL[dtype]
    close(out, ref_out, tol, "out")
    close(x_hat, ref.x_hat, tol, "x_hat")
    np.testing.assert_allclose(var, ref.var, rtol=tol, err_msg="var")
    grads = _fast.backward(dout, ref.x_hat, ref.gamma, ref.inv_std)
    assert grads is not None
    for what, a, b in zip(("dx", "dgamma", "dbeta"), grads, readable_backward(dout, ref)):
        close(a, b, 10 * tol, what)
        assert a.dtype == dtype and a.shape == b.shape


@pytest.mark.parametrize("shape", [(1000, 3), (16, 3, 5, 5)], ids=str)
def test_float32_large_mean_is_accurate(shape, fast_everywhere):
    """x = 1e4 + noise in float32: x_hat within 1e-5 of the float64 result (a one-pass
    float32 mean would be off by ~1e-3 / std)."""
    x, gamma, beta, _ = make(shape, np.float32, offset=1e4, seed=2)
    _, cache = batchnorm_forward(x, gamma, beta)
    _, exact = batchnorm_forward(x.astype(np.float64), gamma.astype(np.float64),
                                 beta.astype(np.float64))
    np.testing.assert_allclose(cache.x_hat, exact.x_hat, atol=1e-5)
    np.testing.assert_allclose(cache.var, exact.var, rtol=1e-5)


def test_layouts_and_inputs_left_alone(fast_everywhere):
    """Non-contiguous input (a transposed view, Fortran order) and integer input give the
    same numbers as a contiguous copy, and nothing passed in is modified."""
    x, gamma, beta, dout = make((7, 5), np.float64, seed=3)
    xt = np.asfortranarray(x)
    saved = [a.copy() for a in (x, gamma, beta, dout)]
    for variant in (xt, x.T.copy().T, np.asfortranarray(x.reshape(7, 5, 1, 1))):
        out, cache = batchnorm_forward(variant, gamma, beta)
        ref_out, _ = readable_forward(np.ascontiguousarray(variant), gamma, beta, 1e-5)
        close(out, ref_out, 1e-12, "layout")
        batchnorm_backward(dout.reshape(variant.shape), cache)
    for a, b in zip((x, gamma, beta, dout), saved):
        np.testing.assert_array_equal(a, b)
    xi = np.arange(12).reshape(4, 3) ** 2
    out, cache = batchnorm_forward(xi, np.ones(3), np.zeros(3))
    ref_out, _ = readable_forward(xi.astype(np.float64), np.ones(3), np.zeros(3), 1e-5)
    close(out, ref_out, 1e-12, "int input")
    assert not cache.x_hat.flags.writeable


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("path", ["fast", "readable"])
def test_non_finite_input_is_named_without_warnings(shape, dtype, bad, path, monkeypatch):
    monkeypatch.setattr(_fast, "MIN_SIZE", 0 if path == "fast" else sys.maxsize)
    x, gamma, beta, dout = make(shape, dtype, seed=4)
    x_bad = x.copy()
    x_bad.flat[5] = bad
    dout_bad = dout.copy()
    dout_bad.flat[7] = bad
    idx = tuple(int(i) for i in np.unravel_index(5, shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"x contains 1 non-finite .* at index " + re.escape(str(idx))):
            batchnorm_forward(x_bad, gamma, beta)
        _, cache = batchnorm_forward(x, gamma, beta)
        with pytest.raises(ValueError, match="dout contains 1 non-finite"):
            batchnorm_backward(dout_bad, cache)
    assert _fast.forward(x_bad, gamma, beta, 1e-5) is None
    assert _fast.backward(dout_bad, cache.x_hat, cache.gamma, cache.inv_std) is None


def test_overflowing_sums_fall_back_to_the_readable_path(fast_everywhere):
    """Finite float32 values whose sums overflow are not an input error: the kernels hand
    them to the readable path, which rescales them (issue 17: it used to return β with a
    RuntimeWarning) or, where the variance itself exceeds float32, says so."""
    gamma, beta = np.ones(2, np.float32), np.zeros(2, np.float32)
    x = np.array([[3e38, 3e38], [3e38, -3e38]], np.float32)
    with pytest.raises(ValueError, match="exceeds the largest float32"):
        batchnorm_forward(x, gamma, beta)
    x = np.zeros((4096, 2), np.float32)
    x[0] = [3e19, -3e19]                             # its square overflows, the variance fits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = batchnorm_forward(x, gamma, beta)
    assert _fast.forward(x, gamma, beta, 1e-5) is None
    a = float(x[0, 0])
    np.testing.assert_allclose(cache.var, [a * a / 4096 * (4095 / 4096)] * 2, rtol=1e-6)
    np.testing.assert_allclose(out[0], [np.sqrt(4095.0), -np.sqrt(4095.0)], rtol=1e-5)



def test_ones_vectors_are_kept_read_only_and_bounded():
    a = _fast._ones(7, np.float32)
    assert a is _fast._ones(7, np.float32) and a.dtype == np.float32 and not a.flags.writeable
    assert _fast._ones(7, np.float64) is not a
    for n in range(1, 200):                     # many batch sizes do not grow it without bound
        _fast._ones(n, np.float64)
    assert len(_fast._ONES) <= 65


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 2, 3)], ids=str)
def test_fast_gradients_match_finite_differences(shape, fast_everywhere):
    x, gamma, beta, dout = make(shape, np.float64, seed=3)
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)

    def loss(x_=x, g_=gamma, b_=beta):
        return float(np.sum(batchnorm_forward(x_, g_, b_)[0] * dout))

    assert rel_error(dx, numerical_gradient(lambda v: loss(x_=v), x.copy())) < 1e-7
    assert rel_error(dgamma, numerical_gradient(lambda v: loss(g_=v), gamma.copy())) < 1e-7
    assert rel_error(dbeta, numerical_gradient(lambda v: loss(b_=v), beta.copy())) < 1e-7


def test_the_public_functions_use_the_kernels_from_min_size_on(monkeypatch):
    """Below MIN_SIZE values the readable code runs (the kernels are never called); from
    MIN_SIZE on, the kernels (and a kernel's result is what is returned)."""
    calls = []
    real_forward, real_backward = _fast.forward, _fast.backward
    monkeypatch.setattr(_fast, "forward", lambda *a: calls.append("forward") or real_forward(*a))
    monkeypatch.setattr(_fast, "backward", lambda *a: calls.append("backward") or real_backward(*a))
    d = 8
    for n, expected in [(_fast.MIN_SIZE // d - 1, []), (_fast.MIN_SIZE // d, ["forward", "backward"])]:
        calls.clear()
        x, gamma, beta, dout = make((n, d), np.float32, seed=6)
        _, cache = batchnorm_forward(x, gamma, beta)
        batchnorm_backward(dout, cache)
        assert calls == expected, (n, calls)
