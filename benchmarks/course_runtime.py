"""Course runtime: each notebook's time under strict nbval, each widget's redraw time.

    python benchmarks/course_runtime.py                  # all notebooks and widgets
    python benchmarks/course_runtime.py --no-notebooks   # widgets only (a few seconds)

* **Notebooks.** One ``pytest`` run over ``notebooks/*.ipynb`` with the project's
  settings (strict ``--nbval``, the repo's ``conftest.py``), as ``make test`` runs them.
  The plugin ``benchmarks/_nbtimer.py`` times each notebook from its kernel's start to
  its shutdown, in wall time and in CPU time (pytest + kernel; on a busy machine the
  wall time grows with the load, the CPU time much less, so it estimates the wall time
  on an idle machine). The total is the wall time of the whole pytest run.
* **Widgets.** Every ``*_explorer`` function listed in the ``__all__`` of a module in
  ``bnutils/widgets/`` is built with its default arguments, then each of its controls
  is moved through a few values and the redraws are timed in-process with
  ``tests/redraw_helpers.py``'s ``redraw_ms`` (matplotlib's Agg backend, as in the tests).

Budgets (issue #9): whole course ≤ 120 s, no notebook over 30 s, median redraw ≤ 100 ms
per control. They are reported, not enforced (exit status 0 unless ``--strict``).
Writes ``course_runtime.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUDGET = {"course_s": 120.0, "notebook_s": 30.0, "redraw_ms": 100.0}


def time_notebooks(paths: list[Path]) -> dict:
    """Run the notebooks under strict nbval in one pytest process; per-notebook times."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nbtimer.json"
        env = dict(os.environ, NBTIMER_OUT=str(out),
                   PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "_nbtimer", *[str(p) for p in paths]]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        total = time.perf_counter() - t0
        per = json.loads(out.read_text()) if out.exists() else {}
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    return {"command": " ".join(["pytest", "-q", *[os.path.relpath(p, ROOT) for p in paths]]),
            "total_s": round(total, 1), "exit_status": proc.returncode, "summary": tail,
            "notebooks": per}


def explorers() -> list[tuple[str, object]]:
    """``(module.name, function)`` for every ``*_explorer`` in bnutils.widgets' modules."""
    import bnutils.widgets as pkg

    found = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        module = importlib.import_module(f"bnutils.widgets.{mod}")
        for name in getattr(module, "__all__", []):
            if name.endswith("_explorer"):
                found.append((f"{mod}.{name}", getattr(module, name)))
    return found


def values_for(control, k: int = 5) -> list:
    """A few values that move ``control`` away from its current value and back."""
    current = control.value
    options = getattr(control, "options", None)
    if options is not None:
        vals = [o[1] if isinstance(o, tuple) else o for o in options]
        if control.__class__.__name__.startswith("Select"):   # SelectMultiple etc.: skip
            return []
        # ipywidgets stores the option *values* under .value, labels can differ
        vals = [v for v in vals if v != current][:k - 1]
        return vals + [current]
    if isinstance(current, bool):
        return [not current, current] * 2
    if hasattr(control, "min") and hasattr(control, "max"):
        lo, hi = control.min, control.max
        step = getattr(control, "step", None) or (hi - lo) / 20
        if control.__class__.__name__.startswith("FloatLog"):
            grid = list(np.logspace(lo, hi, k))
        else:
            grid = [lo + round((hi - lo) * i / (k - 1) / step) * step for i in range(k)]
        if isinstance(current, int):
            grid = [int(round(g)) for g in grid]
        grid = [g for g in grid if g != current]
        return grid + [current]
    return []


def time_widgets() -> list[dict]:
    """Median redraw time of every control of every explorer (their printed output is dropped)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _time_widgets()


def _time_widgets() -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if str(ROOT) not in sys.path:  # run as a file: the widget tests' redraw timing is in ROOT/tests
        sys.path.insert(0, str(ROOT))
    from tests.redraw_helpers import controls, redraw_ms

    rows = []
    for qualname, fn in explorers():
        t0 = time.perf_counter()
        try:
            w = fn()
        except Exception as exc:   # report and go on: one broken widget must not hide the rest
            rows.append({"widget": qualname, "error": f"{type(exc).__name__}: {exc}"})
            continue
        build_ms = (time.perf_counter() - t0) * 1e3
        plt.close("all")
        for name, control in controls(w).items():
            values = values_for(control)
            if not values:
                continue
            try:
                ms = float(np.median(redraw_ms(w, name, values)))
            except Exception as exc:
                rows.append({"widget": qualname, "control": name,
                             "error": f"{type(exc).__name__}: {exc}"})
                continue
            rows.append({"widget": qualname, "control": name, "median_ms": round(ms, 1),
                         "moves": len(values), "build_ms": round(build_ms, 1)})
        plt.close("all")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="notebooks to time (default: notebooks/*.ipynb)")
    p.add_argument("--no-notebooks", action="store_true")
    p.add_argument("--no-widgets", action="store_true")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--strict", action="store_true", help="exit 1 if a budget is exceeded")
    args = p.parse_args(argv)
    report = {"budget": BUDGET}
    try:
        report["load_average_start"] = list(os.getloadavg())
    except OSError:
        pass
    over = []

    if not args.no_widgets:
        rows = time_widgets()
        report["widgets"] = rows
        print("\nWidget redraw time (median per slider move, in-process, Agg backend)")
        print(f"{'widget':<40}{'control':<22}{'median':>10}")
        for r in rows:
            if "error" in r:
                print(f"{r['widget']:<40}{r.get('control', ''):<22}  ERROR {r['error']}")
                over.append(r["widget"])
                continue
            flag = "" if r["median_ms"] <= BUDGET["redraw_ms"] else "  > budget"
            print(f"{r['widget']:<40}{r['control']:<22}{r['median_ms']:>7.1f} ms{flag}")
            if flag:
                over.append(f"{r['widget']}:{r['control']}")

    if not args.no_notebooks:
        paths = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
        print(f"\nRunning {len(paths)} notebook(s) under strict nbval ...", flush=True)
        nb = time_notebooks(paths)
        report["nbval"] = nb
        print(f"{'notebook':<42}{'cells':>6}{'failed':>8}{'wall time':>11}{'CPU time':>11}")
        for path, r in sorted(nb["notebooks"].items()):
            flag = "" if r["seconds"] <= BUDGET["notebook_s"] else "  > budget"
            print(f"{Path(path).name:<42}{r['cells']:>6}{r['failed']:>8}{r['seconds']:>9.1f} s"
                  f"{r['cpu_seconds']:>9.1f} s{flag}")
            if flag:
                over.append(path)
        flag = "" if nb["total_s"] <= BUDGET["course_s"] else "  > budget"
        cpu = sum(r["cpu_seconds"] for r in nb["notebooks"].values())
        print(f"{'whole run (one pytest process)':<56}{nb['total_s']:>9.1f} s{cpu:>9.1f} s{flag}"
              "  (CPU: notebooks only)")
        print(f"pytest: {nb['summary']}")
        if flag:
            over.append("course total")
    try:
        report["load_average_end"] = list(os.getloadavg())
        print(f"\nLoad average (1, 5, 15 min): start {report.get('load_average_start')}, "
              f"end {report['load_average_end']} on {os.cpu_count()} cores")
    except OSError:
        pass
    print("Budgets: course ≤ 120 s, notebook ≤ 30 s, redraw ≤ 100 ms: "
          + ("all met" if not over else "exceeded by " + ", ".join(over)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "course_runtime.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"Wrote {args.out / 'course_runtime.json'}")
    return 1 if (args.strict and over) else 0


if __name__ == "__main__":
    sys.exit(main())
