"""bnutils._validation: the shared checks (integers, dout, cache type, per-channel
reshape, statistics axes, read-only views), one copy each."""

import re

import numpy as np
import pytest

from bnutils._validation import (
    as_data_matrix,
    check_cache,
    check_dout,
    check_features,
    check_int,
    check_labels,
    check_learning_rate,
    check_no_overflow,
    check_real,
    check_sequence,
    check_split,
    per_channel,
    read_only,
    stat_axes,
)


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(2)])
def test_check_int_accepts_python_and_numpy_integers(value):
    out = check_int(value, "n")
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, 2.5, "3", None, np.float64(2)])
def test_check_int_rejects_non_integers_with_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=re.escape(f"num_devices must be an integer, got {value!r}")):
        check_int(value, "num_devices")


@pytest.mark.parametrize("value, minimum", [(0, 1), (-3, 1), (1, 2), (np.int64(4), 5)])
def test_check_int_rejects_values_below_the_minimum(value, minimum):
    with pytest.raises(ValueError, match=rf"count must be ≥ {minimum}, got {value}"):
        check_int(value, "count", minimum=minimum)
    assert check_int(minimum, "count", minimum=minimum) == minimum


def test_check_dout_converts_and_refuses_broadcastable_shapes_and_non_finite_values():
    out = check_dout([[1, 2], [3, 4]], (2, 2), dtype=np.float32)
    assert out.dtype == np.float32 and out.shape == (2, 2)
    with pytest.raises(ValueError, match=r"dout must have the shape of the forward input x, \(2, 3\); "
                                         r"got \(3,\)"):
        check_dout(np.ones(3), (2, 3))
    with pytest.raises(ValueError, match=r"of the forward output, \(2, 3\); got \(1, 3\)"):
        check_dout(np.ones((1, 3)), (2, 3), of="the forward output")
    with pytest.raises(ValueError, match="dout contains 1 non-finite"):
        check_dout(np.array([[1.0, np.nan]]), (1, 2))


def test_check_cache_names_the_expected_class_and_producer():
    class Cache:
        pass
    check_cache(Cache(), Cache, "f")
    with pytest.raises(TypeError, match="cache must be the Cache returned by f, got tuple"):
        check_cache((1, 2), Cache, "f")


def test_stat_axes_and_per_channel_agree_for_every_layout():
    for ndim, axes, shape in [(2, (0,), (1, 3)), (3, (0, 2), (1, 3, 1)), (4, (0, 2, 3), (1, 3, 1, 1))]:
        assert stat_axes(ndim) == axes
        v = per_channel(np.arange(3.0), ndim)
        assert v.shape == shape
        x = np.ones((2, 3) + (2,) * (ndim - 2))
        np.testing.assert_array_equal((x * v).mean(axis=stat_axes(ndim)), np.arange(3.0))


def test_read_only_views_leave_the_originals_writable():
    a, b = np.zeros(2), np.ones(3)
    va = read_only(a)
    vb, vc = read_only(a, b)
    assert not (va.flags.writeable or vb.flags.writeable or vc.flags.writeable)
    assert a.flags.writeable and b.flags.writeable
    with pytest.raises(ValueError):
        va[0] = 1.0
    a[0] = 5.0                        # a view: the original's change shows through
    assert va[0] == 5.0


def test_check_int_with_a_maximum_names_the_range():
    assert check_int(5, "batch_size", 2, maximum=5) == 5
    for bad in (1, 6):
        with pytest.raises(ValueError, match=rf"batch_size must lie in 2\.\.5, got {bad}"):
            check_int(bad, "batch_size", 2, maximum=5)


# ----------------------------------------------------------------------------- issue 17's new helpers
@pytest.mark.parametrize("value", [0.5, 3, np.float32(0.5), np.int64(-2), np.array(1.5)])
def test_check_real_accepts_python_and_numpy_numbers(value):
    result = check_real(value, "alpha")
    assert type(result) is float and result == float(value)


@pytest.mark.parametrize("value, error, message", [
    ("7.5", TypeError, "cgpa_mean must be a real number, got '7.5'"),
    (True, TypeError, "cgpa_mean must be a real number, got True"),
    (None, TypeError, "cgpa_mean must be a real number"),
    (float("nan"), ValueError, "cgpa_mean must be finite"),
    (-np.inf, ValueError, "cgpa_mean must be finite"),
])
def test_check_real_refuses_strings_bools_and_non_finite_numbers(value, error, message):
    with pytest.raises(error, match=re.escape(message)):
        check_real(value, "cgpa_mean")


def test_check_sequence_checks_every_entry_and_names_it():
    assert check_sequence((4, np.int64(8)), "hidden", check_int) == [4, 8]
    assert check_sequence(np.array([2, 3]), "batch_sizes", check_int, minimum=2) == [2, 3]
    assert check_sequence(range(1, 3), "hidden", check_int) == [1, 2]
    assert check_sequence((), "hidden", check_int, allow_empty=True) == []
    with pytest.raises(TypeError, match=r"hidden must be a sequence .* got 'abc' of type str"):
        check_sequence("abc", "hidden", check_int)       # a string: not three entries
    with pytest.raises(TypeError, match=r"hidden must be a sequence"):
        check_sequence(100, "hidden", check_int)
    with pytest.raises(ValueError, match="hidden must not be empty"):
        check_sequence([], "hidden", check_int)
    with pytest.raises(ValueError, match=r"hidden\[1\] must be ≥ 1, got 0"):
        check_sequence([4, 0], "hidden", check_int)
    with pytest.raises(TypeError, match=r"lrs\[0\] must be a real number, got 'x'"):
        check_sequence(["x"], "lrs", check_learning_rate)
    with pytest.raises(ValueError, match="1-D"):
        check_sequence(np.ones((2, 2)), "lrs", check_learning_rate)


def test_as_data_matrix_converts_like_as_float_array_and_refuses_bad_shapes_and_values():
    X32 = np.ones((3, 2), dtype=np.float32)
    assert as_data_matrix(X32) is X32                        # no copy, float32 kept
    assert as_data_matrix([[1, 2]]).dtype == np.float64
    for bad in (np.ones(3), np.ones((0, 2)), np.ones((3, 0)), np.ones((2, 2, 1))):
        with pytest.raises(ValueError, match=r"X_target must have shape \(N, D\)"):
            as_data_matrix(bad, "X_target")
    with pytest.raises(ValueError, match="N ≥ 2 rows"):
        as_data_matrix(np.ones((1, 2)), "X", min_rows=2)
    with pytest.raises(ValueError, match="X contains 1 non-finite"):
        as_data_matrix([[1.0, np.nan]])
    with pytest.raises(TypeError, match="X must be a numeric array"):
        as_data_matrix([["a", "b"]])


def test_check_labels_wants_non_negative_integer_labels_of_the_right_length():
    y = np.array([0, 2, 1])
    assert check_labels(y, 3) is y and check_labels(y) is y
    for bad in (np.array([0.0, 1.0, 1.0]), np.array(["0", "1", "1"]), np.array([True, False, True]),
                np.array([0, 1]), np.zeros((3, 1), dtype=int)):
        with pytest.raises(ValueError, match="y must hold 3 integer class labels"):
            check_labels(bad, 3)
    with pytest.raises(ValueError, match="y must be a non-empty 1-D array"):
        check_labels(np.array([], dtype=int))
    with pytest.raises(ValueError, match="class labels ≥ 0, got -1"):
        check_labels([0, -1], 2)


def test_check_split_accepts_the_4_tuple_only():
    X, y = np.ones((4, 2)), np.zeros(4, dtype=int)
    assert all(a is b for a, b in zip(check_split((X, X, y, y)), (X, X, y, y)))
    with pytest.raises(TypeError, match="data must be the 4-tuple"):
        check_split("not a valid value")
    with pytest.raises(ValueError, match="same D"):
        check_split((X, np.ones((4, 3)), y, y))
    with pytest.raises(ValueError, match="one label per row"):
        check_split((X, X, y[:3], y))


def test_check_features_names_the_argument_and_the_empty_axis():
    check_features(np.ones((0, 3)))                  # no samples is not its business
    with pytest.raises(ValueError, match=r"^x must have at least one feature \(axis 1\); got "
                                         r"shape \(4, 0\)$"):
        check_features(np.ones((4, 0)))
    with pytest.raises(ValueError, match=r"^x_test must have at least one channel"):
        check_features(np.ones((2, 0, 3, 3)), "x_test")


def test_check_no_overflow_passes_finite_results_and_names_every_input():
    check_no_overflow(np.array([1.0, 1e308]), "unused", x=np.array([1.0]))
    with pytest.raises(ValueError, match=r"^pred and target are too large \(largest \|pred\| = "
                                         r"1e\+300, largest \|target\| = 2\): it overflows$"):
        check_no_overflow(np.array([1.0, np.nan]), "it overflows", pred=np.array([-1e300]),
                          target=[2.0])
