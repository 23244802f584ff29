"""Notebook 08's self-checks pass the solutions (any float dtype), fail the stubs, NaN and
wrongly typed answers, functions that ignore their arguments, and name each known mistake."""

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub  # tests/check_helpers.py

from bnutils import BatchNorm, Linear, ReLU, Sequential
from bnutils.checks import conv_residual as check
from bnutils.residual import Residual, SkipInit

AXES = (0, 2, 3)


def spatial_backward(dout, x_hat, gamma, inv_std, axes=AXES, m_kind="NHW", mean_term=True,
                     var_term=True, var_sign=-1.0, use_gamma=True, use_inv=True, swap=False,
                     dparam="sum", in_place=False):
    """The spatial BN backward with one deliberate variation."""
    N, C, H, W = dout.shape
    g = gamma.reshape(1, C, 1, 1) if use_gamma else 1.0
    inv = inv_std.reshape(1, C, 1, 1) if use_inv else 1.0
    m = {"NHW": N * H * W, "N": N}[m_kind] if axes == AXES else N
    sb = dout.sum(axis=axes, keepdims=True)
    sg = (dout * x_hat).sum(axis=axes, keepdims=True)
    bracket = m * dout
    if mean_term:
        bracket = bracket - sb
    if var_term:
        bracket = bracket + var_sign * x_hat * sg
    dx = g * inv / m * bracket
    dgamma, dbeta = (dout * x_hat).sum(axis=AXES), dout.sum(axis=AXES)
    if swap:
        dgamma, dbeta = dbeta, dgamma
    if dparam == "axis0":
        dgamma, dbeta = (dout * x_hat).sum(axis=0), dout.sum(axis=0)
    elif dparam == "mean":
        dgamma, dbeta = (dout * x_hat).mean(axis=AXES), dout.mean(axis=AXES)
    elif dparam == "keepdims":
        dgamma, dbeta = (dout * x_hat).sum(axis=AXES, keepdims=True), dout.sum(axis=AXES, keepdims=True)
    if in_place:
        dout *= 2.0
    return dx, dgamma, dbeta


def fn(**kwargs):
    return lambda dout, x_hat, gamma, inv_std: spatial_backward(dout, x_hat, gamma, inv_std, **kwargs)


# ---------------------------------------------------------------- 8.1

def test_spatial_backward_passes_the_solution():
    result = check.spatial_bn_backward.evaluate(spatial_backward)
    assert result.passed, result.message
    assert "float32" in result.message


def test_spatial_backward_passes_a_float32_computation():
    def in_float32(dout, x_hat, gamma, inv_std):
        args = [a.astype(np.float32) for a in (dout, x_hat, gamma, inv_std)]
        return spatial_backward(*args)
    assert check.spatial_bn_backward.evaluate(in_float32).passed


def test_spatial_backward_stub():
    assert_fails_with(check.spatial_bn_backward, stub, "not done yet")


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"axes": (0,), "dparam": "sum"}, "batch axis only"),
    ({"m_kind": "N"}, "m must be N·H·W"),
    ({"mean_term": False, "var_term": False}, "as constants"),
    ({"mean_term": False}, "through the mean"),
    ({"var_term": False}, "through the variance"),
    ({"var_sign": 1.0}, "wrong sign"),
    ({"use_gamma": False}, "factor γ"),
    ({"use_inv": False}, "1/sqrt"),
    ({"swap": True}, "swapped"),
    ({"dparam": "axis0"}, "one value per pixel"),
    ({"dparam": "mean"}, "not the mean"),
    ({"dparam": "keepdims"}, "shape (4,)"),
    ({"in_place": True}, "in place"),
])
def test_spatial_backward_mistakes(kwargs, fragment):
    assert_fails_with(check.spatial_bn_backward, fn(**kwargs), fragment)


def test_spatial_backward_bad_answers():
    good = spatial_backward
    assert_fails_with(check.spatial_bn_backward, lambda *a: good(*a)[0], "tuple")
    assert_fails_with(check.spatial_bn_backward, lambda *a: None, "tuple")
    assert_fails_with(check.spatial_bn_backward,
                      lambda *a: (good(*a)[0] * np.nan, *good(*a)[1:]), "NaN")
    assert_fails_with(check.spatial_bn_backward,
                      lambda *a: ("dx", *good(*a)[1:]), "string")
    assert_fails_with(check.spatial_bn_backward,
                      lambda *a: (good(*a)[0] * 1.01, *good(*a)[1:]), "differs")
    assert_fails_with(check.spatial_bn_backward,
                      lambda *a: (good(*a)[0][:, :1], *good(*a)[1:]), "shape")
    saved = good(*next(check._spatial_cases())[:4])          # reads a fixed answer: wrong shapes later
    assert_fails_with(check.spatial_bn_backward, lambda *a: saved, "shape")


# ---------------------------------------------------------------- 8.2

def zero_gamma_block(width, rng):
    return check._reference_zero_gamma_block(width, rng)


def test_zero_gamma_block_passes_the_solution():
    result = check.zero_gamma_block.evaluate(zero_gamma_block)
    assert result.passed, result.message


def test_zero_gamma_block_stub():
    assert_fails_with(check.zero_gamma_block, stub, "not done yet")


def _bn(width, gamma=0.0, beta=0.0):
    bn = BatchNorm(width)
    bn.gamma[:] = gamma
    bn.beta[:] = beta
    return bn


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda w, r: Residual(Sequential(ReLU(), Linear(w, w, bias=False, rng=r), _bn(w, 1.0))),
     "set the γ"),
    (lambda w, r: Residual(Sequential(Linear(w, w, bias=False, rng=r), _bn(w), ReLU())),
     "ReLU'(0) = 0"),
    (lambda w, r: Sequential(ReLU(), Linear(w, w, bias=False, rng=r), _bn(w)),
     "Residual(branch)"),
    (lambda w, r: Residual(Sequential(ReLU(), Linear(w, w, bias=False, rng=r), SkipInit(0.0))),
     "no BatchNorm"),
    (lambda w, r: Residual(Sequential(ReLU(), _bn(w))), "no Linear"),
    (lambda w, r: Residual(Sequential(ReLU(), Linear(w, w, bias=False, init=1e-300, rng=r),
                                      _bn(w, 1.0))), "not because of γ"),
    (lambda w, r: Residual(Sequential(ReLU(), Linear(6, 6, bias=False, rng=r), _bn(6))),
     "cannot take a batch"),
    (lambda w, r: Residual(Sequential(ReLU(), Linear(w, w, rng=r), _bn(w, np.nan))), "NaN"),
    (lambda w, r: None, "returned None"),
    (lambda w, r: "block", "Residual layer"),
    (lambda w, r: Residual(Sequential(ReLU(), Linear(w, w, bias=False, rng=r), _bn(w, 0.0, 1.0))),
     "differs from its input"),
])
def test_zero_gamma_block_mistakes(make, fragment):
    assert_fails_with(check.zero_gamma_block, make, fragment)


def test_zero_gamma_block_with_zero_weights():
    def zero_w(w, r):
        lin = Linear(w, w, bias=False, rng=r)
        lin.W[:] = 0.0
        return Residual(Sequential(ReLU(), lin, _bn(w)))
    assert_fails_with(check.zero_gamma_block, zero_w, "weights are all 0")


def test_zero_gamma_block_whose_gamma_is_not_learned():
    class Frozen(BatchNorm):
        param_names = ("beta",)
    def make(w, r):
        bn = Frozen(w)
        bn.gamma[:] = 0.0
        return Residual(Sequential(ReLU(), Linear(w, w, bias=False, rng=r), bn))
    assert_fails_with(check.zero_gamma_block, make, "learned parameter")


# ---------------------------------------------------------------- 8.3

def predict(v0, k, gamma):
    return v0 + k * gamma**2


def test_stream_variance_passes_the_solution():
    result = check.stream_variance.evaluate(predict)
    assert result.passed, result.message
    assert check.stream_variance.evaluate(lambda v0, k, g: np.float32(v0 + k * g * g)).passed
    assert check.stream_variance.evaluate(lambda v0, k, g: np.array([v0 + k * g**2])).passed


def test_stream_variance_stub():
    assert_fails_with(check.stream_variance, stub, "not done yet")


@pytest.mark.parametrize(("wrong", "fragment"), [
    (lambda v0, k, g: v0 * 2.0**k, "without normalization"),
    (lambda v0, k, g: v0 + k * g, "not γ"),
    (lambda v0, k, g: v0 * (1 + g**2) ** k, "rather than multiply"),
    (lambda v0, k, g: k * g**2, "forgot the variance the stream starts with"),
    (lambda v0, k, g: v0, "identity"),
    (lambda v0, k, g: v0 + (k + 1) * g**2, "off by one"),
    (lambda v0, k, g: v0 + (k - 1) * g**2, "off by one"),
    (lambda v0, k, g: v0 + k, "the variance is"),
    (lambda v0, k, g: 11.0, "the variance is"),                 # ignores its arguments
    (lambda v0, k, g: float("nan"), "NaN"),
    (lambda v0, k, g: str(v0 + k * g**2), "string"),
    (lambda v0, k, g: None, "returned None"),
    (lambda v0, k, g: [v0, k], "one number"),
])
def test_stream_variance_mistakes(wrong, fragment):
    assert_fails_with(check.stream_variance, wrong, fragment)


def test_stream_variance_measurement_agrees_with_the_rule():
    measured = check._measured_variance(16, 1.0)
    assert measured[16] == pytest.approx(measured[0] + 16, rel=0.2)
    half = check._measured_variance(8, 0.5)
    assert half[8] == pytest.approx(half[0] + 8 * 0.25, rel=0.2)
