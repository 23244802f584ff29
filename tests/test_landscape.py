"""bnutils.lab.landscape: Santurkar et al.'s loss-landscape probes restore the model and
scale as first-order theory says; training with probes equals training without."""

import numpy as np
import pytest

from bnutils.batch_renorm import BatchRenorm
from bnutils.batchnorm import BatchNorm
from bnutils.lab.landscape import landscape_probe, loss_and_grads, train_with_probes
from bnutils.layers import Linear, ReLU, Sequential
from bnutils.models import make_mlp
from bnutils.training import train

RNG = np.random.default_rng(5)
X_SMALL = RNG.normal(size=(48, 4))
Y_SMALL = (X_SMALL[:, 0] + X_SMALL[:, 1] > 0).astype(int) + (X_SMALL[:, 2] > 1)


def _bn_net(seed=0, sizes=(4, 8, 8, 3)):
    return make_mlp(list(sizes), "relu", norm="bn", rng=seed)


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


def test_landscape_probe_restores_the_running_statistics_of_every_bn_variant():
    """Batch Renorm is no BatchNorm: the probe finds it by its running_stat_names."""
    net = Sequential(Linear(4, 8, rng=0), BatchRenorm(8), ReLU(), Linear(8, 8, rng=1),
                     BatchNorm(8), ReLU(), Linear(8, 3, rng=2))
    saved = [(i, name, getattr(net[i], name).copy())
             for i in (1, 4) for name in ("running_mean", "running_var")]
    landscape_probe(net, X_SMALL[:16] + 3.0, Y_SMALL[:16], [0.1, 0.5])
    for i, name, value in saved:
        np.testing.assert_array_equal(getattr(net[i], name), value)


def test_landscape_probe_restores_the_model_when_it_raises():
    net = _bn_net()
    before = {k: v.copy() for k, v in net.params().items()}
    running = net.layers[1].running_var.copy()
    with pytest.raises(ValueError):
        landscape_probe(net, X_SMALL[:16], Y_SMALL[:15], [0.1])     # one label short
    for k, v in net.params().items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(net.layers[1].running_var, running)


def test_landscape_probe_of_a_smooth_model_scales_linearly_for_small_steps():
    net = make_mlp([4, 3], rng=0)                   # softmax regression: a smooth loss
    small = landscape_probe(net, X_SMALL, Y_SMALL, [1e-4])
    double = landscape_probe(net, X_SMALL, Y_SMALL, [2e-4])
    assert double["grad_change"] / small["grad_change"] == pytest.approx(2.0, rel=1e-3)
    assert double["beta"] == pytest.approx(small["beta"], rel=1e-3)
    # first order: the loss drops by about eta * ||g||^2
    assert small["loss_range"] == pytest.approx(1e-4 * small["grad_norm"] ** 2, rel=1e-2)


def test_landscape_probe_bad_input():
    with pytest.raises(ValueError, match="step_sizes"):
        landscape_probe(_bn_net(), X_SMALL, Y_SMALL, [])
    with pytest.raises(ValueError, match="step_sizes"):
        landscape_probe(_bn_net(), X_SMALL, Y_SMALL, [0.1, -0.1])
    with pytest.raises(TypeError, match="Sequential"):
        landscape_probe(BatchNorm(4), X_SMALL, Y_SMALL, [0.1])
    with pytest.raises(TypeError, match="step_sizes must be a sequence"):
        landscape_probe(_bn_net(), X_SMALL, Y_SMALL, "0.1")
    with pytest.raises(ValueError, match=r"step_sizes\[0\] must be finite"):
        landscape_probe(_bn_net(), X_SMALL, Y_SMALL, [np.inf])
    with pytest.raises(TypeError, match="model must be a layer"):
        loss_and_grads("net", X_SMALL, Y_SMALL)


def test_train_with_probes_checks_step_sizes_before_training():
    net = _bn_net()
    W0 = net[0].W.copy()
    with pytest.raises(ValueError, match=r"step_sizes\[1\] must be > 0"):
        train_with_probes(net, X_SMALL, Y_SMALL, lr=0.1, steps=8, batch_size=8,
                          step_sizes=[0.1, -0.1], every=4)
    np.testing.assert_array_equal(net[0].W, W0)   # before: it failed after 4 steps of training


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
    with pytest.raises(TypeError, match="every"):
        train_with_probes(_bn_net(), X_SMALL, Y_SMALL, lr=0.1, steps=2, batch_size=8,
                          step_sizes=[0.1], every=2.0)
