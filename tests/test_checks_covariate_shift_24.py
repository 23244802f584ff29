"""Exercise 2.1 as a derivation (issue 24): ``check.layers_to_grow``.

The learner inverts the compounding factor: the fewest layers n with (1 + rate)**n >= factor.
The check must pass every right way of writing it, fail the stub and each plausible wrong
answer with a hint that names the mistake, and never be fooled by an odd answer.
"""

import math

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub  # tests/check_helpers.py

from bnutils.checks import covariate_shift as check


def by_logarithm(rate, factor):
    return math.ceil(math.log(factor) / math.log(1 + rate))


def by_counting(rate, factor):
    n, grown = 0, 1.0
    while grown < factor:
        grown *= 1 + rate
        n += 1
    return n


def by_numpy(rate, factor):
    return int(np.ceil(np.log(factor) / np.log1p(rate)))


def test_the_cases_are_right():
    for rate, factor, answer in check.GROW_CASES:
        assert by_counting(rate, factor) == answer
        assert (1 + rate) ** answer >= factor and (answer == 0 or (1 + rate) ** (answer - 1) < factor)


@pytest.mark.parametrize("solution", [by_logarithm, by_counting, by_numpy,
                                      lambda r, f: float(by_logarithm(r, f)),     # 70.0 is 70
                                      lambda r, f: np.int64(by_counting(r, f))])
def test_passes_right_answers(solution):
    result = check.layers_to_grow.evaluate(solution)
    assert result.passed, result.message
    assert "70 layers" in result.message and len(result.message) <= 90


@pytest.mark.parametrize(("fn", "fragment"), [
    (stub, "not done yet"),
    (lambda r, f: math.floor(math.log(f) / math.log(1 + r)), "round up"),
    (lambda r, f: round(math.log(f) / math.log(1 + r)), "round up"),
    (lambda r, f: math.log(f) / math.log(1 + r), "whole number"),
    (lambda r, f: math.ceil((f - 1) / r), "added the changes"),
    (lambda r, f: math.ceil(math.log(f) / r), "ln(1 + rate) ≈ rate"),
    (lambda r, f: by_logarithm(r, f) + 1, "one layer too many"),
    (lambda r, f: math.ceil(math.log(f) / math.log(1 + 100 * r)), "percentage"),
    (lambda r, f: (1 + r) ** 9, "whole number"),                       # the old exercise's answer
    (lambda r, f: 70, "the fewest layers"),                              # a hard-coded answer
    (lambda r, f: None, "None"),
    (lambda r, f: float("nan"), "NaN"),
    (lambda r, f: math.inf, "inf"),
    (lambda r, f: True, "bool"),
    (lambda r, f: str(by_logarithm(r, f)), "string"),
    (lambda r, f: [by_logarithm(r, f)] * 2, "one number"),
])
def test_fails_wrong_answers_with_a_hint(fn, fragment):
    assert_fails_with(check.layers_to_grow, fn, fragment)


def test_a_bug_in_the_learners_code_is_named_as_theirs():
    def buggy(rate, factor):
        raise RuntimeError("the learner's own bug")
    assert_fails_with(check.layers_to_grow, buggy, "your code raised RuntimeError")


def test_a_notebook_global_is_refused():
    # Right but for reading ``one`` from the notebook instead of writing 1.
    namespace = {"__name__": "__main__", "math": math, "one": 1.0}
    exec("def uses_global(rate, factor):\n"
         "    return math.ceil(math.log(factor) / math.log(one + rate))", namespace)
    assert_fails_with(check.layers_to_grow, namespace["uses_global"], "from the notebook")


def test_answers_of_an_earlier_run_replayed_never_pass():
    """The fresh case's answer is a whole number, and two fresh draws used to share it about
    once in 50 runs: then the answers recorded in one run, replayed in the next, passed (the
    attack battery's flaky "replay" failure). A fresh case now never repeats a recent answer,
    so 200 record-then-replay pairs all fail (with the old draw, ~4 of them passed)."""
    for _ in range(200):
        answers = []
        assert check.layers_to_grow.evaluate(_recording(answers)).passed
        assert not check.layers_to_grow.evaluate(_replaying(answers)).passed


def _recording(answers):
    def fn(rate, factor):
        answers.append(by_counting(rate, factor))
        return answers[-1]
    return fn


def _replaying(answers):
    replayed = iter(answers)
    return lambda rate, factor: next(replayed)
