"""Notebook 01's self-checks: pass the reference, fail the stub, name each common mistake."""

import numpy as np
import pytest
from check_helpers import verdict_count  # tests/check_helpers.py

from bnutils.checks import scaling as check

# ---------------------------------------------------------------- Exercise 1.1 scalers


def scale_features(X_train, X_test, method):
    if method == "minmax":
        shift = X_train.min(axis=0)
        scale = X_train.max(axis=0) - X_train.min(axis=0)
    elif method == "mean":
        shift = X_train.mean(axis=0)
        scale = X_train.max(axis=0) - X_train.min(axis=0)
    elif method == "standard":
        shift = X_train.mean(axis=0)
        scale = X_train.std(axis=0)
    else:
        raise ValueError(method)
    return (X_train - shift) / scale, (X_test - shift) / scale


def stub(*args):
    raise NotImplementedError("Exercise 1.1 (scale_features): replace this line with your solution")


def own_stats(X_train, X_test, method):
    return scale_features(X_train, X_train, method)[0], scale_features(X_test, X_test, method)[0]


def leaky(X_train, X_test, method):
    both = np.vstack([X_train, X_test])
    a, _ = scale_features(both, both, method)
    return a[:len(X_train)], a[len(X_train):]


def ddof1(X_train, X_test, method):
    if method != "standard":
        return scale_features(X_train, X_test, method)
    m, s = X_train.mean(0), X_train.std(0, ddof=1)
    return (X_train - m) / s, (X_test - m) / s


def global_stats(X_train, X_test, method):
    lo, hi, m, s = X_train.min(), X_train.max(), X_train.mean(), X_train.std()
    shift, scale = {"minmax": (lo, hi - lo), "mean": (m, hi - lo), "standard": (m, s)}[method]
    return (X_train - shift) / scale, (X_test - shift) / scale


def per_row(X_train, X_test, method):
    def one(X):
        lo, hi = X.min(1, keepdims=True), X.max(1, keepdims=True)
        m, s = X.mean(1, keepdims=True), X.std(1, keepdims=True)
        shift, scale = {"minmax": (lo, hi - lo), "mean": (m, hi - lo), "standard": (m, s)}[method]
        return (X - shift) / scale
    return one(X_train), one(X_test)


def swapped_mean_and_standard(X_train, X_test, method):
    other = {"mean": "standard", "standard": "mean", "minmax": "minmax"}[method]
    return scale_features(X_train, X_test, other)


def minmax_without_min(X_train, X_test, method):
    if method != "minmax":
        return scale_features(X_train, X_test, method)
    r = X_train.max(0) - X_train.min(0)
    return X_train / r, X_test / r


def minmax_by_max(X_train, X_test, method):
    if method != "minmax":
        return scale_features(X_train, X_test, method)
    lo, hi = X_train.min(0), X_train.max(0)
    return (X_train - lo) / hi, (X_test - lo) / hi


def by_variance(X_train, X_test, method):
    if method != "standard":
        return scale_features(X_train, X_test, method)
    m, v = X_train.mean(0), X_train.var(0)
    return (X_train - m) / v, (X_test - m) / v


def in_place(X_train, X_test, method):
    X_train -= 0.0 if method == "minmax" else 1.0
    return scale_features(X_train, X_test, method)


def test_scale_features_reference_passes(capsys):
    result = check.scale_features.evaluate(scale_features)
    assert result.passed and result.message.startswith("✓ Exercise 1.1")
    check.scale_features(scale_features)
    out = capsys.readouterr().out
    assert verdict_count(out) == 1 and out.startswith("✓")


def test_scale_features_stub_is_not_done_yet():
    result = check.scale_features.evaluate(stub)
    assert not result.passed and "not done yet" in result.message


@pytest.mark.parametrize("wrong, hint", [
    (own_stats, "test split with its own statistics"),
    (leaky, "training and test data together"),
    (ddof1, "ddof=1"),
    (global_stats, "whole array"),
    (per_row, "per row"),
    (swapped_mean_and_standard, "for method='mean' you computed z-score standardization"),
    (minmax_without_min, "forgot to subtract the minimum"),
    (minmax_by_max, "divided by the maximum"),
    (by_variance, "divided by the variance"),
    (in_place, "changed its input"),
    (lambda a, b, m: None, "returned None"),
    (lambda a, b, m: a, "return two arrays"),
    (lambda a, b, m: (a[:3], b), "expected shapes"),
    (lambda a, b, m: (scale_features(a, b, m)[0], scale_features(a, b, m)[1] + 0.1), "differ"),
])
def test_scale_features_mistakes_are_named(wrong, hint):
    result = check.scale_features.evaluate(wrong)
    assert not result.passed and result.message.startswith("✗")
    assert hint in result.message


# ------------------------------------------------------- Exercise 1.2 condition number


def kappa(X):
    ev = np.linalg.eigvalsh(2 / len(X) * X.T @ X)
    return ev[-1] / ev[0]


def test_condition_number_reference_passes():
    assert check.condition_number.evaluate(kappa).passed
    # the factor 2/N does not matter, nor does the route to the eigenvalues
    assert check.condition_number.evaluate(lambda X: np.linalg.cond(X.T @ X)).passed
    assert check.condition_number.evaluate(lambda X: np.linalg.cond(X) ** 2).passed


def test_condition_number_stub():
    assert "not done yet" in check.condition_number.evaluate(stub).message


@pytest.mark.parametrize("wrong, hint", [
    (lambda X: np.linalg.cond(X), "condition number of X itself"),
    (lambda X: 1 / kappa(X), "λ_min / λ_max"),
    (lambda X: kappa(X - X.mean(0)), "centred X"),
    (lambda X: (X**2).mean(0).max() / (X**2).mean(0).min(), "diagonal"),
    (lambda X: np.linalg.cond(X @ X.T), "X Xᵀ"),
    (lambda X: None, "returned None"),
    (lambda X: np.linalg.eigvalsh(X.T @ X), "one number"),
    (lambda X: kappa(X) + 1, "expected"),
])
def test_condition_number_mistakes_are_named(wrong, hint):
    result = check.condition_number.evaluate(wrong)
    assert not result.passed and hint in result.message


# ------------------------------------------------------ Exercise 1.3 the fastest rate


def fastest_lr(H):
    ev = np.linalg.eigvalsh(H)
    return 2.0 / (ev[0] + ev[-1])


def test_fastest_lr_reference_passes():
    result = check.fastest_lr.evaluate(fastest_lr)
    assert result.passed and "κ = 17" in result.message


def test_fastest_lr_accepts_a_rate_found_by_search():
    """A learner who searches a grid instead of deriving the formula also passes."""
    def by_search(H):
        lam = np.linalg.eigvalsh(H)
        grid = np.linspace(0.5, 2.0, 151) / lam[-1]
        factor = np.max(np.abs(1 - grid[:, None] * lam[None]), axis=1)
        return grid[np.argmin(factor)]
    assert check.fastest_lr.evaluate(by_search).passed


def test_fastest_lr_stub():
    assert "not done yet" in check.fastest_lr.evaluate(stub).message


@pytest.mark.parametrize("wrong, hint", [
    (lambda H: 1 / np.linalg.eigvalsh(H)[-1], "1/λ_max is safe but slow"),
    (lambda H: 2 / np.linalg.eigvalsh(H)[-1], "edge of divergence"),
    (lambda H: 1 / np.linalg.eigvalsh(H)[0], "diverges"),
    (lambda H: 2 / np.linalg.eigvalsh(H)[0], "diverges"),
    (lambda H: 1.02 * 2 / np.linalg.eigvalsh(H)[-1], "diverges: it must stay below"),
    (lambda H: 0.3 * fastest_lr(H), "steps, the best fixed rate only"),
    # issue 14: in 2-D these equal 2/(λ_min + λ_max); the 3-D problem tells them apart
    (lambda H: 2 / np.trace(H), "2/trace(H) is the best rate only with two features"),
    (lambda H: 1 / np.linalg.eigvalsh(H).mean(), "1/mean(λ) is the best rate only with two"),
    (lambda H: -0.1, "positive number"),
    (lambda H: None, "returned None"),
])
def test_fastest_lr_mistakes_are_named(wrong, hint):
    result = check.fastest_lr.evaluate(wrong)
    assert not result.passed and hint in result.message


def test_checks_never_raise(capsys):
    for c in (check.scale_features, check.condition_number, check.fastest_lr):
        c(object())
    out = capsys.readouterr().out
    assert verdict_count(out) == 3 and out.startswith("✗") and out.count("✓") == 0


def test_fastest_lr_has_a_problem_where_two_feature_formulas_are_slow():
    X, y = check._lr_problem_3d()
    H = check.scaling.mse_hessian(X)
    assert np.allclose(np.linalg.eigvalsh(H), [1.0, 50.0, 100.0])
    steps = {name: check.scaling.gradient_descent(X, y, lr=lr, max_steps=20_000).steps
             for name, lr in [("best", fastest_lr(H)), ("2/trace", 2 / np.trace(H)),
                              ("1/mean", 1 / np.linalg.eigvalsh(H).mean())]}
    assert steps["2/trace"] > 1.3 * steps["best"] and steps["1/mean"] > 1.3 * steps["best"], steps



def test_passing_lines_fit_a_90_character_output():
    """Issue 19: a verdict line longer than the output area breaks mid-token."""
    def condition(X):
        ev = np.linalg.eigvalsh(2.0 / X.shape[0] * X.T @ X)
        return ev[-1] / ev[0]

    for c, fn in [(check.scale_features, scale_features), (check.condition_number, condition),
                  (check.fastest_lr, fastest_lr)]:
        result = c.evaluate(fn)
        assert result.passed and len(result.message) <= 90, result.message
