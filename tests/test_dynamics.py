"""bnutils.lab.dynamics: the recorders against hand-computed values, and clear errors on bad input."""

import copy

import numpy as np
import pytest

from bnutils.batchnorm import BatchNorm
from bnutils.lab.dynamics import (
    forward_backward,
    gradient_shift,
    histogram_image,
    trace_gradient_shift,
    trace_training,
    update_to_data_ratio,
)
from bnutils.layers import Linear, Sequential, Tanh, softmax_cross_entropy
from bnutils.models import make_mlp
from bnutils.training import train

RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 5))
Y = RNG.integers(0, 3, 40)


def test_update_to_data_ratio_by_hand():
    W = np.array([[3.0, 0.0], [0.0, 4.0]])             # ||W|| = 5
    dW = np.array([[0.0, 0.5], [0.0, 0.0]])            # ||lr dW|| = 0.1 * 0.5 = 0.05
    assert update_to_data_ratio(W, dW, lr=0.1) == pytest.approx(np.log10(0.01))
    assert update_to_data_ratio(W, np.zeros_like(W), lr=0.1) == -np.inf


@pytest.mark.parametrize("kwargs, match", [
    ({"W": np.ones((2, 2)), "dW": np.ones((2, 3)), "lr": 0.1}, "same shape"),
    ({"W": np.zeros((2, 2)), "dW": np.ones((2, 2)), "lr": 0.1}, "all zeros"),
    ({"W": np.ones((2, 2)), "dW": np.ones((2, 2)), "lr": -1.0}, "lr"),
    ({"W": np.ones((2, 2)), "dW": np.ones((2, 2)), "lr": float("nan")}, "lr"),
])
def test_update_to_data_ratio_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        update_to_data_ratio(**kwargs)


def test_histogram_image_by_hand():
    samples = np.array([[0.1, 0.2, 0.9, 5.0], [-1.0, 0.6, 0.7, 0.8]])
    image = histogram_image(samples, edges=[0.0, 0.5, 1.0])
    np.testing.assert_allclose(image, [[0.5, 0.25], [0.0, 0.75]])
    with pytest.raises(ValueError, match="increasing"):
        histogram_image(samples, edges=[1.0, 0.0])
    with pytest.raises(ValueError, match="matrix"):
        histogram_image(np.ones(3), edges=[0.0, 1.0])


def _trace_as_train_trains(trace, model, run, **recording):
    """Run ``trace(model, X, Y, **run, **recording)`` and ``train`` on a copy of the model
    with the same ``run`` arguments; both must leave the same parameters. Returns the trace."""
    twin = copy.deepcopy(model)
    result = trace(model, X, Y, **run, **recording)
    train(twin, X, Y, **run)
    for a, b in zip(model.params().values(), twin.params().values()):
        np.testing.assert_allclose(a, b)
    return result


def test_trace_training_ratios_and_records_by_hand():
    """The recorded ratio is the one computed from W and dW before the step; the model ends
    exactly as bnutils.training.train leaves it (same batches, same steps)."""
    model = make_mlp([5, 6, 6, 3], "tanh", rng=1)
    trace = _trace_as_train_trains(trace_training, model, dict(lr=0.2, steps=7, batch_size=10, seed=3),
                                   record_every=3)
    assert trace.linear == [0, 2, 4]
    assert trace.ratios.shape == (7, 3) and trace.loss.shape == (7,)
    assert trace.record_steps.tolist() == [1, 4, 7]
    assert sorted(trace.activations) == [1, 3]
    assert trace.activations[1].shape == (3, 10 * 6)

    # step 1 by hand: the first batch of train's shuffling, the fresh model's gradient
    fresh = make_mlp([5, 6, 6, 3], "tanh", rng=1)
    idx = np.random.default_rng(3).permutation(40)[:10]
    out1 = np.tanh(X[idx] @ fresh[0].W + fresh[0].b)
    loss, dlogits = softmax_cross_entropy(fresh.forward(X[idx]), Y[idx])
    fresh.backward(dlogits)
    expected = np.log10(0.2 * np.linalg.norm(fresh[4].dW) / np.linalg.norm(fresh[4].W))
    assert trace.ratios[0, 2] == pytest.approx(expected)
    assert trace.loss[0] == pytest.approx(loss)
    np.testing.assert_allclose(trace.activations[1][0], out1.ravel())
    # dL/d(tanh output of layer 1) = dL/d(pre-activation of layer 2) @ W2.T
    dpre2 = (dlogits @ fresh[4].W.T) * (1 - fresh.outputs[3] ** 2)
    np.testing.assert_allclose(trace.gradients[1][0], (dpre2 @ fresh[2].W.T).ravel())


def test_trace_training_bad_input():
    model = make_mlp([5, 6, 3], "tanh", rng=1)
    with pytest.raises(TypeError, match="Sequential"):
        trace_training(Linear(5, 3), X, Y, lr=0.1, steps=2)
    with pytest.raises(ValueError, match="steps"):
        trace_training(model, X, Y, lr=0.1, steps=0)
    with pytest.raises(ValueError, match="y must have shape"):
        trace_training(model, X, Y[:5], lr=0.1, steps=2)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        trace_training(model, bad, Y, lr=0.1, steps=2)
    with pytest.raises(ValueError, match="watch"):
        forward_backward(model, X, Y, watch=[9])


def test_trace_training_stops_on_divergence():
    model = make_mlp([5, 6, 3], "relu", rng=1)
    trace = trace_training(model, X * 1e3, Y, lr=1e6, steps=50, batch_size=10)
    assert trace.diverged and len(trace.loss) < 50 and np.all(np.isfinite(trace.loss))


def test_gradient_shift_by_hand():
    """Two Linear layers: G' is layer 2's gradient after layer 1 alone took its step."""
    net = Sequential(Linear(5, 4, rng=0), Tanh(), Linear(4, 3, rng=1))
    before = {k: v.copy() for k, v in net.params().items()}
    shift = gradient_shift(net, X, Y, lr=0.5)
    for k, v in net.params().items():                  # the model itself is not touched
        np.testing.assert_array_equal(v, before[k])
    _, dlogits = softmax_cross_entropy(net.forward(X), Y)
    net.backward(dlogits)
    g = net[2].dW.copy()
    moved = copy.deepcopy(net)
    moved[0].W -= 0.5 * net[0].dW
    moved[0].b -= 0.5 * net[0].db
    _, d2 = softmax_cross_entropy(moved.forward(X), Y)
    moved.backward(d2)
    g2 = moved[2].dW
    assert shift["layers"] == [2]
    assert shift["l2"][0] == pytest.approx(np.linalg.norm(g - g2))
    assert shift["relative"][0] == pytest.approx(np.linalg.norm(g - g2) / np.linalg.norm(g))
    assert shift["cosine"][0] == pytest.approx(np.sum(g * g2) / np.linalg.norm(g) / np.linalg.norm(g2))
    assert shift["l2"][0] > 0


def test_gradient_shift_leaves_bn_running_stats():
    net = make_mlp([5, 6, 6, 3], "relu", norm="bn", rng=2)
    bn = [layer for layer in net.layers if isinstance(layer, BatchNorm)][0]
    mean = bn.running_mean.copy()
    shift = gradient_shift(net, X, Y, lr=0.1)
    np.testing.assert_array_equal(bn.running_mean, mean)
    assert shift["layers"] == [3, 6] and np.all((shift["cosine"] > -1) & (shift["cosine"] <= 1 + 1e-12))


def test_gradient_shift_bad_input():
    with pytest.raises(ValueError, match="two Linear"):
        gradient_shift(Sequential(Linear(5, 3, rng=0)), X, Y, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        gradient_shift(make_mlp([5, 4, 3], rng=0), X, Y, lr=0)


def test_trace_gradient_shift_trains_like_train():
    model = make_mlp([5, 6, 6, 3], "relu", rng=1)
    trace = _trace_as_train_trains(trace_gradient_shift, model,
                                   dict(lr=0.1, steps=9, batch_size=10, seed=2), every=4)
    assert trace.steps.tolist() == [1, 5, 9] and trace.l2.shape == (3, 2) and trace.loss.shape == (9,)
    with pytest.raises(ValueError, match="every"):
        trace_gradient_shift(model, X, Y, lr=0.1, steps=2, every=0)
