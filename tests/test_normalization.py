"""LayerNorm, GroupNorm, InstanceNorm and RMSNorm (bnutils.normalization): forward against
independent references, backward against numerical gradients, the special cases G = 1 and
G = C, batch independence, dtypes, immutability, float32 stability, and their layers."""

import dataclasses

import numpy as np
import pytest

from bnutils.batchnorm import batchnorm_forward
from bnutils.gradcheck import numerical_gradient, rel_error
from bnutils.normalization import (
    GroupNorm,
    GroupNormCache,
    InstanceNorm,
    LayerNorm,
    LayerNormCache,
    RMSNorm,
    RMSNormCache,
    groupnorm_backward,
    groupnorm_forward,
    instancenorm_backward,
    instancenorm_forward,
    layernorm_backward,
    layernorm_forward,
    rmsnorm_backward,
    rmsnorm_forward,
)

RNG = np.random.default_rng(7)


def _x4(shape=(3, 4, 2, 3), loc=2.0, scale=3.0):
    return RNG.normal(loc, scale, size=shape)


def make_data(shape, seed=0, dtype=np.float64):
    """Each sample has its own offset and scale (what LN/GN remove); per-channel gamma, beta."""
    rng = np.random.default_rng(seed)
    N, C = shape[:2]
    rest = (1,) * (len(shape) - 1)
    x = rng.uniform(-3, 3, (N,) + rest) + rng.uniform(0.5, 2, (N,) + rest) * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, C) * rng.choice([-1.0, 1.0], C)
    beta = rng.uniform(-1, 1, C)
    dout = rng.standard_normal(shape)
    return x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), dout.astype(dtype)


def affine(x_hat, gamma, beta):
    shape = (1, -1) + (1,) * (x_hat.ndim - 2)
    return x_hat * gamma.reshape(shape) + beta.reshape(shape)


def reference_layernorm(x, gamma, beta, eps=1e-5):
    out = np.empty_like(x, dtype=np.float64)
    for n in range(x.shape[0]):
        row = x[n].astype(np.float64)
        out[n] = (row - row.mean()) / np.sqrt(row.var() + eps) * gamma + beta
    return out


def reference_groupnorm(x, gamma, beta, G, eps=1e-5):
    """Explicit loops: sample n, group g holds channels g*C/G ... (g+1)*C/G - 1 (and all of H, W)."""
    x = np.asarray(x, dtype=np.float64)
    C = x.shape[1]
    k = C // G
    x_hat = np.empty_like(x)
    for n in range(x.shape[0]):
        for g in range(G):
            block = x[n, g * k:(g + 1) * k]
            x_hat[n, g * k:(g + 1) * k] = (block - block.mean()) / np.sqrt(block.var() + eps)
    return affine(x_hat, gamma, beta)


# --------------------------------------------------------------------------- LayerNorm


@pytest.mark.parametrize("shape", [(4, 5), (6, 3), (1, 7)])
def test_layernorm_forward_matches_reference(shape):
    x, gamma, beta, _ = make_data(shape, seed=1)
    out, cache = layernorm_forward(x, gamma, beta, eps=1e-3)
    np.testing.assert_allclose(out, reference_layernorm(x, gamma, beta, eps=1e-3), rtol=1e-12, atol=1e-12)
    assert isinstance(cache, LayerNormCache) and not isinstance(cache, tuple)
    assert cache.inv_std.shape == (shape[0], 1)


def test_layernorm_normalizes_each_sample():
    x, _, _, _ = make_data((5, 6), seed=2)
    out, _ = layernorm_forward(x, np.ones(6), np.zeros(6), eps=1e-14)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(out.std(axis=1), 1.0, rtol=1e-10)
    # a sample's output does not depend on the rest of the batch
    for i in range(5):
        np.testing.assert_allclose(layernorm_forward(x[i:i + 1], np.ones(6), np.zeros(6), eps=1e-14)[0],
                                   out[i:i + 1], rtol=1e-14, atol=1e-15)


def test_layernorm_identity_is_recoverable_for_a_single_sample():
    x = np.array([[1.0, 4.0, -2.0, 5.0]])
    eps = 1e-5
    gamma = np.full(4, np.sqrt(x.var() + eps))
    beta = np.full(4, x.mean())
    out, _ = layernorm_forward(x, gamma, beta, eps=eps)
    np.testing.assert_allclose(out, x, rtol=1e-12)


def test_layernorm_is_batchnorm_of_the_transpose():
    x, _, _, _ = make_data((4, 6), seed=3)
    ln, _ = layernorm_forward(x, np.ones(6), np.zeros(6))
    bn, _ = batchnorm_forward(x.T, np.ones(4), np.zeros(4))
    np.testing.assert_allclose(ln, bn.T, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", [(4, 5), (3, 4), (1, 6)])
def test_layernorm_backward_matches_numerical_gradient(shape):
    x, gamma, beta, dout = make_data(shape, seed=5)
    _, cache = layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    num_dx = numerical_gradient(lambda x_: np.sum(layernorm_forward(x_, gamma, beta)[0] * dout), x)
    num_dg = numerical_gradient(lambda g_: np.sum(layernorm_forward(x, g_, beta)[0] * dout), gamma)
    num_db = numerical_gradient(lambda b_: np.sum(layernorm_forward(x, gamma, b_)[0] * dout), beta)
    assert rel_error(dx, num_dx) < 1e-7
    assert rel_error(dgamma, num_dg) < 1e-7
    assert rel_error(dbeta, num_db) < 1e-7


def test_layernorm_backward_identities():
    x, gamma, beta, dout = make_data((5, 4), seed=5)
    _, cache = layernorm_forward(x, gamma, beta, eps=1e-14)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    np.testing.assert_allclose(dx.sum(axis=1), 0.0, atol=1e-13)               # per sample
    np.testing.assert_allclose(np.sum(dx * cache.x_hat, axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(dbeta, dout.sum(0), rtol=1e-13)
    np.testing.assert_allclose(dgamma, np.sum(dout * cache.x_hat, axis=0), rtol=1e-13)


# --------------------------------------------------------------------------- GroupNorm

# Groups hold >= 3 values (one value per group is refused: see below).
GN_CASES = [((4, 8), 2), ((4, 6), 1), ((3, 6), 2), ((3, 4, 2, 3), 2), ((2, 6, 3, 2), 3),
            ((2, 4, 2, 2), 4), ((2, 3, 2, 2), 1)]
GN_IDS = ["2d-G2", "2d-G1", "2d-G=C/3", "4d-G2", "4d-G3", "4d-G=C", "4d-G1"]


@pytest.mark.parametrize("shape, G", GN_CASES, ids=GN_IDS)
def test_groupnorm_forward_matches_reference(shape, G):
    x, gamma, beta, _ = make_data(shape, seed=6)
    if shape[1] == G and len(shape) == 2:
        return  # one value per group: covered by test_groupnorm_one_value_per_group
    out, cache = groupnorm_forward(x, gamma, beta, G, eps=1e-3)
    np.testing.assert_allclose(out, reference_groupnorm(x, gamma, beta, G, eps=1e-3), rtol=1e-12,
                               atol=1e-12)
    assert isinstance(cache, GroupNormCache)
    assert cache.num_groups == G and cache.inv_std.shape == (shape[0], G)
    assert cache.count == x[0].size // G


@pytest.mark.parametrize("shape, G", [((3, 4), 4), ((2, 3, 1, 1), 3)])
def test_groupnorm_refuses_one_value_per_group(shape, G):
    """Issue 25: groups of one value gave beta everywhere, while instance norm (and batch norm)
    refuse one value per statistic; every normalization now refuses it alike."""
    x, gamma, beta, _ = make_data(shape, seed=7)
    with pytest.raises(ValueError, match="group norm needs at least 2 values per group.*x has "
                                         "shape"):
        groupnorm_forward(x, gamma[:shape[1]], beta[:shape[1]], num_groups=G)


def test_layernorm_refuses_one_feature():
    """Issue 25: LayerNorm over a single feature gave beta whatever the input."""
    with pytest.raises(ValueError, match="layer norm needs at least 2 features per sample"):
        layernorm_forward(np.array([[1.0], [2.0]]), np.ones(1), np.zeros(1))


def test_groupnorm_with_one_group_is_layernorm():
    x, gamma, beta, _ = make_data((5, 6), seed=8)
    gn, _ = groupnorm_forward(x, gamma, beta, num_groups=1)
    ln, _ = layernorm_forward(x, gamma, beta)
    np.testing.assert_allclose(gn, ln, rtol=1e-13, atol=1e-14)


def test_groupnorm_with_one_group_per_channel_is_instance_norm():
    x, _, _, _ = make_data((2, 3, 4, 4), seed=9)
    out, _ = groupnorm_forward(x, np.ones(3), np.zeros(3), num_groups=3, eps=1e-14)
    np.testing.assert_allclose(out.mean(axis=(2, 3)), 0.0, atol=1e-14)
    np.testing.assert_allclose(out.std(axis=(2, 3)), 1.0, rtol=1e-10)


def test_groupnorm_groups_consecutive_channels():
    # channels 0,1 in group 0 and 2,3 in group 1: only the statistics of the own group matter
    x = np.array([[1.0, 3.0, 100.0, 300.0]])
    out, _ = groupnorm_forward(x, np.ones(4), np.zeros(4), num_groups=2, eps=1e-12)
    np.testing.assert_allclose(out, [[-1.0, 1.0, -1.0, 1.0]], rtol=1e-9)


@pytest.mark.parametrize("shape, G", GN_CASES, ids=GN_IDS)
def test_groupnorm_backward_matches_numerical_gradient(shape, G):
    x, gamma, beta, dout = make_data(shape, seed=10)
    _, cache = groupnorm_forward(x, gamma, beta, G)
    dx, dgamma, dbeta = groupnorm_backward(dout, cache)
    assert dx.shape == x.shape and dgamma.shape == dbeta.shape == (shape[1],)
    num_dx = numerical_gradient(lambda x_: np.sum(groupnorm_forward(x_, gamma, beta, G)[0] * dout), x)
    num_dg = numerical_gradient(lambda g_: np.sum(groupnorm_forward(x, g_, beta, G)[0] * dout), gamma)
    num_db = numerical_gradient(lambda b_: np.sum(groupnorm_forward(x, gamma, b_, G)[0] * dout), beta)
    assert rel_error(dx, num_dx) < 1e-7
    assert rel_error(dgamma, num_dg) < 1e-7
    assert rel_error(dbeta, num_db) < 1e-7


def test_groupnorm_backward_sums_to_zero_per_group():
    x, gamma, beta, dout = make_data((3, 4, 2, 2), seed=11)
    _, cache = groupnorm_forward(x, gamma, beta, 2)
    dx, _, _ = groupnorm_backward(dout, cache)
    np.testing.assert_allclose(dx.reshape(3, 2, -1).sum(axis=2), 0.0, atol=1e-13)


# --------------------------------------------------------------------------- InstanceNorm
def test_instancenorm_forward_matches_a_direct_computation():
    x = _x4()
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    out, cache = instancenorm_forward(x, gamma, beta, eps=1e-5)
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma[None, :, None, None] + beta[None, :, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert isinstance(cache, GroupNormCache)            # IN is GroupNorm with G = C
    assert cache.num_groups == 4 and cache.inv_std.shape == (3, 4) and cache.count == 6


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
    with pytest.raises(TypeError, match="GroupNormCache returned by instancenorm_forward"):
        instancenorm_backward(np.ones((1, 1, 2, 2)), "not a cache")
    _, cache = instancenorm_forward(_x4(), np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="dout must have the shape"):
        instancenorm_backward(np.ones((3, 4, 2, 2)), cache)
    _, gn_cache = groupnorm_forward(_x4(), np.ones(4), np.zeros(4), num_groups=2)
    with pytest.raises(ValueError, match="num_groups=2 .* use groupnorm_backward"):
        instancenorm_backward(np.ones((3, 4, 2, 3)), gn_cache)


def test_instancenorm_cache_is_read_only_and_input_untouched():
    x = _x4()
    x0 = x.copy()
    _, cache = instancenorm_forward(x, np.ones(4), np.zeros(4))
    np.testing.assert_array_equal(x, x0)
    with pytest.raises(ValueError):
        cache.x_hat[0, 0, 0, 0] = 1.0

def test_instancenorm_float32_matches_float64_for_a_large_mean_and_a_small_spread():
    """Issue 17: IN at mean 1e4, std 1e-2 was off by 0.06 in float32; as GroupNorm with
    G = C it gets the residual correction of the mean (GN's error there: ~2e-7)."""
    rng = np.random.default_rng(17)
    x32 = (1e4 + 1e-2 * rng.standard_normal((2, 3, 8, 8))).astype(np.float32)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    out, _ = instancenorm_forward(x32, ones, zeros)
    x64 = x32.astype(np.float64)                     # the same values, computed in float64
    mean = x64.mean(axis=(2, 3), keepdims=True)
    ref = (x64 - mean) / np.sqrt(x64.var(axis=(2, 3), keepdims=True) + 1e-5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- RMSNorm
def test_rmsnorm_forward_matches_definition_and_ignores_the_scale_of_x():
    x = RNG.normal(1.0, 2.0, size=(5, 6))
    gamma = RNG.normal(size=6)
    out, cache = rmsnorm_forward(x, gamma, eps=1e-8)
    rms = np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(out, x / rms * gamma, rtol=1e-12)
    assert isinstance(cache, RMSNormCache) and cache.inv_rms.shape == (5, 1)
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
    with pytest.raises(ValueError, match="at least one feature"):
        rmsnorm_forward(np.ones((2, 0)), np.ones(0))

def test_rmsnorm_is_layernorm_for_rows_with_zero_mean():
    x = RNG.normal(size=(4, 6))
    x -= x.mean(axis=1, keepdims=True)
    gamma = RNG.normal(size=6)
    out, _ = rmsnorm_forward(x, gamma, eps=1e-5)
    ln, _ = layernorm_forward(x, gamma, np.zeros(6), eps=1e-5)
    np.testing.assert_allclose(out, ln, rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------- dtypes, inputs, caches


def _run_all(dtype):
    x, gamma, beta, dout = make_data((4, 6), seed=12, dtype=dtype)
    x4, g4, b4, d4 = make_data((2, 4, 3, 3), seed=13, dtype=dtype)
    out_ln, c_ln = layernorm_forward(x, gamma, beta)
    out_gn, c_gn = groupnorm_forward(x4, g4, b4, 2)
    out_in, c_in = instancenorm_forward(x4, g4, b4)
    out_rms, c_rms = rmsnorm_forward(x, gamma)
    return [out_ln, c_ln.x_hat, *layernorm_backward(dout, c_ln), out_gn, c_gn.x_hat,
            *groupnorm_backward(d4, c_gn), out_in, *instancenorm_backward(d4, c_in),
            out_rms, c_rms.inv_rms, *rmsnorm_backward(dout, c_rms)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    for arr in _run_all(dtype):
        assert arr.dtype == dtype


def test_float32_agrees_with_float64():
    for a32, a64 in zip(_run_all(np.float32), _run_all(np.float64)):
        np.testing.assert_allclose(a32, a64, rtol=2e-5, atol=2e-5)


def test_integer_input_is_promoted_to_float64():
    x = np.array([[1, 2, 4], [0, 5, 1]])
    out, _ = layernorm_forward(x, [1, 1, 1], [0, 0, 0])
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, reference_layernorm(x, np.ones(3), np.zeros(3)), rtol=1e-12)
    out, _ = groupnorm_forward(np.arange(16).reshape(2, 2, 2, 2), [1, 1], [0, 0], 1)
    assert out.dtype == np.float64


def test_inputs_are_not_modified():
    x, gamma, beta, dout = make_data((4, 6), seed=14)
    x4, g4, b4, d4 = make_data((2, 4, 2, 2), seed=15)
    args = [x, gamma, beta, dout, x4, g4, b4, d4]
    copies = [a.copy() for a in args]
    _, c = layernorm_forward(x, gamma, beta)
    layernorm_backward(dout, c)
    _, c = groupnorm_forward(x4, g4, b4, 2)
    groupnorm_backward(d4, c)
    _, c = instancenorm_forward(x4, g4, b4)
    instancenorm_backward(d4, c)
    _, c = rmsnorm_forward(x, gamma)
    rmsnorm_backward(dout, c)
    for a, cp in zip(args, copies):
        np.testing.assert_array_equal(a, cp)
        assert a.flags.writeable


def test_caches_are_frozen_and_snapshot_gamma():
    x, gamma, beta, dout = make_data((4, 6), seed=16)
    _, c_ln = layernorm_forward(x, gamma, beta)
    _, c_gn = groupnorm_forward(x, gamma, beta, 3)
    _, c_rms = rmsnorm_forward(x, gamma)
    expected = [layernorm_backward(dout, c_ln), groupnorm_backward(dout, c_gn),
                rmsnorm_backward(dout, c_rms)]
    for cache in (c_ln, c_gn, c_rms):
        with pytest.raises(dataclasses.FrozenInstanceError):
            cache.eps = 0.1
        assert not cache.x_hat.flags.writeable and not cache.gamma.flags.writeable
    assert not c_rms.inv_rms.flags.writeable and not c_gn.inv_std.flags.writeable
    gamma *= 2.0                      # the caller's gamma is still writable ...
    got = [layernorm_backward(dout, c_ln), groupnorm_backward(dout, c_gn),
           rmsnorm_backward(dout, c_rms)]
    for g, e in zip(got, expected):  # ... and the caches kept their own copy
        for a, b in zip(g, e):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("which", ["layernorm", "groupnorm-2d", "groupnorm-4d", "rmsnorm"])
def test_float32_is_stable_for_inputs_with_a_large_mean(which):
    rng = np.random.default_rng(17)
    shape = (8, 64) if which != "groupnorm-4d" else (4, 8, 4, 4)
    x32 = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    C = shape[1]
    ones, zeros = np.ones(C, np.float32), np.zeros(C, np.float32)
    if which == "layernorm":
        out, _ = layernorm_forward(x32, ones, zeros)
        ref = reference_layernorm(x32.astype(np.float64), np.ones(C), np.zeros(C))
    elif which == "rmsnorm":
        out, _ = rmsnorm_forward(x32, ones)
        x64 = x32.astype(np.float64)
        ref = x64 / np.sqrt(np.mean(x64**2, axis=1, keepdims=True) + 1e-8)
    else:
        out, _ = groupnorm_forward(x32, ones, zeros, 4)
        ref = reference_groupnorm(x32, np.ones(C), np.zeros(C), 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-6)


# --------------------------------------------------------------------------- the layers


@pytest.mark.parametrize("layer, shape", [
    (LayerNorm(5), (4, 5)),
    (GroupNorm(6, num_groups=2), (4, 6)),   # 3 values per group (2 would always give ±1)
    (GroupNorm(4, num_groups=2), (3, 4, 2, 3)),
    (InstanceNorm(3), (2, 3, 2, 3)),
    (RMSNorm(5), (4, 5)),
], ids=["LayerNorm", "GroupNorm-2d", "GroupNorm-4d", "InstanceNorm", "RMSNorm"])
def test_norm_layers_match_numerical_gradients(layer, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    for name in layer.param_names:
        getattr(layer, name)[:] = rng.normal(size=getattr(layer, name).shape)
    dout = rng.normal(size=shape)
    layer.forward(x)
    dx = layer.backward(dout)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(layer.forward(v) * dout), x)) < 1e-7
    gamma = layer.gamma.copy()

    def loss_of_gamma(g):
        layer.gamma[:] = g
        return np.sum(layer.forward(x) * dout)

    dgamma_num = numerical_gradient(loss_of_gamma, gamma)
    layer.gamma[:] = gamma
    layer.forward(x)
    layer.backward(dout)
    assert rel_error(layer.grads()["gamma"], dgamma_num) < 1e-7
    assert set(layer.grads()) == set(layer.params()) == set(layer.param_names)
    if "beta" in layer.param_names:
        assert np.allclose(layer.grads()["beta"], dout.sum(axis=(0,) if len(shape) == 2 else (0, 2, 3)))


def test_norm_layers_declare_their_parameters_and_keep_no_running_statistics():
    assert LayerNorm(3).param_names == GroupNorm(4, 2).param_names == ("gamma", "beta")
    assert InstanceNorm(3).param_names == ("gamma", "beta")
    assert RMSNorm(3).param_names == ("gamma",) and set(RMSNorm(3).params()) == {"gamma"}
    for layer in (LayerNorm(3), GroupNorm(4, 2), InstanceNorm(3), RMSNorm(3)):
        assert layer.running_stat_names == ()


def test_instance_norm_layer_is_group_norm_with_one_channel_per_group():
    x = _x4((2, 4, 3, 3))
    layer = InstanceNorm(4)
    assert isinstance(layer, GroupNorm) and layer.num_groups == 4
    np.testing.assert_array_equal(layer.forward(x), GroupNorm(4, num_groups=4).forward(x))


def test_norm_layers_work_on_a_single_sample_and_ignore_the_mode():
    x = np.array([[1.0, 2.0, 4.0, 8.0]])
    for layer in (LayerNorm(4), GroupNorm(4, 2), RMSNorm(4)):
        train_out = layer.train().forward(x)
        assert np.array_equal(train_out, layer.eval().forward(x))
    x4 = _x4((1, 2, 2, 2))
    layer = InstanceNorm(2)
    assert np.array_equal(layer.train().forward(x4), layer.eval().forward(x4))


@pytest.mark.parametrize("make, message", [
    (lambda: LayerNorm(0), "num_features must be ≥ 1, got 0"),
    (lambda: GroupNorm(6, 4), "num_groups must divide num_channels=6"),
    (lambda: LayerNorm(3, eps=0), "eps must be > 0"),
    (lambda: RMSNorm(0), "num_features must be ≥ 1"),
    (lambda: InstanceNorm(0), "num_channels must be ≥ 1"),
    (lambda: LayerNorm(3).forward(np.ones((2, 4))), r"expects x of shape \(N, 3\); got \(2, 4\)"),
    (lambda: GroupNorm(4, 2).forward(np.ones((2, 3))), r"expects x with 4 channels on axis 1; got \(2, 3\)"),
    (lambda: InstanceNorm(2).forward(np.ones((2, 2))), r"expects x of shape \(N, 2, H, W\); got \(2, 2\)"),
    (lambda: RMSNorm(3).forward(np.ones((2, 4))), r"expects x of shape \(N, 3\); got \(2, 4\)"),
    (lambda: LayerNorm(3).grads(), "LayerNorm.grads\\(\\) called before backward"),
    (lambda: RMSNorm(3).grads(), "RMSNorm.grads\\(\\) called before backward"),
    (lambda: InstanceNorm(3).grads(), "InstanceNorm.grads\\(\\) called before backward"),
    (lambda: GroupNorm(4, 2).backward(np.ones((1, 4))), "backward called before forward"),
    (lambda: RMSNorm(4).backward(np.ones((1, 4))), "backward called before forward"),
])
def test_norm_layers_refuse_bad_input(make, message):
    with pytest.raises((ValueError, RuntimeError), match=message):
        make()


@pytest.mark.parametrize("layer, shape, bad", [
    (LayerNorm(3), (2, 3), np.ones((2, 4))),
    (GroupNorm(4, 2), (2, 4), np.ones((2, 3))),
    (InstanceNorm(2), (2, 2, 2, 2), np.ones((2, 2, 1, 1))),      # H·W = 1
    (RMSNorm(3), (2, 3), np.full((2, 3), np.nan)),
], ids=["LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm"])
def test_a_forward_that_raises_leaves_no_stale_cache(layer, shape, bad):
    layer.forward(RNG.normal(size=shape))
    with pytest.raises(ValueError):
        layer.forward(bad)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones(shape))
