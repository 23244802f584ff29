"""Packaging and set-up stay consistent: pyproject.toml, environment.yml, README, Makefile, CI.

environment.yml (the conda route) must name the same packages, with the same version
ranges, as pyproject.toml's dependencies plus its extras lab and test, and install the
course package itself with ``pip install -e .``. The README starts with the two commands
that CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib

import bnutils

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# conda-only entries: the interpreter and the installer
CONDA_ONLY = {"python", "pip"}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


def normalize_name(name: str) -> str:
    """PEP 503 normalisation: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def normalize_spec(spec: str) -> str:
    """A version range in a comparable form: conda's fuzzy ``=0.11`` is pip's ``==0.11.*``;
    clauses sorted, spaces removed."""
    clauses = []
    for clause in spec.replace(" ", "").split(","):
        if not clause:
            continue
        if re.fullmatch(r"=[^=].*", clause):
            clause = "=" + clause if clause.endswith(".*") else f"={clause}.*"
        clauses.append(clause)
    return ",".join(sorted(clauses))


def parse_requirement(text: str) -> tuple[str, str]:
    m = REQUIREMENT.match(text)
    if m is None:
        raise ValueError(f"cannot parse requirement {text!r}")
    return normalize_name(m.group(1)), normalize_spec(m.group(3))


def parse_environment_yml(text: str) -> dict:
    """Just enough YAML for environment.yml: top-level keys, the dependency list, and its
    nested ``pip:`` list. Returns {"name", "channels", "conda": [...], "pip": [...]}."""
    env = {"name": None, "channels": [], "conda": [], "pip": []}
    section = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0:
            key, _, value = stripped.partition(":")
            section = key
            if key == "name":
                env["name"] = value.strip()
            continue
        if not stripped.startswith("- "):
            raise ValueError(f"unexpected line in environment.yml: {raw!r}")
        item = stripped[2:].strip()
        if section == "channels":
            env["channels"].append(item)
        elif section == "dependencies":
            if item == "pip:":
                section = "pip"
            else:
                env["conda"].append(item)
        elif section == "pip":
            if indent <= 2:              # back at the level of the conda list
                env["conda"].append(item)
                section = "dependencies"
            else:
                env["pip"].append(item)
    return env


ENV = parse_environment_yml((ROOT / "environment.yml").read_text(encoding="utf-8"))


def pyproject_requirements() -> dict[str, str]:
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    extras = project["optional-dependencies"]
    reqs += extras["lab"] + extras["test"]
    return dict(parse_requirement(r) for r in reqs)


def environment_requirements() -> dict[str, str]:
    conda = dict(parse_requirement(r) for r in ENV["conda"])
    pip = dict(parse_requirement(r) for r in ENV["pip"] if not r.startswith("-e"))
    assert not conda.keys() & pip.keys(), "a package is listed for both conda and pip"
    return {name: spec for name, spec in (conda | pip).items() if name not in CONDA_ONLY}


def test_the_parser_reads_this_environment_file():
    assert ENV["name"] == "bn-course"
    assert ENV["channels"] == ["conda-forge"]
    assert {"python>=3.10", "pip"} <= set(ENV["conda"])
    assert "-e ." in ENV["pip"]


def test_the_parser_agrees_with_pyyaml():
    yaml = pytest.importorskip("yaml")       # installed with JupyterLab, not declared by us
    loaded = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = [d for d in loaded["dependencies"] if isinstance(d, dict)]
    assert pip == [{"pip": ENV["pip"]}]
    assert [d for d in loaded["dependencies"] if isinstance(d, str)] == ENV["conda"]
    assert loaded["name"] == ENV["name"] and loaded["channels"] == ENV["channels"]


@pytest.mark.parametrize(("conda", "pip"), [
    ("nbval=0.11", "nbval==0.11.*"),
    ("nbval=0.11.*", "nbval==0.11.*"),
    ("numpy >=1.24, <3", "numpy<3,>=1.24"),
    ("scikit_learn>=1.3", "Scikit-Learn>=1.3"),
])
def test_conda_and_pip_spellings_compare_equal(conda, pip):
    assert parse_requirement(conda) == parse_requirement(pip)


def test_environment_yml_and_pyproject_list_the_same_packages():
    in_pyproject, in_environment = pyproject_requirements(), environment_requirements()
    assert sorted(in_environment) == sorted(in_pyproject), (
        "environment.yml and pyproject.toml disagree; only in environment.yml: "
        f"{sorted(in_environment.keys() - in_pyproject.keys())}, only in pyproject.toml: "
        f"{sorted(in_pyproject.keys() - in_environment.keys())}")
    differ = {n: (in_environment[n], in_pyproject[n]) for n in in_pyproject
              if in_environment[n] != in_pyproject[n]}
    assert not differ, f"version ranges differ (environment.yml, pyproject.toml): {differ}"


def test_runtime_dependencies_are_the_ones_the_course_promises():
    runtime = {parse_requirement(r)[0] for r in PYPROJECT["project"]["dependencies"]}
    assert runtime == {"numpy", "matplotlib", "ipywidgets", "scikit-learn"}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "jupyterlab" in {parse_requirement(r)[0] for r in extras["lab"]}
    test = dict(parse_requirement(r) for r in extras["test"])
    assert test["nbval"] == "==0.11.*", "conftest.py relies on nbval 0.11 internals"
    assert {"pytest", "hypothesis", "ruff", "playwright", "jupyterlab"} <= test.keys()


def test_python_versions_agree():
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    assert "python>=3.10" in ENV["conda"]


def test_environment_installs_the_course_package_editable():
    assert ENV["pip"].count("-e .") == 1


def test_version_is_single_sourced():
    assert bnutils.__version__ == PYPROJECT["project"]["version"]


# --- the two commands --------------------------------------------------------------------

def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```(?:\w+)?\n(.*?)```", readme, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make lab", "make test"]
    assert "conda env create -f environment.yml" in readme
    assert readme.index("make test") < readme.index("conda env create")


def test_ci_runs_the_readme_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^\s*(exec\s+)?make test\b", ci, re.M)
    assert "set -euo pipefail" in ci
    workflow = (ROOT / ".github" / "workflows" / "test.yml").read_text(encoding="utf-8")
    assert "bash .ci/run" in workflow
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load(workflow)["jobs"]["test"]["steps"]
    assert any(step.get("run") == "bash .ci/run" for step in steps)


def test_makefile_has_the_documented_targets():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    assert {"lab", "test", "refresh", "lint", "student", "clean"} <= targets
    # make lab / make test (re)build the venv when pyproject.toml changes
    assert re.search(r"^STAMP\s*:=\s*\$\(VENV\)/\.installed$", makefile, re.M)
    assert re.search(r"^\$\(STAMP\):\s*pyproject\.toml$", makefile, re.M)
    for target in ("lab", "test", "lint", "refresh", "student"):
        assert re.search(rf"^{target}:\s*\$\(STAMP\)$", makefile, re.M), target
