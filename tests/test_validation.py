"""bnutils._validation: the shared checks (integers, dout, cache type, per-channel
reshape, statistics axes, read-only views), one copy each."""

import re

import numpy as np
import pytest

from bnutils._validation import (
    check_cache,
    check_dout,
    check_int,
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
