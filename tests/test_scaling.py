"""bnutils.scaling: the scalers against scikit-learn, whitening, the quadratic and GD."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from bnutils import scaling
from bnutils.data import make_cohort
from bnutils.scaling import (
    Scaler,
    apply_scaler,
    best_fixed_lr,
    condition_number,
    fit_scaler,
    fit_whitening,
    gradient_descent,
    invert_scaler,
    mean_normalize,
    min_max_rescale,
    mse_hessian,
    standardize,
)

RNG = np.random.default_rng(0)
X_TRAIN = np.column_stack([RNG.normal(7.5, 1.0, 50), RNG.normal(100, 15, 50), RNG.uniform(0, 1e4, 50)])
X_TEST = np.column_stack([RNG.normal(8.0, 1.0, 20), RNG.normal(90, 15, 20), RNG.uniform(0, 2e4, 20)])


@pytest.mark.parametrize("method, sk", [("minmax", MinMaxScaler), ("standard", StandardScaler)])
def test_scalers_match_scikit_learn_on_train_and_test(method, sk):
    ours = Scaler(method).fit(X_TRAIN)
    ref = sk().fit(X_TRAIN)
    np.testing.assert_allclose(ours.transform(X_TRAIN), ref.transform(X_TRAIN), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.transform(X_TEST), ref.transform(X_TEST), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(X_TEST)), X_TEST, rtol=1e-12)


def test_constant_feature_is_only_shifted_like_scikit_learn():
    X = np.column_stack([np.full(5, 3.0), np.arange(5.0)])
    for method, sk in (("minmax", MinMaxScaler), ("standard", StandardScaler)):
        np.testing.assert_allclose(Scaler(method).fit_transform(X), sk().fit_transform(X), atol=1e-12)
    assert fit_scaler(X, "mean").scale[0] == 1.0


def test_properties_of_each_method_on_its_fitting_data():
    z = standardize(X_TRAIN)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1, rtol=1e-12)
    m = min_max_rescale(X_TRAIN)
    np.testing.assert_allclose(m.min(0), 0, atol=1e-12)
    np.testing.assert_allclose(m.max(0), 1, rtol=1e-12)
    mn = mean_normalize(X_TRAIN)
    np.testing.assert_allclose(mn.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(mn.max(0) - mn.min(0), 1, rtol=1e-12)
    # mean normalization = z-score times std / range
    np.testing.assert_allclose(mn, z * X_TRAIN.std(0) / np.ptp(X_TRAIN, axis=0), rtol=1e-12)


def test_test_split_uses_training_statistics():
    stats = fit_scaler(X_TRAIN, "standard")
    out = apply_scaler(X_TEST, stats)
    np.testing.assert_allclose(out, (X_TEST - X_TRAIN.mean(0)) / X_TRAIN.std(0))
    assert abs(out.mean(0)).max() > 0.1          # not re-centred on the test split
    np.testing.assert_allclose(invert_scaler(out, stats), X_TEST, rtol=1e-12)


def test_inputs_are_not_modified_and_stats_are_read_only():
    X = X_TRAIN.copy()
    stats = fit_scaler(X)
    standardize(X)
    np.testing.assert_array_equal(X, X_TRAIN)
    with pytest.raises(ValueError):
        stats.shift[0] = 1.0


def test_integer_input_works():
    np.testing.assert_allclose(min_max_rescale([[1], [3], [5]]).ravel(), [0, 0.5, 1])


@pytest.mark.parametrize("call, match", [
    (lambda: fit_scaler(X_TRAIN, "zscore"), "method must be one of"),
    (lambda: fit_scaler(np.ones(5)), r"shape \(N, D\)"),
    (lambda: fit_scaler(np.array([[1.0, np.nan]])), "non-finite"),
    (lambda: apply_scaler(X_TEST[:, :2], fit_scaler(X_TRAIN)), "fitted on 3"),
    (lambda: invert_scaler(X_TEST[:, :2], fit_scaler(X_TRAIN)), "X_scaled has 2 features"),
    (lambda: Scaler("nope"), "method must be one of"),
    (lambda: fit_whitening(X_TRAIN, eps=0.0), "eps must be > 0"),
    (lambda: condition_number(np.ones((2, 3))), "square"),
    (lambda: condition_number(np.array([[1.0, 2.0], [0.0, 1.0]])), "symmetric"),
    (lambda: condition_number(-np.eye(2)), "positive semi-definite"),
])
def test_bad_input_raises_value_error_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="ScalerStats"):
        apply_scaler(X_TEST, {"shift": 0})
    with pytest.raises(TypeError, match="ScalerStats"):
        invert_scaler(X_TEST, {"shift": 0})
    with pytest.raises(TypeError):
        fit_scaler([["a", "b"]])


def test_unfitted_scaler_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        Scaler().transform(X_TEST)


def test_zca_whitening_gives_identity_covariance_and_is_symmetric():
    L = np.array([[1.0, 0.0, 0.0], [0.9, 0.4, 0.0], [0.2, -0.5, 2.0]])
    X = RNG.standard_normal((500, 3)) @ L.T * np.array([1.0, 10.0, 0.1]) + 5.0
    mean, W = fit_whitening(X, eps=1e-12)
    Z = (X - mean) @ W
    np.testing.assert_allclose(Z.T @ Z / len(Z), np.eye(3), atol=1e-8)
    np.testing.assert_allclose(W, W.T, atol=1e-12)
    # The Hessian of least squares on whitened data is 2·I: condition number 1.
    assert condition_number(mse_hessian(Z)) == pytest.approx(1.0, abs=1e-6)


def test_mse_hessian_matches_numerical_second_derivatives():
    X = X_TRAIN[:, :2] - X_TRAIN[:, :2].mean(0)
    y = RNG.standard_normal(len(X))

    def loss(w):
        return np.mean((X @ w - y) ** 2)

    H = mse_hessian(X)
    h, w0 = 1e-3, np.array([0.3, -0.2])
    num = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            num[i, j] = (loss(w0 + ei + ej) - loss(w0 + ei - ej) - loss(w0 - ei + ej)
                         + loss(w0 - ei - ej)) / (4 * h * h)
    np.testing.assert_allclose(H, num, rtol=1e-6)


def test_condition_number_and_best_lr_on_a_diagonal_hessian():
    H = np.diag([2.0, 50.0])
    assert condition_number(H) == pytest.approx(25.0)
    assert best_fixed_lr(H) == pytest.approx(2 / 52)
    assert condition_number(np.diag([1.0, 0.0])) == float("inf")


def test_gradient_descent_reaches_the_least_squares_solution():
    X, score, _ = make_cohort(200, seed=3)
    Z = standardize(X)
    y = score - score.mean()
    result = gradient_descent(Z, y, lr=best_fixed_lr(mse_hessian(Z)), tol=1e-12)
    ref = LinearRegression().fit(Z, y)
    np.testing.assert_allclose(result.path[-1], ref.coef_, rtol=1e-5)
    np.testing.assert_allclose(result.w_star, ref.coef_, rtol=1e-10)
    assert result.converged and result.steps == len(result.path) - 1


def test_gradient_descent_path_matches_the_closed_form():
    """w_t - w* = Q diag((1 - lr λ)^t) Qᵀ (w0 - w*): an independent reference."""
    X = np.column_stack([RNG.normal(0, 1, 80), RNG.normal(0, 5, 80)])
    X -= X.mean(0)
    y = X @ np.array([1.5, -0.4]) + RNG.normal(0, 0.3, 80)
    y -= y.mean()
    lr = 0.7 * 2 / np.linalg.eigvalsh(mse_hessian(X))[-1]
    result = gradient_descent(X, y, lr=lr, max_steps=300, tol=1e-300)
    lam, Q = np.linalg.eigh(mse_hessian(X))
    c = Q.T @ (np.zeros(2) - result.w_star)
    t = np.arange(len(result.path))[:, None]
    closed = result.w_star + (c * (1 - lr * lam) ** t) @ Q.T
    np.testing.assert_allclose(result.path, closed, rtol=1e-8, atol=1e-10)
    # and the recorded losses are the mean squared errors at those points
    np.testing.assert_allclose(result.loss, np.mean((result.path @ X.T - y) ** 2, axis=1), rtol=1e-9)


def test_steps_are_counted_by_the_stated_tolerance():
    X, score, _ = make_cohort(100, seed=1)
    Z, y = standardize(X), score - score.mean()
    result = gradient_descent(Z, y, lr=0.1, tol=1e-4)
    gaps = (result.loss - result.loss_star) / (result.loss[0] - result.loss_star)
    assert gaps[result.steps] <= 1e-4 < gaps[result.steps - 1]


def test_too_large_a_rate_diverges_and_too_small_does_not_converge():
    X, score, _ = make_cohort(100, seed=1)
    Z, y = standardize(X), score - score.mean()
    lam_max = np.linalg.eigvalsh(mse_hessian(Z))[-1]
    bad = gradient_descent(Z, y, lr=2.2 / lam_max)
    assert bad.diverged and not bad.converged and bad.summary().startswith("diverged")
    slow = gradient_descent(Z, y, lr=1e-5, max_steps=50)
    assert not slow.diverged and slow.steps is None
    assert slow.summary() == "did not converge in 50 steps"
    assert len(slow.path) == 51


def test_a_diverging_run_keeps_its_first_bad_step_when_its_loss_is_finite():
    X, score, _ = make_cohort(100, seed=1)
    Z, y = standardize(X), score - score.mean()
    lam_max = np.linalg.eigvalsh(mse_hessian(Z))[-1]
    bad = gradient_descent(Z, y, lr=2.2 / lam_max)
    gap0 = bad.loss[0] - bad.loss_star
    assert bad.loss[-1] - bad.loss_star > 1e6 * gap0 >= bad.loss[-2] - bad.loss_star
    assert np.isfinite(bad.loss).all() and np.isfinite(bad.path).all()


@pytest.mark.parametrize("exponent", [15, 80, 150])
def test_huge_features_diverge_with_finite_numbers_only(exponent):
    # With X ~ 10^e the Hessian is ~10^2e: lr = 0.05 diverges at once, and the first
    # step's loss overflows float64 for e ≳ 77. Before: RuntimeWarnings and inf in
    # the returned losses; now the path stops at the last point with a finite loss.
    X = RNG.normal(1.0, 2.0, size=(6, 3)) * 10.0 ** exponent
    y = RNG.normal(size=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = gradient_descent(X, y, lr=0.05, max_steps=20)
    assert result.diverged and result.summary() == "diverged (lr = 0.05)"
    assert np.isfinite(result.path).all() and np.isfinite(result.loss).all()
    np.testing.assert_allclose(result.loss, np.mean((result.path @ X.T - y) ** 2, axis=1),
                               rtol=1e-6)


def test_a_problem_too_large_for_float64_is_refused_by_name():
    X = np.eye(3) * 1e200                   # XᵀX/N = 3.3e399: overflows
    with pytest.raises(ValueError, match="X and y are too large .* rescale X and y"):
        gradient_descent(X, np.ones(3), lr=0.1)
    with pytest.raises(ValueError, match="the loss at the starting point w0 overflows"):
        gradient_descent(np.eye(3) * 1e100, np.ones(3), lr=0.1, w0=np.full(3, 1e200))


def test_raw_features_condition_far_worse_than_standardized():
    X, score, _ = make_cohort(200, seed=0)
    kappa_raw = condition_number(mse_hessian(X - X.mean(0)))
    kappa_std = condition_number(mse_hessian(standardize(X)))
    assert kappa_raw > 100 and kappa_std < 3
    y = score - score.mean()
    steps = {}
    for name, Xm in (("raw", X - X.mean(0)), ("std", standardize(X))):
        steps[name] = gradient_descent(Xm, y, lr=best_fixed_lr(mse_hessian(Xm)), max_steps=20000).steps
    assert steps["raw"] > 50 * steps["std"]


def test_gradient_descent_validates_its_arguments():
    X = np.eye(3)
    with pytest.raises(ValueError, match="y must have shape"):
        gradient_descent(X, np.ones(2), lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        gradient_descent(X, np.ones(3), lr=0.0)
    with pytest.raises(ValueError, match="max_steps"):
        gradient_descent(X, np.ones(3), lr=0.1, max_steps=0)
    with pytest.raises(ValueError, match="w0 must have shape"):
        gradient_descent(X, np.ones(3), lr=0.1, w0=np.ones(2))


def test_public_names_are_exported():
    for name in scaling.__all__:
        assert hasattr(scaling, name)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("f", [fit_whitening, mse_hessian])
def test_whitening_and_hessian_refuse_an_X_whose_products_overflow(f):
    """XᵀX overflowed in matmul (a RuntimeWarning, then inf or NaN out)."""
    X = np.random.default_rng(0).normal(size=(12, 3)) * 1e160
    with pytest.raises(ValueError, match=r"^X is too large \(largest \|X\| = .*overflows float64"):
        f(X)
