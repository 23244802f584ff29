"""Timing BN implementations fairly: interleaved rounds, medians, speedups.

Two rules make timings on a shared, noisy machine comparable:

* **Interleave.** Every round times each variant once, in a rotating order, so a
  burst of load from another process hits all variants alike instead of one of them.
* **Report medians and ratios.** The median of the rounds ignores the odd slow round;
  a ratio between variants measured in the same rounds is far more stable than any
  absolute time.

``timing_ladder`` is notebook 04's experiment: the same BN forward + backward written
with Python loops, vectorized literally from the paper's equations, and optimized
(``bnutils.batchnorm_forward``/``batchnorm_backward``: the compact backward, no staged graph).
``benchmarks/run.py`` uses ``interleaved_medians`` for the full benchmark.

Introduced in notebook 04.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import numpy as np

from .._validation import as_float_array, check_int

__all__ = ["format_ladder", "interleaved_medians", "timing_ladder"]


def _calls_per_sample(fn: Callable[[], object], target_s: float) -> int:
    """How many back-to-back calls take about ``target_s`` seconds (at least 1)."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    return max(1, min(10_000, int(target_s / max(once, 1e-7))))


def interleaved_medians(funcs: dict, rounds: int = 11, target_s: float = 0.01,
                        before: dict | None = None) -> dict:
    """Median time per call of each function, measured in interleaved rounds.

    Each function is first called once (warm-up) and calibrated: a *sample* is
    ``number`` back-to-back calls lasting about ``target_s`` seconds (one call if a call
    takes longer). Then each of ``rounds`` rounds takes one sample of every function,
    in an order rotated by one each round. The garbage collector runs at the start of
    each round and is paused while a sample runs.

    Parameters
    ----------
    funcs : dict of str to callable
        Functions of no arguments; their return values are discarded.
    rounds : int, optional
        Samples per function (≥ 1); the median is over these.
    target_s : float, optional
        Approximate duration of one sample, in seconds.
    before : dict of str to callable, optional
        Untimed set-up run before each sample of the function with the same name
        (e.g. setting a thread count).

    Returns
    -------
    dict
        ``{name: {"median_s": float, "samples_s": list of float, "number": int}}``,
        times per call in seconds.

    Examples
    --------
    >>> res = interleaved_medians({"sum": lambda: sum(range(100))}, rounds=3, target_s=0.001)
    >>> sorted(res["sum"])
    ['median_s', 'number', 'samples_s']
    >>> len(res["sum"]["samples_s"])
    3

    Introduced in notebook 05.
    """
    if not funcs:
        raise ValueError("funcs must name at least one function to time")
    rounds = check_int(rounds, "rounds")
    if not target_s > 0:
        raise ValueError(f"target_s must be > 0, got {target_s!r}")
    before = before or {}
    for name, fn in funcs.items():
        if not callable(fn):
            raise TypeError(f"funcs[{name!r}] must be callable, got {type(fn).__name__}")
    names = list(funcs)
    number = {}
    for name in names:                      # warm-up and calibration
        if name in before:
            before[name]()
        number[name] = _calls_per_sample(funcs[name], target_s)
    samples = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            gc.collect()
            for name in order:
                if name in before:
                    before[name]()
                fn, k = funcs[name], number[name]
                gc.disable()
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                elapsed = time.perf_counter() - t0
                if gc_was_enabled:
                    gc.enable()
                samples[name].append(elapsed / k)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: {"median_s": float(np.median(samples[name])), "samples_s": samples[name],
                   "number": number[name]} for name in names}


def timing_ladder(shape=(64, 256), rounds: int = 11, seed: int = 0, target_s: float = 0.01) -> dict:
    """Time one BN forward + backward (training mode) three ways, float64, (N, D) input.

    * ``loops``: ``bnutils.reference.batchnorm_forward_loops``/``backward_loops``, one
      scalar at a time in Python;
    * ``vectorized``: ``bnutils.reference.batchnorm_forward_naive``/``backward_naive``,
      the paper's equations as whole-array NumPy expressions;
    * ``optimized``: ``bnutils.batchnorm_forward``/``batchnorm_backward`` (the compact
      closed-form backward instead of the staged graph's intermediate arrays).

    All three compute the same numbers (checked here before timing). Timings vary from
    machine to machine and run to run; the speedups are the stable part.

    Parameters
    ----------
    shape : tuple (N, D), optional
        Batch size and number of features; the loop version takes about
        ``4 µs · N · D`` per call, so keep it small.
    rounds : int, optional
        Interleaved rounds (≥ 1); medians are over these.
    seed : int, optional
        Seed of the random batch.
    target_s : float, optional
        Approximate duration of one timing sample (see ``interleaved_medians``).

    Returns
    -------
    dict
        ``shape``, ``rounds``, ``median_ms`` (per variant), ``speedup_vs_loops`` and
        ``speedup_vs_previous`` (per variant; ``loops`` is 1.0), ``max_abs_diff`` (of
        ``dx`` against the loop version).

    Examples
    --------
    >>> res = timing_ladder((8, 4), rounds=3, target_s=0.001)
    >>> list(res["median_ms"])
    ['loops', 'vectorized', 'optimized']
    >>> res["max_abs_diff"] < 1e-12
    True

    Introduced in notebook 04.
    """
    from .. import reference
    from ..batchnorm import batchnorm_backward, batchnorm_forward

    if not isinstance(shape, tuple) or len(shape) != 2:
        raise ValueError(f"shape must be a tuple (N, D) of integers, got {shape!r}")
    shape = (check_int(shape[0], "N (shape[0], the samples; BN needs 2)", minimum=2),
             check_int(shape[1], "D (shape[1], the features)"))
    d = shape[1]
    rng = np.random.default_rng(seed)
    x = as_float_array(rng.normal(1.0, 2.0, size=shape), "x")
    gamma = rng.uniform(0.5, 2.0, size=d)
    beta = rng.standard_normal(d)
    dout = rng.standard_normal(shape)
    variants = {
        "loops": (reference.batchnorm_forward_loops, reference.batchnorm_backward_loops),
        "vectorized": (reference.batchnorm_forward_naive, reference.batchnorm_backward_naive),
        "optimized": (batchnorm_forward, batchnorm_backward),
    }

    def step(fwd, bwd):
        def run():
            _, cache = fwd(x, gamma, beta)
            return bwd(dout, cache)
        return run

    funcs = {name: step(*fb) for name, fb in variants.items()}
    dx_loops = funcs["loops"]()[0]
    diff = max(float(np.max(np.abs(funcs[k]()[0] - dx_loops))) for k in ("vectorized", "optimized"))
    res = interleaved_medians(funcs, rounds=rounds, target_s=target_s)
    ms = {k: res[k]["median_s"] * 1e3 for k in funcs}
    names = list(funcs)
    return {
        "shape": tuple(int(s) for s in shape),
        "rounds": rounds,
        "median_ms": ms,
        "speedup_vs_loops": {k: ms["loops"] / ms[k] for k in names},
        "speedup_vs_previous": {k: (ms[names[i - 1]] / ms[k] if i else 1.0) for i, k in enumerate(names)},
        "max_abs_diff": diff,
    }


def format_ladder(result: dict) -> str:
    """A small text table of a ``timing_ladder`` result.

    Parameters
    ----------
    result : dict
        As returned by ``timing_ladder``: ``"shape"``, and ``"median_ms"``,
        ``"speedup_vs_loops"``, ``"speedup_vs_previous"``, each a dict by version name.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        ``result`` is not a dict with those keys.

    Examples
    --------
    >>> print(format_ladder({"shape": (8, 4), "median_ms": {"loops": 10.0, "optimized": 0.1},
    ...                      "speedup_vs_loops": {"loops": 1.0, "optimized": 100.0},
    ...                      "speedup_vs_previous": {"loops": 1.0, "optimized": 100.0}}))
    BN forward + backward, x of shape (8, 4), float64 (median per call)
    version            time   vs loops   vs previous
    loops         10.000 ms       1.0×          1.0×
    optimized      0.100 ms     100.0×        100.0×

    Introduced in notebook 04.
    """
    keys = ("shape", "median_ms", "speedup_vs_loops", "speedup_vs_previous")
    if not isinstance(result, dict) or any(k not in result for k in keys):
        raise TypeError(f"result must be the dict returned by timing_ladder (keys {keys}), got "
                        f"{type(result).__name__}"
                        + (f" with keys {sorted(result)}" if isinstance(result, dict) else ""))
    lines = [f"BN forward + backward, x of shape {tuple(result['shape'])}, float64 (median per call)",
             f"{'version':<11}{'time':>12}{'vs loops':>11}{'vs previous':>14}"]
    for name, ms in result["median_ms"].items():
        lines.append(f"{name:<11}{ms:>9.3f} ms{result['speedup_vs_loops'][name]:>10.1f}×"
                     f"{result['speedup_vs_previous'][name]:>13.1f}×")
    return "\n".join(lines)
