"""bnutils.residual: Residual and SkipInit (gradient-checked), the residual-network builder,
the stream variances and gradient norms at initialization, bad input, no mutation."""

import numpy as np
import pytest

from bnutils import BatchNorm, Linear, ReLU, Sequential
from bnutils.conv import Conv2d
from bnutils.gradcheck import numerical_gradient, rel_error
from bnutils.inference import frozen_running_stats
from bnutils.layers import iter_layers
from bnutils.models import make_mlp
from bnutils.residual import (
    BRANCHES,
    Residual,
    SkipInit,
    gradient_norms,
    make_resnet,
    residual_block,
    stream_variances,
)
from bnutils.training import evaluate, sgd_step, train


def _x(n=16, d=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


@pytest.mark.parametrize("branch", sorted(BRANCHES))
def test_blocks_gradient_checked(branch):
    block = residual_block(5, branch, rng=1)
    if branch == "skipinit":
        block.branch[-1].alpha[:] = 0.7          # at α = 0 the branch's own gradient is trivial
    if branch == "bn_zero_gamma":
        block.branch[-1].gamma[:] = 0.3
    x = _x(8, 5)
    dout = np.random.default_rng(2).standard_normal((8, 5))
    block.forward(x)
    dx = block.backward(dout)
    num = numerical_gradient(lambda v: np.sum(block.forward(v) * dout), x)
    assert rel_error(dx, num) < 1e-6
    block.forward(x)
    block.backward(dout)
    for name, p in block.params().items():
        analytic = block.grads()[name].copy()

        def f(v, p=p):
            saved = p.copy()
            p[...] = v
            try:
                return np.sum(block.forward(x) * dout)
            finally:
                p[...] = saved

        assert rel_error(analytic, numerical_gradient(f, p)) < 1e-6, name


def test_residual_adds_its_input_and_both_gradient_paths():
    branch = Sequential(ReLU(), Linear(4, 4, bias=False, rng=0))
    block = Residual(branch)
    x = _x(3, 4)
    out = block.forward(x)
    np.testing.assert_allclose(out, x + branch.forward(x))
    dout = np.ones((3, 4))
    block.forward(x)
    np.testing.assert_allclose(block.backward(dout), dout + branch.backward(dout))


def test_residual_works_with_conv_branches():
    block = Residual(Sequential(ReLU(), Conv2d(2, 2, bias=False, rng=0), BatchNorm(2)))
    x = np.random.default_rng(1).standard_normal((3, 2, 4, 4))
    dout = np.random.default_rng(2).standard_normal(x.shape)
    block.forward(x)
    dx = block.backward(dout)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(block.forward(v) * dout), x)) < 1e-6


def test_residual_params_children_modes_and_running_stats():
    net = make_resnet(2, "bn", width=4, rng=0)
    block = net[1]
    assert block.children() == [block.branch]
    assert sorted(block.params()) == ["0.1.W", "0.2.beta", "0.2.gamma"]
    assert "1.0.2.gamma" in net.params()
    assert sum(isinstance(layer, BatchNorm) for layer in iter_layers(net)) == 2
    net.eval()
    assert not block.branch[2].training
    net.train()
    assert block.branch[2].training
    x = _x(8, 64)
    before = block.branch[2].running_mean.copy()
    with frozen_running_stats(net):
        net.forward(x)
    np.testing.assert_array_equal(block.branch[2].running_mean, before)
    net.forward(x)
    assert not np.array_equal(block.branch[2].running_mean, before)


def test_sgd_updates_parameters_inside_residual_blocks():
    net = make_resnet(1, "skipinit", width=4, rng=0)
    x, y = _x(8, 64), np.arange(8) % 10
    from bnutils.layers import softmax_cross_entropy
    _, d = softmax_cross_entropy(net.forward(x), y)
    net.backward(d)
    alpha = net[1].branch[2].alpha
    assert alpha[0] == 0.0 and net.grads()["1.0.2.alpha"][0] != 0.0
    sgd_step(net, lr=0.1)
    assert alpha[0] != 0.0


def test_skipinit():
    s = SkipInit(0.5)
    x = _x(3, 2)
    np.testing.assert_allclose(s.forward(x), 0.5 * x)
    dout = np.ones((3, 2))
    np.testing.assert_allclose(s.backward(dout), 0.5 * dout)
    assert s.dalpha[0] == pytest.approx(np.sum(x))
    assert s.params()["alpha"].shape == (1,)
    num = numerical_gradient(lambda a: np.sum(SkipInit(float(a[0])).forward(x) * dout), s.alpha)
    assert rel_error(s.dalpha, num) < 1e-8
    assert repr(SkipInit()) == "SkipInit(alpha=0)"


@pytest.mark.parametrize("branch", ["bn_zero_gamma", "skipinit"])
def test_identity_at_init_but_learns(branch):
    block = residual_block(6, branch, rng=0)
    x = _x(10, 6)
    np.testing.assert_array_equal(block.forward(x), x)
    dout = np.random.default_rng(3).standard_normal(x.shape)
    np.testing.assert_array_equal(block.backward(dout), dout)
    grads = block.grads()
    key = "0.2.gamma" if branch == "bn_zero_gamma" else "0.2.alpha"
    assert np.any(grads[key] != 0.0)          # the scale that was zeroed gets a gradient


def test_make_resnet_structure_and_same_weights_for_every_branch():
    nets = {b: make_resnet(3, b, width=8, rng=4) for b in BRANCHES}
    for net in nets.values():
        assert len(net) == 3 + 3
        assert all(isinstance(layer, Residual) for layer in net.layers[1:4])
        assert net.forward(_x(5, 64)).shape == (5, 10)
        ws = [layer.W for layer in iter_layers(net) if isinstance(layer, Linear)]
        ref = [layer.W for layer in iter_layers(nets["none"]) if isinstance(layer, Linear)]
        for w, r in zip(ws, ref, strict=True):
            np.testing.assert_array_equal(w, r)
    assert make_resnet(0, width=8).forward(_x(2, 64)).shape == (2, 10)


def test_stream_variance_laws():
    """No normalization: the variance roughly doubles per block; BN at the end of the branch:
    it grows by about 1 per block; zero-init γ and SkipInit: it stays put."""
    x = _x(512, 64, seed=5)
    mean = {b: np.mean([stream_variances(make_resnet(16, b, rng=s), x) for s in range(3)], axis=0)
            for b in BRANCHES}
    growth = mean["none"][1:] / mean["none"][:-1]
    assert 1.6 < np.exp(np.mean(np.log(growth))) < 2.4
    slope = np.polyfit(np.arange(17), mean["bn"], 1)[0]
    assert 0.8 < slope < 1.3
    assert 0.5 < np.polyfit(np.arange(17), mean["bn_start"], 1)[0] < 1.1
    for b in ("bn_zero_gamma", "skipinit"):
        np.testing.assert_allclose(mean[b], mean[b][0], rtol=1e-12)


def test_stream_variances_of_images_and_bad_models():
    net = Sequential(Conv2d(1, 2, rng=0), *[Residual(Sequential(ReLU(), Conv2d(2, 2, rng=i)))
                                            for i in range(3)])
    v = stream_variances(net, np.random.default_rng(0).standard_normal((4, 1, 5, 5)))
    assert v.shape == (4,) and np.all(v > 0)
    with pytest.raises(TypeError, match="Sequential"):
        stream_variances(Linear(2, 2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="no Residual"):
        stream_variances(Sequential(Linear(2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="stem"):
        stream_variances(Sequential(residual_block(2, "none")), np.ones((2, 2)))


def test_gradient_norms():
    x, y = _x(32, 64, seed=1), np.arange(32) % 10
    net = make_mlp([64, 32, 32, 10], "relu", rng=0)
    norms, dx_norm = gradient_norms(net, x, y)
    from bnutils.layers import softmax_cross_entropy
    _, d = softmax_cross_entropy(net.forward(x), y)
    dx = net.backward(d)
    np.testing.assert_allclose(norms, [np.linalg.norm(layer.dW) for layer in net.layers
                                       if isinstance(layer, Linear)])
    assert dx_norm == pytest.approx(np.linalg.norm(dx))
    res_norms, _ = gradient_norms(make_resnet(4, "bn", width=8), x, y)
    assert res_norms.shape == (6,)


def test_bn_makes_plain_deep_relu_gradients_grow_towards_the_input():
    """The measurement notebook 08 makes (Yang et al. 2019): with BN, a deep plain ReLU
    network's weight gradients grow towards the input at initialization; without BN (He
    init) they stay within a small factor."""
    x, y = _x(128, 64, seed=2), np.arange(128) % 10
    plain, _ = gradient_norms(make_mlp([64] + [64] * 20 + [10], "relu", rng=0), x, y)
    bn, _ = gradient_norms(make_mlp([64] + [64] * 20 + [10], "relu", norm="bn", bias=False,
                                    rng=0), x, y)
    assert bn[0] / bn[-2] > 20
    assert 0.1 < plain[0] / plain[-2] < 10


def test_train_and_evaluate_a_residual_network():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 64))
    y = (X[:, 0] > 0).astype(int)
    for branch in ("bn", "bn_zero_gamma", "skipinit"):
        net = make_resnet(4, branch, width=8, num_classes=2, rng=0)
        h = train(net, X, y, lr=0.1, steps=60, batch_size=32, X_test=X, y_test=y, eval_every=60)
        assert not h.diverged and h.final_accuracy > 0.8, branch
        assert evaluate(net, X, y)[0] == pytest.approx(h.final_accuracy)


def test_inputs_never_mutated():
    x = _x(8, 6)
    x_copy = x.copy()
    block = residual_block(6, "bn", rng=0)
    out = block.forward(x)
    dout = np.ones_like(out)
    block.backward(dout)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dout, 1.0)
    s = SkipInit(2.0)
    s.forward(x)
    np.testing.assert_array_equal(x, x_copy)


@pytest.mark.parametrize(("call", "err", "fragment"), [
    (lambda: Residual("not a layer"), TypeError, "branch must be a layer"),
    (lambda: Residual(Linear(3, 2)).forward(np.ones((2, 3))), ValueError, "keep the shape"),
    (lambda: Residual(ReLU()).backward(np.ones((2, 3))), RuntimeError, "before forward"),
    (lambda: SkipInit(np.ones(2)), ValueError, "single number"),
    (lambda: SkipInit("a"), TypeError, "alpha"),
    (lambda: SkipInit(float("nan")), ValueError, "alpha"),
    (lambda: SkipInit().backward(np.ones(2)), RuntimeError, "before forward"),
    (lambda: SkipInit().grads(), RuntimeError, "before backward"),
    (lambda: residual_block(4, "batchnorm"), ValueError, "branch must be one of"),
    (lambda: residual_block(0, "bn"), ValueError, "width"),
    (lambda: residual_block(2.5, "bn"), TypeError, "width"),
    (lambda: make_resnet(-1), ValueError, "depth"),
    (lambda: make_resnet(True), TypeError, "depth"),
    (lambda: make_resnet(2, "bn", width=0), ValueError, "width"),
    # issue 17: True is not α = 1; an empty x; a model that is not a layer
    (lambda: SkipInit(True), TypeError, "alpha must be a real number, got True"),
    (lambda: SkipInit("0.5"), TypeError, "alpha must be a real number, got '0.5'"),
    (lambda: SkipInit(0.5).forward(np.ones((4, 0))), ValueError, "x must hold at least one value"),
    (lambda: gradient_norms("resnet", np.ones((2, 64)), np.zeros(2, dtype=int)), TypeError,
     "model must be a layer"),
])
def test_bad_input_names_the_problem(call, err, fragment):
    with pytest.raises(err) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_wrong_dout_shape_and_no_stale_cache():
    block = residual_block(3, "none", rng=0)
    block.forward(_x(4, 3))
    with pytest.raises(ValueError, match="dout must have the shape"):
        block.backward(np.ones((4, 2)))
    with pytest.raises(ValueError):
        block.forward(np.ones((4, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        block.backward(np.ones((4, 3)))
