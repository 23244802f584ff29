"""bnutils.scale_invariance: the effective learning rate of a layer followed by BN, weight decay."""

import numpy as np
import pytest

from bnutils.batchnorm import BatchNorm
from bnutils.layers import Linear, ReLU, Sequential, softmax_cross_entropy
from bnutils.models import make_mlp
from bnutils.scale_invariance import (
    WeightDecay,
    WeightNormRecorder,
    effective_learning_rates,
    scale_invariant_layers,
)
from bnutils.training import train


def _grad(net, x, y, scale, W0):
    net[0].W = W0 * scale
    loss, dlogits = softmax_cross_entropy(net.forward(x), y)
    net.backward(dlogits)
    return loss, net[0].dW.copy()


def test_a_layer_before_bn_has_gradients_orthogonal_to_w_and_shrinking_like_one_over_a():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)), rng.integers(0, 3, size=32)
    net = Sequential(Linear(6, 5, rng=1), BatchNorm(5), ReLU(), Linear(5, 3, rng=2))
    W0 = net[0].W.copy()
    loss1, g1 = _grad(net, x, y, 1.0, W0)
    loss7, g7 = _grad(net, x, y, 7.0, W0)
    assert loss7 == pytest.approx(loss1, rel=1e-4)
    np.testing.assert_allclose(g7 * 7, g1, rtol=1e-3, atol=1e-9)
    cos = np.sum(g1 * W0, axis=0) / (np.linalg.norm(g1, axis=0) * np.linalg.norm(W0, axis=0))
    assert np.abs(cos).max() < 1e-3                      # orthogonal up to eps's effect
    # the property fails without BN: then scaling W changes the loss
    plain = Sequential(Linear(6, 5, rng=1), ReLU(), Linear(5, 3, rng=2))
    assert abs(_grad(plain, x, y, 7.0, W0)[0] - _grad(plain, x, y, 1.0, W0)[0]) > 0.1


def test_effective_learning_rates_per_column():
    W = np.array([[3.0, 0.0, 1.0], [4.0, 2.0, 1.0]])
    np.testing.assert_allclose(effective_learning_rates(W, 0.5), [0.5 / 25, 0.5 / 4, 0.5 / 2])
    with pytest.raises(ValueError, match="W"):
        effective_learning_rates(np.ones(3), 0.1)
    with pytest.raises(ValueError, match="lr"):
        effective_learning_rates(W, -1.0)


def test_scale_invariant_layers_are_the_linear_layers_before_bn():
    assert scale_invariant_layers(make_mlp([4, 8, 8, 3], norm="bn")) == [0, 3]
    assert scale_invariant_layers(make_mlp([4, 8, 3])) == []
    with pytest.raises(TypeError, match="Sequential"):
        scale_invariant_layers(Linear(2, 2))


def test_norms_grow_without_decay_and_shrink_with_it():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(120, 4)), rng.integers(0, 3, size=120)
    norms = {}
    for lam in (0.0, 0.5):
        model = make_mlp([4, 16, 3], norm="bn", init=0.05, rng=0)
        rec = WeightNormRecorder([0], every=5)
        rec(0, model)
        decay = WeightDecay(0.5, lam)

        def callback(step, m, rec=rec, decay=decay):
            decay(step, m)
            rec(step, m)

        train(model, X, y, lr=0.5, steps=40, batch_size=30, callback=callback)
        norms[lam] = rec.norms[:, 0]
        assert rec.steps == list(range(0, 41, 5))
    assert np.all(np.diff(norms[0.0]) > 0)               # orthogonal steps only add length
    assert norms[0.5][-1] < norms[0.0][-1]


def test_weight_decay_shrinks_every_linear_w_only():
    model = make_mlp([3, 4, 2], norm="bn", rng=0)
    before = {k: v.copy() for k, v in model.params().items()}
    WeightDecay(lr=0.1, weight_decay=1.0)(1, model)
    after = model.params()
    for key in before:
        factor = 0.9 if key.endswith(".W") else 1.0
        np.testing.assert_allclose(after[key], factor * before[key])
    with pytest.raises(ValueError, match="weight_decay"):
        WeightDecay(0.1, -1.0)
    with pytest.raises(ValueError, match="lr \\* weight_decay"):
        WeightDecay(1.0, 1.0)


def test_recorder_refuses_a_non_linear_layer():
    rec = WeightNormRecorder([1])
    with pytest.raises(TypeError, match="not a Linear"):
        rec(0, make_mlp([3, 4, 2], norm="bn"))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("scale", "dtype"), [(1e100, np.float64), (1e160, np.float64),
                                              (1e20, np.float32)])
def test_effective_learning_rates_of_a_huge_W_are_computed_right(scale, dtype):
    """‖w‖² overflowed: the rates came back 0 with a RuntimeWarning; lr / ‖w‖² is computed
    on W / 2**k instead (to the dtype's precision, subnormals included)."""
    W = np.array([[3.0, 0.5], [4.0, 1.0]])
    rates = effective_learning_rates((W * scale).astype(dtype), lr=0.1)
    expected = np.longdouble(0.1) / np.sum(np.longdouble(W * scale) ** 2, axis=0)
    assert rates.dtype == dtype
    np.testing.assert_allclose(rates.astype(np.longdouble), expected,
                               rtol=10 * np.finfo(dtype).eps, atol=np.finfo(dtype).smallest_subnormal)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("scale", "dtype"), [(1e-155, np.float64), (1e-200, np.float64),
                                              (1e-20, np.float32)])
def test_effective_learning_rates_refuse_a_W_too_small(scale, dtype):
    """lr / ‖w‖² beyond the dtype: it was inf (divide by zero) with a RuntimeWarning."""
    W = (np.array([[3.0, 0.5], [4.0, 1.0]]) * scale).astype(dtype)
    with pytest.raises(ValueError, match=rf"^W is too small .*overflows {np.dtype(dtype).name}"):
        effective_learning_rates(W, lr=0.1)


@pytest.mark.filterwarnings("error")
def test_effective_learning_rates_refuse_a_zero_column():
    with pytest.raises(ValueError, match=r"columns \[1\] are all zeros"):
        effective_learning_rates(np.array([[1.0, 0.0], [2.0, 0.0]]), lr=0.1)


def test_effective_learning_rates_tiny_but_representable():
    """Squares below the smallest normal number (subnormal) lose digits: rescaled too."""
    W = np.array([[3.0], [4.0]]) * 1e-160
    rates = effective_learning_rates(W, lr=1e-20)
    np.testing.assert_allclose(rates, 1e-20 / 25 / 1e-160 / 1e-160, rtol=1e-14)
