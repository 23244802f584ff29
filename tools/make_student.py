"""Build the student edition: every notebook with its exercise solutions replaced by stubs.

    python tools/make_student.py              # notebooks/*.ipynb -> student/
    python tools/make_student.py --force      # also overwrite student notebooks you edited

In each code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (the
nbgrader markers) become one ``raise NotImplementedError(...)`` line that names the
exercise, at the indentation of the BEGIN marker. Solution regions must sit inside a
function body, so the notebook still runs to the end: its self-checks print
"✗ … not done yet" instead of crashing. Outputs and execution counts are cleared.

A learner's work is never lost: ``student/.manifest.json`` records a hash of every file
this script wrote. A student notebook whose contents no longer match (or that the
manifest does not know) counts as edited and is not overwritten unless ``--force``
(``make student FORCE=1``) is given; even then the edited file is first copied to
``student/.backup/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MANIFEST = ".manifest.json"


class SolutionMarkerError(ValueError):
    """A notebook's solution markers are unbalanced or outside a function body."""


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


def student_notebook(nb: nbformat.NotebookNode, name: str) -> tuple[nbformat.NotebookNode, int]:
    """Return the student version of a notebook (a new object) and its number of exercises."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy
    total = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source, n = strip_solutions(cell.source, f"{name}, cell {index}")
            total += n
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif BEGIN in cell.source:
            raise SolutionMarkerError(f"{name}, cell {index}: solution markers belong in code cells")
    nb.metadata.pop("widgets", None)
    return nb, total


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(sources: list[Path], out_dir: Path, force: bool = False, log=print) -> list[Path]:
    """Write the student edition of ``sources`` into ``out_dir``.

    Returns the list of student notebooks that were *not* written because they were
    edited since they were generated (empty when everything was written).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    # Transform everything first, so a marker error leaves student/ untouched.
    rendered = {}
    for src in sources:
        nb, n = student_notebook(nbformat.read(src, as_version=4), src.name)
        rendered[src.name] = (nbformat.writes(nb) + "\n").encode(), n
    refused = []
    for name, (data, n) in rendered.items():
        target = out_dir / name
        if target.exists():
            current = target.read_bytes()
            edited = manifest.get(name) != _digest(current)
            if edited and current != data:
                if not force:
                    refused.append(target)
                    continue
                backup = out_dir / ".backup" / f"{target.stem}.{time.strftime('%Y%m%d-%H%M%S')}.ipynb"
                backup.parent.mkdir(exist_ok=True)
                shutil.copy2(target, backup)
                log(f"backed up your edited {target.name} to {backup.relative_to(out_dir.parent)}")
        target.write_bytes(data)
        manifest[name] = _digest(data)
        log(f"wrote {target.relative_to(out_dir.parent)} ({n} exercise{'s' if n != 1 else ''})")
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return refused


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to convert (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="output folder")
    parser.add_argument("--force", action="store_true",
                        help="overwrite student notebooks you edited (a backup is kept)")
    args = parser.parse_args(argv)
    sources = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        print("no notebooks found", file=sys.stderr)
        return 1
    try:
        refused = build(sources, args.out.resolve(), force=args.force)
    except SolutionMarkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if refused:
        print("\nNot overwritten - you edited these since they were generated:", file=sys.stderr)
        for path in refused:
            print(f"  {path}", file=sys.stderr)
        print("Your work is kept. To regenerate them anyway (a backup is made first), run\n"
              "  make student FORCE=1", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
