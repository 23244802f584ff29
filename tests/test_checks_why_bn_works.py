"""Notebook 07's self-checks pass the solutions, fail the stubs and name each known mistake."""

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub, verdict_count  # tests/check_helpers.py

from bnutils.checks import why_bn_works as check
from bnutils.dropout import dropout_variance
from bnutils.scale_invariance import effective_learning_rates


@pytest.mark.parametrize("chk", [check.effective_lr, check.variance_shift])
def test_stub_is_not_done_yet(chk):
    assert_fails_with(chk, stub, "not done yet")


def test_checks_print_one_line(capsys):
    check.effective_lr(lambda W, lr: lr / np.sum(W**2, axis=0))
    check.variance_shift(stub)
    out = capsys.readouterr().out
    assert verdict_count(out) == 2 and out.startswith("✓ ") and "\n✗ " in out


# ----------------------------------------------------------------------------- 7.1
@pytest.mark.parametrize("fn", [
    lambda W, lr: lr / np.sum(W**2, axis=0),
    lambda W, lr: lr / np.linalg.norm(W, axis=0) ** 2,
    effective_learning_rates,
    lambda W, lr: (lr / np.sum(W**2, axis=0)).astype(np.float32),
    lambda W, lr: list(lr / np.sum(W**2, axis=0)),
])
def test_effective_lr_passes(fn):
    result = check.effective_lr.evaluate(fn)
    assert result.passed, result.message


def _in_place(W, lr):
    W *= 2
    return lr / np.sum(W**2, axis=0)


@pytest.mark.parametrize(("fn", "fragment"), [
    (lambda W, lr: lr / np.linalg.norm(W, axis=0), "not by its square"),
    (lambda W, lr: lr * np.sum(W**2, axis=0), "falls"),
    (lambda W, lr: lr / np.sum(W**2, axis=1), "one value per row"),       # 6x4: shape
    (lambda W, lr: lr / np.sum(W**2), "not one number for the layer"),
    (lambda W, lr: np.full(W.shape[1], lr / np.sum(W**2)), "whole matrix"),
    (lambda W, lr: 1.0 / np.sum(W**2, axis=0), "without the learning rate"),
    (lambda W, lr: np.full(W.shape[1], np.nan), "NaN"),
    (lambda W, lr: None, "returned None"),
    (lambda W, lr: "0.1", "string"),
    (lambda W, lr: lr / np.sum(W**2, axis=0) * 1.01, "differs from lr / ‖W[:, j]‖²"),
    (_in_place, "in place"),
])
def test_effective_lr_names_the_mistake(fn, fragment):
    assert_fails_with(check.effective_lr, fn, fragment)


def test_rows_for_columns_is_caught_on_the_square_layer():
    def rows_if_square(W, lr):
        axis = 1 if W.shape[0] == W.shape[1] else 0
        return lr / np.sum(W**2, axis=axis)

    assert_fails_with(check.effective_lr, rows_if_square, "rows of W")


# ----------------------------------------------------------------------------- 7.2
def solution(mean, var, p):
    return (var + mean**2) / (1 - p) - mean**2


@pytest.mark.parametrize("fn", [
    solution,
    lambda mean, var, p: np.asarray(dropout_variance(mean, var, p)),
    lambda mean, var, p: solution(mean, var, p).astype(np.float32),
])
def test_variance_shift_passes(fn):
    result = check.variance_shift.evaluate(fn)
    assert result.passed, result.message


def _mutating(mean, var, p):
    var += 1
    return solution(mean, var - 1, p)


@pytest.mark.parametrize(("fn", "fragment"), [
    (lambda mean, var, p: var / (1 - p), "left out the mean"),
    (lambda mean, var, p: (var + mean**2) / (1 - p), "did not subtract mean²"),
    (lambda mean, var, p: (var + mean**2) / p - mean**2, "instead of q"),
    (lambda mean, var, p: (var + mean**2) / (1 - p) ** 2 - mean**2, "divided by q²"),
    (lambda mean, var, p: (1 - p) * (var + mean**2) - ((1 - p) * mean) ** 2, "without the 1/q"),
    (lambda mean, var, p: var.copy(), "eval-mode variance"),
    (lambda mean, var, p: np.full(mean.shape, np.inf), "inf"),
    (lambda mean, var, p: solution(mean, var, p)[:2], "shape"),
    (lambda mean, var, p: None, "returned None"),
    (lambda mean, var, p: True, "bool"),
    (lambda mean, var, p: solution(mean, var, p) + 0.01, "differs from the training-mode variance"),
    (_mutating, "in place"),
])
def test_variance_shift_names_the_mistake(fn, fragment):
    assert_fails_with(check.variance_shift, fn, fragment)


def test_passing_lines_fit_90_characters(capsys):
    check.effective_lr(lambda W, lr: lr / np.sum(W**2, axis=0))
    check.variance_shift(solution)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("✓ ") and len(line) <= 90 for line in lines), lines
