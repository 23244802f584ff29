"""Notebook 00's warm-up self-check: passes the solution, names each common mistake."""

import numpy as np
import pytest
from check_helpers import verdict_count  # tests/check_helpers.py

from bnutils.checks import start


def reference(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std()


def stub(x):
    raise NotImplementedError("Exercise 0.1 (standardize): replace this line with your solution")


def test_reference_passes_and_prints_one_tick_line(capsys):
    result = start.standardize.evaluate(reference)
    assert result.passed and result.message.startswith("✓ Warm-up · standardize:")
    start.standardize(reference)
    out = capsys.readouterr().out
    assert verdict_count(out) == 1 and out.startswith("✓")


def test_stub_is_not_done_yet():
    result = start.standardize.evaluate(stub)
    assert not result.passed and "not done yet" in result.message and result.message.startswith("✗")


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: (x - x.mean()) / x.std(ddof=1), "ddof=1"),
    (lambda x: (x - x.mean()) / x.var(), "divided by the variance"),
    (lambda x: x / x.std(), "forgot to subtract the mean"),
    (lambda x: x - x.mean(), "did not divide"),
    (lambda x: None, "returned None"),
    (lambda x: reference(x)[:3], "shape"),
    (lambda x: reference(x) + 0.5, "differ"),
    (lambda x: 1 / 0, "ZeroDivisionError"),
])
def test_wrong_answers_fail_with_their_hint(wrong, hint):
    result = start.standardize.evaluate(wrong)
    assert not result.passed and result.message.startswith("✗")
    assert hint in result.message


def test_modifying_the_input_is_caught():
    def in_place(x):
        x -= 1
        return reference(x)

    result = start.standardize.evaluate(in_place)
    assert not result.passed and "changed its input" in result.message


def test_a_check_never_raises(capsys):
    start.standardize(object())  # not even callable
    out = capsys.readouterr().out
    assert out.startswith("✗ Warm-up · standardize: pass your function itself"), out
    assert "got an object" in out
