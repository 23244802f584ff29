"""bnutils.dropout: inverted dropout, its backward, and the variance-shift formula."""

import numpy as np
import pytest

from bnutils.dropout import Dropout, dropout_backward, dropout_forward, dropout_variance
from bnutils.gradcheck import numerical_gradient, rel_error


def test_forward_keeps_the_mean_and_zeroes_a_fraction_p():
    x = np.ones(100_000)
    out, mask = dropout_forward(x, 0.3, rng=0)
    assert abs(mask.mean() - 0.7) < 0.01
    assert abs(out.mean() - 1.0) < 0.02
    assert set(np.unique(out)) == {0.0, 1 / 0.7}


def test_variance_formula_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(1)
    a = np.maximum(rng.normal(0.5, 1.0, size=400_000), 0)
    for p in (0.1, 0.5):
        out, _ = dropout_forward(a, p, rng=2)
        predicted = float(dropout_variance(a.mean(), a.var(), p))
        assert abs(out.var() / predicted - 1) < 0.01
    assert float(dropout_variance(0.0, 2.0, 0.5)) == pytest.approx(4.0)     # mean 0: var / q


def test_backward_is_the_gradient_of_the_forward():
    x = np.random.default_rng(3).normal(size=(4, 5))
    dout = np.random.default_rng(4).normal(size=(4, 5))
    _, mask = dropout_forward(x, 0.4, rng=5)
    dx = dropout_backward(dout, mask, 0.4)
    num = numerical_gradient(lambda v: np.sum(v * mask / 0.6 * dout), x)
    assert rel_error(dx, num) < 1e-8


def test_layer_train_and_eval():
    layer = Dropout(0.5, rng=0)
    x = np.arange(1.0, 9.0).reshape(2, 4)
    out = layer.forward(x)
    assert np.all((out == 0) | (out == 2 * x))
    dx = layer.backward(np.ones_like(x))
    assert np.array_equal(dx, (out != 0) * 2.0)
    layer.eval()
    assert np.array_equal(layer.forward(x), x)
    assert np.array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))
    assert layer.params() == {} and repr(layer) == "Dropout(p=0.5)"


def test_layer_refuses_backward_before_forward_and_after_a_failed_forward():
    layer = Dropout(0.5, rng=0)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 2)))
    layer.forward(np.ones((1, 2)))
    with pytest.raises(ValueError):
        layer.forward(np.array([[np.nan, 1.0]]))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 2)))


@pytest.mark.parametrize(("p", "error"), [(1.0, ValueError), (-0.1, ValueError), (True, TypeError),
                                          ("0.5", TypeError)])
def test_bad_rate_is_refused_by_name(p, error):
    with pytest.raises(error, match="p"):
        Dropout(p)


def test_inputs_are_not_modified():
    x = np.ones((3, 3))
    dropout_forward(x, 0.5, rng=0)
    assert np.array_equal(x, np.ones((3, 3)))
    with pytest.raises(ValueError, match="var"):
        dropout_variance(0.0, -1.0, 0.5)


def test_variance_takes_one_mean_and_var_per_unit_or_a_shared_number():
    mean, var = np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 0.5])
    expected = (var + mean**2) / 0.5 - mean**2
    np.testing.assert_allclose(dropout_variance(mean, var, 0.5), expected, rtol=1e-15)
    np.testing.assert_allclose(dropout_variance(mean, 2.0, 0.5), (2.0 + mean**2) / 0.5 - mean**2,
                               rtol=1e-15)
    np.testing.assert_allclose(dropout_variance(1.0, var, 0.5), (var + 1.0) / 0.5 - 1.0, rtol=1e-15)


@pytest.mark.parametrize(("mean_shape", "var_shape"), [((3,), (3, 1)), ((3, 1), (3,)),
                                                       ((3,), (2,)), ((1,), (3,))])
def test_variance_refuses_mean_and_var_of_different_shapes(mean_shape, var_shape):
    """Broadcasting (3,) against (3, 1) would silently give a (3, 3) table of variances."""
    with pytest.raises(ValueError, match=r"^mean and var must have the same shape .* got mean "
                                         rf"of shape \({mean_shape[0]},"):
        dropout_variance(np.ones(mean_shape), np.ones(var_shape), 0.5)


@pytest.mark.parametrize(("mean", "var", "dtype"), [(3e19, 1.0, np.float32), (1e160, 1.0, np.float64),
                                                    (1.0, 1e308, np.float64)])
def test_variance_refuses_a_result_beyond_the_dtype_naming_mean_and_var(mean, var, dtype):
    """mean² overflowed: inf or NaN (inf - inf) came back with only a RuntimeWarning."""
    with pytest.raises(ValueError, match=r"^mean or var is too large for the variance to fit in "
                                         rf"{np.dtype(dtype).name}"):
        dropout_variance(np.array([mean], dtype), np.array([var], dtype), 0.5)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("mean", "dtype"), [(1e160, np.float64), (3e19, np.float32)])
def test_variance_without_dropout_is_var_even_when_mean_squared_overflows(mean, dtype):
    """p = 0: the true answer is var, but mean² overflowed and the call raised."""
    out = dropout_variance(np.array([mean, 1.0], dtype), np.array([2.0, 3.0], dtype), 0.0)
    assert out.dtype == dtype and out.tolist() == [2.0, 3.0]


@pytest.mark.filterwarnings("error")
def test_variance_with_a_tiny_rate_and_a_huge_mean_is_computed():
    """var / q + mean² · p / q fits although mean² alone does not."""
    out = dropout_variance(np.array([1e160]), np.array([2.0]), 1e-30)
    np.testing.assert_allclose(out, [1e290], rtol=1e-14)
