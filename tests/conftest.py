"""Shared pytest rules for tests/.

Under CI (the environment variable ``CI`` is ``true``, as GitHub Actions and ``.ci/run``
set it), the browser tests must run: a skip of a test marked ``e2e``, or of a whole
module under ``tests/e2e/`` (``pytest.importorskip``, ``pytest.skip(...,
allow_module_level=True)``), is reported as a failure, with the skip reason. Outside CI
they may skip (no Chromium on a learner's laptop is fine). ``tests/test_ci_policy.py``
tests this.

Tests marked ``slow`` (they run a notebook in a kernel, start JupyterLab, build a wheel
or an nbgrader course) are left out of ``make check``, the fast tier; ``make test`` runs
them. Most carry the mark where they are written; the modules in ``SLOW_MODULES`` are
marked as a whole here.
"""

import os
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent / "e2e"
#: Test modules that are slow as a whole (file name: why).
SLOW_MODULES = {
    "test_nbgrader.py": "builds an nbgrader course and autogrades executed notebooks",
    "test_hub.py": "starts a JupyterHub for three learners (only with BN_HUB_E2E=1: make hub-test)",
    "test_grading.py": "builds nbgrader courses and autogrades four submissions of two notebooks",
    "test_html_student.py": "builds the static site twice (solutions and student editions)",
}


def running_in_ci() -> bool:
    """True when the environment variable CI says so (true/1/yes, any case)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _skip_reason(longrepr) -> str:
    # A skip's longrepr is (path, lineno, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _under_e2e(path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(E2E_DIR)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if (report.skipped and running_in_ci() and not hasattr(report, "wasxfail")
            and (item.get_closest_marker("e2e") is not None or _under_e2e(item.path))):
        report.outcome = "failed"
        report.longrepr = (f"e2e test skipped under CI=true ({_skip_reason(report.longrepr)}); "
                           "browser tests must run in CI: .ci/run installs Debian's chromium")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.skipped and running_in_ci() and _under_e2e(getattr(collector, "path", None)):
        report.outcome = "failed"
        report.longrepr = (f"e2e module skipped under CI=true ({_skip_reason(report.longrepr)}); "
                           "browser tests must run in CI: .ci/run installs Debian's chromium")
    return report


def pytest_collection_modifyitems(config, items):
    """Mark every test of the ``SLOW_MODULES`` slow."""
    for item in items:
        if item.path is not None and item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
