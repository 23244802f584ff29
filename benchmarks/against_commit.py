"""Benchmark: this tree's BN training step against the same step at an earlier commit.

"No slower than before" is a ratio two versions measured side by side, on the same inputs,
in one process (a ratio across two runs moves with the machine's load). This script
extracts ``bnutils/`` of a git commit into a temporary folder under another package name,
imports it beside this tree's ``bnutils``, and times ``batchnorm_forward`` +
``update_running_stats`` + ``batchnorm_backward`` of both, interleaved round by round
(``bnutils.lab.timing.interleaved_medians``), BLAS on one thread.

    .venv/bin/python benchmarks/against_commit.py 4934900
    .venv/bin/python benchmarks/against_commit.py HEAD~3 --shapes 64x256,1024x4096 --rounds 21

It prints, per dtype and shape, the median ms of each and ``now / then`` (below 1: faster now).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"      # before NumPy is imported: one thread, as benchmarks/run.py

import argparse  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if not __package__:
    sys.path[0] = str(ROOT)     # run as a script: import this tree's bnutils

import bnutils  # noqa: E402
from bnutils.lab.timing import interleaved_medians  # noqa: E402

SHAPES = "64x256,256x1024,1024x4096,32x64x32x32"


def import_at(commit: str, folder: Path):
    """``bnutils`` as it was at ``commit``, imported as the package ``bnutils_then``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "bnutils"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "bnutils").rename(folder / "bnutils_then")   # its imports are relative
    sys.path.insert(0, str(folder))
    return importlib.import_module("bnutils_then")


def training_step(bn, x, gamma, beta, dout):
    """One BN training step with package ``bn``: forward, running statistics, backward."""
    c = x.shape[1]

    def step():
        _, cache = bn.batchnorm_forward(x, gamma, beta)
        bn.update_running_stats(np.zeros(c, x.dtype), np.ones(c, x.dtype), cache)
        bn.batchnorm_backward(dout, cache)
    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="the earlier commit (any git revision)")
    parser.add_argument("--shapes", default=SHAPES, help=f"comma-separated (default {SHAPES})")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        then = import_at(args.commit, Path(tmp))
        rng = np.random.default_rng(0)
        print(f"median ms per BN training step (fwd + running stats + bwd), one BLAS thread, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{'dtype':8s}{'shape':20s}{'then':>10s}{'now':>10s}{'now/then':>10s}")
        for dtype in args.dtypes.split(","):
            for text in args.shapes.split(","):
                shape = tuple(int(n) for n in text.split("x"))
                x, dout = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
                gamma, beta = np.ones(shape[1], dtype), np.zeros(shape[1], dtype)
                res = interleaved_medians(
                    {name: training_step(bn, x, gamma, beta, dout)
                     for name, bn in (("then", then), ("now", bnutils))}, rounds=args.rounds)
                t_then, t_now = (res[k]["median_s"] * 1e3 for k in ("then", "now"))
                print(f"{dtype:8s}{str(shape):20s}{t_then:10.3f}{t_now:10.3f}"
                      f"{t_now / t_then:9.2f}×")


if __name__ == "__main__":
    main()
