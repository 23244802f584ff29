#!/usr/bin/env python3
"""The supported-versions matrix: the unit tests and every notebook (strict nbval) on the
oldest and on the newest versions that pyproject.toml accepts.

    make test-matrix                    # both sides
    make test-matrix MATRIX=oldest      # one side
    python tools/version_matrix.py [oldest] [newest] [--dry-run] [-- PYTEST_ARGS ...]

oldest  the Python and the package versions that tests/constraints-oldest.txt names
        (pyproject.toml's lower bounds; tests/test_version_matrix.py keeps the two equal),
        installed with pip's ``-c``.
newest  the newest Python that pyproject.toml's classifiers list, and the newest release
        of every package: pip upgrades them on every run, so a new release is tested the
        day it appears.

Each side has its own virtual environment, ``.venv-matrix/<side>/`` (git ignores it),
with the same install as ``make test`` (``.[lab,test,grade]``). It is built from nothing
the first time, and again when pyproject.toml, the constraints file or the Python
changes (or INSTALL_RECIPE below). Then ``pytest tests --ignore=tests/e2e -m "not e2e" notebooks`` runs in it
from the repository root, with the repository's conftest.py: every unit test and every
notebook under strict nbval. The browser tests (tests/e2e) do not run here: they test
JupyterLab in Chromium, which `make test` does on the main environment.

The Pythons: ``pythonX.Y`` on PATH, else the newest pyenv build of X.Y
($PYENV_ROOT/versions/X.Y.*, default ~/.pyenv), else none; name one with
OLDEST_PYTHON=/path/to/python3.10 (NEWEST_PYTHON for the other side). A side whose Python
is not on this machine is skipped with a message saying how to get it; under CI=true
that is a failure, as a skipped browser test is (tests/conftest.py).

Output: pytest's own, also written to ``.venv-matrix/<side>.log``; the versions each side
ran, in ``.venv-matrix/<side>-versions.txt`` (pip freeze). The last line printed is the
sum over the sides, ``matrix: N passed, N failed, N skipped``.

Standard library only: it runs on the Python that runs make (3.10 or newer).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "tests" / "constraints-oldest.txt"
MATRIX_DIR = ROOT / ".venv-matrix"
SIDES = ("oldest", "newest")
# The same install as `make test` (Makefile's FULL_EXTRAS).
EXTRAS = "lab,test,grade"
# Bump when the way a venv is built changes: every venv is then built anew.
INSTALL_RECIPE = "1: venv, upgrade pip, pip install [-c constraints | --upgrade --upgrade-strategy eager] -e"
# Every unit test and every notebook; not the browser tests.
PYTEST_TARGETS = ["tests", "--ignore=tests/e2e", "-m", "not e2e", "notebooks"]
# The versions the summary names, per side.
SHOWN = ("numpy", "matplotlib", "scikit-learn", "ipywidgets", "scipy", "jupyterlab", "ipykernel", "nbval")
# What a candidate interpreter prints: its version, and whether it can make a venv with pip.
PROBE = ("import platform, importlib.util as u; "
         "print(platform.python_version(), 'venv' if u.find_spec('ensurepip') else 'no-ensurepip')")


def running_in_ci() -> bool:
    """True when the environment variable CI says so (true/1/yes, any case), as in tests/conftest.py."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


# --- what each side is --------------------------------------------------------------------

def oldest_python(constraints: Path = CONSTRAINTS) -> str:
    """The Python minor that the constraints file names on its ``# python X.Y`` line."""
    match = re.search(r"^#\s*python\s+(\d+\.\d+)\b", constraints.read_text(encoding="utf-8"), re.M)
    if match is None:
        raise SystemExit(f"{constraints}: no '# python X.Y' line naming the oldest Python")
    return match.group(1)


def newest_python(pyproject: Path = PYPROJECT) -> str:
    """The newest Python minor that pyproject.toml's classifiers list."""
    listed = re.findall(r'"Programming Language :: Python :: (\d+)\.(\d+)"',
                        pyproject.read_text(encoding="utf-8"))
    if not listed:
        raise SystemExit(f"{pyproject}: no 'Programming Language :: Python :: X.Y' classifier")
    major, minor = max((int(a), int(b)) for a, b in listed)
    return f"{major}.{minor}"


def pinned(constraints: Path = CONSTRAINTS) -> dict[str, str]:
    """{package: version} of the constraints file's ``name==version`` lines."""
    pins = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([\w.]+)", line)
            if match is None:
                raise SystemExit(f"{constraints}: expected name==version, got {line!r}")
            pins[match.group(1).lower()] = match.group(2)
    return pins


def find_python(minor: str, override: str | None) -> tuple[str | None, str, list[str]]:
    """(interpreter, its full version, where we looked) for Python ``minor`` ("3.10").

    ``override`` (OLDEST_PYTHON/NEWEST_PYTHON) is the only candidate when given. Each
    candidate is run once: a pyenv shim of a version that is not active fails, and a
    Debian Python without python3.X-venv cannot make a venv with pip.
    """
    if override:
        candidates = [override]
        looked = [override]
    else:
        name = f"python{minor}"
        on_path = shutil.which(name)
        pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        builds = sorted(glob.glob(str(pyenv_root / "versions" / f"{minor}.*" / "bin" / name)),
                        key=lambda p: [int(x) if x.isdigit() else -1
                                       for x in re.split(r"[.]", Path(p).parents[1].name)],
                        reverse=True)
        candidates = ([on_path] if on_path else []) + builds
        looked = [f"{name} on PATH", str(pyenv_root / "versions" / f"{minor}.*" / "bin" / name)]
    for candidate in candidates:
        try:
            run = subprocess.run([candidate, "-c", PROBE], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        words = run.stdout.split()
        if run.returncode == 0 and words[:1] and words[0].startswith(minor + ".") and words[1:] == ["venv"]:
            return candidate, words[0], looked
    return None, "", looked


def stamp_of(side: str, version: str) -> str:
    """What the side's venv was built from: when it changes, the venv is built anew."""
    digest = hashlib.sha256()
    for path in (PYPROJECT, CONSTRAINTS):
        digest.update(path.read_bytes())
    digest.update(f"{INSTALL_RECIPE} .[{EXTRAS}] {side} {version}".encode())
    return digest.hexdigest()


# --- running ------------------------------------------------------------------------------

class Runner:
    """Runs commands, or only prints them (--dry-run)."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run

    def __call__(self, cmd: list[str], log: Path | None = None, env: dict | None = None) -> int:
        print("+ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
        if self.dry_run:
            return 0
        if log is None:
            return subprocess.run(cmd, cwd=ROOT, env=env).returncode
        with open(log, "a", encoding="utf-8") as out:
            run = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        return run.returncode

    def tee(self, cmd: list[str], log: Path, env: dict) -> tuple[int, str]:
        """Run cmd, showing its output and writing it to log; return (exit code, last line)."""
        print("+ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
        if self.dry_run:
            return 0, ""
        last = ""
        with open(log, "w", encoding="utf-8", buffering=1) as out, subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, bufsize=1) as proc:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                out.write(line)
                if line.strip():
                    last = line.strip()
        return proc.returncode, last


def install(side: str, python: str, version: str, venv: Path, run: Runner) -> str | None:
    """Build or update the side's venv; return an error message, or None."""
    vpy = venv / "bin" / "python"
    stamp = venv / ".matrix-stamp"
    want = stamp_of(side, version)
    fresh = not (stamp.is_file() and stamp.read_text(encoding="utf-8") == want and vpy.exists())
    pip_log = MATRIX_DIR / f"{side}-pip.log"
    if fresh:
        print(f"{side}: building {venv.relative_to(ROOT)} from nothing (Python {version}; "
              f"2-4 min; log: {pip_log.relative_to(ROOT)}) ...", flush=True)
        if not run.dry_run:
            shutil.rmtree(venv, ignore_errors=True)
            MATRIX_DIR.mkdir(exist_ok=True)
            pip_log.write_text("", encoding="utf-8")
        if run([python, "-m", "venv", str(venv)], log=pip_log):
            return f"'{python} -m venv' failed (log: {pip_log})"
        if run([str(vpy), "-m", "pip", "install", "--upgrade", "pip"], log=pip_log):
            return f"upgrading pip failed (log: {pip_log})"
    elif side == "newest":
        print(f"{side}: upgrading every package to its newest release (log: {pip_log.relative_to(ROOT)}) ...",
              flush=True)
    else:
        print(f"{side}: {venv.relative_to(ROOT)} is up to date", flush=True)
        return None
    cmd = [str(vpy), "-m", "pip", "install"]
    if side == "oldest":
        cmd += ["-c", str(CONSTRAINTS.relative_to(ROOT))]
    else:
        cmd += ["--upgrade", "--upgrade-strategy", "eager"]
    cmd += ["-e", f".[{EXTRAS}]"]
    if run(cmd, log=pip_log):
        if not run.dry_run:
            print("".join(pip_log.read_text(encoding="utf-8").splitlines(keepends=True)[-25:]))
        return f"pip install failed (log: {pip_log})"
    if side == "oldest" and not run.dry_run:
        wrong = installed_versions(vpy, pinned())
        wrong = {n: v for n, v in wrong.items() if v != pinned()[n]}
        if wrong:
            return f"installed versions differ from {CONSTRAINTS.name}: {wrong}"
    if not run.dry_run:
        stamp.write_text(want, encoding="utf-8")
    return None


def installed_versions(vpy: Path, names) -> dict[str, str]:
    code = ("import importlib.metadata as m, sys\n"
            "for n in sys.argv[1:]:\n"
            "    try: print(n, m.version(n))\n"
            "    except m.PackageNotFoundError: print(n, '-')\n")
    out = subprocess.run([str(vpy), "-c", code, *names], capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def counts(summary: str) -> dict[str, int]:
    """{outcome: n} from pytest's closing line ("=== 3 failed, 2900 passed in 612.3s ===")."""
    found = {}
    for n, word in COUNT.findall(summary):
        found["errors" if word.startswith("error") else word] = int(n)
    return found


def test_side(side: str, minor: str, override: str | None, pytest_args: list[str], run: Runner) -> dict:
    """Build the side's venv and run its tests. Returns what the summary prints."""
    result = {"side": side, "minor": minor, "counts": {}, "status": "failed", "note": ""}
    python, version, looked = find_python(minor, override)
    if python is None:
        variable = f"{side.upper()}_PYTHON"
        result["status"] = "missing"
        result["note"] = (f"no Python {minor} on this machine (looked for: {', '.join(looked)}). "
                          f"Install it (pyenv install {minor}, or your system's python{minor} with its "
                          f"venv module), or name one: make test-matrix {variable}=/path/to/python{minor}")
        return result
    venv = MATRIX_DIR / side
    start = time.perf_counter()
    error = install(side, python, version, venv, run)
    result["install_s"] = time.perf_counter() - start
    if error:
        result["note"] = error
        return result
    vpy = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # Build Matplotlib's font cache before any notebook runs (as make test does).
    run([str(vpy), "-c", "import matplotlib.pyplot"], env=env)
    if not run.dry_run:
        freeze = subprocess.run([str(vpy), "-m", "pip", "freeze", "--exclude-editable"],
                                capture_output=True, text=True, check=True).stdout
        (MATRIX_DIR / f"{side}-versions.txt").write_text(f"# Python {version}\n{freeze}", encoding="utf-8")
        shown = installed_versions(vpy, SHOWN)
        result["versions"] = f"Python {version}, " + ", ".join(f"{n} {v}" for n, v in shown.items())
        print(f"{side}: {result['versions']}", flush=True)
    start = time.perf_counter()
    code, last = run.tee([str(vpy), "-m", "pytest", *PYTEST_TARGETS, *pytest_args],
                         MATRIX_DIR / f"{side}.log", env)
    result["pytest_s"] = time.perf_counter() - start
    result["counts"] = counts(last)
    result["status"] = "passed" if code == 0 else "failed"
    result["note"] = last
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sides", nargs="*", metavar="SIDE", help="oldest, newest or both (the default)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would run (which Pythons, which commands); change nothing")
    argv = sys.argv[1:] if argv is None else argv
    pytest_args = []
    if "--" in argv:
        at = argv.index("--")
        argv, pytest_args = argv[:at], argv[at + 1:]
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sides) - set(SIDES))
    if unknown:
        parser.error(f"unknown side {', '.join(unknown)}: choose from {', '.join(SIDES)}")
    sides = [s for s in SIDES if s in (args.sides or SIDES)]
    run = Runner(args.dry_run)
    minors = {"oldest": oldest_python(), "newest": newest_python()}
    overrides = {side: os.environ.get(f"{side.upper()}_PYTHON") or None for side in SIDES}
    results = [test_side(side, minors[side], overrides[side], pytest_args, run) for side in sides]

    print("\n=== test-matrix: the oldest and the newest supported versions ===")
    total = {"passed": 0, "failed": 0, "skipped": 0}
    failed = False
    for r in results:
        if r["status"] == "missing":
            if running_in_ci():
                failed = True
                print(f"{r['side']}: FAILED under CI=true: {r['note']}")
            else:
                print(f"{r['side']}: SKIPPED: {r['note']}")
            continue
        failed |= r["status"] != "passed"
        for key in ("passed", "failed", "skipped"):
            total[key] += r["counts"].get(key, 0)
        total["failed"] += r["counts"].get("errors", 0)
        times = ", ".join(f"{what} {r[key]:.0f} s" for what, key in (("install", "install_s"),
                                                                     ("tests", "pytest_s")) if key in r)
        print(f"{r['side']}: {r['status']} ({times}): {r.get('versions', '')}\n    {r['note']}")
    if failed and not total["failed"]:
        total["failed"] = 1             # an install or a missing Python under CI: not a pass
    print(f"matrix: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
