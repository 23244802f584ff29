"""Helpers shared by the tests of the exercise self-checks (tests/test_checks_*.py)."""


def stub(*args, **kwargs):
    """What the student edition puts in place of a solution."""
    raise NotImplementedError("Exercise: replace this line with your solution")


def assert_fails_with(chk, fn, *fragments):
    """Assert that self-check ``chk`` rejects ``fn`` with a complete hint containing ``fragments``."""
    result = chk.evaluate(fn)
    assert not result.passed, result.message
    assert result.message.startswith("✗ ")
    assert not result.message.endswith("..."), f"hint cut off: {result.message}"
    for fragment in fragments:
        assert fragment in result.message, result.message
    return result


def verdict_count(printed: str) -> int:
    """How many verdicts a self-check printed: lines that start with ✓ or ✗.

    A verdict longer than 90 characters is wrapped at spaces onto indented continuation
    lines (bnutils.checks._core.wrap_verdict); those are part of the same verdict.
    """
    lines = printed.rstrip("\n").split("\n")
    assert all(line.startswith(("✓ ", "✗ ", "  ")) for line in lines), printed
    assert all(len(line) <= 90 for line in lines), printed
    return sum(line.startswith(("✓ ", "✗ ")) for line in lines)
