"""Issue 25, item by item: each attack the issue lists, as it lists it.

Every ``fooled`` case got a ✓ at 6e8cde2 (the code the issue was filed against) and must
get a ✗ now; every ``rejected`` case is a right answer that got a ✗ and must get a ✓. The
attack battery (tests/test_checks_attacks.py) runs each kind of attack on every check;
this file keeps the issue's own examples, so each fails on the code before the fix.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
from check_helpers import REFERENCES

from bnutils.batchnorm import BatchNorm, batchnorm_backward, batchnorm_backward_staged, batchnorm_forward
from bnutils.checks import (
    backward,
    conv_residual,
    covariate_shift,
    forward,
    inference,
    limits,
    scaling,
    start,
    training,
)
from bnutils.lab.learning_rates import is_stable
from bnutils.layers import Linear, ReLU, Sequential
from bnutils.reference import batchnorm_backward_loops
from bnutils.residual import Residual


def _memo(fn):
    """The answer to the first call, returned for every call (a memoised answer)."""
    memo = {}
    return lambda *args, **kwargs: memo.setdefault("answer", fn(*args, **kwargs))


def _times(fn, factor, dtype):
    """``fn``'s answer, every float array ×factor and returned as ``dtype``."""
    def scaled(*args):
        out = fn(*args)
        parts = out if isinstance(out, tuple) else (out,)
        parts = tuple((factor * np.asarray(p, dtype=np.float64)).astype(dtype) for p in parts)
        return parts if isinstance(out, tuple) else parts[0]
    return scaled


def _bn(width, gamma=0.0):
    bn = BatchNorm(width)
    bn.gamma[:] = gamma
    return bn


def _second_pass(X, W, dout, a):
    """4.5 by a second forward and backward pass at a·W, which the exercise forbids."""
    _, cache = batchnorm_forward(X @ (a * W), np.ones(W.shape[1]), np.zeros(W.shape[1]))
    return X.T @ batchnorm_backward(dout, cache)[0]


def _largest_stable_lr(make_model, lrs, X, y, steps=100, batch_size=60, *, train_steps=None):
    """Exercise 5.2 as a learner writes it: a fresh model trained at every rate;
    ``train_steps`` trains that many steps instead of ``steps``."""
    from bnutils.training import train

    stable = [lr for lr in lrs if is_stable(train(make_model(), X, y, lr=lr, steps=train_steps
                                                  or steps, batch_size=batch_size, seed=0), 10)]
    return max(stable) if stable else None


def _adabn_left_training(model, X):
    return REFERENCES["limits.adabn"](model, X).train()


# (check, the learner's function): each got a ✓ at 6e8cde2 and must get a ✗.
FOOLED = {
    # the learner's dtype set the tolerance
    "4.2 ×1.003 as float16": (backward.bn_backward,
                              _times(REFERENCES["backward.bn_backward"], 1.003, np.float16)),
    "4.2 ×1.00005 as float32": (backward.bn_backward,
                                _times(REFERENCES["backward.bn_backward"], 1.00005, np.float32)),
    "3.2 ×1.003 as float16": (forward.bn_forward,
                              _times(REFERENCES["forward.bn_forward"], 1.003, np.float16)),
    # one fixed input: a memoised answer passed
    "warm-up memoised": (start.standardize, (lambda m: lambda x: m.setdefault(
        "v", REFERENCES["start.standardize"](x)))({})),
    "3.3 memoised": (forward.bn_forward_spatial, _memo(REFERENCES["forward.bn_forward_spatial"])),
    "6.2 memoised": (inference.fold_linear_bn, _memo(REFERENCES["inference.fold_linear_bn"])),
    "9.3 memoised": (limits.merge_stats, _memo(REFERENCES["limits.merge_stats"])),
    "9.4 memoised": (limits.adabn, _memo(REFERENCES["limits.adabn"])),
    # forbidden shortcuts
    "4.2 batchnorm_backward_staged": (backward.bn_backward, batchnorm_backward_staged),
    "4.2 batchnorm_backward_loops": (backward.bn_backward, batchnorm_backward_loops),
    "4.3 batchnorm_backward": (backward.fixed_backward, batchnorm_backward),
    "4.5 a second backward pass": (backward.scaled_gradient, _second_pass),
    # checks that tested less than their statement
    "2.2 a count, not a fraction": (covariate_shift.most_saturated_layer, lambda acts, t: int(
        np.argmax([np.sum(np.abs(a) > t) for a in acts]))),
    "1.3 1.9/λ_max (good only at κ 17-100)": (scaling.fastest_lr,
                                              lambda H: 1.9 / np.linalg.eigvalsh(H)[-1]),
    "5.2 steps ignored": (training.largest_stable_lr_check,
                          lambda *args, **kwargs: _largest_stable_lr(*args, **kwargs,
                                                                     train_steps=100)),
    "8.2 no ReLU": (conv_residual.zero_gamma_block, lambda w, r: Residual(Sequential(
        Linear(w, w, bias=False, rng=r), _bn(w)))),
    "8.2 a biased Linear": (conv_residual.zero_gamma_block, lambda w, r: Residual(Sequential(
        ReLU(), Linear(w, w, bias=True, rng=r), _bn(w)))),
    "9.4 a copy left in training mode": (limits.adabn, _adabn_left_training),
}


@pytest.mark.parametrize("name", list(FOOLED))
def test_an_attack_from_the_issue_is_rejected(name):
    chk, fn = FOOLED[name]
    result = chk.evaluate(fn)
    assert not result.passed, f"{name}: {result.message}"
    assert "gap in the check" not in result.message, result.message


def test_an_endless_function_is_stopped(monkeypatch):
    """``check.standardize(lambda x: time.sleep(10**6))`` never answered. (3 s here, with the
    limit lowered to 0.2 s: the code before the fix waited the 3 s and gave a ✓.)"""
    monkeypatch.setattr(start.standardize, "time_limit", 0.2, raising=False)
    reference = REFERENCES["start.standardize"]
    begin = time.monotonic()
    result = start.standardize.evaluate(lambda x: (time.sleep(3), reference(x))[1])
    assert not result.passed and "stopped after 0.2 s" in result.message, result.message
    assert time.monotonic() - begin < 2.5


def _float32_cast_back(fn):
    def computed_in_float32(*args):
        args32 = [a.astype(np.float32) if isinstance(a, np.ndarray) else a for a in args]
        return tuple(np.asarray(p, dtype=np.float32).astype(np.float64) for p in fn(*args32))
    return computed_in_float32


# (check, the learner's function, extra arguments): right answers that got a ✗.
REJECTED = {
    "3.4 a list": (forward.output_stats,
                   lambda *a: list(REFERENCES["forward.output_stats"](*a)), ()),
    "4.1 a list": (backward.dgamma_dbeta,
                   lambda *a: list(REFERENCES["backward.dgamma_dbeta"](*a)), ()),
    "9.3 a list": (limits.merge_stats, lambda *a: list(REFERENCES["limits.merge_stats"](*a)), ()),
    "8.1 float32 cast to float64": (conv_residual.spatial_bn_backward, _float32_cast_back(
        REFERENCES["conv_residual.spatial_bn_backward"]), ()),
    "5.2 a 0-d array": (training.largest_stable_lr_check, lambda *a, **k: (
        None if (lr := _largest_stable_lr(*a, **k)) is None else np.array(lr)), ()),
}


@pytest.mark.parametrize("name", list(REJECTED))
def test_a_right_answer_from_the_issue_is_accepted(name):
    chk, fn, extra = REJECTED[name]
    result = chk.evaluate(fn, *extra)
    assert result.passed, f"{name}: {result.message}"


def test_a_broken_measurement_is_not_a_gap_in_the_check():
    """9.1 with NaN in the notebook's ``measured`` blamed "a gap in the check"; it names the
    measurement."""
    measured = {"none": (0.87, 0.94), "bn": (float("nan"), 0.93), "ln": (0.88, 0.93),
                "gn": (0.88, 0.93)}
    result = limits.batch_of_two.evaluate(lambda: {"none", "ln", "gn"}, copy.deepcopy(measured))
    assert not result.passed and "gap in the check" not in result.message, result.message
    assert "bn" in result.message or "measure" in result.message, result.message
