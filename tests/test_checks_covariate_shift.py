"""Notebook 02's self-checks: pass the reference, fail the stub, name each common mistake."""

import numpy as np
import pytest
from check_helpers import verdict_count  # tests/check_helpers.py

from bnutils.checks import covariate_shift as check
from bnutils.lab.saturation import saturation_fraction


def stub(*args):
    raise NotImplementedError("Exercise 2.x: replace this line with your solution")


# ------------------------------------------------------------ Exercise 2.1 compounding


def compounding_factor(rate, n):
    return (1.0 + rate) ** n


def test_compounding_reference_passes(capsys):
    result = check.compounding_factor.evaluate(compounding_factor)
    assert result.passed and "1.0937" in result.message and "37.78" in result.message
    check.compounding_factor(compounding_factor)
    assert verdict_count(capsys.readouterr().out) == 1


def test_compounding_stub():
    assert "not done yet" in check.compounding_factor.evaluate(stub).message


@pytest.mark.parametrize("wrong, hint", [
    (lambda r, n: 1 + r * n, "added the changes"),
    (lambda r, n: (1 + r) ** n - 1, "returned the increase"),
    (lambda r, n: (1 + r) ** (n - 1), "n - 1 times"),
    (lambda r, n: (1 + 100 * r) ** n, "percentage"),
    (lambda r, n: r * n, "rate·n"),
    (lambda r, n: None, "returned None"),
    (lambda r, n: [1.0, 2.0], "one number"),
    (lambda r, n: np.exp(r * n), "expected"),
])
def test_compounding_mistakes_are_named(wrong, hint):
    result = check.compounding_factor.evaluate(wrong)
    assert not result.passed and hint in result.message


# --------------------------------------------------------- Exercise 2.2 saturated layer


def most_saturated_layer(activations, threshold=0.99):
    fractions = [np.mean(np.abs(a) > threshold) for a in activations]
    return int(np.argmax(fractions))


def test_saturated_layer_reference_passes():
    result = check.most_saturated_layer.evaluate(most_saturated_layer)
    assert result.passed and result.message.startswith("✓ Exercise 2.2")


@pytest.mark.parametrize("seed", range(6))
def test_saturation_cases_are_consistent_with_diagnostics(seed):
    """The real network's answer is its oversized layer (drawn from the generator), clearly."""
    cases = check.saturation_cases(np.random.default_rng(seed))
    assert len(cases) == 3
    real_acts, threshold, answer = cases[2]
    rng = np.random.default_rng(seed)
    rng.integers(2**31)
    big = int(rng.integers(6))
    fractions = [saturation_fraction(a) for a in real_acts]
    assert threshold == 0.99 and answer == big and fractions[big] > 0.2
    assert max(f for i, f in enumerate(fractions) if i != big) < 0.05


def test_the_real_network_changes_from_call_to_call():
    answers = {check.saturation_cases()[2][2] for _ in range(12)}
    assert len(answers) > 1


def test_a_count_instead_of_a_fraction_is_named():
    """Issue 25: the layers have different widths, so counting the saturated entries picks
    the wrong layer (it passed while every layer had the same width)."""
    result = check.most_saturated_layer.evaluate(
        lambda acts, t: int(np.argmax([np.sum(np.abs(a) > t) for a in acts])))
    assert not result.passed and "different widths" in result.message, result.message


def test_an_index_typed_in_from_an_earlier_run_fails():
    """Issue 25: the answers of one run, replayed in call order, fail the next run."""
    answers = []

    def recording(acts, t):
        answers.append(most_saturated_layer(acts, t))
        return answers[-1]

    assert check.most_saturated_layer.evaluate(recording).passed
    replay = iter(list(answers))
    result = check.most_saturated_layer.evaluate(lambda acts, t: next(replay))
    assert not result.passed, result.message


def test_saturated_layer_stub():
    assert "not done yet" in check.most_saturated_layer.evaluate(stub).message


@pytest.mark.parametrize("wrong, hint", [
    (lambda acts, t: int(np.argmax([np.mean(a > t) for a in acts])), "also saturated near -1"),
    (lambda acts, t: int(np.argmax([np.mean(np.abs(a)) for a in acts])), "largest mean |a|"),
    (lambda acts, t: int(np.argmax([np.mean(a) for a in acts])), "largest mean activation"),
    (lambda acts, t: most_saturated_layer(acts, t) + 1, "numbered from 0"),
    (lambda acts, t: most_saturated_layer(acts, 0.99), "ignored the threshold"),
    (lambda acts, t: [np.mean(np.abs(a) > t) for a in acts], "not a list or array"),
    (lambda acts, t: None, "returned None"),
    (lambda acts, t: 2.5, "an int"),
    (lambda acts, t: 4 if t == 0.99 else 2, "you returned layer 2 (30 % saturated)"),
    (lambda acts, t: 17, "only 5 layers"),
])
def test_saturated_layer_mistakes_are_named(wrong, hint):
    result = check.most_saturated_layer.evaluate(wrong)
    assert not result.passed and hint in result.message


def test_largest_std_is_caught_too():
    result = check.most_saturated_layer.evaluate(
        lambda acts, t: int(np.argmax([np.std(a) for a in acts])))
    assert not result.passed
    assert "largest mean |a|" in result.message or "standard deviation" in result.message


def test_checks_never_raise(capsys):
    check.compounding_factor("not a function")
    check.most_saturated_layer(lambda acts, t: 1 / 0)
    out = capsys.readouterr().out
    assert verdict_count(out) == 2 and out.startswith("✗")
    assert "ZeroDivisionError" in out.split("\n✗")[1]


def test_passing_lines_fit_a_90_character_output():
    """Issue 19: a verdict line longer than the output area breaks mid-token; and the
    source notes are "a blog post", never "the seed"."""
    for c, fn in [(check.compounding_factor, compounding_factor),
                  (check.most_saturated_layer, most_saturated_layer)]:
        result = c.evaluate(fn)
        assert result.passed and len(result.message) <= 90, result.message
        assert "seed" not in result.message
