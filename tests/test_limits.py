"""Tests for bnutils.limits, the experiment helpers of notebook 07."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnutils import batchnorm_forward, groupnorm_forward  # noqa: E402
from bnutils.batchnorm import BatchNorm  # noqa: E402
from bnutils.bn_variants import NoisyBatchNorm, ShardedBatchNorm  # noqa: E402
from bnutils.data import load_digits_split  # noqa: E402
from bnutils.limits import (  # noqa: E402
    PercentileRecorder,
    active_per_step,
    batch_mode_accuracy,
    batch_size_sweep,
    class_sorted_batches,
    landscape_probe,
    loss_and_grads,
    normalization_set,
    plot_normalization_sets,
    swap_norm,
    train_mode_spread,
    train_models,
    train_on_batches,
    train_with_probes,
)
from bnutils.models import make_mlp  # noqa: E402
from bnutils.normalization import instancenorm_forward  # noqa: E402
from bnutils.training import minibatches, train  # noqa: E402

RNG = np.random.default_rng(5)
X_SMALL = RNG.normal(size=(48, 4))
Y_SMALL = (X_SMALL[:, 0] + X_SMALL[:, 1] > 0).astype(int) + (X_SMALL[:, 2] > 1)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _bn_net(seed=0, sizes=(4, 8, 8, 3)):
    return make_mlp(list(sizes), "relu", norm="bn", rng=seed)


# ----------------------------------------------------------------------------- swap_norm, train_models
def test_swap_norm_replaces_every_bn_layer_and_keeps_the_weights():
    reference = _bn_net()
    net = swap_norm(_bn_net(), lambda d: NoisyBatchNorm(d, rng=0))
    swapped = [layer for layer in net.layers if isinstance(layer, NoisyBatchNorm)]
    assert len(swapped) == 2 and [lyr.num_features for lyr in swapped] == [8, 8]
    for a, b in zip(reference.params().values(), net.params().values()):
        np.testing.assert_array_equal(a, b)


def test_swap_norm_bad_input():
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        swap_norm(make_mlp([4, 8, 3]), BatchNorm)
    with pytest.raises(TypeError, match="callable"):
        swap_norm(_bn_net(), 3)
    with pytest.raises(TypeError, match="Sequential"):
        swap_norm(BatchNorm(3), BatchNorm)


def test_synchronized_sharded_bn_trains_exactly_like_bn():
    """SyncBN on 4 devices is BN on the whole batch: the same losses, step by step."""
    runs = train_models({"BN": _bn_net(),
                         "sync": swap_norm(_bn_net(), lambda d: ShardedBatchNorm(d, 4, sync=True)),
                         "per-device": swap_norm(_bn_net(), lambda d: ShardedBatchNorm(d, 4))},
                        X_SMALL, Y_SMALL, lr=0.1, steps=12, batch_size=16)
    np.testing.assert_allclose(runs["sync"].loss, runs["BN"].loss, rtol=1e-9)
    assert not np.allclose(runs["per-device"].loss[1:], runs["BN"].loss[1:])


def test_train_models_returns_histories_by_label_and_passes_callbacks():
    rec = PercentileRecorder(layer=1, unit=0)
    runs = train_models({"a": _bn_net(), "b": make_mlp([4, 8, 3])}, X_SMALL, Y_SMALL,
                        X_SMALL, Y_SMALL, callbacks={"a": rec}, lr=0.1, steps=6, batch_size=8,
                        eval_every=3)
    assert list(runs) == ["a", "b"]
    assert runs["b"].eval_steps == [3, 6]
    assert rec.steps == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="not in models"):
        train_models({"a": _bn_net()}, X_SMALL, Y_SMALL, callbacks={"z": rec}, lr=0.1, steps=1)
    with pytest.raises(TypeError, match="non-empty dict"):
        train_models([], X_SMALL, Y_SMALL, lr=0.1, steps=1)


def test_percentile_recorder_reads_the_training_batch_output():
    net = _bn_net()
    rec = PercentileRecorder(layer=1, unit=2, percentiles=(10, 50, 90))
    net.forward(X_SMALL[:16])
    rec(7, net)
    expected = np.percentile(net.outputs[1][:, 2], [10, 50, 90])
    np.testing.assert_allclose(rec.as_array()[0], expected)
    assert rec.steps == [7]


# ----------------------------------------------------------------------------- landscape probes
def test_loss_and_grads_returns_copies_keyed_like_params():
    net = _bn_net()
    loss, grads = loss_and_grads(net, X_SMALL[:8], Y_SMALL[:8])
    assert sorted(grads) == sorted(net.params()) and loss > 0
    net.backward(np.zeros((8, 3)))                  # later backward passes do not change the copies
    assert any(np.abs(g).sum() > 0 for g in grads.values())


def test_landscape_probe_restores_parameters_and_running_statistics():
    net = _bn_net()
    before = {k: v.copy() for k, v in net.params().items()}
    running = net.layers[1].running_mean.copy()
    probe = landscape_probe(net, X_SMALL[:16], Y_SMALL[:16], [0.1, 0.5, 1.0])
    for k, v in net.params().items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(net.layers[1].running_mean, running)
    assert probe["loss_range"] >= 0 and probe["grad_change"] >= 0 and probe["grad_norm"] > 0
    # beta is the largest ratio ||Δgrad|| / ||η g||, so it bounds every measured change
    assert probe["grad_change"] <= probe["beta"] * 1.0 * probe["grad_norm"] + 1e-12


def test_landscape_probe_of_a_smooth_model_scales_linearly_for_small_steps():
    net = make_mlp([4, 3], rng=0)                   # softmax regression: a smooth loss
    small = landscape_probe(net, X_SMALL, Y_SMALL, [1e-4])
    double = landscape_probe(net, X_SMALL, Y_SMALL, [2e-4])
    assert double["grad_change"] / small["grad_change"] == pytest.approx(2.0, rel=1e-3)
    assert double["beta"] == pytest.approx(small["beta"], rel=1e-3)
    # first order: the loss drops by about eta * ||g||^2
    assert small["loss_range"] == pytest.approx(1e-4 * small["grad_norm"] ** 2, rel=1e-2)


def test_landscape_probe_bad_step_sizes():
    with pytest.raises(ValueError, match="step_sizes"):
        landscape_probe(_bn_net(), X_SMALL, Y_SMALL, [])
    with pytest.raises(ValueError, match="step_sizes"):
        landscape_probe(_bn_net(), X_SMALL, Y_SMALL, [0.1, -0.1])


def test_train_with_probes_records_one_probe_per_every_steps():
    res = train_with_probes(_bn_net(), X_SMALL, Y_SMALL, lr=0.1, steps=12, batch_size=8,
                            step_sizes=[0.05, 0.1], every=4)
    assert res.steps.tolist() == [4, 8, 12]
    assert res.loss_range.shape == res.beta.shape == (3,)
    assert len(res.history.loss) == 12
    # the probes do not change training: same losses as plain train()
    plain = train(_bn_net(), X_SMALL, Y_SMALL, lr=0.1, steps=12, batch_size=8)
    np.testing.assert_allclose(res.history.loss, plain.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="every"):
        train_with_probes(_bn_net(), X_SMALL, Y_SMALL, lr=0.1, steps=2, batch_size=8,
                          step_sizes=[0.1], every=0)


# ----------------------------------------------------------------------------- batch-size sweep
def test_batch_size_sweep_bn_collapses_at_two_and_layernorm_does_not(digits):
    X_train, X_test, y_train, y_test = digits
    res = batch_size_sweep(X_train, y_train, X_test, y_test, norms=("bn", "ln"),
                           batch_sizes=(2, 32), sizes=(64, 32, 32, 10), steps=150)
    assert res.accuracy.shape == (2, 2)
    assert res.row("bn")[0] < 0.7 < res.row("ln")[0]         # batch of 2
    assert res.row("bn")[1] > 0.85                              # batch of 32
    assert abs(res.row("ln")[0] - res.row("ln")[1]) < 0.15


def test_batch_size_sweep_bad_input():
    with pytest.raises(ValueError, match="norms"):
        batch_size_sweep(X_SMALL, Y_SMALL, X_SMALL, Y_SMALL, norms=("in",))
    with pytest.raises(ValueError, match="≥ 2"):
        batch_size_sweep(X_SMALL, Y_SMALL, X_SMALL, Y_SMALL, batch_sizes=(1, 4))


# ----------------------------------------------------------------------------- non-i.i.d. batches
def test_class_sorted_batches_hold_one_class_each():
    y = np.repeat(np.arange(4), 12)[RNG.permutation(48)]
    batches = class_sorted_batches(y, 6, num_batches=20, seed=1)
    assert len(batches) == 20
    assert all(len(np.unique(y[b])) == 1 for b in batches)
    assert sorted(np.concatenate(batches[:8]).tolist()) == list(range(48))   # one pass = all samples
    with pytest.raises(ValueError, match="batch_size"):
        class_sorted_batches(y, 0, 3)


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


def test_active_per_step():
    assert active_per_step([3, 1, 2, 5]).tolist() == [4, 3, 2, 1, 1]
    assert active_per_step([2, 2], max_steps=4).tolist() == [2, 2, 0, 0]
    with pytest.raises(ValueError, match="integers ≥ 1"):
        active_per_step([0, 3])
    with pytest.raises(ValueError, match="integers ≥ 1"):
        active_per_step([1.5, 2.0])


# ----------------------------------------------------------------------------- which values share statistics
def _ones(x):
    return np.ones(x.shape[1]), np.zeros(x.shape[1])


@pytest.mark.parametrize(("fn", "count", "axes_all"), [
    (lambda x: batchnorm_forward(x, *_ones(x))[0], 4 * 2 * 2, (0, 2, 3)),
    (lambda x: groupnorm_forward(x, *_ones(x), 1)[0], 6 * 2 * 2, (1, 2, 3)),
    (lambda x: instancenorm_forward(x, *_ones(x))[0], 2 * 2, (2, 3)),
    (lambda x: groupnorm_forward(x, *_ones(x), 3)[0], 2 * 2 * 2, None),
])
def test_normalization_set_finds_the_values_that_share_statistics(fn, count, axes_all):
    mask = normalization_set(fn, shape=(4, 6, 2, 2), index=(3, 0, 1, 0))
    assert mask.sum() == count and mask[3, 0, 1, 0]
    if axes_all is not None:
        assert mask.all(axis=axes_all).any()


def test_normalization_set_and_plot_bad_input():
    with pytest.raises(ValueError, match="4 entries"):
        normalization_set(lambda x: x, shape=(4, 6))
    with pytest.raises(ValueError, match="4-D"):
        plot_normalization_sets({"bad": np.ones((2, 3), dtype=bool)})
    with pytest.raises(ValueError, match="at least one"):
        plot_normalization_sets({})


def test_plot_normalization_sets_draws_one_panel_per_mask():
    mask = normalization_set(lambda x: batchnorm_forward(x, *_ones(x))[0])
    fig = plot_normalization_sets({"BN": mask, "BN again": mask}, captions={"BN": "over N, H, W"},
                                  title="which values share statistics")
    assert len(fig.axes) == 2
    assert fig._suptitle.get_text() == "which values share statistics"
    assert fig.axes[0].get_title() == "BN"
    assert any(t.get_text() == "over N, H, W" for t in fig.axes[0].texts)
