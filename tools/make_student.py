"""Build the student edition: every notebook with its exercise solutions replaced by stubs.

    python tools/make_student.py              # notebooks/*.ipynb -> student/
    python tools/make_student.py --force      # also overwrite student notebooks you edited

In each code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (the
nbgrader markers) become one ``raise NotImplementedError(...)`` line that names the
exercise, at the indentation of the BEGIN marker. Solution regions must sit inside a
function body, so the notebook still runs to the end: its self-checks print
"✗ … not done yet" instead of crashing. Outputs and execution counts are cleared.
Two things an instructor needs and a learner must not see are left out: nbgrader's
graded test cells (their ``assert`` would stop a learner's Run All at the first
unfinished exercise; the ✓/✗ line already says how the learner did) and the answers to
the recall questions (each a ``<details>`` block whose summary says "Answer").

A learner's work is never lost: ``student/.manifest.json`` records a hash of every file
this script wrote. A student notebook whose contents no longer match (or that the
manifest does not know) counts as edited and is not overwritten unless ``--force``
(``make student FORCE=1``) is given; even then the edited file is first copied to
``student/.backup/``. Keeping edited notebooks is the normal case, not an error: the
script says which it kept and exits 0. A damaged manifest counts as no manifest (every
existing notebook is kept, with a warning); a folder that cannot be written is reported
before any file is written (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks, nbgrader_cells  # noqa: E402

ROOT = _notebooks.ROOT
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MANIFEST = ".manifest.json"


class SolutionMarkerError(ValueError):
    """A notebook's solution markers are unbalanced or outside a function body."""


class StudentEditionError(RuntimeError):
    """The student edition cannot be written (e.g. a read-only folder); nothing was written."""


def _exercise_label(lines: list[str], begin_index: int) -> str:
    """Name the exercise that a solution region belongs to, from the enclosing ``def``.

    Uses ``Exercise N.M`` from the function's docstring when there is one.
    """
    for i in range(begin_index - 1, -1, -1):
        m = re.match(r"\s*def\s+(\w+)\s*\(", lines[i])
        if m:
            doc = " ".join(lines[i + 1:begin_index])
            ex = re.search(r"Exercise\s+\d+(?:\.\d+)*", doc)
            return f"{ex.group(0)} ({m.group(1)})" if ex else m.group(1)
    return "this exercise"


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution region of one cell's source by a stub.

    Parameters
    ----------
    source : str
        The cell's source.
    where : str
        Names the cell in error messages (e.g. ``"03_batchnorm_forward.ipynb, cell 12"``).

    Returns
    -------
    new_source : str
    regions : int
        How many solution regions were replaced.
    """
    lines = source.split("\n")
    out, regions, i = [], 0, 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped == END:
            raise SolutionMarkerError(f"{where}, line {i + 1}: {END} without a {BEGIN} before it")
        if stripped != BEGIN:
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        if not indent:
            raise SolutionMarkerError(
                f"{where}, line {i + 1}: a solution region must sit inside a function body "
                f"(indented), so that the student edition still runs; found it at the top level")
        try:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == END)
        except StopIteration:
            raise SolutionMarkerError(f"{where}, line {i + 1}: {BEGIN} without a matching {END}") from None
        nested = [j for j in range(i + 1, end) if lines[j].strip() == BEGIN]
        if nested:
            raise SolutionMarkerError(f"{where}, line {nested[0] + 1}: nested {BEGIN}")
        label = _exercise_label(lines, i)
        out.append(f'{indent}raise NotImplementedError("{label}: replace this line with your solution")')
        regions += 1
        i = end + 1
    return "\n".join(out), regions


# A recall question's answer, <details><summary>Answer</summary> … </details>, and an
# exercise's worked answer revealed after the attempt (<summary>The answer / The
# derivation / The formula …): both give away what a class is graded on.
ANSWER_BLOCK = re.compile(r"\n?<details>\s*<summary>\s*(?:<b>)?\s*"
                          r"(?:Answer|The (?:answer|derivation|formula))\b.*?</details>[ \t]*\n?",
                          re.S | re.I)


def strip_answers(markdown: str) -> str:
    """The markdown without the collapsed answers to its recall questions."""
    return ANSWER_BLOCK.sub("\n", markdown).rstrip() + ("\n" if markdown.endswith("\n") else "")


def student_notebook(nb: nbformat.NotebookNode, name: str,
                     clear_outputs: bool = True) -> tuple[nbformat.NotebookNode, int]:
    """Return the student version of a notebook (a new object) and its number of exercises:
    solutions stubbed, graded test cells and recall answers left out, and (unless
    ``clear_outputs`` is false, as for the student site's pages) every output cleared."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy
    nb.cells = [cell for cell in nb.cells if not nbgrader_cells.is_graded_test(cell)]
    total = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source, n = strip_solutions(cell.source, f"{name}, cell {index}")
            total += n
        elif BEGIN in cell.source:
            raise SolutionMarkerError(f"{name}, cell {index}: solution markers belong in code cells")
        elif cell.cell_type == "markdown":
            cell.source = strip_answers(cell.source)
    return (_notebooks.clear_outputs(nb) if clear_outputs else nb), total


def read_manifest(manifest_path: Path, log=print) -> dict:
    """The hashes this script recorded (``_notebooks.read_manifest``); a damaged manifest
    is reported: every existing student notebook then counts as edited and is kept."""
    return _notebooks.read_manifest(manifest_path, warn=lambda exc: log(
        f"warning: {manifest_path} is damaged ({type(exc).__name__}: {exc}); every "
        f"existing student notebook counts as edited and is kept (make student FORCE=1 "
        f"regenerates them, backing up each one first)"))


def _unwritable(paths: list[Path]) -> list[Path]:
    """Of the files about to be written, those that cannot be (the file or its folder)."""
    bad = []
    for path in paths:
        target = path if path.exists() else path.parent
        while not target.exists():
            target = target.parent
        if not os.access(target, os.W_OK) or (target.is_dir() and not os.access(target, os.X_OK)):
            bad.append(path)
    return bad


def build(sources: list[Path], out_dir: Path, force: bool = False, log=print) -> list[Path]:
    """Write the student edition of ``sources`` into ``out_dir``.

    Returns the list of student notebooks that were *not* written because they were
    edited since they were generated (empty when everything was written). Raises
    ``StudentEditionError`` before writing anything if a file cannot be written.
    """
    manifest_path = out_dir / MANIFEST
    manifest = read_manifest(manifest_path, log)
    # Transform everything first, so a marker error leaves student/ untouched.
    rendered = {}
    for src in sources:
        nb, n = student_notebook(nbformat.read(src, as_version=4), src.name)
        rendered[src.name] = (nbformat.writes(nb) + "\n").encode(), n
    # Then decide what to write, and check it can all be written, before writing anything.
    plan, refused, backups = [], [], []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name, (data, n) in rendered.items():
        target = out_dir / name
        if _notebooks.is_edited(target, data, manifest.get(name)):
            if not force:
                refused.append(target)
                continue
            backups.append((target, out_dir / ".backup" / f"{target.stem}.{stamp}.ipynb"))
        plan.append((target, data, n))
    writes = [manifest_path] + [t for t, _, _ in plan] + [b for _, b in backups]
    bad = _unwritable(writes) if out_dir.exists() else _unwritable([out_dir])
    if bad:
        raise StudentEditionError(
            f"cannot write {bad[0]} (permission denied); nothing was written. Make "
            f"{out_dir} writable (chmod -R u+w {out_dir}) or choose another folder with --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for target, backup in backups:
            backup.parent.mkdir(exist_ok=True)
            shutil.copy2(target, backup)
            log(f"backed up your edited {target.name} to {backup.relative_to(out_dir.parent)}")
        for target, data, n in plan:
            target.write_bytes(data)
            manifest[target.name] = _notebooks.digest(data)
            log(f"wrote {target.relative_to(out_dir.parent)} ({n} exercise{'s' if n != 1 else ''})")
        _notebooks.write_manifest(manifest_path, manifest)
    except OSError as exc:      # e.g. a full disk: say what happened, without a traceback
        raise StudentEditionError(f"writing the student edition failed: {exc}") from None
    return refused


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to convert (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="output folder")
    parser.add_argument("--force", action="store_true",
                        help="overwrite student notebooks you edited (a backup is kept)")
    args = parser.parse_args(argv)
    sources = args.notebooks or _notebooks.discover()
    if not sources:
        print("no notebooks found", file=sys.stderr)
        return 1
    warn = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    try:
        refused = build(sources, args.out.resolve(), force=args.force,
                        log=lambda msg: (warn if msg.startswith("warning:") else print)(msg))
    except SolutionMarkerError as exc:
        warn(f"error: {exc}")
        return 2
    except StudentEditionError as exc:
        warn(f"error: {exc}")
        return 1
    if refused:
        print(f"\nKept your work: {len(refused)} notebook(s) you edited since they were "
              f"generated were not overwritten:")
        for path in refused:
            print(f"  {path}")
        print("To regenerate them anyway (each is backed up first), run\n"
              "  make student FORCE=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
