"""Notebook 03's self-checks pass the solutions, fail the stubs and name each known mistake."""

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub, verdict_count  # tests/check_helpers.py

from bnutils import batchnorm_forward
from bnutils.checks import forward as check


def _reshape(v, ndim):
    shape = [1] * ndim
    shape[1] = -1
    return np.reshape(v, shape)


def make_forward(axes=(0,), ddof=0, eps_mode="inside", affine="both", in_place=False,
                 as_tuple=False):
    """A forward pass with one deliberate variation (the mistakes the checks recognise)."""

    def fn(x, gamma, beta, eps=1e-5):
        g, b = _reshape(gamma, x.ndim), _reshape(beta, x.ndim)
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True, ddof=ddof)
        denom = {"inside": np.sqrt(var + eps), "outside": np.sqrt(var) + eps,
                 "none": np.sqrt(var), "fixed": np.sqrt(var + 1e-5),
                 "variance": var + eps, "no-divide": 1.0}[eps_mode]
        if in_place:
            x -= mean
            x_hat = x / denom
        else:
            x_hat = (x - mean) / denom
        out = {"both": g * x_hat + b, "none": x_hat, "no-beta": g * x_hat,
               "no-gamma": x_hat + b, "swapped": b * x_hat + g}[affine]
        return (out, None) if as_tuple else out

    return fn


# ---------------------------------------------------------------- 3.1 by hand

def by_hand_solution():
    x = check.BY_HAND_BATCH
    out, cache = batchnorm_forward(x, check.BY_HAND_GAMMA, check.BY_HAND_BETA)
    return x.mean(axis=0), x.var(axis=0), out


def test_by_hand_passes_exact_and_rounded():
    assert check.bn_by_hand.evaluate(by_hand_solution).passed
    rounded = lambda: ([5, 20], [2, 66.67],
                       [[-0.414, 2.388], [-0.414, 3.0], [3.828, 3.612]])
    assert check.bn_by_hand.evaluate(rounded).passed


def test_by_hand_two_decimals_get_a_rounding_hint():
    """Issue 19: a two-decimal answer was told to check its method."""
    two = lambda: ([5, 20], [2, 66.67], [[-0.41, 2.39], [-0.41, 3.0], [3.83, 3.61]])
    assert_fails_with(check.bn_by_hand, two, "three decimals")
    wrong_method = _by_hand_with(out=make_forward(ddof=1)(check.BY_HAND_BATCH, check.BY_HAND_GAMMA,
                                                          check.BY_HAND_BETA))
    assert_fails_with(check.bn_by_hand, wrong_method, "ddof=1")


def test_by_hand_stub():
    assert_fails_with(check.bn_by_hand, stub, "not done yet")


def _by_hand_with(**changes):
    mean, var, out = by_hand_solution()
    parts = {"mean": mean, "var": var, "out": out}
    parts.update(changes)
    return lambda: (parts["mean"], parts["var"], parts["out"])


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"mean": check.BY_HAND_BATCH.mean(axis=1)}, "one per row"),
    ({"mean": np.array([5.5, 20.0])}, "mean is off"),
    ({"var": check.BY_HAND_BATCH.var(axis=0, ddof=1)}, "m - 1"),
    ({"var": check.BY_HAND_BATCH.std(axis=0)}, "standard deviation"),
    ({"out": make_forward(ddof=1)(check.BY_HAND_BATCH, check.BY_HAND_GAMMA, check.BY_HAND_BETA)},
     "ddof=1"),
    ({"out": make_forward(affine="none")(check.BY_HAND_BATCH, check.BY_HAND_GAMMA,
                                         check.BY_HAND_BETA)}, "forgot γ and β"),
    ({"out": make_forward(axes=(1,))(check.BY_HAND_BATCH, check.BY_HAND_GAMMA,
                                     check.BY_HAND_BETA)}, "each row"),
    ({"out": np.zeros((3, 2))}, "out is off"),
    ({"out": np.zeros(6)}, "shape"),
])
def test_by_hand_mistakes(changes, fragment):
    assert_fails_with(check.bn_by_hand, _by_hand_with(**changes), fragment)


def test_by_hand_wrong_return():
    assert_fails_with(check.bn_by_hand, lambda: np.zeros((3, 2)), "tuple")


# ---------------------------------------------------------------- 3.2 forward

def test_forward_passes_solution():
    result = check.bn_forward.evaluate(make_forward())
    assert result.passed, result.message
    assert check.bn_forward.evaluate(lambda x, g, b, eps: batchnorm_forward(x, g, b, eps)[0]).passed


def test_forward_stub():
    assert_fails_with(check.bn_forward, stub, "not done yet")


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"axes": (1,)}, "wrong axis: you normalized each sample"),
    ({"axes": None}, "whole array"),
    ({"ddof": 1}, "ddof=1"),
    ({"eps_mode": "outside"}, "ε is outside the square root"),
    ({"eps_mode": "none"}, "left out ε"),
    ({"eps_mode": "fixed"}, "fixed 1e-5"),
    ({"eps_mode": "variance"}, "divided by the variance"),
    ({"eps_mode": "no-divide"}, "did not divide"),
    ({"affine": "none"}, "forgot γ and β"),
    ({"affine": "no-beta"}, "forgot β"),
    ({"affine": "no-gamma"}, "forgot γ"),
    ({"affine": "swapped"}, "swapped"),
    ({"in_place": True}, "in place"),
    ({"as_tuple": True}, "not a tuple"),
])
def test_forward_mistakes(kwargs, fragment):
    assert_fails_with(check.bn_forward, make_forward(**kwargs), fragment)


def test_forward_other_failures():
    assert_fails_with(check.bn_forward, lambda x, g, b, eps: None, "returned None")
    assert_fails_with(check.bn_forward, lambda x, g, b, eps: x.mean(axis=0), "keep the batch axis")
    assert_fails_with(check.bn_forward, lambda x, g, b, eps: x * 0.0, "differs")
    assert_fails_with(check.bn_forward, lambda x, g, b, eps: 1 / 0, "ZeroDivisionError")


# ---------------------------------------------------------------- 3.3 spatial

def test_spatial_passes_solution():
    assert check.bn_forward_spatial.evaluate(make_forward(axes=(0, 2, 3))).passed
    bn = lambda x, g, b, eps: batchnorm_forward(x, g, b, eps)[0]
    assert check.bn_forward_spatial.evaluate(bn).passed


def test_spatial_stub():
    assert_fails_with(check.bn_forward_spatial, stub, "not done yet")


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"axes": (0,)}, "batch only"),
    ({"axes": (2, 3)}, "InstanceNorm"),
    ({"axes": (1, 2, 3)}, "LayerNorm"),
    ({"axes": (0, 1)}, "batch and channels"),
    ({"axes": None}, "whole tensor"),
    ({"axes": (0, 2, 3), "ddof": 1}, "ddof=1"),
    ({"axes": (0, 2, 3), "eps_mode": "outside"}, "ε is outside"),
    ({"axes": (0, 2, 3), "affine": "none"}, "forgot γ and β"),
])
def test_spatial_mistakes(kwargs, fragment):
    assert_fails_with(check.bn_forward_spatial, make_forward(**kwargs), fragment)


def test_spatial_broadcast_mistakes():
    def gamma_not_reshaped(x, gamma, beta, eps):
        mean = x.mean(axis=(0, 2, 3), keepdims=True)
        var = x.var(axis=(0, 2, 3), keepdims=True)
        return gamma * (x - mean) / np.sqrt(var + eps) + beta   # (C,) meets W: error

    def stats_without_keepdims(x, gamma, beta, eps):
        mean = x.mean(axis=(0, 2, 3))
        return (x - mean) / np.sqrt(x.var(axis=(0, 2, 3)) + eps)

    for fn in (gamma_not_reshaped, stats_without_keepdims):
        assert_fails_with(check.bn_forward_spatial, fn, "(1, C, 1, 1)")


# ---------------------------------------------------------------- 3.4 output stats

def stats_solution(gamma, beta, var, eps):
    return beta, abs(gamma) * np.sqrt(var / (var + eps))


def test_output_stats_passes_solution():
    assert check.output_stats.evaluate(stats_solution).passed


def test_output_stats_stub():
    assert_fails_with(check.output_stats, stub, "not done yet")


@pytest.mark.parametrize(("fn", "fragment"), [
    (lambda g, b, v, e: (0.0, abs(g) * np.sqrt(v / (v + e))), "not 0"),
    (lambda g, b, v, e: (g, abs(b)), "swapped"),
    (lambda g, b, v, e: (b, g * np.sqrt(v / (v + e))), "never negative"),
    (lambda g, b, v, e: (b, abs(g)), "ε matters"),
    (lambda g, b, v, e: (b, g), "two fixes"),
    (lambda g, b, v, e: (b, abs(g) * v / (v + e)), "square root"),
    (lambda g, b, v, e: (b, g**2 * v / (v + e)), "variance of the output"),
    (lambda g, b, v, e: (b, np.sqrt(v / (v + e))), "|γ| times"),
    (lambda g, b, v, e: (b, 1.0), "std is off"),
    (lambda g, b, v, e: (b + 1, 1.0), "mean is off"),
    (lambda g, b, v, e: b, "tuple"),
    (lambda g, b, v, e: (b, "big"), "not a string"),
])
def test_output_stats_mistakes(fn, fragment):
    assert_fails_with(check.output_stats, fn, fragment)


def test_checks_print_one_line(capsys):
    assert check.bn_forward(make_forward()) is None
    line = capsys.readouterr().out
    assert line.startswith("✓ Exercise 3.2") and verdict_count(line) == 1


def test_passing_lines_fit_a_90_character_output():
    """Issue 19: a verdict line longer than the output area breaks mid-token."""
    for c, fn in [(check.bn_by_hand, by_hand_solution), (check.bn_forward, make_forward()),
                  (check.bn_forward_spatial, make_forward(axes=(0, 2, 3))),
                  (check.output_stats, stats_solution)]:
        result = c.evaluate(fn)
        assert result.passed and len(result.message) <= 90, result.message
