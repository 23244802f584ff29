"""numerical_gradient and rel_error: the one gradient checker of tests and notebooks."""

import numpy as np
import pytest

from bnutils import numerical_gradient, rel_error


def test_gradient_of_known_functions():
    x = np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.7]])
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(v**2), x), 2 * x, rtol=1e-9)
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(np.sin(v)), x), np.cos(x),
                               rtol=1e-9, atol=1e-10)
    A = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(A * v), x), A, atol=1e-9)


def test_centred_differences_error_is_second_order():
    """For exp the centred-difference error is h²/6·exp(x): it falls 100x when h falls 10x
    (a one-sided difference would only fall 10x)."""
    x = np.array([0.5])
    errs = [abs(numerical_gradient(lambda v: float(np.exp(v[0])), x, h=h)[0] - np.exp(0.5))
            for h in (1e-2, 1e-3)]
    assert errs[0] == pytest.approx(1e-4 / 6 * np.exp(0.5), rel=1e-2)
    assert 80 < errs[0] / errs[1] < 120


def test_shapes_4d_and_float64_result():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    g = numerical_gradient(lambda v: np.sum(v**3), x)
    assert g.shape == x.shape and g.dtype == np.float64
    np.testing.assert_allclose(g, 3 * x.astype(np.float64) ** 2, rtol=1e-6)


def test_f_gets_fresh_copies_and_x_is_untouched():
    x = np.array([1.0, 2.0, 3.0])
    x_before = x.copy()
    seen = []

    def f(v):
        seen.append(v)
        result = float(np.sum(v**2))
        v[:] = 100.0              # a careless f that modifies its argument
        return result

    g = numerical_gradient(f, x)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-9)          # the mutation did not leak
    assert len(seen) == 2 * x.size and all(v is not x for v in seen)
    assert len({id(v) for v in seen}) == len(seen)          # a new array for every call


def test_a_lambda_that_ignores_its_argument_gets_a_zero_gradient():
    """The CS231n trap: f closes over the outer x instead of using its argument. The checker
    then reports a zero gradient, so comparing with the analytic gradient fails loudly."""
    x = np.array([1.0, -2.0, 0.5])
    wrong = numerical_gradient(lambda v: float(np.sum(x**2)), x)
    np.testing.assert_array_equal(wrong, 0.0)
    assert rel_error(2 * x, wrong) == pytest.approx(1.0)
    assert rel_error(2 * x, numerical_gradient(lambda v: float(np.sum(v**2)), x)) < 1e-9


def test_rel_error():
    a = np.array([1.0, 2.0, -3.0])
    assert rel_error(a, a) == 0.0
    assert rel_error(a, a + np.array([0, 0, 1e-6])) == pytest.approx(1e-6 / 6.000001)
    b = np.array([1.5, 2.0, -3.0])
    assert rel_error(a, b) == rel_error(b, a) == pytest.approx(0.5 / 2.5)
    # near zero the floor 1e-8 keeps it finite and small
    assert rel_error(np.zeros(2), np.full(2, 1e-12)) == pytest.approx(1e-4)
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    assert isinstance(rel_error([1.0], [2.0]), float)


def test_gradcheck_catches_a_wrong_gradient():
    x = np.random.default_rng(1).standard_normal(5)
    f = lambda v: float(np.sum(np.tanh(v)))
    right = 1 - np.tanh(x) ** 2
    wrong = 1 - np.tanh(x)                   # a plausible slip
    num = numerical_gradient(f, x)
    assert rel_error(right, num) < 1e-9
    assert rel_error(wrong, num) > 1e-2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rel_error_refuses_non_finite_input_naming_it(bad):
    # NaN would come back as NaN, and `err > tol` is False for NaN: a silent pass.
    ok = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="^a contains 1 non-finite"):
        rel_error(np.array([1.0, bad]), ok)
    with pytest.raises(ValueError, match="^b contains 1 non-finite"):
        rel_error(ok, np.array([bad, 2.0]))


def test_rel_error_and_numerical_gradient_refuse_complex_object_and_strings():
    for bad in (np.array([1.0 + 1j, 2.0]), np.array([1.0, 2.0], dtype=object), np.array(["1", "2"])):
        with pytest.raises(TypeError, match="^a must be a numeric array"):
            rel_error(bad, np.array([1.0, 2.0]))
        with pytest.raises(TypeError, match="^x must be a numeric array"):
            numerical_gradient(lambda v: float(np.sum(v)), bad)


def test_numerical_gradient_refuses_an_empty_x_and_a_non_callable_f():
    with pytest.raises(ValueError, match="^x must hold at least one value"):
        numerical_gradient(lambda v: 0.0, np.zeros((0, 3)))
    with pytest.raises(TypeError, match="^f must be a function"):
        numerical_gradient("f", np.zeros(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_numerical_gradient_refuses_non_finite_x_naming_it(bad):
    """At NaN/inf every difference f(x + h) - f(x - h) is NaN: an error, not NaN gradients."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    x[1, 0] = bad
    with pytest.raises(ValueError, match=r"^x contains 1 non-finite value\(s\)"):
        numerical_gradient(lambda v: float(np.sum(v**2)), x)


@pytest.mark.parametrize(("h", "error", "message"), [
    (np.nan, ValueError, "^h must be finite"), (np.inf, ValueError, "^h must be finite"),
    (0.0, ValueError, "^h must be > 0"), (-1e-5, ValueError, "^h must be > 0"),
    (True, TypeError, "^h must be a real number"), ("1e-5", TypeError, "^h must be a real number"),
    (None, TypeError, "^h must be a real number")])
def test_numerical_gradient_refuses_a_bad_step_naming_h(h, error, message):
    with pytest.raises(error, match=message):
        numerical_gradient(lambda v: float(np.sum(v**2)), np.ones(3), h=h)


def test_numerical_gradient_takes_any_shape_and_numpy_steps():
    """Any shape is a point to differentiate at (f decides): an extra axis, or a 0-d x."""
    x = np.array([[0.5], [-1.0], [2.0]])                              # (3, 1)
    np.testing.assert_allclose(numerical_gradient(lambda v: float(np.sum(v**2)), x), 2 * x,
                               rtol=1e-9)
    assert numerical_gradient(lambda v: float(v**2), np.array(1.5), h=np.float64(1e-4)) \
        == pytest.approx(3.0, rel=1e-9)


def test_numerical_gradient_refuses_an_f_that_returns_inf_or_nan_near_x():
    """f(x ± h) = inf (an overflow) or NaN (log of a negative step) made that entry NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ValueError, match=r"^f returned a non-finite value \(inf at x\[0\] \+ h"):
            numerical_gradient(lambda v: float(np.sum(v * v)), np.array([1e200, 1.0]))
        with pytest.raises(ValueError, match=r"nan at x\[0\] - h\): there is no gradient"):
            numerical_gradient(lambda v: float(np.log(v[0])), np.array([0.0, 1.0]))
