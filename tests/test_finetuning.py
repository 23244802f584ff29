"""bnutils.lab.finetuning: frozen weights are not frozen statistics; FrozenBatchNorm; AdaBN."""

import copy

import numpy as np
import pytest

from bnutils.batchnorm import BatchNorm
from bnutils.gradcheck import numerical_gradient, rel_error
from bnutils.lab.finetuning import FrozenBatchNorm, adapt_batchnorm, freeze_batchnorm, train_layers
from bnutils.layers import Linear, Sequential
from bnutils.models import make_mlp
from bnutils.training import train

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(64, 5)), RNG.integers(0, 3, size=64)


def _trained():
    model = make_mlp([5, 8, 8, 3], norm="bn", rng=0)
    train(model, X, Y, lr=0.1, steps=20, batch_size=16)
    return model


def test_frozen_bn_is_eval_mode_bn_in_every_mode():
    bn = _trained()[1]
    frozen = FrozenBatchNorm.from_batchnorm(bn)
    x = RNG.normal(size=(6, 8))
    expected = copy.deepcopy(bn).eval().forward(x)
    np.testing.assert_allclose(frozen.train().forward(x), expected)
    np.testing.assert_allclose(frozen.eval().forward(x), expected)
    assert frozen.params() == {} and frozen.running_stat_names == ()


def test_frozen_bn_backward_is_the_gradient_of_its_forward():
    frozen = FrozenBatchNorm.from_batchnorm(_trained()[1])
    x, dout = RNG.normal(size=(4, 8)), RNG.normal(size=(4, 8))
    frozen.forward(x)
    dx = frozen.backward(dout)
    num = numerical_gradient(lambda v: np.sum(frozen.forward(v) * dout), x)
    assert rel_error(dx, num) < 1e-7


def test_freeze_batchnorm_copies_and_replaces_every_bn():
    model = _trained()
    frozen = freeze_batchnorm(model)
    assert [type(layer).__name__ for layer in frozen.layers].count("FrozenBatchNorm") == 2
    assert all(isinstance(layer, BatchNorm) for layer in (model[1], model[4]))
    np.testing.assert_allclose(frozen.forward(X[:7]), copy.deepcopy(model).eval().forward(X[:7]))


def test_train_layers_updates_only_the_listed_layers_but_not_the_statistics():
    model = _trained().train()
    weights = {k: v.copy() for k, v in model.params().items()}
    stats = model[1].running_mean.copy()
    losses = train_layers(model, [len(model) - 1], X, Y, lr=0.1, steps=6, batch_size=8)
    assert len(losses) == 6
    changed = {k for k, v in model.params().items() if not np.array_equal(v, weights[k])}
    assert changed == {f"{len(model) - 1}.W", f"{len(model) - 1}.b"}
    assert not np.array_equal(model[1].running_mean, stats)       # the bug: statistics moved
    frozen = freeze_batchnorm(_trained()).train()
    before = frozen[1].running_mean.copy()
    train_layers(frozen, [len(frozen) - 1], X, Y, lr=0.1, steps=6, batch_size=2)
    assert np.array_equal(frozen[1].running_mean, before)           # the fix


def test_train_layers_refuses_bad_positions():
    with pytest.raises(ValueError, match="trainable"):
        train_layers(_trained(), [99], X, Y, lr=0.1, steps=1)


def test_adapt_batchnorm_sets_each_layer_from_the_adapted_layers_before_it():
    model = _trained()
    X_target = 3.0 * X + 2.0
    adapted = adapt_batchnorm(model, X_target)
    h = X_target @ adapted[0].W + adapted[0].b
    np.testing.assert_allclose(adapted[1].running_mean, h.mean(axis=0))
    np.testing.assert_allclose(adapted[1].running_var, h.var(axis=0, ddof=1))
    adapted.forward(X_target)
    z = adapted.outputs[3]                       # the second BN's input, through adapted layer 1
    np.testing.assert_allclose(adapted[4].running_mean, z.mean(axis=0))
    assert not np.allclose(model[1].running_mean, adapted[1].running_mean)   # a copy
    assert not adapted.training


def test_adabn_undoes_an_affine_input_shift_exactly_at_the_first_bn():
    model = Sequential(Linear(5, 4, rng=1), BatchNorm(4))
    source = adapt_batchnorm(model, X)
    target = adapt_batchnorm(model, 0.5 * X + 3.0)
    np.testing.assert_allclose(target.forward(0.5 * X + 3.0), source.forward(X), rtol=1e-4, atol=1e-4)


def test_adapt_batchnorm_refuses_bad_input():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adapt_batchnorm(Sequential(Linear(5, 2)), X)
    with pytest.raises(ValueError, match="X_target"):
        adapt_batchnorm(_trained(), X[:1])
    with pytest.raises(ValueError, match=r"X_target must have shape \(N, D\) .* D ≥ 1"):
        adapt_batchnorm(_trained(), X[:, :0])      # before: the first Linear's message
    with pytest.raises(TypeError, match="Sequential"):
        adapt_batchnorm(BatchNorm(3), X)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("scale", "dtype"), [(1e160, np.float64), (1e20, np.float32)])
def test_adapt_batchnorm_refuses_an_X_target_whose_variance_overflows(scale, dtype):
    """The variance overflowed: running_var became inf and the layer's output silently beta."""
    net = Sequential(BatchNorm(3))
    X = (np.random.default_rng(0).normal(size=(8, 3)) * scale).astype(dtype)
    with pytest.raises(ValueError, match=r"^X_target is too large .*the variance of the "
                                         rf"activations arriving at layer 0 \(BatchNorm\) "
                                         rf"overflows {np.dtype(dtype).name}"):
        adapt_batchnorm(net, X)


@pytest.mark.filterwarnings("error")
def test_adapt_batchnorm_refuses_an_X_target_that_overflows_a_layer():
    net = Sequential(Linear(2, 2, rng=0), BatchNorm(2))
    net[0].W = np.full((2, 2), 1e300)
    with pytest.raises(ValueError, match=r"^X_target is too large .*the output of layer 0 "
                                         r"\(Linear\) overflows float64"):
        adapt_batchnorm(net, np.full((4, 2), 1e10) * np.arange(1, 5)[:, None])
