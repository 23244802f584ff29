"""bnutils.experiments: runs, sweeps, the Figure-1 miniature, stability; and their plots."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bnutils import experiments as ex
from bnutils.batchnorm import BatchNorm
from bnutils.data import load_digits_split
from bnutils.models import make_mlp
from bnutils.training import TrainingHistory


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_run_config_is_reproducible_and_records_its_config(data):
    a = ex.run_config(data, hidden=(16,), norm="bn", lr=0.3, steps=30, seed=1)
    b = ex.run_config(data, hidden=(16,), norm="bn", lr=0.3, steps=30, seed=1)
    assert a.history.loss == b.history.loss
    assert a.final_accuracy == b.final_accuracy
    assert a.config["norm"] == "bn" and a.config["steps"] == 30
    assert a.history.eval_steps == [30]          # evaluated once, at the end, by default
    assert a.final_loss == pytest.approx(np.mean(a.history.loss[-3:]))


def test_run_config_reports_divergence(data):
    r = ex.run_config(data, hidden=(100, 100), lr=10.0, steps=50)
    assert r.diverged and r.final_accuracy == 0.0 and r.final_loss == np.inf


def test_run_config_rejects_bad_data():
    with pytest.raises(TypeError, match="4-tuple"):
        ex.run_config((np.zeros((3, 2)), np.zeros(3)))
    with pytest.raises(ValueError, match="same D"):
        ex.run_config((np.zeros((3, 2)), np.zeros((3, 4)), np.zeros(3), np.zeros(3)))


def test_sweep_shapes_and_lr_effect(data):
    res = ex.sweep(data, "lr", [0.001, 0.5], seeds=(0, 1), hidden=(32,), steps=60)
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
        ex.sweep(data, *args)


def test_sweep_rejects_unknown_or_duplicate_settings(data):
    with pytest.raises(ValueError, match="unknown"):
        ex.sweep(data, "lr", [0.1], depth=3)
    with pytest.raises(ValueError, match="swept setting"):
        ex.sweep(data, "lr", [0.1], lr=0.2)


def test_bias_before_bn_changes_nothing(data):
    # The bias right before BN receives a zero gradient: the runs are identical.
    with_b = ex.run_config(data, hidden=(32, 32), norm="bn", bias=True, steps=40)
    without = ex.run_config(data, hidden=(32, 32), norm="bn", bias=False, steps=40)
    np.testing.assert_allclose(with_b.history.loss, without.history.loss, rtol=1e-9)
    assert np.abs(with_b.model[0].b).max() < 1e-12


def _fake_sweep(values, acc, div=None):
    acc = np.asarray(acc, dtype=float)
    div = np.zeros_like(acc, dtype=bool) if div is None else np.asarray(div)
    return ex.SweepResult("lr", list(values), tuple(range(acc.shape[1])), acc,
                          np.ones_like(acc), div)


def test_format_sweeps_table():
    table = ex.format_sweeps({
        "no BN": _fake_sweep([0.1, 1.0], [[0.9], [0.0]], [[False], [True]]),
        "BN": _fake_sweep([0.1, 1.0], [[0.95], [0.97]]),
    })
    lines = table.splitlines()
    assert lines[0].split() == ["lr", "no", "BN", "BN"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["0.1", "0.900", "0.950"]
    assert lines[3].split() == ["1", "diverged", "0.970"]


def test_format_sweeps_shows_seed_range_and_partial_divergence():
    table = ex.format_sweeps({"BN": _fake_sweep([0.1], [[0.9, 0.0]], [[False, True]])})
    assert "0.450 (0.00-0.90) 1 div." in table


def test_format_sweeps_rejects_mismatched_sweeps():
    with pytest.raises(ValueError, match="same setting"):
        ex.format_sweeps({"a": _fake_sweep([0.1], [[1.0]]), "b": _fake_sweep([0.2], [[1.0]])})
    with pytest.raises(TypeError):
        ex.format_sweeps({"a": {"lr": 1}})
    with pytest.raises(ValueError):
        ex.format_sweeps({})


def test_plot_sweeps_marks_diverged_runs_and_leaves_a_gap():
    fig, ax = plt.subplots()
    ex.plot_sweeps(ax, {"no BN": _fake_sweep([0.1, 1.0, 10.0], [[0.9], [0.0], [0.0]],
                                             [[False], [True], [True]])})
    line, crosses = ax.lines[0], ax.lines[1]
    assert np.isnan(line.get_ydata()[1:]).all()
    assert list(crosses.get_xdata()) == [1.0, 10.0]
    assert "diverged" in ax.get_legend().get_texts()[1].get_text()
    assert ax.get_xscale() == "log"


def test_gd_variants_equal_epochs(data):
    runs = ex.gd_variants(data, epochs=1)
    n = len(data[0])
    assert [len(r.history.loss) for r in runs.values()] == [1, n, n // 32]
    assert runs["mini-batch"].final_accuracy > runs["batch"].final_accuracy
    fig = ex.plot_gd_variants(runs, n)
    assert fig.axes[0].get_yscale() == "log"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("batch (batch 1348, 1 updates)")


def test_sigmoid_input_index():
    assert ex.sigmoid_input_index(make_mlp([4, 5, 5, 2], "sigmoid")) == 2
    assert ex.sigmoid_input_index(make_mlp([4, 5, 5, 2], "sigmoid", norm="bn")) == 4
    with pytest.raises(ValueError):
        ex.sigmoid_input_index(make_mlp([4, 5, 2], "relu"))
    with pytest.raises(TypeError):
        ex.sigmoid_input_index(BatchNorm(3))


def test_percentile_recorder_leaves_running_stats_and_records_batch_normalized_values():
    model = make_mlp([3, 8, 2], "sigmoid", norm="bn", rng=0)
    X = np.random.default_rng(0).normal(4.0, 3.0, size=(200, 3))
    rec = ex.PercentileRecorder(1, unit=0, X_probe=X, every=5)
    rec(3, model)                                  # not a multiple of 5: ignored
    rec(5, model)
    assert rec.steps == [5]
    np.testing.assert_array_equal(model[1].running_mean, 0.0)
    p15, p50, p85 = rec.array()[0]
    assert p15 < p50 < p85 and abs(p50) < 0.3 and 0.7 < p85 - p50 < 1.3   # ~N(0, 1)
    with pytest.raises(ValueError):
        ex.PercentileRecorder(1, 0, X[:1])
    with pytest.raises(ValueError):
        ex.PercentileRecorder(1, 0, X, every=0)


def test_figure1_miniature_shows_the_papers_effects(data):
    plain = ex.figure1_run(data, None, steps=300, record_every=50, eval_every=100)
    bn = ex.figure1_run(data, "bn", steps=300, record_every=50, eval_every=100)
    assert list(plain.steps) == [0, 50, 100, 150, 200, 250, 300]
    assert plain.percentiles.shape == (7, 3)
    # (a) BN trains much faster at the same learning rate
    assert bn.history.test_accuracy[0] > plain.history.test_accuracy[0] + 0.5
    # (b, c) with BN the sigmoid input keeps a unit-scale spread from the start
    spread_bn = bn.percentiles[:, 2] - bn.percentiles[:, 0]
    spread_plain = plain.percentiles[:, 2] - plain.percentiles[:, 0]
    assert spread_bn.min() > 1.5 and spread_plain[0] < 0.2
    fig = ex.plot_figure1(plain, bn)
    assert len(fig.axes) == 3
    assert fig.axes[1].get_ylim() == fig.axes[2].get_ylim()     # comparable panels
    assert fig.axes[0].get_title() == "(a) test accuracy"
    with pytest.raises(ValueError):
        ex.figure1_run(data, "ln")


def test_is_stable():
    assert not ex.is_stable(TrainingHistory(loss=[2.0, 5.0], diverged=True), 10)
    assert not ex.is_stable(TrainingHistory(loss=[2.5, 2.4]), 10)      # above ln 10 = 2.30
    assert ex.is_stable(TrainingHistory(loss=[2.5, 0.4]), 10, last=1)
    assert not ex.is_stable(TrainingHistory(), 10)
    with pytest.raises(TypeError):
        ex.is_stable([1.0], 10)


def test_largest_stable_lr_on_the_check_nets(data):
    X, y = data[0][:600], data[2][:600]

    def plain():
        return make_mlp([64, 32, 32, 10], "relu", rng=0)

    def bn():
        return make_mlp([64, 32, 32, 10], "relu", norm="bn", rng=0)

    lrs = [3.0, 0.1, 10.0, 1.0, 0.3]
    assert ex.largest_stable_lr(plain, lrs, X, y, steps=60) == 1.0
    assert ex.largest_stable_lr(bn, lrs, X, y, steps=60) == 3.0
    assert ex.largest_stable_lr(plain, [100.0], X, y, steps=60) is None
