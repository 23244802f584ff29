"""Tests for bnutils.bn_variants: every forward against an independent reference, every
backward against bnutils.numerical_gradient, the layers, and the bad-input errors."""

import numpy as np
import pytest

from bnutils import (
    batchnorm_backward,
    batchnorm_forward,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_forward,
    numerical_gradient,
    rel_error,
)
from bnutils.bn_variants import (
    BatchRenorm,
    BatchRenormCache,
    InstanceNormCache,
    NoisyBatchNorm,
    ShardedBatchNorm,
    WeightNormLinear,
    batchrenorm_backward,
    batchrenorm_forward,
    device_sums,
    instancenorm_backward,
    instancenorm_forward,
    rmsnorm_backward,
    rmsnorm_forward,
    sharded_batchnorm_backward,
    sharded_batchnorm_forward,
    sync_batch_stats,
    weightnorm_backward,
    weightnorm_forward,
)
from bnutils.batchnorm import BatchNorm

RNG = np.random.default_rng(7)


def _x4(shape=(3, 4, 2, 3), loc=2.0, scale=3.0):
    return RNG.normal(loc, scale, size=shape)


# ----------------------------------------------------------------------------- InstanceNorm
def test_instancenorm_forward_matches_a_direct_computation():
    x = _x4()
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    out, cache = instancenorm_forward(x, gamma, beta, eps=1e-5)
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma[None, :, None, None] + beta[None, :, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert isinstance(cache, InstanceNormCache)


def test_instancenorm_is_groupnorm_with_one_channel_per_group():
    x = _x4()
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    out, cache = instancenorm_forward(x, gamma, beta)
    out_gn, cache_gn = groupnorm_forward(x, gamma, beta, num_groups=4)
    np.testing.assert_allclose(out, out_gn, rtol=1e-12, atol=1e-12)
    dout = RNG.normal(size=x.shape)
    for a, b in zip(instancenorm_backward(dout, cache), groupnorm_backward(dout, cache_gn)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_instancenorm_backward_gradcheck():
    x = _x4((2, 3, 2, 2))
    gamma, beta = RNG.normal(size=3), RNG.normal(size=3)
    dout = RNG.normal(size=x.shape)
    _, cache = instancenorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = instancenorm_backward(dout, cache)
    num_dx = numerical_gradient(lambda v: np.sum(instancenorm_forward(v, gamma, beta)[0] * dout), x)
    num_dg = numerical_gradient(lambda g: np.sum(instancenorm_forward(x, g, beta)[0] * dout), gamma)
    num_db = numerical_gradient(lambda b: np.sum(instancenorm_forward(x, gamma, b)[0] * dout), beta)
    assert rel_error(dx, num_dx) < 1e-7
    assert rel_error(dgamma, num_dg) < 1e-7
    assert rel_error(dbeta, num_db) < 1e-7


def test_instancenorm_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        instancenorm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="H·W ≥ 2"):
        instancenorm_forward(np.ones((4, 3, 1, 1)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="gamma must have shape"):
        instancenorm_forward(_x4(), np.ones(3), np.zeros(4))
    with pytest.raises(TypeError, match="InstanceNormCache"):
        instancenorm_backward(np.ones((1, 1, 2, 2)), "not a cache")
    _, cache = instancenorm_forward(_x4(), np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="dout must have the shape"):
        instancenorm_backward(np.ones((3, 4, 2, 2)), cache)


def test_instancenorm_cache_is_read_only_and_input_untouched():
    x = _x4()
    x0 = x.copy()
    _, cache = instancenorm_forward(x, np.ones(4), np.zeros(4))
    np.testing.assert_array_equal(x, x0)
    with pytest.raises(ValueError):
        cache.x_hat[0, 0, 0, 0] = 1.0


# ----------------------------------------------------------------------------- RMSNorm
def test_rmsnorm_forward_matches_definition_and_ignores_the_scale_of_x():
    x = RNG.normal(1.0, 2.0, size=(5, 6))
    gamma = RNG.normal(size=6)
    out, _ = rmsnorm_forward(x, gamma, eps=1e-8)
    rms = np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(out, x / rms * gamma, rtol=1e-12)
    out_scaled, _ = rmsnorm_forward(7.0 * x, gamma, eps=1e-8)
    np.testing.assert_allclose(out_scaled, out, rtol=1e-7)


def test_rmsnorm_does_not_centre_unlike_layernorm():
    x = np.array([[1.0, 2.0, 3.0]])
    out, _ = rmsnorm_forward(x, np.ones(3))
    ln, _ = layernorm_forward(x, np.ones(3), np.zeros(3))
    assert abs(out.mean()) > 0.5
    assert abs(ln.mean()) < 1e-12


def test_rmsnorm_backward_gradcheck():
    x = RNG.normal(0.5, 2.0, size=(4, 5))
    gamma = RNG.normal(size=5)
    dout = RNG.normal(size=x.shape)
    _, cache = rmsnorm_forward(x, gamma)
    dx, dgamma = rmsnorm_backward(dout, cache)
    num_dx = numerical_gradient(lambda v: np.sum(rmsnorm_forward(v, gamma)[0] * dout), x)
    num_dg = numerical_gradient(lambda g: np.sum(rmsnorm_forward(x, g)[0] * dout), gamma)
    assert rel_error(dx, num_dx) < 1e-7
    assert rel_error(dgamma, num_dg) < 1e-7


def test_rmsnorm_bad_input():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        rmsnorm_forward(np.ones((2, 3, 4)), np.ones(3))
    with pytest.raises(ValueError, match="eps must be > 0"):
        rmsnorm_forward(np.ones((2, 3)), np.ones(3), eps=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        rmsnorm_forward(np.array([[1.0, np.nan]]), np.ones(2))
    with pytest.raises(TypeError, match="RMSNormCache"):
        rmsnorm_backward(np.ones((1, 2)), None)


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
    assert isinstance(cache, BatchRenormCache)


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
def test_sync_stats_from_device_sums_equal_the_whole_batch_statistics():
    x = RNG.normal(5.0, 2.0, size=(12, 3))
    shards = [x[:2], x[2:7], x[7:]]                      # unequal shards
    mean, var = sync_batch_stats(*device_sums(shards))
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-9)


def test_device_sums_of_images_count_positions():
    x = _x4((4, 2, 3, 3))
    counts, sums, sumsqs = device_sums([x[:1], x[1:]])
    assert counts.tolist() == [9, 27]
    mean, var = sync_batch_stats(counts, sums, sumsqs)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-9)


def test_sync_stats_bad_input():
    with pytest.raises(ValueError, match="positive integers"):
        sync_batch_stats([2.0, 1.0], [[1.0], [1.0]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="one row per device"):
        sync_batch_stats([2, 1], [[1.0]], [[1.0], [1.0]])
    with pytest.raises(TypeError, match="list of arrays"):
        device_sums(np.ones((4, 2)))
    with pytest.raises(ValueError, match="same feature shape"):
        device_sums([np.ones((2, 3)), np.ones((2, 4))])


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
