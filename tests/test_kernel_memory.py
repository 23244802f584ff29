"""A learner's kernel stays small (issue 27): what made it hold memory, and the benchmark.

* ``Layer.clear_caches`` drops everything a forward kept for backward, in every layer
  class (a batch-sized array left anywhere on a layer is found, whatever its name);
* ``evaluate`` calls it: a model kept after ``train(X_test=...)`` holds no activation of
  the test set (notebook 08 kept 18 CNNs with theirs: 350 MB);
* the digits are read without importing scikit-learn (about 85 MB per kernel), and are
  the same numbers as ``sklearn.datasets.load_digits``;
* benchmarks/kernel_memory.py measures what a kernel holds.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from bnutils.batch_renorm import BatchRenorm
from bnutils.batchnorm import BatchNorm
from bnutils.conv import Conv2d, Flatten, GlobalAvgPool
from bnutils.dropout import Dropout
from bnutils.lab.finetuning import FrozenBatchNorm
from bnutils.layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from bnutils.models import make_mlp
from bnutils.noisy_bn import NoisyBatchNorm
from bnutils.normalization import GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from bnutils.residual import Residual, SkipInit
from bnutils.sharded_bn import ShardedBatchNorm
from bnutils.training import evaluate, train
from bnutils.weight_norm import WeightNormLinear

ROOT = Path(__file__).resolve().parents[1]
N = 37                        # a batch size no parameter has, so a batch-sized array is a cache


def _dense(D=4):
    return np.random.default_rng(0).standard_normal((N, D))


def _images(C=2):
    return np.random.default_rng(0).standard_normal((N, C, 4, 4))


LAYERS = {
    "Linear": (lambda: Linear(4, 3, rng=0), _dense),
    "ReLU": (ReLU, _dense),
    "Sigmoid": (Sigmoid, _dense),
    "Tanh": (Tanh, _dense),
    "BatchNorm": (lambda: BatchNorm(4), _dense),
    "BatchNorm eval": (lambda: BatchNorm(4).eval(), _dense),
    "BatchRenorm": (lambda: BatchRenorm(4), _dense),
    "NoisyBatchNorm": (lambda: NoisyBatchNorm(4, rng=0), _dense),
    "ShardedBatchNorm": (lambda: ShardedBatchNorm(4, num_devices=1), _dense),
    "WeightNormLinear": (lambda: WeightNormLinear(4, 3, rng=0), _dense),
    "FrozenBatchNorm": (lambda: FrozenBatchNorm(np.zeros(4), np.ones(4), np.ones(4), np.zeros(4)), _dense),
    "LayerNorm": (lambda: LayerNorm(4), _dense),
    "RMSNorm": (lambda: RMSNorm(4), _dense),
    "GroupNorm": (lambda: GroupNorm(2, 2), _images),
    "InstanceNorm": (lambda: InstanceNorm(2), _images),
    "Conv2d": (lambda: Conv2d(2, 3, rng=0), _images),
    "GlobalAvgPool": (GlobalAvgPool, _images),
    "Flatten": (Flatten, _images),
    "Dropout": (lambda: Dropout(0.5, rng=0), _dense),
    "Dropout eval": (lambda: Dropout(0.5, rng=0).eval(), _dense),
    "SkipInit": (lambda: SkipInit(0.5), _dense),
    "Residual": (lambda: Residual(Sequential(Linear(4, 4, rng=0), BatchNorm(4), ReLU())), _dense),
    "Sequential": (lambda: make_mlp([4, 5, 3], norm="bn", rng=0), _dense),
}


def _batch_sized(obj, seen=None) -> list[str]:
    """Paths to every array (or shape) with a batch axis of N (or N·H·W rows) reachable from ``obj``."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return ["array"] if obj.ndim and obj.shape[0] in (N, N * 16) else []
    if isinstance(obj, tuple) and obj and all(isinstance(v, int) for v in obj):
        return ["shape"] if obj[0] in (N, N * 16) else []     # the shape a backward checks dout against
    if isinstance(obj, (list, tuple)):
        return [f"[{i}].{p}" for i, v in enumerate(obj) for p in _batch_sized(v, seen)]
    if isinstance(obj, dict):
        return [f"[{k!r}].{p}" for k, v in obj.items() for p in _batch_sized(v, seen)]
    if dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__"):
        fields = (vars(obj) if hasattr(obj, "__dict__")
                  else {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
        return [f"{k}.{p}" for k, v in fields.items() if not isinstance(v, np.random.Generator)
                for p in _batch_sized(v, seen)]
    return []


@pytest.mark.parametrize("name", LAYERS)
def test_clear_caches_leaves_no_batch_sized_array_and_backward_asks_for_a_forward(name):
    make, data = LAYERS[name]
    layer, x = make(), data()
    out = layer.forward(x)
    assert _batch_sized(layer), f"{name}: the test found no cache to clear"
    params = {k: v.copy() for k, v in layer.params().items()}
    assert layer.clear_caches() is layer
    assert _batch_sized(layer) == [], f"{name} still holds batch-sized arrays"
    assert {k: v.tolist() for k, v in layer.params().items()} == {k: v.tolist() for k, v in params.items()}
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones_like(out))
    layer.forward(x)                             # and it trains on as before
    layer.backward(np.ones_like(out))


def test_evaluate_keeps_no_activation_and_changes_no_number():
    X = np.random.default_rng(1).standard_normal((300, 6))
    y = (X[:, 0] > 0).astype(int)
    X_test, y_test = X[:N], y[:N]
    runs = []
    for _ in range(2):
        model = make_mlp([6, 16, 2], norm="bn", rng=0)
        history = train(model, X, y, lr=0.1, steps=30, batch_size=32, X_test=X_test, y_test=y_test,
                        eval_every=10, seed=0)
        runs.append((model, history))
        assert _batch_sized(model) == [], "after train(X_test=...) the model keeps the test set's activations"
    (model, history), (model2, _) = runs
    assert evaluate(model, X_test, y_test) == evaluate(model2, X_test, y_test)
    assert history.test_accuracy[-1] == evaluate(model, X_test, y_test)[0]
    # a forward after evaluate works as ever: outputs are the new batch's
    model.forward(X[:5])
    assert [o.shape[0] for o in model.outputs] == [5] * len(model.layers)


def test_the_digits_are_scikit_learns_numbers():
    from sklearn.datasets import load_digits

    from bnutils.data import _digits

    data, target = _digits()
    digits = load_digits()
    assert data.dtype == digits.data.dtype and np.array_equal(data, digits.data)
    assert np.array_equal(target, digits.target)


def test_loading_the_digits_does_not_import_scikit_learn():
    code = ("import sys; from bnutils.data import load_digits_split; load_digits_split(); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _benchmark():
    spec = importlib.util.spec_from_file_location("kernel_memory", ROOT / "benchmarks" / "kernel_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow          # kernels (make check leaves it to make test)
def test_the_benchmark_sees_what_a_notebook_keeps(tmp_path):
    """A notebook that keeps 200 MB is measured as keeping about 200 MB; one that frees it is not."""
    km = _benchmark()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np\nbig = np.ones(25_000_000)   # 200 MB"),
                nbformat.v4.new_markdown_cell("text"),
                nbformat.v4.new_code_cell("kept = big.sum()")]
    path = tmp_path / "keeps.ipynb"
    nbformat.write(nb, path)
    kept = km.measure(path)
    nb.cells.append(nbformat.v4.new_code_cell("del big"))
    nbformat.write(nb, path)
    freed = km.measure(path, per_cell=True)
    assert kept["errors"] == [] and freed["errors"] == []
    assert 190 <= kept["after_mb"] - kept["start_mb"] <= 260
    assert freed["after_mb"] - freed["start_mb"] < 60 and freed["peak_mb"] - freed["start_mb"] >= 190
    assert [c["cell"] for c in freed["cells"]] == [0, 2, 3]
    table = km.table({"keeps": kept}, budget=100)
    assert "| keeps |" in table and "**no**" in table
