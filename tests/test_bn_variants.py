"""Tests for bnutils.batch_renorm, sharded_bn, noisy_bn and weight_norm (Batch Renorm,
sharded/SyncBN, noisy BN, weight norm): every
forward against an independent reference, every backward against bnutils.numerical_gradient,
the layers (parameters, running statistics, errors before forward/backward), and the
bad-input errors."""

import numpy as np
import pytest

from bnutils.batch_renorm import BatchRenorm, BatchRenormCache, batchrenorm_backward, batchrenorm_forward
from bnutils.batchnorm import (
    BatchNorm,
    BatchNormCache,
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference_backward,
    update_running_stats,
)
from bnutils.gradcheck import numerical_gradient, rel_error
from bnutils.noisy_bn import NoisyBatchNorm
from bnutils.sharded_bn import (
    ShardedBatchNorm,
    device_stats,
    merge_batch_stats,
    sharded_batchnorm_backward,
    sharded_batchnorm_forward,
)
from bnutils.weight_norm import WeightNormLinear, weightnorm_backward, weightnorm_forward

RNG = np.random.default_rng(7)


def _x4(shape=(3, 4, 2, 3), loc=2.0, scale=3.0):
    return RNG.normal(loc, scale, size=shape)


# ----------------------------------------------------------------------------- Batch Renormalization
def test_batchrenorm_with_r1_d0_limits_is_plain_bn():
    x = RNG.normal(3.0, 2.0, size=(6, 4))
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    out, cache = batchrenorm_forward(x, gamma, beta, RNG.normal(size=4), np.full(4, 5.0),
                                     r_max=1.0, d_max=0.0)
    out_bn, cache_bn = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out, out_bn, rtol=1e-12, atol=1e-12)
    dout = RNG.normal(size=x.shape)
    for a, b in zip(batchrenorm_backward(dout, cache), batchnorm_backward(dout, cache_bn)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_batchrenorm_unclipped_output_equals_eval_mode_output():
    x = RNG.normal(3.0, 2.0, size=(8, 3))
    running_mean, running_var = np.array([2.5, 3.0, 3.5]), np.array([3.0, 4.0, 5.0])
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0])
    out, cache = batchrenorm_forward(x, gamma, beta, running_mean, running_var, r_max=10, d_max=10)
    expected = gamma * (x - running_mean) / np.sqrt(running_var + 1e-5) + beta
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    assert isinstance(cache, BatchRenormCache) and isinstance(cache.bn, BatchNormCache)
    np.testing.assert_allclose(cache.bn.mean, x.mean(axis=0), rtol=1e-12)      # batch statistics
    np.testing.assert_allclose(cache.bn.var, x.var(axis=0), rtol=1e-12)
    assert not cache.r.flags.writeable and not cache.x_hat.flags.writeable


def test_batchrenorm_clips_r_and_d():
    x = np.array([[0.0], [100.0]])                    # batch std 50, mean 50
    _, cache = batchrenorm_forward(x, np.ones(1), np.zeros(1), np.zeros(1), np.ones(1),
                                   r_max=3.0, d_max=5.0)
    assert cache.r[0] == pytest.approx(3.0)
    assert cache.d[0] == pytest.approx(5.0)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 2, 2)])
def test_batchrenorm_backward_gradcheck_with_r_and_d_held_constant(shape):
    x = RNG.normal(1.0, 2.0, size=shape)
    C = shape[1]
    gamma, beta = RNG.normal(size=C), RNG.normal(size=C)
    running_mean, running_var = RNG.normal(size=C), RNG.uniform(0.5, 3.0, size=C)
    dout = RNG.normal(size=shape)
    _, cache = batchrenorm_forward(x, gamma, beta, running_mean, running_var)
    r, d = np.array(cache.r), np.array(cache.d)
    view = (1, -1) if len(shape) == 2 else (1, -1, 1, 1)

    def out_fixed(xv, g=gamma, b=beta):              # the forward with r, d frozen (stop-gradient)
        x_bn, _ = batchnorm_forward(xv, np.ones(C), np.zeros(C))
        return g.reshape(view) * (x_bn * r.reshape(view) + d.reshape(view)) + b.reshape(view)

    dx, dgamma, dbeta = batchrenorm_backward(dout, cache)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(out_fixed(v) * dout), x)) < 1e-7
    assert rel_error(dgamma, numerical_gradient(lambda g: np.sum(out_fixed(x, g=g) * dout),
                                                gamma)) < 1e-7
    assert rel_error(dbeta, numerical_gradient(lambda b: np.sum(out_fixed(x, b=b) * dout),
                                               beta)) < 1e-7


def test_batchrenorm_bad_input():
    x = np.ones((4, 2))
    with pytest.raises(ValueError, match="r_max must be ≥ 1"):
        batchrenorm_forward(x, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2), r_max=0.5)
    with pytest.raises(ValueError, match="d_max"):
        batchrenorm_forward(x, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2), d_max=-1.0)
    with pytest.raises(ValueError, match="running_var must be ≥ 0"):
        batchrenorm_forward(x, np.ones(2), np.zeros(2), np.zeros(2), -np.ones(2))
    with pytest.raises(ValueError, match="running_mean must have shape"):
        batchrenorm_forward(x, np.ones(2), np.zeros(2), np.zeros(3), np.ones(2))
    with pytest.raises(ValueError, match="at least 2 values"):
        batchrenorm_forward(np.ones((1, 2)), np.ones(2), np.zeros(2), np.zeros(2), np.ones(2))
    with pytest.raises(TypeError, match="BatchRenormCache"):
        batchrenorm_backward(x, object())


def test_batchrenorm_layer_trains_and_evaluates():
    layer = BatchRenorm(3, momentum=0.5)
    x = RNG.normal(2.0, 3.0, size=(10, 3))
    out = layer.forward(x)
    assert out.shape == (10, 3)
    np.testing.assert_allclose(layer.running_mean, 0.5 * x.mean(axis=0))
    np.testing.assert_allclose(layer.running_var, 0.5 + 0.5 * x.var(axis=0, ddof=1))
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and set(layer.grads()) == {"gamma", "beta"}
    layer.eval()
    single = layer.forward(x[:1])                       # one sample is fine in eval mode
    expected = (x[:1] - layer.running_mean) / np.sqrt(layer.running_var + 1e-5)
    np.testing.assert_allclose(single, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="BatchRenorm"):
        layer.forward(np.ones((2, 4)))
    assert "BatchRenorm(3" in repr(layer)


# ----------------------------------------------------------------------------- Weight Normalization
def test_weightnorm_forward_gives_columns_of_length_g_and_is_scale_invariant_in_v():
    v = RNG.normal(size=(5, 3))
    g = np.array([1.0, 2.0, 3.0])
    W, _ = weightnorm_forward(v, g)
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), g)
    W2, _ = weightnorm_forward(10.0 * v, g)
    np.testing.assert_allclose(W2, W, rtol=1e-12)


def test_weightnorm_backward_gradcheck():
    v = RNG.normal(size=(4, 3))
    g = RNG.normal(size=3)
    dW = RNG.normal(size=(4, 3))
    _, cache = weightnorm_forward(v, g)
    dv, dg = weightnorm_backward(dW, cache)
    assert rel_error(dv, numerical_gradient(lambda a: np.sum(weightnorm_forward(a, g)[0] * dW), v)) < 1e-7
    assert rel_error(dg, numerical_gradient(lambda b: np.sum(weightnorm_forward(v, b)[0] * dW), g)) < 1e-7
    np.testing.assert_allclose(np.sum(dv * v, axis=0), 0.0, atol=1e-12)  # dv ⟂ v


def test_weightnorm_linear_layer_gradients():
    layer = WeightNormLinear(4, 3, rng=0)
    x = RNG.normal(size=(5, 4))
    dout = RNG.normal(size=(5, 3))

    def loss_v(v):
        W, _ = weightnorm_forward(v, layer.g)
        return np.sum((x @ W + layer.b) * dout)

    layer.forward(x)
    dx = layer.backward(dout)
    assert rel_error(layer.dv, numerical_gradient(loss_v, layer.v)) < 1e-7
    np.testing.assert_allclose(dx, dout @ layer.W.T)
    assert set(layer.params()) == set(layer.grads()) == {"v", "g", "b"}
    with pytest.raises(ValueError, match="WeightNormLinear"):
        layer.forward(np.ones((2, 5)))


def test_weightnorm_bad_input():
    with pytest.raises(ValueError, match="all zeros"):
        weightnorm_forward(np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="g must have shape"):
        weightnorm_forward(np.ones((3, 2)), np.ones(3))
    _, cache = weightnorm_forward(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="dW must have the shape"):
        weightnorm_backward(np.ones((2, 3)), cache)
    with pytest.raises(TypeError, match="WeightNormCache"):
        weightnorm_backward(np.ones((3, 2)), None)


# ----------------------------------------------------------------------------- NoisyBatchNorm
def test_noisy_bn_applies_a_new_scale_and_shift_at_every_step():
    layer = NoisyBatchNorm(4, shift=1.0, scale=2.0, rng=0)
    x = RNG.normal(size=(16, 4))
    out1 = layer.forward(x)
    s1, m1 = layer.last_scale.copy(), layer.last_shift.copy()
    clean, _ = batchnorm_forward(x, np.ones(4), np.zeros(4))
    np.testing.assert_allclose(out1, clean * s1 + m1, rtol=1e-12)
    np.testing.assert_allclose(out1.mean(axis=0), m1, atol=1e-12)   # the mean is the shift
    layer.forward(x)
    assert not np.allclose(layer.last_scale, s1)
    assert np.all((layer.last_scale >= 0.5) & (layer.last_scale <= 2.0))
    assert np.all(np.abs(layer.last_shift) <= 1.0)


def test_noisy_bn_backward_gradcheck_for_fixed_noise():
    layer = NoisyBatchNorm(3, shift=0.5, scale=3.0, rng=1)
    x = RNG.normal(size=(6, 3))
    dout = RNG.normal(size=(6, 3))
    layer.forward(x)
    s, m = layer.last_scale.copy(), layer.last_shift.copy()
    dx = layer.backward(dout)
    num = numerical_gradient(
        lambda v: np.sum((batchnorm_forward(v, np.ones(3), np.zeros(3))[0] * s + m) * dout), x)
    assert rel_error(dx, num) < 1e-7
    np.testing.assert_allclose(layer.dbeta, (dout * s).sum(axis=0))


def test_noisy_bn_is_plain_bn_in_eval_mode_and_checks_its_arguments():
    layer = NoisyBatchNorm(2, rng=0)
    layer.forward(RNG.normal(size=(8, 2)))
    layer.eval()
    reference = BatchNorm(2)
    reference.running_mean, reference.running_var = layer.running_mean, layer.running_var
    x = RNG.normal(size=(3, 2))
    np.testing.assert_allclose(layer.forward(x), reference.eval().forward(x))
    layer.backward(np.ones((3, 2)))                      # eval-mode backward works too
    with pytest.raises(ValueError, match="scale must be ≥ 1"):
        NoisyBatchNorm(2, scale=0.5)
    with pytest.raises(ValueError, match="shift"):
        NoisyBatchNorm(2, shift=-1.0)
    assert "NoisyBatchNorm(2" in repr(layer)


# ----------------------------------------------------------------------------- synchronized BN
def test_merged_device_stats_equal_the_whole_batch_statistics():
    x = RNG.normal(5.0, 2.0, size=(12, 3))
    shards = [x[:2], x[2:7], x[7:]]                      # unequal shards
    counts, means, m2s = device_stats(shards)
    assert counts.tolist() == [2, 5, 5]
    np.testing.assert_allclose(means[1], x[2:7].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(m2s[1], 5 * x[2:7].var(axis=0), rtol=1e-13)
    mean, var = merge_batch_stats(counts, means, m2s)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-12)


def test_device_stats_of_images_count_positions():
    x = _x4((4, 2, 3, 3))
    counts, means, m2s = device_stats([x[:1], x[1:]])
    assert counts.tolist() == [9, 27]
    mean, var = merge_batch_stats(counts, means, m2s)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)


def test_merge_is_stable_when_the_mean_dwarfs_the_spread():
    """E[x²] − E[x]² from devices' sums was off by ~650 at mean 1e8 (issue 17); Chan's merge
    of centred sums of squares is exact to rounding."""
    x = 1e8 + np.random.default_rng(0).normal(size=(16, 3))
    mean, var = merge_batch_stats(*device_stats([x[:4], x[4:8], x[8:12], x[12:]]))
    reference = x.astype(np.longdouble)
    ref_var = ((reference - reference.mean(axis=0)) ** 2).mean(axis=0)
    np.testing.assert_allclose(var, ref_var.astype(float), rtol=1e-7)
    np.testing.assert_allclose(mean, reference.mean(axis=0).astype(float), rtol=1e-15)


def test_device_stats_are_float64_for_float32_shards():
    x = (1e4 + 1e-2 * RNG.normal(size=(8, 2))).astype(np.float32)
    counts, means, m2s = device_stats([x[:4], x[4:]])
    assert means.dtype == m2s.dtype == np.float64
    np.testing.assert_allclose(means[0], x[:4].astype(np.float64).mean(axis=0), rtol=1e-15)


def test_device_and_merge_stats_bad_input():
    with pytest.raises(ValueError, match="positive integers"):
        merge_batch_stats([2.0, 1.0], [[1.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="positive integers"):
        merge_batch_stats([], np.ones((0, 1)), np.ones((0, 1)))
    with pytest.raises(ValueError, match="one row per device"):
        merge_batch_stats([2, 1], [[1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="m2s must be ≥ 0"):
        merge_batch_stats([2, 1], [[1.0], [1.0]], [[1.0], [-1.0]])
    with pytest.raises(ValueError, match="m2s contains 1 non-finite"):
        merge_batch_stats([2, 1], [[1.0], [1.0]], [[1.0], [np.nan]])
    with pytest.raises(TypeError, match="list of arrays"):
        device_stats(np.ones((4, 2)))
    with pytest.raises(TypeError, match="list of arrays"):
        device_stats([])
    with pytest.raises(ValueError, match="same feature shape"):
        device_stats([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match=r"x_shards\[1\] is empty"):
        device_stats([np.ones((2, 3)), np.ones((0, 3))])     # was a ZeroDivisionError
    with pytest.raises(ValueError, match=r"x_shards\[0\] holds values too large"):
        device_stats([np.array([[1e200], [-1e200]])])


def test_synced_sharded_bn_equals_bn_on_the_whole_batch():
    x = RNG.normal(2.0, 3.0, size=(12, 4))
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    dout = RNG.normal(size=x.shape)
    out, cache = sharded_batchnorm_forward(x, gamma, beta, num_devices=4, sync=True)
    out_bn, cache_bn = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out, out_bn, rtol=1e-9, atol=1e-12)
    for a, b in zip(sharded_batchnorm_backward(dout, cache), batchnorm_backward(dout, cache_bn)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_per_device_sharded_bn_equals_bn_on_each_shard():
    x = RNG.normal(2.0, 3.0, size=(12, 4))
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    dout = RNG.normal(size=x.shape)
    out, cache = sharded_batchnorm_forward(x, gamma, beta, num_devices=3)
    dx, dgamma, dbeta = sharded_batchnorm_backward(dout, cache)
    for k in range(3):
        rows = slice(4 * k, 4 * k + 4)
        o, c = batchnorm_forward(x[rows], gamma, beta)
        np.testing.assert_allclose(out[rows], o, rtol=1e-12)
        np.testing.assert_allclose(dx[rows], batchnorm_backward(dout[rows], c)[0], rtol=1e-9,
                                   atol=1e-12)
    np.testing.assert_allclose(dbeta, dout.sum(axis=0))


@pytest.mark.parametrize("sync", [False, True])
def test_sharded_bn_backward_gradcheck(sync):
    x = RNG.normal(size=(12, 2))                         # 4 samples per device
    gamma, beta = RNG.normal(size=2), RNG.normal(size=2)
    dout = RNG.normal(size=x.shape)
    _, cache = sharded_batchnorm_forward(x, gamma, beta, 3, sync=sync)
    dx, dgamma, _ = sharded_batchnorm_backward(dout, cache)
    f = lambda v: np.sum(sharded_batchnorm_forward(v, gamma, beta, 3, sync=sync)[0] * dout)
    assert rel_error(dx, numerical_gradient(f, x)) < 1e-6
    fg = lambda g: np.sum(sharded_batchnorm_forward(x, g, beta, 3, sync=sync)[0] * dout)
    assert rel_error(dgamma, numerical_gradient(fg, gamma)) < 1e-7


def test_sharded_bn_bad_input():
    x = np.ones((6, 2))
    with pytest.raises(ValueError, match="does not split evenly"):
        sharded_batchnorm_forward(x, np.ones(2), np.zeros(2), 4)
    with pytest.raises(ValueError, match="at least 2 samples"):
        sharded_batchnorm_forward(x, np.ones(2), np.zeros(2), 6)
    with pytest.raises(TypeError, match="sync must be"):
        sharded_batchnorm_forward(x, np.ones(2), np.zeros(2), 2, sync="yes")
    with pytest.raises(ValueError, match="num_devices must be ≥ 1"):
        sharded_batchnorm_forward(x, np.ones(2), np.zeros(2), 0)
    with pytest.raises(ValueError, match="at least 2 samples in the batch"):
        sharded_batchnorm_forward(np.ones((1, 2)), np.ones(2), np.zeros(2), 1, sync=True)
    # one sample per device is allowed when the statistics are synchronized
    out, _ = sharded_batchnorm_forward(RNG.normal(size=(6, 2)), np.ones(2), np.zeros(2), 6, sync=True)
    assert out.shape == (6, 2)


def test_sharded_bn_layer_running_stats_and_eval():
    x = RNG.normal(1.0, 2.0, size=(8, 3))
    per_device = ShardedBatchNorm(3, num_devices=4, momentum=1.0)
    per_device.forward(x)
    np.testing.assert_allclose(per_device.running_mean, x[:2].mean(axis=0))   # device 0's
    np.testing.assert_allclose(per_device.running_var, x[:2].var(axis=0, ddof=1))
    synced = ShardedBatchNorm(3, num_devices=4, sync=True, momentum=1.0)
    synced.forward(x)
    np.testing.assert_allclose(synced.running_mean, x.mean(axis=0))
    np.testing.assert_allclose(synced.running_var, x.var(axis=0, ddof=1))
    dx = synced.backward(np.ones_like(x))
    assert dx.shape == x.shape
    synced.eval()
    assert synced.forward(x[:1]).shape == (1, 3)
    assert synced.backward(np.ones((1, 3))).shape == (1, 3)
    with pytest.raises(TypeError, match="sync"):
        ShardedBatchNorm(3, num_devices=2, sync=1)
    assert "num_devices=4" in repr(synced)


# ----------------------------------------------------------------------------- the layer contract
LAYERS = {
    "BatchRenorm": lambda: BatchRenorm(3),
    "NoisyBatchNorm": lambda: NoisyBatchNorm(3, rng=0),
    "ShardedBatchNorm": lambda: ShardedBatchNorm(3, num_devices=2),
    "ShardedBatchNorm-sync": lambda: ShardedBatchNorm(3, num_devices=2, sync=True),
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_bn_variant_layers_declare_parameters_and_running_statistics(make):
    layer = make()
    assert layer.param_names == ("gamma", "beta")
    assert layer.running_stat_names == ("running_mean", "running_var")
    assert set(layer.params()) == {"gamma", "beta"}
    with pytest.raises(RuntimeError, match=r"grads\(\) called before backward"):
        layer.grads()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones((4, 3)))
    x = RNG.normal(size=(4, 3))
    layer.forward(x)
    layer.backward(np.ones_like(x))
    assert set(layer.grads()) == {"gamma", "beta"}
    # a forward that raises leaves no stale cache behind
    with pytest.raises(ValueError):
        layer.forward(np.ones((4, 5)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones_like(x))


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_bn_variant_layers_blend_running_stats_with_the_one_rule(make):
    """The running statistics are update_running_stats of the statistics the layer used."""
    layer = make()
    layer.momentum = 0.3
    layer.running_mean, layer.running_var = np.array([1.0, -1.0, 0.5]), np.array([2.0, 0.5, 1.0])
    x = RNG.normal(1.0, 2.0, size=(6, 3))
    used = x[:3] if isinstance(layer, ShardedBatchNorm) and not layer.sync else x
    expected = update_running_stats(layer.running_mean, layer.running_var, momentum=0.3,
                                    mean=used.mean(axis=0), var=used.var(axis=0),
                                    count=used.shape[0])
    layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, expected[0], rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, expected[1], rtol=1e-12)


def test_batchrenorm_layer_on_images_counts_every_position():
    layer = BatchRenorm(2, momentum=1.0)
    x = _x4((3, 2, 2, 2))
    layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    assert layer.backward(np.ones_like(x)).shape == x.shape


def test_batchrenorm_eval_mode_backward_is_bn_inference_backward():
    layer = BatchRenorm(3)
    layer.forward(RNG.normal(2.0, 3.0, size=(10, 3)))
    layer.gamma[:] = [0.5, 2.0, -1.0]
    layer.eval()
    x, dout = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    layer.forward(x)
    dx = layer.backward(dout)
    expected = batchnorm_inference_backward(dout, x, layer.gamma, layer.running_mean,
                                            layer.running_var, layer.eps)
    np.testing.assert_allclose(dx, expected[0], rtol=1e-12)
    np.testing.assert_allclose(layer.dgamma, expected[1], rtol=1e-12)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(layer.forward(v) * dout), x)) < 1e-7


def test_weightnorm_linear_declares_its_parameters_and_refuses_early_calls():
    layer = WeightNormLinear(4, 3, rng=0)
    assert layer.param_names == ("v", "g", "b") and layer.running_stat_names == ()
    with pytest.raises(RuntimeError, match=r"WeightNormLinear.grads\(\) called before backward"):
        layer.grads()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones((2, 3)))
    layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        layer.backward(np.ones((2, 4)))
    with pytest.raises(ValueError):
        layer.forward(np.ones((2, 5)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones((2, 3)))


def test_noisy_bn_backward_checks_the_shape_of_dout():
    layer = NoisyBatchNorm(3, rng=0)
    layer.forward(RNG.normal(size=(4, 3)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        layer.backward(np.ones((4, 1)))


# ----------------------------------------------------------------------------- issue 17 regressions
@pytest.mark.parametrize("dtype, loc, scale, tol", [
    (np.float64, 1e8, 1.0, 1e-7),        # the one-pass merge was off by up to 647 here
    (np.float32, 1e4, 1e-2, 1e-4),       # ... and by 1.85 here
    (np.float64, 2.0, 3.0, 1e-12),
    (np.float32, 2.0, 3.0, 1e-5),
])
def test_synced_sharded_bn_equals_bn_on_the_whole_batch_within_the_dtype(dtype, loc, scale, tol):
    x = (loc + scale * np.random.default_rng(1).normal(size=(16, 3))).astype(dtype)
    gamma, beta = np.ones(3, dtype), np.zeros(3, dtype)
    out, cache = sharded_batchnorm_forward(x, gamma, beta, num_devices=4, sync=True)
    out_bn, cache_bn = batchnorm_forward(x, gamma, beta)
    assert out.dtype == dtype
    assert np.abs(out - out_bn).max() < tol                   # normalized units
    np.testing.assert_allclose(cache.var[0], cache_bn.var, rtol=10 * tol)
    dout = np.random.default_rng(2).normal(size=x.shape).astype(dtype)
    for a, b in zip(sharded_batchnorm_backward(dout, cache), batchnorm_backward(dout, cache_bn)):
        assert np.abs(a - b).max() <= 20 * tol * max(1.0, np.abs(b).max())


def test_synced_sharded_bn_running_variance_is_the_batch_variance():
    """The running variance came out 0.9 instead of ≈ 1.0 at mean 1e8 (issue 17)."""
    x = 1e8 + np.random.default_rng(0).normal(size=(16, 3))
    layer = ShardedBatchNorm(3, num_devices=4, sync=True, momentum=1.0)
    layer.forward(x)
    np.testing.assert_allclose(layer.running_var, (x - 1e8).var(axis=0, ddof=1), rtol=1e-6)


def test_sharded_bn_per_device_float32_with_a_large_mean_matches_bn_per_shard():
    x = (1e4 + 1e-2 * RNG.normal(size=(12, 3))).astype(np.float32)
    out, _ = sharded_batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), 3)
    for k in range(3):
        o, _ = batchnorm_forward(x[4 * k:4 * k + 4], np.ones(3, np.float32),
                                 np.zeros(3, np.float32))
        assert np.abs(out[4 * k:4 * k + 4] - o).max() < 1e-4


def test_sharded_bn_refuses_a_variance_beyond_the_dtype():
    x = np.array([[3e30], [-3e30], [1e30], [-1e30]], np.float32)
    with pytest.raises(ValueError, match="exceeds the largest float32"):
        sharded_batchnorm_forward(x, np.ones(1, np.float32), np.zeros(1, np.float32), 2, sync=True)


def test_sharded_bn_layer_takes_a_list_and_names_x():
    x = RNG.normal(size=(4, 3))
    layer = ShardedBatchNorm(3, num_devices=2)
    np.testing.assert_allclose(layer.forward(x.tolist()), ShardedBatchNorm(3, 2).forward(x))
    with pytest.raises(TypeError, match="^x must be"):
        layer.forward([["a", "b", "c"]] * 4)
    with pytest.raises(ValueError, match="at least 2 samples in the batch"):
        ShardedBatchNorm(3, 1, sync=True).forward(np.ones((1, 3)))     # was ZeroDivisionError


def test_recalibrate_batchnorm_handles_a_sharded_bn_network():
    from bnutils.inference import recalibrate_batchnorm
    from bnutils.layers import Linear, Sequential

    X = RNG.normal(size=(16, 3))
    net = Sequential(Linear(3, 4, rng=0), ShardedBatchNorm(4, num_devices=2))
    precise = recalibrate_batchnorm(net, X, batch_size=4)
    hidden = Linear(3, 4, rng=0).forward(X)
    assert precise[1].momentum == 0.1                            # restored
    assert np.all(np.isfinite(precise[1].running_mean))
    assert not np.allclose(precise[1].running_mean, 0.0)
    np.testing.assert_allclose(precise[1].running_mean.mean(), hidden.mean(axis=0).mean(),
                               atol=0.5)
    with pytest.raises(ValueError, match="does not split evenly across num_devices=2"):
        recalibrate_batchnorm(net, X[:9], batch_size=3)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"r_max": "3"}, TypeError, "r_max must be a real number"),
    ({"r_max": 0.5}, ValueError, "r_max must be ≥ 1"),
    ({"r_max": float("nan")}, ValueError, "r_max must be finite"),
    ({"d_max": -1}, ValueError, "d_max must be a finite number ≥ 0"),
    ({"d_max": "5"}, TypeError, "d_max must be a real number"),
    ({"d_max": True}, TypeError, "d_max must be a real number"),
    ({"momentum": 5}, ValueError, r"momentum must lie in \[0, 1\]"),
    ({"eps": 0}, ValueError, "eps must be > 0"),
])
def test_batchrenorm_checks_its_hyperparameters_in_the_constructor_and_on_assignment(
        kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchRenorm(3, **kwargs)
    layer = BatchRenorm(3)
    (name, value), = kwargs.items()
    with pytest.raises(error, match=match):
        setattr(layer, name, value)
    layer.forward(RNG.normal(size=(4, 3)))                      # the old value still works
    assert "BatchRenorm(3" in repr(layer)
    if name != "momentum":                  # the pure function checks the others too
        with pytest.raises(error, match=match):
            batchrenorm_forward(RNG.normal(size=(4, 3)), np.ones(3), np.zeros(3), np.zeros(3),
                                np.ones(3), **kwargs)


def test_batchrenorm_d_max_zero_is_plain_bn():
    x = RNG.normal(2.0, 3.0, size=(6, 3))
    out, _ = batchrenorm_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3),
                                 r_max=1, d_max=0)
    np.testing.assert_allclose(out, batchnorm_forward(x, np.ones(3), np.zeros(3))[0])
    assert BatchRenorm(3, r_max=1, d_max=0).d_max == 0.0


@pytest.mark.parametrize("make", [lambda: BatchRenorm(3), lambda: WeightNormLinear(3, 3, rng=0)],
                         ids=["BatchRenorm", "WeightNormLinear"])
def test_eval_mode_backward_and_grads_before_backward(make):
    layer = make()
    with pytest.raises(RuntimeError, match=r"grads\(\) called before backward"):
        layer.grads()
    layer.eval()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones((2, 3)))
    x = RNG.normal(size=(2, 3))
    layer.forward(x)
    assert layer.backward(np.ones((2, 3))).shape == (2, 3)
    assert set(layer.grads()) == set(layer.param_names)


@pytest.mark.parametrize("shape", [(6, 0), (2, 0, 3, 3)])
def test_batchrenorm_and_sharded_bn_name_an_empty_x(shape):
    """x with no features is the mistake: the error names x, not gamma (whose (3,) only fails
    to match the zero features)."""
    p = np.ones(3)
    with pytest.raises(ValueError, match=r"^x must have at least one (feature|channel) \(axis 1\)"):
        batchrenorm_forward(np.zeros(shape), p, p, p, p)
    if len(shape) == 2:
        with pytest.raises(ValueError, match=r"^x must have at least one feature \(axis 1\)"):
            sharded_batchnorm_forward(np.zeros(shape), p, p, 3)


def _bn_or_error(fn):
    try:
        return fn()[0]
    except ValueError as exc:
        return exc


@pytest.mark.parametrize(("dtype", "scale"), [
    (np.float64, 1.0), (np.float64, 1e100), (np.float64, 1e153),
    (np.float64, 8e153),     # squares overflow, the variance fits: device_stats raised here
    (np.float64, 1e155), (np.float64, 1e300),                   # the variance is beyond float64
    (np.float32, 1.0), (np.float32, 1e17), (np.float32, 1e20),  # ... beyond float32
])
@pytest.mark.parametrize("sync", [False, True])
def test_sharded_bn_matches_batchnorm_forward_at_every_magnitude(dtype, scale, sync):
    """Normalization does not depend on the scale of x: where batchnorm_forward gives an
    answer (on the whole batch with sync, on each device's shard without), so does sharded
    BN, the same one; where it raises a ValueError (a variance beyond the dtype), so does
    sharded BN."""
    x = (scale * np.random.default_rng(3).normal(0.5, 1.0, size=(16, 3))).astype(dtype)
    one, zero = np.ones(3, dtype), np.zeros(3, dtype)
    shards = [x] if sync else [x[:8], x[8:]]
    expected = [_bn_or_error(lambda s=s: batchnorm_forward(s, one, zero)) for s in shards]
    got = _bn_or_error(lambda: sharded_batchnorm_forward(x, one, zero, 2, sync=sync))
    if any(isinstance(e, ValueError) for e in expected):
        assert isinstance(got, ValueError) and "exceeds the largest" in str(got), got
        return
    assert not isinstance(got, Exception), got
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert got.dtype == dtype and np.isfinite(got).all()
    assert np.abs(got - np.concatenate(expected)).max() < tol


def test_sharded_bn_matches_batchnorm_where_one_outlier_overflows_the_squares():
    """One value of 3e154 in a batch near 1e153: its square overflows float64, the batch
    variance (≈ 3.3e307) does not; batchnorm_forward rescales (bnutils._moments), and so
    must sharded BN, synchronized or not (it raised "too large to square")."""
    x = np.random.default_rng(0).normal(size=(12, 3)) * 1e153
    x[5, 1] = 3e154
    one, zero = np.ones(3), np.zeros(3)
    out, cache = sharded_batchnorm_forward(x, one, zero, 2, sync=True)
    out_bn, cache_bn = batchnorm_forward(x, one, zero)
    assert np.abs(out - out_bn).max() < 1e-12
    np.testing.assert_allclose(cache.var[0], cache_bn.var, rtol=1e-12)
    out, _ = sharded_batchnorm_forward(x, one, zero, 2)
    assert np.abs(out[:6] - batchnorm_forward(x[:6], one, zero)[0]).max() < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("num_devices", "sync"), [(1, False), (3, False), (4, True), (2, True)])
def test_sharded_bn_rescaled_statistics_are_the_plain_ones_bit_for_bit(monkeypatch, dtype,
                                                                      num_devices, sync):
    """The overflow-safe path divides by powers of two, which is exact: forced onto ordinary
    inputs it returns the plain path's numbers exactly (so switching paths at the overflow
    limit changes nothing)."""
    import bnutils.sharded_bn as bv

    rng = np.random.default_rng(5)
    for loc, scale in ((0.0, 1.0), (1e4, 1e-2), (-3.0, 1e3)):
        x = rng.normal(loc, scale, size=(12, 3)).astype(dtype)
        gamma, beta = rng.normal(1.0, 0.5, 3).astype(dtype), rng.normal(size=3).astype(dtype)
        plain = sharded_batchnorm_forward(x, gamma, beta, num_devices, sync=sync)
        with monkeypatch.context() as m:
            m.setattr(bv, "_PLAIN_LIMIT", 0.0)
            rescaled = sharded_batchnorm_forward(x, gamma, beta, num_devices, sync=sync)
        assert np.array_equal(plain[0], rescaled[0])
        for name in ("x_hat", "inv_std", "mean", "var"):
            assert np.array_equal(getattr(plain[1], name), getattr(rescaled[1], name)), name


@pytest.mark.parametrize(("dtype", "scale"), [(np.float64, 1e155), (np.float64, 1e300),
                                              (np.float32, 1e20)])
def test_weightnorm_refuses_a_v_too_large_to_square(dtype, scale):
    """‖v‖ overflowed to inf and W = g · v / inf came out 0 everywhere, with only a warning."""
    v = (scale * np.random.default_rng(0).normal(size=(3, 2))).astype(dtype)
    with pytest.raises(ValueError, match=rf"^v holds values too large to square in "
                                         rf"{np.dtype(dtype).name}"):
        weightnorm_forward(v, np.ones(2, dtype))


@pytest.mark.parametrize(("dtype", "scale"), [(np.float64, 1e-161), (np.float64, 1e-170),
                                              (np.float32, 1e-22)])
def test_weightnorm_refuses_a_v_too_small_to_square(dtype, scale):
    """Squares in the subnormal range lose digits: W was off by 3% at 1e-161 (and by 6% in
    float32 at 1e-22), and at 1e-170 the message said the columns were all zeros."""
    v = (np.random.default_rng(0).normal(size=(3, 2)) * scale).astype(dtype)
    with pytest.raises(ValueError, match=r"^v holds values too small to square accurately"):
        weightnorm_forward(v, np.ones(2, dtype))
    v[:, 1] = 0.0                                   # a column of zeros is named as such
    with pytest.raises(ValueError, match=r"columns \[1\] are all zeros"):
        weightnorm_forward(v, np.ones(2, dtype))


@pytest.mark.parametrize(("dtype", "scales", "tol"), [
    (np.float64, (1e-150, 1e-100, 1e100, 1e150), 1e-15),
    (np.float32, (1e-18, 1e-10, 1e10, 1e18), 1e-6)])
def test_weightnorm_is_scale_invariant_up_to_the_limits(dtype, scales, tol):
    v = np.random.default_rng(1).normal(size=(4, 3)).astype(dtype)
    g = np.array([0.5, 1.0, 2.0], dtype)
    W, _ = weightnorm_forward(v, g)
    for scale in scales:
        assert np.abs(weightnorm_forward(v * dtype(scale), g)[0] - W).max() <= tol


def test_merge_batch_stats_names_means_and_m2s_when_the_merged_variance_overflows():
    with pytest.raises(ValueError, match=r"^the merged variance overflows float64: the device "
                                         r"statistics means .* and m2s .* are too large"):
        merge_batch_stats([2, 2], [[1e300], [-1e300]], [[1.0], [1.0]])
