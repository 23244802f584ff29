"""Build an nbgrader course from the course notebooks: what `make nbgrader` runs.

    python tools/nbgrader_course.py                          # the course in nbgrader/
    python tools/nbgrader_course.py 03_batchnorm_forward     # some assignments only (names
    python tools/nbgrader_course.py notebooks/03_*.ipynb     #   or paths, as make refresh's NB)
    python tools/nbgrader_course.py --course ~/bn-grading    # somewhere else
    python tools/nbgrader_course.py --force                  # overwrite sources you edited

Each notebook becomes one assignment, named after it, in nbgrader's layout::

    <course>/nbgrader_config.py                   a copy of the repository's (if missing)
    <course>/source/03_batchnorm_forward/03_batchnorm_forward.ipynb    the instructor's
    <course>/release/03_batchnorm_forward/03_batchnorm_forward.ipynb   what learners get

The source is the course notebook stamped by tools/nbgrader_cells.py (a no-op once
notebooks/ are stamped), each graded test cell followed by its hidden tests
(tools/nbgrader_hidden.py; their inputs come from the course's own seed in
``source/.bn_hidden_seed``); the release is what ``nbgrader generate_assignment`` makes of it:
solutions replaced by stubs, outputs cleared, graded test cells locked; and then, as in
the student edition, the recall questions' collapsed answers left out. Grading then uses
nbgrader's own commands (README, "For instructors"). A source notebook you edited in the
course (e.g. different points) is not overwritten unless ``--force``; the manifest
``source/.bn_manifest.json`` records what this script wrote. Needs nbgrader (the
``grade`` extra, which `make test` installs).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import sysconfig
from pathlib import Path

import nbformat

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks, make_student, nbgrader_cells, nbgrader_hidden  # noqa: E402

ROOT = _notebooks.ROOT
CONFIG = ROOT / "nbgrader_config.py"
MANIFEST = ".bn_manifest.json"
#: The course's secret seed of the hidden tests' inputs, in source/ (never released).
SEED_FILE = ".bn_hidden_seed"


def course_seed(course: Path) -> int:
    """The course's seed of the hidden tests' inputs: drawn once, then kept in
    ``source/.bn_hidden_seed`` (so rewriting a source does not change it)."""
    path = course / "source" / SEED_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{secrets.randbits(48)}\n")
    return int(path.read_text().strip())


def add_hidden_tests(nb, seed: int) -> None:
    """Append to every graded test cell of ``nb`` (stamped) its hidden block
    (tools/nbgrader_hidden.py): in the source only, nbgrader leaves it out of the release."""
    module = nbgrader_hidden.check_module(nb)
    for cell in nb.cells:
        if nbgrader_cells.is_generated_test_cell(cell) and module is not None:
            cell.source = cell.source + "\n" + nbgrader_hidden.hidden_block(cell.source, module, seed)


def write_sources(notebooks: list[Path], course: Path, force: bool = False, log=print) -> list[Path]:
    """Write the stamped source of each notebook, with its hidden tests, into
    ``course/source/<name>/``.

    Returns the source notebooks that were kept because they were edited in the course
    (empty when all were written). Every notebook is stamped before anything is written.
    """
    seed = course_seed(course)
    rendered = {}
    for path in notebooks:
        nb, _ = nbgrader_cells.stamp(nbformat.read(path, as_version=4), path.name)
        add_hidden_tests(nb, seed)
        rendered[path.stem] = (nbformat.writes(nb) + "\n").encode()
    source_dir = course / "source"
    source_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = source_dir / MANIFEST
    manifest = _notebooks.read_manifest(manifest_path, warn=lambda exc: log(
        f"warning: {manifest_path} is damaged ({type(exc).__name__}: {exc}); every existing "
        f"source notebook counts as edited and is kept (--force overwrites them)"))
    kept = []
    for name, data in rendered.items():
        target = source_dir / name / f"{name}.ipynb"
        if not force and _notebooks.is_edited(target, data, manifest.get(name)):
            kept.append(target)
            continue
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(data)
        manifest[name] = _notebooks.digest(data)
        log(f"wrote {target.relative_to(course)}")
    _notebooks.write_manifest(manifest_path, manifest)
    return kept


def nbgrader_api(course: Path):
    """An ``NbGraderAPI`` for the course directory, configured by its nbgrader_config.py."""
    # nbgrader creates the gradebook by running the `alembic` command found on PATH; when
    # .venv/bin/python runs without the venv activated, that is the one next to it.
    scripts = sysconfig.get_path("scripts")
    if shutil.which("alembic") is None and Path(scripts, "alembic").exists():
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    coursedir = CourseDirectory(config=config, root=str(course))
    return NbGraderAPI(coursedir=coursedir, config=config)


def strip_recall_answers(release: Path) -> None:
    """Leave the recall questions' answers out of a released notebook (learners get it).

    Markdown cells carry no nbgrader checksum, so editing them keeps the release valid.
    """
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = make_student.strip_answers(cell.source)
    nbformat.write(nb, release)


def generate(course: Path, assignments: list[str], log=print) -> list[str]:
    """Run ``nbgrader generate_assignment`` for each assignment; return those that failed."""
    api = nbgrader_api(course)
    failed = []
    for name in assignments:
        result = api.generate_assignment(name)
        if result["success"]:
            strip_recall_answers(course / "release" / name / f"{name}.ipynb")
            log(f"released {name} in {Path('release') / name}")
        else:
            failed.append(name)
            log(f"nbgrader generate_assignment {name} failed:\n{result.get('error') or result.get('log')}")
    return failed


def build(notebooks: list[Path], course: Path, force: bool = False, log=print) -> int:
    """Sources, config and releases for ``notebooks`` in ``course``; returns an exit code."""
    course.mkdir(parents=True, exist_ok=True)
    config = course / "nbgrader_config.py"
    if not config.exists():
        shutil.copyfile(CONFIG, config)
        log(f"wrote {config.relative_to(course)}")
    kept = write_sources(notebooks, course, force=force, log=log)
    for path in kept:
        log(f"kept {path.relative_to(course)}: edited in the course (--force overwrites it)")
    failed = generate(course, [p.stem for p in notebooks], log=log)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("assignments", nargs="*",
                        help="notebook names or paths, e.g. 03_batchnorm_forward (default: all)")
    parser.add_argument("--course", type=Path, default=ROOT / "nbgrader",
                        help="the nbgrader course directory (default: nbgrader/)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite source notebooks edited in the course")
    args = parser.parse_args(argv)
    available = {p.stem: p for p in _notebooks.discover()}
    names = [Path(a).name.removesuffix(".ipynb") for a in args.assignments] or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"error: no notebook named {', '.join(unknown)} in notebooks/", file=sys.stderr)
        return 2
    try:
        return build([available[n] for n in names], args.course.resolve(), force=args.force)
    except nbgrader_cells.ExerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
