"""bnutils.data: every data maker is seeded, has the documented shape and rule, and the
explorer tables are built lazily."""

import os
import subprocess
import sys

import numpy as np
import pytest

from bnutils.data import (
    batch_mates_data,
    example_5x3,
    make_cohort,
    make_wave_data,
    placement_table,
    scaled_problem,
    wave_boundary,
)


def test_small_tables():
    X, placed, columns = placement_table()
    assert X.shape == (4, 2) and placed.shape == (4,) and columns == ("cgpa", "iq")
    assert example_5x3().shape == (5, 3)


# ----------------------------------------------------------------------------- make_cohort (notebook 01)
def test_make_cohort_is_seeded_and_plausible():
    a = make_cohort(500, seed=4)
    b = make_cohort(500, seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    X, score, placed = a
    assert 6.5 < X[:, 0].mean() < 8.5 and 10 < X[:, 1].std() < 20
    assert 0.15 < np.corrcoef(X.T)[0, 1] < 0.45
    assert set(np.unique(placed)) == {0, 1}
    with pytest.raises(ValueError, match="corr"):
        make_cohort(10, corr=1.0)
    with pytest.raises(ValueError, match="n must be ≥ 1"):
        make_cohort(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        make_cohort(10.0)


def test_make_cohort_strong_college_shifts_cgpa_only():
    strong, _, _ = make_cohort(2000, seed=7, cgpa_mean=9.0)
    weak, _, _ = make_cohort(2000, seed=7, cgpa_mean=6.0)
    np.testing.assert_allclose(strong[:, 0] - weak[:, 0], 3.0)     # same draws, shifted
    np.testing.assert_array_equal(strong[:, 1], weak[:, 1])


# ----------------------------------------------------------------------------- scaled_problem (notebook 01)
def test_scaled_problem_has_the_requested_ratio():
    X, y = scaled_problem(5.0)
    np.testing.assert_allclose(X.std(0), [1.0, 5.0], rtol=1e-12)
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-12)
    assert abs(y.mean()) < 1e-12
    with pytest.raises(ValueError, match="scale_ratio"):
        scaled_problem(0.0)


def test_scaled_problem_is_the_standardized_cohort():
    X, y = scaled_problem(2.0, n=50, seed=3)
    cohort, score, _ = make_cohort(50, seed=3)
    Z = (cohort - cohort.mean(0)) / cohort.std(0)
    np.testing.assert_allclose(X, Z * [1.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(y, score - score.mean(), rtol=1e-12)


# ----------------------------------------------------------------------------- wave data (notebook 02)
def test_wave_data_same_rule_different_region():
    Xa, ya = make_wave_data(300, (-3.0, -0.3), seed=0)
    Xb, yb = make_wave_data(300, (0.3, 3.0), seed=1)
    assert Xa[:, 0].max() <= -0.3 and Xb[:, 0].min() >= 0.3
    for X, y in ((Xa, ya), (Xb, yb)):
        np.testing.assert_array_equal(y, X[:, 1] > wave_boundary(X[:, 0]))
        assert 0.3 < y.mean() < 0.7
    np.testing.assert_array_equal(make_wave_data(5, seed=3)[0], make_wave_data(5, seed=3)[0])
    with pytest.raises(ValueError, match="low < high"):
        make_wave_data(5, (1.0, 0.0))
    with pytest.raises(ValueError, match="n must be ≥ 1"):
        make_wave_data(0)


def test_wave_boundary_is_the_documented_sine():
    x1 = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(wave_boundary(x1), np.sin(1.5 * x1), rtol=1e-15)


# ------------------------------------------------------------------ batch-mates table (notebook 07)
@pytest.mark.parametrize("kwargs, error, message", [
    ({"cgpa_mean": "7.5"}, TypeError, "cgpa_mean must be a real number, got '7.5'"),
    ({"cgpa_mean": True}, TypeError, "cgpa_mean must be a real number, got True"),
    ({"cgpa_mean": -9.0}, ValueError, r"cgpa_mean must lie on the 10-point scale \[0, 10\]"),
    ({"cgpa_mean": float("nan")}, ValueError, "cgpa_mean must be finite"),
    ({"corr": "0.3"}, TypeError, "corr must be a real number"),     # float("0.3") accepted it
])
def test_make_cohort_refuses_strings_bools_and_off_scale_means(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_cohort(20, **kwargs)


def test_make_cohort_gives_the_same_numbers_for_an_int_or_numpy_mean():
    np.testing.assert_array_equal(make_cohort(20, cgpa_mean=9)[0],
                                  make_cohort(20, cgpa_mean=np.float32(9.0))[0])


def test_scaled_problem_and_the_digits_split_refuse_strings_and_bools():
    with pytest.raises(TypeError, match="scale_ratio must be a real number, got '4'"):
        scaled_problem("4")
    with pytest.raises(TypeError, match="scale_ratio must be a real number, got True"):
        scaled_problem(True)                     # before: ratio 1.0, silently
    from bnutils.data import load_digits_split

    with pytest.raises(TypeError, match="test_fraction must be a real number, got '0.25'"):
        load_digits_split("0.25")


def test_wave_boundary_refuses_nan_and_inf():
    with pytest.raises(ValueError, match="x1 contains 1 non-finite"):
        wave_boundary([0.0, np.nan])              # before: NaN out, silently
    with pytest.raises(ValueError, match="x1 contains 1 non-finite"):
        wave_boundary(np.array([np.inf]))          # before: a RuntimeWarning and NaN
    assert wave_boundary(np.array([])).shape == (0,)


def test_batch_mates_data_is_cached_read_only_and_fixed():
    data = batch_mates_data()
    assert data.shape == (512, 16)
    assert batch_mates_data() is data
    assert not data.flags.writeable
    with pytest.raises(ValueError):
        data[0, 0] = 1.0
    # each feature its own mean and spread: the columns differ clearly
    assert np.ptp(data.mean(axis=0)) > 1.0 and np.ptp(data.std(axis=0)) > 1.0
    rng = np.random.default_rng(7)                  # the documented recipe, redone
    means, stds = rng.uniform(-2.0, 2.0, 16), rng.uniform(0.5, 3.0, 16)
    offsets = rng.normal(0.0, 1.0, size=(512, 1))
    np.testing.assert_array_equal(data, rng.normal(means, stds, size=(512, 16)) + offsets)


def test_importing_the_explorer_does_not_build_its_data():
    code = ("import bnutils.widgets.limits as wl, bnutils.data as d; "
            "before = d.batch_mates_data.cache_info().misses; "
            "wl.batch_mates_state('BatchNorm', 4); "
            "print(before, d.batch_mates_data.cache_info().misses)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    assert out.stdout.split() == ["0", "1"]
