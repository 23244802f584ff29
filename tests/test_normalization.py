"""LayerNorm and GroupNorm (bnutils.normalization): forward against independent
references, backward against numerical gradients, the special cases G = 1 and G = C,
batch independence, dtypes, immutability and float32 stability."""

import dataclasses

import numpy as np
import pytest

from bnutils import (
    GroupNormCache,
    LayerNormCache,
    batchnorm_forward,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    numerical_gradient,
    rel_error,
)


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

# Groups hold >= 4 values, except "2d-G=C" (one value per group: the output is constant).
GN_CASES = [((4, 8), 2), ((4, 6), 1), ((3, 6), 6), ((3, 4, 2, 3), 2), ((2, 6, 3, 2), 3),
            ((2, 4, 2, 2), 4), ((2, 3, 2, 2), 1)]
GN_IDS = ["2d-G2", "2d-G1", "2d-G=C", "4d-G2", "4d-G3", "4d-G=C", "4d-G1"]


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


def test_groupnorm_one_value_per_group():
    x, gamma, beta, _ = make_data((3, 4), seed=7)
    out, _ = groupnorm_forward(x, gamma, beta, num_groups=4)
    np.testing.assert_allclose(out, np.broadcast_to(beta, x.shape), atol=1e-15)


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
    if shape[1] == G and len(shape) == 2:
        np.testing.assert_allclose(dx, 0.0, atol=1e-12)      # output is constant (= beta)
        np.testing.assert_allclose(num_dx, 0.0, atol=1e-6)
    else:
        assert rel_error(dx, num_dx) < 1e-7
    assert rel_error(dgamma, num_dg) < 1e-7
    assert rel_error(dbeta, num_db) < 1e-7


def test_groupnorm_backward_sums_to_zero_per_group():
    x, gamma, beta, dout = make_data((3, 4, 2, 2), seed=11)
    _, cache = groupnorm_forward(x, gamma, beta, 2)
    dx, _, _ = groupnorm_backward(dout, cache)
    np.testing.assert_allclose(dx.reshape(3, 2, -1).sum(axis=2), 0.0, atol=1e-13)


# --------------------------------------------------------------------------- dtypes, inputs, caches


def _run_all(dtype):
    x, gamma, beta, dout = make_data((4, 6), seed=12, dtype=dtype)
    x4, g4, b4, d4 = make_data((2, 4, 3, 3), seed=13, dtype=dtype)
    out_ln, c_ln = layernorm_forward(x, gamma, beta)
    out_gn, c_gn = groupnorm_forward(x4, g4, b4, 2)
    return [out_ln, c_ln.x_hat, *layernorm_backward(dout, c_ln), out_gn, c_gn.x_hat,
            *groupnorm_backward(d4, c_gn)]


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
    for a, cp in zip(args, copies):
        np.testing.assert_array_equal(a, cp)
        assert a.flags.writeable


def test_caches_are_frozen_and_snapshot_gamma():
    x, gamma, beta, dout = make_data((4, 6), seed=16)
    _, c_ln = layernorm_forward(x, gamma, beta)
    _, c_gn = groupnorm_forward(x, gamma, beta, 3)
    expected = [layernorm_backward(dout, c_ln), groupnorm_backward(dout, c_gn)]
    for cache in (c_ln, c_gn):
        with pytest.raises(dataclasses.FrozenInstanceError):
            cache.eps = 0.1
        assert not cache.x_hat.flags.writeable and not cache.gamma.flags.writeable
    gamma *= 2.0                      # the caller's gamma is still writable ...
    got = [layernorm_backward(dout, c_ln), groupnorm_backward(dout, c_gn)]
    for g, e in zip(got, expected):  # ... and the caches kept their own copy
        for a, b in zip(g, e):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("which", ["layernorm", "groupnorm-2d", "groupnorm-4d"])
def test_float32_is_stable_for_inputs_with_a_large_mean(which):
    rng = np.random.default_rng(17)
    shape = (8, 64) if which != "groupnorm-4d" else (4, 8, 4, 4)
    x32 = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    C = shape[1]
    ones, zeros = np.ones(C, np.float32), np.zeros(C, np.float32)
    if which == "layernorm":
        out, _ = layernorm_forward(x32, ones, zeros)
        ref = reference_layernorm(x32.astype(np.float64), np.ones(C), np.zeros(C))
    else:
        out, _ = groupnorm_forward(x32, ones, zeros, 4)
        ref = reference_groupnorm(x32, np.ones(C), np.zeros(C), 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-6)
