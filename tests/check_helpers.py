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
