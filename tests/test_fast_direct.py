"""The direct fast path (bnutils._fast.forward_direct / backward_direct) and its cache.

Large inputs whose features all have |mean| ≤ std are normalized from one read of x,
and the cache keeps a reference to x instead of x_hat. These tests check that the path
is taken when it should be and only then, that it equals the readable path and finite
differences, and that changing x in place between forward and backward is caught.
"""

import dataclasses

import numpy as np
import pytest
from test_fast import DTYPES, TOL, close  # the centred path's tests: same tolerances

from bnutils import BatchNormCache, _fast, batchnorm_backward, batchnorm_forward
from bnutils.batchnorm import _backward_compact, _forward_readable
from bnutils.gradcheck import numerical_gradient, rel_error

SHAPES = [(2, 1), (5, 3), (64, 33), (300, 7), (3, 2, 4, 5), (4, 3, 1, 1), (9, 4, 8, 8)]
BIG_2D, BIG_4D = (600, 512), (8, 16, 48, 48)      # ≥ DIRECT_MIN_SIZE values each


def axes_of(shape):
    return (0,) if len(shape) == 2 else (0, 2, 3)


def well_conditioned(shape, dtype, seed=0, ratio=0.5):
    """Per feature: exactly mean = ratio·std in the batch (|mean| ≤ std for ratio ≤ 1)."""
    rng = np.random.default_rng(seed)
    c, axes = shape[1], axes_of(shape)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    z = rng.standard_normal(shape)
    z = (z - z.mean(axis=axes, keepdims=True)) / z.std(axis=axes, keepdims=True)
    std = rng.uniform(0.5, 3.0, c).reshape(bshape)
    sign = rng.choice([-1.0, 1.0], c).reshape(bshape)
    x = std * z + sign * ratio * std
    gamma = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)
    beta = rng.standard_normal(c)
    dout = rng.standard_normal(shape)
    return tuple(a.astype(dtype) for a in (x, gamma, beta, dout))


@pytest.fixture
def direct_everywhere(monkeypatch):
    """Let every input size take the direct path, so small shapes test it too."""
    monkeypatch.setattr(_fast, "DIRECT_MIN_SIZE", 0)


def stores_x(cache):
    return cache._x_hat is None and cache._x is not None


# ----------------------------------------------------------------------- same numbers


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_direct_path_equals_readable(shape, dtype, direct_everywhere):
    x, gamma, beta, dout = well_conditioned(shape, dtype)
    out, cache = batchnorm_forward(x, gamma, beta, 1e-5)
    assert stores_x(cache)
    ref_out, ref = _forward_readable(x, gamma, beta, 1e-5)
    tol = TOL[dtype]
    close(out, ref_out, tol, "out")
    np.testing.assert_allclose(cache.mean, ref.mean, rtol=tol, atol=tol, err_msg="mean")
    np.testing.assert_allclose(cache.var, ref.var, rtol=tol, err_msg="var")
    np.testing.assert_allclose(cache.inv_std, ref.inv_std, rtol=tol, err_msg="inv_std")
    assert (cache.axes, cache.count, cache.eps, cache.shape) == (ref.axes, ref.count, ref.eps, x.shape)
    grads = batchnorm_backward(dout, cache)
    for what, a, b in zip(("dx", "dgamma", "dbeta"), grads, _backward_compact(dout, ref)):
        close(a, b, 10 * tol, what)
        assert a.dtype == dtype and a.shape == b.shape
    close(cache.x_hat, ref.x_hat, tol, "x_hat (computed on first use)")
    for a in (out, cache.x_hat, cache.mean, cache.var, cache.inv_std):
        assert a.dtype == dtype


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 2, 3)], ids=str)
def test_direct_path_gradients_match_finite_differences(shape, direct_everywhere):
    x, gamma, beta, dout = well_conditioned(shape, np.float64, seed=3)
    _, cache = batchnorm_forward(x, gamma, beta)
    assert stores_x(cache)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)

    def loss(x_=x, g_=gamma, b_=beta):
        return float(np.sum(batchnorm_forward(x_, g_, b_)[0] * dout))

    assert rel_error(dx, numerical_gradient(lambda v: loss(x_=v), x.copy())) < 1e-7
    assert rel_error(dgamma, numerical_gradient(lambda v: loss(g_=v), gamma.copy())) < 1e-7
    assert rel_error(dbeta, numerical_gradient(lambda v: loss(b_=v), beta.copy())) < 1e-7


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [BIG_2D, BIG_4D], ids=str)
def test_large_well_conditioned_input_takes_the_direct_path(shape, dtype):
    x, gamma, beta, dout = well_conditioned(shape, dtype, seed=1)
    out, cache = batchnorm_forward(x, gamma, beta)
    assert stores_x(cache)
    assert np.shares_memory(cache._x, x)              # a reference, not a copy
    ref_out, ref = _forward_readable(x, gamma, beta, 1e-5)
    close(out, ref_out, TOL[dtype], "out")
    for what, a, b in zip(("dx", "dgamma", "dbeta"), batchnorm_backward(dout, cache),
                          _backward_compact(dout, ref)):
        close(a, b, 10 * TOL[dtype], what)


@pytest.mark.parametrize("ratio", [1.5, 1e4 / 2], ids=["mean 1.5 std", "mean 1e4, std 2"])
def test_a_feature_with_mean_above_std_sends_all_to_the_centred_path(ratio):
    x, gamma, beta, dout = well_conditioned(BIG_2D, np.float32, seed=2)
    x[:, 3] = x[:, 3] / x[:, 3].std() * 2.0           # one feature: std 2 ...
    x[:, 3] += ratio * 2.0 - x[:, 3].mean()           # ... and mean ratio·std
    assert _fast.forward_direct(x, gamma, beta, 1e-5) is None
    out, cache = batchnorm_forward(x, gamma, beta)
    assert not stores_x(cache)
    _, exact = batchnorm_forward(x.astype(np.float64), gamma.astype(np.float64),
                                 beta.astype(np.float64))
    np.testing.assert_allclose(cache.x_hat, exact.x_hat, atol=1e-5)
    np.testing.assert_allclose(cache.var, exact.var, rtol=1e-5)


def test_small_input_keeps_the_centred_path():
    x, gamma, beta, _ = well_conditioned((64, 33), np.float64)
    assert x.size < _fast.DIRECT_MIN_SIZE
    _, cache = batchnorm_forward(x, gamma, beta)
    assert not stores_x(cache)


def test_forward_direct_says_none_for_non_finite_sums():
    x, gamma, beta, _ = well_conditioned((6, 3), np.float32)
    for bad in (np.nan, np.inf):
        x_bad = x.copy()
        x_bad[2, 1] = bad
        assert _fast.forward_direct(x_bad, gamma, beta, 1e-5) is None
    huge = np.full((4, 2), 3e38, np.float32) * np.array([[1], [-1], [1], [-1]], np.float32)
    assert _fast.forward_direct(huge, gamma[:2], beta[:2], 1e-5) is None   # Σx² overflows


def test_non_finite_values_are_still_named(direct_everywhere):
    x, gamma, beta, dout = well_conditioned((5, 3), np.float64)
    x_bad = x.copy()
    x_bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"x contains 1 non-finite .* at index \(1, 2\)"):
        batchnorm_forward(x_bad, gamma, beta)
    _, cache = batchnorm_forward(x, gamma, beta)
    dout[4, 0] = np.inf
    with pytest.raises(ValueError, match="dout contains 1 non-finite"):
        batchnorm_backward(dout, cache)


# ---------------------------------------------------- x changed between forward and backward

CHANGES = {
    "one value": lambda x: x.__setitem__((3, 1), x[3, 1] + 0.5),
    "scaled": lambda x: x.__imul__(1.01),
    "two samples swapped": lambda x: x.__setitem__([2, 5], x[[5, 2]]),
    "a row zeroed": lambda x: x.__setitem__(7, 0.0),
    "shifted": lambda x: x.__iadd__(0.1),
}


@pytest.mark.parametrize("shape", [BIG_2D, BIG_4D], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_changing_x_in_place_after_forward_is_an_error(change, dtype, shape):
    x, gamma, beta, dout = well_conditioned(shape, dtype, seed=4)
    _, cache = batchnorm_forward(x, gamma, beta)
    assert stores_x(cache)
    CHANGES[change](x)
    with pytest.raises(ValueError, match="x was changed in place after batchnorm_forward"):
        batchnorm_backward(dout, cache)
    with pytest.raises(ValueError, match="x was changed in place"):
        cache.x_hat                                   # noqa: B018 - computed on first use


def test_unchanged_x_passes_the_check_bit_for_bit():
    x, gamma, beta, dout = well_conditioned(BIG_2D, np.float32, seed=5)
    check = _fast.forward_direct(x, gamma, beta, 1e-5)[4]
    assert np.array_equal(_fast.input_check(x), check)
    _, cache = batchnorm_forward(x, gamma, beta)
    np.testing.assert_array_equal(batchnorm_backward(dout, cache)[0], batchnorm_backward(dout, cache)[0])


def test_x_hat_taken_before_a_change_keeps_the_gradients_of_the_forward_input():
    x, gamma, beta, dout = well_conditioned(BIG_2D, np.float64, seed=6)
    _, cache = batchnorm_forward(x, gamma, beta)
    expected = batchnorm_backward(dout, cache)
    x_hat = cache.x_hat                               # snapshot of the normalized input
    x += 1.0
    for a, b in zip(batchnorm_backward(dout, cache), expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert cache.x_hat is x_hat


# ------------------------------------------------------------------------------ cache


def test_direct_cache_is_read_only_and_leaves_x_writable():
    x, gamma, beta, _ = well_conditioned(BIG_2D, np.float32, seed=7)
    _, cache = batchnorm_forward(x, gamma, beta)
    assert dataclasses.is_dataclass(cache)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cache.mean = None
    for arr in (cache.x_hat, cache.gamma, cache.mean, cache.var, cache.inv_std, cache._x):
        assert not arr.flags.writeable
    assert x.flags.writeable
    assert "x_hat" not in repr(cache) and "array" in repr(cache)   # no 300k-value dump


def test_cache_needs_exactly_one_of_x_hat_and_x():
    kw = dict(gamma=np.ones(2), mean=np.zeros(2), var=np.ones(2), inv_std=np.ones(2), eps=1e-5,
              axes=(0,), count=3)
    with pytest.raises(TypeError, match="exactly one of x_hat and x"):
        BatchNormCache(**kw)
    with pytest.raises(TypeError, match="exactly one of x_hat and x"):
        BatchNormCache(x_hat=np.zeros((3, 2)), x=np.zeros((3, 2)), x_check=np.zeros((2, 2)), **kw)
    with pytest.raises(TypeError, match="needs x_check"):
        BatchNormCache(x=np.zeros((3, 2)), **kw)
    cache = BatchNormCache(x_hat=np.zeros((3, 2)), **kw)
    with pytest.raises(TypeError, match="stores x_hat"):
        cache.checked_input()


def test_non_contiguous_input_on_the_direct_path(direct_everywhere):
    x, gamma, beta, dout = well_conditioned((40, 6), np.float64, seed=8)
    _, ref = batchnorm_forward(x.copy(), gamma, beta)
    expected = batchnorm_backward(dout, ref)
    for variant in (np.asfortranarray(x), x.T.copy().T, np.asfortranarray(x.reshape(40, 6, 1, 1))):
        out, cache = batchnorm_forward(variant, gamma, beta)
        assert stores_x(cache)
        close(out.reshape(x.shape), batchnorm_forward(x, gamma, beta)[0], 1e-12, "out")
        for a, b in zip(batchnorm_backward(dout.reshape(variant.shape), cache), expected):
            close(a.reshape(b.shape), b, 1e-12, "grads")
