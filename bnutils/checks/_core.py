"""The self-check framework: one printed line per check, ✓ or ✗, never an exception.

A check is an *evaluation function* that calls the learner's code and either returns a
short message saying what it verified, or raises ``Failed("hint")``. The
``self_check`` decorator turns it into the function a notebook calls::

    @self_check("Exercise 3.1 · BN forward pass")
    def bn_forward(student_fn):
        out = as_answer_array(student_fn(x, gamma, beta), "out", shape=x.shape)
        compare(out, expected, "the output", atol=1e-8, mistakes=..., hint="...")
        return "matches bnutils.batchnorm_forward"

    bn_forward(my_fn)            # prints "✓ Exercise 3.1 · BN forward pass: matches ..."
    bn_forward.evaluate(my_fn)   # returns CheckResult(passed=True, message=...) for tests

Every check reads the learner's return value through the same few steps, written once
here:

* ``as_answer_array`` / ``as_answer_number`` / ``as_answer_index`` / ``as_answer_tuple``
  turn what the learner returned into numbers, or fail with a hint that names the
  problem: ``None`` (a forgotten ``return``), a string (``"12.3"`` is not a number), a
  bool (``True`` is not index 1), a set, complex numbers, and NaN or inf anywhere;
* ``compare`` decides "right", names the known mistake the answer reproduces
  (``diagnose``), or fails with the check's hint.

**Tolerances** come from the exercise, never from the answer. A check states its float64
tolerance and, with ``scale``, the magnitude of the terms the computation adds up (the
problem's conditioning). Every exercise also accepts a result computed in float32, the
precision networks train in (``ACCEPTED_PRECISION``): an answer counts as right within
``ROUNDING`` units of float32 rounding of that scale, whatever dtype it is returned in.
A float16 answer gets no wider tolerance (it keeps about 3 significant digits, too few
for any check but the by-hand one); when it fails, the hint says so.

**Several inputs, one of them fresh.** Every check that gives its function inputs runs
it on fixed inputs (their numbers are what the ✓ line reports, so it never changes) and
on at least one input drawn by ``fresh_rng()`` at every call, so an answer memoised or
typed in from an earlier run fails.

**Time limit.** The learner's function may run for ``time_limit`` seconds in all (10 s
unless the check says otherwise) before it is stopped with a ✗ verdict; only the time
spent in the learner's code counts. On Linux and macOS (in a script or a Jupyter kernel,
whose cells run in the main thread) a ``SIGALRM`` timer interrupts it, even inside
``time.sleep``; a single long NumPy call finishes first. Where there is no ``SIGALRM``
(Windows), a timer thread interrupts the main thread at its next Python instruction
(``_thread.interrupt_main``), so ``time.sleep`` or one long NumPy call finishes first.
Called from another thread, a check cannot interrupt its learner and sets no limit.

**Forbidden shortcuts.** ``watch_calls`` records calls to given library functions while
the learner's code runs (``sys.setprofile``), so a check can say "your function calls
bnutils' own batchnorm_backward" where its exercise forbids that; ``python_loops`` names
the loops in the learner's code where an exercise says "no loops".

A learner's ``NotImplementedError`` (the student-edition stub) becomes "not done yet";
any other exception raised inside the learner's code becomes a ✗ line naming it. An
exception raised by the check itself (not by the learner's code) is reported as the
check's own problem, never blamed on the learner.

**Writing a new check** (at the end of its notebook's module in ``bnutils/checks/``;
``bnutils/checks/start.py`` is the shortest complete example):

1. ``@self_check("Exercise N.M · title")`` on ``def name(student_fn): ...``; add ``name``
   to the module's ``__all__``. Pass ``time_limit=`` only if the exercise needs more than
   ``DEFAULT_TIME_LIMIT`` seconds.
2. Build the inputs: two or more fixed ones from ``np.random.default_rng(<number>)``, then
   at least one from ``fresh_rng()`` (its sizes and scales drawn too, so no earlier
   answer fits it by luck). Loop over all of them.
3. Call the learner with ``call_learner(student_fn, x, ..., names=("x", ...))`` (copies
   in, "changed its input in place" caught). Something the learner returned and the
   check then calls (a layer's ``forward``) goes through ``run_learner`` so that the
   time limit covers it.
4. Read the result with ``as_answer_tuple`` (several values; ``stacked=True`` accepts
   them stacked in one array), then ``as_answer_array`` / ``as_answer_number`` /
   ``as_answer_index``: a list, a tuple, an int, a 0-d array or a float32 array are the
   same answer written differently and must pass; None, strings, bools, NaN and inf fail
   with a hint.
5. Decide with ``compare(answer, expected, "hint with {err}", rtol=..., atol=...,
   scale=..., mistakes={...})``: the float64 tolerance of the exercise, ``scale`` the size
   of the terms the computation adds up (float32 rounding of it is accepted), and the
   known wrong answers as ``{"what the learner did": wrong_output}`` (``diagnose``).
   Never take a tolerance from the answer's dtype. A check that judges otherwise (a
   ranking, a learning rate) uses ``is_close`` and ``low_precision_hint``.
6. Where the exercise forbids something, detect it: ``with watch_calls({fn: "name"}) as
   seen:`` around the learner's call, then ``if seen: raise Failed(...)`` naming the
   forbidden call; ``python_loops(student_fn)`` for "no loops".
7. Return the ✓ message from the *fixed* inputs only (``fmt_err`` for errors), so the
   stored line never changes; raise ``Failed("hint")`` for every wrong answer, saying
   what to look at.

Its tests: the reference solution in ``tests/check_helpers.py``'s ``REFERENCES`` (key
``"module.name"``), which puts the new check through the attack battery
(``tests/test_checks_attacks.py``: downcast, memoised and replayed answers, first input
right only, slow, other containers) and the odd-answer test without another edit; an
``ATTACKS`` entry there only for a forbidden shortcut or a wrong answer other than the
default (the right answer × 1.003); and ``tests/test_checks_<topic>.py`` for the
exercise's own mistakes, each hint asserted.

Introduced in notebook 00.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import inspect
import numbers
import os
import signal
import sys
import sysconfig
import textwrap
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ACCEPTED_PRECISION",
    "CheckResult",
    "DEFAULT_TIME_LIMIT",
    "Failed",
    "ROUNDING",
    "as_answer_array",
    "as_answer_index",
    "as_answer_number",
    "as_answer_tuple",
    "call_learner",
    "compare",
    "diagnose",
    "fmt_err",
    "fresh_rng",
    "is_close",
    "low_precision_hint",
    "max_abs_error",
    "python_loops",
    "run_learner",
    "self_check",
    "watch_calls",
]

PASS, FAIL = "✓", "✗"


class Failed(Exception):
    """Raised by an evaluation function with the hint to show the learner."""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one self-check: ``passed`` and the full one-line ``message``."""

    passed: bool
    message: str

    def __str__(self):
        return self.message


def fmt_err(err: float) -> str:
    """Format an error so that the printed line is deterministic across machines.

    Tiny errors are shown as a bound ("< 1e-12") because their last digits depend on the
    CPU; larger ones with two significant digits.

    Introduced in notebook 08 (the self-checks print their errors with it from notebook 00 on).
    """
    err = float(err)
    for bound in (1e-12, 1e-9, 1e-6):
        if err < bound:
            return f"< {bound:.0e}"
    return f"{err:.2g}"


# ----------------------------------------------------------------------------- reading answers

def _short(value) -> str:
    text = repr(str(value) if isinstance(value, str) else value)
    return text if len(text) <= 24 else text[:21] + "..."


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def describe(value) -> str:
    """A few words naming what ``value`` is, for hints: "None", "a str ('12.3')", ..."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"{_a(type(value).__name__)} of {len(value)} value{'s' if len(value) != 1 else ''}"
    if isinstance(value, (str, bytes, bool, np.bool_, numbers.Number)):
        return f"{_a(type(value).__name__)} ({_short(value)})"
    return _a(type(value).__name__)


def _not_a_number(x) -> bool:
    return isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real)


def _numeric(value, label: str, noun: str = "numbers") -> np.ndarray:
    """``value`` as an array of real numbers (float dtype kept, integers as float64).

    ``label`` names the value in hints ("`out`", "the condition number").
    """
    if isinstance(value, (str, bytes)):
        raise Failed(f"{label} must be {noun}, not a string ({_short(value)})")
    if isinstance(value, (bool, np.bool_)):
        raise Failed(f"{label} must be a number, not a bool ({value})")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise Failed(f"{label} must be an array of numbers; numpy cannot turn "
                     f"{describe(value)} into one ({exc})") from None
    kind = arr.dtype.kind
    if kind == "O":
        bad = [value] if arr.ndim == 0 else [x for x in arr.flat if _not_a_number(x)][:1]
        if bad:
            raise Failed(f"{label} must be {noun}, not {describe(bad[0])}")
        try:                      # Fractions, Decimals, ints beyond int64 ...
            arr = arr.astype(np.float64)
        except (OverflowError, TypeError, ValueError) as exc:
            raise Failed(f"{label} must be {noun} that fit a float ({exc})") from None
    elif kind == "b":
        raise Failed(f"{label} must be {noun}, not booleans (True/False)")
    elif kind in "US":
        raise Failed(f"{label} must be {noun}, not strings ({_short(arr.flat[0])})")
    elif kind == "c":
        raise Failed(f"{label} must be real {noun.replace('a ', '')}, not complex (a square root of a "
                     f"negative number?)")
    elif kind in "iu":
        arr = arr.astype(np.float64)
    elif kind != "f":
        raise Failed(f"{label} must be {noun}, not values of dtype {arr.dtype}")
    return arr


def _require_finite(arr: np.ndarray, label: str) -> None:
    """Fail naming NaN / inf and how many values hold one (comparisons miss NaN: never rely
    on ``err > tol`` to catch it)."""
    if np.isfinite(arr).all():
        return
    n_nan, n_inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    what = "NaN" if not n_inf else "inf" if not n_nan else "NaN and inf"
    where = f" ({n_nan + n_inf} of its {arr.size} values)" if arr.ndim else ""
    if arr.ndim:
        raise Failed(f"{label} contains {what}{where}; look for 0/0, the square root of a "
                     f"negative number or an overflow")
    raise Failed(f"{label} is {what}, not a finite number; look for 0/0, the square root of a "
                 f"negative number or an overflow")


def as_answer_array(value, name: str, shape=None, *, finite: bool = True) -> np.ndarray:
    """Read an array the learner returned, or fail with a hint naming the problem.

    Parameters
    ----------
    value : object
        What the learner's function returned (or one element of its returned tuple).
    name : str
        The variable's name in the exercise (``"out"``, ``"dx"``), used in the hints.
    shape : tuple of int, optional
        The shape the answer must have.
    finite : bool
        Reject NaN and inf anywhere (default). Checks that diagnose an infinite answer
        themselves pass False.

    Returns
    -------
    ndarray
        The answer as an array of real numbers: float dtypes kept (so ``compare`` can use
        a dtype-aware tolerance), integers as float64. Never the learner's own array.
    """
    if value is None:
        raise Failed(f"your function returned None - did you forget `return {name}`?")
    arr = np.array(_numeric(value, f"`{name}`"), copy=True)
    if shape is not None and arr.shape != tuple(shape):
        raise Failed(f"`{name}` must have shape {tuple(shape)}, got shape {arr.shape}")
    if finite:
        _require_finite(arr, f"`{name}`")
    return arr


def as_answer_number(value, what: str, *, finite: bool = True):
    """Read one number the learner returned (a size-1 array counts), or fail with a hint.

    ``what`` names it in the hints ("the condition number"). Returns a NumPy float scalar
    of the answer's float dtype (float64 for ints), so ``compare`` sees its precision.
    """
    if value is None:
        raise Failed(f"your function returned None - did you forget to return {what}?")
    arr = _numeric(value, what, "a number")
    if arr.size != 1:
        raise Failed(f"return {what} as one number, got {describe(value)}")
    if finite:
        _require_finite(arr.reshape(()), what)
    return arr.reshape(())[()]


def as_answer_index(value, what: str = "the index") -> int:
    """Read a whole number (an index) the learner returned, or fail with a hint.

    ``True`` is not index 1, ``"3"`` is not index 3, and 2.5 is no index at all; an
    integral float such as 3.0 is accepted.
    """
    if value is None:
        raise Failed(f"your function returned None - did you forget to return {what}?")
    if isinstance(value, (bool, np.bool_)):
        raise Failed(f"return {what} as an int, not a bool ({value} is not an index)")
    number = as_answer_number(value, what)
    if number != np.floor(number):
        raise Failed(f"return {what} as an int, got {_short(value)}")
    return int(number)


def as_answer_tuple(result, n: int, hint: str, *, stacked: bool = False) -> tuple:
    """The ``n`` values the learner returned together, or ``Failed(hint)``.

    A tuple and a list are the same answer written differently; so is an array whose
    first axis has length ``n`` (``np.array([mean, std])``) when the ``n`` values have
    the same shape (``stacked``).
    """
    if isinstance(result, (tuple, list)) and len(result) == n:
        return tuple(result)
    if stacked and isinstance(result, np.ndarray) and result.ndim >= 1 and len(result) == n:
        return tuple(result)
    raise Failed(f"{hint}; got {describe(result)}")


def fresh_rng() -> np.random.Generator:
    """A generator seeded by the operating system: inputs no earlier call has seen.

    Every check draws at least one of its inputs from it, so an answer memoised or typed
    in from an earlier run fails. The ✓ line reports only the fixed inputs' numbers, so
    a right answer always prints the same line.
    """
    return np.random.default_rng()


def call_learner(student_fn, *args, names=(), hint: str = "compute new arrays instead",
                 **kwargs):
    """Call the learner's function on copies of the array arguments; return its result.

    Fails with a hint if the function changed one of them in place (a function must not
    modify its inputs). ``names`` names the positional arguments in that hint.
    """
    copies = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    result = student_fn(*copies, **kwargs)
    for i, (given, copy) in enumerate(zip(args, copies, strict=True)):
        if isinstance(given, np.ndarray) and not (
                isinstance(copy, np.ndarray) and copy.shape == given.shape
                and np.array_equal(copy, given, equal_nan=given.dtype.kind in "fc")):
            which = f"its input {names[i]}" if i < len(names) else "one of its inputs"
            raise Failed(f"your function changed {which} in place; {hint}")
    return result


# ----------------------------------------------------------------------------- comparing

#: The lowest precision every exercise accepts a result in: float32, the precision
#: networks train in. A check's tolerance is never tighter than what a float32
#: computation of its problem reaches, whatever dtype the answer comes in.
ACCEPTED_PRECISION = np.float32
#: How many units of rounding (eps of ACCEPTED_PRECISION, times the problem's scale) a
#: computation in that precision may be off: a few roundings per operation, a few
#: operations, and sums of up to a few hundred terms (pairwise summation).
ROUNDING = 16


def _tolerance(expected, rtol, atol, precision, scale) -> np.ndarray:
    """Elementwise ``max(atol + rtol·|expected|, ROUNDING·eps(precision)·scale)``."""
    tol = atol + rtol * np.abs(expected)
    if precision is not None:
        eps = float(np.finfo(np.dtype(precision)).eps)
        if eps > np.finfo(np.float64).eps:
            if scale is None:
                scale = float(np.max(np.abs(expected))) if np.size(expected) else 0.0
            tol = np.maximum(tol, ROUNDING * eps * np.abs(np.asarray(scale, dtype=np.float64)))
    return tol


def is_close(actual, expected, *, rtol: float = 1e-9, atol: float = 0.0,
             precision=None, scale=None) -> bool:
    """``|actual - expected| <= atol + rtol·|expected|`` everywhere, shapes equal.

    With ``precision`` (a dtype: ``ACCEPTED_PRECISION`` in ``compare``), the tolerance is
    never below ``ROUNDING`` roundings of that precision times ``scale`` (the magnitude of
    the terms the computation adds up, elementwise or one number; default max|expected|).
    The answer's own dtype plays no part. False whenever ``actual`` holds NaN (every
    comparison with NaN is False).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape or actual.dtype.kind not in "iuf":
        return False
    tol = _tolerance(expected, rtol, atol, precision, scale)
    with np.errstate(all="ignore"):
        diff = np.abs(actual.astype(np.float64) - expected)
        return bool(np.all(diff <= tol))


def max_abs_error(actual, expected) -> float:
    """Largest absolute difference (0.0 for empty arrays)."""
    diff = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    return float(np.max(diff)) if diff.size else 0.0


def diagnose(answer, candidates: dict, rtol: float = 1e-6, atol: float = 1e-9,
             precision=ACCEPTED_PRECISION, scale=None) -> str | None:
    """Name the known mistake whose output ``answer`` reproduces, if any.

    Parameters
    ----------
    answer : array_like
        What the learner's code returned.
    candidates : dict of str -> array_like
        Each known mistake's description mapped to the output that mistake produces.
    rtol, atol, precision, scale
        Tolerances, as in ``is_close`` (a mistake computed in float32 is still named).

    Returns
    -------
    str or None
        The first matching description, or None.
    """
    answer = np.asarray(answer)
    if answer.dtype.kind not in "iuf":
        return None
    for description, wrong in candidates.items():
        wrong = np.asarray(wrong, dtype=np.float64)
        if wrong.shape == answer.shape and np.all(np.isfinite(wrong)) and \
                is_close(answer, wrong, rtol=rtol, atol=atol, precision=precision,
                         scale=scale if _fits(scale, wrong.shape) else None):
            return description
    return None


def _fits(scale, shape) -> bool:
    """True if ``scale`` broadcasts to ``shape`` (it was given for the expected answer)."""
    if scale is None:
        return False
    try:
        return np.broadcast_shapes(np.shape(scale), shape) == tuple(shape)
    except ValueError:
        return False


def low_precision_hint(actual, precision=ACCEPTED_PRECISION) -> str | None:
    """The hint for an answer returned in a lower precision than the exercise accepts
    (float16), or None: for checks that judge an answer otherwise than by ``compare``."""
    dtype = np.asarray(actual).dtype
    if precision is None or dtype.kind != "f" or \
            np.finfo(dtype).eps <= np.finfo(np.dtype(precision)).eps:
        return None
    digits = int(np.finfo(dtype).precision)
    return (f"your answer is {dtype}, which keeps only about {digits} significant digits: "
            f"compute in float64 or float32")


def compare(actual, expected, message: str, *, rtol: float = 1e-9, atol: float = 0.0,
            mistakes: dict | Callable[[], dict] | None = None, prefix: str = "",
            diagnose_rtol: float = 1e-6, diagnose_atol: float = 1e-9,
            error: Callable = max_abs_error, precision=ACCEPTED_PRECISION,
            scale=None) -> float:
    """The one "compare, name the mistake, or fail" step of every numeric check.

    Parameters
    ----------
    actual : ndarray
        The learner's answer, read by ``as_answer_array`` / ``as_answer_number``.
    expected : array_like
        The right answer.
    message : str
        The hint when ``actual`` is wrong and no known mistake matches; ``{err}`` in it
        becomes ``error(actual, expected)`` formatted by ``fmt_err``.
    rtol, atol : float
        When ``actual`` counts as right in float64 (``is_close``).
    mistakes : dict or callable returning one, optional
        Known wrong outputs (see ``diagnose``); a callable is only called on failure.
    prefix : str
        Put before a diagnosed mistake ("running mean: ...").
    diagnose_rtol, diagnose_atol : float
        Tolerances of ``diagnose``.
    error : callable
        The error measure returned and shown in messages (default: max absolute error).
    precision : dtype, optional
        The lowest precision the exercise accepts (default ``ACCEPTED_PRECISION``,
        float32); None for exact float64 work.
    scale : float or array_like, optional
        The magnitude of the terms the computation adds up, elementwise or one number
        (default max|expected|): a float32 computation is off by ``ROUNDING`` roundings
        of it.

    Returns
    -------
    float
        ``error(actual, expected)`` when ``actual`` is right; otherwise raises ``Failed``.
    """
    if is_close(actual, expected, rtol=rtol, atol=atol, precision=precision, scale=scale):
        return error(actual, expected)
    candidates = mistakes() if callable(mistakes) else (mistakes or {})
    found = diagnose(actual, candidates, rtol=diagnose_rtol, atol=diagnose_atol,
                     precision=precision, scale=scale)
    if found:
        raise Failed(prefix + found)
    low = low_precision_hint(actual, precision)
    if low:
        raise Failed(prefix + low)
    if "{err}" in message:
        message = message.replace("{err}", fmt_err(error(actual, expected)))
    raise Failed(message)


# ----------------------------------------------------------------------------- forbidden shortcuts

class _Watch:
    """The calls ``watch_calls`` recorded: ``calls`` is a list of (name, arguments)."""

    def __init__(self, names: dict):
        self.names = names
        self.calls: list = []

    def __bool__(self):
        return bool(self.calls)

    def called(self) -> list:
        """The watched names called, in order, each once."""
        return list(dict.fromkeys(name for name, _ in self.calls))


def _code_of(fn):
    fn = inspect.unwrap(fn)
    return getattr(fn, "__code__", None)


@contextlib.contextmanager
def watch_calls(functions: dict):
    """Record every call of the given functions made inside the block (e.g. the learner's).

    ``functions`` maps a function (or method) to the name a hint calls it by. Yields a
    ``_Watch`` whose ``calls`` list holds ``(name, arguments)``, the arguments as the
    call received them. Implemented with ``sys.setprofile``, so a call is seen however
    the learner reached the function (an alias, a helper, a layer's method); the
    previous profiler, if any, keeps running.
    """
    codes = {_code_of(fn): name for fn, name in functions.items() if _code_of(fn) is not None}
    watch = _Watch(functions)
    previous = sys.getprofile()

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            watch.calls.append((codes[frame.f_code], dict(frame.f_locals)))
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(profiler)
    try:
        yield watch
    finally:
        sys.setprofile(previous)


def _own_functions(fn, seen=None) -> list:
    """``fn`` and the notebook functions it calls by name (defined in ``__main__``)."""
    seen = [] if seen is None else seen
    fn = inspect.unwrap(fn)
    if not isinstance(fn, types.FunctionType) or fn in seen or _is_library(fn.__code__):
        return seen
    seen.append(fn)
    for name in _global_names(fn.__code__):
        other = fn.__globals__.get(name)
        if isinstance(other, types.FunctionType) and other.__module__ == fn.__module__ \
                and fn.__module__ == "__main__":
            _own_functions(other, seen)
    return seen


def _has_loop(code) -> bool:
    for ins in dis.get_instructions(code):
        if ins.opname == "FOR_ITER" or "BACKWARD" in ins.opname or (
                ins.opname.startswith(("JUMP", "POP_JUMP")) and isinstance(ins.argval, int)
                and ins.argval < ins.offset):
            return True
    return any(_has_loop(c) for c in code.co_consts if isinstance(c, types.CodeType))


def python_loops(fn) -> list:
    """The names of the functions (``fn`` and the notebook helpers it calls, not library
    code) that hold a Python loop: ``for``, ``while``, a comprehension or a generator
    expression."""
    return [f.__name__ for f in _own_functions(fn) if _has_loop(f.__code__)]


# ----------------------------------------------------------------------------- notebook globals

def _global_names(code) -> set:
    """Names a code object (and the functions, lambdas, comprehensions inside it) reads as globals."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _is_data(value) -> bool:
    """A notebook variable, not a tool: modules, functions, classes and other callables stay."""
    return not (isinstance(value, types.ModuleType) or callable(value))


def without_notebook_data(fn):
    """``fn`` re-bound to its globals minus the notebook *data* it reads; and those names.

    An exercise function must compute from its arguments. A learner who writes
    ``xhat = ...`` but returns ``gamma * x_hat + beta`` silently reads the notebook's
    ``x_hat`` (shape (4, 2)) and the check would blame the axis. Run on globals without
    the notebook's arrays and numbers, the same code raises NameError naming ``x_hat``,
    which the decorator turns into a message that names the variable. Modules (``np``),
    functions and classes stay visible. Anything but a plain function is returned as is.
    """
    if not isinstance(fn, types.FunctionType):
        return fn, frozenset()
    read = {name for name in _global_names(fn.__code__)
            if name in fn.__globals__ and _is_data(fn.__globals__[name])}
    if not read or fn.__globals__.get("__name__") != "__main__":
        return fn, frozenset()      # only a notebook's (or script's) own variables
    namespace = {k: v for k, v in fn.__globals__.items() if k not in read}
    isolated = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    isolated.__kwdefaults__ = fn.__kwdefaults__
    isolated.__dict__.update(fn.__dict__)
    isolated.__qualname__, isolated.__doc__ = fn.__qualname__, fn.__doc__
    return isolated, frozenset(read)


# ----------------------------------------------------------------------------- blame

def _first_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 160 else text[:157] + "..."


_LIBRARY_DIRS = tuple(
    os.path.normcase(os.path.realpath(p)) + os.sep
    for p in {os.path.dirname(os.path.dirname(os.path.abspath(__file__))),   # bnutils/
              *(sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib",
                                                            "purelib", "platlib"))}
    if p)


def _is_library(code) -> bool:
    """True for code in bnutils or an installed library (not a notebook's, not a test's)."""
    filename = code.co_filename
    if filename.startswith("<"):
        return filename.startswith(("<frozen", "<__array_function__"))
    return os.path.normcase(os.path.realpath(filename)).startswith(_LIBRARY_DIRS)


def _learner_code(obj) -> set:
    """Code objects that belong to a learner's callable (function, lambda, partial, object)."""
    codes = set()
    for candidate in (obj, getattr(obj, "func", None), type(obj).__dict__.get("__call__")):
        code = getattr(candidate, "__code__", None)
        if code is not None:
            codes.add(code)
    return codes


def _raised_by_learner(exc: BaseException, learner_codes: set) -> bool:
    """True if ``exc`` came out of the learner's code, not out of the check's own code.

    The learner's code is the function handed to the check, or any code outside the
    ``bnutils`` package and the installed libraries (a notebook cell, a test file).
    """
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code in learner_codes or not _is_library(code):
            return True
        tb = tb.tb_next
    return False


VERDICT_WIDTH = 90


def wrap_verdict(message: str, width: int = VERDICT_WIDTH) -> str:
    """The verdict wrapped at spaces to ``width`` characters, continuation lines indented.

    A narrow JupyterLab output area breaks long lines anywhere, even inside a number
    ("< 1e-1" / "2)"); wrapping here keeps every number and name whole.
    """
    return textwrap.fill(message, width=width, subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)


# ----------------------------------------------------------------------------- the time limit

#: Seconds the learner's code may run in one check, unless the check states another limit.
DEFAULT_TIME_LIMIT = 10.0
#: How often a stopped function that swallowed the interruption is interrupted again.
_REPEAT = 0.05
#: False where there is no SIGALRM timer (Windows): a timer thread interrupts instead.
USE_SIGNALS = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")


class _Stopped(BaseException):
    """Raised inside the learner's code when its time is up: a ``BaseException``, like
    ``KeyboardInterrupt``, so that the learner's own ``except Exception`` cannot swallow it."""


class _Clock:
    """The learner's time budget in one evaluation of a check."""

    def __init__(self, limit: float):
        self.limit, self.used = float(limit), 0.0
        self.active = self.fired = False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _alarm(seconds: float, clock: _Clock):
    """Interrupt the main thread with ``_Stopped`` after ``seconds`` while ``clock.active``."""
    if not _in_main_thread():
        yield                       # no way to interrupt another thread: no limit
        return

    expired = threading.Event()       # set once the time is up (the thread's signal)
    old_handler = None

    def stop(signum, frame):
        if signum == getattr(signal, "SIGALRM", None) or expired.is_set():
            if clock.active:
                clock.fired = True
                raise _Stopped
            return
        # not ours (Ctrl+C, the kernel's interrupt button): what the handler before us does
        if callable(old_handler):
            old_handler(signum, frame)
        else:
            raise KeyboardInterrupt

    if USE_SIGNALS:
        old_handler = signal.signal(signal.SIGALRM, stop)
        old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-4), _REPEAT)
        start = time.monotonic()
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, old_handler)
            if old_delay:          # someone else's timer: put it back, less the time spent
                signal.setitimer(signal.ITIMER_REAL,
                                 max(old_delay - (time.monotonic() - start), 1e-4), old_interval)
        return
    # A timer thread: _thread.interrupt_main() runs the SIGINT handler in the main thread
    # at its next Python instruction.
    import _thread

    done = threading.Event()

    def watchdog():
        if done.wait(seconds):
            return
        expired.set()
        while not done.is_set():
            _thread.interrupt_main()
            done.wait(_REPEAT)

    old_handler = signal.signal(signal.SIGINT, stop)
    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        signal.signal(signal.SIGINT, old_handler)


def _cannot_bind(fn, args, kwargs) -> str | None:
    """Why ``fn`` cannot be called with ``args`` and ``kwargs`` (Python's words), or None."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):       # a builtin without a signature: nothing to say
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return None


def _call(fn, args, kwargs):
    """``fn(*args, **kwargs)``; a learner's function that cannot take the exercise's
    arguments fails with a hint saying so (not "a gap in the check": the TypeError is
    raised before any of the learner's code runs, so it looks like the check's own)."""
    try:
        return fn(*args, **kwargs)
    except TypeError:
        problem = _cannot_bind(fn, args, kwargs)
        if problem is None:
            raise
    given = f"{len(args)} argument{'s' if len(args) != 1 else ''}" + "".join(
        f", {name}=..." for name in kwargs)
    raise Failed(f"your function does not take the exercise's arguments: the check calls it "
                 f"with {given}, and Python says: {problem}") from None


def _timed(fn, clock: _Clock):
    """``fn`` running under ``clock``: stopped once the learner's time in this check is up."""

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        if clock.active:                     # called from inside the learner's own code
            return fn(*args, **kwargs)
        remaining = clock.limit - clock.used
        if remaining <= 0:
            raise _Stopped
        start = time.perf_counter()
        clock.active = True
        try:
            with _alarm(remaining, clock):
                try:
                    return _call(fn, args, kwargs)
                finally:
                    clock.active = False
        finally:
            clock.used += time.perf_counter() - start
            if clock.fired:                  # the learner caught the interruption itself
                raise _Stopped

    return timed


_CLOCKS: list = []


def run_learner(fn, *args, **kwargs):
    """Call something the learner made (a returned layer's ``forward``, ...) under the
    learner's time limit of the check being evaluated."""
    if not _CLOCKS:
        return fn(*args, **kwargs)
    return _timed(fn, _CLOCKS[-1])(*args, **kwargs)


def _seconds(limit: float) -> str:
    return f"{limit:g} s" if limit < 120 else f"{limit / 60:g} min"


# ----------------------------------------------------------------------------- the decorator

def self_check(title: str, *, time_limit: float = DEFAULT_TIME_LIMIT):
    """Decorator: turn an evaluation function into a self-check that prints one line.

    The returned function prints ``✓ <title>: <message>`` or ``✗ <title>: <hint>`` and
    returns None (so a notebook cell shows only the line). Its ``evaluate`` attribute
    returns the ``CheckResult`` instead of printing, for tests. The learner's function
    (the first argument) may run ``time_limit`` seconds in all (the ``time_limit``
    attribute, which a test may change) before it is stopped with a ✗ verdict.
    """

    def decorate(evaluate_fn):
        @functools.wraps(evaluate_fn)
        def evaluate(*args, **kwargs) -> CheckResult:
            learner_codes = set().union(*(_learner_code(a) for a in (*args, *kwargs.values())))
            if args and not callable(args[0]):
                return CheckResult(False, f"{FAIL} {title}: pass your function itself, e.g. "
                                          f"check(my_function) without (); got {describe(args[0])}")
            hidden = frozenset()
            clock = _Clock(run.time_limit)
            if args:
                isolated, hidden = without_notebook_data(args[0])
                learner_codes |= _learner_code(isolated)
                args = (_timed(isolated, clock), *args[1:])
            _CLOCKS.append(clock)
            try:
                with np.errstate(all="ignore"):
                    message = evaluate_fn(*args, **kwargs)
            except _Stopped:
                return CheckResult(False, f"{FAIL} {title}: your function was stopped after "
                                          f"{_seconds(clock.limit)} without returning (an endless "
                                          f"loop, or far more work than the exercise needs?)")
            except NotImplementedError:
                return CheckResult(False, f"{FAIL} {title}: not done yet - replace the "
                                          f"`raise NotImplementedError` line with your solution")
            except Failed as failure:
                return CheckResult(False, f"{FAIL} {title}: {_first_line(failure)}")
            except Exception as exc:  # a learner's bug must never crash the check
                if isinstance(exc, NameError) and getattr(exc, "name", None) in hidden:
                    return CheckResult(False, f"{FAIL} {title}: your function reads `{exc.name}` "
                                              f"from the notebook, not from its arguments; compute "
                                              f"it inside the function (the check calls it with "
                                              f"other inputs)")
                if _raised_by_learner(exc, learner_codes) and "Cannot cast ufunc" in str(exc) \
                        and "output from" in str(exc):
                    # x -= x.mean() on an integer array: NumPy cannot store floats in it.
                    return CheckResult(False, f"{FAIL} {title}: your function changes its input "
                                              f"in place (like x -= ...), and the input here holds "
                                              f"integers, which cannot store the result; compute a "
                                              f"new array instead (x = x - ...)")
                if _raised_by_learner(exc, learner_codes):
                    return CheckResult(False, f"{FAIL} {title}: your code raised "
                                              f"{type(exc).__name__}: {_first_line(exc)}")
                detail = _first_line(exc)
                detail = detail if len(detail) <= 60 else detail[:57] + "..."
                return CheckResult(False, f"{FAIL} {title}: the check could not handle your "
                                          f"answer - a gap in the check, not your fault "
                                          f"({type(exc).__name__}: {detail})")
            finally:
                _CLOCKS.remove(clock)
            return CheckResult(True, f"{PASS} {title}: {_first_line(message)}")

        @functools.wraps(evaluate_fn)
        def run(*args, **kwargs) -> None:
            print(wrap_verdict(evaluate(*args, **kwargs).message))

        run.evaluate = evaluate
        run.title = title
        run.time_limit = time_limit
        return run

    return decorate
