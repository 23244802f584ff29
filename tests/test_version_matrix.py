"""The supported-versions matrix (`make test-matrix`, tools/version_matrix.py): the oldest
set it installs is pyproject.toml's lower bounds, stated once in tests/constraints-oldest.txt;
the newest side is the newest Python pyproject.toml lists; the tool finds its Pythons, says
what it would run (--dry-run), and skips a missing Python with a message outside CI but
fails under CI=true. The matrix itself runs in .ci/run, not here (about 20 min).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib

from tools import version_matrix

ROOT = Path(__file__).resolve().parents[1]

TOOL = ROOT / "tools" / "version_matrix.py"
CONSTRAINTS = ROOT / "tests" / "constraints-oldest.txt"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def declared() -> dict[str, SpecifierSet]:
    """{package: its range} over pyproject.toml's dependencies and every extra."""
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    reqs += [Requirement(r) for extra in PROJECT["optional-dependencies"].values() for r in extra]
    out: dict[str, SpecifierSet] = {}
    for req in reqs:
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        out[name] = out.get(name, SpecifierSet()) & req.specifier
    return out


def lower_bound(spec: SpecifierSet) -> Version:
    """The oldest version a range accepts: its >= (or == x.*) clause."""
    floors = {Version(s.version.removesuffix(".*")) for s in spec if s.operator in (">=", "==", "~=")}
    assert len(floors) == 1, f"{spec} has no single lower bound"
    return floors.pop()


# --- the oldest set is pyproject.toml's lower bounds ---------------------------------------

def test_every_pin_is_the_lower_bound_pyproject_declares():
    ranges = declared()
    pins = version_matrix.pinned()
    assert pins, "the constraints file pins nothing"
    not_declared = sorted(set(pins) - set(ranges))
    assert not not_declared, f"pinned in {CONSTRAINTS.name}, not declared in pyproject.toml: {not_declared}"
    differ = {name: (version, str(ranges[name])) for name, version in pins.items()
              if Version(version) != lower_bound(ranges[name])}
    assert not differ, (f"{CONSTRAINTS.name} pins other versions than pyproject.toml's lower "
                        f"bounds (pinned, declared): {differ}")


def test_the_runtime_and_the_lab_are_all_pinned():
    """What a learner installs is what the oldest side must hold at its floor."""
    learner = {re.sub(r"[-_.]+", "-", Requirement(r).name).lower()
               for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["lab"]}
    assert learner == {"numpy", "matplotlib", "scikit-learn", "ipywidgets", "jupyterlab"}
    assert learner <= set(version_matrix.pinned()), learner - set(version_matrix.pinned())


def test_the_oldest_python_is_requires_pythons_floor():
    floor = re.fullmatch(r">=(\d+\.\d+)", PROJECT["requires-python"]).group(1)
    assert version_matrix.oldest_python() == floor


def test_the_newest_python_is_the_newest_classifier():
    listed = [tuple(map(int, m.group(1).split("."))) for c in PROJECT["classifiers"]
              if (m := re.fullmatch(r"Programming Language :: Python :: (\d+\.\d+)", c))]
    assert version_matrix.newest_python() == "{}.{}".format(*max(listed))


def test_a_constraints_line_that_is_not_a_pin_is_refused(tmp_path):
    bad = tmp_path / "constraints.txt"
    bad.write_text("# python 3.10\nnumpy>=1.24\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="expected name==version, got 'numpy>=1.24'"):
        version_matrix.pinned(bad)
    bad.write_text("numpy==1.24.0\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no '# python X.Y' line"):
        version_matrix.oldest_python(bad)


def test_the_stamp_changes_with_what_a_venv_is_built_from():
    assert version_matrix.stamp_of("oldest", "3.10.13") == version_matrix.stamp_of("oldest", "3.10.13")
    assert version_matrix.stamp_of("oldest", "3.10.13") != version_matrix.stamp_of("oldest", "3.10.14")
    assert version_matrix.stamp_of("oldest", "3.10.13") != version_matrix.stamp_of("newest", "3.10.13")


def test_counts_read_pytests_closing_line():
    line = "=== 2 failed, 2901 passed, 14 skipped, 3 deselected, 1 error in 612.31s (0:10:12) ==="
    assert version_matrix.counts(line) == {"failed": 2, "passed": 2901, "skipped": 14,
                                           "deselected": 3, "errors": 1}
    assert version_matrix.counts("") == {}


# --- finding the Pythons, and the dry run ---------------------------------------------------

def fake_python(path: Path, version: str, venv: bool = True) -> Path:
    """A stand-in interpreter that answers the tool's probe as Python ``version`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version} {'venv' if venv else 'no-ensurepip'}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def run_tool(tmp_path, *args, path_dirs=(), ci=False, **extra_env):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "OLDEST_PYTHON", "NEWEST_PYTHON", "PYENV_ROOT")}
    env.update({"PATH": os.pathsep.join(str(d) for d in path_dirs) or str(tmp_path / "nothing"),
                "PYENV_ROOT": str(tmp_path / "no-pyenv"), "HOME": str(tmp_path)} | extra_env)
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_dry_run_shows_each_sides_python_install_and_tests(tmp_path):
    bin_dir = tmp_path / "bin"
    old = fake_python(bin_dir / "python3.10", "3.10.99")
    newest = version_matrix.newest_python()
    new = fake_python(bin_dir / f"python{newest}", f"{newest}.99")
    run = run_tool(tmp_path, "--dry-run", path_dirs=[bin_dir])
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    matrix = ROOT / ".venv-matrix"
    assert f"+ {old} -m venv {matrix / 'oldest'}" in lines
    assert f"+ {new} -m venv {matrix / 'newest'}" in lines
    assert (f"+ {matrix / 'oldest' / 'bin' / 'python'} -m pip install -c tests/constraints-oldest.txt "
            "-e '.[lab,test,grade]'") in lines
    assert (f"+ {matrix / 'newest' / 'bin' / 'python'} -m pip install --upgrade --upgrade-strategy eager "
            "-e '.[lab,test,grade]'") in lines
    for side in ("oldest", "newest"):
        assert (f"+ {matrix / side / 'bin' / 'python'} -m pytest tests --ignore=tests/e2e "
                "-m 'not e2e' notebooks") in lines
    assert lines[-1] == "matrix: 0 passed, 0 failed, 0 skipped"


def test_one_side_and_pytest_arguments(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir / "python3.10", "3.10.99")
    run = run_tool(tmp_path, "oldest", "--dry-run", "--", "-x", "-k", "batchnorm", path_dirs=[bin_dir])
    assert run.returncode == 0, run.stdout + run.stderr
    assert not [line for line in run.stdout.splitlines() if line.startswith("newest")], run.stdout
    assert re.search(r"-m pytest tests --ignore=tests/e2e -m 'not e2e' notebooks -x -k batchnorm$",
                     run.stdout, re.M)
    bad = run_tool(tmp_path, "oldest", "middle", "--dry-run", path_dirs=[bin_dir])
    assert bad.returncode == 2 and "unknown side middle" in bad.stderr


def test_the_newest_pyenv_build_is_found_and_a_shim_that_fails_is_passed_over(tmp_path):
    pyenv = tmp_path / "pyenv"
    for patch in ("2", "11", "9"):
        fake_python(pyenv / "versions" / f"3.10.{patch}" / "bin" / "python3.10", f"3.10.{patch}")
    shim = tmp_path / "shims" / "python3.10"                 # pyenv's shim of an inactive version
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.10: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    run = run_tool(tmp_path, "oldest", "--dry-run", path_dirs=[shim.parent], PYENV_ROOT=str(pyenv))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"+ {pyenv / 'versions' / '3.10.11' / 'bin' / 'python3.10'} -m venv" in run.stdout


def test_a_python_without_venv_or_of_another_version_is_not_taken(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir / "python3.10", "3.10.99", venv=False)    # Debian without python3.10-venv
    run = run_tool(tmp_path, "oldest", "--dry-run", path_dirs=[bin_dir])
    assert "SKIPPED: no Python 3.10 on this machine" in run.stdout
    wrong = fake_python(tmp_path / "other" / "python", "3.9.18")
    run = run_tool(tmp_path, "oldest", "--dry-run", OLDEST_PYTHON=str(wrong))
    assert f"SKIPPED: no Python 3.10 on this machine (looked for: {wrong})" in run.stdout


def test_a_missing_python_is_skipped_with_a_message_and_fails_under_ci(tmp_path):
    run = run_tool(tmp_path, "oldest", "--dry-run")
    assert run.returncode == 0, run.stdout + run.stderr
    message = run.stdout.splitlines()
    skipped = [line for line in message if line.startswith("oldest: SKIPPED")]
    assert len(skipped) == 1, run.stdout
    for words in ("no Python 3.10 on this machine", "python3.10 on PATH",
                  str(tmp_path / "no-pyenv" / "versions" / "3.10.*" / "bin" / "python3.10"),
                  "pyenv install 3.10", "make test-matrix OLDEST_PYTHON=/path/to/python3.10"):
        assert words in skipped[0], (words, skipped[0])
    assert message[-1] == "matrix: 0 passed, 0 failed, 0 skipped"

    under_ci = run_tool(tmp_path, "oldest", "--dry-run", ci=True)
    assert under_ci.returncode == 1
    assert "oldest: FAILED under CI=true: no Python 3.10 on this machine" in under_ci.stdout
    assert under_ci.stdout.splitlines()[-1] == "matrix: 0 passed, 1 failed, 0 skipped"


# --- make test-matrix, .ci/run, .gitignore ----------------------------------------------------

def _make_dry_run(tmp_path, *args) -> list[str]:
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    # Not a sub-make of the make that may be running this test (make test, make test-matrix):
    # its MAKELEVEL turns on "make[1]: Entering directory ..." lines, its MAKEFLAGS and the
    # variables below would change the command.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "PYTHON", "MATRIX", "PYTEST_ARGS")}
    run = subprocess.run(["make", "-n", "test-matrix", *args], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_test_matrix_calls_the_tool(tmp_path):
    assert _make_dry_run(tmp_path) == ["python3 tools/version_matrix.py oldest newest -- "]
    assert _make_dry_run(tmp_path, "MATRIX=newest", "PYTEST_ARGS=-x") == [
        "python3 tools/version_matrix.py newest -- -x"]
    # no dependency on .venv: the tool needs only a python3
    assert re.search(r"^test-matrix:\s*$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)


def test_ci_runs_the_matrix_after_the_suite_and_the_hub_test():
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    makes = [c for c in commands if re.search(r"\bmake\b", c)]
    order = [next(i for i, c in enumerate(makes) if re.search(rf"\bmake {t}$", c))
             for t in ("test", "hub-test", "test-matrix")]
    assert order == sorted(order), makes


def test_the_matrix_venvs_are_ignored_by_git():
    assert ".venv-matrix/" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def test_the_readme_says_what_the_matrix_tests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tested = re.search(r"\*\*Tested on\*\*(.*?)\n\n", readme, re.S)
    assert tested, "README needs its '**Tested on**' paragraph"
    text = " ".join(tested.group(1).split())
    assert f"Python {version_matrix.oldest_python()} with the oldest versions" in text
    assert f"Python {version_matrix.newest_python()} with the newest release" in text
    names = {"numpy": "NumPy", "matplotlib": "Matplotlib", "scikit-learn": "scikit-learn",
             "ipywidgets": "ipywidgets", "jupyterlab": "JupyterLab"}
    pins = version_matrix.pinned()
    for package, shown in names.items():
        major_minor = ".".join(pins[package].split(".")[:2])
        assert f"{shown} {major_minor}" in text, (package, text)
    assert "make test-matrix" in text
    assert re.search(r"You need\s+only\s+`python3`\s+\((\d+\.\d+) or newer\)", readme).group(1) == \
        version_matrix.oldest_python()
