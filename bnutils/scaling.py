"""Feature scaling, whitening, and gradient descent on a least-squares loss.

The three classic scalers map each feature (column) ``x`` of ``X`` to
``(x - shift) / scale`` with statistics *fitted on the training data only*:

=====================  ==========  ===============  ==========================
method                 shift       scale            result on the fitting data
=====================  ==========  ===============  ==========================
``"minmax"``           ``min x``   ``max - min``    values in [0, 1]
``"mean"``             ``mean x``  ``max - min``    mean 0, values in [-1, 1]
``"standard"``         ``mean x``  ``std x``        mean 0, standard deviation 1
=====================  ==========  ===============  ==========================

``std`` is the biased (ddof=0) standard deviation, as in scikit-learn's
``StandardScaler`` and in Batch Normalization. A constant feature (scale 0) gets
scale 1, i.e. it is only shifted (scikit-learn does the same).

The second half is the loss-surface experiment of notebook 01: the mean squared error
of a linear model is a quadratic whose Hessian ``(2/N) XᵀX`` sets how fast plain
gradient descent can go. ``mse_hessian``, ``condition_number``, ``gradient_descent``
and ``best_fixed_lr`` measure it.

Introduced in notebook 01.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._moments import scaled_moments
from ._validation import (
    as_float_array,
    check_finite,
    check_int,
    check_no_overflow,
    check_positive,
)

__all__ = [
    "METHODS",
    "DescentResult",
    "Scaler",
    "ScalerStats",
    "apply_scaler",
    "best_fixed_lr",
    "condition_number",
    "fit_scaler",
    "fit_whitening",
    "gradient_descent",
    "invert_scaler",
    "mean_normalize",
    "min_max_rescale",
    "mse_hessian",
    "standardize",
]

#: The scaling methods, by the names ``fit_scaler`` accepts.
METHODS = ("minmax", "mean", "standard")


def _as_2d(X, name: str = "X") -> np.ndarray:
    X = as_float_array(X, name)
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), one row per sample; got {X.ndim}-D "
                         f"array of shape {X.shape}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got shape {X.shape}")
    check_finite(X, name)
    return X


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _check_scaled_like(X, stats, name: str) -> np.ndarray:
    """``X`` as (M, D) with the D features ``stats`` was fitted on (for apply and invert)."""
    if not isinstance(stats, ScalerStats):
        raise TypeError(f"stats must be a ScalerStats from fit_scaler, got {type(stats).__name__}")
    X = _as_2d(X, name)
    if X.shape[1] != stats.shift.shape[0]:
        raise ValueError(f"{name} has {X.shape[1]} features but the scaler was fitted on "
                         f"{stats.shift.shape[0]}")
    return X


@dataclass(frozen=True)
class ScalerStats:
    """Fitted statistics of one scaler: ``apply`` computes ``(X - shift) / scale``.

    Attributes
    ----------
    method : str
        One of ``METHODS``.
    shift, scale : ndarray, float64, shape (D,)
        Per-feature statistics of the data the scaler was fitted on (``scale > 0``).
        Always float64: a float32 mean near 1e4 is only good to about 1e-3, a tenth of
        a standard deviation of 1e-2.
    """

    method: str
    shift: np.ndarray
    scale: np.ndarray


def fit_scaler(X, method: str = "standard") -> ScalerStats:
    """Fit per-feature scaling statistics on ``X`` (use the training split only).

    Parameters
    ----------
    X : array_like, shape (N, D)
    method : {"minmax", "mean", "standard"}, optional
        Min-max rescaling, mean normalization or z-score standardization (see the module
        docstring for the formulas).

    Returns
    -------
    ScalerStats
        ``shift`` and ``scale``, shape (D,); a constant feature gets ``scale = 1``.

    Raises
    ------
    ValueError
        ``X`` has fewer than 2 rows (every feature would be constant: nothing to scale).

    Examples
    --------
    >>> stats = fit_scaler([[1.0, 10.0], [3.0, 30.0]], "minmax")
    >>> stats.shift, stats.scale
    (array([ 1., 10.]), array([ 2., 20.]))

    Introduced in notebook 01.
    """
    _check_method(method)
    X = _as_2d(X).astype(np.float64, copy=False)     # statistics in float64 (see ScalerStats)
    if X.shape[0] < 2:      # the rule of every normalization: one value per statistic is refused
        raise ValueError(f"fitting a scaler needs at least 2 samples (rows of X) per feature; "
                         f"X has shape {X.shape}, so every scaled value would be 0")
    with np.errstate(over="ignore", invalid="ignore"):   # an overflow is caught below
        if method == "minmax":
            shift = X.min(axis=0)
            scale = X.max(axis=0) - shift
        elif method == "mean":
            shift = X.mean(axis=0)
            scale = X.max(axis=0) - X.min(axis=0)
        else:
            shift = X.mean(axis=0)
            scale = X.std(axis=0)  # ddof=0, the biased estimate
    if method == "standard" and not np.isfinite(scale).all():
        # X is finite, so its squares overflowed (|x| above ~1e154): the same standard
        # deviation from X divided by a power of two (exact), scaled back.
        k, _, mean, var_z = scaled_moments(X, (0,))
        shift, scale = mean[0], np.ldexp(np.sqrt(var_z), k)[0]
    if not (np.isfinite(shift).all() and np.isfinite(scale).all()):
        raise ValueError(f"X's values are too large for float64 statistics (largest |x| = "
                         f"{np.max(np.abs(X)):.3g}): the range max - min overflows")
    scale = np.where(scale > 0, scale, 1.0)
    shift.setflags(write=False)
    scale.setflags(write=False)
    return ScalerStats(method, shift, scale)


def apply_scaler(X, stats: ScalerStats) -> np.ndarray:
    """Scale ``X`` with statistics fitted earlier: ``(X - stats.shift) / stats.scale``.

    Parameters
    ----------
    X : array_like, shape (M, D)
        Any split (training, test, a single new sample as one row).
    stats : ScalerStats
        From ``fit_scaler`` on the training split.

    Returns
    -------
    ndarray, shape (M, D)

    Examples
    --------
    >>> stats = fit_scaler([[1.0], [3.0]], "minmax")
    >>> apply_scaler([[2.0], [5.0]], stats)
    array([[0.5],
           [2. ]])

    Introduced in notebook 01.
    """
    X = _check_scaled_like(X, stats, "X")
    return ((X - stats.shift) / stats.scale).astype(X.dtype, copy=False)   # (float64 stats)


def invert_scaler(X_scaled, stats: ScalerStats) -> np.ndarray:
    """Undo ``apply_scaler``: ``X_scaled * stats.scale + stats.shift``.

    Examples
    --------
    >>> stats = fit_scaler([[1.0], [3.0]])
    >>> invert_scaler(apply_scaler([[7.0]], stats), stats)
    array([[7.]])

    Introduced in notebook 01.
    """
    X_scaled = _check_scaled_like(X_scaled, stats, "X_scaled")
    return (X_scaled * stats.scale + stats.shift).astype(X_scaled.dtype, copy=False)


def min_max_rescale(X) -> np.ndarray:
    """Min-max rescaling of ``X`` with its own statistics: ``(x - min) / (max - min)``.

    Shape (N, D) in and out. For a train/test split use ``Scaler("minmax")`` instead.

    Examples
    --------
    >>> min_max_rescale([[2.0], [4.0], [6.0]]).ravel()
    array([0. , 0.5, 1. ])

    Introduced in notebook 01.
    """
    X = _as_2d(X)
    return apply_scaler(X, fit_scaler(X, "minmax"))


def mean_normalize(X) -> np.ndarray:
    """Mean normalization of ``X`` with its own statistics: ``(x - mean) / (max - min)``.

    Shape (N, D) in and out. For a train/test split use ``Scaler("mean")`` instead.

    Examples
    --------
    >>> mean_normalize([[2.0], [4.0], [6.0]]).ravel()
    array([-0.5,  0. ,  0.5])

    Introduced in notebook 01.
    """
    X = _as_2d(X)
    return apply_scaler(X, fit_scaler(X, "mean"))


def standardize(X) -> np.ndarray:
    """Z-score standardization of ``X`` with its own statistics: ``(x - mean) / std``.

    Shape (N, D) in and out; ``std`` is the biased (ddof=0) standard deviation. For a
    train/test split use ``Scaler("standard")`` instead.

    Examples
    --------
    >>> standardize([[2.0], [4.0], [6.0]]).ravel().round(4)
    array([-1.2247,  0.    ,  1.2247])

    Introduced in notebook 01.
    """
    X = _as_2d(X)
    return apply_scaler(X, fit_scaler(X, "standard"))


class Scaler:
    """A thin fit/transform wrapper around ``fit_scaler`` and ``apply_scaler``.

    Parameters
    ----------
    method : {"minmax", "mean", "standard"}, optional

    Attributes
    ----------
    shift_, scale_ : ndarray, shape (D,)
        Set by ``fit`` (the names end in ``_`` because they are learned from data).

    Examples
    --------
    >>> scaler = Scaler("standard").fit([[0.0], [2.0]])
    >>> scaler.transform([[4.0]])
    array([[3.]])

    Introduced in notebook 01.
    """

    def __init__(self, method: str = "standard"):
        self.method = _check_method(method)
        self.stats_: ScalerStats | None = None

    @property
    def shift_(self) -> np.ndarray:
        return self._fitted().shift

    @property
    def scale_(self) -> np.ndarray:
        return self._fitted().scale

    def _fitted(self) -> ScalerStats:
        if self.stats_ is None:
            raise RuntimeError("this Scaler is not fitted yet: call fit(X_train) first")
        return self.stats_

    def fit(self, X) -> Scaler:
        """Fit the statistics on ``X`` (the training split); returns ``self``."""
        self.stats_ = fit_scaler(X, self.method)
        return self

    def transform(self, X) -> np.ndarray:
        """Scale ``X`` with the fitted statistics."""
        return apply_scaler(X, self._fitted())

    def fit_transform(self, X) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X_scaled) -> np.ndarray:
        """Map scaled values back to the original units."""
        return invert_scaler(X_scaled, self._fitted())

    def __repr__(self):
        return f"Scaler({self.method!r})"


def fit_whitening(X, eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening: the mean and the matrix ``W = C^{-1/2}`` of ``X``'s covariance ``C``.

    ``(X - mean) @ W`` has (up to ``eps``) the identity as covariance: every feature has
    variance 1 *and* the features are uncorrelated. ZCA is the whitening closest to the
    original data (``W`` symmetric).

    Parameters
    ----------
    X : array_like, shape (N, D)
    eps : float, optional
        Added to the eigenvalues of ``C`` (biased, ddof=0) before the inverse square root.

    Returns
    -------
    mean : ndarray, shape (D,)
    W : ndarray, shape (D, D)

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 1.0], [3.0, 3.0]])
    >>> mean, W = fit_whitening(X)
    >>> Z = (X - mean) @ W
    >>> np.round(Z.T @ Z / len(Z), 6) + 0.0
    array([[1., 0.],
           [0., 1.]])

    Introduced in notebook 01.
    """
    X = _as_2d(X)
    eps = check_positive(eps, "eps")
    with np.errstate(over="ignore", invalid="ignore"):        # checked just below
        mean = X.mean(axis=0)
        Xc = X - mean
        C = Xc.T @ Xc / X.shape[0]
    check_no_overflow(C, f"its covariance overflows {C.dtype.name}; divide X by a constant c "
                         f"first (the mean scales with c, W with 1/c)", X=X)
    evals, evecs = np.linalg.eigh(C)
    W = evecs @ np.diag(1.0 / np.sqrt(np.clip(evals, 0.0, None) + eps)) @ evecs.T
    return mean, W


# --------------------------------------------------------------------------------------
# The least-squares loss surface and gradient descent on it
# --------------------------------------------------------------------------------------


def mse_hessian(X) -> np.ndarray:
    """Hessian ``(2/N) XᵀX`` of ``L(w) = mean((X @ w - y)²)`` (the same for every ``y``).

    The loss of a linear model with squared error is a quadratic in ``w``; this matrix
    is its (constant) curvature. For a model with a bias, either centre ``X`` (the bias
    then takes the value ``mean(y) - mean(X) @ w`` and drops out) or append a column of
    ones to ``X``.

    Parameters
    ----------
    X : array_like, shape (N, D)

    Returns
    -------
    ndarray, shape (D, D)

    Examples
    --------
    >>> mse_hessian([[1.0, 0.0], [0.0, 3.0]])
    array([[1., 0.],
           [0., 9.]])

    Introduced in notebook 01.
    """
    X = _as_2d(X)
    with np.errstate(over="ignore", invalid="ignore"):        # checked just below
        H = 2.0 / X.shape[0] * (X.T @ X)
    check_no_overflow(H, f"XᵀX overflows {H.dtype.name}; divide X by a constant c first "
                         f"(the Hessian scales with c²)", X=X)
    return H


def condition_number(H) -> float:
    """``λ_max / λ_min`` of a symmetric positive semi-definite matrix (inf if singular).

    Parameters
    ----------
    H : array_like, shape (D, D)
        A Hessian such as ``mse_hessian(X)``.

    Examples
    --------
    >>> condition_number([[1.0, 0.0], [0.0, 9.0]])
    9.0

    Introduced in notebook 01.
    """
    H = as_float_array(H, "H")
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be a square matrix, got shape {H.shape}")
    check_finite(H, "H")
    if not np.allclose(H, H.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(H).max()))):
        raise ValueError("H must be symmetric (a Hessian); got a non-symmetric matrix")
    evals = np.linalg.eigvalsh(H)
    if evals[-1] <= 0:
        raise ValueError(f"H must be positive semi-definite with a positive eigenvalue; "
                         f"its eigenvalues are {evals}")
    if evals[0] <= evals[-1] * 1e-14:
        return float("inf")
    return float(evals[-1] / evals[0])


def best_fixed_lr(H) -> float:
    """The fixed learning rate ``2 / (λ_max + λ_min)`` that makes GD on a quadratic fastest.

    With this rate the error along the steepest and the flattest eigen-direction shrinks
    by the same factor ``(κ - 1) / (κ + 1)`` per step (``κ`` the condition number); any
    other fixed rate is slower along one of them. Rates above ``2 / λ_max`` diverge.

    Examples
    --------
    >>> best_fixed_lr([[1.0, 0.0], [0.0, 9.0]])
    0.2

    Introduced in notebook 01.
    """
    H = as_float_array(H, "H")
    condition_number(H)  # validates
    evals = np.linalg.eigvalsh(H)
    return float(2.0 / (evals[-1] + evals[0]))


@dataclass(frozen=True)
class DescentResult:
    """What ``gradient_descent`` recorded.

    Attributes
    ----------
    path : ndarray, shape (T + 1, D)
        ``w`` before the first step and after each step taken; like every array here,
        float64 whatever the dtype of ``X`` (the descent runs in float64).
    loss : ndarray, shape (T + 1,)
        The loss at each point of ``path``.
    loss_star : float
        The minimum of the loss (from a least-squares solve).
    w_star : ndarray, shape (D,)
        A minimizer.
    steps : int or None
        Steps taken until ``loss - loss_star <= tol * (loss[0] - loss_star)``; None if
        that did not happen within ``max_steps`` (or the run diverged).
    diverged : bool
        True if the loss grew beyond 1e6 times its initial gap (the run then stopped), or
        beyond the largest float64; the path then ends at the last point whose loss is a
        finite number.
    lr, tol : float
    max_steps : int
    """

    path: np.ndarray
    loss: np.ndarray
    loss_star: float
    w_star: np.ndarray
    steps: int | None
    diverged: bool
    lr: float
    tol: float
    max_steps: int

    @property
    def converged(self) -> bool:
        return self.steps is not None

    def summary(self) -> str:
        """One deterministic line: steps to converge, or why it did not."""
        if self.diverged:
            return f"diverged (lr = {self.lr:.3g})"
        if self.steps is None:
            return f"did not converge in {self.max_steps} steps"
        return f"converged in {self.steps} step{'' if self.steps == 1 else 's'}"


def gradient_descent(X, y, lr: float, w0=None, max_steps: int = 10_000,
                     tol: float = 1e-6) -> DescentResult:
    """Full-batch gradient descent on ``L(w) = mean((X @ w - y)²)``, path recorded.

    Each step is ``w ← w - lr · ∇L(w)`` with ``∇L(w) = (2/N) Xᵀ(Xw - y)``. The run
    stops when it has *converged*: the excess loss ``L(w) - L*`` has fallen to ``tol``
    times its starting value ``L(w0) - L*`` (a scale-free criterion, so raw and scaled
    problems are judged alike); or after ``max_steps``; or when it diverges.

    Parameters
    ----------
    X : array_like, shape (N, D)
        Centre it (or add a ones column) if the model has a bias; see ``mse_hessian``.
    y : array_like, shape (N,)
    lr : float
        The learning rate (> 0).
    w0 : array_like, shape (D,), optional
        Starting point (zeros by default).
    max_steps : int, optional
    tol : float, optional

    Returns
    -------
    DescentResult
        Every number in it is finite. A run that diverges stops at the first step whose
        excess loss exceeds 1e6 times the starting one, or at the step before the first
        whose loss overflows float64 (a huge ``X`` with a fixed ``lr``).

    Raises
    ------
    TypeError
        ``X``, ``y`` or ``w0`` is not numeric; ``lr``, ``tol`` or ``max_steps`` has the
        wrong type.
    ValueError
        Shapes that do not fit, NaN/inf in the inputs, ``lr`` or ``tol`` ≤ 0,
        ``max_steps < 1``; or ``X``, ``y`` (and ``w0``) so large that the problem itself
        (``XᵀX/N``, ``Xᵀy/N``, the minimum loss or the starting loss) overflows float64:
        rescale them.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> y = np.array([2.0, 1.0, -2.0, -1.0])
    >>> result = gradient_descent(X, y, lr=1.0)
    >>> result.summary(), np.round(result.path[-1], 6)
    ('converged in 1 step', array([2., 1.]))

    Introduced in notebook 01.
    """
    X = _as_2d(X)
    y = as_float_array(y, "y")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), one target per row of X; "
                         f"got {y.shape}")
    check_finite(y, "y")
    lr = check_positive(lr, "lr")
    tol = check_positive(tol, "tol")
    max_steps = check_int(max_steps, "max_steps", minimum=1)
    N, D = X.shape
    w = np.zeros(D) if w0 is None else as_float_array(w0, "w0").astype(np.float64).copy()
    if w.shape != (D,):
        raise ValueError(f"w0 must have shape ({D},), got {w.shape}")

    # The quadratic in closed form: L(w) = wᵀAw - 2bᵀw + yᵀy/N with A = XᵀX/N, b = Xᵀy/N.
    with np.errstate(over="ignore", invalid="ignore"):
        A = X.T @ X / N
        b = X.T @ y / N
        w_star = np.linalg.lstsq(X, y, rcond=None)[0]
        loss_star = max(float(np.mean((X @ w_star - y) ** 2)), 0.0)
    if not (np.isfinite(A).all() and np.isfinite(b).all() and np.isfinite(w_star).all()
            and np.isfinite(loss_star)):
        raise ValueError(f"X and y are too large for gradient descent in float64: XᵀX/N, "
                         f"Xᵀy/N or the minimum loss overflows (max |X| = {np.abs(X).max():.3g}, "
                         f"max |y| = {np.abs(y).max():.3g}); rescale X and y")

    def losses_of(W):  # W: (T, D) -> (T,), vectorized over the points
        # L(w) = L* + (w - w*)ᵀ A (w - w*) exactly (the gradient vanishes at w*); this form
        # keeps full relative precision in the excess loss even very close to the minimum.
        d = W - w_star
        return loss_star + np.einsum("ti,ij,tj->t", d, A, d)

    # The update w <- w - lr * 2(Aw - b) is the affine map w <- M w + m.
    M = np.eye(D) - 2.0 * lr * A
    m = 2.0 * lr * b
    path = [w.copy()]
    with np.errstate(over="ignore", invalid="ignore"):
        gap0 = float(losses_of(w[None])[0]) - loss_star
    if not np.isfinite(gap0):
        raise ValueError(f"the loss at the starting point w0 overflows float64 "
                         f"(max |X| = {np.abs(X).max():.3g}, max |w0| = {np.abs(w).max():.3g}); "
                         f"rescale X or w0")
    steps, diverged = None, False
    if gap0 <= 1e-15 * max(1.0, abs(loss_star)):
        steps = 0
    else:
        # Take steps in chunks and judge each chunk's losses at once (much faster in
        # Python than evaluating the loss after every single step).
        done, chunk = 0, 64
        while done < max_steps and steps is None and not diverged:
            block = []
            with np.errstate(over="ignore", invalid="ignore"):   # a diverging run may overflow
                for _ in range(min(chunk, max_steps - done)):
                    w = M @ w + m
                    block.append(w)
                block = np.array(block)
                gaps = losses_of(block) - loss_star
            bad = ~np.isfinite(gaps) | (gaps > 1e6 * gap0)
            good = gaps <= tol * gap0
            first_bad = int(np.argmax(bad)) if bad.any() else len(block)
            first_good = int(np.argmax(good)) if good.any() else len(block)
            if first_good < len(block) and first_good < first_bad:
                steps = done + first_good + 1
                path.extend(block[:first_good + 1])
            elif first_bad < len(block):
                diverged = True
                # Keep the first bad step unless its loss overflowed: every number returned
                # is finite (an inf loss would be a silent non-answer, not a measurement).
                path.extend(block[:first_bad + int(np.isfinite(gaps[first_bad]))])
            else:
                path.extend(block)
            done += len(block)
            chunk = min(4 * chunk, 4096)
    path = np.array(path)
    with np.errstate(over="ignore", invalid="ignore"):
        losses = losses_of(path)
    w_star.setflags(write=False)
    return DescentResult(path, losses, loss_star, w_star, steps, diverged,
                         lr, tol, int(max_steps))

