"""Numerical robustness as a tested property (issue 17).

Every normalization — BN in training and eval mode (2-D, 4-D, and with many
rows), LayerNorm, GroupNorm, InstanceNorm, RMSNorm, Batch Renorm, per-device and
synchronized sharded BN, ``scaling.standardize`` — on float32 input that is hard for
floating point:

* **mean 1e4, std 1e-2**: the mean is a million standard deviations from 0, so a float32
  mean (good to ~1e-3) or a one-pass variance loses every digit of the output;
* **|x| ~ 1e20**: the squares overflow float32 (above ~1.8e19).

The output (γ = 1, β = 0, in normalized units) must stay within ``TOL`` = 1e-5 of a
``np.longdouble`` reference computed from the same float32 values, or the call must raise
a ``ValueError`` that says why (BN stores the batch variance, which at |x| ~ 1e20 does not
fit in float32). ``python tests/test_numerics.py`` prints the table of worst-case errors.
"""

import numpy as np
import pytest

from bnutils.batch_renorm import BatchRenorm, batchrenorm_forward
from bnutils.batchnorm import BatchNorm, batchnorm_forward, batchnorm_inference
from bnutils.normalization import (
    groupnorm_forward,
    instancenorm_forward,
    layernorm_forward,
    rmsnorm_forward,
)
from bnutils.scaling import standardize
from bnutils.sharded_bn import sharded_batchnorm_forward

TOL = 1e-5
EPS = 1e-5
SEEDS = range(3)
LD = np.longdouble

# (name, loc, scale) of the hard inputs
REGIMES = {"mean 1e4, std 1e-2": (1e4, 1e-2), "|x| ~ 1e20": (0.0, 1e20)}


def _data(shape, loc, scale, seed):
    return (loc + scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _ref_normalize(x, axes, eps=EPS, centre=True):
    """(x - mean) / sqrt(var + eps) in longdouble from the float32 values themselves."""
    z = x.astype(LD)
    zc = z - z.mean(axis=axes, keepdims=True) if centre else z
    return zc / np.sqrt((zc * zc).mean(axis=axes, keepdims=True) + LD(eps))


def _ones(n):
    return np.ones(n, np.float32), np.zeros(n, np.float32)


# Each case: (normalization, shape, run(x) -> output, reference(x) -> longdouble output).
def _bn(x):
    return batchnorm_forward(x, *_ones(x.shape[1]), EPS)[0]


def _bn_ref(x):
    return _ref_normalize(x, (0,) if x.ndim == 2 else (0, 2, 3))


def _bn_eval_stats(x):
    """Running statistics as float32 (what a trained layer holds): the batch's own."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    z = x.astype(LD)
    return z.mean(axis=axes).astype(np.float32), z.var(axis=axes).astype(np.float32)


def _bn_eval(x):
    rm, rv = _bn_eval_stats(x)
    return batchnorm_inference(x, *_ones(x.shape[1]), rm, rv, EPS)


def _bn_eval_ref(x):
    rm, rv = (a.astype(LD) for a in _bn_eval_stats(x))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x.astype(LD) - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + LD(EPS))


def _bn_layer(x):
    return BatchNorm(x.shape[1], dtype=np.float32).forward(x)


def _renorm(x):
    # running statistics that r and d do not clip: x_hat is (x - running mean) / running sigma
    rm, rv = _bn_eval_stats(x)
    return batchrenorm_forward(x, *_ones(x.shape[1]), rm, rv, eps=EPS)[0]


def _renorm_layer(x):
    return BatchRenorm(x.shape[1], dtype=np.float32).forward(x)


def _renorm_layer_ref(x):
    # plain BN, clipped towards running stats (0, 1): r, d are clipped to 1/3 .. 3 and ±5
    # at these scales, so compare with the same formula in longdouble.
    bn = _bn_ref(x)
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    z = x.astype(LD)
    sigma_b = np.sqrt(z.var(axis=axes, keepdims=True) + LD(EPS))
    r = np.clip(sigma_b / np.sqrt(LD(1) + LD(EPS)), LD(1) / 3, LD(3))
    d = np.clip(z.mean(axis=axes, keepdims=True) / np.sqrt(LD(1) + LD(EPS)), LD(-5), LD(5))
    return bn * r + d


CASES = {
    "BN train (N, D)": ((64, 3), _bn, _bn_ref),
    "BN train (N, C, H, W)": ((8, 3, 4, 4), _bn, _bn_ref),
    "BN train, many rows (512, 32)": ((512, 32), _bn, _bn_ref),
    "BN layer, train": ((64, 3), _bn_layer, _bn_ref),
    "BN eval (N, D)": ((64, 3), _bn_eval, _bn_eval_ref),
    "BN eval (N, C, H, W)": ((8, 3, 4, 4), _bn_eval, _bn_eval_ref),
    "LayerNorm": ((8, 64), lambda x: layernorm_forward(x, *_ones(x.shape[1]), EPS)[0],
                  lambda x: _ref_normalize(x, (1,))),
    "GroupNorm (G = 2)": ((4, 4, 4, 4), lambda x: groupnorm_forward(x, *_ones(4), 2, EPS)[0],
                          lambda x: _ref_normalize(x.reshape(4, 2, -1), (2,)).reshape(x.shape)),
    "InstanceNorm": ((4, 3, 4, 4), lambda x: instancenorm_forward(x, *_ones(3), EPS)[0],
                     lambda x: _ref_normalize(x, (2, 3))),
    "RMSNorm": ((8, 64), lambda x: rmsnorm_forward(x, np.ones(64, np.float32), EPS)[0],
                lambda x: _ref_normalize(x, (1,), centre=False)),
    "Batch Renorm (r, d not clipped)": ((64, 3), _renorm, _bn_eval_ref),
    "Batch Renorm layer (clipped)": ((64, 3), _renorm_layer, _renorm_layer_ref),
    "sharded BN, per device (4 devices)": (
        (64, 3), lambda x: sharded_batchnorm_forward(x, *_ones(3), 4, eps=EPS)[0],
        lambda x: _ref_normalize(x.reshape(4, 16, 3), (1,)).reshape(x.shape)),
    "SyncBN (4 devices)": ((64, 3),
                           lambda x: sharded_batchnorm_forward(x, *_ones(3), 4, True, EPS)[0],
                           _bn_ref),
    "scaling.standardize": ((64, 3), standardize, lambda x: _ref_normalize(x, (0,), eps=0.0)),
}


def _measure(case, regime):
    """Worst |output − reference| over the seeds, or the ValueError the call raised."""
    shape, run, reference = CASES[case]
    loc, scale = REGIMES[regime]
    worst = 0.0
    for seed in SEEDS:
        x = _data(shape, loc, scale, seed)
        if regime == "|x| ~ 1e20" and case.startswith(("BN eval", "Batch Renorm (r, d")):
            # running_var ~ 1e40 does not fit in float32: use the largest spread that does
            x = _data(shape, loc, 1e18, seed)
        try:
            out = run(x)
        except ValueError as exc:
            return exc
        assert out.dtype == np.float32, f"{case}: float32 in, {out.dtype} out"
        worst = max(worst, float(np.max(np.abs(out.astype(LD) - reference(x)))))
    return worst


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("case", CASES)
def test_float32_stays_within_tol_of_a_longdouble_reference_or_raises_clearly(case, regime):
    with np.errstate(all="raise"):          # no silent overflow warning either
        result = _measure(case, regime)
    if isinstance(result, ValueError):
        # only a variance that does not fit in float32 is a reason to refuse
        assert regime == "|x| ~ 1e20" and "exceeds the largest float32" in str(result), result
        assert "Divide x by a constant" in str(result)
    else:
        assert result < TOL, f"{case} at {regime}: off by {result:.3g} in normalized units"


@pytest.mark.parametrize("case", ["LayerNorm", "GroupNorm (G = 2)", "InstanceNorm", "RMSNorm",
                                  "scaling.standardize"])
def test_batch_independent_normalizations_compute_huge_inputs_instead_of_refusing(case):
    """Their caches hold 1/std, which fits in float32 even when the variance does not."""
    assert not isinstance(_measure(case, "|x| ~ 1e20"), ValueError)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e20), (np.float64, 1e160)])
def test_bn_refuses_a_variance_beyond_the_dtype_instead_of_returning_beta(dtype, scale):
    """Issue 17: out == β everywhere and cache.var == inf, with only a RuntimeWarning."""
    x = (np.random.default_rng(0).standard_normal((16, 3)) * scale).astype(dtype)
    for shape in [(16, 3), (4, 3, 2, 2)]:
        with pytest.raises(ValueError, match=f"exceeds the largest {np.dtype(dtype).name}"):
            batchnorm_forward(x.reshape(shape), np.ones(3, dtype), np.zeros(3, dtype))


@pytest.mark.parametrize("shape", [(16, 3), (4, 3, 2, 2), (4096, 3)])
def test_bn_normalizes_squares_that_overflow_when_the_variance_fits(shape):
    """One value at 3e19 (its square overflows float32) among zeros: the variance, 9e38/m,
    fits, and the normalized output is right."""
    x = np.zeros(shape, np.float32)
    x[0] = 3e19
    out, cache = batchnorm_forward(x, *_ones(3), EPS)
    ref = _bn_ref(x)
    assert np.all(np.isfinite(cache.var))
    assert float(np.max(np.abs(out.astype(LD) - ref))) < TOL


def test_huge_float64_rows_are_normalized():
    x = np.random.default_rng(0).standard_normal((4, 8)) * 1e200
    out, cache = layernorm_forward(x, np.ones(8), np.zeros(8))
    np.testing.assert_allclose(out, _ref_normalize(x / 1e200, (1,), eps=0).astype(float),
                               atol=1e-12)
    assert np.all(cache.inv_std > 0)


def test_a_constant_huge_slice_normalizes_to_zero_on_the_rescaled_path():
    """A constant column at 3e38 beside one whose squares overflow: 0, not 0 · inf = NaN."""
    x = np.zeros((8, 2), np.float32)
    x[:, 0], x[0, 1] = 3e38, 3e19
    with np.errstate(all="raise"):
        out, _ = batchnorm_forward(x, *_ones(2), EPS)
        ln_out, _ = layernorm_forward(x.T.copy(), *_ones(8), EPS)
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_array_equal(ln_out[0], 0.0)
    assert float(np.max(np.abs(out.astype(LD) - _bn_ref(x)))) < TOL


def error_table() -> str:
    """The worst-case float32 errors per normalization and regime, as a Markdown table."""
    lines = ["| normalization | " + " | ".join(REGIMES) + " |",
             "|---|" + "---|" * len(REGIMES)]
    for case in CASES:
        cells = []
        for regime in REGIMES:
            with np.errstate(all="ignore"):
                r = _measure(case, regime)
            cells.append("ValueError (variance > float32 max)" if isinstance(r, ValueError)
                         else f"{r:.2g}")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)



def test_standardize_huge_float64_and_keeps_float32_with_float64_statistics():
    """Issue 17: scaling.standardize returned 0 at |x| ~ 1e160 (float64)."""
    from bnutils.scaling import fit_scaler

    x = np.random.default_rng(0).standard_normal((32, 2))
    out = standardize(x * 1e160)
    np.testing.assert_allclose(out, standardize(x), atol=1e-12)
    x32 = _data((32, 2), 1e4, 1e-2, 0)
    stats = fit_scaler(x32)
    assert stats.shift.dtype == np.float64 and standardize(x32).dtype == np.float32


if __name__ == "__main__":
    print(error_table())
