"""CI's policies: which Pythons the workflow tests, and that under CI=true a skipped browser
(e2e) test is a failure (elsewhere a skip stays a skip).

The skip policy runs tests/conftest.py in a scratch project with pytester (in process,
about 0.3 s). The workflow runs the whole course (`bash .ci/run`) on the Python Binder
uses, and the supported-versions matrix (`make test-matrix`: unit tests and notebooks) on
the oldest and the newest Python that pyproject.toml supports, one job per side.
"""

import importlib.util
import re
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


def test_slow_modules_are_marked_slow(pytester):
    """tests/conftest.py marks every test of its SLOW_MODULES slow: make check deselects them."""
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    tests = pytester.mkdir("tests")
    (tests / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    slow = _load_conftest().SLOW_MODULES
    assert "test_nbgrader.py" in slow
    (tests / "test_nbgrader.py").write_text("def test_a():\n    pass\n", encoding="utf-8")
    (tests / "test_fast.py").write_text("def test_b():\n    pass\n", encoding="utf-8")
    # importlib: the suite's own test_nbgrader and test_fast may be imported in this process.
    args = ("-p", "no:cacheprovider", "--import-mode=importlib")
    result = pytester.runpytest(*args, "-m", "not slow", "tests")
    result.assert_outcomes(passed=1, deselected=1)
    result = pytester.runpytest(*args, "-m", "slow", "tests", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*test_nbgrader.py::test_a PASSED*"])


# --- the workflow: which Pythons CI tests ------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "test.yml"


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@pytest.fixture(scope="module")
def jobs():
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]


@pytest.fixture(scope="module")
def supported():
    """The Python versions pyproject.toml supports: requires-python's floor and the
    classifiers, which must list every minor from the floor up, with no gap."""
    try:
        import tomllib
    except ModuleNotFoundError:          # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    floor = re.fullmatch(r">=(\d+\.\d+)", project["requires-python"]).group(1)
    listed = sorted(_minor(m.group(1)) for c in project["classifiers"]
                    if (m := re.fullmatch(r"Programming Language :: Python :: (\d+\.\d+)", c)))
    assert listed[0] == _minor(floor), (listed, floor)
    assert listed == [(3, m) for m in range(listed[0][1], listed[-1][1] + 1)], listed
    return listed


def _container_python(job) -> str:
    m = re.fullmatch(r"python:(.+)-bookworm", job["container"])
    assert m, job["container"]
    return m.group(1)


def test_the_full_run_is_on_the_binder_python(jobs):
    full = jobs["test"]
    assert any(step.get("run") == "bash .ci/run" for step in full["steps"])
    assert full["env"]["CI"] == "true"
    binder = (ROOT / "binder" / "environment.yml").read_text(encoding="utf-8")
    binder_python = re.search(r"^\s*-\s*python\s*=+\s*(\d+\.\d+)\s*$", binder, re.M).group(1)
    assert _container_python(full) == binder_python == "3.11"


def _matrix_sides(jobs) -> dict[str, str]:
    """{side: Python} of the workflow's matrix jobs."""
    return {entry["side"]: entry["python"] for entry in jobs["matrix"]["strategy"]["matrix"]["include"]}


def test_the_matrix_jobs_run_the_oldest_and_newest_supported_python(jobs, supported):
    """make test-matrix's two sides, each a job in its own Python's image (tools/version_matrix.py
    finds pythonX.Y on PATH there); the Pythons are the ones the tool reads."""
    from tools import version_matrix

    matrix = jobs["matrix"]
    sides = _matrix_sides(jobs)
    assert all(isinstance(v, str) for v in sides.values()), "quote the versions (YAML reads 3.10 as 3.1)"
    assert sides == {"oldest": version_matrix.oldest_python(), "newest": version_matrix.newest_python()}
    assert [_minor(sides["oldest"]), _minor(sides["newest"])] == [supported[0], supported[-1]], sides
    assert _container_python(matrix) == "${{ matrix.python }}"
    assert matrix["strategy"].get("fail-fast") is False, "one side failing must not cancel the other"
    assert matrix["env"]["CI"] == "true"
    assert [step["run"] for step in matrix["steps"] if "run" in step][-1] == \
        "make test-matrix MATRIX=${{ matrix.side }}"


def test_the_full_run_leaves_the_matrix_to_its_jobs_only_when_they_exist(jobs):
    """.ci/run runs make test-matrix unless CI_MATRIX_IN_JOBS=1; only the workflow, whose matrix
    jobs run both sides, may set it."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r'if \[\[ "\$\{CI_MATRIX_IN_JOBS:-\}" != 1 \]\]; then\s+make test-matrix\s+fi', ci)
    assert jobs["test"]["env"].get("CI_MATRIX_IN_JOBS") == "1"
    assert set(_matrix_sides(jobs)) == {"oldest", "newest"}
    assert "unit" not in jobs, "the matrix jobs run the unit tests (and the notebooks) on both sides"


def test_every_supported_python_is_tested_somewhere_or_lies_between(jobs, supported):
    tested = {_minor(_container_python(jobs["test"]))}
    tested |= {_minor(v) for v in _matrix_sides(jobs).values()}
    assert min(tested) == supported[0] and max(tested) == supported[-1], (tested, supported)
