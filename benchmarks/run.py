"""Benchmark: BN forward + running-statistics update + backward (training mode).

Variants, each given the same x, gamma, beta, dout:

* ``bnutils``: ``bnutils.batchnorm_forward`` + ``update_running_stats`` +
  ``batchnorm_backward`` (the readable code the course teaches, which hands inputs of
  ``bnutils._fast.MIN_SIZE`` values or more to the kernels of ``bnutils/_fast.py``);
* ``naive``: the textbook equations as whole-array NumPy, dtype kept
  (``bnutils.reference.batchnorm_forward_naive`` / ``batchnorm_backward_naive``, with
  ``update_running_stats``);
* ``fewest``: the fewest-passes NumPy version, one-pass statistics, *not numerically
  safe* (``benchmarks/fewest_passes.py``; 2-D shapes only): about the least work any
  NumPy BN can do, timed to show how close NumPy can get to a fused kernel;
* ``loops``: ``bnutils.reference``'s pure-Python loops (smallest 2-D shape only, if it
  has at most 64·256 values; it computes in float64 whatever the input dtype);
* ``floor``: the memory-bandwidth floor, i.e. the least traffic a fwd + bwd can make:
  copy x into a preallocated array, plus one 3-operand add into a preallocated array;
* ``torch1``, ``torch2``: PyTorch's CPU ``batch_norm`` with autograd on 1 and 2 threads,
  when torch is importable (optional, never a dependency of the course).

Method: all variants in one process, interleaved round by round in a rotating order
(``bnutils.lab.timing.interleaved_medians``), medians of ``--rounds`` rounds (≥ 11), BLAS
pinned to one thread (``OPENBLAS_NUM_THREADS=1`` etc. set before NumPy is imported).
Prints a table of medians and ratios, checks the performance goals (issues #9 and #13) and
writes ``bench.json`` and ``bench.png`` to ``--out``. The goals are reported, never
enforced: the exit status is 0 unless ``--strict`` is given.

    python benchmarks/run.py                       # the full benchmark (~1-2 min)
    python benchmarks/run.py --shapes 8x4 --rounds 3 --no-torch --out /tmp/b   # smoke test
"""

from __future__ import annotations

import os

# Pin every BLAS / OpenMP pool to one thread *before* NumPy (or torch) is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import bnutils  # noqa: E402
from bnutils import reference  # noqa: E402
from bnutils.lab.timing import interleaved_medians  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fewest_passes  # noqa: E402

DEFAULT_SHAPES = [(64, 256), (256, 1024), (1024, 4096), (32, 64, 32, 32)]
VARIANTS = ["bnutils", "naive", "fewest", "loops", "floor", "torch1", "torch2"]
EPS, MOMENTUM = 1e-5, 0.1
LOOPS_MAX_SIZE = 64 * 256


def parse_shape(text: str) -> tuple:
    shape = tuple(int(s) for s in text.lower().split("x"))
    if len(shape) not in (2, 4) or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"shape must be NxD or NxCxHxW, got {text!r}")
    return shape


def machine_info(torch) -> dict:
    """Where and how the benchmark ran: CPU, versions, BLAS and thread settings."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "bnutils": bnutils.__version__,
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                               "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
                                               "OPENBLAS_L2_SIZE")},
        "torch": getattr(torch, "__version__", None),
    }
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "version",
                                                      "architecture", "num_threads")}
                               for p in threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    try:
        info["load_average_start"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def make_inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.normal(1.0, 2.0, size=shape).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, size=c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dout


def build_variants(shape, dtype, torch, with_loops):
    """The functions to time for one (shape, dtype): name -> (callable, before-hook)."""
    x, gamma, beta, dout = make_inputs(shape, dtype)
    c = shape[1]
    funcs, before = {}, {}

    def run_bnutils():
        out, cache = bnutils.batchnorm_forward(x, gamma, beta, EPS)
        bnutils.update_running_stats(np.zeros(c, dtype), np.ones(c, dtype), cache, MOMENTUM)
        return bnutils.batchnorm_backward(dout, cache)

    def run_naive():
        out, cache = reference.batchnorm_forward_naive(x, gamma, beta, EPS)
        bnutils.update_running_stats(np.zeros(c, dtype), np.ones(c, dtype), cache, MOMENTUM)
        return reference.batchnorm_backward_naive(dout, cache)

    funcs["bnutils"], funcs["naive"] = run_bnutils, run_naive
    if len(shape) == 2:
        def run_fewest():
            out, cache = fewest_passes.forward(x, gamma, beta, EPS)
            fewest_passes.update_running_stats(np.zeros(c, dtype), np.ones(c, dtype), cache, MOMENTUM)
            return fewest_passes.backward(dout, cache)
        funcs["fewest"] = run_fewest
    if with_loops:
        def run_loops():
            out, cache = reference.batchnorm_forward_loops(x, gamma, beta, EPS)
            bnutils.update_running_stats(np.zeros(c), np.ones(c), cache, MOMENTUM)
            return reference.batchnorm_backward_loops(dout, cache)
        funcs["loops"] = run_loops

    copy_buf, add_buf = np.zeros_like(x), np.zeros_like(x)

    def run_floor():
        np.copyto(copy_buf, x)
        np.add(x, dout, out=add_buf)

    funcs["floor"] = run_floor
    if torch is not None:
        xt, gt, bt, dt_ = (torch.from_numpy(a) for a in (x, gamma, beta, dout))

        def run_torch():
            xg = xt.detach().requires_grad_(True)
            gg, bg = gt.detach().requires_grad_(True), bt.detach().requires_grad_(True)
            rm, rv = torch.zeros(c, dtype=xt.dtype), torch.ones(c, dtype=xt.dtype)
            out = torch.nn.functional.batch_norm(xg, rm, rv, gg, bg, training=True,
                                                 momentum=MOMENTUM, eps=EPS)
            out.backward(dt_)
            return xg.grad, gg.grad, bg.grad

        for threads in (1, 2):
            funcs[f"torch{threads}"] = run_torch
            before[f"torch{threads}"] = (lambda n=threads: torch.set_num_threads(n))
    return funcs, before, (x, gamma, beta, dout)


def check_agreement(funcs, before, dtype) -> dict:
    """Max |dx - dx_bnutils| / max |dx_bnutils| of every variant that returns dx."""
    ref = np.asarray(funcs["bnutils"]()[0], dtype=np.float64)
    scale = float(np.max(np.abs(ref))) or 1.0
    out = {}
    for name, fn in funcs.items():
        if name in ("bnutils", "floor"):
            continue
        if name in before:
            before[name]()
        dx = fn()[0]
        dx = dx.numpy() if hasattr(dx, "numpy") else dx
        out[name] = float(np.max(np.abs(np.asarray(dx, dtype=np.float64) - ref))) / scale
    tol = 1e-3 if dtype == np.float32 else 1e-8
    bad = {k: v for k, v in out.items() if v > tol}
    if bad:
        raise AssertionError(f"variants disagree with bnutils on dx (relative error): {bad}")
    return out


GOALS = [
    # (dtype, shape, description, ratio key, comparison, target)
    ("float32", (1024, 4096), "bnutils ≤ 6.5× the bandwidth floor", "bnutils_over_floor", "<=", 6.5),
    ("float32", (1024, 4096), "bnutils ≥ 2× faster than naive", "naive_over_bnutils", ">=", 2.0),
    ("float32", (1024, 4096), "bnutils ≤ 2× torch on 1 thread", "bnutils_over_torch1", "<=", 2.0),
    ("float32", (32, 64, 32, 32), "bnutils ≥ 2× faster than naive", "naive_over_bnutils", ">=", 2.0),
    ("float32", (64, 256), "bnutils no slower than naive", "naive_over_bnutils", ">=", 1.0),
]


def ratios(ms: dict) -> dict:
    r = {}
    b = ms["bnutils"]
    for name, key in (("floor", "bnutils_over_floor"), ("torch1", "bnutils_over_torch1"),
                      ("torch2", "bnutils_over_torch2")):
        if name in ms:
            r[key] = b / ms[name]
    for name in ("naive", "loops"):
        if name in ms:
            r[f"{name}_over_bnutils"] = ms[name] / b
    if "fewest" in ms and "torch1" in ms:
        r["fewest_over_torch1"] = ms["fewest"] / ms["torch1"]
    return r


def evaluate_goals(results) -> list:
    goals = []
    for dtype, shape, text, key, op, target in GOALS:
        row = next((r for r in results if r["dtype"] == dtype and tuple(r["shape"]) == shape), None)
        if row is None:
            continue
        value = row["ratios"].get(key)
        entry = {"dtype": dtype, "shape": list(shape), "goal": text, "ratio": key, "target": target,
                 "op": op, "value": value}
        entry["passed"] = None if value is None else (value <= target if op == "<=" else value >= target)
        goals.append(entry)
    return goals


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def print_table(results, goals, info):
    names = [v for v in VARIANTS if any(v in r["median_ms"] for r in results)]
    head = f"{'dtype':<8}{'shape':<18}" + "".join(f"{n:>10}" for n in names) \
        + f"{'bn/floor':>10}{'naive/bn':>10}{'bn/torch1':>11}"
    print("\nBN forward + running-stats update + backward, training mode: median ms per call")
    print(head)
    print("-" * len(head))
    for r in results:
        ms, ra = r["median_ms"], r["ratios"]
        cells = "".join(f"{ms[n]:>10.3f}" if n in ms else f"{'-':>10}" for n in names)
        t1 = f"{ra['bnutils_over_torch1']:>10.2f}×" if "bnutils_over_torch1" in ra else f"{'-':>11}"
        print(f"{r['dtype']:<8}{fmt_shape(r['shape']):<18}{cells}"
              f"{ra['bnutils_over_floor']:>9.2f}×{ra['naive_over_bnutils']:>9.2f}×{t1}")
    if goals:
        print("\nGoals (issues #9, #13; ratios from this run):")
        for g in goals:
            mark = {True: "PASS", False: "FAIL", None: "skip"}[g["passed"]]
            val = "n/a (torch not importable)" if g["value"] is None else f"{g['value']:.2f}×"
            print(f"  [{mark}] {g['dtype']} {fmt_shape(g['shape'])}: {g['goal']}: {val}")
    bound = next((r for r in results if r["dtype"] == "float32" and tuple(r["shape"]) == (1024, 4096)
                  and "fewest_over_torch1" in r["ratios"]), None)
    if bound:
        print(f"\nBound: the fewest-passes NumPy version (no checks, no fallback; "
              f"benchmarks/fewest_passes.py) takes\n{bound['ratios']['fewest_over_torch1']:.2f}× "
              f"torch on 1 thread at (1024, 4096) float32: about as close as NumPy gets to a "
              f"fused kernel.")
    pools = info.get("threadpools")
    if isinstance(pools, list):
        desc = "; ".join(f"{p['internal_api']} {p['version']} ({p['architecture']}, "
                         f"{p['num_threads']} thread(s))" for p in pools)
    else:
        desc = str(pools)
    print(f"\nMachine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
          f"NumPy {info['numpy']}, torch {info['torch'] or info.get('torch_note', 'not used')}")
    print(f"Thread pools: {desc}")
    print(f"Environment: {', '.join(f'{k}={v}' for k, v in info['env'].items())}")
    if "load_average_start" in info:
        print(f"Load average (1, 5, 15 min) at start: {info['load_average_start']}, "
              f"at end: {info.get('load_average_end')}")


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = [d for d in ("float32", "float64") if any(r["dtype"] == d for r in results)]
    names = [v for v in VARIANTS if any(v in r["median_ms"] for r in results)]
    colors = {"bnutils": "#1f77b4", "naive": "#ff7f0e", "fewest": "#9467bd", "loops": "#8c564b",
              "floor": "#7f7f7f",
              "torch1": "#2ca02c", "torch2": "#98df8a"}
    fig, axes = plt.subplots(1, len(dtypes), figsize=(7 * len(dtypes), 5), squeeze=False)
    for ax, dtype in zip(axes[0], dtypes):
        rows = [r for r in results if r["dtype"] == dtype]
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            offset = (j - (len(names) - 1) / 2) * width
            xs = [i + offset for i, r in enumerate(rows) if name in r["median_ms"]]
            ys = [r["median_ms"][name] for r in rows if name in r["median_ms"]]
            ax.bar(xs, ys, width, label=name, color=colors[name])
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{fmt_shape(r['shape'])}\n"
                            f"bnutils: {r['ratios']['bnutils_over_floor']:.1f}× floor,\n"
                            f"{r['ratios']['naive_over_bnutils']:.1f}× faster than naive" for r in rows],
                           fontsize=8)
        ax.set_xlabel("input shape")
        ax.set_ylabel("median time per call (ms, log scale)")
        ax.set_title(f"{dtype}: BN forward + backward, median time per call (lower is better)",
                     fontsize=10)
        top = max(max(r["median_ms"].values()) for r in rows)
        ax.set_ylim(top=top * 20)
        ax.legend(fontsize=8, ncol=3, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", type=lambda s: [parse_shape(t) for t in s.split(",")],
                   default=DEFAULT_SHAPES, help="comma-separated, e.g. 64x256,32x64x32x32")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--target-ms", type=float, default=20.0,
                   help="approximate length of one timing sample, ms (short calls are repeated)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--no-torch", action="store_true", help="do not time PyTorch even if importable")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    args = p.parse_args(argv)
    dtypes = [np.dtype(d) for d in args.dtypes.split(",")]

    torch = None
    torch_note = "disabled (--no-torch)" if args.no_torch else None
    if not args.no_torch:
        try:
            import torch
        except ImportError as exc:
            torch_note = f"torch was not importable ({exc}); the torch columns are skipped"
    if torch_note:
        print(torch_note)
    info = machine_info(torch)
    if torch is None:
        info["torch_note"] = "not used (--no-torch)" if args.no_torch else "not importable"
    shapes_2d = [s for s in args.shapes if len(s) == 2]
    # The loop version takes ~4 µs per element: only the smallest 2-D shape, if it is small.
    loops_shape = min(shapes_2d, key=lambda s: s[0] * s[1]) if shapes_2d else None
    if loops_shape and loops_shape[0] * loops_shape[1] > LOOPS_MAX_SIZE:
        loops_shape = None

    results = []
    t_start = time.perf_counter()
    for dtype in dtypes:
        for shape in args.shapes:
            funcs, before, _ = build_variants(shape, dtype, torch, with_loops=shape == loops_shape)
            agreement = check_agreement(funcs, before, dtype)
            res = interleaved_medians(funcs, rounds=args.rounds, target_s=args.target_ms / 1e3,
                                      before=before)
            ms = {k: v["median_s"] * 1e3 for k, v in res.items()}
            results.append({"dtype": dtype.name, "shape": list(shape), "median_ms": ms,
                            "samples_ms": {k: [s * 1e3 for s in v["samples_s"]] for k, v in res.items()},
                            "calls_per_sample": {k: v["number"] for k, v in res.items()},
                            "ratios": ratios(ms), "dx_rel_error_vs_bnutils": agreement})
            print(f"  {dtype.name} {fmt_shape(shape)}: "
                  + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items()), flush=True)
    if torch is not None:
        torch.set_num_threads(1)
    try:
        info["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    goals = evaluate_goals(results)
    print_table(results, goals, info)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"method": {"rounds": args.rounds, "target_sample_ms": args.target_ms,
                         "statistic": "median over interleaved rounds, ms per call",
                         "seconds": round(time.perf_counter() - t_start, 1)},
              "machine": info, "torch_note": torch_note, "results": results, "goals": goals}
    (args.out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    written = [args.out / "bench.json"]
    if not args.no_plot:
        plot(results, args.out / "bench.png")
        written.append(args.out / "bench.png")
    print("\nWrote " + ", ".join(str(w) for w in written))
    missed = [g for g in goals if g["passed"] is False]
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
