"""bnutils.lab.batches: non-i.i.d. batches, batch-mates, predicting in training mode, and
sequence batches; every helper leaves the model (running statistics, mode) as it was."""

import numpy as np
import pytest

from bnutils.batch_renorm import BatchRenorm
from bnutils.lab.batches import (
    active_per_step,
    batch_mode_accuracy,
    class_sorted_batches,
    train_mode_spread,
    train_on_batches,
)
from bnutils.lab.comparisons import swap_norm
from bnutils.models import make_mlp
from bnutils.training import minibatches, train

RNG = np.random.default_rng(5)
X_SMALL = RNG.normal(size=(48, 4))
Y_SMALL = (X_SMALL[:, 0] + X_SMALL[:, 1] > 0).astype(int) + (X_SMALL[:, 2] > 1)


def _bn_net(seed=0, sizes=(4, 8, 8, 3)):
    return make_mlp(list(sizes), "relu", norm="bn", rng=seed)


# ----------------------------------------------------------------------------- non-i.i.d. batches
def test_class_sorted_batches_hold_one_class_each():
    y = np.repeat(np.arange(4), 12)[RNG.permutation(48)]
    batches = class_sorted_batches(y, 6, num_batches=20, seed=1)
    assert len(batches) == 20
    assert all(len(np.unique(y[b])) == 1 for b in batches)
    assert sorted(np.concatenate(batches[:8]).tolist()) == list(range(48))   # one pass = all samples
    with pytest.raises(ValueError, match="batch_size"):
        class_sorted_batches(y, 0, 3)
    with pytest.raises(ValueError, match="batch_size"):
        class_sorted_batches(y, 49, 3)
    with pytest.raises(TypeError, match="batch_size"):
        class_sorted_batches(y, 6.0, 3)
    with pytest.raises(ValueError, match="num_batches"):
        class_sorted_batches(y, 6, 0)


def test_train_on_batches_is_train_with_a_chosen_batch_order():
    rng = np.random.default_rng(3)
    batches = [b for _ in range(2) for b in minibatches(48, 8, rng)]
    a, b = _bn_net(), _bn_net()
    losses = train_on_batches(a, X_SMALL, Y_SMALL, batches, lr=0.1)
    hist = train(b, X_SMALL, Y_SMALL, lr=0.1, steps=12, batch_size=8, seed=3)
    # the same batches, though train() shuffles the rows inside each: equal up to rounding
    np.testing.assert_allclose(losses, hist.loss, rtol=1e-10)
    for p, q in zip(a.params().values(), b.params().values()):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- train/test discrepancy
def test_train_mode_spread_shrinks_with_the_batch_and_restores_the_model():
    net = _bn_net()
    train(net, X_SMALL, Y_SMALL, lr=0.1, steps=20, batch_size=8)
    net.eval()
    running = net.layers[1].running_var.copy()
    res = train_mode_spread(net, X_SMALL, sample=3, batch_sizes=(2, 8, 32), num_batches=50)
    np.testing.assert_array_equal(net.layers[1].running_var, running)
    assert not net.training
    net.forward(X_SMALL[3:4])
    np.testing.assert_allclose(res["eval"], net.outputs[1][0])
    spreads = [res["train"][m].std(axis=0).mean() for m in (2, 8, 32)]
    assert spreads[0] > spreads[1] > spreads[2]
    bn = net.layers[1]
    x_hat = (res["train"][2] - bn.beta) / bn.gamma                # a batch of two: x_hat = ±1
    assert np.all(np.abs(x_hat) <= 1.0) and np.median(np.abs(x_hat)) > 0.999
    with pytest.raises(ValueError, match="batch_sizes"):
        train_mode_spread(net, X_SMALL, batch_sizes=(1, 4))
    with pytest.raises(ValueError, match="no BatchNorm"):
        train_mode_spread(make_mlp([4, 3]), X_SMALL)
    with pytest.raises(ValueError, match="sample"):
        train_mode_spread(net, X_SMALL, sample=48)


def test_train_mode_spread_finds_and_restores_batch_renorm():
    net = swap_norm(_bn_net(), BatchRenorm)
    train(net, X_SMALL, Y_SMALL, lr=0.1, steps=10, batch_size=8)
    running = [net[i].running_mean.copy() for i in (1, 4)]
    res = train_mode_spread(net, X_SMALL, batch_sizes=(2, 16), num_batches=20)
    for i, value in zip((1, 4), running):
        np.testing.assert_array_equal(net[i].running_mean, value)
    assert res["train"][2].shape == (20, 8)                       # the first Batch Renorm layer
    assert net.training


def test_batch_mode_accuracy_depends_on_the_batching_and_restores_the_model():
    net = _bn_net()
    train(net, X_SMALL, Y_SMALL, lr=0.1, steps=30, batch_size=8)
    net.eval()
    running = net.layers[1].running_mean.copy()
    by_class = np.argsort(Y_SMALL, kind="stable")
    mixed = batch_mode_accuracy(net, X_SMALL, Y_SMALL, 16)
    sorted_acc = batch_mode_accuracy(net, X_SMALL, Y_SMALL, 16, order=by_class)
    assert mixed != sorted_acc
    np.testing.assert_array_equal(net.layers[1].running_mean, running)
    assert not net.training
    plain = make_mlp([4, 8, 3])                        # no BN: the batching does not matter
    assert batch_mode_accuracy(plain, X_SMALL, Y_SMALL, 16) == \
        batch_mode_accuracy(plain, X_SMALL, Y_SMALL, 16, order=by_class)
    with pytest.raises(ValueError, match="permutation"):
        batch_mode_accuracy(net, X_SMALL, Y_SMALL, 16, order=np.zeros(48, dtype=int))
    with pytest.raises(ValueError, match="batch_size"):
        batch_mode_accuracy(net, X_SMALL, Y_SMALL, 1)
    with pytest.raises(ValueError, match="batch_size"):
        batch_mode_accuracy(net, X_SMALL, Y_SMALL, 49)


def test_batch_mode_accuracy_restores_batch_renorm_statistics():
    net = swap_norm(_bn_net(), BatchRenorm)
    before = net[1].running_var.copy()
    batch_mode_accuracy(net, X_SMALL + 2.0, Y_SMALL, 8)
    np.testing.assert_array_equal(net[1].running_var, before)


def test_active_per_step():
    assert active_per_step([3, 1, 2, 5]).tolist() == [4, 3, 2, 1, 1]
    assert active_per_step([2, 2], max_steps=4).tolist() == [2, 2, 0, 0]
    with pytest.raises(ValueError, match="integers ≥ 1"):
        active_per_step([0, 3])
    with pytest.raises(ValueError, match="integers ≥ 1"):
        active_per_step([1.5, 2.0])
    with pytest.raises(ValueError, match="max_steps"):
        active_per_step([2, 2], max_steps=0)


# ----------------------------------------------------------------------------- bad input (issue 17)
def test_train_on_batches_checks_every_batch_and_all_of_X_before_the_first_step():
    net = _bn_net()
    W0 = net[0].W.copy()
    good, outside = np.arange(8), np.arange(40, 48)
    X_nan = X_SMALL.copy()
    X_nan[45, 2] = np.nan                   # in no batch: train() alone would never see it
    with pytest.raises(ValueError, match="X contains 1 non-finite"):
        train_on_batches(net, X_nan, Y_SMALL, [good], lr=0.1)
    for bad, match in [(np.arange(8.0), "integer row indices"),     # float indices
                       (np.array([], dtype=int), "non-empty"),
                       (np.array([0, 48]), r"row indices in 0\.\.47, got values from 0 to 48")]:
        with pytest.raises(ValueError, match=r"batches\[1\] must .*" + match):
            train_on_batches(net, X_SMALL, Y_SMALL, [good, bad], lr=0.1)
    with pytest.raises(TypeError, match="batches must be an iterable of index arrays"):
        train_on_batches(net, X_SMALL, Y_SMALL, "0123", lr=0.1)
    with pytest.raises(ValueError, match="y must hold 48 integer class labels"):
        train_on_batches(net, X_SMALL, Y_SMALL[:40], [good], lr=0.1)
    np.testing.assert_array_equal(net[0].W, W0)          # no step was taken by any of them
    assert len(train_on_batches(net, X_SMALL, Y_SMALL, [good, outside], lr=0.1)) == 2


def test_batch_helpers_refuse_labels_that_are_not_integer_class_labels():
    net = _bn_net()
    for bad in (Y_SMALL.astype(float), Y_SMALL.astype(str), Y_SMALL[:, None], Y_SMALL[:0]):
        with pytest.raises(ValueError, match="y must"):
            class_sorted_batches(bad, 4, 2)
        with pytest.raises(ValueError, match="y must"):
            batch_mode_accuracy(net, X_SMALL, bad, 16)


def test_train_mode_spread_refuses_nan_in_x_and_a_string_of_batch_sizes():
    net = _bn_net()
    X_inf = X_SMALL.copy()
    X_inf[7, 0] = np.inf                    # a batch-mate that may or may not be drawn
    with pytest.raises(ValueError, match="X contains 1 non-finite"):
        train_mode_spread(net, X_inf, batch_sizes=(2, 4), num_batches=3)
    with pytest.raises(TypeError, match="batch_sizes must be a sequence"):
        train_mode_spread(net, X_SMALL, batch_sizes="24", num_batches=3)
