"""Input checks shared by every public function of bnutils.

Each helper raises ``TypeError`` or ``ValueError`` with a message that names the
argument, the problem and the offending value or shape, so that a learner who passes
the wrong thing sees why at once instead of getting a silently wrong answer.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "Checked",
    "as_generator",
    "check_bool",
    "check_labels",
    "check_learning_rate",
    "check_model",
    "check_real",
    "check_sequence",
    "check_split",
    "as_data_matrix",
    "NonFiniteError",
    "as_float_array",
    "check_cache",
    "check_dout",
    "check_finite",
    "check_features",
    "check_fraction",
    "check_int",
    "check_ndim",
    "check_no_overflow",
    "check_param",
    "check_positive",
    "check_running_stats",
    "float_dtype",
    "per_channel",
    "read_only",
    "stat_axes",
]


class NonFiniteError(ValueError):
    """NaN or inf where finite numbers are required.

    A ``ValueError`` like every other bad-input error; it has its own class so that
    ``bnutils.training.train`` can tell numbers that blew up during training (divergence)
    from a programming mistake. Public as ``bnutils.NonFiniteError``.

    Examples
    --------
    >>> from bnutils import batchnorm_forward
    >>> try:
    ...     batchnorm_forward(np.array([[np.nan], [1.0]]), np.ones(1), np.zeros(1))
    ... except NonFiniteError as err:
    ...     print(err)
    x contains 1 non-finite value(s) (NaN or inf); the first is nan at index (0, 0)
    """


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """Return float32 if every floating input is float32, else float64.

    Integer and boolean inputs count as float64 (common study notes and blog posts
    write their examples with integer arrays), so ``x`` of int64 with float32 ``gamma`` computes in float64.
    """
    dtypes = [a.dtype for a in arrays]
    if dtypes and all(d == np.float32 for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_float_array(value, name: str, dtype=None) -> np.ndarray:
    """Convert ``value`` to a floating NumPy array or raise a clear ``TypeError``.

    float32 stays float32, float64 stays float64, integers and booleans become float64.
    ``dtype`` forces a floating type (used to bring parameters to the dtype of ``x``).
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array; could not convert it: {exc}") from exc
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a numeric array of real numbers, got dtype {arr.dtype} "
            f"(e.g. strings, objects or complex numbers are not accepted)"
        )
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)  # float16 / longdouble: compute in float64
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def check_ndim(x: np.ndarray, name: str, allowed: tuple[int, ...], shapes: str) -> None:
    """Raise ``ValueError`` unless ``x.ndim`` is one of ``allowed``."""
    if x.ndim not in allowed:
        raise ValueError(f"{name} must have shape {shapes}; got {x.ndim}-D array of shape {x.shape}")


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise ``NonFiniteError`` (a ``ValueError``) if ``x`` holds NaN or ±inf, saying how many
    and where the first is."""
    if not np.isfinite(x).all():       # the method: no wrapper overhead on small arrays
        bad = ~np.isfinite(x)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NonFiniteError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf); "
            f"the first is {x[first]} at index {first}"
        )


def check_no_overflow(result, what: str, **inputs) -> None:
    """Raise ``NonFiniteError`` if ``result``, computed from finite ``inputs``, overflowed.

    For a result that is too large for its dtype (inf, or NaN from inf - inf): the message
    names every input (``name=array`` keywords) with its largest magnitude and says
    ``what`` to do, e.g. ``"its squares overflow float64; divide x by a constant first"``.
    Call it after computing ``result`` under ``np.errstate(over="ignore",
    invalid="ignore")``, so that no RuntimeWarning escapes first.

    Examples
    --------
    >>> check_no_overflow(np.array([np.inf]), "its squares overflow float64", x=[1e200])
    Traceback (most recent call last):
    ...
    bnutils._validation.NonFiniteError: x is too large (largest |x| = 1e+200): its squares overflow float64
    """
    if np.isfinite(result).all():
        return
    names = " and ".join(inputs)
    sizes = ", ".join(f"largest |{name}| = {float(np.max(np.abs(value), initial=0.0)):.3g}"
                      for name, value in inputs.items())
    verb = "are" if len(inputs) > 1 else "is"
    raise NonFiniteError(f"{names} {verb} too large ({sizes}): {what}")


def check_features(x: np.ndarray, name: str = "x") -> None:
    """Raise ``ValueError`` if ``x`` (``(N, D)`` or ``(N, C, H, W)``) has no features or
    channels on axis 1.

    Checked before the per-feature parameters, so that an empty ``x`` is blamed rather
    than a ``gamma`` that does not match its zero features.

    >>> check_features(np.ones((4, 0)))
    Traceback (most recent call last):
    ...
    ValueError: x must have at least one feature (axis 1); got shape (4, 0)
    """
    what = "feature" if x.ndim == 2 else "channel"
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one {what} (axis 1); got shape {x.shape}")


def check_param(value, name: str, size: int, what: str, dtype) -> np.ndarray:
    """Convert a per-feature parameter and check that it has shape ``(size,)``."""
    arr = as_float_array(value, name, dtype=dtype)
    if arr.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), one value per {what}; got shape {arr.shape}")
    check_finite(arr, name)
    return arr


def check_running_stats(running_mean, running_var, size: int, what: str, dtype) -> tuple:
    """``(running_mean, running_var)`` converted and checked: shape ``(size,)``, finite,
    and a variance ≥ 0 (BN's eval mode takes its square root)."""
    running_mean = check_param(running_mean, "running_mean", size, what, dtype)
    running_var = check_param(running_var, "running_var", size, what, dtype)
    if (running_var < 0).any():
        raise ValueError(f"running_var must be ≥ 0 (it is a variance); got {running_var}")
    return running_mean, running_var


def _check_real_scalar(value, name: str) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()  # a 0-d array such as np.array(1e-5) is a number too
    if type(value) is not float and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):                # (math, not NumPy: a microsecond less per call)
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite number > 0."""
    value = _check_real_scalar(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_fraction(value, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a number in [0, 1]."""
    value = _check_real_scalar(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int``, or raise if it is not an integer ≥ ``minimum``
    (and ≤ ``maximum``, if given).

    ``bool`` is refused although it is an ``int`` subclass (``BatchNorm(True)`` is a
    mistake, not one feature), and so are floats such as ``2.0`` and strings.

    Raises
    ------
    TypeError
        ``value`` is not an integer (Python or NumPy).
    ValueError
        ``value < minimum`` or ``value > maximum``.

    Examples
    --------
    >>> check_int(np.int64(3), "num_features")
    3
    >>> check_int(0, "num_features")
    Traceback (most recent call last):
    ...
    ValueError: num_features must be ≥ 1, got 0
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if maximum is not None and not minimum <= value <= maximum:
        raise ValueError(f"{name} must lie in {minimum}..{maximum}, got {value}")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value}")
    return int(value)


def check_dout(dout, shape, dtype=None, of: str = "the forward input x",
               finite: bool = True) -> np.ndarray:
    """``dout`` as a float array of exactly ``shape`` (no silent broadcasting), all finite.

    Parameters
    ----------
    dout : array_like
        The upstream gradient given to a backward pass.
    shape : tuple of int
        The shape it must have (that of the forward output).
    dtype : numpy dtype, optional
        Convert ``dout`` to this floating type (the forward pass's dtype).
    of : str, optional
        What ``shape`` is, for the message: normalization layers say "the forward
        input x" (their output has its shape), other layers "the forward output".
    finite : bool, optional
        ``False`` leaves the NaN/inf check to the caller (BN's fast kernels find it in
        their sums).
    """
    dout = as_float_array(dout, "dout", dtype=dtype)
    if dout.shape != tuple(shape):
        raise ValueError(f"dout must have the shape of {of}, {tuple(shape)}; got {dout.shape}")
    if finite:
        check_finite(dout, "dout")
    return dout


def check_cache(cache, cls: type, producer: str) -> None:
    """Raise ``TypeError`` unless ``cache`` is a ``cls``, the cache that ``producer`` returns."""
    if not isinstance(cache, cls):
        raise TypeError(f"cache must be the {cls.__name__} returned by {producer}, "
                        f"got {type(cache).__name__}")


def stat_axes(ndim: int) -> tuple:
    """Axes that per-feature/per-channel statistics reduce over.

    ``(0,)`` for ``(N, D)``; ``(0, 2, 3)`` for ``(N, C, H, W)``: every axis but the
    channel axis 1.

    >>> stat_axes(2), stat_axes(4)
    ((0,), (0, 2, 3))
    """
    return (0, *range(2, ndim))


def per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """View a ``(D,)`` or ``(C,)`` vector so that it broadcasts against a ``ndim``-D ``x``.

    ``(1, D)`` for 2-D, ``(1, C, 1, 1)`` for 4-D (the channel is axis 1).

    >>> per_channel(np.arange(3.0), 4).shape
    (1, 3, 1, 1)
    """
    return np.reshape(v, (1, -1) + (1,) * (ndim - 2))


def read_only(*arrays):
    """Read-only views of ``arrays`` (one view for one argument, else a tuple of views).

    Caches hold these so that nobody edits a cache between forward and backward; the
    caller's own arrays stay writable.

    >>> a = np.zeros(2)
    >>> read_only(a).flags.writeable, a.flags.writeable
    (False, True)
    """
    views = []
    for a in arrays:
        view = np.asarray(a).view()
        view.flags.writeable = False
        views.append(view)
    return views[0] if len(views) == 1 else tuple(views)


class Checked:
    """A layer attribute checked on every assignment, in ``__init__`` and later.

    ``momentum = Checked(check_fraction)`` in a class body makes ``layer.momentum = 5``
    raise at once (``check_fraction(5, "momentum")``) instead of giving a wrong running
    variance at the next forward. The value lives in ``layer._momentum``.
    """

    def __init__(self, check):
        self.check = check

    def __set_name__(self, owner, name):
        self.name, self.private = name, "_" + name

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj, self.private)

    def __set__(self, obj, value):
        setattr(obj, self.private, self.check(value, self.name))


def as_generator(rng, name: str = "rng") -> np.random.Generator:
    """``rng`` as a ``numpy.random.Generator``: a Generator itself, ``None`` (fresh entropy)
    or a seed, an integer ≥ 0. Anything else raises an error naming ``name`` (NumPy's own
    message, "SeedSequence expects int or sequence of ints", does not say which argument).

    >>> bool(as_generator(0).integers(10) == as_generator(0).integers(10))
    True
    """
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (int, np.integer)):
        raise TypeError(f"{name} must be a numpy Generator, an integer seed ≥ 0 or None, "
                        f"got {rng!r}")
    if rng < 0:
        raise ValueError(f"{name} must be a seed ≥ 0, got {rng}")
    return np.random.default_rng(int(rng))


def check_bool(value, name: str) -> bool:
    """Return ``value`` as a ``bool``, or raise ``TypeError`` if it is not True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_learning_rate(value, name: str = "lr") -> float:
    """A learning rate: a finite real number ≥ 0 (0 leaves the weights unchanged)."""
    value = _check_real_scalar(value, name)
    if value < 0:
        raise ValueError(f"{name} must be ≥ 0, got {value}")
    return value


def check_model(model, name: str = "model") -> None:
    """Raise ``TypeError`` unless ``model`` is a layer (it has ``forward`` and ``backward``)."""
    if not (hasattr(model, "forward") and hasattr(model, "backward")):
        raise TypeError(f"{name} must be a layer with forward/backward (a Sequential, a "
                        f"BatchNorm, ...), got {type(model).__name__}")


def check_real(value, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number.

    ``True``/``False`` and numeric strings such as ``"7.5"`` are refused (``float("7.5")``
    would accept the string silently); Python and NumPy ints and floats, and 0-d arrays,
    are accepted.

    Raises
    ------
    TypeError
        ``value`` is not a real number (a string, a bool, None, ...).
    ValueError
        ``value`` is NaN or ±inf.

    Examples
    --------
    >>> check_real(np.float32(0.5), "alpha")
    0.5
    >>> check_real("7.5", "cgpa_mean")
    Traceback (most recent call last):
    ...
    TypeError: cgpa_mean must be a real number, got '7.5' of type str
    """
    return _check_real_scalar(value, name)


def check_sequence(values, name: str, check, *, allow_empty: bool = False, **kwargs) -> list:
    """Check every entry of a list-like ``values`` with ``check(entry, f"{name}[i]", **kwargs)``.

    ``values`` must be a list, a tuple, a range or a 1-D array; a string is refused even
    though it is iterable (``list("abc")`` would be three one-letter entries).

    Parameters
    ----------
    values : sequence
    name : str
        The argument's name, for the messages (entries are named ``name[i]``).
    check : callable
        ``check(value, name, **kwargs) -> checked value``, e.g. ``check_int``.
    allow_empty : bool, optional
        Accept an empty sequence (refused by default).
    **kwargs
        Passed to ``check`` (e.g. ``minimum=2``).

    Returns
    -------
    list
        The checked entries, in order.

    Raises
    ------
    TypeError
        ``values`` is not a sequence, or an entry has the wrong type.
    ValueError
        ``values`` is empty (unless ``allow_empty``), or an entry is out of range.

    Examples
    --------
    >>> check_sequence((100, np.int64(50)), "hidden", check_int)
    [100, 50]
    >>> check_sequence("abc", "hidden", check_int)
    Traceback (most recent call last):
    ...
    TypeError: hidden must be a sequence (list, tuple or 1-D array), got 'abc' of type str
    """
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be a 1-D sequence, got an array of shape {values.shape}")
        values = list(values)
    elif not isinstance(values, (list, tuple, range)):
        raise TypeError(f"{name} must be a sequence (list, tuple or 1-D array), got {values!r} "
                        f"of type {type(values).__name__}")
    if not values and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return [check(v, f"{name}[{i}]", **kwargs) for i, v in enumerate(values)]


def as_data_matrix(X, name: str = "X", min_rows: int = 1) -> np.ndarray:
    """``X`` as a finite float array of shape ``(N, D)`` with ``N ≥ min_rows`` and ``D ≥ 1``.

    The data given to a model: one row per sample. Converted by ``as_float_array``
    (float32 stays float32, integers become float64); a new array only when converting.

    Raises
    ------
    TypeError
        ``X`` is not numeric.
    ValueError
        ``X`` is not 2-D, has too few rows or no columns, or holds NaN/inf.

    Examples
    --------
    >>> as_data_matrix([[1, 2], [3, 4]]).dtype
    dtype('float64')
    >>> as_data_matrix(np.ones((3, 0)))
    Traceback (most recent call last):
    ...
    ValueError: X must have shape (N, D) with N ≥ 1 rows and D ≥ 1 columns; got shape (3, 0)
    """
    X = as_float_array(X, name)
    if X.ndim != 2 or X.shape[0] < min_rows or X.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, D) with N ≥ {min_rows} rows and D ≥ 1 "
                         f"columns; got shape {X.shape}")
    check_finite(X, name)
    return X


def check_labels(y, n: int | None = None, name: str = "y") -> np.ndarray:
    """``y`` as a 1-D array of integer class labels ≥ 0 (not converted): ``n`` of them, or,
    without ``n``, at least one.

    Raises
    ------
    ValueError
        ``y`` does not have shape ``(n,)`` (or is not 1-D and non-empty), is not of an
        integer dtype (floats, strings and booleans are refused), or holds a negative label.

    Examples
    --------
    >>> check_labels([0, 2, 1], 3)
    array([0, 2, 1])
    >>> check_labels(np.array([0.0, 1.0]), 2)
    Traceback (most recent call last):
    ...
    ValueError: y must hold 2 integer class labels, shape (2,); got shape (2,), dtype float64
    """
    y = np.asarray(y)
    if n is None:
        if y.ndim != 1 or y.size == 0 or y.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a non-empty 1-D array of integer class labels; "
                             f"got shape {y.shape}, dtype {y.dtype}")
    elif y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold {n} integer class labels, shape ({n},); got shape "
                         f"{y.shape}, dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{name} must hold class labels ≥ 0, got {y.min()}")
    return y


def check_split(data) -> tuple:
    """The 4-tuple ``(X_train, X_test, y_train, y_test)`` of ``bnutils.data.load_digits_split``,
    as arrays, with both X of shape (N, D) (the same D) and one label per row.

    Raises
    ------
    TypeError
        ``data`` is not a 4-tuple (or list).
    ValueError
        The shapes do not fit together.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 4):
        raise TypeError("data must be the 4-tuple (X_train, X_test, y_train, y_test) "
                        "returned by bnutils.data.load_digits_split()")
    X_train, X_test, y_train, y_test = (np.asarray(a) for a in data)
    if X_train.ndim != 2 or X_test.ndim != 2 or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(f"X_train and X_test must be (N, D) with the same D; got "
                         f"{X_train.shape} and {X_test.shape}")
    if len(y_train) != len(X_train) or len(y_test) != len(X_test):
        raise ValueError("each X must have one label per row")
    return X_train, X_test, y_train, y_test
