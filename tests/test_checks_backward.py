"""Notebook 04's self-checks pass the solutions, fail the stubs and name each known mistake."""

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub  # tests/check_helpers.py

from bnutils import batchnorm_backward, batchnorm_backward_staged
from bnutils.checks import backward as check
from bnutils.reference import batchnorm_backward_loops, batchnorm_backward_naive


def make_backward(mean_term=True, var_term=True, var_sign=-1.0, use_gamma=True, use_inv=True,
                  use_eps=True, inv_m=True, sum_axis=0, swap=False, dparam="sum", in_place=False):
    """The compact backward with one deliberate variation."""

    def fn(dout, cache):
        x_hat, m = cache.x_hat, cache.count
        gamma = cache.gamma if use_gamma else 1.0
        inv = (cache.inv_std if use_eps else 1 / np.sqrt(cache.var)) if use_inv else 1.0
        dbeta = dout.sum(axis=0)
        dgamma = (dout * x_hat).sum(axis=0)
        sb = dout.sum(axis=sum_axis, keepdims=True)
        sg = (dout * x_hat).sum(axis=sum_axis, keepdims=True)
        bracket = m * dout
        if mean_term:
            bracket = bracket - sb
        if var_term:
            bracket = bracket + var_sign * x_hat * sg
        dx = gamma * inv / m * bracket
        if not inv_m:   # the sums without their 1/m
            dx = gamma * inv * (dout - sb - x_hat * sg)
        if swap:
            dgamma, dbeta = dbeta, dgamma
        if dparam == "none":
            dgamma, dbeta = dout * x_hat, dout
        elif dparam == "axis1":
            dgamma, dbeta = (dout * x_hat).sum(axis=1), dout.sum(axis=1)
        elif dparam == "mean":
            dgamma, dbeta = (dout * x_hat).mean(axis=0), dout.mean(axis=0)
        if in_place:
            dout *= 1.0
            dout += 0.0
            dout[0, 0] += 1.0
        return dx, dgamma, dbeta

    return fn


# ---------------------------------------------------------------- 4.1 compact backward

@pytest.mark.parametrize("solution", [make_backward(), batchnorm_backward,
                                      batchnorm_backward_staged, batchnorm_backward_naive,
                                      batchnorm_backward_loops])
def test_backward_passes_solutions(solution):
    result = check.bn_backward.evaluate(solution)
    assert result.passed, result.message


def test_backward_stub():
    assert_fails_with(check.bn_backward, stub, "not done yet")


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"mean_term": False, "var_term": False}, "treated μ_B and σ²_B as constants"),
    ({"mean_term": False}, "missing the term through the mean"),
    ({"var_term": False}, "missing the term through the variance"),
    ({"var_sign": 1.0}, "wrong sign"),
    ({"sum_axis": 1}, "wrong axis"),
    ({"use_gamma": False}, "forgot the factor γ"),
    ({"use_inv": False}, "forgot the factor 1/sqrt"),
    ({"use_eps": False}, "without ε"),
    ({"inv_m": False}, "1/m"),
    ({"swap": True}, "swapped"),
    ({"dparam": "none"}, "sum over axis 0"),
    ({"dparam": "axis1"}, "one value per sample"),
    ({"dparam": "mean"}, "not the mean"),
    ({"in_place": True}, "in place"),
])
def test_backward_mistakes(kwargs, fragment):
    assert_fails_with(check.bn_backward, make_backward(**kwargs), fragment)


def test_backward_other_failures():
    assert_fails_with(check.bn_backward, lambda dout, cache: dout, "tuple")
    good = make_backward()
    assert_fails_with(check.bn_backward, lambda d, c: (good(d, c)[0][:, :1],) + good(d, c)[1:],
                      "shape")
    assert_fails_with(check.bn_backward, lambda d, c: (good(d, c)[0] * 1.01,) + good(d, c)[1:],
                      "gradient check")


# ---------------------------------------------------------------- 4.2 dgamma, dbeta

def dgamma_dbeta_solution(dout, x_hat):
    return (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def test_dgamma_dbeta_passes():
    assert check.dgamma_dbeta.evaluate(dgamma_dbeta_solution).passed


def test_dgamma_dbeta_stub():
    assert_fails_with(check.dgamma_dbeta, stub, "not done yet")


@pytest.mark.parametrize(("fn", "fragment"), [
    (lambda d, xh: (d.sum(axis=0), (d * xh).sum(axis=0)), "swapped"),
    (lambda d, xh: (d * xh, d), "sum over axis 0"),
    (lambda d, xh: ((d * xh).sum(axis=1), d.sum(axis=1)), "one value per sample"),
    (lambda d, xh: ((d * xh).mean(axis=0), d.mean(axis=0)), "not the mean"),
    (lambda d, xh: ((d * xh).sum(axis=0), d.sum()), "shape"),
    (lambda d, xh: ((d * xh).sum(axis=0), d.sum(axis=0) + 1), "dbeta is wrong"),
    (lambda d, xh: (d * xh).sum(axis=0), "tuple"),
])
def test_dgamma_dbeta_mistakes(fn, fragment):
    assert_fails_with(check.dgamma_dbeta, fn, fragment)


# ---------------------------------------------------------------- 4.3 fix the broken backward

def broken(dout, cache, fix="none"):
    """The broken backward of notebook 04, exactly as printed there, and half-fixes."""
    x_hat, gamma, inv_std, m = cache.x_hat, cache.gamma, cache.inv_std, cache.count
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    xmu = x_hat / inv_std
    dvar = np.sum(dx_hat * xmu, axis=0) * -0.5 * inv_std**3
    dmean = -np.sum(dx_hat, axis=0) * inv_std + dvar * np.mean(-2.0 * xmu, axis=0)
    dx = {
        "none": dx_hat * inv_std + dmean / m,
        "right": dx_hat * inv_std + dmean / m + dvar * 2 * xmu / m,
        "x_hat": dx_hat * inv_std + dmean / m + dvar * 2 * x_hat / m,
        "sign": dx_hat * inv_std + dmean / m - dvar * 2 * xmu / m,
        "drop-mean": dx_hat * inv_std + dvar * 2 * xmu / m,
    }[fix]
    return dx, dgamma, dbeta


def test_fixed_backward_passes():
    assert check.fixed_backward.evaluate(lambda d, c: broken(d, c, "right")).passed
    assert check.fixed_backward.evaluate(batchnorm_backward).passed


def test_fixed_backward_stub():
    assert_fails_with(check.fixed_backward, stub, "not done yet")


@pytest.mark.parametrize(("fix", "fragment"), [
    ("none", "still the broken result"),
    ("x_hat", "needs x - μ, not x_hat"),
    ("sign", "wrong sign"),
    ("drop-mean", "path through μ is missing"),
])
def test_fixed_backward_mistakes(fix, fragment):
    assert_fails_with(check.fixed_backward, lambda d, c: broken(d, c, fix), fragment)


def test_broken_backward_really_is_broken():
    from bnutils import batchnorm_forward

    x = np.random.default_rng(0).normal(size=(6, 2))
    dout = np.random.default_rng(1).normal(size=(6, 2))
    _, cache = batchnorm_forward(x, np.ones(2), np.zeros(2))
    dx_broken = broken(dout, cache)[0]
    dx = batchnorm_backward(dout, cache)[0]
    assert np.max(np.abs(dx_broken - dx)) > 0.1
    np.testing.assert_allclose(broken(dout, cache, "right")[0], dx, atol=1e-12)
