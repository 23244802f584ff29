"""The reference (loop and naive) BN implementations agree with bnutils and with calculus."""

import numpy as np
import pytest

from bnutils import batchnorm_backward, batchnorm_forward, numerical_gradient, rel_error
from bnutils.reference import (
    batchnorm_backward_loops,
    batchnorm_backward_naive,
    batchnorm_forward_loops,
    batchnorm_forward_naive,
    normalization_jacobian,
    numerical_jacobian,
)

FORWARDS = [batchnorm_forward_loops, batchnorm_forward_naive]
BACKWARDS = [batchnorm_backward_loops, batchnorm_backward_naive]


def _batch(n=7, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=(n, d))
    gamma = rng.uniform(0.5, 2.0, size=d)
    beta = rng.normal(size=d)
    dout = rng.normal(size=(n, d))
    return x, gamma, beta, dout


@pytest.mark.parametrize("forward", FORWARDS)
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_forward_matches_bnutils(forward, eps):
    x, gamma, beta, _ = _batch()
    out, cache = forward(x, gamma, beta, eps)
    ref, ref_cache = batchnorm_forward(x, gamma, beta, eps)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    for name in ("x_hat", "mean", "var", "inv_std", "gamma"):
        np.testing.assert_allclose(getattr(cache, name), getattr(ref_cache, name), rtol=1e-12)
    assert cache.count == 7 and cache.axes == (0,) and cache.eps == eps


@pytest.mark.parametrize("forward", FORWARDS)
@pytest.mark.parametrize("backward", BACKWARDS)
def test_backward_matches_bnutils_for_any_forward(forward, backward):
    x, gamma, beta, dout = _batch(n=6, d=4, seed=1)
    _, cache = forward(x, gamma, beta)
    got = backward(dout, cache)
    want = batchnorm_backward(dout, cache)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backward", BACKWARDS)
def test_backward_matches_finite_differences(backward):
    x, gamma, beta, dout = _batch(n=5, d=2, seed=2)
    _, cache = batchnorm_forward_naive(x, gamma, beta, eps=0.1)
    dx, dgamma, dbeta = backward(dout, cache)
    loss = lambda v: float(np.sum(batchnorm_forward_naive(v, gamma, beta, 0.1)[0] * dout))
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-6
    loss_g = lambda g: float(np.sum(batchnorm_forward_naive(x, g, beta, 0.1)[0] * dout))
    assert rel_error(dgamma, numerical_gradient(loss_g, gamma)) < 1e-6
    loss_b = lambda b: float(np.sum(batchnorm_forward_naive(x, gamma, b, 0.1)[0] * dout))
    assert rel_error(dbeta, numerical_gradient(loss_b, beta)) < 1e-6


def test_example_5x3():
    out, cache = batchnorm_forward_loops(np.arange(1, 16).reshape(5, 3), np.ones(3), np.zeros(3))
    np.testing.assert_allclose(cache.mean, [7.0, 8.0, 9.0])
    np.testing.assert_allclose(cache.var, [18.0, 18.0, 18.0])
    np.testing.assert_allclose(out[:, 0], np.array([-6, -3, 0, 3, 6]) / np.sqrt(18 + 1e-5))


def test_inputs_are_not_modified():
    x, gamma, beta, dout = _batch()
    copies = [a.copy() for a in (x, gamma, beta, dout)]
    for forward, backward in zip(FORWARDS, BACKWARDS, strict=True):
        _, cache = forward(x, gamma, beta)
        backward(dout, cache)
    for a, c in zip((x, gamma, beta, dout), copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("eps", [1e-5, 1.0])
def test_jacobian_closed_form_matches_finite_differences(eps):
    x = np.random.default_rng(3).normal(1.0, 2.0, size=8)
    f = lambda v: batchnorm_forward(v[:, None], np.ones(1), np.zeros(1), eps)[0][:, 0]
    J_num = numerical_jacobian(f, x)
    J = normalization_jacobian(x, eps)
    np.testing.assert_allclose(J, J_num, atol=1e-8)
    np.testing.assert_allclose(J, J.T, atol=1e-15)
    np.testing.assert_allclose(J @ np.ones(8), 0.0, atol=1e-12)
    # x_hat is an eigenvector with eigenvalue eps / (var + eps)^(3/2): ~0 only when eps << var
    x_hat = (x - x.mean()) / np.sqrt(x.var() + eps)
    np.testing.assert_allclose(J @ x_hat, x_hat * eps / (x.var() + eps) ** 1.5, atol=1e-12)


def test_jacobian_transposed_times_dout_is_dx():
    x = np.random.default_rng(4).normal(size=6)
    dout = np.random.default_rng(5).normal(size=6)
    _, cache = batchnorm_forward(x[:, None], np.array([1.5]), np.zeros(1))
    dx, _, _ = batchnorm_backward(dout[:, None], cache)
    np.testing.assert_allclose(normalization_jacobian(x).T @ (1.5 * dout), dx[:, 0], atol=1e-12)


def test_numerical_jacobian_does_not_modify_x():
    x = np.array([1.0, 2.0])
    numerical_jacobian(lambda v: v**2, x)
    np.testing.assert_array_equal(x, [1.0, 2.0])


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((np.zeros((2, 3, 4)), np.ones(3), np.zeros(3)), ValueError, r"\(N, D\)"),
        ((np.zeros((1, 3)), np.ones(3), np.zeros(3)), ValueError, "at least 2"),
        ((np.zeros((4, 3)), np.ones(2), np.zeros(3)), ValueError, "gamma"),
        ((np.zeros((4, 3)), np.ones(3), np.zeros(3), 0.0), ValueError, "eps"),
        ((np.array([["a", "b"], ["c", "d"]]), np.ones(2), np.zeros(2)), TypeError, "x"),
    ],
)
@pytest.mark.parametrize("forward", FORWARDS)
def test_bad_forward_input(forward, args, exc, match):
    with pytest.raises(exc, match=match):
        forward(*args)


@pytest.mark.parametrize("backward", BACKWARDS)
def test_bad_backward_input(backward):
    _, cache = batchnorm_forward_naive(np.arange(6.0).reshape(3, 2), np.ones(2), np.zeros(2))
    with pytest.raises(TypeError, match="BatchNormCache"):
        backward(np.zeros((3, 2)), {"x_hat": 1})
    with pytest.raises(ValueError, match="shape"):
        backward(np.zeros((2, 3)), cache)

    _, cache4 = batchnorm_forward(np.zeros((2, 1, 2, 2)), np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        batchnorm_backward_loops(np.zeros((2, 1, 2, 2)), cache4)


def test_loops_take_fully_connected_batches_only():
    with pytest.raises(ValueError, match=r"\(N, D\).*use bnutils.batchnorm_forward"):
        batchnorm_forward_loops(np.zeros((2, 3, 4, 4)), np.ones(3), np.zeros(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 5)], ids=str)
def test_naive_version_keeps_the_dtype_and_handles_images(shape, dtype):
    """The naive version is also the benchmark's "naive NumPy": float32 stays float32
    (a fair comparison with the fast path) and (N, C, H, W) reduces over N, H, W."""
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, shape).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out, cache = batchnorm_forward_naive(x, gamma, beta)
    dx, dgamma, dbeta = batchnorm_backward_naive(dout, cache)
    ref_out, ref_cache = batchnorm_forward(x, gamma, beta)
    ref = batchnorm_backward(dout, ref_cache)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip((out, dx, dgamma, dbeta), (ref_out, *ref)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert (cache.axes, cache.count) == (ref_cache.axes, ref_cache.count)
    np.testing.assert_allclose(cache.var, ref_cache.var, rtol=tol)


def test_bad_jacobian_input():
    with pytest.raises(ValueError, match=r"\(N,\)"):
        normalization_jacobian(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        normalization_jacobian([1.0])
    with pytest.raises(ValueError, match="h"):
        numerical_jacobian(lambda v: v, [1.0], h=0.0)
    with pytest.raises(TypeError, match="f must be a function"):
        numerical_jacobian("tanh", [1.0])
    with pytest.raises(ValueError, match="x must hold at least one value"):
        numerical_jacobian(np.tanh, [])           # before: NumPy's "need at least one array"
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        numerical_jacobian(np.tanh, [0.5, np.nan])   # before: a column of NaN, silently


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("forward", [batchnorm_forward_naive, batchnorm_forward_loops])
@pytest.mark.parametrize(("scale", "dtype"), [(1e160, np.float64), (1e300, np.float64),
                                              (1e20, np.float32)])
def test_textbook_forwards_refuse_x_whose_squares_overflow(forward, scale, dtype):
    """The squares of x - mean overflowed: the output silently came out as beta (with only
    a RuntimeWarning). The loops compute in float64, so float32 input there is fine."""
    x = (np.random.default_rng(0).normal(1.0, 2.0, (6, 3)) * scale).astype(dtype)
    if forward is batchnorm_forward_loops and dtype == np.float32:
        out, _ = forward(x, np.ones(3), np.zeros(3))
        expected, _ = batchnorm_forward(x.astype(np.float64), np.ones(3), np.zeros(3))
        np.testing.assert_allclose(out, expected, atol=1e-12)
        return
    with pytest.raises(ValueError, match=rf"^x is too large \(largest \|x\| = .*\): its squares "
                                         rf"overflow {np.dtype(dtype).name} .*batchnorm_forward"):
        forward(x, np.ones(3), np.zeros(3))


@pytest.mark.filterwarnings("error")
def test_naive_forward_refuses_a_huge_4d_x():
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32) * 1e20
    with pytest.raises(ValueError, match=r"^x is too large .*overflow float32"):
        batchnorm_forward_naive(x, np.ones(3), np.zeros(3))


@pytest.mark.filterwarnings("error")
def test_normalization_jacobian_refuses_x_whose_squares_overflow():
    with pytest.raises(ValueError, match=r"^x is too large .*overflow float64"):
        normalization_jacobian(np.array([1.0, 2.0, 4.0]) * 1e160)
