"""The BN core (bnutils.batchnorm): forward, backward (compact and staged), inference,
running statistics, dtypes, immutability, float32 stability, and the BatchNorm layer.

Every numerical claim is checked against an independent reference written here in
plain NumPy (channels moved last and flattened, so a wrong reduction axis in the
library cannot hide behind the same mistake in the test), or against
``numerical_gradient``.
"""

import dataclasses

import numpy as np
import pytest

import bnutils
from bnutils import (
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_forward,
    batchnorm_inference,
    numerical_gradient,
    rel_error,
    update_running_stats,
)
from bnutils.batchnorm import BatchNorm, batchnorm_inference_backward
from bnutils.data import example_5x3

SHAPES = [(6, 3), (4, 5), (3, 2, 3, 2), (2, 3, 2, 4)]
SHAPE_IDS = ["2d-6x3", "2d-4x5", "4d-3x2x3x2", "4d-2x3x2x4"]


def make_batch(shape, seed=0, dtype=np.float64):
    """Well-conditioned data: every feature/channel has its own mean and a std in [0.5, 2]."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    loc = rng.uniform(-3, 3, C).reshape(bshape)
    scale = rng.uniform(0.5, 2.0, C).reshape(bshape)
    x = loc + scale * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, C) * rng.choice([-1.0, 1.0], C)
    beta = rng.uniform(-1, 1, C)
    dout = rng.standard_normal(shape)
    return x.astype(dtype), gamma.astype(dtype), beta.astype(dtype), dout.astype(dtype)


def flat_channels(a):
    """(N, D) -> (N, D); (N, C, H, W) -> (N*H*W, C): one column per feature/channel."""
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def unflat_channels(flat, shape):
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.moveaxis(flat.reshape(moved), -1, 1)


def reference_forward(x, gamma, beta, eps=1e-5):
    """Textbook BN in float64, written independently of the library."""
    f = flat_channels(np.asarray(x, dtype=np.float64))
    mu = f.mean(axis=0)
    var = ((f - mu) ** 2).mean(axis=0)          # biased, ddof=0
    out = (f - mu) / np.sqrt(var + eps) * gamma + beta
    return unflat_channels(out, np.shape(x)), mu, var


def stats_axes(ndim):
    return (0,) if ndim == 2 else (0, 2, 3)


def bshape(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


# --------------------------------------------------------------------------- conventions


def test_module_docstring_states_the_conventions():
    doc = bnutils.batchnorm.__doc__
    for phrase in ("ddof=0", "ddof=1", "(1 - momentum) * old + momentum * batch",
                   "running_mean = 0", "running_var = 1", "two passes", "float32"):
        assert phrase in doc, phrase


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_forward_matches_reference(shape):
    x, gamma, beta, _ = make_batch(shape, seed=1)
    out, cache = batchnorm_forward(x, gamma, beta, eps=1e-5)
    ref, mu, var = reference_forward(x, gamma, beta, eps=1e-5)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache.mean, mu, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cache.var, var, rtol=1e-13)          # biased variance
    np.testing.assert_allclose(cache.inv_std, 1 / np.sqrt(var + 1e-5), rtol=1e-13)
    assert cache.axes == stats_axes(x.ndim)
    assert cache.count == x.size // x.shape[1]


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_forward_normalizes_each_feature_before_the_affine_step(shape):
    x, _, _, _ = make_batch(shape, seed=2)
    C = x.shape[1]
    eps = 1e-5
    out, _ = batchnorm_forward(x, np.ones(C), np.zeros(C), eps=eps)
    axes = stats_axes(x.ndim)
    var = x.var(axis=axes)
    np.testing.assert_allclose(out.mean(axis=axes), 0.0, atol=1e-14)
    # std is exactly sqrt(var / (var + eps)): 1 up to the eps correction (a ddof=1 or an
    # eps outside the square root changes it far more than rtol).
    np.testing.assert_allclose(out.std(axis=axes), np.sqrt(var / (var + eps)), rtol=1e-12)
    # with a negligible eps the std is 1 to rounding
    out_tiny, _ = batchnorm_forward(x, np.ones(C), np.zeros(C), eps=1e-14)
    np.testing.assert_allclose(out_tiny.std(axis=axes), 1.0, rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_gamma_and_beta_set_the_std_and_mean(shape):
    x, gamma, beta, _ = make_batch(shape, seed=3)
    out, cache = batchnorm_forward(x, gamma, beta, eps=1e-5)
    axes = stats_axes(x.ndim)
    ratio = np.sqrt(cache.var / (cache.var + 1e-5))
    np.testing.assert_allclose(out.mean(axis=axes), beta, atol=1e-13)
    np.testing.assert_allclose(out.std(axis=axes), np.abs(gamma) * ratio, rtol=1e-12)


def test_eps_sits_inside_the_square_root():
    # Small variance (1e-4) and a large eps (1e-2): inside vs outside the root differ by ~10x.
    rng = np.random.default_rng(4)
    x = 0.01 * rng.standard_normal((8, 3))
    out, _ = batchnorm_forward(x, np.ones(3), np.zeros(3), eps=1e-2)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-2)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_identity_is_recoverable(shape):
    x, _, _, _ = make_batch(shape, seed=5)
    axes = stats_axes(x.ndim)
    eps = 1e-5
    gamma = np.sqrt(x.var(axis=axes) + eps)
    beta = x.mean(axis=axes)
    out, _ = batchnorm_forward(x, gamma, beta, eps=eps)
    np.testing.assert_allclose(out, x, rtol=1e-12, atol=1e-12)


def test_seed_example_integer_batch():
    # The seeds' 5x3 integer table: each column is 3k + (1, 4, 7, 10, 13), so every
    # column normalizes to the same values and the output is float64.
    x = example_5x3()
    out, cache = batchnorm_forward(x, np.ones(3), np.zeros(3), eps=1e-12)
    assert out.dtype == np.float64
    col = np.array([-2, -1, 0, 1, 2]) / np.sqrt(2.0)
    np.testing.assert_allclose(out, np.repeat(col[:, None], 3, axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cache.mean, [7.0, 8.0, 9.0])
    np.testing.assert_allclose(cache.var, [18.0, 18.0, 18.0])


def test_one_sample_with_several_pixels_is_fine_in_training_mode():
    x, _, _, _ = make_batch((1, 3, 2, 2), seed=6)
    out, cache = batchnorm_forward(x, np.ones(3), np.zeros(3))
    assert cache.count == 4
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-14)


def test_batch_statistics_couple_the_samples():
    """Training-mode BN is not per-sample: changing one sample changes the others' outputs."""
    x, gamma, beta, _ = make_batch((5, 2), seed=7)
    out1, _ = batchnorm_forward(x, gamma, beta)
    x2 = x.copy()
    x2[0] += 3.0
    out2, _ = batchnorm_forward(x2, gamma, beta)
    assert np.all(np.abs(out2[1:] - out1[1:]) > 1e-3)


# --------------------------------------------------------------------------- cache


def test_cache_is_a_named_immutable_object():
    x, gamma, beta, _ = make_batch((4, 3), seed=8)
    _, cache = batchnorm_forward(x, gamma, beta)
    assert isinstance(cache, BatchNormCache)
    assert not isinstance(cache, tuple)
    assert dataclasses.is_dataclass(cache)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cache.eps = 1.0
    for name in ("x_hat", "gamma", "mean", "var", "inv_std"):
        arr = getattr(cache, name)
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0.0
    assert cache.shape == x.shape
    # ... while the caller's arrays stay writable and unchanged.
    assert gamma.flags.writeable and beta.flags.writeable and x.flags.writeable


def test_cache_snapshots_gamma():
    """Updating gamma in place after the forward pass (an SGD step) must not change the
    gamma that the backward pass uses."""
    x, gamma, beta, dout = make_batch((5, 3), seed=9)
    _, cache = batchnorm_forward(x, gamma, beta)
    expected = batchnorm_backward(dout, cache)
    gamma *= 3.0
    for got, want in zip(batchnorm_backward(dout, cache), expected):
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- backward


def grad_errors(x, gamma, beta, dout, backward):
    """Relative errors of (dx, dgamma, dbeta) from ``backward`` against numerical gradients.

    Each lambda uses its own argument (the CS231n trap is a lambda that ignores it)."""
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dout, cache)
    num_dx = numerical_gradient(lambda x_: np.sum(batchnorm_forward(x_, gamma, beta)[0] * dout), x)
    num_dg = numerical_gradient(lambda g_: np.sum(batchnorm_forward(x, g_, beta)[0] * dout), gamma)
    num_db = numerical_gradient(lambda b_: np.sum(batchnorm_forward(x, gamma, b_)[0] * dout), beta)
    return rel_error(dx, num_dx), rel_error(dgamma, num_dg), rel_error(dbeta, num_db)


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_staged],
                         ids=["compact", "staged"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_matches_numerical_gradient(shape, backward):
    x, gamma, beta, dout = make_batch(shape, seed=10)
    err_dx, err_dg, err_db = grad_errors(x, gamma, beta, dout, backward)
    assert err_dx < 1e-7, err_dx
    assert err_dg < 1e-7, err_dg
    assert err_db < 1e-7, err_db


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_matches_closed_form_reference(shape):
    """dx = gamma/(m·std) · (m·dout − Σdout − x̂·Σ(dout·x̂)), computed here on flattened channels."""
    x, gamma, beta, dout = make_batch(shape, seed=11)
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    f, g = flat_channels(x), flat_channels(dout)
    m = f.shape[0]
    std = np.sqrt(f.var(axis=0) + 1e-5)
    xh = (f - f.mean(axis=0)) / std
    ref_dbeta, ref_dgamma = g.sum(0), (g * xh).sum(0)
    ref_dx = gamma / (m * std) * (m * g - ref_dbeta - xh * ref_dgamma)
    np.testing.assert_allclose(dbeta, ref_dbeta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dgamma, ref_dgamma, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, unflat_channels(ref_dx, x.shape), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_staged_equals_compact(shape):
    x, gamma, beta, dout = make_batch(shape, seed=12)
    _, cache = batchnorm_forward(x, gamma, beta)
    for staged, compact in zip(batchnorm_backward_staged(dout, cache), batchnorm_backward(dout, cache)):
        assert staged.shape == compact.shape
        np.testing.assert_allclose(staged, compact, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_backward_identities(shape):
    """Σ dx = 0 per feature (the mean is subtracted) and Σ dx·x̂ = 0 up to the ε correction:
    exactly γ·inv_std·dγ·ε/(σ²+ε), which vanishes as ε → 0."""
    x, gamma, beta, dout = make_batch(shape, seed=13)
    eps = 1e-5
    _, cache = batchnorm_forward(x, gamma, beta, eps=eps)
    axes = stats_axes(x.ndim)
    for backward in (batchnorm_backward, batchnorm_backward_staged):
        dx, dgamma, _ = backward(dout, cache)
        np.testing.assert_allclose(dx.sum(axis=axes), 0.0, atol=1e-13)
        s = np.sum(dx * cache.x_hat, axis=axes)
        expected = gamma * cache.inv_std * dgamma * eps / (cache.var + eps)
        np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-13)
        assert np.all(np.abs(s) <= 1e-4 * np.sum(np.abs(dx * cache.x_hat), axis=axes))


def test_backward_with_tiny_eps_makes_dx_orthogonal_to_x_hat():
    x, gamma, beta, dout = make_batch((6, 3), seed=14)
    _, cache = batchnorm_forward(x, gamma, beta, eps=1e-14)
    dx, _, _ = batchnorm_backward(dout, cache)
    np.testing.assert_allclose(np.sum(dx * cache.x_hat, axis=0), 0.0, atol=1e-12)


def test_backward_accepts_integer_dout_and_lists():
    x, gamma, beta, _ = make_batch((3, 2), seed=15)
    _, cache = batchnorm_forward(x, gamma, beta)
    dout = [[1, 0], [0, 2], [3, 1]]
    for got, want in zip(batchnorm_backward(dout, cache), batchnorm_backward(np.array(dout, float), cache)):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- inference


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_inference_uses_the_given_statistics(shape):
    x, gamma, beta, _ = make_batch(shape, seed=16)
    C = x.shape[1]
    rng = np.random.default_rng(17)
    rm, rv = rng.normal(size=C), rng.uniform(0.5, 3.0, C)
    out = batchnorm_inference(x, gamma, beta, rm, rv, eps=1e-3)
    f = flat_channels(x)
    ref = unflat_channels((f - rm) / np.sqrt(rv + 1e-3) * gamma + beta, x.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_inference_with_batch_statistics_equals_training_forward(shape):
    x, gamma, beta, _ = make_batch(shape, seed=18)
    out_train, cache = batchnorm_forward(x, gamma, beta)
    out_eval = batchnorm_inference(x, gamma, beta, cache.mean, cache.var)
    np.testing.assert_allclose(out_eval, out_train, rtol=1e-11, atol=1e-12)


def test_inference_is_per_sample_and_accepts_a_batch_of_one():
    x, gamma, beta, _ = make_batch((5, 3), seed=19)
    rm, rv = np.array([0.5, -1.0, 2.0]), np.array([1.0, 4.0, 0.25])
    full = batchnorm_inference(x, gamma, beta, rm, rv)
    for i in range(5):
        np.testing.assert_allclose(batchnorm_inference(x[i:i + 1], gamma, beta, rm, rv), full[i:i + 1],
                                   rtol=1e-14)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_inference_backward_matches_numerical_gradient(shape):
    x, gamma, beta, dout = make_batch(shape, seed=13)
    C = x.shape[1]
    rm, rv = np.linspace(-1, 1, C), np.linspace(0.5, 2, C)

    def loss_of(x_, g_, b_):
        return float(np.sum(batchnorm_inference(x_, g_, b_, rm, rv) * dout))

    dx, dgamma, dbeta = batchnorm_inference_backward(dout, x, gamma, rm, rv)
    assert rel_error(dx, numerical_gradient(lambda v: loss_of(v, gamma, beta), x.copy())) < 1e-7
    assert rel_error(dgamma, numerical_gradient(lambda v: loss_of(x, v, beta), gamma.copy())) < 1e-7
    assert rel_error(dbeta, numerical_gradient(lambda v: loss_of(x, gamma, v), beta.copy())) < 1e-7
    with pytest.raises(ValueError, match="dout must have the shape of the forward input x"):
        batchnorm_inference_backward(dout[:1], x, gamma, rm, rv)


def test_inference_accepts_zero_running_variance():
    out = batchnorm_inference(np.array([[1.0], [3.0]]), [1.0], [0.0], [1.0], [0.0], eps=1e-2)
    np.testing.assert_allclose(out, [[0.0], [20.0]])


# --------------------------------------------------------------------------- running statistics


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_update_running_stats_pytorch_convention_with_unbiased_variance(shape):
    x, gamma, beta, _ = make_batch(shape, seed=20)
    C = x.shape[1]
    _, cache = batchnorm_forward(x, gamma, beta)
    f = flat_channels(x)
    rm, rv = update_running_stats(np.zeros(C), np.ones(C), cache)       # default momentum 0.1
    np.testing.assert_allclose(rm, 0.1 * f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * f.var(0, ddof=1), rtol=1e-12)


def test_update_running_stats_momentum_extremes_and_several_steps():
    rng = np.random.default_rng(21)
    C = 3
    rm0, rv0 = rng.normal(size=C), rng.uniform(0.5, 2, C)
    batches = [make_batch((5, C), seed=s)[0] for s in range(4)]
    caches = [batchnorm_forward(b, np.ones(C), np.zeros(C))[1] for b in batches]
    keep = update_running_stats(rm0, rv0, caches[0], momentum=0.0)
    np.testing.assert_array_equal(keep[0], rm0)
    np.testing.assert_array_equal(keep[1], rv0)
    replace = update_running_stats(rm0, rv0, caches[0], momentum=1.0)
    np.testing.assert_allclose(replace[0], batches[0].mean(0), rtol=1e-13)
    np.testing.assert_allclose(replace[1], batches[0].var(0, ddof=1), rtol=1e-13)
    rm, rv = rm0, rv0
    exp_m, exp_v = rm0.copy(), rv0.copy()
    for b, c in zip(batches, caches):
        rm, rv = update_running_stats(rm, rv, c, momentum=0.3)
        exp_m = 0.7 * exp_m + 0.3 * b.mean(0)
        exp_v = 0.7 * exp_v + 0.3 * b.var(0, ddof=1)
    np.testing.assert_allclose(rm, exp_m, rtol=1e-12)
    np.testing.assert_allclose(rv, exp_v, rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_update_running_stats_from_mean_var_and_count_equals_the_cache_form(shape):
    x, gamma, beta, _ = make_batch(shape, seed=24)
    C = x.shape[1]
    _, cache = batchnorm_forward(x, gamma, beta)
    f = flat_channels(x)
    rm0, rv0 = np.linspace(-1, 1, C), np.linspace(0.5, 2, C)
    from_cache = update_running_stats(rm0, rv0, cache, momentum=0.25)
    from_stats = update_running_stats(rm0, rv0, momentum=0.25, mean=f.mean(0), var=f.var(0),
                                      count=f.shape[0])
    for a, b in zip(from_cache, from_stats):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(from_stats[1], 0.75 * rv0 + 0.25 * f.var(0, ddof=1), rtol=1e-12)


@pytest.mark.parametrize("kwargs, err, match", [
    ({}, TypeError, "needs a cache, or all of mean, var and count .missing: count, mean, var"),
    ({"mean": np.zeros(2), "var": np.ones(2)}, TypeError, "missing: count"),
    ({"mean": np.zeros(2), "var": np.ones(2), "count": 1}, ValueError, "count must be ≥ 2, got 1"),
    ({"mean": np.zeros(2), "var": np.ones(2), "count": 4.0}, TypeError, "count must be an integer"),
    ({"mean": np.zeros(2), "var": -np.ones(2), "count": 4}, ValueError, "var must be ≥ 0"),
    ({"mean": np.zeros(2), "var": np.ones(3), "count": 4}, ValueError, r"var must have shape \(2,\)"),
    ({"mean": np.zeros(3), "var": np.ones(3), "count": 4}, ValueError,
     r"running_mean must have shape \(3,\)"),
])
def test_update_running_stats_mean_form_rejects_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        update_running_stats(np.zeros(2), np.ones(2), **kwargs)


def test_update_running_stats_refuses_a_cache_and_statistics_together():
    _, cache = batchnorm_forward(np.array([[0.0], [2.0]]), np.ones(1), np.zeros(1))
    with pytest.raises(TypeError, match="either cache or mean, var and count, not both"):
        update_running_stats(np.zeros(1), np.ones(1), cache, mean=np.zeros(1))


def test_update_running_stats_returns_new_arrays():
    x, gamma, beta, _ = make_batch((4, 2), seed=22)
    _, cache = batchnorm_forward(x, gamma, beta)
    rm, rv = np.zeros(2), np.ones(2)
    new_m, new_v = update_running_stats(rm, rv, cache, momentum=0.0)
    assert new_m is not rm and new_v is not rv
    new_m += 1.0
    np.testing.assert_array_equal(rm, 0.0)


def test_running_stats_converge_to_the_population():
    rng = np.random.default_rng(23)
    mu, sd = np.array([5.0, -2.0]), np.array([3.0, 0.5])
    rm, rv = np.zeros(2), np.ones(2)
    for _ in range(400):
        _, cache = batchnorm_forward(mu + sd * rng.standard_normal((32, 2)), np.ones(2), np.zeros(2))
        rm, rv = update_running_stats(rm, rv, cache, momentum=0.1)
    np.testing.assert_allclose(rm, mu, rtol=0.05)
    np.testing.assert_allclose(rv, sd**2, rtol=0.2)


# --------------------------------------------------------------------------- dtypes and immutability


def _all_calls(dtype):
    """Run every BN function once; return the outputs keyed by name."""
    x, gamma, beta, dout = make_batch((4, 3, 2, 2), seed=24, dtype=dtype)
    out, cache = batchnorm_forward(x, gamma, beta)
    rm = np.zeros(3, dtype)
    rv = np.ones(3, dtype)
    res = {"out": out, "x_hat": cache.x_hat, "mean": cache.mean, "var": cache.var}
    res.update(zip(("dx", "dgamma", "dbeta"), batchnorm_backward(dout, cache)))
    res.update(zip(("sdx", "sdgamma", "sdbeta"), batchnorm_backward_staged(dout, cache)))
    res["inference"] = batchnorm_inference(x, gamma, beta, rm, rv)
    res.update(zip(("rm", "rv"), update_running_stats(rm, rv, cache)))
    return res


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    for name, arr in _all_calls(dtype).items():
        assert arr.dtype == dtype, (name, arr.dtype)


def test_float32_results_agree_with_float64():
    r32, r64 = _all_calls(np.float32), _all_calls(np.float64)
    for name in r32:
        np.testing.assert_allclose(r32[name], r64[name], rtol=2e-5, atol=2e-5, err_msg=name)


def test_integer_input_is_promoted_to_float64():
    x = np.array([[1, 2], [3, 6], [5, 4], [7, 0]])
    out, cache = batchnorm_forward(x, np.array([1, 1]), np.array([0, 0]))
    assert out.dtype == np.float64 and cache.x_hat.dtype == np.float64
    ref, _, _ = reference_forward(x.astype(float), np.ones(2), np.zeros(2))
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    out_eval = batchnorm_inference(x, [1, 1], [0, 0], [0, 0], [1, 1])
    assert out_eval.dtype == np.float64
    rm, rv = update_running_stats([0, 0], [1, 1], cache)
    assert rm.dtype == np.float64 and rv.dtype == np.float64


def test_float32_x_with_float64_parameters_stays_float32():
    x, _, _, dout = make_batch((4, 3), seed=25, dtype=np.float32)
    out, cache = batchnorm_forward(x, np.ones(3), np.zeros(3))
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in batchnorm_backward(dout.astype(np.float64), cache))


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 2, 2)])
def test_no_function_modifies_its_inputs(shape):
    x, gamma, beta, dout = make_batch(shape, seed=26)
    C = shape[1]
    rm, rv = np.full(C, 0.5), np.full(C, 2.0)
    args = [x, gamma, beta, dout, rm, rv]
    copies = [a.copy() for a in args]
    out, cache = batchnorm_forward(x, gamma, beta)
    batchnorm_backward(dout, cache)
    batchnorm_backward_staged(dout, cache)
    batchnorm_inference(x, gamma, beta, rm, rv)
    update_running_stats(rm, rv, cache)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)
        assert a.flags.writeable
    # the outputs do not alias the inputs
    assert not np.shares_memory(out, x)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    assert not np.shares_memory(dx, dout)


# --------------------------------------------------------------------------- float32 stability


def naive_var(f):
    """E[x²] − E[x]² in the array's own dtype: what the library must NOT do."""
    return (f * f).mean(axis=0) - f.mean(axis=0) ** 2


@pytest.mark.parametrize("shape", [(256, 4), (16, 3, 4, 4)])
def test_float32_is_stable_for_inputs_with_a_large_mean(shape):
    rng = np.random.default_rng(27)
    x32 = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    C = shape[1]
    out, cache = batchnorm_forward(x32, np.ones(C, np.float32), np.zeros(C, np.float32))
    assert out.dtype == np.float32
    # Reference: the same float32 numbers, normalized in float64.
    ref, mu, var = reference_forward(x32.astype(np.float64), np.ones(C), np.zeros(C))
    np.testing.assert_allclose(out, ref, atol=2e-6)
    np.testing.assert_allclose(cache.mean, mu, rtol=1e-7)
    np.testing.assert_allclose(cache.var, var, rtol=1e-5)
    axes = stats_axes(x32.ndim)
    o = out.astype(np.float64)
    np.testing.assert_allclose(o.mean(axis=axes), 0.0, atol=1e-6)
    np.testing.assert_allclose(o.std(axis=axes), 1.0, atol=1e-5)
    # ...where the one-pass formula in float32 is off by far more than that.
    assert np.max(np.abs(naive_var(flat_channels(x32)) - var)) > 0.1


def test_float32_backward_is_stable_for_inputs_with_a_large_mean():
    rng = np.random.default_rng(28)
    x32 = (1e4 + rng.standard_normal((128, 3))).astype(np.float32)
    dout = rng.standard_normal((128, 3))
    g = np.array([1.0, 2.0, -0.5])
    _, c32 = batchnorm_forward(x32, g.astype(np.float32), np.zeros(3, np.float32))
    _, c64 = batchnorm_forward(x32.astype(np.float64), g, np.zeros(3))
    for backward in (batchnorm_backward, batchnorm_backward_staged):
        for got, want in zip(backward(dout.astype(np.float32), c32), backward(dout, c64)):
            assert got.dtype == np.float32
            scale = np.max(np.abs(want))
            assert np.max(np.abs(got - want)) < 1e-5 * scale


# --------------------------------------------------------------------------- the BatchNorm layer
# (moved here from tests/test_layers.py with the class: the layer lives beside its functions)


def batches(shape, n, seed=0, loc=2.0, scale=3.0):
    rng = np.random.default_rng(seed)
    return [loc + scale * rng.standard_normal(shape) for _ in range(n)]



def test_batchnorm_initial_state():
    bn = BatchNorm(4)
    np.testing.assert_array_equal(bn.gamma, 1.0)
    np.testing.assert_array_equal(bn.beta, 0.0)
    np.testing.assert_array_equal(bn.running_mean, 0.0)
    np.testing.assert_array_equal(bn.running_var, 1.0)
    assert bn.training and bn.eps == 1e-5 and bn.momentum == 0.1
    assert sorted(bn.params()) == ["beta", "gamma"]
    assert bn.params()["gamma"] is bn.gamma          # live arrays: SGD updates them in place
    assert bn.train() is bn and bn.eval() is bn and not bn.training
    assert bn.train().training
    assert repr(bn) == "BatchNorm(4, eps=1e-05, momentum=0.1)"


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 2, 2)])
def test_batchnorm_layer_agrees_with_the_functions(shape):
    rng = np.random.default_rng(1)
    C = shape[1]
    bn = BatchNorm(C, eps=1e-3, momentum=0.2)
    bn.gamma[:] = rng.uniform(0.5, 2, C)
    bn.beta[:] = rng.standard_normal(C)
    rm, rv = np.zeros(C), np.ones(C)
    for x in batches(shape, 3, seed=2):
        dout = rng.standard_normal(shape)
        out = bn.forward(x)
        ref, cache = batchnorm_forward(x, bn.gamma, bn.beta, eps=1e-3)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
        rm, rv = update_running_stats(rm, rv, cache, momentum=0.2)
        np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12)
        dx = bn.backward(dout)
        ref_dx, ref_dg, ref_db = batchnorm_backward(dout, cache)
        np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.dgamma, ref_dg, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(bn.dbeta, ref_db, rtol=1e-12, atol=1e-12)
        assert bn.grads()["gamma"] is bn.dgamma and bn.grads()["beta"] is bn.dbeta


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 2, 2)])
def test_eval_mode_uses_the_running_statistics(shape):
    C = shape[1]
    bn = BatchNorm(C)
    for x in batches(shape, 5, seed=3):
        bn.forward(x)
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    x = batches(shape, 1, seed=4, loc=-5.0, scale=0.1)[0]        # very different batch stats
    out = bn.eval().forward(x)
    np.testing.assert_allclose(out, batchnorm_inference(x, bn.gamma, bn.beta, rm, rv), rtol=1e-12)
    # eval mode does not normalize with the batch's own statistics ...
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    assert np.all(np.abs(out.mean(axis=axes)) > 1.0)
    # ... and does not touch the running statistics
    np.testing.assert_array_equal(bn.running_mean, rm)
    np.testing.assert_array_equal(bn.running_var, rv)
    # back in training mode it uses the batch statistics again
    out_train = bn.train().forward(x)
    np.testing.assert_allclose(out_train.mean(axis=axes), 0.0, atol=1e-10)


def test_eval_mode_is_per_sample():
    bn = BatchNorm(3)
    for x in batches((16, 3), 4, seed=5):
        bn.forward(x)
    bn.eval()
    x = batches((6, 3), 1, seed=6)[0]
    full = bn.forward(x)
    for i in range(6):
        np.testing.assert_allclose(bn.forward(x[i:i + 1]), full[i:i + 1], rtol=1e-14)


def test_eval_mode_backward_matches_numerical_gradient():
    """Frozen BN (eval mode) is an affine map; its backward is checked numerically."""
    rng = np.random.default_rng(7)
    bn = BatchNorm(3)
    for x in batches((8, 3), 3, seed=8):
        bn.forward(x)
    bn.gamma[:] = [1.5, -0.7, 2.0]
    bn.beta[:] = [0.1, 0.2, -0.3]
    bn.eval()
    x = rng.standard_normal((5, 3))
    dout = rng.standard_normal((5, 3))
    bn.forward(x)
    dx = bn.backward(dout)
    gamma, beta = bn.gamma.copy(), bn.beta.copy()
    rm, rv = bn.running_mean, bn.running_var

    def f(x_=x, g_=gamma, b_=beta):
        return np.sum(batchnorm_inference(x_, g_, b_, rm, rv) * dout)

    assert rel_error(dx, numerical_gradient(lambda x_: f(x_=x_), x)) < 1e-8
    assert rel_error(bn.dgamma, numerical_gradient(lambda g_: f(g_=g_), gamma)) < 1e-8
    assert rel_error(bn.dbeta, numerical_gradient(lambda b_: f(b_=b_), beta)) < 1e-8


def test_running_statistics_converge_in_the_layer():
    bn = BatchNorm(2, momentum=0.1)
    rng = np.random.default_rng(9)
    for _ in range(300):
        bn.forward(np.array([1.0, -4.0]) + np.array([2.0, 0.5]) * rng.standard_normal((64, 2)))
    np.testing.assert_allclose(bn.running_mean, [1.0, -4.0], atol=0.15)
    np.testing.assert_allclose(bn.running_var, [4.0, 0.25], rtol=0.15)


def test_batchnorm_layer_dtype_and_inputs():
    bn = BatchNorm(3, dtype=np.float32)
    x = batches((6, 3), 1, seed=10)[0].astype(np.float32)
    x_copy = x.copy()
    out = bn.forward(x)
    assert out.dtype == np.float32 and bn.running_var.dtype == np.float32
    assert bn.backward(np.ones_like(x)).dtype == np.float32
    np.testing.assert_array_equal(x, x_copy)
    assert bn.eval().forward(x).dtype == np.float32
    out = BatchNorm(2).forward(np.array([[1, 2], [3, 4], [5, 9]]))   # integers
    assert out.dtype == np.float64


def test_sgd_can_update_batchnorm_parameters_in_place():
    bn = BatchNorm(3)
    x = batches((8, 3), 1, seed=11)[0]
    bn.forward(x)
    bn.backward(np.ones((8, 3)))
    for name, p in bn.params().items():
        p -= 0.1 * bn.grads()[name]                # raises if a cache froze the live array
    np.testing.assert_allclose(bn.beta, -0.8)
