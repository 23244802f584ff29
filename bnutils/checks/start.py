"""Self-check for notebook 00's warm-up exercise: standardizing a vector.

Introduced in notebook 00.
"""

from __future__ import annotations

import numpy as np

from ._core import Failed, as_answer_array, call_learner, compare, fmt_err, fresh_rng, self_check

__all__ = ["standardize"]

# A test vector with a clear mean and spread, and integers (to catch integer division habits).
_X = np.array([2, 4, 4, 4, 5, 5, 7, 9])


def _reference(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std()


def _cases():
    """The integer vector (its error is the one reported), a float one, a fresh one."""
    yield _X.copy()
    yield np.array([0.5, -1.25, 3.0, 10.0, -7.5, 2.25])
    rng = fresh_rng()
    yield rng.normal(rng.uniform(-5.0, 5.0), rng.uniform(0.5, 3.0), size=int(rng.integers(5, 12)))


@self_check("Warm-up · standardize")
def standardize(student_fn):
    """Check ``student_fn(x) -> z`` with ``z = (x - mean(x)) / std(x)`` (population std)."""
    reported = None
    for x in _cases():
        z = as_answer_array(call_learner(student_fn, x, names=("x",),
                                         hint="compute a new array instead"), "z")
        if z.shape != x.shape:
            raise Failed(f"expected an array of shape {x.shape}, got shape {z.shape}")
        xf = x.astype(float)
        err = compare(z, _reference(x), "values differ from (x - mean) / std by up to {err}; "
                      "the result should have mean 0 and std 1", rtol=0.0, atol=1e-9,
                      scale=(np.abs(xf) + abs(xf.mean())) / xf.std(), mistakes={
            "you divided by the sample std (ddof=1); use the population std, np.std(x) with ddof=0":
                (xf - xf.mean()) / xf.std(ddof=1),
            "you divided by the variance; divide by the standard deviation (its square root)":
                (xf - xf.mean()) / xf.var(),
            "you forgot to subtract the mean": xf / xf.std(),
            "you subtracted the mean but did not divide by the standard deviation": xf - xf.mean(),
        })
        reported = err if reported is None else reported
    return f"mean 0, std 1, matches (x - mean) / std (max abs. error {fmt_err(reported)})"
