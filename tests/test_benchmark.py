"""The benchmark scripts run and report what they promise (benchmarks/, bnutils.lab.timing).

These tests check that the scripts work and that their reference variants compute BN
correctly; they never assert on timings (benchmarks report, they are not timed tests).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bnutils
from bnutils.lab.timing import format_ladder, interleaved_medians, timing_ladder

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_py_on_tiny_shapes_writes_json_and_png(tmp_path):
    cmd = [sys.executable, str(BENCH / "run.py"), "--shapes", "8x4,2x3x2x2", "--rounds", "3",
           "--target-ms", "1", "--no-torch", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"})
    assert proc.returncode == 0, proc.stderr
    assert "median ms per call" in proc.stdout and "bn/floor" in proc.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    assert report["method"]["rounds"] == 3
    assert report["machine"]["env"]["OPENBLAS_NUM_THREADS"] == "1"   # pinned by the script itself
    rows = {(r["dtype"], tuple(r["shape"])): r for r in report["results"]}
    assert set(rows) == {(d, s) for d in ("float32", "float64") for s in ((8, 4), (2, 3, 2, 2))}
    for (_, shape), r in rows.items():
        expected = {"bnutils", "naive", "floor"} | ({"loops", "fewest"} if shape == (8, 4) else set())
        assert set(r["median_ms"]) == expected
        assert all(v > 0 for v in r["median_ms"].values())
        assert all(len(s) == 3 for s in r["samples_ms"].values())
        ms = r["median_ms"]
        assert r["ratios"]["naive_over_bnutils"] == pytest.approx(ms["naive"] / ms["bnutils"])
        assert max(r["dx_rel_error_vs_bnutils"].values()) < 1e-3
    assert report["goals"] == []       # none of the goal shapes was run


def test_against_commit_times_an_earlier_bnutils_beside_this_one():
    """benchmarks/against_commit.py imports bnutils at a commit under another name and
    times both; at HEAD both are the same code, so the ratio is near 1 (a loose bound:
    one round of tiny shapes is noisy)."""
    cmd = [sys.executable, str(BENCH / "against_commit.py"), "HEAD", "--shapes", "8x4,2x3x2x2",
           "--dtypes", "float32", "--rounds", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("float32")]
    assert len(rows) == 2, proc.stdout
    for row in rows:
        then, now, ratio = float(row[-3]), float(row[-2]), float(row[-1].rstrip("×"))
        # the times print to 3 decimals: at ~0.07 ms their rounding moves the ratio by ~1.5 %
        assert then > 0 and now > 0 and ratio == pytest.approx(now / then, rel=0.03, abs=0.01)
        assert 0.2 < ratio < 5


def test_goals_are_evaluated_from_the_ratios():
    run = load("run")
    results = [{"dtype": "float32", "shape": [64, 256], "ratios": {"naive_over_bnutils": 1.3}},
               {"dtype": "float32", "shape": [1024, 4096],
                "ratios": {"bnutils_over_floor": 7.0, "naive_over_bnutils": 3.0}}]
    goals = {(tuple(g["shape"]), g["ratio"]): g["passed"] for g in run.evaluate_goals(results)}
    assert goals == {((64, 256), "naive_over_bnutils"): True,
                     ((1024, 4096), "bnutils_over_floor"): False,
                     ((1024, 4096), "naive_over_bnutils"): True,
                     ((1024, 4096), "bnutils_over_torch1"): None}    # torch not run: skipped


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 150])          # one block; three blocks of ROWS = 64
def test_fewest_passes_version_is_correct_on_well_scaled_input(n, dtype):
    fewest = load("fewest_passes")
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, (n, 5)).astype(dtype)       # the benchmark's inputs: mean 1, std 2
    gamma, beta = rng.uniform(0.5, 2, 5).astype(dtype), rng.standard_normal(5).astype(dtype)
    dout = rng.standard_normal((n, 5)).astype(dtype)
    out, cache = fewest.forward(x, gamma, beta)
    ref_out, ref_cache = bnutils.batchnorm_forward(x, gamma, beta)
    tol = 2e-5 if dtype == np.float32 else 1e-10
    for a, b in zip((out, *fewest.backward(dout, cache)),
                    (ref_out, *bnutils.batchnorm_backward(dout, ref_cache))):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    rm, rv = fewest.update_running_stats(np.zeros(5), np.ones(5), cache)
    ref_rm, ref_rv = bnutils.update_running_stats(np.zeros(5), np.ones(5), ref_cache)
    np.testing.assert_allclose(rm, ref_rm, rtol=tol)
    np.testing.assert_allclose(rv, ref_rv, rtol=tol)


def test_fewest_passes_version_loses_the_variance_to_cancellation():
    """Why bnutils does not use it: E[x²] − μ² in float32 at mean 1e4, std 1."""
    fewest = load("fewest_passes")
    x = np.random.default_rng(3).normal(1e4, 1.0, (512, 4)).astype(np.float32)
    _, (_, _, var, _, _) = fewest.forward(x, np.ones(4, np.float32), np.zeros(4, np.float32))
    _, cache = bnutils.batchnorm_forward(x, np.ones(4, np.float32), np.zeros(4, np.float32))
    exact = x.astype(np.float64).var(axis=0)
    assert np.max(np.abs(cache.var - exact) / exact) < 1e-5        # two-pass: fine
    assert np.max(np.abs(var - exact) / exact) > 1e-2              # one-pass: off by > 1 %


def test_ratios_include_the_fewest_passes_bound():
    run = load("run")
    r = run.ratios({"bnutils": 2.0, "naive": 5.0, "fewest": 1.5, "floor": 0.5, "torch1": 1.0})
    assert r["fewest_over_torch1"] == pytest.approx(1.5)
    assert "fewest_over_torch1" not in run.ratios({"bnutils": 2.0, "fewest": 1.5, "floor": 0.5})


def test_interleaved_medians_rotates_and_validates():
    calls = []
    res = interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              rounds=4, target_s=1e-9)
    assert all(res[k]["number"] >= 1 and len(res[k]["samples_s"]) == 4 for k in "ab")
    timed = calls[2:]            # after one warm-up call each
    assert timed[:2] == ["a", "b"] and timed[2:4] == ["b", "a"]   # the order rotates
    with pytest.raises(ValueError, match="rounds"):
        interleaved_medians({"a": lambda: None}, rounds=0)
    with pytest.raises(ValueError, match="at least one"):
        interleaved_medians({})
    with pytest.raises(TypeError, match="callable"):
        interleaved_medians({"a": 3})


def test_timing_ladder_agrees_and_formats():
    res = timing_ladder((8, 4), rounds=3, target_s=1e-3)
    assert list(res["median_ms"]) == ["loops", "vectorized", "optimized"]
    assert res["max_abs_diff"] < 1e-12
    assert res["speedup_vs_loops"]["loops"] == 1.0
    assert res["speedup_vs_previous"]["optimized"] == pytest.approx(
        res["median_ms"]["vectorized"] / res["median_ms"]["optimized"])
    text = format_ladder(res)
    assert text.splitlines()[0].startswith("BN forward + backward, x of shape (8, 4)")
    assert len(text.splitlines()) == 5
    with pytest.raises(ValueError, match="shape"):
        timing_ladder((8, 4, 2))
    with pytest.raises(ValueError, match=r"N \(shape\[0\], the samples; BN needs 2\) must be ≥ 2, got 1"):
        timing_ladder((1, 4))


def test_course_runtime_finds_explorers_and_slider_values():
    import ipywidgets as widgets

    cr = load("course_runtime")
    names = [name for name, _ in cr.explorers()]
    assert "start.standardize_explorer" in names
    assert all(name.endswith("_explorer") for name in names)
    s = widgets.FloatSlider(value=3.0, min=-8.0, max=8.0, step=0.5)
    vals = cr.values_for(s)
    assert vals[-1] == 3.0 and len(set(vals)) == len(vals) and all(-8 <= v <= 8 for v in vals)
    assert cr.values_for(widgets.IntSlider(value=4, min=2, max=10))[-1] == 4
    assert cr.values_for(widgets.Checkbox(value=True)) == [False, True, False, True]
    dd = widgets.Dropdown(options=[("one", 1), ("two", 2)], value=1)
    assert cr.values_for(dd) == [2, 1]


def test_nbtimer_plugin_times_each_file(pytester, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH))
    out = tmp_path / "times.json"
    monkeypatch.setenv("NBTIMER_OUT", str(out))
    pytester.makepyfile(test_a="def test_1(): pass\ndef test_2(): assert False\n",
                        test_b="def test_3(): pass\n")
    pytester.runpytest("-p", "_nbtimer", "-o", "addopts=", "-p", "no:cacheprovider")
    data = json.loads(out.read_text())
    assert data["test_a.py"]["cells"] == 2 and data["test_a.py"]["failed"] == 1
    assert data["test_b.py"]["cells"] == 1 and data["test_b.py"]["failed"] == 0
    assert all(e["seconds"] >= 0 and e["cpu_seconds"] >= 0 for e in data.values())
