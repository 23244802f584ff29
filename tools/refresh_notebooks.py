"""Re-execute notebooks in place and store their outputs, the reference nbval compares with.

    python tools/refresh_notebooks.py notebooks/*.ipynb      # what `make refresh` runs
    python tools/refresh_notebooks.py notebooks/03_*.ipynb   # one notebook (make refresh NB=...)

Each notebook runs top to bottom in a fresh kernel of *this* Python (like nbval's
--nbval-current-env), as "Restart Kernel and Run All" would, with the hang policy of
``tools/_notebooks.py``, and is saved so that a refresh without code changes gives no
diff (``_notebooks.tidy``):

* no per-cell timing metadata and no widget state (``metadata.widgets``);
* widget views get stable model ids (the stored ids refer to a kernel that is gone
  anyway, since no widget state is saved);
* kernelspec ``python3``; ``language_info`` without the Python version;
* cells tagged ``skip-execution`` are not run and keep no outputs; a cell tagged
  ``raises-exception`` may raise.

Any other error - a cell that raises, a notebook that hangs ``ATTEMPTS`` times, a file
that is missing or not a notebook - stops only that notebook and leaves its file
untouched; the others are refreshed, and the failures are listed at the end.

Prints the execution time of each notebook (the course's runtime budget: each one
well under 30 s under nbval). Exit status 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks  # noqa: E402
from tools._notebooks import NotebookError, tidy  # noqa: E402


def refresh(path: Path, timeout: int = 180, notebook_timeout: int = 900, log=print) -> float:
    """Execute one notebook in place; return the wall time in seconds.

    Raises ``NotebookError`` (the file untouched) if it cannot be read or executed.
    """
    path = Path(path)
    try:
        nbformat.validate(nbformat.read(path, as_version=4))
    except Exception as err:    # missing, not JSON, not a notebook
        raise NotebookError(f"{path}: not a readable notebook ({type(err).__name__}: "
                            f"{str(err)[:300]})") from None
    with tempfile.TemporaryDirectory(prefix="bn-refresh-") as tmp:
        executed = Path(tmp) / path.name
        result = _notebooks.run(path, executed, workdir=path.parent, timeout=timeout,
                                notebook_timeout=notebook_timeout, log=log)
        nb = tidy(nbformat.read(executed, as_version=4))
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return result.elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=180,
                        help="seconds one cell may run (default 180; no course cell needs 30)")
    parser.add_argument("--notebook-timeout", type=int, default=900,
                        help="seconds one notebook may run (default 900)")
    args = parser.parse_args(argv)
    warn = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    failed = []
    for path in args.notebooks:
        try:
            elapsed = refresh(path, timeout=args.timeout, notebook_timeout=args.notebook_timeout,
                              log=warn)
        except NotebookError as err:
            failed.append(path)
            warn(f"FAILED    {path}: not saved\n{err}")
            continue
        print(f"refreshed {path} in {elapsed:.1f} s", flush=True)
    if failed:
        warn(f"{len(failed)} of {len(args.notebooks)} notebook(s) failed and were not saved: "
             f"{', '.join(map(str, failed))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
