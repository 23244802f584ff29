"""Kernel memory: how much RAM one learner's kernel holds after each notebook.

    python benchmarks/kernel_memory.py                       # all ten notebooks
    python benchmarks/kernel_memory.py notebooks/08_*.ipynb  # some
    python benchmarks/kernel_memory.py --per-cell            # also the RSS after every cell

For each notebook: a fresh IPython kernel (ipykernel, as JupyterLab starts it: the
inline matplotlib backend, the notebook's folder as working directory) runs every code
cell in order, as Run All does; then the kernel's resident set size (RSS, from
``/proc/<pid>/status``: what the machine must hold for it) is read. Reported per
notebook: the RSS of the idle kernel at start, the RSS after the last cell (what the
kernel keeps while the learner reads on), and the peak RSS while it ran (``VmHWM``).
A class on one machine needs RAM for every kernel's "after" (plus its server's); the
peak says how much headroom one kernel needs for a moment.

Widgets have no browser here: their Python objects exist as in JupyterLab, their views
are not drawn. Budget (issue #27): at most ``--budget`` MB (250) after any notebook.
Exit status 0 unless ``--strict`` and a notebook is over the budget. Linux only (reads
``/proc``). Writes ``kernel_memory.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUDGET_MB = 250.0


def status_mb(pid: int) -> dict:
    """``VmRSS`` (now) and ``VmHWM`` (peak) of process ``pid``, in MB (10^6 bytes)."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024 / 1e6
    return {"rss": values["VmRSS"], "peak": values["VmHWM"]}


def _run(kc, code: str, timeout: float) -> list[str]:
    """Execute ``code``; return the error texts it produced (empty when it ran cleanly)."""
    msg_id = kc.execute(code, store_history=True, allow_stdin=False)
    errors, deadline = [], time.monotonic() + timeout
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"a cell took more than {timeout} s") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return errors


def measure(path: Path, per_cell: bool = False, timeout: float = 300.0) -> dict:
    """Run notebook ``path`` in a fresh kernel; its RSS at start, after, and at peak (MB)."""
    import nbformat
    from jupyter_client.manager import start_new_kernel

    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}   # the inline backend, as in JupyterLab
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(path.parent), env=env)
    try:
        pid = km.provisioner.process.pid
        _run(kc, "pass", timeout)
        start = status_mb(pid)["rss"]
        cells, errors = [], []
        t0 = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if "raises-exception" not in cell.metadata.get("tags", []):
                errors += [f"cell {index}: {e}" for e in _run(kc, cell.source, timeout)]
            else:
                _run(kc, cell.source, timeout)
            if per_cell:
                cells.append({"cell": index, **{k: round(v, 1) for k, v in status_mb(pid).items()}})
        seconds = time.perf_counter() - t0
        end = status_mb(pid)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    result = {"start_mb": round(start, 1), "after_mb": round(end["rss"], 1),
              "peak_mb": round(end["peak"], 1), "seconds": round(seconds, 1), "errors": errors}
    if per_cell:
        result["cells"] = cells
    return result


def table(results: dict, budget: float) -> str:
    """A markdown table, one row per notebook."""
    lines = ["| notebook | at start (MB) | after the notebook (MB) | peak (MB) | within budget |",
             "|---|---:|---:|---:|:---:|"]
    for name, r in results.items():
        ok = "yes" if r["after_mb"] <= budget else "**no**"
        lines.append(f"| {name} | {r['start_mb']:.0f} | {r['after_mb']:.0f} | {r['peak_mb']:.0f} | {ok} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: notebooks/[0-9][0-9]_*.ipynb)")
    parser.add_argument("--budget", type=float, default=BUDGET_MB, help="MB after a notebook (default 250)")
    parser.add_argument("--per-cell", action="store_true", help="record the RSS after every cell")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a notebook is over the budget")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for kernel_memory.json")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("kernel_memory.py reads /proc: Linux only", file=sys.stderr)
        return 2
    paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    results = {}
    for path in paths:
        results[path.stem] = r = measure(path, per_cell=args.per_cell)
        print(f"{path.stem}: {r['start_mb']:.0f} MB at start, {r['after_mb']:.0f} MB after, "
              f"peak {r['peak_mb']:.0f} MB ({r['seconds']:.0f} s)"
              + (f"; ERRORS: {r['errors']}" if r["errors"] else ""), flush=True)
    print()
    print(table(results, args.budget))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "budget_mb": args.budget}
    (args.out / "kernel_memory.json").write_text(
        json.dumps({"meta": meta, "notebooks": results}, indent=1) + "\n", encoding="utf-8")
    over = [n for n, r in results.items() if r["after_mb"] > args.budget]
    failed = [n for n, r in results.items() if r["errors"]]
    if over:
        print(f"\nOver the {args.budget:.0f} MB budget: {', '.join(over)}")
    if failed:
        print(f"Cells raised in: {', '.join(failed)}")
    return 1 if args.strict and (over or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
