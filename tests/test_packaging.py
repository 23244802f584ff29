"""Packaging and set-up stay consistent: pyproject.toml, environment.yml, binder/, the
licences, README, Makefile, CI.

environment.yml (the conda route) must name the same packages, with the same version
ranges, as pyproject.toml's dependencies plus its extras lab, test and grade, and install
the course package itself with ``pip install -e .``; binder/environment.yml only the
runtime dependencies and the lab extra (the learner set), on one exact Python, with the
course installed by binder/postBuild without re-solving. The built wheel carries both
licence files and says MIT. The README starts with the two commands that CI runs; `make
lab` installs the learner set and `make test` adds the rest.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from email.parser import Parser
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
BINDER = parse_environment_yml((ROOT / "binder" / "environment.yml").read_text(encoding="utf-8"))
# What each environment file installs: pyproject.toml's runtime dependencies plus these extras.
ENVIRONMENT_EXTRAS = ("lab", "test", "grade")
BINDER_EXTRAS = ("lab",)
# binder/environment.yml also holds the build requirement, so that postBuild needs no network.
BINDER_ONLY = CONDA_ONLY | {"setuptools"}


def pyproject_requirements(extras=ENVIRONMENT_EXTRAS) -> dict[str, str]:
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return dict(parse_requirement(r) for r in reqs)


def environment_requirements(env=ENV, ignore=CONDA_ONLY) -> dict[str, str]:
    conda = dict(parse_requirement(r) for r in env["conda"])
    pip = dict(parse_requirement(r) for r in env["pip"] if not r.startswith("-e"))
    assert not conda.keys() & pip.keys(), "a package is listed for both conda and pip"
    return {name: spec for name, spec in (conda | pip).items() if name not in ignore}


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


def test_the_learner_set_is_only_jupyterlab_on_top_of_the_runtime():
    """make lab and Binder install runtime + lab: no test tool may creep into either."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {parse_requirement(r)[0] for r in extras["lab"]} == {"jupyterlab"}
    assert {parse_requirement(r)[0] for r in extras["grade"]} == {"nbgrader"}
    assert {parse_requirement(r)[0] for r in extras["hub"]} == {"jupyterhub", "jupyterhub-idle-culler"}
    assert set(extras) == {"lab", "test", "grade", "hub"}


# Where each test-extra package is used: its import name (or command) must appear there.
USED_IN = ("tests", "tools", "benchmarks", "conftest.py", "Makefile")
IMPORT_NAME = {"jupyterlab": "jupyterlab", "pytest": "pytest", "pytest-xdist": "xdist"}


def _repository_text() -> str:
    chunks = []
    for entry in USED_IN:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for f in files:
            text = f.read_text(encoding="utf-8")
            if f.name == "test_packaging.py":    # this file names every package; count its imports only
                text = "\n".join(re.findall(r"^\s*(?:import|from)\s.*$", text, re.M))
            chunks.append(text)
    return "\n".join(chunks)


def test_every_declared_test_tool_is_used():
    """A tool in the test extra that nothing imports or runs is weight for every install
    (pytest-xdist was, until the Makefile ran the tests on its workers)."""
    text = _repository_text()
    unused = []
    for requirement in PYPROJECT["project"]["optional-dependencies"]["test"]:
        name = parse_requirement(requirement)[0]
        module = IMPORT_NAME.get(name, name.replace("-", "_"))
        if not re.search(rf"\b{re.escape(module)}\b", text):
            unused.append(name)
    assert not unused, f"declared in the test extra but used nowhere in {USED_IN}: {unused}"


def test_jupyter_client_is_bounded_at_the_next_major_version():
    """tools/ patch a private jupyter_client method: allow the installed major version only."""
    test = dict(parse_requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"])
    spec = test.get("jupyter-client")
    assert spec is not None, "jupyter_client must be declared (with an upper bound) in the test extra"
    upper = re.search(r"<(\d+)(?:,|$)", spec)
    assert upper, f"jupyter_client has no upper bound: {spec!r}"
    installed_major = int(importlib.metadata.version("jupyter_client").split(".")[0])
    assert int(upper.group(1)) == installed_major + 1, (
        f"jupyter_client {spec!r}, installed major version {installed_major}: re-check "
        "the patched method in tools/ and move the bound")


def test_python_versions_agree():
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    assert "python>=3.10" in ENV["conda"]


def test_environment_installs_the_course_package_editable():
    assert ENV["pip"].count("-e .") == 1


def test_version_is_single_sourced():
    assert bnutils.__version__ == PYPROJECT["project"]["version"]


# --- Binder ------------------------------------------------------------------------------

def test_binder_installs_the_learner_set_from_pyproject():
    in_pyproject = pyproject_requirements(BINDER_EXTRAS)
    in_binder = environment_requirements(BINDER, ignore=BINDER_ONLY)
    assert sorted(in_binder) == sorted(in_pyproject), (
        "binder/environment.yml and pyproject.toml (runtime + lab) disagree: "
        f"only in binder: {sorted(in_binder.keys() - in_pyproject.keys())}, only in "
        f"pyproject: {sorted(in_pyproject.keys() - in_binder.keys())}")
    differ = {n: (in_binder[n], in_pyproject[n]) for n in in_pyproject if in_binder[n] != in_pyproject[n]}
    assert not differ, f"version ranges differ (binder/environment.yml, pyproject.toml): {differ}"


def test_binder_pins_one_python_minor_that_repo2docker_reads():
    """repo2docker reads the Python version with the pattern python\\s*=+\\s*([\\d.]*); a range
    such as python>=3.10 does not match, and it falls back to its own default."""
    pythons = [d for d in BINDER["conda"] if parse_requirement(d)[0] == "python"]
    assert len(pythons) == 1
    match = re.fullmatch(r"python\s*=+\s*(\d+\.\d+)", pythons[0])
    assert match, f"binder/environment.yml must pin one Python minor, e.g. python=3.11: {pythons[0]!r}"
    minimum = re.fullmatch(r">=(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)
    assert tuple(map(int, match.group(1).split("."))) >= tuple(map(int, minimum.split(".")))


def test_binder_builds_without_the_course_and_installs_it_without_resolving():
    # The environment does not name the repository, so repo2docker can reuse it across commits.
    assert BINDER["pip"] == [] and not any(d.startswith("-e") for d in BINDER["conda"])
    build = dict(parse_requirement(r) for r in PYPROJECT["build-system"]["requires"])
    binder = dict(parse_requirement(r) for r in BINDER["conda"])
    assert binder.get("setuptools") == build["setuptools"], "binder needs the build requirement"
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    commands = [line.strip() for line in post_build.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    installs = [c for c in commands if "pip install" in c]
    assert installs == ["python -m pip install --no-deps --no-build-isolation -e ."], installs


def test_readme_says_what_binder_builds():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "also what Binder builds" not in readme
    assert "binder/" in readme
    python = re.search(r"python\s*=+\s*(\d+\.\d+)", " ".join(BINDER["conda"])).group(1)
    binder_sentence = next(s for s in re.split(r"(?<=[.:])\s", readme) if "Binder" in s and "binder/" in s)
    assert python in binder_sentence, binder_sentence


# --- licences and citation ---------------------------------------------------------------

def test_licence_files_exist_and_say_what_they_cover():
    mit = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert mit.startswith("MIT License")
    assert re.search(r"^Copyright \(c\) \d{4} The Batch Normalization course contributors$", mit, re.M)
    content = (ROOT / "LICENSE-CONTENT.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in content and "Creative Commons Attribution 4.0 International" in content
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in content
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    licence = re.search(r"^## Licence\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert licence, "README needs a '## Licence' section"
    for words in ("LICENSE", "LICENSE-CONTENT.md", "MIT", "CC BY 4.0"):
        assert words in licence.group(1), words


def test_pyproject_declares_the_licence_the_pep_639_way():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE", "LICENSE-CONTENT.md"]
    assert all((ROOT / f).is_file() for f in project["license-files"])
    # PEP 639: no licence classifiers next to a licence expression (setuptools refuses them).
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
    build = dict(parse_requirement(r) for r in PYPROJECT["build-system"]["requires"])
    floor = re.fullmatch(r">=(\d+)(?:\.\d+)*", build["setuptools"])
    assert floor and int(floor.group(1)) >= 77, (
        f"setuptools {build['setuptools']!r}: license = 'MIT' and license-files need setuptools >= 77")


def test_citation_file_is_cff_1_2_and_agrees_with_pyproject():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert {"cff-version", "message", "title", "authors"} <= cff.keys()    # CFF's required keys
    assert cff["authors"] == [{"name": "The Batch Normalization course contributors"}]
    assert cff["version"] == PYPROJECT["project"]["version"]
    assert cff["license"] == ["MIT", "CC-BY-4.0"]                        # SPDX identifiers
    assert cff["type"] == "software"


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory):
    """The wheel of a copy of the package sources, built the way pip builds it for an
    install (an isolated build environment with pyproject's setuptools; pip's cache makes
    repeated builds take ~5 s here)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", *PYPROJECT["project"]["license-files"]):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "bnutils", src / "bnutils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--timeout", "30",
                          "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"building the wheel failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    wheels = list(out.glob("bnutils-*.whl"))
    assert len(wheels) == 1, wheels
    print(f"wheel built in {time.perf_counter() - start:.1f} s")
    return wheels[0]


@pytest.mark.slow          # builds the wheel (make check leaves it to make test)
def test_the_wheel_ships_both_licences_and_says_mit(built_wheel):
    version = PYPROJECT["project"]["version"]
    with zipfile.ZipFile(built_wheel) as wheel:
        names = set(wheel.namelist())
        metadata = Parser().parsestr(wheel.read(f"bnutils-{version}.dist-info/METADATA").decode())
        for name in PYPROJECT["project"]["license-files"]:
            member = f"bnutils-{version}.dist-info/licenses/{name}"
            assert member in names, f"{name} is not in the wheel"
            assert wheel.read(member) == (ROOT / name).read_bytes()
    assert metadata["License-Expression"] == "MIT"
    assert sorted(metadata.get_all("License-File")) == sorted(PYPROJECT["project"]["license-files"])
    assert metadata["License"] is None, "the deprecated License field is set"
    assert metadata["Requires-Python"] == PYPROJECT["project"]["requires-python"]
    # Only the package: no notebooks, tests or tools in the wheel.
    assert {n.split("/")[0] for n in names} == {"bnutils", f"bnutils-{version}.dist-info"}


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


MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
LEARNER_TARGETS = ("lab", "student")
FULL_TARGETS = ("test", "unit", "lint", "refresh", "nbgrader", "html", "slides", "bench")


def test_makefile_has_the_documented_targets():
    targets = set(re.findall(r"^([a-z][\w-]*):", MAKEFILE, re.M))
    assert {"lab", "test", "unit", "refresh", "lint", "student", "nbgrader", "clean"} <= targets
    documented = set(re.findall(r"^#   make ([\w-]+)", MAKEFILE, re.M))
    assert documented == targets - {"help"}, documented ^ (targets - {"help"})
    # Two installs, each (re)done when pyproject.toml changes: the learner set and the full set.
    assert re.search(r"^LAB_EXTRAS\s*:=\s*lab$", MAKEFILE, re.M)
    assert re.search(r"^FULL_EXTRAS\s*:=\s*lab,test,grade$", MAKEFILE, re.M)
    assert re.search(r"^LAB_STAMP\s*:=\s*\$\(VENV\)/\.installed-lab$", MAKEFILE, re.M)
    assert re.search(r"^FULL_STAMP\s*:=\s*\$\(VENV\)/\.installed-full$", MAKEFILE, re.M)
    for stamp in ("LAB_STAMP", "FULL_STAMP"):
        assert re.search(rf"^\$\({stamp}\):\s*pyproject\.toml$", MAKEFILE, re.M), stamp
    for target in LEARNER_TARGETS:
        assert re.search(rf"^{target}:\s*\$\(LAB_STAMP\)$", MAKEFILE, re.M), target
    for target in FULL_TARGETS:
        assert re.search(rf"^{target}:\s*\$\(FULL_STAMP\)$", MAKEFILE, re.M), target


def _dry_run(workdir: Path, target: str, *variables: str) -> str:
    # Without the caller's make variables: under `make check PYTEST_ARGS=...` MAKEFLAGS would
    # pass them (and "Entering directory" lines) to this make too.
    env = {k: v for k, v in os.environ.items()
           if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTEST_ARGS", "JOBS"}}
    run = subprocess.run(["make", "-n", target, *variables], cwd=workdir, capture_output=True, text=True,
                         timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_lab_installs_the_learner_set_and_make_test_adds_the_rest(tmp_path):
    """`make -n` in a scratch copy of the Makefile: what each command would install, from
    nothing, after the other, and after pyproject.toml changes."""
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv = tmp_path / ".venv"

    def installs(target):
        return re.findall(r'pip install -e "\.\[([\w,]*)\]"', _dry_run(tmp_path, target))

    assert installs("lab") == ["lab"]                   # from nothing: the learner set only
    assert installs("student") == ["lab"]
    assert installs("test") == ["lab,test,grade"]       # from nothing: everything
    venv.mkdir()
    old = time.time() - 100
    os.utime(tmp_path / "pyproject.toml", (old, old))
    (venv / ".installed-lab").touch()                   # after make lab ...
    assert installs("lab") == []
    assert installs("test") == ["lab,test,grade"]       # ... make test adds the test tools
    (venv / ".installed-full").touch()                  # after make test ...
    assert installs("lab") == [] and installs("test") == [] and installs("unit") == []
    (tmp_path / "pyproject.toml").touch()               # pyproject.toml changed: redo both
    assert installs("lab") == ["lab"] and installs("test") == ["lab,test,grade"]
    # make test records both installs, so a following make lab installs nothing
    full_rule = re.search(r"^\$\(FULL_STAMP\):.*?(?=^\S)", MAKEFILE, re.M | re.S).group(0)
    assert re.search(r"touch \$@ \$\(LAB_STAMP\)", full_rule)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_unit_runs_the_unit_tests_without_notebooks_or_browser(tmp_path):
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed-full").touch()
    (tmp_path / ".venv" / ".installed-lab").touch()
    workers = "-n auto --maxprocesses 4"
    pytest_line = [line for line in _dry_run(tmp_path, "unit").splitlines() if "bin/pytest" in line]
    assert pytest_line == [f'.venv/bin/pytest tests --ignore=tests/e2e -m "not e2e" {workers} '], pytest_line


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_check_is_lint_and_the_fast_tests_and_make_test_runs_everything(tmp_path):
    """make check (before every commit): ruff, then the tests marked neither slow nor e2e;
    make test: ruff, then everything, then the notebooks again with OpenBLAS on another
    kernel (make portability). All on pytest-xdist workers, a file per worker at a time (a
    notebook's cells in one kernel); JOBS=0 runs in one process."""
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed-full").touch()
    (tmp_path / ".venv" / ".installed-lab").touch()
    workers = "-n auto --maxprocesses 4"
    portability = re.compile(r"OPENBLAS_CORETYPE=(Prescott|ARMV8) \.venv/bin/pytest notebooks "
                             + re.escape(workers) + " $")
    for target, pytest_args in (("check", f'tests -m "not e2e and not slow" {workers} '),
                                ("test", f"{workers} ")):
        lines = _dry_run(tmp_path, target).splitlines()
        assert lines[0].startswith(".venv/bin/ruff check "), lines
        runs = [line for line in lines if "bin/pytest" in line]
        assert runs[0] == f".venv/bin/pytest {pytest_args}", runs
        assert runs[1:] == ([] if target == "check" else [runs[1]]), runs
        assert target == "check" or portability.fullmatch(runs[1]), runs
    assert [line for line in _dry_run(tmp_path, "portability").splitlines()
            if "bin/pytest" in line and portability.fullmatch(line)], "make portability"
    serial = [line for line in _dry_run(tmp_path, "check", "JOBS=0").splitlines() if "bin/pytest" in line]
    assert serial == ['.venv/bin/pytest tests -m "not e2e and not slow" -n 0 --maxprocesses 4 ']
    addopts = PYPROJECT["tool"]["pytest"]["ini_options"]["addopts"].split()
    assert addopts[addopts.index("--dist") + 1] == "loadfile"
    markers = PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]
    assert {m.split(":")[0] for m in markers} >= {"e2e", "slow"}


def test_readme_and_contributing_name_the_test_commands():
    """README's "Working on the course" names make check and make test in a block of their
    own; what they say make check selects is the Makefile's marker expression; every marker
    they name is declared; the commands they give to run one part alone name files and
    markers that exist; JOBS=0 is there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = re.search(r"^## Working on the course\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, "README needs a '## Working on the course' section"
    block = re.search(r"```(?:\w+)?\n(.*?)```", section.group(1), re.S)
    assert block, "README's 'Working on the course' has no block of commands"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make check", "make test"]
    declared = {m.split(":")[0] for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]}
    check_args = re.search(r'^CHECK_ARGS\s*:=.*-m "([^"]*)"', MAKEFILE, re.M).group(1)
    selected_out = set(re.findall(r"not (\w+)", check_args))
    for name, text in (("README", readme), ("CONTRIBUTING", contributing)):
        assert "make check" in text and "make test" in text and "JOBS=0" in text, name
        assert "under 90 s" in text, f"{name}: make check's budget"
        neither = re.search(r"marked neither `(\w+)`\s+nor `(\w+)`", text)
        assert neither and set(neither.groups()) == selected_out, (name, check_args)
        assert "SLOW_MODULES" in text, name
        for cmd in re.findall(r"`(\.venv/bin/pytest [^`]*)`", text):
            args = cmd.split()[1:]
            paths = [a for a in args if "/" in a or a.endswith(".ipynb")]
            assert paths, cmd
            for path in paths:
                assert list(ROOT.glob(path.replace("NN_", "[0-9][0-9]_"))), f"{name}: {cmd}: no {path}"
            for k, a in enumerate(args):
                if a == "-m":
                    assert set(re.findall(r"\w+", args[k + 1])) - {"not", "and", "or"} <= declared, cmd
    assert set(re.findall(r"marked `(\w+)`", readme)) == declared, "README names each marker"
    assert "SLOW_MODULES = {" in (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")


def test_readme_documents_make_slides_and_links_the_instructor_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`make slides`" in readme and "build/slides/index.html" in readme
    assert re.search(r"^slides: \$\(FULL_STAMP\)\n\t\$\(PY\) tools/slides\.py$", MAKEFILE, re.M)
    assert "](docs/instructor-guide.md)" in readme and (ROOT / "docs" / "instructor-guide.md").is_file()
