"""bnutils.lab's runs, sweeps, learning_rates, figure1 and comparisons: runs, sweeps (also
over the batch size), the Figure-1 miniature, stability, BN variants swapped in; and their
plots."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnutils.batchnorm import BatchNorm
from bnutils.data import load_digits_split
from bnutils.lab import comparisons, figure1, learning_rates, sweeps
from bnutils.lab.recorders import PercentileRecorder
from bnutils.lab.runs import NORM_LABELS, run_config
from bnutils.models import make_mlp
from bnutils.noisy_bn import NoisyBatchNorm
from bnutils.sharded_bn import ShardedBatchNorm
from bnutils.training import TrainingHistory

RNG = np.random.default_rng(5)
X_SMALL = RNG.normal(size=(48, 4))
Y_SMALL = (X_SMALL[:, 0] + X_SMALL[:, 1] > 0).astype(int) + (X_SMALL[:, 2] > 1)


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_run_config_is_reproducible_and_records_its_config(data):
    a = run_config(data, hidden=(16,), norm="bn", lr=0.3, steps=30, seed=1)
    b = run_config(data, hidden=(16,), norm="bn", lr=0.3, steps=30, seed=1)
    assert a.history.loss == b.history.loss
    assert a.final_accuracy == b.final_accuracy
    assert a.config["norm"] == "bn" and a.config["steps"] == 30
    assert a.history.eval_steps == [30]          # evaluated once, at the end, by default
    assert a.final_loss == pytest.approx(np.mean(a.history.loss[-3:]))


def test_run_config_reports_divergence(data):
    r = run_config(data, hidden=(100, 100), lr=10.0, steps=50)
    assert r.diverged and r.final_accuracy == 0.0 and r.final_loss == np.inf


def test_run_config_rejects_bad_data():
    with pytest.raises(TypeError, match="4-tuple"):
        run_config((np.zeros((3, 2)), np.zeros(3)))
    with pytest.raises(ValueError, match="same D"):
        run_config((np.zeros((3, 2)), np.zeros((3, 4)), np.zeros(3), np.zeros(3)))


def test_sweep_shapes_and_lr_effect(data):
    res = sweeps.sweep(data, "lr", [0.001, 0.5], seeds=(0, 1), hidden=(32,), steps=60)
    assert res.accuracy.shape == res.loss.shape == res.diverged.shape == (2, 2)
    assert res.mean_accuracy[1] > res.mean_accuracy[0] + 0.3   # a usable lr beats a tiny one
    assert res.config == {"hidden": (32,), "steps": 60}


@pytest.mark.parametrize("args, match", [
    (("seed", [0, 1]), "param"),
    (("colour", [1]), "param"),
    (("lr", []), "empty"),
])
def test_sweep_rejects_bad_arguments(data, args, match):
    with pytest.raises(ValueError, match=match):
        sweeps.sweep(data, *args)


def test_sweep_rejects_unknown_or_duplicate_settings(data):
    with pytest.raises(ValueError, match="unknown"):
        sweeps.sweep(data, "lr", [0.1], depth=3)
    with pytest.raises(ValueError, match="swept setting"):
        sweeps.sweep(data, "lr", [0.1], lr=0.2)


def test_batch_size_sweep_bn_collapses_at_two_and_layernorm_does_not(data):
    res = {norm: sweeps.sweep(data, "batch_size", [2, 32], norm=norm, hidden=(32, 32), lr=0.05,
                          steps=150) for norm in ("bn", "ln")}
    assert res["bn"].accuracy.shape == (2, 1) and res["bn"].param == "batch_size"
    assert res["bn"].mean_accuracy[0] < 0.7 < res["ln"].mean_accuracy[0]     # batch of 2
    assert res["bn"].mean_accuracy[1] > 0.85                                  # batch of 32
    assert abs(res["ln"].mean_accuracy[0] - res["ln"].mean_accuracy[1]) < 0.15


def test_batch_size_sweep_equals_training_each_network_by_hand(data):
    """One (norm, batch size) cell of the sweep is make_mlp + train + evaluate, nothing else."""
    from bnutils.training import evaluate, train

    X_train, X_test, y_train, y_test = data
    res = sweeps.sweep(data, "batch_size", [4, 16], norm="gn", hidden=(16, 16), num_groups=8,
                   lr=0.05, steps=30, seeds=(2,))
    for j, bs in enumerate((4, 16)):
        model = make_mlp([64, 16, 16, 10], "relu", norm="gn", num_groups=8, rng=2)
        train(model, X_train, y_train, lr=0.05, steps=30, batch_size=bs, seed=2)
        assert res.accuracy[j, 0] == evaluate(model, X_test, y_test)[0]


def test_batch_size_sweep_bad_input(data):
    with pytest.raises(ValueError, match="norm"):
        sweeps.sweep(data, "batch_size", [4], norm="in", hidden=(8,), steps=2)
    with pytest.raises(ValueError, match="2 values"):           # BN needs two samples
        sweeps.sweep(data, "batch_size", [1, 4], norm="bn", hidden=(8,), steps=2)


def test_norm_labels_name_every_make_mlp_normalization(data):
    assert list(NORM_LABELS) == [None, "bn", "ln", "gn"]
    runs = [run_config(data, norm=norm, hidden=(8,), steps=2) for norm in NORM_LABELS]
    assert [r.config["norm"] for r in runs] == list(NORM_LABELS)


def test_bias_before_bn_changes_nothing(data):
    # The bias right before BN receives a zero gradient: the runs are identical.
    with_b = run_config(data, hidden=(32, 32), norm="bn", bias=True, steps=40)
    without = run_config(data, hidden=(32, 32), norm="bn", bias=False, steps=40)
    np.testing.assert_allclose(with_b.history.loss, without.history.loss, rtol=1e-9)
    assert np.abs(with_b.model[0].b).max() < 1e-12


def _fake_sweep(values, acc, div=None):
    acc = np.asarray(acc, dtype=float)
    div = np.zeros_like(acc, dtype=bool) if div is None else np.asarray(div)
    return sweeps.SweepResult("lr", list(values), tuple(range(acc.shape[1])), acc,
                          np.ones_like(acc), div)


def test_format_sweeps_table():
    table = sweeps.format_sweeps({
        "no BN": _fake_sweep([0.1, 1.0], [[0.9], [0.0]], [[False], [True]]),
        "BN": _fake_sweep([0.1, 1.0], [[0.95], [0.97]]),
    })
    lines = table.splitlines()
    assert lines[0].split() == ["lr", "no", "BN", "BN"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["0.1", "0.900", "0.950"]
    assert lines[3].split() == ["1", "diverged", "0.970"]


def test_format_sweeps_shows_seed_range_and_partial_divergence():
    table = sweeps.format_sweeps({"BN": _fake_sweep([0.1], [[0.9, 0.0]], [[False, True]])})
    assert "0.450 (0.00-0.90) 1 div." in table


def test_format_sweeps_rejects_mismatched_sweeps():
    with pytest.raises(ValueError, match="same setting"):
        sweeps.format_sweeps({"a": _fake_sweep([0.1], [[1.0]]), "b": _fake_sweep([0.2], [[1.0]])})
    with pytest.raises(TypeError):
        sweeps.format_sweeps({"a": {"lr": 1}})
    with pytest.raises(ValueError):
        sweeps.format_sweeps({})


def test_plot_sweeps_marks_diverged_runs_and_leaves_a_gap():
    fig, ax = plt.subplots()
    sweeps.plot_sweeps(ax, {"no BN": _fake_sweep([0.1, 1.0, 10.0], [[0.9], [0.0], [0.0]],
                                             [[False], [True], [True]])})
    line, crosses = ax.lines[0], ax.lines[1]
    assert np.isnan(line.get_ydata()[1:]).all()
    assert list(crosses.get_xdata()) == [1.0, 10.0]
    assert "diverged" in ax.get_legend().get_texts()[1].get_text()
    assert ax.get_xscale() == "log"


def test_gd_variants_equal_epochs(data):
    runs = learning_rates.gd_variants(data, epochs=1)
    n = len(data[0])
    assert [len(r.history.loss) for r in runs.values()] == [1, n, n // 32]
    assert runs["mini-batch"].final_accuracy > runs["batch"].final_accuracy
    fig = learning_rates.plot_gd_variants(runs, n)
    assert fig.axes[0].get_yscale() == "log"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("batch (batch 1348, 1 updates)")


def test_sigmoid_input_index():
    assert figure1.sigmoid_input_index(make_mlp([4, 5, 5, 2], "sigmoid")) == 2
    assert figure1.sigmoid_input_index(make_mlp([4, 5, 5, 2], "sigmoid", norm="bn")) == 4
    with pytest.raises(ValueError):
        figure1.sigmoid_input_index(make_mlp([4, 5, 2], "relu"))
    with pytest.raises(TypeError):
        figure1.sigmoid_input_index(BatchNorm(3))


def test_figure1_miniature_shows_the_papers_effects(data):
    plain = figure1.figure1_run(data, None, steps=300, record_every=50, eval_every=100)
    bn = figure1.figure1_run(data, "bn", steps=300, record_every=50, eval_every=100)
    assert list(plain.steps) == [0, 50, 100, 150, 200, 250, 300]
    assert plain.percentiles.shape == (7, 3)
    # (a) BN trains much faster at the same learning rate
    assert bn.history.test_accuracy[0] > plain.history.test_accuracy[0] + 0.5
    # (b, c) with BN the sigmoid input keeps a unit-scale spread from the start
    spread_bn = bn.percentiles[:, 2] - bn.percentiles[:, 0]
    spread_plain = plain.percentiles[:, 2] - plain.percentiles[:, 0]
    assert spread_bn.min() > 1.5 and spread_plain[0] < 0.2
    fig = figure1.plot_figure1(plain, bn)
    assert len(fig.axes) == 3
    assert fig.axes[1].get_ylim() == fig.axes[2].get_ylim()     # comparable panels
    assert fig.axes[0].get_title() == "(a) test accuracy"
    with pytest.raises(ValueError):
        figure1.figure1_run(data, "ln")


def test_figure1_records_the_test_set_with_its_own_batch_statistics(data):
    """The percentiles are those of a batch_stats PercentileRecorder over the test set."""
    run = figure1.figure1_run(data, "bn", steps=20, record_every=10, eval_every=20)
    model = make_mlp([64, 100, 100, 100, 10], "sigmoid", norm="bn", init="lecun", rng=0)
    rec = PercentileRecorder(figure1.sigmoid_input_index(model), 0, mode="batch_stats", x=data[1])
    rec(0, model)
    np.testing.assert_array_equal(run.percentiles[0], rec.values[0])
    trained = run.result.model
    rec(20, trained)
    np.testing.assert_array_equal(run.percentiles[-1], rec.values[-1])


def test_is_stable():
    assert not learning_rates.is_stable(TrainingHistory(loss=[2.0, 5.0], diverged=True), 10)
    assert not learning_rates.is_stable(TrainingHistory(loss=[2.5, 2.4]), 10)      # above ln 10 = 2.30
    assert learning_rates.is_stable(TrainingHistory(loss=[2.5, 0.4]), 10, last=1)
    assert not learning_rates.is_stable(TrainingHistory(), 10)
    with pytest.raises(TypeError):
        learning_rates.is_stable([1.0], 10)


def test_largest_stable_lr_on_the_check_nets(data):
    X, y = data[0][:600], data[2][:600]

    def plain():
        return make_mlp([64, 32, 32, 10], "relu", rng=0)

    def bn():
        return make_mlp([64, 32, 32, 10], "relu", norm="bn", rng=0)

    lrs = [3.0, 0.1, 10.0, 1.0, 0.3]
    assert learning_rates.largest_stable_lr(plain, lrs, X, y, steps=60) == 1.0
    assert learning_rates.largest_stable_lr(bn, lrs, X, y, steps=60) == 3.0
    assert learning_rates.largest_stable_lr(plain, [100.0], X, y, steps=60) is None


# ----------------------------------------------------------------------------- swap_norm, train_models
def _bn_net(seed=0, sizes=(4, 8, 8, 3)):
    return make_mlp(list(sizes), "relu", norm="bn", rng=seed)


def test_swap_norm_replaces_every_bn_layer_and_keeps_the_weights():
    reference = _bn_net()
    net = comparisons.swap_norm(_bn_net(), lambda d: NoisyBatchNorm(d, rng=0))
    swapped = [layer for layer in net.layers if isinstance(layer, NoisyBatchNorm)]
    assert len(swapped) == 2 and [lyr.num_features for lyr in swapped] == [8, 8]
    for a, b in zip(reference.params().values(), net.params().values()):
        np.testing.assert_array_equal(a, b)


def test_swap_norm_bad_input():
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        comparisons.swap_norm(make_mlp([4, 8, 3]), BatchNorm)
    with pytest.raises(TypeError, match="callable"):
        comparisons.swap_norm(_bn_net(), 3)
    with pytest.raises(TypeError, match="Sequential"):
        comparisons.swap_norm(BatchNorm(3), BatchNorm)


def test_synchronized_sharded_bn_trains_exactly_like_bn():
    """SyncBN on 4 devices is BN on the whole batch: the same losses, step by step."""
    swap = comparisons.swap_norm
    runs = comparisons.train_models({"BN": _bn_net(),
                                     "sync": swap(_bn_net(), lambda d: ShardedBatchNorm(d, 4, sync=True)),
                                     "per-device": swap(_bn_net(), lambda d: ShardedBatchNorm(d, 4))},
                                    X_SMALL, Y_SMALL, lr=0.1, steps=12, batch_size=16)
    np.testing.assert_allclose(runs["sync"].loss, runs["BN"].loss, rtol=1e-9)
    assert not np.allclose(runs["per-device"].loss[1:], runs["BN"].loss[1:])


def test_train_models_returns_histories_by_label_and_passes_callbacks():
    rec = PercentileRecorder(layer=1, unit=0)
    runs = comparisons.train_models({"a": _bn_net(), "b": make_mlp([4, 8, 3])}, X_SMALL, Y_SMALL,
                           X_SMALL, Y_SMALL, callbacks={"a": rec}, lr=0.1, steps=6, batch_size=8,
                           eval_every=3)
    assert list(runs) == ["a", "b"]
    assert runs["b"].eval_steps == [3, 6]
    assert rec.steps == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="not in models"):
        comparisons.train_models({"a": _bn_net()}, X_SMALL, Y_SMALL, callbacks={"z": rec}, lr=0.1, steps=1)
    with pytest.raises(TypeError, match="non-empty dict"):
        comparisons.train_models([], X_SMALL, Y_SMALL, lr=0.1, steps=1)


# ----------------------------------------------------------------------------- bad input (issue 17)
def test_hidden_must_be_a_sequence_of_widths_and_is_named(data):
    for call in (lambda h: run_config(data, hidden=h, steps=1),
                 lambda h: sweeps.sweep(data, "lr", [0.1], hidden=h, steps=1),
                 lambda h: learning_rates.gd_variants(data, hidden=h)):
        with pytest.raises(TypeError, match="hidden must be a sequence"):
            call("100")                      # list("100") would be three widths of 1 and 0
        with pytest.raises(ValueError, match=r"hidden\[1\] must be ≥ 1, got 0"):
            call((16, 0))


def test_sweep_refuses_a_string_of_values(data):
    with pytest.raises(TypeError, match="values must be a sequence"):
        sweeps.sweep(data, "lr", "0.1", steps=1)
    with pytest.raises(TypeError, match="seeds must be a sequence"):
        sweeps.sweep(data, "lr", [0.1], seeds=0, steps=1)


def test_gd_variants_and_figure1_name_their_own_counts(data):
    with pytest.raises(ValueError, match="epochs must be ≥ 1, got 0"):
        learning_rates.gd_variants(data, epochs=0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        learning_rates.gd_variants(data, batch_size=32.5)
    with pytest.raises(ValueError, match=r"batch_size must lie in 1\.\.1348"):
        learning_rates.gd_variants(data, batch_size=5000)     # n // 5000 = 0 updates per epoch
    with pytest.raises(ValueError, match="record_every must be ≥ 1, got -3"):
        figure1.figure1_run(data, None, steps=2, record_every=-3)
    with pytest.raises(ValueError, match=r"unit must lie in 0\.\.99, got 100"):
        figure1.figure1_run(data, None, steps=2, unit=100)


def test_is_stable_checks_its_counts():
    h = TrainingHistory(loss=[2.5, 0.4])
    with pytest.raises(ValueError, match="last must be ≥ 1, got -3"):
        learning_rates.is_stable(h, 10, last=-3)     # loss[3:] of two values would be empty: NaN mean
    with pytest.raises(ValueError, match="num_classes must be ≥ 1"):
        learning_rates.is_stable(h, -3)
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        learning_rates.is_stable(h, "10")


def test_largest_stable_lr_checks_before_training_and_returns_the_value_as_given(data):
    X, y = data[0][:120], data[2][:120]

    def plain():
        return make_mlp([64, 8, 10], "relu", rng=0)

    with pytest.raises(TypeError, match="make_model must be a function .* got Sequential"):
        learning_rates.largest_stable_lr(plain(), [0.1], X, y, steps=2)     # the model, not its maker
    with pytest.raises(TypeError, match="make_model must be a function .* got str"):
        learning_rates.largest_stable_lr("plain", [0.1], X, y, steps=2)
    with pytest.raises(TypeError, match="lrs must be a sequence"):
        learning_rates.largest_stable_lr(plain, "0.1", X, y, steps=2)
    with pytest.raises(ValueError, match=r"lrs\[1\] must be ≥ 0"):
        learning_rates.largest_stable_lr(plain, [0.1, -1.0], X, y, steps=2)
    with pytest.raises(ValueError, match="y must hold 120 integer class labels"):
        learning_rates.largest_stable_lr(plain, [0.1], X, y.astype(str), steps=2)
    # the given value comes back as given (a notebook prints it): 1, not 1.0
    best = learning_rates.largest_stable_lr(lambda: make_mlp([64, 32, 32, 10], "relu", rng=0), [1],
                                data[0][:600], data[2][:600], steps=60)
    assert best == 1 and type(best) is int


def test_format_sweeps_refuses_anything_but_a_dict():
    with pytest.raises(TypeError, match="results must be a dict of label -> SweepResult"):
        sweeps.format_sweeps("not a valid value")
