"""Which stored outputs depend on the machine? Run notebooks under other numerics and compare.

    python tools/portability_probe.py notebooks/09_*.ipynb            # every variant
    python tools/portability_probe.py --variants prescott,plus notebooks/0[5-9]_*.ipynb

Each notebook runs once per *variant* (in a fresh kernel, as ``make refresh`` runs it, into a
temporary folder: ``notebooks/`` is never written), and every code cell's text output is
compared with the stored one, the way strict nbval compares it (the root conftest.py's rules:
widget views and ``nbval-ignore-output`` cells are not compared; a cell with an
``nbval-tolerance`` spec is compared within it). The variants stand for other machines:

* ``default``: this machine as it is (a stored output that moves here was stored elsewhere);
* ``prescott``, ``haswell``, ``sandybridge``: OpenBLAS forced to another CPU's kernel
  (``OPENBLAS_CORETYPE``), which changes the last bits of matrix products;
* ``nosimd``: NumPy's AVX2/AVX-512 loops off and OpenBLAS's SandyBridge kernel;
* ``plus``, ``minus``: the digits and every Linear/Conv2d layer's initial weights scaled by
  1 + 1e-12 and 1 - 1e-12 - rounding differences of the size any other platform makes,
  injected where a chaotic run amplifies them (a ``sitecustomize`` on the kernel's path).

Prints, per notebook, each cell that moved under some variant: for a tolerant cell the largest
deviation against its tolerance, for a strict cell the first lines that differ. Exit status 1
if a strict cell moved or a tolerant cell went beyond its tolerance. The full course under all
seven variants takes about 15 minutes on a 2-core machine (``--jobs 2``: about 8). See
CONTRIBUTING.md, "Results that hold on every machine".
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

if not __package__:  # run as a file (python tools/x.py): import tools from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from tools import _notebooks  # noqa: E402

ROOT = _notebooks.ROOT
NO_SIMD = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"

# Injected into the kernel by the plus/minus variants (see the module docstring).
PERTURB_SITECUSTOMIZE = '''
import os
_eps = float(os.environ["BN_PROBE_PERTURB"])
import numpy as _np
import bnutils.data as _data

def _scaled(fn):
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        parts = [v * (1 + _eps) if isinstance(v, _np.ndarray) and v.dtype.kind == "f" else v
                 for v in out]
        return type(out)(*parts) if hasattr(out, "_fields") else tuple(parts)
    return wrapper

_data.load_digits_split = _scaled(_data.load_digits_split)
for _module, _name in (("bnutils.layers", "Linear"), ("bnutils.conv", "Conv2d")):
    try:
        _cls = getattr(__import__(_module, fromlist=[_name]), _name)
    except (ImportError, AttributeError):
        continue
    def _init(self, *args, _original=_cls.__init__, **kwargs):
        _original(self, *args, **kwargs)
        self.W = self.W * (1 + _eps)
    _cls.__init__ = _init
'''


def variants(perturb_dir: Path) -> dict[str, dict]:
    """Name -> environment changes of the kernel."""
    perturbed = {"PYTHONPATH": str(perturb_dir)}
    return {
        "default": {},
        "prescott": {"OPENBLAS_CORETYPE": "Prescott"},
        "haswell": {"OPENBLAS_CORETYPE": "Haswell"},
        "sandybridge": {"OPENBLAS_CORETYPE": "SandyBridge"},
        "nosimd": {"OPENBLAS_CORETYPE": "SandyBridge", "NPY_DISABLE_CPU_FEATURES": NO_SIMD},
        "plus": perturbed | {"BN_PROBE_PERTURB": "1e-12"},
        "minus": perturbed | {"BN_PROBE_PERTURB": "-1e-12"},
    }


def _root_conftest():
    spec = importlib.util.spec_from_file_location("bn_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compared_texts(cell) -> dict[str, str] | None:
    """What strict nbval compares of a cell: key -> text (None: the cell is not compared)."""
    if "nbval-ignore-output" in cell.metadata.get("tags", []) or cell.execution_count is None:
        return None
    texts: dict[str, str] = {}
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            texts[out["name"]] = texts.get(out["name"], "") + out["text"]
        elif out.get("output_type") == "error":
            texts["error"] = f"{out['ename']}: {out['evalue']}"
        else:
            data = out.get("data", {})
            if _notebooks.WIDGET_VIEW in data:
                return None
            for key in ("text/plain", "text/html", "text/markdown", "text/latex"):
                if key in data:
                    texts[key] = texts.get(key, "") + data[key]
    return texts


def compare(stored_nb, new_nb, conftest) -> list[tuple[int, str, str]]:
    """(cell index, verdict, detail) for every compared cell whose output moved."""
    moved = []
    for i, (old, new) in enumerate(zip(stored_nb.cells, new_nb.cells)):
        if old.cell_type != "code":
            continue
        old_texts, new_texts = compared_texts(old), compared_texts(new)
        if old_texts is None or old_texts == new_texts:
            continue
        spec = conftest.tolerance_of(old)
        summary = ""
        if spec is not None and new_texts is not None and old_texts.keys() == new_texts.keys():
            results = [conftest.tolerant_equal(old_texts[k], new_texts[k], spec) for k in old_texts]
            limit = ", ".join(f"{k} {spec[k]:g}" for k in ("abs", "rel") if spec.get(k))
            summary = f"largest deviation {max(dev for _, dev in results):.3g} ({limit})"
            if all(ok for ok, _ in results):
                moved.append((i, "within", summary))
                continue
        verdict = "STRICT" if spec is None else "BEYOND"
        diff = []
        for key in sorted(set(old_texts) | set(new_texts or {})):
            a, b = old_texts.get(key, ""), (new_texts or {}).get(key, "")
            diff += [line for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
                     if not line.startswith(("---", "+++", "@@"))]
        moved.append((i, verdict, "\n".join([summary] + ["      " + line for line in diff[:8]]).strip()))
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--variants", default="default,prescott,haswell,sandybridge,nosimd,plus,minus",
                        help="comma-separated names (default: all seven)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel (default 1)")
    args = parser.parse_args(argv)
    conftest = _root_conftest()
    failed = False
    with tempfile.TemporaryDirectory(prefix="bn-probe-") as tmp:
        tmp = Path(tmp)
        (tmp / "site").mkdir()
        (tmp / "site" / "sitecustomize.py").write_text(PERTURB_SITECUSTOMIZE, encoding="utf-8")
        table = variants(tmp / "site")
        chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = [v for v in chosen if v not in table]
        if unknown:
            parser.error(f"unknown variants {unknown}; choose from {sorted(table)}")

        def run_one(job):
            name, path = job
            dst = tmp / name / path.name
            dst.parent.mkdir(exist_ok=True)
            _notebooks.run(path, dst, workdir=path.resolve().parent, env=table[name],
                           log=lambda msg: print(msg, file=sys.stderr))
            return name, path, dst

        jobs = [(name, path) for path in args.notebooks for name in chosen]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            done = list(pool.map(run_one, jobs))
        for path in args.notebooks:
            stored = nbformat.read(path, as_version=4)
            print(f"== {path.name}")
            quiet = True
            for name, p, dst in done:
                if p != path:
                    continue
                for i, verdict, detail in compare(stored, nbformat.read(dst, as_version=4), conftest):
                    quiet = False
                    failed |= verdict != "within"
                    print(f"   cell {i:3d}  {name:12s} {verdict:7s} {detail}")
            if quiet:
                print("   every compared output as stored, under every variant")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
