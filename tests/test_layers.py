"""bnutils.layers: the Layer base (parameters declared once, children, modes, no stale
caches); Linear, activations, Sequential and the losses against numerical gradients.
The BatchNorm layer's own tests live in tests/test_batchnorm.py, beside its functions."""

import warnings

import numpy as np
import pytest

from bnutils import (
    BatchNorm,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    accuracy,
    mse_loss,
    numerical_gradient,
    rel_error,
    softmax_cross_entropy,
)
from bnutils.layers import Layer, in_mode, iter_layers

# --------------------------------------------------------------------------- Linear


def test_linear_forward_backward():
    rng = np.random.default_rng(12)
    layer = Linear(4, 3, rng=0)
    layer.b[:] = rng.standard_normal(3)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.W + layer.b, rtol=1e-14)
    dx = layer.backward(dout)
    W, b = layer.W.copy(), layer.b.copy()
    f = lambda x_, W_, b_: np.sum((x_ @ W_ + b_) * dout)
    assert rel_error(dx, numerical_gradient(lambda x_: f(x_, W, b), x)) < 1e-7
    assert rel_error(layer.dW, numerical_gradient(lambda W_: f(x, W_, b), W)) < 1e-7
    assert rel_error(layer.db, numerical_gradient(lambda b_: f(x, W, b_), b)) < 1e-7
    assert sorted(layer.grads()) == ["W", "b"]


def test_linear_without_bias_and_init():
    layer = Linear(3, 2, bias=False, rng=0)
    assert layer.b is None and sorted(layer.params()) == ["W"]
    layer.forward(np.ones((2, 3)))
    layer.backward(np.ones((2, 2)))
    assert sorted(layer.grads()) == ["W"]
    assert repr(layer) == "Linear(3, 2, bias=False)"
    big = Linear(400, 300, rng=1).W
    assert big.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)                  # He
    assert Linear(400, 300, init="lecun", rng=1).W.std() == pytest.approx(np.sqrt(1 / 400), rel=0.02)
    assert Linear(400, 300, init="glorot", rng=1).W.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    with pytest.raises(ValueError, match="ambiguous.*'glorot'.*'lecun'"):
        Linear(4, 3, init="xavier")
    assert Linear(400, 300, init=0.01, rng=1).W.std() == pytest.approx(0.01, rel=0.02)
    np.testing.assert_array_equal(Linear(3, 2, rng=5).W, Linear(3, 2, rng=5).W)     # seeded
    assert Linear(3, 2, dtype=np.float32).W.dtype == np.float32


# --------------------------------------------------------------------------- activations


@pytest.mark.parametrize("layer, f, df", [
    (ReLU(), lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    (Sigmoid(), lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    (Tanh(), np.tanh, lambda x: 1 - np.tanh(x) ** 2),
], ids=["relu", "sigmoid", "tanh"])
def test_activations(layer, f, df):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 1e-3] = 0.5                     # keep away from ReLU's kink
    dout = rng.standard_normal((4, 5))
    np.testing.assert_allclose(layer.forward(x), f(x), rtol=1e-14)
    np.testing.assert_allclose(layer.backward(dout), dout * df(x), rtol=1e-12, atol=1e-15)
    num = numerical_gradient(lambda x_: np.sum(type(layer)().forward(x_) * dout), x)
    assert rel_error(layer.backward(dout), num) < 1e-8
    assert layer.params() == {} and layer.grads() == {}
    assert layer.forward(x.astype(np.float32)).dtype == np.float32
    assert layer.forward(np.array([[1, -2]])).dtype == np.float64


def test_sigmoid_does_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = Sigmoid().forward(np.array([[-1000.0, 0.0, 1000.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.5, 1.0]])


# --------------------------------------------------------------------------- Sequential


def make_net(seed=0):
    return Sequential(Linear(4, 6, rng=seed), BatchNorm(6), Tanh(), Linear(6, 3, rng=seed + 1))


def test_sequential_forward_and_outputs():
    net = make_net()
    x = np.random.default_rng(14).standard_normal((5, 4))
    out = net.forward(x)
    assert len(net.outputs) == 4 and net.outputs[-1] is out
    h = x
    for layer, stored in zip(net.layers, net.outputs):
        h = layer.forward(h)
        np.testing.assert_allclose(stored, h, rtol=1e-12)
    assert len(net) == 4 and net[1] is net.layers[1]
    assert sorted(net.params()) == ["0.W", "0.b", "1.beta", "1.gamma", "3.W", "3.b"]
    assert "BatchNorm(6" in repr(net)


def test_sequential_mode_propagates():
    net = make_net()
    assert net.eval() is net and not net.training and all(not layer.training for layer in net.layers)
    assert net.train() is net and all(layer.training for layer in net.layers)


def test_whole_network_gradient_in_training_mode():
    """Linear → BN → Tanh → Linear → softmax cross-entropy: every parameter gradient against
    numerical differentiation of the loss (BN in training mode couples the samples)."""
    rng = np.random.default_rng(15)
    net = make_net(seed=3)
    net[1].gamma[:] = rng.uniform(0.5, 1.5, 6)
    net[1].beta[:] = rng.standard_normal(6) * 0.3
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)

    def loss_of(p, name):
        saved = net.params()[name].copy()
        net.params()[name][...] = p
        loss, _ = softmax_cross_entropy(net.forward(x), y)
        net.params()[name][...] = saved
        return loss

    _, dlogits = softmax_cross_entropy(net.forward(x), y)
    dx = net.backward(dlogits)
    grads = {k: v.copy() for k, v in net.grads().items()}
    for name, p in net.params().items():
        num = numerical_gradient(lambda p_, name=name: loss_of(p_, name), p.copy())
        assert rel_error(grads[name], num) < 1e-7, name
    num_dx = numerical_gradient(lambda x_: softmax_cross_entropy(net.forward(x_), y)[0], x)
    assert rel_error(dx, num_dx) < 1e-7


# --------------------------------------------------------------------------- losses


def test_softmax_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(16)
    logits, y = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    loss, d = softmax_cross_entropy(logits, y)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(5), y])), rel=1e-12)
    num = numerical_gradient(lambda z: softmax_cross_entropy(z, y)[0], logits)
    assert rel_error(d, num) < 1e-8
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-15)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, d = softmax_cross_entropy(np.array([[1e4, 0.0], [0.0, 1e4]]), np.array([0, 0]))
    assert loss == pytest.approx(0.5e4)
    assert np.all(np.isfinite(d))


def test_softmax_cross_entropy_does_not_modify_inputs():
    logits, y = np.ones((2, 3)), np.array([0, 2])
    softmax_cross_entropy(logits, y)
    np.testing.assert_array_equal(logits, 1.0)


def test_mse_loss_and_accuracy():
    pred, target = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [3.0, 3.0]])
    loss, d = mse_loss(pred, target)
    assert loss == pytest.approx(5 / 4)
    assert rel_error(d, numerical_gradient(lambda p: mse_loss(p, target)[0], pred)) < 1e-9
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- the Layer base


def test_params_and_grads_come_from_param_names():
    class Scale(Layer):
        param_names = ("a", "c")

        def __init__(self):
            self.a, self.c = np.ones(2), None         # None: skipped (like a missing bias)
            self.da = None

        def forward(self, x):
            self._x = x
            return x * self.a

        def backward(self, dout):
            self.da = (dout * self._x).sum(axis=0)
            return dout * self.a

    layer = Scale()
    assert list(layer.params()) == ["a"] and layer.params()["a"] is layer.a
    with pytest.raises(RuntimeError, match=r"Scale.grads\(\) called before backward"):
        layer.grads()
    layer.forward(np.ones((3, 2)))
    layer.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(layer.grads()["a"], [3.0, 3.0])
    assert Layer().params() == {} and Layer().grads() == {}


def test_linear_params_follow_the_bias_flag():
    with_bias, without = Linear(3, 2, rng=0), Linear(3, 2, bias=False, rng=0)
    assert list(with_bias.params()) == ["W", "b"] and list(without.params()) == ["W"]
    for layer in (with_bias, without):
        layer.forward(np.ones((4, 3)))
        layer.backward(np.ones((4, 2)))
        assert list(layer.grads()) == list(layer.params())
        assert layer.grads()["W"] is layer.dW


def test_sequential_keys_and_modes_recurse_through_children():
    inner = Sequential(Linear(2, 2, rng=1), BatchNorm(2))
    net = Sequential(Linear(3, 2, rng=0), inner, Tanh())
    assert net.children() == net.layers and net.children() is not net.layers
    assert list(net.params()) == ["0.W", "0.b", "1.0.W", "1.0.b", "1.1.gamma", "1.1.beta"]
    assert net.params()["1.1.gamma"] is inner[1].gamma
    net.eval()
    assert not any(layer.training for layer in iter_layers(net))
    net.train()
    assert all(layer.training for layer in iter_layers(net))
    assert [type(la).__name__ for la in iter_layers(net)] == [
        "Sequential", "Linear", "Sequential", "Linear", "BatchNorm", "Tanh"]
    x = np.random.default_rng(0).normal(size=(5, 3))
    net.backward(np.ones_like(net.forward(x)[:, :2]))
    assert list(net.grads()) == list(net.params())


def test_iter_layers_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="model must be a layer"):
        list(iter_layers("net"))


@pytest.mark.parametrize("make, good, bad", [
    (lambda: Linear(3, 2, rng=0), np.ones((4, 3)), np.ones((4, 5))),
    (lambda: BatchNorm(3), np.ones((4, 3)) + np.arange(3), np.ones((4, 5))),
    (lambda: BatchNorm(3).eval(), np.ones((4, 3)), np.ones((4, 5))),
    (ReLU, np.ones((4, 3)), "not numbers"),
    (Sigmoid, np.ones((4, 3)), "not numbers"),
    (Tanh, np.ones((4, 3)), "not numbers"),
])
def test_a_forward_that_raises_leaves_no_stale_cache(make, good, bad):
    layer = make()
    out = layer.forward(good)
    layer.backward(np.ones_like(out))            # works after the good forward
    with pytest.raises((ValueError, TypeError)):
        layer.forward(bad)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones_like(out))        # not the good forward's gradient


def test_in_mode_sets_the_mode_and_restores_each_layers_own_even_after_an_error():
    frozen = BatchNorm(2).eval()
    net = Sequential(Linear(2, 2, rng=0), frozen, Sequential(Tanh()))
    with in_mode(net, True):
        assert all(layer.training for layer in iter_layers(net))
    assert net.training and not frozen.training and net[2][0].training
    with pytest.raises(RuntimeError), in_mode(net, False):
        assert not any(layer.training for layer in iter_layers(net))
        raise RuntimeError
    assert net.training and not frozen.training


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("pred_scale", "target_scale", "dtype"), [
    (1e160, 1.0, np.float64), (1.0, 1e160, np.float64), (1e300, -1e300, np.float64),
    (1e20, 1.0, np.float32)])
def test_mse_loss_refuses_an_overflowing_loss_naming_pred_and_target(pred_scale, target_scale,
                                                                     dtype):
    """(pred - target)² overflowed: the loss came back inf with only a RuntimeWarning."""
    pred = (np.array([1.0, 2.0, 3.0]) * pred_scale).astype(dtype)
    target = (np.array([3.0, 1.0, 2.0]) * target_scale).astype(dtype)
    with pytest.raises(ValueError, match=r"^pred and target are too large \(largest \|pred\| = "
                                         rf".*\): the squared error .* overflows "
                                         rf"{np.dtype(dtype).name}"):
        mse_loss(pred, target)


def test_mse_loss_large_but_representable_is_unchanged():
    loss, dpred = mse_loss(np.array([1e150, 0.0]), np.array([0.0, 0.0]))
    assert loss == 1e150**2 / 2 and dpred.tolist() == [1e150, 0.0]
