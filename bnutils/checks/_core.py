"""The self-check framework: one printed line per check, ✓ or ✗, never an exception.

A check is an *evaluation function* that calls the learner's code and either returns a
short message saying what it verified, or raises ``Failed("hint")``. The
``self_check`` decorator turns it into the function a notebook calls::

    @self_check("Exercise 3.1 · BN forward pass")
    def bn_forward(student_fn):
        out = student_fn(x, gamma, beta)
        ...
        return f"matches bnutils.batchnorm_forward (max rel. error {fmt_err(err)})"

    bn_forward(my_fn)            # prints "✓ Exercise 3.1 · BN forward pass: matches ..."
    bn_forward.evaluate(my_fn)   # returns CheckResult(passed=True, message=...) for tests

A learner's ``NotImplementedError`` (the student-edition stub) becomes "not done yet";
any other exception becomes a ✗ line naming it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["CheckResult", "Failed", "diagnose", "fmt_err", "self_check"]

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
    """
    err = float(err)
    for bound in (1e-12, 1e-9, 1e-6):
        if err < bound:
            return f"< {bound:.0e}"
    return f"{err:.2g}"


def diagnose(answer, candidates: dict, rtol: float = 1e-6, atol: float = 1e-9) -> str | None:
    """Name the known mistake whose output ``answer`` reproduces, if any.

    Parameters
    ----------
    answer : array_like
        What the learner's code returned.
    candidates : dict of str -> array_like
        Each known mistake's description mapped to the output that mistake produces.

    Returns
    -------
    str or None
        The first matching description, or None.
    """
    answer = np.asarray(answer, dtype=float)
    for description, wrong in candidates.items():
        wrong = np.asarray(wrong, dtype=float)
        if wrong.shape == answer.shape and np.allclose(answer, wrong, rtol=rtol, atol=atol):
            return description
    return None


def _first_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 160 else text[:157] + "..."


def self_check(title: str):
    """Decorator: turn an evaluation function into a self-check that prints one line.

    The returned function prints ``✓ <title>: <message>`` or ``✗ <title>: <hint>`` and
    returns None (so a notebook cell shows only the line). Its ``evaluate`` attribute
    returns the ``CheckResult`` instead of printing, for tests.
    """

    def decorate(evaluate_fn):
        @functools.wraps(evaluate_fn)
        def evaluate(*args, **kwargs) -> CheckResult:
            try:
                with np.errstate(all="ignore"):
                    message = evaluate_fn(*args, **kwargs)
            except NotImplementedError:
                return CheckResult(False, f"{FAIL} {title}: not done yet - replace the "
                                          f"`raise NotImplementedError` line with your solution")
            except Failed as failure:
                return CheckResult(False, f"{FAIL} {title}: {_first_line(failure)}")
            except Exception as exc:  # a learner's bug must never crash the check
                return CheckResult(False, f"{FAIL} {title}: your code raised "
                                          f"{type(exc).__name__}: {_first_line(exc)}")
            return CheckResult(True, f"{PASS} {title}: {_first_line(message)}")

        @functools.wraps(evaluate_fn)
        def run(*args, **kwargs) -> None:
            print(evaluate(*args, **kwargs).message)

        run.evaluate = evaluate
        run.title = title
        return run

    return decorate
