"""What the maintainer scripts share about notebooks: find them, run them, tidy them.

Used by ``refresh_notebooks.py`` (make refresh), ``build_html.py`` (make html),
``make_student.py`` (make student), ``nbgrader_course.py`` (make nbgrader), ``lab.py`` and
the other tools; not a script of its own, except as the child process that runs one
notebook (below).

* ``discover()`` - the course notebooks, ``notebooks/NN_name.ipynb``, in course order;
* ``run(src, dst, ...)`` - execute a notebook in a fresh kernel of *this* Python (like
  nbval's --nbval-current-env) and write the executed copy, with its widget state in
  ``metadata.widgets``, to ``dst``;
* ``clear_outputs(nb)`` and ``tidy(nb)`` - strip outputs (a student notebook) or only
  what changes from run to run without meaning anything (a committed notebook);
* ``digest``, ``read_manifest``, ``is_edited``, ``write_manifest`` - the one rule that keeps
  a user's work in a folder a tool writes (student/, the lab's working copy, nbgrader's
  sources): a file counts as edited when it differs both from what is about to be written
  and from what the tool last wrote there (the hash its manifest recorded).

**The hang policy** (the only one; every script runs notebooks through ``run``). Measured
here: now and then (about 1 run in 8 of notebook 01, at a widget cell) nbclient's asyncio
client is not woken when the kernel's reply arrives; it then sits until its timeout, and
the check pyzmq makes when a poll times out finds the reply after all. So:

1. the kernel client waits for messages in slices of ``POLL_SLICE`` seconds (the cure:
   the final check then happens every second);
2. each notebook runs in a child process in a session of its own, so that a run that
   still hangs can be stopped with its kernel: a cell that exceeds ``timeout`` seconds or
   a notebook that exceeds ``notebook_timeout`` counts as hung;
3. a hung run is killed and the notebook runs again in a fresh kernel, up to
   ``ATTEMPTS`` times in all; an error in a cell (other than cells tagged
   ``raises-exception``) is not retried.

Cells tagged ``skip-execution`` are not run and keep no outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
#: The MIME types of a widget view in a cell's outputs and of the widget state in metadata.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SKIP_TAG = "skip-execution"
ATTEMPTS = 3          # runs of a notebook that hangs
HUNG = 3              # exit status of the child process when a cell timed out
POLL_SLICE = 1.0      # seconds


class NotebookError(RuntimeError):
    """A notebook could not be read or executed; the message names it."""


# --------------------------------------------------------------------------- discovery

def discover(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The course notebooks, ``NN_name.ipynb``, in course order."""
    return sorted(Path(notebook_dir).glob(NOTEBOOK_GLOB))


# --------------------------------------------------------------------------- users' edits

def digest(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex: what a manifest records of each file a tool wrote."""
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: Path, warn=None) -> dict[str, str]:
    """The hashes a tool recorded of the files it wrote, ``{name: sha256}``.

    ``{}`` when the manifest is missing, and also when it is damaged (not JSON, or not a
    mapping of names to hashes): every existing file then counts as edited and is kept.
    ``warn(exc)``, if given, is called with what was wrong with a damaged one.
    """
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(manifest, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in manifest.items())):
            raise ValueError("not a mapping of notebook names to hashes")
    except (OSError, ValueError) as exc:     # JSONDecodeError and UnicodeDecodeError too
        if warn is not None:
            warn(exc)
        return {}
    return manifest


def is_edited(target: Path, data: bytes, recorded: str | None) -> bool:
    """Whether ``target`` holds a user's edit that writing ``data`` there would lose: it
    exists, differs from ``data``, and is not what the tool last wrote (hash ``recorded``)."""
    if not target.exists():
        return False
    current = target.read_bytes()
    return current != data and digest(current) != recorded


def write_manifest(path: Path, manifest: dict[str, str]) -> None:
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- tidying

def clear_skipped(nb):
    """Cells tagged ``skip-execution`` keep no outputs (in place; returns nb)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and SKIP_TAG in cell.metadata.get("tags", []):
            cell.outputs, cell.execution_count = [], None
    return nb


def clear_outputs(nb):
    """Drop every output, execution count, timing and the widget state (in place; returns nb)."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    return nb


def tidy(nb):
    """Drop what changes from run to run without meaning anything (in place; returns nb).

    No per-cell timing metadata and no widget state (``metadata.widgets``); widget views
    get stable model ids (the stored ids refer to a kernel that is gone anyway); kernelspec
    ``python3``; ``language_info`` without the Python version; skipped and empty cells
    without outputs.
    """
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
            view = out.get("data", {}).get(WIDGET_VIEW)
            if isinstance(view, dict) and "model_id" in view:
                n_views += 1
                view["model_id"] = f"static-view-{n_views}"
    return nb


# --------------------------------------------------------------------------- execution

def kernel_env() -> dict:
    """The environment notebooks run in: the one the tests use.

    No ``MPLBACKEND`` (the kernel would inherit it, and Agg hides inline figures); one BLAS
    thread (conftest.py does the same for nbval, so stored outputs are computed as nbval
    recomputes them, and small matrices do not oversubscribe the cores).
    """
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def _kernel_manager_class():
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnvKernelSpecManager(KernelSpecManager):
        """Every kernel name resolves to an IPython kernel of the running interpreter (a
        personal "python3" kernelspec pointing at another Python is ignored)."""

        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}",
                                    # no "running over TCP without encryption" warning
                                    "--IPKernelApp.log_level=ERROR"],
                              display_name=KERNELSPEC["display_name"], language="python")

    class CurrentEnvKernelManager(AsyncKernelManager):
        def _kernel_spec_manager_default(self):
            return CurrentEnvKernelSpecManager(data_dir=self.data_dir)

    return CurrentEnvKernelManager


def _poll_in_slices() -> None:
    """Make the kernel client wait for messages in slices of ``POLL_SLICE`` seconds (hang
    policy, step 1). Only in the child process, which runs one notebook and exits."""
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    if getattr(original, "bn_sliced", False):
        return

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await original(self, timeout=min(POLL_SLICE, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    get_msg.bn_sliced = True
    AsyncZMQSocketChannel.get_msg = get_msg


def _execute_here(src: Path, dst: Path, workdir: Path, timeout: int) -> float:
    """Execute ``src`` in this process (the child); write it to ``dst``; return seconds."""
    import nbformat
    from nbclient import NotebookClient

    _poll_in_slices()
    nb = clear_skipped(nbformat.read(src, as_version=4))
    start = time.perf_counter()

    def progress(cell, cell_index):          # on stderr: shows where a killed run hung
        print(f"{time.perf_counter() - start:6.1f} s  cell {cell_index}", file=sys.stderr,
              flush=True)

    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNELSPEC["name"],
                            kernel_manager_class=_kernel_manager_class(),
                            # the widget state always (nbclient raises KeyError on some
                            # widget messages without it); tidy() drops it again
                            record_timing=False, store_widget_state=True,
                            on_cell_execute=progress,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    elapsed = time.perf_counter() - start
    nbformat.write(nb, dst)
    progress(None, "end")
    return elapsed


@dataclass(frozen=True)
class Run:
    """How one notebook ran: wall seconds, its slowest cell, how many attempts it took."""

    elapsed: float
    slowest_cell: str
    slowest_seconds: float
    attempts: int


def _slowest(stderr: str) -> tuple[str, float]:
    marks = [re.match(r"\s*([\d.]+) s  cell (\S+)", ln) for ln in stderr.splitlines()]
    marks = [(float(m.group(1)), m.group(2)) for m in marks if m]
    gap, cell = max(((b[0] - a[0], a[1]) for a, b in zip(marks, marks[1:])), default=(0.0, "-"))
    return cell, gap


def run(src: Path, dst: Path, *, workdir: Path | None = None, timeout: int = 180,
        notebook_timeout: int = 600, log=print, env: dict | None = None) -> Run:
    """Execute notebook ``src`` in a fresh kernel; write the executed copy to ``dst``.

    Parameters
    ----------
    src, dst : Path
        The notebook, and where the executed copy goes (``src`` is never written unless
        ``dst`` is ``src``).
    workdir : Path, optional
        The kernel's working directory (default: ``src``'s folder).
    timeout, notebook_timeout : int
        Seconds one cell / the whole notebook may run before the run counts as hung.
    log : callable
        Receives one line per retried run.
    env : dict, optional
        Variables to set (or, with the value None, to remove) in the kernel's environment,
        on top of ``kernel_env()``.

    Raises
    ------
    NotebookError
        The notebook failed (its cell's error and traceback in the message) or hung
        ``ATTEMPTS`` times.
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    workdir = Path(workdir).resolve() if workdir is not None else src.parent
    cmd = [sys.executable, str(Path(__file__).resolve()), str(src), str(dst),
           "--workdir", str(workdir), "--timeout", str(timeout)]
    child_env = kernel_env()
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    for attempt in range(1, ATTEMPTS + 1):
        # A session of its own, so that a hung run can be stopped with its kernel.
        proc = subprocess.Popen(cmd, cwd=workdir, env=child_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=notebook_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\nkilled after {notebook_timeout} s"
        if proc.returncode == 0:
            cell, seconds = _slowest(stderr)
            return Run(float(stdout.strip().split()[-1]), cell, seconds, attempt)
        hung = proc.returncode == HUNG or proc.returncode < 0
        progress = [ln.strip() for ln in stderr.splitlines() if " s  cell " in ln]
        where = progress[-1] if progress else "before its first cell"
        if not hung:
            raise NotebookError(f"{src.name} failed to execute:\n{stderr[-6000:].strip()}")
        if attempt == ATTEMPTS:
            raise NotebookError(f"{src.name} hung {ATTEMPTS} times (last at: {where})")
        log(f"warning: {src.name} hung (at: {where}); killed, running it again")
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    """The child process of ``run``: execute one notebook, exit 0, ``HUNG`` or 1."""
    parser = argparse.ArgumentParser(description="Run one notebook (the child of run()).")
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--timeout", type=int, required=True)
    args = parser.parse_args(argv)
    from nbclient.exceptions import CellTimeoutError

    try:
        elapsed = _execute_here(args.src, args.dst, args.workdir, args.timeout)
    except CellTimeoutError as err:
        print(f"cell timed out: {err}"[:2000], file=sys.stderr)
        return HUNG
    except Exception as err:  # the message goes to the parent, which names the notebook
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"{elapsed:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
