"""Exercise 4.5 as a derivation (issue 24): ``check.scaled_gradient_per_feature``.

The learner derives what scaling each column k of W by its own a[k] > 0 does to dL/dW when
BN follows the linear layer: column k of the gradient is divided by a[k]. The check must pass
every right way of computing it, fail the stub and each plausible wrong answer with a hint
that names the mistake, and never be fooled by an odd answer.
"""

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub  # tests/check_helpers.py

from bnutils.batchnorm import batchnorm_backward, batchnorm_forward
from bnutils.checks import backward as check


def grad_at(X, W, dout):
    _, cache = batchnorm_forward(X @ W, np.ones(W.shape[1]), np.zeros(W.shape[1]))
    return X.T @ batchnorm_backward(dout, cache)[0]


def by_identity(X, W, dout, a):
    return grad_at(X, W, dout) / a                     # broadcasts over the columns


def directly(X, W, dout, a):
    """A second backward pass at W·diag(a): right numbers, but the exercise forbids it."""
    return grad_at(X, W * a, dout)


def by_diag(X, W, dout, a):
    a = np.broadcast_to(np.asarray(a, dtype=float), (W.shape[1],))
    return grad_at(X, W, dout) @ np.diag(1.0 / a)


def column_by_column(X, W, dout, a):
    a = np.broadcast_to(np.asarray(a, dtype=float), (W.shape[1],))
    g = grad_at(X, W, dout)
    return np.column_stack([g[:, k] / a[k] for k in range(W.shape[1])])


@pytest.mark.parametrize("solution", [by_identity, by_diag, column_by_column,
                                      lambda X, W, d, a: by_identity(X, W, d, a).tolist(),
                                      lambda X, W, d, a: by_identity(X, W, d, a).astype(np.float32)])
def test_passes_right_answers(solution):
    result = check.scaled_gradient_per_feature.evaluate(solution)
    assert result.passed, result.message
    assert "column by column" in result.message and len(result.message) <= 90


def test_the_cases_scale_columns_differently():
    arrays = [a for *_, a, _ in check._per_feature_cases() if np.ndim(a) == 1]
    assert any(len(set(a.tolist())) > 1 for a in arrays)
    assert any(np.ndim(a) == 0 for *_, a, _ in check._per_feature_cases())


@pytest.mark.parametrize(("fn", "fragment"), [
    (stub, "not done yet"),
    (lambda X, W, d, a: grad_at(X, W, d), "gradient at W itself"),
    (lambda X, W, d, a: grad_at(X, W, d) * a, "not dW·a"),
    (lambda X, W, d, a: grad_at(X, W, d) / np.square(a), "effective learning rate"),
    (lambda X, W, d, a: grad_at(X, W, d) / np.mean(a), "one number for all columns"),
    (lambda X, W, d, a: grad_at(X, W, d) / np.linalg.norm(a), "not by a norm"),
    (lambda X, W, d, a: by_identity(X, W, d, a) * 1.1, "not the gradient at W·diag(a)"),
    (lambda X, W, d, a: by_identity(X, W, d, a).T, "shape"),
    (lambda X, W, d, a: by_identity(X, W, d, a) * np.nan, "NaN"),
    (lambda X, W, d, a: by_identity(X, W, d, a) * np.inf, "inf"),
    (lambda X, W, d, a: None, "None"),
    (lambda X, W, d, a: by_identity(X, W, d, a).astype(str), "string"),
    (lambda X, W, d, a: [[True] * W.shape[1]] * W.shape[0], "bool"),
])
def test_fails_wrong_answers_with_a_hint(fn, fragment):
    assert_fails_with(check.scaled_gradient_per_feature, fn, fragment)


def test_a_hard_coded_answer_fails():
    first = next(check._per_feature_cases())[:4]
    answer = by_identity(*first)
    assert_fails_with(check.scaled_gradient_per_feature, lambda X, W, d, a: answer,
                      "not the gradient at W·diag(a)")


def test_a_second_backward_pass_is_refused():
    # The exercise asks for one pass at W and the derivation (issue 25: forbidden shortcuts).
    assert_fails_with(check.scaled_gradient_per_feature, directly, "one pass at W, then your derivation")


def test_in_place_changes_are_refused():
    def in_place(X, W, d, a):
        W *= a
        return grad_at(X, W, d)
    assert_fails_with(check.scaled_gradient_per_feature, in_place, "in place")


def test_a_bug_in_the_learners_code_is_named_as_theirs():
    def buggy(X, W, d, a):
        raise RuntimeError("the learner's own bug")
    assert_fails_with(check.scaled_gradient_per_feature, buggy, "your code raised RuntimeError")


def test_a_notebook_global_is_refused():
    # Right on the first case only: reads the notebook's ``W_nb`` instead of the argument W.
    X, W, dout, a, _ = next(check._per_feature_cases())
    namespace = {"__name__": "__main__", "np": np, "grad_at": grad_at, "W_nb": W.copy()}
    exec("def uses_global(X, W, dout, a):\n"
         "    return grad_at(X, W_nb, dout) / a", namespace)
    assert_fails_with(check.scaled_gradient_per_feature, namespace["uses_global"], "from the notebook")
