"""Under CI=true a skipped browser (e2e) test is a failure; elsewhere a skip stays a skip.

Runs tests/conftest.py in a scratch project with pytester (in process, about 0.3 s).
"""

import importlib.util
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py").read_text(encoding="utf-8")

SKIPPING_E2E = """
import pytest

@pytest.mark.e2e
def test_browser():
    pytest.skip("no chromium here")

@pytest.mark.e2e
@pytest.mark.skipif(True, reason="skipif in setup")
def test_browser_skipif():
    pass

def test_ordinary_skip():
    pytest.skip("not a browser test")

@pytest.mark.e2e
def test_browser_runs():
    pass
"""

MODULE_LEVEL_SKIP = """
import pytest
pytest.skip("Debian chromium not installed", allow_module_level=True)

def test_never_collected():
    pass
"""


@pytest.fixture
def project(pytester):
    """A scratch project: tests/conftest.py (ours), one skipping e2e test file in tests/,
    and a module under tests/e2e/ that skips at import time."""
    pytester.makeini("[pytest]\nmarkers =\n    e2e: browser test\n")
    tests = pytester.mkdir("tests")
    (tests / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tests / "test_mixed.py").write_text(SKIPPING_E2E, encoding="utf-8")
    (tests / "e2e").mkdir()
    (tests / "e2e" / "test_lab.py").write_text(MODULE_LEVEL_SKIP, encoding="utf-8")
    return pytester


def _load_conftest():
    spec = importlib.util.spec_from_file_location("tests_conftest_under_test",
                                                  Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True),
    (None, False), ("", False), ("false", False), ("0", False),
])
def test_what_counts_as_ci(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert _load_conftest().running_in_ci() is expected


def test_e2e_skips_fail_under_ci(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = project.runpytest("-p", "no:cacheprovider", "-rfEs",
                               "--continue-on-collection-errors", "tests")
    # the skipif fires in setup, so it is reported as an error
    result.assert_outcomes(passed=1, failed=1, skipped=1, errors=2)
    result.stdout.fnmatch_lines_random([
        "*e2e test skipped under CI=true (Skipped: no chromium here)*",
        "*e2e test skipped under CI=true (*skipif in setup)*",
        "*e2e module skipped under CI=true (Skipped: Debian chromium not installed)*",
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_e2e_may_skip_outside_ci(project, monkeypatch):
    monkeypatch.setenv("CI", "false")
    result = project.runpytest("-p", "no:cacheprovider", "tests")
    result.assert_outcomes(passed=1, skipped=4)
    assert result.ret == pytest.ExitCode.OK
