"""bnutils.inference: running averages, side-effect-free train-mode forward, precise BN, folding."""

import numpy as np
import pytest

from bnutils import batchnorm_forward, update_running_stats
from bnutils.batchnorm import BatchNorm
from bnutils.inference import (
    batch_stats_forward,
    batchnorm_layers,
    fold_sequential,
    frozen_running_stats,
    recalibrate_batchnorm,
    restore_running_stats,
    running_average,
    running_stat_layers,
    save_running_stats,
)
from bnutils.lab.inference_runs import moving_vs_precise
from bnutils.layers import Layer, Linear, ReLU, Sequential
from bnutils.models import make_mlp
from bnutils.training import train


def test_running_average_pytorch_and_keras_conventions_agree_for_complementary_momenta():
    v = np.random.default_rng(0).normal(3.0, 1.0, size=50)
    a = running_average(v, 0.1, init=0.0, convention="pytorch")
    b = running_average(v, 0.9, init=0.0, convention="keras")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)
    # the two *default* values are not the same smoothing
    c = running_average(v, 0.99, init=0.0, convention="keras")
    assert abs(c[-1] - a[-1]) > 0.5


def test_running_average_closed_form_for_a_constant_stream():
    r = running_average(np.full(30, 5.0), 0.2, init=1.0)
    t = np.arange(1, 31)
    np.testing.assert_allclose(r, 5.0 + (1.0 - 5.0) * 0.8**t, rtol=1e-12)


def test_running_average_matches_update_running_stats():
    rng = np.random.default_rng(1)
    rm, rv = np.zeros(3), np.ones(3)
    means, vars_ = [], []
    for _ in range(5):
        x = rng.normal(2.0, 3.0, size=(8, 3))
        _, cache = batchnorm_forward(x, np.ones(3), np.zeros(3))
        rm, rv = update_running_stats(rm, rv, cache, 0.1)
        means.append(x.mean(0))
        vars_.append(x.var(0, ddof=1))
    np.testing.assert_allclose(running_average(np.array(means), 0.1, init=0.0)[-1], rm)
    np.testing.assert_allclose(running_average(np.array(vars_), 0.1, init=1.0)[-1], rv)


@pytest.mark.parametrize("kwargs, err", [
    (dict(values=[], momentum=0.1), ValueError),
    (dict(values=[1.0], momentum=1.5), ValueError),
    (dict(values=[1.0], momentum=0.1, convention="tf"), ValueError),
    (dict(values=["a"], momentum=0.1), TypeError),
])
def test_running_average_rejects_bad_input(kwargs, err):
    with pytest.raises(err):
        running_average(**kwargs)


def _net(seed=0):
    return make_mlp([5, 6, 4, 3], "relu", norm="bn", rng=seed)


def test_batchnorm_layers_and_type_errors():
    net = _net()
    assert len(batchnorm_layers(net)) == 2
    bn = BatchNorm(2)
    assert batchnorm_layers(bn) == [bn]
    with pytest.raises(TypeError, match="Sequential"):
        batchnorm_layers(np.zeros(3))


def test_frozen_running_stats_restores_even_after_an_error():
    net = _net()
    before = [b.running_mean.copy() for b in batchnorm_layers(net)]
    with pytest.raises(RuntimeError), frozen_running_stats(net):
        net.forward(np.random.default_rng(0).normal(size=(4, 5)))
        raise RuntimeError
    for b, m in zip(batchnorm_layers(net), before):
        np.testing.assert_array_equal(b.running_mean, m)


def test_batch_stats_forward_uses_batch_statistics_without_side_effects():
    net = _net().eval()
    x = np.random.default_rng(2).normal(5.0, 2.0, size=(10, 5))
    saved = [(b.running_mean.copy(), b.running_var.copy()) for b in batchnorm_layers(net)]
    out = batch_stats_forward(net, x)
    assert not net.training                     # mode restored
    for b, (m, v) in zip(batchnorm_layers(net), saved):
        np.testing.assert_array_equal(b.running_mean, m)
        np.testing.assert_array_equal(b.running_var, v)
    bn_out = net.outputs[1]                      # the first BN's output, normalized over x
    np.testing.assert_allclose(bn_out.mean(0), 0.0, atol=1e-12)
    # the same numbers as a real training-mode forward
    np.testing.assert_allclose(out, _net().train().forward(x), rtol=1e-12)


def test_recalibrate_averages_batch_statistics_and_leaves_model_alone():
    net = Sequential(BatchNorm(2))
    X = np.random.default_rng(3).normal([1.0, -4.0], [2.0, 0.5], size=(40, 2))
    precise = recalibrate_batchnorm(net, X, batch_size=8, seed=0)
    np.testing.assert_array_equal(net[0].running_mean, 0.0)
    np.testing.assert_allclose(precise[0].running_mean, X.mean(0), rtol=1e-12)
    # mean of per-batch unbiased variances, by hand
    order = np.random.default_rng(0).permutation(40)
    vars_ = [X[order[i:i + 8]].var(0, ddof=1) for i in range(0, 40, 8)]
    np.testing.assert_allclose(precise[0].running_var, np.mean(vars_, axis=0), rtol=1e-12)


def test_recalibrate_keeps_mode_and_improves_an_undertrained_moving_average():
    from bnutils.data import load_digits_split
    from bnutils.training import evaluate

    Xtr, Xte, ytr, yte = load_digits_split()
    net = make_mlp([64, 50, 50, 10], "sigmoid", norm="bn", init="lecun", momentum=0.01, rng=0)
    train(net, Xtr, ytr, lr=0.5, steps=20, batch_size=60)
    net.eval()
    precise = recalibrate_batchnorm(net, Xtr, batch_size=60)
    assert not precise.training
    acc_moving, _ = evaluate(net, Xte, yte)
    acc_precise, _ = evaluate(precise, Xte, yte)
    assert acc_precise > acc_moving + 0.2


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(X=np.zeros((5, 5)), batch_size=1), ValueError, "batch_size"),
    (dict(X=np.zeros((5, 5)), batch_size=6), ValueError, "batch_size"),
    (dict(X=np.zeros((5, 5)), batch_size=2.0), TypeError, "integer"),
    (dict(X=np.zeros(5), batch_size=2), ValueError, "shape"),
])
def test_recalibrate_rejects_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        recalibrate_batchnorm(_net(), **kwargs)


def test_recalibrate_needs_a_bn_layer():
    with pytest.raises(ValueError, match="no BatchNorm"):
        recalibrate_batchnorm(Sequential(Linear(2, 2)), np.zeros((4, 2)), batch_size=2)


def test_fold_sequential_matches_eval_mode_after_training():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(120, 5)), rng.integers(0, 3, 120)
    net = _net()
    train(net, X, y, lr=0.1, steps=30, batch_size=20)
    folded = fold_sequential(net)
    assert len(folded) == len(net) - 2
    assert not any(isinstance(layer, BatchNorm) for layer in folded.layers)
    assert not folded.training
    np.testing.assert_allclose(folded.forward(X), net.eval().forward(X), rtol=1e-10, atol=1e-12)
    # and it is NOT the training-mode network
    assert np.abs(folded.forward(X) - net.train().forward(X)).max() > 1e-3


def test_fold_sequential_handles_bias_free_linear_and_does_not_touch_the_model():
    net = make_mlp([4, 3, 2], "relu", norm="bn", bias=False, rng=1)
    net[1].running_mean = np.array([0.5, -1.0, 2.0])
    W = net[0].W.copy()
    folded = fold_sequential(net)
    np.testing.assert_array_equal(net[0].W, W)
    assert net[0].b is None and folded[0].b is not None
    x = np.random.default_rng(5).normal(size=(6, 4))
    np.testing.assert_allclose(folded.forward(x), net.eval().forward(x), rtol=1e-12)


def test_fold_sequential_refuses_bn_after_activation():
    net = make_mlp([4, 3, 2], "relu", norm="bn", norm_position="after", rng=0)
    with pytest.raises(ValueError, match="does not directly follow a Linear"):
        fold_sequential(net)
    with pytest.raises(TypeError):
        fold_sequential(BatchNorm(3))
    with pytest.raises(ValueError):
        fold_sequential(Sequential(BatchNorm(3), ReLU()))


def test_moving_vs_precise_early_lag_and_identical_weights():
    from bnutils.data import load_digits_split

    data = load_digits_split()
    fast = moving_vs_precise(data, [40, 5], momentum=0.1, hidden=(32, 32))
    slow = moving_vs_precise(data, [5, 40], momentum=0.01, hidden=(32, 32))
    assert fast["steps"] == [5, 40]
    assert fast["moving"].shape == fast["precise"].shape == (2,)
    # momentum never changes training: same weights, same precise accuracies
    for a, b in zip(fast["model"].params().values(), slow["model"].params().values()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast["precise"], slow["precise"])
    # early on the slow moving average lags far behind the precise statistics
    assert slow["moving"][0] < slow["precise"][0] - 0.2
    with pytest.raises(ValueError, match="checkpoints"):
        moving_vs_precise(data, [0, 5])


# --------------------------------------------------------------------------- save / restore / freeze,
# generic over every layer that declares running_stat_names (issue 13's bug: BatchRenorm)


class _Counter(Layer):
    """A layer that is not a BatchNorm but keeps running state, like a variant would."""

    running_stat_names = ("running_mean", "steps")

    def __init__(self):
        self.running_mean, self.steps = np.zeros(2), np.zeros(())

    def forward(self, x):
        if self.training:
            self.running_mean = self.running_mean + np.asarray(x).mean(axis=0)
            self.steps = self.steps + 1
        return x

    def backward(self, dout):
        return dout


def _variant_layers():
    from bnutils.batch_renorm import BatchRenorm
    from bnutils.noisy_bn import NoisyBatchNorm
    from bnutils.sharded_bn import ShardedBatchNorm
    return [BatchNorm(3), BatchRenorm(3), ShardedBatchNorm(3, num_devices=2),
            NoisyBatchNorm(3, rng=0), _Counter3()]


class _Counter3(_Counter):
    def __init__(self):
        self.running_mean, self.steps = np.zeros(3), np.zeros(())


@pytest.mark.parametrize("make", range(5), ids=["BatchNorm", "BatchRenorm", "ShardedBatchNorm",
                                                  "NoisyBatchNorm", "custom-layer"])
def test_frozen_running_stats_covers_every_layer_with_running_statistics(make):
    layer = _variant_layers()[make]
    # nested one level deeper too: the walk goes through children(), not only .layers
    net = Sequential(Linear(2, 3, rng=0), Sequential(layer, ReLU()))
    assert running_stat_layers(net) == [layer]
    names = layer.running_stat_names
    before = {n: np.copy(getattr(layer, n)) for n in names}
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(8, 2))
    with frozen_running_stats(net):
        net.forward(x)
        assert any(not np.array_equal(getattr(layer, n), before[n]) for n in names)
    for n in names:
        np.testing.assert_array_equal(getattr(layer, n), before[n])
    net.forward(x)                      # outside the block the statistics move again
    assert any(not np.array_equal(getattr(layer, n), before[n]) for n in names)


def test_frozen_running_stats_with_batch_renorm_regression():
    """The bug of issue 13: BatchRenorm is not a BatchNorm, and was left out."""
    from bnutils.batch_renorm import BatchRenorm
    net = Sequential(Linear(4, 3, rng=0), BatchRenorm(3))
    with frozen_running_stats(net):
        net.forward(np.random.default_rng(0).normal(5.0, 1.0, size=(6, 4)))
    np.testing.assert_array_equal(net[1].running_mean, np.zeros(3))
    np.testing.assert_array_equal(net[1].running_var, np.ones(3))


def test_save_and_restore_running_stats_copy_and_can_restore_twice():
    net = _net()
    saved = save_running_stats(net)
    assert [layer for layer, _ in saved] == running_stat_layers(net) == batchnorm_layers(net)
    x = np.random.default_rng(3).normal(size=(6, 5))
    for _ in range(2):
        net.forward(x)
        restore_running_stats(saved)
        for layer in batchnorm_layers(net):
            np.testing.assert_array_equal(layer.running_mean, 0.0)
            np.testing.assert_array_equal(layer.running_var, 1.0)
    # restoring hands out copies: changing the layer in place leaves `saved` intact
    batchnorm_layers(net)[0].running_mean += 1.0
    restore_running_stats(saved)
    np.testing.assert_array_equal(batchnorm_layers(net)[0].running_mean, 0.0)


@pytest.mark.parametrize("saved", ["not a valid value", save_running_stats, [(None,)],
                                   [(BatchNorm(2), "running_mean")]])
def test_restore_running_stats_refuses_what_save_running_stats_did_not_return(saved):
    with pytest.raises(TypeError, match="saved must be the list of"):
        restore_running_stats(saved)


def test_moving_vs_precise_checks_data_and_hidden_before_training():
    X, y = np.ones((8, 3)), np.arange(8) % 2
    with pytest.raises(TypeError, match="data must be the 4-tuple"):
        moving_vs_precise((X, y), [2])          # before: "not enough values to unpack"
    with pytest.raises(TypeError, match="hidden must be a sequence"):
        moving_vs_precise((X, X, y, y), [2], hidden="100")
    with pytest.raises(ValueError, match=r"hidden\[0\] must be ≥ 1"):
        moving_vs_precise((X, X, y, y), [2], hidden=(0,))


def test_running_stat_layers_refuses_what_is_not_a_layer():
    with pytest.raises(TypeError, match="model must be a layer"):
        running_stat_layers([BatchNorm(2)])


def _by_hand(X, batch_size, seed, rows=slice(None)):
    """Average over the shuffled batches of each batch's mean and unbiased variance."""
    order = np.random.default_rng(seed).permutation(len(X))
    batches = [X[order[i:i + batch_size]][rows] for i in range(0, len(X) - len(X) % batch_size,
                                                                batch_size)]
    return np.mean([b.mean(0) for b in batches], 0), np.mean([b.var(0, ddof=1) for b in batches], 0)


@pytest.mark.parametrize("kind", ["BatchNorm", "NoisyBatchNorm", "ShardedBatchNorm", "BatchRenorm"])
def test_recalibrate_handles_every_bnutils_layer_with_running_statistics(kind):
    from bnutils.batch_renorm import BatchRenorm
    from bnutils.noisy_bn import NoisyBatchNorm
    from bnutils.sharded_bn import ShardedBatchNorm
    make = {"BatchNorm": lambda: BatchNorm(3, momentum=0.3),
            "NoisyBatchNorm": lambda: NoisyBatchNorm(3, rng=0, momentum=0.3),
            "ShardedBatchNorm": lambda: ShardedBatchNorm(3, num_devices=2, momentum=0.3),
            "BatchRenorm": lambda: BatchRenorm(3, momentum=0.3)}[kind]
    net = Sequential(make(), ReLU()).eval()
    X = np.random.default_rng(4).normal([1.0, -4.0, 9.0], [2.0, 0.5, 3.0], size=(45, 3))
    precise = recalibrate_batchnorm(net, X, batch_size=10, seed=1)       # 4 batches, 5 rows left
    layer = precise[0]
    # a sharded layer without sync tracks its first device's half of each batch
    rows = slice(0, 5) if kind == "ShardedBatchNorm" else slice(None)
    mean, var = _by_hand(X, 10, 1, rows)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-12)
    assert layer.momentum == 0.3 and not precise.training               # restored
    np.testing.assert_array_equal(net[0].running_mean, 0.0)             # the model is left alone


def test_recalibrate_refuses_a_running_statistics_layer_it_cannot_average():
    with pytest.raises(TypeError, match="cannot recalibrate _Counter: it has running statistics "
                                        "but no float `momentum`"):
        recalibrate_batchnorm(Sequential(Linear(2, 2, rng=0), _Counter()), np.zeros((4, 2)),
                              batch_size=2)


def test_batch_stats_forward_leaves_every_variant_and_every_mode_as_it_was():
    from bnutils.batch_renorm import BatchRenorm
    frozen = BatchNorm(3).eval()                 # a layer deliberately kept in eval mode
    net = Sequential(Linear(2, 3, rng=0), BatchRenorm(3), frozen, Linear(3, 1, rng=1))
    saved = save_running_stats(net)
    x = np.random.default_rng(5).normal(4.0, 2.0, size=(6, 2))
    batch_stats_forward(net, x)
    assert net.training and net[1].training and not frozen.training
    for layer, state in saved:
        for name, value in state.items():
            np.testing.assert_array_equal(getattr(layer, name), value)


def test_running_average_refuses_nan_values_and_a_bad_init():
    from bnutils.inference import running_average
    with pytest.raises(ValueError, match="^values contains 1 non-finite"):
        running_average([1.0, np.nan], momentum=0.1)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="^init contains"):
            running_average([1.0, 2.0], momentum=0.1, init=bad)
    with pytest.raises(TypeError, match="^init must be a number"):
        running_average([1.0, 2.0], momentum=0.1, init=True)


@pytest.mark.parametrize("shape", [(0, 3), (8, 0)])
def test_recalibrate_batchnorm_refuses_an_empty_X_naming_it(shape):
    from bnutils.inference import recalibrate_batchnorm
    from bnutils.models import make_mlp
    with pytest.raises(ValueError, match="^X must hold at least one sample"):
        recalibrate_batchnorm(make_mlp([3, 4, 2], norm="bn", rng=0), np.zeros(shape))
