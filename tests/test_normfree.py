"""Weight Standardization, AGC and the normalizer-free experiments (bnutils.normfree,
bnutils.lab.normfree_runs; notebook 09)."""

import numpy as np
import pytest

from bnutils.conv import Conv2d
from bnutils.data import load_digits_split
from bnutils.gradcheck import numerical_gradient, rel_error
from bnutils.lab.normfree_runs import AGCModel, agc_runs, small_batch_runs, ws_gn_mlp
from bnutils.layers import Linear
from bnutils.models import make_mlp
from bnutils.normfree import (
    WSConv2d,
    WSLinear,
    adaptive_grad_clip,
    unitwise_norm,
    weight_standardize_backward,
    weight_standardize_forward,
)
from bnutils.residual import make_resnet


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 3, 3)])
def test_weight_standardize_forward_standardizes_each_unit(shape):
    W = np.random.default_rng(0).normal(2.0, 3.0, size=shape)
    W_hat, _ = weight_standardize_forward(W, eps=1e-12)
    axes = (0,) if len(shape) == 2 else (1, 2, 3)
    np.testing.assert_allclose(W_hat.mean(axis=axes), 0, atol=1e-12)
    np.testing.assert_allclose(W_hat.var(axis=axes), 1, rtol=1e-9)
    # invariant to each unit's scale and shift
    scale = np.arange(1, shape[1 if len(shape) == 2 else 0] + 1, dtype=float)
    scaled = W * scale + 7.0 if len(shape) == 2 else W * scale[:, None, None, None] - 7.0
    np.testing.assert_allclose(weight_standardize_forward(scaled, eps=1e-12)[0], W_hat, atol=1e-9)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 3, 3)])
def test_weight_standardize_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(1)
    W, dW_hat = rng.normal(size=shape), rng.normal(size=shape)
    W0 = W.copy()
    _, cache = weight_standardize_forward(W)
    dW = weight_standardize_backward(dW_hat, cache)
    num = numerical_gradient(lambda w: np.sum(weight_standardize_forward(w)[0] * dW_hat), W)
    assert rel_error(dW, num) < 1e-7
    np.testing.assert_array_equal(W, W0)                        # input not mutated


def test_weight_standardize_backward_wrong_formula_is_caught():
    """The finite-difference check can fail: forgetting the variance term does."""
    rng = np.random.default_rng(2)
    W, dW_hat = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    _, cache = weight_standardize_forward(W)
    wrong = cache.inv_std * (dW_hat - dW_hat.mean(axis=0, keepdims=True))
    num = numerical_gradient(lambda w: np.sum(weight_standardize_forward(w)[0] * dW_hat), W)
    assert rel_error(wrong, num) > 1e-2


def test_wslinear_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    layer = WSLinear(5, 4, rng=0)
    layer.b[...] = rng.normal(size=4)
    x, dout = rng.normal(size=(6, 5)), rng.normal(size=(6, 4))
    x0, W0 = x.copy(), layer.W.copy()
    layer.forward(x)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(layer.W, W0)                 # the raw weight is kept
    num_x = numerical_gradient(lambda v: np.sum(WSLinear_like(layer).forward(v) * dout), x)
    assert rel_error(dx, num_x) < 1e-7

    def loss_of_W(w):
        probe = WSLinear_like(layer)
        probe.W[...] = w
        return np.sum(probe.forward(x) * dout)

    assert rel_error(layer.dW, numerical_gradient(loss_of_W, layer.W)) < 1e-7
    np.testing.assert_allclose(layer.db, dout.sum(axis=0))
    layer.clear_caches()
    assert layer._x is None and layer._wcache is None
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(dout)


def WSLinear_like(layer):
    copy = WSLinear(layer.in_features, layer.out_features, rng=0)
    copy.W[...] = layer.W
    copy.b[...] = layer.b
    return copy


def test_wsconv2d_backward_matches_finite_differences():
    rng = np.random.default_rng(4)
    conv = WSConv2d(2, 3, kernel_size=3, rng=0)
    conv.b[...] = rng.normal(size=3)
    x = rng.normal(size=(2, 2, 4, 4))
    dout = rng.normal(size=(2, 3, 4, 4))
    x0 = x.copy()
    conv.forward(x)
    dx = conv.backward(dout)
    np.testing.assert_array_equal(x, x0)

    def fresh(w=None):
        c = WSConv2d(2, 3, kernel_size=3, rng=0)
        c.W[...] = conv.W if w is None else w
        c.b[...] = conv.b
        return c

    assert rel_error(dx, numerical_gradient(lambda v: np.sum(fresh().forward(v) * dout), x)) < 1e-7
    assert rel_error(conv.dW, numerical_gradient(lambda w: np.sum(fresh(w).forward(x) * dout),
                                                 conv.W)) < 1e-7
    # the forward is a Conv2d with the standardized kernel
    plain = Conv2d(2, 3, kernel_size=3, rng=0)
    plain.W[...] = weight_standardize_forward(conv.W)[0]
    plain.b[...] = conv.b
    np.testing.assert_allclose(fresh().forward(x), plain.forward(x))
    conv.clear_caches()
    with pytest.raises(RuntimeError, match="before forward"):
        conv.backward(dout)


def test_agc_hand_computed_case():
    W = np.array([[3.0, 1.0], [4.0, 0.0]])          # column norms 5 and 1
    G = np.array([[0.6, 0.0], [0.8, 0.001]])        # column norms 1 and 0.001
    W0, G0 = W.copy(), G.copy()
    clipped = adaptive_grad_clip(G, W, clipping=0.1)
    # column 0: ratio 1/5 = 0.2 > 0.1, so scaled to norm 0.1 * 5 = 0.5; column 1: 0.001 <= 0.1
    np.testing.assert_allclose(clipped, [[0.3, 0.0], [0.4, 0.001]])
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(G, G0)            # inputs not mutated


def test_agc_uses_eps_for_zero_weights_and_per_entry_units_for_vectors():
    # a SkipInit alpha at 0: the bound is clipping * eps, not 0 (the unit is not frozen)
    np.testing.assert_allclose(adaptive_grad_clip(np.array([5.0]), np.array([0.0]), 0.01, eps=1e-3),
                               [1e-5])
    # a 1-d parameter: every entry is its own unit
    out = adaptive_grad_clip(np.array([1.0, 0.001]), np.array([1.0, 1.0]), clipping=0.1)
    np.testing.assert_allclose(out, [0.1, 0.001])
    # a conv kernel: one unit per output channel
    W = np.ones((2, 1, 1, 2))                       # unit norms sqrt(2)
    G = np.stack([np.full((1, 1, 2), 10.0), np.full((1, 1, 2), 0.01)])
    out = adaptive_grad_clip(G, W, clipping=0.1)
    np.testing.assert_allclose(unitwise_norm(out).ravel(), [0.1 * np.sqrt(2), 0.01 * np.sqrt(2)])


@pytest.mark.parametrize("call, match", [
    (lambda: adaptive_grad_clip(np.ones((2, 2)), np.ones((2, 3))), "shape of param"),
    (lambda: adaptive_grad_clip(np.ones(2), np.ones(2), clipping=0), "clipping"),
    (lambda: adaptive_grad_clip(np.ones(2), np.ones(2), clipping=-1.0), "clipping"),
    (lambda: adaptive_grad_clip(np.ones(2), np.ones(2), eps=float("nan")), "eps"),
    (lambda: adaptive_grad_clip(np.array([np.nan]), np.ones(1)), "grad holds NaN"),
    (lambda: adaptive_grad_clip(np.ones((2, 2, 2)), np.ones((2, 2, 2))), "1-d .* 2-d .* 4-d"),
    (lambda: weight_standardize_forward(np.ones((1, 3))), "fan-in of at least 2"),
    (lambda: weight_standardize_forward(np.ones(3)), "2-d Linear weight"),
    (lambda: weight_standardize_forward(np.array([[np.inf], [1.0]])), "W holds NaN"),
    (lambda: weight_standardize_forward(np.ones((2, 2)), eps=0), "eps"),
    (lambda: weight_standardize_backward(np.ones((2, 2)), None), "WeightStandardizationCache"),
    (lambda: weight_standardize_backward(np.ones((3, 2)), weight_standardize_forward(np.eye(2))[1]),
     "shape of W"),
    (lambda: WSLinear(3, 2, rng=0).forward(np.ones((4, 2))), r"expects x of shape \(N, 3\)"),
    (lambda: WSConv2d(2, 3, rng=0).forward(np.ones((1, 3, 4, 4))), r"expects x of shape"),
    (lambda: AGCModel(Linear(2, 2, rng=0), clipping=0), "clipping"),
    (lambda: AGCModel("net", clipping=0.1), "bnutils Layer"),
])
def test_bad_input_is_rejected_with_a_clear_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_adaptive_grad_clip_refuses_non_numbers():
    with pytest.raises(TypeError, match="grad must be an array of real numbers"):
        adaptive_grad_clip(np.array(["a"]), np.ones(1))
    with pytest.raises(TypeError, match="clipping must be a positive number"):
        adaptive_grad_clip(np.ones(1), np.ones(1), clipping=True)


def test_agc_model_clips_every_layer_but_the_excluded_one():
    net = make_resnet(2, "skipinit", width=4, in_features=3, num_classes=2, rng=0)
    for layer in net.layers[1:3]:
        layer.branch.layers[-1].alpha[:] = 0.5
    x, dout = np.random.default_rng(5).normal(size=(8, 3)), np.full((8, 2), 100.0)
    net.forward(x)
    net.backward(dout)
    raw = {k: v.copy() for k, v in net.grads().items()}
    agc = AGCModel(net, clipping=1e-3, exclude=(net.layers[-1],))
    agc.forward(x)
    agc.backward(dout)
    head = f"{len(net.layers) - 1}."
    for name, g in net.grads().items():
        param = net.params()[name]
        if name.startswith(head):
            np.testing.assert_array_equal(g, raw[name])        # the classifier is left alone
        else:
            np.testing.assert_allclose(g, adaptive_grad_clip(raw[name], param, 1e-3))
    assert 0 < agc.clipped_units <= agc.total_units


def test_ws_gn_mlp_starts_from_make_mlp_weights():
    sizes = [6, 8, 8, 3]
    ws, gn = ws_gn_mlp(sizes, num_groups=2, rng=4), make_mlp(sizes, norm="gn", num_groups=2, rng=4)
    assert [type(layer).__name__ for layer in ws.layers] == [
        "WSLinear", "GroupNorm", "ReLU", "WSLinear", "GroupNorm", "ReLU", "Linear"]
    for a, b in zip(ws.layers, gn.layers):
        if hasattr(b, "W"):
            np.testing.assert_array_equal(a.W, b.W)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def test_small_batch_runs_reproduce_the_sweep_for_gn(digits):
    from bnutils.lab.sweeps import sweep
    res = small_batch_runs(digits, ["gn"], [16], (0,), steps=20)
    ref = sweep(digits, "batch_size", [16], seeds=(0,), norm="gn", hidden=(64, 64), lr=0.05,
                steps=20, num_groups=8)
    assert res["gn"][0, 0] == ref.accuracy[0, 0]
    with pytest.raises(ValueError, match="kinds must be among"):
        small_batch_runs(digits, ["ln"], [16], (0,), steps=1)


def test_agc_runs_report_divergence_and_clipping(digits):
    res = agc_runs(digits, [5.0], (0,), (None, 0.01), depth=2, width=8, steps=30)
    plain, clipped = res[(5.0, None)], res[(5.0, 0.01)]
    assert plain["diverged"][0] and plain["accuracy"][0] == 0.0 and plain["steps_run"][0] < 30
    assert not clipped["diverged"][0] and clipped["steps_run"][0] == 30
    assert 0 < clipped["clipped"] <= 1 and plain["clipped"] == 0.0
