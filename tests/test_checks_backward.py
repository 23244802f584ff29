"""Notebook 04's self-checks pass the solutions, fail the stubs and name each known mistake."""

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub  # tests/check_helpers.py

from bnutils import batchnorm_backward, batchnorm_backward_staged
from bnutils.batchnorm import batchnorm_forward
from bnutils.checks import backward as check
from bnutils.normalization import layernorm_backward
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


# ---------------------------------------------------------------- 4.2 compact backward

def test_backward_passes_solutions():
    result = check.bn_backward.evaluate(make_backward())
    assert result.passed, result.message


def _via_a_helper(dout, cache):
    """The library's function reached through an alias and a layer: still seen."""
    from bnutils.batchnorm import BatchNorm

    bn = BatchNorm(dout.shape[1])
    bn._cache = cache
    return bn.backward(dout), bn.dgamma, bn.dbeta


def _numerically(dout, cache):
    from bnutils.gradcheck import numerical_gradient

    x = cache.x_hat / cache.inv_std + cache.mean
    f = lambda v: float(np.sum(batchnorm_forward(v, cache.gamma, np.zeros_like(cache.gamma),  # noqa: E731
                                                 cache.eps)[0] * dout))
    dx = numerical_gradient(f, x)
    return dx, (dout * cache.x_hat).sum(axis=0), dout.sum(axis=0)


@pytest.mark.parametrize("library", [batchnorm_backward, batchnorm_backward_staged,
                                     batchnorm_backward_naive, batchnorm_backward_loops,
                                     _via_a_helper, _numerically])
def test_backward_refuses_the_library_solution(library):
    """Issue 25: "none of the staged intermediates", "your formula": bnutils' own backward
    passes (and a numerical gradient) were accepted; the check watches for them now."""
    for chk, fragment in ((check.bn_backward, "your own compact formula"),
                          (check.fixed_backward, "repair broken_backward's own code")):
        assert_fails_with(chk, library, "your function calls bnutils", "which the check watches",
                          fragment)


def _with_a_loop(dout, cache):
    dx, dgamma, dbeta = make_backward()(dout, cache)
    for j in range(dx.shape[1]):                    # a loop the exercise says not to write
        dx[:, j] = dx[:, j] * 1.0
    return dx, dgamma, dbeta


def test_backward_refuses_loops():
    """Issue 25: "no loops" - a loop in the learner's function (or a notebook helper) is
    named; a comprehension counts as one."""
    assert_fails_with(check.bn_backward, _with_a_loop, "_with_a_loop has a loop")
    assert_fails_with(check.bn_backward, lambda d, c: tuple(g for g in make_backward()(d, c)),
                      "has a loop")
    assert check.fixed_backward.evaluate(_with_a_loop).passed     # 4.3 does not forbid loops


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


def test_backward_names_a_dropped_1_over_m_and_m_minus_1():
    def no_front_m(dout, cache):
        dx, dgamma, dbeta = make_backward()(dout, cache)
        return dx * cache.count, dgamma, dbeta

    def m_minus_1(dout, cache, inside=True):
        x_hat, gamma, inv, m = cache.x_hat, cache.gamma, cache.inv_std, cache.count
        dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
        k = m - 1 if inside else m
        return gamma * inv / (m - 1) * (k * dout - dbeta - x_hat * dgamma), dgamma, dbeta

    assert_fails_with(check.bn_backward, no_front_m, "dropped the 1/m")
    assert_fails_with(check.bn_backward, m_minus_1, "not m − 1", "biased")
    assert_fails_with(check.bn_backward, lambda d, c: m_minus_1(d, c, inside=False),
                      "not m − 1, in the factor in front")


def test_backward_other_failures():
    assert_fails_with(check.bn_backward, lambda dout, cache: dout, "tuple")
    good = make_backward()
    assert_fails_with(check.bn_backward, lambda d, c: (good(d, c)[0][:, :1],) + good(d, c)[1:],
                      "shape")
    assert_fails_with(check.bn_backward, lambda d, c: (good(d, c)[0] * 1.01,) + good(d, c)[1:],
                      "gradient check")


# ---------------------------------------------------------------- 4.1 dgamma, dbeta

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


def test_fixed_backward_names_the_missing_factor_2():
    def half(dout, cache):
        x_hat, gamma, inv_std, m = cache.x_hat, cache.gamma, cache.inv_std, cache.count
        dx_hat = dout * gamma
        xmu = x_hat / inv_std
        dvar = np.sum(dx_hat * xmu, axis=0) * -0.5 * inv_std**3
        dmean = -np.sum(dx_hat, axis=0) * inv_std + dvar * np.mean(-2.0 * xmu, axis=0)
        dx = dx_hat * inv_std + dvar * xmu / m + dmean / m
        return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)

    assert_fails_with(check.fixed_backward, half, "factor 2")


def test_broken_backward_really_is_broken():
    from bnutils import batchnorm_forward

    x = np.random.default_rng(0).normal(size=(6, 2))
    dout = np.random.default_rng(1).normal(size=(6, 2))
    _, cache = batchnorm_forward(x, np.ones(2), np.zeros(2))
    dx_broken = broken(dout, cache)[0]
    dx = batchnorm_backward(dout, cache)[0]
    assert np.max(np.abs(dx_broken - dx)) > 0.1
    np.testing.assert_allclose(broken(dout, cache, "right")[0], dx, atol=1e-12)


# ---------------------------------------------------------------- 4.4 project out span{1, x_hat}

def project_solution(v, x_hat):
    return v - v.mean(axis=0) - (v * x_hat).sum(axis=0) / (x_hat**2).sum(axis=0) * x_hat


def project_with_lstsq(v, x_hat):
    """An independent solution: least squares on the basis [1, x_hat] of each column."""
    out = np.empty_like(v)
    for j in range(v.shape[1]):
        B = np.stack([np.ones(len(v)), x_hat[:, j]], axis=1)
        coef, *_ = np.linalg.lstsq(B, v[:, j], rcond=None)
        out[:, j] = v[:, j] - B @ coef
    return out


@pytest.mark.parametrize("solution", [project_solution, project_with_lstsq,
                                      lambda v, xh: project_solution(v.astype(np.float32),
                                                                     xh.astype(np.float32))])
def test_project_out_passes(solution):
    result = check.project_out.evaluate(solution)
    assert result.passed, result.message
    assert "span{1, x_hat} removed; inv_std·p(dout) = BN's dx" in result.message


@pytest.mark.parametrize(("fn", "fragment"), [
    (stub, "not done yet"),
    (lambda v, xh: v - v.mean(axis=0), "not the one along x_hat"),
    (lambda v, xh: v - (v * xh).sum(axis=0) / (xh**2).sum(axis=0) * xh, "but not the mean"),
    (lambda v, xh: v - v.mean(axis=0) - (v * xh).sum(axis=0) / len(v) * xh, "not by m"),
    (lambda v, xh: v - project_solution(v, xh), "null space"),
    (lambda v, xh: v - v.mean(axis=1, keepdims=True)
     - (v * xh).sum(axis=1, keepdims=True) / (xh**2).sum(axis=1, keepdims=True) * xh, "axis=0"),
    (lambda v, xh: project_solution(v, xh) + 1e-3, "p is not v without"),
    (lambda v, xh: project_solution(v, xh)[:, :1], "shape"),
    (lambda v, xh: project_solution(v, xh) * np.nan, "NaN"),
    (lambda v, xh: str(project_solution(v, xh)), "string"),
    (lambda v, xh: None, "None"),
])
def test_project_out_fails(fn, fragment):
    assert_fails_with(check.project_out, fn, fragment)


def test_project_out_refuses_in_place_changes():
    def in_place(v, xh):
        p = project_solution(v, xh)
        v -= v.mean(axis=0)
        return p
    assert_fails_with(check.project_out, in_place, "in place")


def test_projection_is_bn_backward_up_to_eps():
    x = np.random.default_rng(0).normal(size=(10, 3))
    dout = np.random.default_rng(1).normal(size=(10, 3))
    _, cache = batchnorm_forward(x, np.ones(3), np.zeros(3), eps=1e-12)
    np.testing.assert_allclose(cache.inv_std * project_solution(dout, cache.x_hat),
                               batchnorm_backward(dout, cache)[0], rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- 4.5 scale invariance

def scaled_solution(X, W, dout, a):
    _, cache = batchnorm_forward(X @ W, np.ones(W.shape[1]), np.zeros(W.shape[1]))
    return X.T @ batchnorm_backward(dout, cache)[0] / a


def scaled_directly(X, W, dout, a):
    """Computing the backward pass at a·W itself is also right."""
    return scaled_solution(X, a * W, dout, 1.0)


def test_scaled_gradient_passes():
    result = check.scaled_gradient.evaluate(scaled_solution)
    assert result.passed, result.message
    assert "⊥ W" in result.message


def _two_passes(X, W, dout, a):
    scaled_solution(X, W, dout, a)                  # a pass at W, result unused
    return scaled_solution(X, a * W, dout, 1.0)     # and the one at a·W


def _by_hand_at_aW(X, W, dout, a):
    """A second backward pass written out, not through bnutils: the answer names it."""
    z = X @ (a * W)
    x_hat = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)
    inv, m = 1 / np.sqrt(z.var(axis=0) + 1e-5), len(z)
    dz = inv / m * (m * dout - dout.sum(axis=0) - x_hat * (dout * x_hat).sum(axis=0))
    return X.T @ dz


def test_scaled_gradient_refuses_a_pass_at_aW():
    """Issue 25: "from the identity, without a second backward pass" - a pass at a·W (alone
    or after the one at W) was accepted."""
    assert_fails_with(check.scaled_gradient, scaled_directly, "runs BN at a·W")
    assert_fails_with(check.scaled_gradient, _two_passes, "a·W")
    assert_fails_with(check.scaled_gradient, _by_hand_at_aW, "second backward pass")


@pytest.mark.parametrize(("fn", "fragment"), [
    (stub, "not done yet"),
    (lambda X, W, d, a: scaled_solution(X, W, d, 1.0), "gradient at W itself"),
    (lambda X, W, d, a: scaled_solution(X, W, d, 1.0) * a, "not dW·a"),
    (lambda X, W, d, a: scaled_solution(X, W, d, a) / a, "effective learning rate"),
    (lambda X, W, d, a: scaled_solution(X, W, d, a) * 1.1, "not the gradient at a·W"),
    (lambda X, W, d, a: (X.T @ d) / a, "not the gradient at a·W"),
    (lambda X, W, d, a: scaled_solution(X, W, d, a).T, "shape"),
    (lambda X, W, d, a: scaled_solution(X, W, d, a) * np.inf, "inf"),
    (lambda X, W, d, a: [[True] * W.shape[1]] * W.shape[0], "bool"),
])
def test_scaled_gradient_fails(fn, fragment):
    assert_fails_with(check.scaled_gradient, fn, fragment)


def test_scaled_gradient_refuses_in_place_changes():
    def in_place(X, W, d, a):
        W *= a
        return scaled_solution(X, W, d, a * a) * a
    assert_fails_with(check.scaled_gradient, in_place, "in place")


# ---------------------------------------------------------------- 4.6 LayerNorm backward

def ln_solution(dout, cache):
    x_hat, gamma, inv = cache.x_hat, cache.gamma, cache.inv_std
    d = x_hat.shape[1]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    g = dout * gamma
    dx = inv / d * (d * g - g.sum(axis=1, keepdims=True)
                    - x_hat * (g * x_hat).sum(axis=1, keepdims=True))
    return dx, dgamma, dbeta


def ln_variant(mean_term=True, var_term=True, m="D", use_gamma=True, use_inv=True, bn_axes=False,
               dparam_axis=0):
    def fn(dout, cache):
        x_hat, gamma, inv = cache.x_hat, cache.gamma, cache.inv_std
        n, d = x_hat.shape
        g = dout * gamma if use_gamma else dout
        mm = {"D": d, "N": n}[m]
        if bn_axes:
            dx = gamma * inv / n * (n * dout - dout.sum(axis=0) - x_hat * (dout * x_hat).sum(axis=0))
        else:
            inner = mm * g
            if mean_term:
                inner = inner - g.sum(axis=1, keepdims=True)
            if var_term:
                inner = inner - x_hat * (g * x_hat).sum(axis=1, keepdims=True)
            dx = (inv if use_inv else 1.0) / mm * inner
        return dx, (dout * x_hat).sum(axis=dparam_axis), dout.sum(axis=dparam_axis)
    return fn


@pytest.mark.parametrize("solution", [ln_solution, layernorm_backward, ln_variant()])
def test_ln_backward_passes(solution):
    result = check.ln_backward.evaluate(solution)
    assert result.passed, result.message


@pytest.mark.parametrize(("fn", "fragment"), [
    (stub, "not done yet"),
    (ln_variant(bn_axes=True), "BN's sums over the batch"),
    (lambda d, c: (c.gamma * c.inv_std / c.x_hat.shape[1] * (
        c.x_hat.shape[1] * d - d.sum(axis=1, keepdims=True)
        - c.x_hat * (d * c.x_hat).sum(axis=1, keepdims=True)),) + ln_solution(d, c)[1:],
     "cannot be pulled out"),
    (ln_variant(mean_term=False), "through the sample's mean"),
    (ln_variant(var_term=False), "through the sample's variance"),
    (ln_variant(m="N"), "use 1/D"),
    (ln_variant(use_gamma=False), "forgot γ"),
    (ln_variant(use_inv=False), "inv_std"),
    (ln_variant(dparam_axis=1), "one value per sample"),
    (lambda d, c: tuple(g * np.nan for g in ln_solution(d, c)), "NaN"),
    (lambda d, c: ln_solution(d, c)[0], "tuple"),
    (lambda d, c: (ln_solution(d, c)[0] * 1.01,) + ln_solution(d, c)[1:], "axis=1"),
])
def test_ln_backward_fails(fn, fragment):
    assert_fails_with(check.ln_backward, fn, fragment)


def test_ln_backward_float32_passes():
    def f32(dout, cache):
        return tuple(np.asarray(g, dtype=np.float32) for g in ln_solution(dout, cache))
    assert check.ln_backward.evaluate(f32).passed


def test_passing_lines_fit_a_90_character_output():
    solutions = {check.dgamma_dbeta: dgamma_dbeta_solution, check.bn_backward: make_backward(),
                 check.fixed_backward: lambda d, c: broken(d, c, "right"),
                 check.project_out: project_solution,
                 check.scaled_gradient: scaled_solution, check.ln_backward: ln_solution}
    for chk, solution in solutions.items():
        result = chk.evaluate(solution)
        assert result.passed and len(result.message) <= 90, result.message
