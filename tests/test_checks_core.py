"""The self-check framework (bnutils/checks/_core.py): reading answers, comparing, blame."""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import pytest

from bnutils.checks import _core
from bnutils.checks._core import (
    ACCEPTED_PRECISION,
    ROUNDING,
    Failed,
    as_answer_array,
    as_answer_index,
    as_answer_number,
    as_answer_tuple,
    compare,
    diagnose,
    is_close,
    self_check,
)

# --------------------------------------------------------------------------- as_answer_array


@pytest.mark.parametrize(("value", "fragment"), [
    (None, "returned None - did you forget `return out`?"),
    ("1.5", "not a string ('1.5')"),
    (np.array(["1.5", "2"]), "not strings ('1.5')"),
    ([["1", 2.0]], "not strings"),
    (True, "not a bool"),
    (np.array([True, False]), "not booleans"),
    ({1.0, 2.0}, "not a set"),
    ({"a": 1.0}, "not a dict"),
    ([1.0, None], "not None"),
    ([1.0, "2"], "not strings"),
    (np.array([1.0, {}], dtype=object), "not a dict"),
    ([[1.0, 2.0], [3.0]], "numpy cannot turn a list of 2 values into one"),
    (np.array([1 + 2j]), "not complex"),
    (np.array(["2026-01-01"], dtype="datetime64[D]"), "dtype datetime64"),
    (np.array([1.0, np.nan, 3.0]), "contains NaN (1 of its 3 values)"),
    (np.array([np.inf, np.nan]), "contains NaN and inf (2 of its 2 values)"),
    (np.float64(-np.inf), "is inf, not a finite number"),
    (object(), "not an object"),
    ([10**400], "that fit a float"),
])
def test_odd_arrays_fail_naming_the_problem(value, fragment):
    with pytest.raises(Failed) as info:
        as_answer_array(value, "out")
    assert fragment in str(info.value), str(info.value)
    assert "`out`" in str(info.value) or value is None


def test_arrays_keep_their_float_dtype_and_are_never_the_learners():
    a32 = np.arange(3, dtype=np.float32)
    out = as_answer_array(a32, "out")
    assert out.dtype == np.float32 and out is not a32 and not np.shares_memory(out, a32)
    assert as_answer_array([1, 2], "out").dtype == np.float64
    assert as_answer_array(np.arange(3), "out").dtype == np.float64
    assert as_answer_array([Fraction(1, 2)], "out").tolist() == [0.5]
    assert as_answer_array(np.array([1.0, np.nan]), "out", finite=False).shape == (2,)


def test_shape_is_checked_when_given():
    with pytest.raises(Failed, match=r"`out` must have shape \(2, 3\), got shape \(3, 2\)"):
        as_answer_array(np.zeros((3, 2)), "out", shape=(2, 3))


# --------------------------------------------------------------------------- numbers, indices, tuples

def test_numbers():
    assert as_answer_number(2, "the factor") == 2.0
    assert as_answer_number(np.array([2.5]), "the factor") == 2.5
    assert as_answer_number(np.float32(2.5), "the factor").dtype == np.float32
    for value, fragment in [("12.3", "not a string"), (True, "not a bool"), (None, "returned None"),
                            (np.zeros(2), "as one number, got an array of shape (2,)"),
                            (float("nan"), "is NaN"), (1j, "not complex")]:
        with pytest.raises(Failed) as info:
            as_answer_number(value, "the factor")
        assert fragment in str(info.value) and "the factor" in str(info.value), str(info.value)
    assert np.isinf(as_answer_number(np.inf, "κ", finite=False))


def test_indices():
    assert as_answer_index(3) == 3 and as_answer_index(np.int64(3)) == 3 and as_answer_index(3.0) == 3
    for value, fragment in [(True, "not a bool"), (np.True_, "not a bool"), ("3", "not a string"),
                            (2.5, "as an int, got 2.5"), (float("nan"), "NaN"), (None, "None")]:
        with pytest.raises(Failed, match=fragment):
            as_answer_index(value)


def test_tuples():
    """A tuple and a list are the same answer (issue 25: three checks refused a list); an
    array stacks values of one shape, where the check says so."""
    assert as_answer_tuple((1, 2), 2, "return a, b") == (1, 2)
    assert as_answer_tuple([1, 2], 2, "return a, b") == (1, 2)
    assert as_answer_tuple(np.array([1.0, 2.0]), 2, "return a, b", stacked=True) == (1.0, 2.0)
    for value, got in [((1,), "a tuple of 1 value"), ([1, 2, 3], "a list of 3 values"),
                       (None, "None"), (np.zeros(2), "an array of shape (2,)")]:
        with pytest.raises(Failed) as info:
            as_answer_tuple(value, 2, "return a, b")
        assert str(info.value) == f"return a, b; got {got}"


# --------------------------------------------------------------------------- tolerances

def test_the_tolerance_comes_from_the_exercise_never_from_the_answer():
    """Issue 25: a wrong answer ×1.003 returned as float16, or ×1.00005 as float32, passed
    because the answer's own dtype widened the tolerance."""
    right = np.array([37.78343433, 1e-3, -2.0])
    assert is_close(right, right, rtol=1e-12)
    for wrong in ((right * 1.003).astype(np.float16), (right * 1.00005).astype(np.float32)):
        assert not is_close(wrong, right, rtol=1e-9)
        assert not is_close(wrong, right, rtol=1e-9, precision=ACCEPTED_PRECISION)
    # a float32 rounding of the right answer is right where the exercise accepts float32:
    # within ROUNDING units of float32 of the scale (default max|expected|)
    assert is_close(right.astype(np.float32), right, rtol=1e-9, precision=ACCEPTED_PRECISION)
    assert not is_close(right.astype(np.float32), right, rtol=1e-9)      # float64 work: exact
    eps32 = np.finfo(np.float32).eps
    assert is_close(right + 0.9 * ROUNDING * eps32 * 40, right, precision=np.float32)
    assert not is_close(right + 1.1 * ROUNDING * eps32 * 40, right, precision=np.float32)
    # an elementwise scale: the small element's tolerance is its own
    assert not is_close(right + [0, 1e-5, 0], right, precision=np.float32, scale=np.abs(right))
    assert not is_close(right.astype(np.float16), right, rtol=1e-9, precision=np.float32)
    assert not is_close(np.full(3, np.nan), right, rtol=1e300, atol=1e300)
    assert not is_close(right[:2], right)


def test_a_float16_answer_is_told_so():
    right = np.array([1.0, 2.0, 3.0]) / 3.0
    with pytest.raises(Failed, match="your answer is float16, which keeps only about 3 "
                                     "significant digits"):
        compare(right.astype(np.float16), right, "off by {err}")
    assert compare(right.astype(np.float32), right, "off") < 1e-7


def test_diagnose_ignores_non_finite_candidates_and_non_numbers():
    assert diagnose(np.array([np.nan]), {"nan": np.array([np.nan])}) is None
    assert diagnose(np.array([1.0]), {"inf": np.array([np.inf]), "one": np.array([1.0])}) == "one"
    assert diagnose(np.array(["a"]), {"a": np.array([1.0])}) is None
    assert diagnose(np.float32(1.0 / 3.0), {"third": 1.0 / 3.0}, rtol=1e-12) == "third"


def test_compare_returns_the_error_or_names_the_mistake_or_fails():
    expected = np.array([1.0, 2.0])
    assert compare(expected + 1e-12, expected, "off by {err}") < 1e-11
    with pytest.raises(Failed, match="^x: doubled$"):
        compare(2 * expected, expected, "off", mistakes={"doubled": 2 * expected}, prefix="x: ")
    with pytest.raises(Failed, match=r"^off by 0\.5$"):
        compare(expected + 0.5, expected, "off by {err}", mistakes=lambda: {"doubled": 2 * expected})


# --------------------------------------------------------------------------- blame

@self_check("Demo · blame")
def _calls(student_fn):
    student_fn()
    return "fine"


def _learner_bug():
    return [][1]


def test_the_learners_exception_is_the_learners():
    msg = _calls.evaluate(_learner_bug).message
    assert msg == "✗ Demo · blame: your code raised IndexError: list index out of range"
    msg = _calls.evaluate(lambda: np.zeros(2) + np.zeros(3)).message    # raised inside NumPy
    assert msg.startswith("✗ Demo · blame: your code raised ValueError: operands could not")
    msg = _calls.evaluate(functools.partial(int, "x")).message          # a partial of a builtin
    assert "your code raised ValueError" in msg


def test_a_learner_calling_bnutils_that_raises_is_still_the_learner():
    from bnutils.batchnorm import batchnorm_forward

    msg = _calls.evaluate(lambda: batchnorm_forward(np.zeros((4, 2)), np.ones(3), np.zeros(3))).message
    assert "your code raised" in msg, msg


def test_the_checks_own_error_is_not_blamed_on_the_learner(monkeypatch):
    from bnutils.checks import start

    def reference(x):
        return (x - x.mean()) / x.std()

    assert start.standardize.evaluate(reference).passed
    # A bug inside the check: its reference raises (a builtin, so no frame of this file).
    monkeypatch.setattr(start, "_reference", functools.partial(int, "not a number"))
    msg = start.standardize.evaluate(reference).message
    assert msg.startswith("✗ Warm-up · standardize: the check could not handle your answer - "
                          "a gap in the check, not your fault (TypeError: "), msg
    assert "your code raised" not in msg and "not your fault" in msg


def test_not_callable_and_stub():
    assert "pass your function itself" in _calls.evaluate(42).message
    def stub():
        raise NotImplementedError
    assert "not done yet" in _calls.evaluate(stub).message


def test_library_dirs_cover_bnutils_and_numpy():
    assert any(np.__file__.startswith(d) for d in _core._LIBRARY_DIRS)
    assert any(_core.__file__.startswith(d) for d in _core._LIBRARY_DIRS)
    assert not any(__file__.startswith(d) for d in _core._LIBRARY_DIRS)


def test_precision_none_is_exact_float64_work():
    right = np.array([1.0, 2.0, 3.0], dtype=np.float32) / np.float32(3.0)
    exact = np.array([1.0, 2.0, 3.0]) / 3.0
    as_list = right.tolist()                       # float64 values with float32 errors
    assert not is_close(as_list, exact, rtol=1e-9)
    assert is_close(as_list, exact, rtol=1e-9, precision=np.float32)
    assert not is_close(np.asarray(as_list) * 1.01, exact, rtol=1e-9, precision=np.float32)
    assert compare(np.asarray(as_list), exact, "off") < 1e-7
    with pytest.raises(Failed, match="^off$"):
        compare(np.asarray(as_list), exact, "off", precision=None)


def test_call_learner_passes_copies_and_names_a_changed_input():
    from bnutils.checks._core import call_learner

    x, y = np.arange(3.0), np.array([np.nan, 1.0])
    assert call_learner(lambda a, b, k=0: a.sum() + k, x, y, k=1, names=("x", "y")) == 4.0

    def in_place(a, b):
        b[1] = 5.0
        return a

    with pytest.raises(Failed, match="^your function changed its input y in place; compute new"):
        call_learner(in_place, x, y, names=("x", "y"))
    assert y[1] == 1.0                                   # the check's own array is untouched
    with pytest.raises(Failed, match="changed one of its inputs in place; return new arrays"):
        call_learner(in_place, x, y, hint="return new arrays")


def test_printed_verdicts_wrap_at_spaces_within_90_characters(capsys):
    from bnutils.checks._core import Failed, self_check

    hint = ("the gradient differs (max abs. error < 1e-12 expected, got 3.4e-02); subtract the "
            "terms that the batch mean and the batch variance pass back to every sample")

    @self_check("Exercise 9.9 · a long hint")
    def check(fn):
        raise Failed(hint)

    check(lambda x: x)
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    assert len(lines) > 1 and all(len(line) <= 90 for line in lines)
    assert lines[0].startswith("✗ Exercise 9.9") and all(line.startswith("  ") for line in lines[1:])
    words = " ".join(line.strip() for line in lines).split()
    assert words == f"✗ Exercise 9.9 · a long hint: {hint}".split()     # no word broken
    assert "1e-12" in words and "3.4e-02);" in words


def _notebook_function(source: str, **variables):
    """A function defined as in a notebook cell (module ``__main__``), beside ``variables``."""
    namespace = {"__name__": "__main__", "np": np, **variables}
    exec(source, namespace)
    return namespace["f"]


@pytest.mark.parametrize("source, name", [
    ("def f(x, gamma, beta, eps=1e-5):\n    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)\n"
     "    return gamma * x_hat + beta", "x_hat"),
    ("def f(x, gamma, beta, eps=1e-5):\n    mean = x.sum(0) / m\n    var = ((x - mean)**2).sum(0) / m\n"
     "    return gamma * (x - mean) / np.sqrt(var + eps) + beta", "m"),
    ("def f(x, gamma, beta, eps=1e-5):\n    return [g for g in [gamma]][0] * (x - x.mean(0)) / "
     "np.sqrt(x.var(0) + eps) + b0", "b0"),                  # read inside a comprehension too
])
def test_a_function_that_reads_notebook_variables_is_told_which(source, name):
    from bnutils.checks import forward

    fn = _notebook_function(source, x_hat=np.ones((4, 2)), m=4, b0=np.zeros(2))
    result = forward.bn_forward.evaluate(fn)
    assert not result.passed
    assert f"reads `{name}` from the notebook, not from its arguments" in result.message
    assert fn.__globals__[name] is not None            # the notebook's variable is untouched


def test_modules_functions_and_a_correct_answer_are_not_affected():
    from bnutils.checks import forward

    fn = _notebook_function(
        "def helper(v):\n    return v - v.mean(0)\n"
        "def f(x, gamma, beta, eps=1e-5):\n    c = helper(x)\n"
        "    return gamma * c / np.sqrt((c**2).mean(0) + eps) + beta", x_hat=np.ones((4, 2)))
    assert forward.bn_forward.evaluate(fn).passed


def test_an_in_place_update_of_an_integer_input_is_named_not_shown_as_a_numpy_error():
    from bnutils.checks import start

    def standardize(x):
        x -= x.mean()
        return x / x.std()

    result = start.standardize.evaluate(standardize)
    assert not result.passed and "in place" in result.message and "x = x - ..." in result.message
    assert "UFuncTypeError" not in result.message


# --------------------------------------------------------------------------- the time limit (issue 25)

@self_check("Demo · time", time_limit=0.2)
def _timed_check(student_fn, calls=1):
    for _ in range(calls):
        student_fn()
    return "returned"


def _busy():
    n = 0
    while n >= 0:
        n += 1


@pytest.mark.parametrize("signals", [True, False], ids=["SIGALRM", "timer thread"])
def test_a_slow_function_is_stopped_with_a_verdict(monkeypatch, signals):
    """Issue 25: check.standardize(lambda x: time.sleep(10**6)) never answered. With SIGALRM
    (Linux, macOS) a sleep is interrupted too; the timer thread (Windows) stops Python code."""
    import time

    monkeypatch.setattr(_core, "USE_SIGNALS", signals)
    slow = [_busy] + ([lambda: time.sleep(3600)] if signals else [])
    for fn in slow:
        start = time.perf_counter()
        result = _timed_check.evaluate(fn)
        assert time.perf_counter() - start < 3.0
        assert result.message == ("✗ Demo · time: your function was stopped after 0.2 s without "
                                  "returning (an endless loop, or far more work than the "
                                  "exercise needs?)")
    assert _timed_check.evaluate(lambda: None).passed


def test_the_limit_counts_only_the_learners_time_and_adds_up():
    import time

    @self_check("Demo · own work", time_limit=0.3)
    def slow_check(student_fn):
        time.sleep(0.5)                  # the check's own work does not count
        student_fn()
        return "fine"

    assert slow_check.evaluate(lambda: None).passed
    result = _timed_check.evaluate(lambda: time.sleep(0.08), calls=5)     # 0.4 s in all
    assert not result.passed and "stopped after 0.2 s" in result.message


def test_ctrl_c_during_the_learners_code_is_still_a_keyboard_interrupt(monkeypatch):
    """In the timer-thread mode the check installs its own SIGINT handler: a real Ctrl+C
    (or the kernel's interrupt button) must still interrupt, not become a verdict."""
    import os
    import signal

    monkeypatch.setattr(_core, "USE_SIGNALS", False)

    def interrupted():
        os.kill(os.getpid(), signal.SIGINT)
        _busy()

    with pytest.raises(KeyboardInterrupt):
        _timed_check.evaluate(interrupted)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_earlier_alarm_is_put_back():
    import signal

    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        assert _timed_check.evaluate(lambda: None).passed
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25.0 < remaining <= 30.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, old)
    assert not fired


def test_in_another_thread_there_is_no_limit_but_a_verdict():
    import threading

    results = []
    thread = threading.Thread(target=lambda: results.append(_timed_check.evaluate(lambda: None)))
    thread.start()
    thread.join()
    assert results[0].passed


def test_the_time_limit_stops_a_learner_inside_a_jupyter_kernel():
    """A notebook cell runs in the kernel's main thread, so SIGALRM reaches it (Linux, macOS)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = ("import time\n"
              "from bnutils.checks import start as check\n"
              "check.standardize.time_limit = 0.5\n"
              "def standardize(x):\n"
              "    time.sleep(3600)\n"
              "t = time.perf_counter()\n"
              "check.standardize(standardize)\n"
              "print('returned within 5 s:', time.perf_counter() - t < 5)\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "✗ Warm-up · standardize: your function was stopped after 0.5 s" in text, text
    assert "returned within 5 s: True" in text, text


# --------------------------------------------------------------------------- shortcuts (issue 25)

def test_watch_calls_sees_a_function_however_it_is_reached():
    from bnutils import batchnorm_forward as alias
    from bnutils.batchnorm import BatchNorm, batchnorm_forward

    x = np.random.default_rng(0).normal(size=(4, 2))
    with _core.watch_calls({batchnorm_forward: "forward"}) as seen:
        alias(x, np.ones(2), np.zeros(2))
        BatchNorm(2).forward(x)                              # through a layer
        (lambda: batchnorm_forward(x, np.ones(2), np.zeros(2)))()
    assert seen.called() == ["forward"] and len(seen.calls) == 3
    assert seen.calls[0][1]["x"] is x                        # the arguments as received
    with _core.watch_calls({batchnorm_forward: "forward"}) as none:
        x.mean()
    assert not none


def test_watch_calls_keeps_an_earlier_profiler_running():
    import sys

    events = []
    sys.setprofile(lambda frame, event, arg: events.append(event))
    try:
        with _core.watch_calls({}):
            abs(-1)
        assert sys.getprofile() is not None
    finally:
        sys.setprofile(None)
    assert events


def test_python_loops_names_the_functions_with_a_loop():
    namespace = {"__name__": "__main__", "np": np}
    exec("def helper(v):\n    return [a for a in v]\n"
         "def f(x):\n    return helper(x)\n"
         "def g(x):\n    with np.errstate(all='ignore'):\n        try:\n            return x * 2\n"
         "        except ValueError:\n            return None\n", namespace)
    assert _core.python_loops(namespace["f"]) == ["helper"]     # a notebook helper it calls
    assert _core.python_loops(namespace["g"]) == []
    from bnutils.reference import batchnorm_backward_loops
    assert _core.python_loops(batchnorm_backward_loops) == []   # library code is not the learner's


def test_fresh_inputs_differ_from_call_to_call():
    assert _core.fresh_rng().random() != _core.fresh_rng().random()


# --------------------------------------------------------------------------- the learner's signature

@pytest.mark.parametrize(("fn", "python_says"), [
    (lambda x: x, "too many positional arguments"),
    (lambda x, gamma, beta: x, "unexpected keyword argument 'eps'"),
    (lambda x, gamma, beta, eps, extra: x, "missing a required argument: 'extra'"),
])
def test_a_function_with_other_arguments_is_told_so(fn, python_says):
    """A function that cannot take the exercise's arguments got "a gap in the check, not
    your fault" (the TypeError comes before any of the learner's code runs); the verdict now
    says how the check calls it and what Python said."""
    @self_check("Demo · signature")
    def signature_check(student_fn):
        student_fn(np.ones(3), 1.0, 0.0, eps=1e-5)
        return "called"

    result = signature_check.evaluate(fn)
    assert not result.passed and "gap in the check" not in result.message, result.message
    assert "does not take the exercise's arguments" in result.message, result.message
    assert "3 arguments, eps=..." in result.message and python_says in result.message


def test_a_type_error_inside_the_function_is_still_the_learners():
    @self_check("Demo · signature")
    def signature_check(student_fn):
        student_fn(np.ones(3))
        return "called"

    result = signature_check.evaluate(lambda x: len(x, 1))
    assert not result.passed and "your code raised TypeError" in result.message, result.message
    assert "does not take the exercise's arguments" not in result.message
