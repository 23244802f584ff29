"""bnutils.lab's layer_stats, saturation and recorders: per-layer statistics
(gradient-checked), saturation, perturbations, the percentile recorder in each of its modes
(alone and as a train callback)."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnutils.batch_renorm import BatchRenorm  # noqa: E402
from bnutils.batchnorm import BatchNorm  # noqa: E402
from bnutils.gradcheck import numerical_gradient, rel_error  # noqa: E402
from bnutils.lab.layer_stats import (  # noqa: E402
    activation_indices,
    format_layer_table,
    layer_statistics,
    perturbation_propagation,
)
from bnutils.lab.recorders import RECORD_MODES, PercentileRecorder  # noqa: E402
from bnutils.lab.saturation import plot_activation_histograms, saturation_fraction  # noqa: E402
from bnutils.layers import Linear, Sequential, Sigmoid, Tanh, softmax_cross_entropy  # noqa: E402
from bnutils.models import make_mlp  # noqa: E402
from bnutils.training import train  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 5))
Y = RNG.integers(0, 3, 32)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def params_copy(model):
    return {k: v.copy() for k, v in model.params().items()}


def test_activation_indices():
    assert activation_indices(make_mlp([5, 8, 8, 3], "tanh")) == [1, 3]
    assert activation_indices(make_mlp([5, 8, 8, 3], "relu", norm="bn")) == [2, 5]
    with pytest.raises(TypeError, match="Sequential"):
        activation_indices(Linear(2, 2))


@pytest.mark.parametrize("activation, values, expected", [
    ("tanh", [0.0, 0.995, -0.999, 0.98], 0.5),
    ("sigmoid", [0.005, 0.5, 0.995, 0.2], 0.5),
    ("relu", [0.0, 0.0, 1.0, 2.0], 0.5),
])
def test_saturation_fraction_rules(activation, values, expected):
    assert saturation_fraction(np.array(values), activation) == expected


def test_saturation_fraction_bad_input():
    with pytest.raises(ValueError, match="activation must be one of"):
        saturation_fraction([0.1], "gelu")
    with pytest.raises(ValueError, match="empty"):
        saturation_fraction([], "tanh")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_saturation_fraction_refuses_nan_rather_than_counting_it_as_unsaturated(activation):
    # |NaN| > 0.99 is False: before, a NaN entry silently counted as "not saturated"
    with pytest.raises(ValueError, match="out contains 1 NaN"):
        saturation_fraction([0.995, 0.5, np.nan], activation)


@pytest.mark.parametrize("activation, values", [
    ("tanh", [0.5, np.inf]), ("tanh", [-np.inf, 0.0]), ("tanh", [0.2, 1.5]),
    ("sigmoid", [0.5, np.inf]), ("sigmoid", [-0.1, 0.5]), ("sigmoid", [0.5, 1.01]),
    ("relu", [1.0, -0.5]), ("relu", [-np.inf, 1.0]),
])
def test_saturation_fraction_refuses_values_the_activation_cannot_output(activation, values):
    with pytest.raises(ValueError, match=f"out is not a {activation} output"):
        saturation_fraction(np.array(values), activation)


def test_saturation_fraction_catches_the_input_passed_instead_of_the_output():
    pre = np.array([-3.0, 0.2, 2.5])
    assert saturation_fraction(np.tanh(pre), "tanh") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"values lie in \[-1, 1\], got values from -3 to 2.5"):
        saturation_fraction(pre, "tanh")


def test_saturation_fraction_accepts_the_ends_of_the_range_and_relu_infinity():
    assert saturation_fraction(np.array([-1.0, 1.0]), "tanh") == 1.0
    assert saturation_fraction(np.array([0.0, 1.0]), "sigmoid") == 1.0
    assert saturation_fraction(np.tanh(np.float32([30.0, 0.0])), "tanh") == 0.5     # float32
    assert saturation_fraction(np.array([0.0, np.inf]), "relu") == 0.5    # an overflowed unit is active


def _loss_from(model, start, a, y):
    """Loss when the output of layer ``start - 1`` is replaced by ``a``."""
    for layer in model.layers[start:]:
        a = layer.forward(a)
    return softmax_cross_entropy(a, y)[0]


def test_layer_statistics_gradients_match_numerical_gradients():
    model = make_mlp([5, 6, 6, 3], "tanh", init="lecun", rng=1)
    stats = layer_statistics(model, X, Y)
    assert [s.index for s in stats] == [1, 3] and [s.depth for s in stats] == [1, 2]
    # ∂L/∂W of each Linear feeding an activation, against centred differences
    for s, lin in zip(stats, (0, 2)):
        layer = model.layers[lin]
        W0 = layer.W.copy()

        def loss_of_w(W, layer=layer):
            layer.W = W
            return softmax_cross_entropy(model.forward(X), Y)[0]

        num = numerical_gradient(loss_of_w, W0)
        layer.W = W0
        assert s.weight_grad_norm == pytest.approx(np.linalg.norm(num), rel=1e-6)
        assert s.weight_norm == pytest.approx(np.linalg.norm(W0))
    # the gradient flowing into the first activation's output
    model.forward(X)
    a1 = model.outputs[1].copy()
    num = numerical_gradient(lambda a: _loss_from(model, 2, a, Y), a1)
    assert stats[0].grad_std == pytest.approx(np.std(num), rel=1e-6)
    # and the analytic gradient agrees element-wise (the backward loop is the layers')
    layer_statistics(model, X, Y)
    model.forward(X)
    dout = softmax_cross_entropy(model.outputs[-1], Y)[1]
    for layer in reversed(model.layers[2:]):
        dout = layer.backward(dout)
    assert rel_error(dout, num) < 1e-7


def test_layer_statistics_describe_the_outputs_and_leave_parameters_alone():
    model = make_mlp([5, 16, 16, 3], "sigmoid", init="lecun", rng=2)
    before = params_copy(model)
    stats = layer_statistics(model, X, Y)
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, before[k])
    out = model.outputs[stats[1].index]
    assert stats[1].mean == pytest.approx(out.mean()) and stats[1].std == pytest.approx(out.std())
    assert stats[1].saturation == saturation_fraction(out, "sigmoid")
    assert stats[1].activation == "sigmoid" and stats[1].out.shape == (32, 16)


def test_large_weights_saturate_tanh_and_sigmoid_gradients_vanish():
    tanh_big = make_mlp([5] + [32] * 4 + [3], "tanh", init=3.0, rng=0)
    assert min(s.saturation for s in layer_statistics(tanh_big, X, Y)) > 0.3
    sig = make_mlp([5] + [32] * 6 + [3], "sigmoid", init="lecun", rng=0)
    g = [s.grad_std for s in layer_statistics(sig, X, Y)]
    assert g[0] < g[-1] / 100          # vanishing toward the input


def test_format_layer_table():
    model = make_mlp([5, 8, 8, 3], "tanh", rng=0)
    text = format_layer_table(layer_statistics(model, X, Y))
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("layer") and lines[1].split()[0] == "1"
    assert "-0.000" not in text
    with pytest.raises(TypeError, match="stats must be the list of LayerStats"):
        format_layer_table("not a valid value")
    with pytest.raises(TypeError, match=r"stats\[0\] must be a LayerStats"):
        format_layer_table([{"depth": 1}])


def test_perturbation_of_a_single_linear_layer_is_exact():
    model = Sequential(Linear(5, 4, bias=False, rng=3))
    change = perturbation_propagation(model, X, rel_size=0.01, rng=5)
    W = model.layers[0].W
    direction = np.random.default_rng([5, 20150211]).standard_normal(W.shape)
    dW = 0.01 * np.linalg.norm(W) * direction / np.linalg.norm(direction)
    assert change[0] == pytest.approx(np.linalg.norm(X @ dW) / np.linalg.norm(X @ W), rel=1e-12)


def test_perturbation_restores_weights_and_is_not_the_weights_own_direction():
    # ReLU nets are positively homogeneous: were the direction W itself (same seed as the
    # model), every layer's output would change by exactly 1 %.
    model = make_mlp([5, 16, 16, 3], "relu", bias=False, rng=0)
    before = params_copy(model)
    change = perturbation_propagation(model, X, rel_size=0.01, rng=0)
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, before[k])
    assert change.shape == (len(model),)
    assert abs(change[0] - 0.01) > 1e-4


def test_perturbing_every_layer_changes_more_than_the_first_alone():
    model = make_mlp([5] + [32] * 6 + [3], "tanh", init="lecun", rng=0)
    linear = [i for i, layer in enumerate(model.layers) if isinstance(layer, Linear)]
    first = perturbation_propagation(model, X, 0.01)
    every = perturbation_propagation(model, X, 0.01, layers=linear)
    assert every[-1] > 1.5 * first[-1]
    # small perturbation => small change: first order, roughly proportional to rel_size
    tiny = perturbation_propagation(model, X, 1e-4)
    np.testing.assert_allclose(tiny * 100, first, rtol=0.05)


def test_perturbation_bad_layers():
    model = make_mlp([5, 8, 3], "tanh")
    with pytest.raises(ValueError, match="Linear layers"):
        perturbation_propagation(model, X, layers=[1])
    with pytest.raises(ValueError, match="rel_size"):
        perturbation_propagation(model, X, rel_size=0.0)


# ----------------------------------------------------------------------------- PercentileRecorder
def test_percentile_recorder_eval_mode_records_a_fixed_batch_in_eval_mode():
    model = make_mlp([5, 8, 8, 3], "sigmoid", norm="bn", rng=0)
    train(model, X, Y, lr=0.1, steps=5, batch_size=8)      # running stats differ from batch stats
    rec = PercentileRecorder(layer=3, unit=3, mode="eval", x=X, every=2)
    rec(0, model)
    rec(1, model)                        # skipped: not a multiple of every
    assert model.training                # the mode is restored
    model.eval()
    model.forward(X)
    expected = np.percentile(model.outputs[3][:, 3], [15, 50, 85])
    np.testing.assert_allclose(rec.values, expected[None])
    assert rec.steps == [0] and rec.values.shape == (1, 3)
    assert "records=1" in repr(rec) and "mode='eval'" in repr(rec)


def test_percentile_recorder_step_mode_reads_the_training_batch_output():
    net = make_mlp([5, 8, 8, 3], "relu", norm="bn", rng=0)
    rec = PercentileRecorder(layer=1, unit=2, q=(10, 50, 90))
    assert rec.mode == "step"                        # the default
    net.forward(X[:16])
    rec(7, net)
    expected = np.percentile(net.outputs[1][:, 2], [10, 50, 90])
    np.testing.assert_allclose(rec.values[0], expected)
    assert rec.steps == [7]
    with pytest.raises(RuntimeError, match="no forward pass"):
        PercentileRecorder(0, 0)(0, make_mlp([5, 3], "tanh"))


def test_percentile_recorder_step_mode_as_train_callback_records_every_step():
    net = make_mlp([5, 8, 8, 3], "relu", norm="bn", rng=0)
    rec = PercentileRecorder(layer=1, unit=0, q=(50,))
    medians = []

    def both(step, model):
        rec(step, model)
        medians.append(np.median(model.outputs[1][:, 0]))

    train(net, X, Y, lr=0.1, steps=6, batch_size=8, callback=both)
    assert rec.steps == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(rec.values[:, 0], medians)


def test_percentile_recorder_batch_stats_mode_normalizes_with_the_batch_and_keeps_running_stats():
    model = make_mlp([3, 8, 2], "sigmoid", norm="bn", rng=0)
    x = np.random.default_rng(0).normal(4.0, 3.0, size=(200, 3))
    rec = PercentileRecorder(1, unit=0, mode="batch_stats", x=x, every=5)
    rec(3, model)                                  # not a multiple of 5: ignored
    model.eval()
    rec(5, model)
    assert rec.steps == [5] and not model.training
    np.testing.assert_array_equal(model[1].running_mean, 0.0)
    p15, p50, p85 = rec.values[0]
    assert p15 < p50 < p85 and abs(p50) < 0.3 and 0.7 < p85 - p50 < 1.3   # ~N(0, 1)
    # eval mode on the same batch sees the (untouched) running statistics instead: far off
    ev = PercentileRecorder(1, unit=0, mode="eval", x=x)
    ev(0, model)
    assert abs(ev.values[0, 1] - p50) > 1.0


def test_percentile_recorder_batch_stats_mode_keeps_every_layers_running_stats():
    model = Sequential(Linear(3, 4, rng=0), BatchRenorm(4), Sigmoid(), Linear(4, 2, rng=1),
                       BatchNorm(2))
    before = [model[1].running_mean.copy(), model[4].running_var.copy()]
    x = np.random.default_rng(1).normal(2.0, 1.0, size=(20, 3))
    PercentileRecorder(1, 0, mode="batch_stats", x=x)(0, model)
    np.testing.assert_array_equal(model[1].running_mean, before[0])
    np.testing.assert_array_equal(model[4].running_var, before[1])


def test_percentile_recorder_as_train_callback_keeps_mode_and_bn_statistics():
    model = make_mlp([5, 8, 8, 3], "sigmoid", norm="bn", rng=0)
    idx = activation_indices(model)
    rec = PercentileRecorder(layer=idx[-1] - 1, unit=0, mode="eval", x=X, every=5)
    running = model.layers[1].running_mean.copy()
    rec(0, model)                                   # eval-mode probe: no running-stat update
    np.testing.assert_array_equal(model.layers[1].running_mean, running)
    assert model.training
    history = train(model, X, Y, lr=0.1, steps=20, batch_size=8, callback=rec)
    assert rec.steps == [0, 5, 10, 15, 20] and len(history.loss) == 20
    assert rec.values.shape == (5, 3)
    assert np.all(np.diff(rec.values, axis=1) >= 0)     # 15th <= 50th <= 85th


@pytest.mark.parametrize("kwargs, err, match", [
    ({"layer": 1.5, "unit": 0}, TypeError, "layer must be an integer"),
    ({"layer": 0, "unit": True}, TypeError, "unit must be an integer"),
    ({"layer": -1, "unit": 0}, ValueError, "layer must be ≥ 0"),
    ({"layer": 0, "unit": 0, "every": 0}, ValueError, "every"),
    ({"layer": 0, "unit": 0, "q": (10, 120)}, ValueError, "percentiles"),
    ({"layer": 0, "unit": 0, "mode": "train"}, ValueError, "mode must be one of"),
    ({"layer": 0, "unit": 0, "x": X}, ValueError, "takes no x"),
    ({"layer": 0, "unit": 0, "mode": "eval"}, ValueError, "pass x"),
    ({"layer": 0, "unit": 0, "mode": "batch_stats", "x": X[:1]}, ValueError, "N ≥ 2"),
    ({"layer": 0, "unit": 0, "mode": "eval", "x": X[0]}, ValueError, "shape"),
    ({"layer": 0, "unit": 0, "mode": "eval", "x": np.where(X > 2, np.inf, X)}, ValueError,
     "x contains"),
])
def test_percentile_recorder_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        PercentileRecorder(**kwargs)


def test_record_modes_are_documented():
    assert sorted(RECORD_MODES) == ["batch_stats", "eval", "step"]
    doc = PercentileRecorder.__doc__
    assert all(f'"{mode}"' in doc for mode in RECORD_MODES)


def test_percentile_recorder_out_of_range():
    model = make_mlp([5, 8, 3], "tanh")
    with pytest.raises(ValueError, match="unit 9"):
        PercentileRecorder(0, 9, mode="eval", x=X)(0, model)
    with pytest.raises(ValueError, match="layer 7"):
        PercentileRecorder(7, 0, mode="eval", x=X)(0, model)
    with pytest.raises(TypeError, match="Sequential"):
        PercentileRecorder(0, 0, mode="eval", x=X)(0, Linear(5, 3))


@pytest.mark.parametrize("mode", ["step", "eval", "batch_stats"])
def test_percentile_recorder_records_nan_when_a_diverging_run_overflows_instead_of_crashing(mode):
    # lr = 1e30 makes the weights finite but huge: the fixed batch overflows inside the
    # network at the next record (before: NonFiniteError from the callback, or inf/NaN
    # percentiles with RuntimeWarnings). The record says NaN; train reports the divergence.
    x = RNG.standard_normal((64, 4))
    y = (x[:, 0] > 0).astype(int)
    net = make_mlp([4, 16, 16, 2], "relu", norm="bn" if mode == "batch_stats" else None, rng=0)
    rec = PercentileRecorder(2, 0, mode=mode, x=None if mode == "step" else x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        if mode != "step":
            rec(0, net)
        history = train(net, x, y, lr=1e30, steps=20, batch_size=16, callback=rec)
    assert history.diverged
    values = rec.values
    assert len(values) == len(rec.steps) >= 2
    assert np.isfinite(values[0]).all()                  # before the blow-up: real numbers
    bad = ~np.isfinite(values).all(axis=1)
    assert (np.isnan(values[bad])).all()                 # whole rows of NaN, never inf
    if mode != "step":
        assert bad[-1]                                   # the last record overflowed


def test_plot_activation_histograms():
    rows = {name: layer_statistics(make_mlp([5, 8, 8, 8, 3], "tanh", init=std, rng=0), X, Y)
            for name, std in (("small", 0.05), ("large", 3.0))}
    fig = plot_activation_histograms(rows)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6
    assert visible[0].get_ylabel() == "small" and visible[0].get_title().startswith("layer 1")
    with pytest.raises(ValueError, match="empty"):
        plot_activation_histograms({})


def test_tanh_layer_class_is_recognised_in_a_hand_built_model():
    model = Sequential(Linear(5, 4, rng=0), Tanh(), Linear(4, 3, rng=1))
    assert [s.activation for s in layer_statistics(model, X, Y)] == ["tanh"]
