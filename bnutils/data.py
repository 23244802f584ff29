"""Data used by the course: the seeds' toy tables, seeded synthetic sets, bundled digits.

Nothing here downloads anything.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_digits_split", "placement_table", "seed_example_5x3"]


def placement_table():
    """The seeds' four-student table: CGPA and IQ, and whether the student was placed.

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


def seed_example_5x3():
    """The seeds' 5×3 integer batch ``[[1, 2, 3], [4, 5, 6], …, [13, 14, 15]]``.

    Examples
    --------
    >>> seed_example_5x3()[-1]
    array([13, 14, 15])

    Introduced in notebook 03.
    """
    return np.arange(1, 16).reshape(5, 3)


def load_digits_split(test_fraction: float = 0.25, seed: int = 0, standardize: bool = True):
    """scikit-learn's bundled 8×8 digits (1797 images, 10 classes), split and scaled.

    The split is stratified-free but seeded. With ``standardize`` each pixel is scaled
    by the mean and std of the *training* split only (constant pixels keep std 1), so
    no test statistics leak into training.

    Returns
    -------
    X_train : ndarray, shape (N_train, 64)
    X_test : ndarray, shape (N_test, 64)
    y_train, y_test : ndarray of int

    Introduced in notebook 05.
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    digits = load_digits()
    X, y = digits.data.astype(np.float64), digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = int(round(test_fraction * len(X)))
    test, tr = order[:n_test], order[n_test:]
    X_train, X_test = X[tr], X[test]
    if standardize:
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
        std[std == 0] = 1.0
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    return X_train, X_test, y[tr], y[test]
