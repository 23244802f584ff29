"""bnutils.models: the LayerNorm/GroupNorm layers and the make_mlp builder."""

import numpy as np
import pytest

from bnutils import BatchNorm, Linear, ReLU, Sigmoid, numerical_gradient, rel_error
from bnutils.models import GroupNorm, LayerNorm, make_mlp


@pytest.mark.parametrize("layer, shape", [
    (LayerNorm(5), (4, 5)),
    (GroupNorm(6, num_groups=2), (4, 6)),   # 3 values per group (2 would always give ±1)
    (GroupNorm(4, num_groups=2), (3, 4, 2, 3)),
])
def test_norm_layers_match_numerical_gradients(layer, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    layer.gamma[:] = rng.normal(size=layer.gamma.shape)
    layer.beta[:] = rng.normal(size=layer.beta.shape)
    dout = rng.normal(size=shape)
    layer.forward(x)
    dx = layer.backward(dout)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(layer.forward(v) * dout), x)) < 1e-7
    gamma = layer.gamma.copy()

    def loss_of_gamma(g):
        layer.gamma[:] = g
        return np.sum(layer.forward(x) * dout)

    dgamma_num = numerical_gradient(loss_of_gamma, gamma)
    layer.gamma[:] = gamma
    layer.forward(x)
    layer.backward(dout)
    assert rel_error(layer.grads()["gamma"], dgamma_num) < 1e-7
    assert np.allclose(layer.grads()["beta"], dout.sum(axis=(0,) if len(shape) == 2 else (0, 2, 3)))


def test_norm_layers_work_on_a_single_sample_and_ignore_the_mode():
    x = np.array([[1.0, 2.0, 4.0, 8.0]])
    for layer in (LayerNorm(4), GroupNorm(4, 2)):
        train_out = layer.train().forward(x)
        assert np.array_equal(train_out, layer.eval().forward(x))


@pytest.mark.parametrize("make, message", [
    (lambda: LayerNorm(0), "num_features must be a positive integer"),
    (lambda: GroupNorm(6, 4), "num_groups must divide num_channels=6"),
    (lambda: LayerNorm(3, eps=0), "eps must be > 0"),
    (lambda: LayerNorm(3).forward(np.ones((2, 4))), r"expects x of shape \(N, 3\); got \(2, 4\)"),
    (lambda: GroupNorm(4, 2).forward(np.ones((2, 3))), r"expects x with 4 channels on axis 1; got \(2, 3\)"),
    (lambda: LayerNorm(3).grads(), "grads\\(\\) called before backward"),
    (lambda: GroupNorm(4, 2).backward(np.ones((1, 4))), "backward called before forward"),
])
def test_norm_layers_refuse_bad_input(make, message):
    with pytest.raises((ValueError, RuntimeError), match=message):
        make()


def test_make_mlp_builds_linear_norm_activation_blocks():
    net = make_mlp([3, 8, 8, 2], activation="sigmoid", norm="bn", bias=False)
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [Linear, BatchNorm, Sigmoid, Linear, BatchNorm, Sigmoid, Linear]
    assert net[0].b is None and net[3].b is None and net[-1].b is not None
    after = make_mlp([3, 8, 2], norm="ln", norm_position="after")
    assert [type(layer) for layer in after.layers] == [Linear, ReLU, LayerNorm, Linear]
    assert make_mlp([3, 2]).layers[0].W.shape == (3, 2)


def test_make_mlp_same_seed_same_weights_with_or_without_norm():
    plain, with_bn = make_mlp([4, 6, 3], rng=7), make_mlp([4, 6, 3], norm="bn", rng=7)
    assert np.array_equal(plain[0].W, with_bn[0].W)
    assert np.array_equal(plain[-1].W, with_bn[-1].W)


def test_make_mlp_init_sets_the_weight_scale():
    net = make_mlp([400, 400, 2], init=0.5, rng=0)
    assert net[0].W.std() == pytest.approx(0.5, rel=0.02)
    assert make_mlp([400, 400, 2], init="he", rng=0)[0].W.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)


def test_make_mlp_gradient_of_a_whole_network():
    rng = np.random.default_rng(1)
    net = make_mlp([3, 5, 2], activation="tanh", norm="gn", num_groups=5, rng=0)
    x, dout = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    net.forward(x)
    dx = net.backward(dout)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(net.forward(v) * dout), x)) < 1e-7


@pytest.mark.parametrize("kwargs, message", [
    (dict(sizes=[3]), "at least"),
    (dict(sizes=[3, 0, 2]), "positive integer"),
    (dict(sizes=[3, 2], activation="gelu"), "activation must be one of"),
    (dict(sizes=[3, 2], norm="batch"), "norm must be None"),
    (dict(sizes=[3, 4, 2], norm="bn", norm_position="inside"), "norm_position"),
    (dict(sizes=[3, 6, 2], norm="gn", num_groups=4), "num_groups must divide"),
])
def test_make_mlp_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_mlp(**kwargs)
