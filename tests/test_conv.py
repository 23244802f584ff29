"""bnutils.conv: im2col/col2im, the convolution against plain loops and finite differences,
the Conv2d, GlobalAvgPool and Flatten layers, bad input, inputs never mutated."""

import numpy as np
import pytest

from bnutils import BatchNorm, Linear, ReLU, Sequential
from bnutils.conv import (
    Conv2d,
    ConvCache,
    Flatten,
    GlobalAvgPool,
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_loops,
    im2col,
)
from bnutils.gradcheck import numerical_gradient, rel_error
from bnutils.training import evaluate, train


def _data(k, n=2, c_in=3, c_out=4, h=5, w=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c_in, h, w)), rng.standard_normal((c_out, c_in, k, k)),
            rng.standard_normal(c_out))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_plain_loops(k, bias):
    x, W, b = _data(k)
    b = b if bias else None
    out, cache = conv2d_forward(x, W, b)
    assert out.shape == (2, 4, 5, 4)
    np.testing.assert_allclose(out, conv2d_loops(x, W, b), rtol=1e-12, atol=1e-12)
    assert isinstance(cache, ConvCache) and cache.has_bias == bias


def test_loops_by_hand():
    """One output value written out: the 3×3 patch around pixel (0, 1), zero-padded above."""
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    W = np.arange(9.0).reshape(1, 1, 3, 3)
    patch = np.array([[0, 0, 0], [0, 1, 2], [4, 5, 6]], dtype=float)
    assert conv2d_loops(x, W)[0, 0, 0, 1] == pytest.approx(np.sum(patch * W[0, 0]))
    assert conv2d_forward(x, W)[0][0, 0, 0, 1] == pytest.approx(np.sum(patch * W[0, 0]))


@pytest.mark.parametrize("k", [1, 3])
def test_backward_matches_finite_differences(k):
    x, W, b = _data(k, seed=1)
    out, cache = conv2d_forward(x, W, b)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    dx, dW, db = conv2d_backward(dout, cache)
    num_dx = numerical_gradient(lambda v: np.sum(conv2d_forward(v, W, b)[0] * dout), x)
    num_dW = numerical_gradient(lambda v: np.sum(conv2d_forward(x, v, b)[0] * dout), W)
    num_db = numerical_gradient(lambda v: np.sum(conv2d_forward(x, W, v)[0] * dout), b)
    assert rel_error(dx, num_dx) < 1e-7
    assert rel_error(dW, num_dW) < 1e-7
    assert rel_error(db, num_db) < 1e-7


def test_backward_matches_finite_differences_of_the_loops():
    """The fast backward against the gradient of the independent loop reference."""
    x, W, b = _data(3, n=1, c_in=2, c_out=2, h=3, w=3, seed=3)
    dout = np.random.default_rng(4).standard_normal((1, 2, 3, 3))
    _, cache = conv2d_forward(x, W, b)
    dx, dW, _ = conv2d_backward(dout, cache)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(conv2d_loops(v, W, b) * dout), x)) < 1e-7
    assert rel_error(dW, numerical_gradient(lambda v: np.sum(conv2d_loops(x, v, b) * dout), W)) < 1e-7


def test_no_bias_gives_no_db():
    x, W, _ = _data(3)
    out, cache = conv2d_forward(x, W)
    assert conv2d_backward(np.ones_like(out), cache)[2] is None


@pytest.mark.parametrize("k", [1, 3])
def test_col2im_is_the_adjoint_of_im2col(k):
    """<im2col(x), c> == <x, col2im(c)> for every x, c: the defining property of the adjoint."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5))
    cols = rng.standard_normal((2 * 4 * 5, 3 * k * k))
    lhs = np.sum(im2col(x, k) * cols)
    rhs = np.sum(x * col2im(cols, x.shape, k))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_im2col_rows_are_patches():
    x = np.arange(2 * 1 * 3 * 3, dtype=float).reshape(2, 1, 3, 3)
    cols = im2col(x, 3)
    assert cols.shape == (18, 9)
    np.testing.assert_array_equal(cols[9 + 4], x[1, 0].ravel())      # image 1, centre pixel
    np.testing.assert_array_equal(im2col(x, 1), x.transpose(0, 2, 3, 1).reshape(18, 1))


def test_float32_stays_float32():
    x, W, b = (a.astype(np.float32) for a in _data(3))
    out, cache = conv2d_forward(x, W, b)
    dx, dW, db = conv2d_backward(np.ones_like(out), cache)
    assert out.dtype == dx.dtype == dW.dtype == db.dtype == np.float32
    np.testing.assert_allclose(out, conv2d_loops(x.astype(float), W.astype(float), b.astype(float)),
                               rtol=1e-4, atol=1e-4)


def test_inputs_never_mutated():
    x, W, b = _data(3)
    copies = [a.copy() for a in (x, W, b)]
    out, cache = conv2d_forward(x, W, b)
    dout = np.ones_like(out)
    dout_copy = dout.copy()
    conv2d_backward(dout, cache)
    cols = im2col(x, 3)
    cols_copy = cols.copy()
    col2im(cols, x.shape, 3)
    for a, c in zip((x, W, b, dout, cols), (*copies, dout_copy, cols_copy), strict=True):
        np.testing.assert_array_equal(a, c)
    W[0, 0, 0, 0] += 1.0          # changing W after the forward does not change the cache
    assert cache.W[0, 0, 0, 0] == copies[1][0, 0, 0, 0]
    assert not cache.cols.flags.writeable and not cache.W.flags.writeable


@pytest.mark.parametrize(("call", "err", "fragment"), [
    (lambda: conv2d_forward(np.ones((2, 3, 4)), np.ones((1, 3, 3, 3))), ValueError, "(N, C, H, W)"),
    (lambda: conv2d_forward(np.ones((2, 3, 4, 4)), np.ones((1, 2, 3, 3))), ValueError, "input channels"),
    (lambda: conv2d_forward(np.ones((2, 3, 4, 4)), np.ones((1, 3, 5, 5))), ValueError, "1×1 or 3×3"),
    (lambda: conv2d_forward(np.ones((2, 3, 4, 4)), np.ones((1, 3, 3, 2))), ValueError, "square"),
    (lambda: conv2d_forward(np.ones((2, 3, 4, 4)), np.ones((2, 3, 3, 3)), np.ones(3)), ValueError,
     "b must have shape (2,)"),
    (lambda: conv2d_forward(np.full((1, 1, 2, 2), np.nan), np.ones((1, 1, 1, 1))), ValueError, "x contains"),
    (lambda: conv2d_forward(np.array([["a"]]), np.ones((1, 1, 1, 1))), TypeError, "x must be"),
    (lambda: conv2d_backward(np.ones((1, 1, 2, 2)), "cache"), TypeError, "ConvCache"),
    (lambda: im2col(np.ones((1, 1, 2, 2)), 2), ValueError, "kernel_size must be 1 or 3"),
    (lambda: im2col(np.ones((1, 1, 2, 2)), 3.0), TypeError, "kernel_size"),
    (lambda: col2im(np.ones((4, 8)), (1, 1, 2, 2), 3), ValueError, "cols must have shape"),
    (lambda: Conv2d(0, 4), ValueError, "in_channels"),
    (lambda: Conv2d(1, 4.0), TypeError, "out_channels"),
    (lambda: Conv2d(1, 4, kernel_size=5), ValueError, "kernel_size"),
    (lambda: Conv2d(1, 4, init="xavier"), ValueError, "init"),
    (lambda: Conv2d(1, 4, init=-1.0), ValueError, "init"),
    (lambda: Conv2d(2, 4).forward(np.ones((1, 3, 4, 4))), ValueError, "(N, 2, H, W)"),
    (lambda: Conv2d(2, 4).backward(np.ones((1, 4, 4, 4))), RuntimeError, "before forward"),
    (lambda: Conv2d(2, 4).grads(), RuntimeError, "before backward"),
    (lambda: GlobalAvgPool().forward(np.ones((2, 3))), ValueError, "(N, C, H, W)"),
    (lambda: GlobalAvgPool().backward(np.ones((2, 3))), RuntimeError, "before forward"),
    (lambda: Flatten().forward(np.ones(3)), ValueError, "(N, ...)"),
    (lambda: Flatten().backward(np.ones((2, 3))), RuntimeError, "before forward"),
    # issue 17: no kernel, non-finite columns, a Flatten of nothing or of NaN
    (lambda: conv2d_forward(np.ones((2, 3, 4, 4)), np.ones((0, 3, 3, 3))), ValueError,
     "W must hold at least one kernel"),
    (lambda: conv2d_loops(np.ones((2, 3, 4, 4)), np.ones((0, 3, 3, 3))), ValueError,
     "W must hold at least one kernel"),
    (lambda: col2im(np.full((4, 9), np.inf), (1, 1, 2, 2), 3), ValueError, "cols contains 36"),
    (lambda: Flatten().forward(np.ones((2, 0, 4, 4))), ValueError, "one value per sample"),
    (lambda: Flatten().forward(np.ones((0, 3, 4, 4))), ValueError, "non-empty batch"),
    (lambda: Flatten().forward(np.where(np.eye(4)[None] > 0, np.nan, 1.0)), ValueError,
     "x contains 4 non-finite"),
])
def test_bad_input_names_the_problem(call, err, fragment):
    with pytest.raises(err, match=None) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_wrong_dout_shape():
    layer = Conv2d(1, 2, rng=0)
    layer.forward(np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        layer.backward(np.ones((2, 1, 3, 3)))
    pool = GlobalAvgPool()
    pool.forward(np.ones((2, 3, 2, 2)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        pool.backward(np.ones((3, 2)))


def test_a_failed_forward_leaves_no_stale_cache():
    layer = Conv2d(1, 2, rng=0)
    layer.forward(np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError):
        layer.forward(np.ones((2, 5, 3, 3)))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, 2, 3, 3)))
    for layer, good, bad in ((GlobalAvgPool(), np.ones((1, 2, 2, 2)), np.ones((1, 2))),
                             (Flatten(), np.ones((1, 2, 2)), np.ones(2))):
        layer.forward(good)
        with pytest.raises(ValueError):
            layer.forward(bad)
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(np.ones((1, 2)))


def test_conv_layer_params_grads_and_init():
    layer = Conv2d(3, 8, rng=0)
    assert layer.W.shape == (8, 3, 3, 3) and layer.b.shape == (8,)
    assert layer.W.std() == pytest.approx(np.sqrt(2 / 27), rel=0.15)         # He, fan_in = 27
    assert sorted(layer.params()) == ["W", "b"]
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and sorted(layer.grads()) == ["W", "b"]
    no_bias = Conv2d(3, 8, kernel_size=1, bias=False, init=0.5, rng=0)
    assert sorted(no_bias.params()) == ["W"] and no_bias.W.shape == (8, 3, 1, 1)
    assert repr(no_bias) == "Conv2d(3, 8, kernel_size=1, bias=False)"
    np.testing.assert_array_equal(Conv2d(3, 8, rng=1).W, Conv2d(3, 8, rng=1).W)


def test_layers_gradient_checked_together():
    """Conv → BN → ReLU → Conv(1×1) → GlobalAvgPool → Linear, checked end to end."""
    rng = np.random.default_rng(7)
    net = Sequential(Conv2d(2, 3, bias=False, rng=rng), BatchNorm(3), ReLU(),
                     Conv2d(3, 3, kernel_size=1, rng=rng), GlobalAvgPool(), Linear(3, 2, rng=rng))
    x = rng.standard_normal((4, 2, 3, 3))
    dout = rng.standard_normal((4, 2))
    net.forward(x)
    dx = net.backward(dout)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(net.forward(v) * dout), x)) < 1e-6
    W = net[0].W
    dW = net[0].dW.copy()

    def loss_of_W(v):
        saved = W.copy()
        W[...] = v
        try:
            return np.sum(net.forward(x) * dout)
        finally:
            W[...] = saved

    assert rel_error(dW, numerical_gradient(loss_of_W, W)) < 1e-6


def test_pool_and_flatten_gradients():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 2, 4))
    for layer in (GlobalAvgPool(), Flatten()):
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        num = numerical_gradient(lambda v, lay=layer, d=dout: np.sum(lay.forward(v) * d), x)
        assert rel_error(dx, num) < 1e-8


def test_small_cnn_trains_and_evaluates():
    """A CNN with BN after each convolution trains with bnutils.training and evaluates in eval mode."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 1, 4, 4))
    y = (X[:, 0, :2].mean(axis=(1, 2)) > X[:, 0, 2:].mean(axis=(1, 2))).astype(int)
    net = Sequential(Conv2d(1, 4, bias=False, rng=1), BatchNorm(4), ReLU(), Flatten(),
                     Linear(64, 2, rng=2))
    history = train(net, X, y, lr=0.1, steps=60, batch_size=16, X_test=X, y_test=y, eval_every=30)
    assert not history.diverged and history.loss[-1] < history.loss[0]
    acc, _ = evaluate(net, X, y)
    assert acc > 0.8 and net.training
    assert not np.allclose(net[1].running_mean, 0.0)
