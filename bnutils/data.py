"""Every data set of the course: small tables from the study notes, seeded synthetic sets, digits.

* ``placement_table``, ``example_5x3`` — the tiny tables that common study notes and
  blog posts use (notebooks 01 and 03);
* ``make_cohort`` — a synthetic cohort of students like the placement table (notebook 01),
  and ``scaled_problem``, the least-squares problem of notebook 01's explorer built from it;
* ``make_wave_data``, ``wave_boundary`` — two regions of one classification rule, for
  covariate shift (notebook 02);
* ``batch_mates_data`` — the fixed table behind notebook 07's batch-mates explorer;
* ``load_digits_split`` — scikit-learn's bundled 8×8 digits, split and standardized
  (notebooks 02 and 05-07).

Every maker is seeded: the same arguments give the same arrays. Nothing here downloads
anything.

Introduced in notebook 01.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from . import scaling
from ._validation import as_float_array, as_generator, check_finite, check_int, check_positive, check_real

__all__ = [
    "batch_mates_data",
    "load_digits_split",
    "make_cohort",
    "make_wave_data",
    "placement_table",
    "scaled_problem",
    "example_5x3",
    "wave_boundary",
]


def placement_table():
    """The four-student table of common study notes: CGPA and IQ, and whether each was placed.

    Returns
    -------
    X : ndarray, shape (4, 2)
        Columns ``cgpa`` (0-10 scale) and ``iq``.
    placed : ndarray of int, shape (4,)
    columns : tuple of str

    Examples
    --------
    >>> X, placed, columns = placement_table()
    >>> X[0], int(placed[0]), columns
    (array([  8.9, 100. ]), 1, ('cgpa', 'iq'))

    Introduced in notebook 01.
    """
    X = np.array([[8.9, 100.0], [6.2, 89.0], [9.1, 91.0], [7.7, 76.0]])
    placed = np.array([1, 0, 0, 1])
    return X, placed, ("cgpa", "iq")


def example_5x3():
    """The 5×3 integer batch of common study notes: ``[[1, 2, 3], [4, 5, 6], …, [13, 14, 15]]``.

    Examples
    --------
    >>> example_5x3()[-1]
    array([13, 14, 15])

    Introduced in notebook 03.
    """
    return np.arange(1, 16).reshape(5, 3)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(data (1797, 64) float64, target (1797,) int)``.

    Read from the data file scikit-learn ships, as ``sklearn.datasets.load_digits`` reads
    it, but without importing scikit-learn: that import (with SciPy) adds about 85 MB to
    every kernel that loads the digits, a third of a learner's kernel. If the file is
    not where this scikit-learn keeps it, ``load_digits`` is used.
    """
    spec = importlib.util.find_spec("sklearn")            # finds the package, imports nothing
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, mode="rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data, digits.target


def load_digits_split(test_fraction: float = 0.25, seed: int = 0, standardize: bool = True):
    """scikit-learn's bundled 8×8 digits (1797 images, 10 classes), split and scaled.

    The split is stratified-free but seeded. With ``standardize`` each pixel is scaled
    by the mean and std of the *training* split only (constant pixels keep std 1), so
    no test statistics leak into training.

    Parameters
    ----------
    test_fraction : float in (0, 1), optional
    seed : int ≥ 0, optional
    standardize : bool, optional

    Returns
    -------
    X_train : ndarray, shape (N_train, 64)
    X_test : ndarray, shape (N_test, 64)
    y_train, y_test : ndarray of int

    Raises
    ------
    TypeError
        ``test_fraction`` is not a real number (e.g. the string ``"0.25"`` or a bool).
    ValueError
        ``test_fraction`` is not strictly between 0 and 1.

    Introduced in notebook 01.
    """
    test_fraction = check_real(test_fraction, "test_fraction")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    data, target = _digits()
    X, y = data.astype(np.float64), target.astype(np.int64)
    order = as_generator(seed, "seed").permutation(len(X))
    n_test = int(round(test_fraction * len(X)))
    test, tr = order[:n_test], order[n_test:]
    X_train, X_test = X[tr], X[test]
    if standardize:
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
        std[std == 0] = 1.0
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    return X_train, X_test, y[tr], y[test]


# ----------------------------------------------------------------------------- notebook 01


def make_cohort(n: int = 200, seed: int = 0, corr: float = 0.3, cgpa_mean: float = 7.5):
    """A synthetic cohort of students like ``placement_table`` (cgpa, iq).

    ``cgpa`` ~ 7.5 ± 1 (on a 10-point scale) and ``iq`` ~ 100 ± 15, correlated with
    coefficient ``corr``. Two targets come with it: a continuous ``score`` (an
    aptitude-test score, ``5·cgpa + 0.3·iq`` plus noise of standard deviation 3) for the
    regression experiments, and ``placed`` (0/1), drawn from the logistic model
    ``P(placed) = 1 / (1 + exp(-(2(cgpa - 7.5) + 0.12(iq - 100))))``, the same for every
    cohort.

    Parameters
    ----------
    n : int, optional
    seed : int, optional
    corr : float in (-1, 1), optional
    cgpa_mean : float in [0, 10], optional
        Centre of the cgpa distribution: 7.5 for the general population, higher for a
        cohort from a strong college (the placement rule stays the same).

    Raises
    ------
    TypeError
        ``n`` is not an integer, or ``corr`` / ``cgpa_mean`` is not a real number (a
        string such as ``"7.5"`` or a bool is refused).
    ValueError
        ``n < 1``, ``corr`` outside (-1, 1), or ``cgpa_mean`` outside the 10-point scale
        [0, 10] (or not finite).

    Returns
    -------
    X : ndarray, shape (n, 2)
        Columns cgpa and iq.
    score : ndarray, shape (n,)
    placed : ndarray of int, shape (n,)

    Examples
    --------
    >>> X, score, placed = make_cohort(5, seed=1)
    >>> X.shape, score.shape, sorted(set(placed.tolist())) <= [0, 1]
    ((5, 2), (5,), True)

    Introduced in notebook 01.
    """
    n = check_int(n, "n", minimum=1)
    corr = check_real(corr, "corr")
    cgpa_mean = check_real(cgpa_mean, "cgpa_mean")
    if not 0.0 <= cgpa_mean <= 10.0:
        raise ValueError(f"cgpa_mean must lie on the 10-point scale [0, 10], got {cgpa_mean}")
    if not -1.0 < corr < 1.0:
        raise ValueError(f"corr must lie strictly between -1 and 1, got {corr}")
    rng = as_generator(seed, "seed")
    z1 = rng.standard_normal(n)
    z2 = corr * z1 + np.sqrt(1.0 - corr**2) * rng.standard_normal(n)
    cgpa = cgpa_mean + 1.0 * z1
    iq = 100.0 + 15.0 * z2
    X = np.column_stack([cgpa, iq])
    score = 5.0 * cgpa + 0.3 * iq + rng.normal(0.0, 3.0, n)
    logit = 2.0 * (cgpa - 7.5) + 0.12 * (iq - 100.0)
    placed = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return X, score, placed


def scaled_problem(scale_ratio: float, n: int = 200, seed: int = 0):
    """Notebook 01's explorer problem: the standardized, centred cohort, feature 2 × ``scale_ratio``.

    ``make_cohort(n, seed)``, each column standardized with its own statistics (so the
    bias of a linear model drops out), then the second column multiplied by
    ``scale_ratio``: at ratio 1 the features are on the same scale, at ratio 10 the
    second is ten times wider, as raw iq is next to raw cgpa.

    Returns
    -------
    X : ndarray, shape (n, 2)
        Column 0 has standard deviation 1, column 1 has ``scale_ratio``; both mean 0.
    y : ndarray, shape (n,)
        The centred aptitude score.

    Raises
    ------
    TypeError
        ``scale_ratio`` is not a real number (a string or a bool is refused).
    ValueError
        ``scale_ratio`` is not a finite number > 0.

    Examples
    --------
    >>> X, y = scaled_problem(4.0)
    >>> np.round(X.std(axis=0), 6), X.shape, y.shape
    (array([1., 4.]), (200, 2), (200,))

    Introduced in notebook 01.
    """
    scale_ratio = check_positive(scale_ratio, "scale_ratio")
    X, score, _ = make_cohort(n, seed=seed)
    Z = scaling.standardize(X)
    return Z * np.array([1.0, scale_ratio]), score - score.mean()


# ----------------------------------------------------------------------------- notebook 02


def wave_boundary(x1):
    """The true class boundary of ``make_wave_data``: ``x2 = sin(1.5 · x1)``.

    Parameters
    ----------
    x1 : array_like, any shape

    Returns
    -------
    ndarray, the shape of ``x1``

    Raises
    ------
    TypeError
        ``x1`` is not numeric.
    ValueError
        ``x1`` holds NaN or ±inf (the boundary is defined on the real line only).

    Examples
    --------
    >>> wave_boundary([0.0])
    array([0.])

    Introduced in notebook 02.
    """
    x1 = as_float_array(x1, "x1")
    check_finite(x1, "x1")
    return np.sin(1.5 * x1)


def make_wave_data(n: int, x1_range=(-3.0, -0.3), seed: int = 0):
    """Two classes split by a wave, sampled from one stretch of the ``x1`` axis.

    ``x1`` is uniform on ``x1_range`` and ``x2`` uniform on [-2, 2]; the label is 1 above
    the boundary ``x2 = sin(1.5 x1)`` (``wave_boundary``) and 0 below it. The rule
    P(y | x) is the same everywhere; only the region sampled, P(x), depends on
    ``x1_range``: two ranges give a training and a test set with *covariate shift*.

    Parameters
    ----------
    n : int
    x1_range : (float, float), optional
    seed : int, optional

    Returns
    -------
    X : ndarray, shape (n, 2)
    y : ndarray of int, shape (n,)

    Examples
    --------
    >>> X, y = make_wave_data(4, (0.0, 1.0), seed=1)
    >>> X.shape, bool(np.all((X[:, 0] >= 0) & (X[:, 0] <= 1)))
    ((4, 2), True)

    Introduced in notebook 02.
    """
    n = check_int(n, "n", minimum=1)
    lo, hi = (float(v) for v in x1_range)
    if not lo < hi:
        raise ValueError(f"x1_range must be (low, high) with low < high, got {x1_range}")
    rng = as_generator(seed, "seed")
    X = np.column_stack([rng.uniform(lo, hi, n), rng.uniform(-2.0, 2.0, n)])
    y = (X[:, 1] > wave_boundary(X[:, 0])).astype(np.int64)
    return X, y


# ----------------------------------------------------------------------------- notebook 07


@functools.lru_cache(maxsize=1)
def batch_mates_data() -> np.ndarray:
    """The fixed table of notebook 07's batch-mates explorer: 512 samples, 16 features.

    Each feature has its own mean (uniform in [-2, 2]) and spread (uniform in [0.5, 3]),
    and each sample its own offset (standard normal, added to all its features), so that
    BatchNorm (statistics per feature, over the batch) and LayerNorm (per sample, over the
    features) normalize visibly different things. Built on first use and cached; the
    array is read-only because every caller shares it.

    Returns
    -------
    ndarray, shape (512, 16)

    Examples
    --------
    >>> data = batch_mates_data()
    >>> data.shape, data.flags.writeable, batch_mates_data() is data
    ((512, 16), False, True)

    Introduced in notebook 07.
    """
    rng = np.random.default_rng(7)
    means = rng.uniform(-2.0, 2.0, size=16)
    stds = rng.uniform(0.5, 3.0, size=16)
    offsets = rng.normal(0.0, 1.0, size=(512, 1))            # each sample its own level
    data = rng.normal(means, stds, size=(512, 16)) + offsets
    data.setflags(write=False)
    return data
