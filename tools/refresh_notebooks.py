"""Re-execute notebooks in place and store their outputs, the reference nbval compares with.

    python tools/refresh_notebooks.py notebooks/*.ipynb      # what `make refresh` runs
    python tools/refresh_notebooks.py notebooks/03_*.ipynb   # one notebook (make refresh NB=...)

Each notebook runs top to bottom in a fresh kernel of *this* Python (like nbval's
--nbval-current-env), as "Restart Kernel and Run All" would, and is saved so that a
refresh without code changes gives no diff:

* no per-cell timing metadata and no widget state (``metadata.widgets``);
* widget views get stable model ids (the stored ids refer to a kernel that is gone
  anyway, since no widget state is saved);
* kernelspec ``python3``; ``language_info`` without the Python version;
* cells tagged ``skip-execution`` are not run and keep no outputs; a cell tagged
  ``raises-exception`` may raise; any other error stops the refresh of that notebook
  and leaves the file untouched.

Prints the execution time of each notebook (the course's runtime budget: each one
well under 30 s under nbval). Exit status 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SKIP_TAG = "skip-execution"


class CurrentEnvKernelSpecManager(KernelSpecManager):
    """Every kernel name resolves to an IPython kernel of the running interpreter (a
    personal "python3" kernelspec pointing at another Python is ignored)."""

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                "{connection_file}",
                                # no "running over TCP without encryption" warning per notebook
                                "--IPKernelApp.log_level=ERROR"],
                          display_name=KERNELSPEC["display_name"], language="python")


class CurrentEnvKernelManager(AsyncKernelManager):
    def _kernel_spec_manager_default(self):
        return CurrentEnvKernelSpecManager(data_dir=self.data_dir)


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop what changes from run to run without meaning anything (in place; returns nb)."""
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    if "language_info" in nb.metadata:
        nb.metadata["language_info"].pop("version", None)
    n_views = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if SKIP_TAG in cell.metadata.get("tags", []) or not cell.source.strip():
            cell.outputs, cell.execution_count = [], None
        for out in cell.outputs:
            view = out.get("data", {}).get(WIDGET_MIME)
            if isinstance(view, dict) and "model_id" in view:
                n_views += 1
                view["model_id"] = f"static-view-{n_views}"
    return nb


def refresh(path: Path, timeout: int = 600) -> float:
    """Execute one notebook in place; return the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and SKIP_TAG in cell.metadata.get("tags", []):
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNELSPEC["name"],
                            kernel_manager_class=CurrentEnvKernelManager,
                            record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    tidy(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=180,
                        help="seconds one cell may run (default 180; no course cell needs 30)")
    args = parser.parse_args(argv)
    os.environ.pop("MPLBACKEND", None)      # the kernel inherits it; Agg hides inline figures
    # Same BLAS setting as the test run (conftest.py): one thread, so stored outputs are
    # computed as nbval recomputes them, and small matrices do not oversubscribe 2 cores.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    failed = []
    for path in args.notebooks:
        try:
            try:
                elapsed = refresh(path, timeout=args.timeout)
            except TimeoutError:
                # Seen a few times in ~30 runs: a kernel that stays idle after a widget cell
                # (the ipykernel hang of notes section 3). A fresh kernel has always worked.
                print(f"timed out {path}; retrying once with a fresh kernel", file=sys.stderr, flush=True)
                elapsed = refresh(path, timeout=args.timeout)
        except (CellExecutionError, TimeoutError, RuntimeError) as err:
            failed.append(path)
            print(f"FAILED    {path}: not saved\n{err}", file=sys.stderr, flush=True)
            continue
        print(f"refreshed {path} in {elapsed:.1f} s", flush=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
