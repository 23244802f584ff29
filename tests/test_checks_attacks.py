"""The attack battery (issue 25): every exercise self-check × every way to get a ✓ unearned.

The bad-input battery (tests/test_bad_input_battery.py) feeds the library bad input; this
one feeds the self-checks answers that should not pass, and right answers written
differently that should. Every check found in ``bnutils.checks`` (``discover_checks``)
starts from its reference solution (``check_helpers.REFERENCES``) and gets each attack:

* ``downcast`` — a slightly wrong answer (the reference's ×1.003) returned as float16, and
  one ×1.00005 returned as float32: must fail (the tolerance comes from the exercise,
  never from the answer's dtype);
* ``memo`` — the answer to the first call returned for every call: must fail;
* ``replay`` — the answers of one earlier evaluation replayed in call order, doing none of
  the work (a hard-coded answer): must fail (every check draws a fresh input per call);
* ``first_right`` — right on the first call, slightly wrong on every later one: must fail;
* ``shortcut`` — where the exercise forbids something, each forbidden route to the right
  answer: must fail, with a hint that says what the check watched for;
* ``slow`` — the reference after an endless ``time.sleep``, and an endless busy loop, with
  the check's time limit lowered to 0.05 s: must be stopped, with the time-limit verdict;
* ``container`` — the right answer in other valid containers (arrays as nested lists,
  numbers as 0-d arrays, tuples as lists, float32 computations cast back to float64):
  must pass.

The reference must pass, twice with the same line (a fresh input never changes the ✓
line). An attack that does not apply to a check (an index has no float16 version, an
exercise without input has nothing to memoise) is listed in ``NOT_APPLICABLE`` with the
reason. A new check joins automatically: ``discover_checks`` finds it and every attack
kind runs on it (``ATTACKS`` needs an entry only for a non-default wrong answer or a
forbidden shortcut); until ``check_helpers.REFERENCES`` holds its reference solution, its
attacks and ``test_every_check_is_attacked`` fail, naming it. ``pytest -s`` prints the
counts.

Fresh inputs make every run different: by default each attack runs once (about 10 s for
the whole battery); ``BNUTILS_BATTERY=long`` runs each 30 times, to show that no fresh draw
lets an attack through or rejects a right answer.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
from check_helpers import REFERENCES, discover_checks

from bnutils.batchnorm import BatchNorm
from bnutils.layers import Sequential

CHECKS = discover_checks()
REPEAT = 30 if os.environ.get("BNUTILS_BATTERY") == "long" else 1
SLOW_LIMIT = 0.05          # seconds: the lowered time limit of the slow attacks


# --------------------------------------------------------------------------- answers as trees

def _is_float(v) -> bool:
    return isinstance(v, (float, np.floating)) or (isinstance(v, np.ndarray) and v.dtype.kind == "f")


def _map(value, fn):
    """``fn`` applied to every float number / float array inside tuples and lists."""
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    if _is_float(value):
        return fn(value)
    return value


def _scaled(value, factor, dtype=np.float64):
    def apply(v):
        out = np.asarray(v, dtype=np.float64) * factor
        return out.astype(dtype) if np.ndim(v) else dtype(out)
    return _map(value, apply)


def _bn_stats_scaled(model, factor, dtype=np.float64):
    """An adapted model (Exercise 9.4) whose BN statistics are off by ``factor``."""
    model = copy.deepcopy(model)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            layer.running_mean = (layer.running_mean * factor).astype(dtype)
            layer.running_var = (layer.running_var * factor).astype(dtype)
    return model


def _other_label(labels):
    return (np.asarray(labels) + 1) % 3


def _one_bn_less(model):
    """Exercise 5.1's network without its last BatchNorm."""
    layers = list(model.layers)
    last = max(i for i, layer in enumerate(layers) if isinstance(layer, BatchNorm))
    return Sequential(*(layers[:last] + layers[last + 1:]))


def _gamma_one(block):
    """Exercise 8.2's block with γ back at 1 (no longer the identity)."""
    for layer in block.branch.layers:
        if isinstance(layer, BatchNorm):
            layer.gamma[:] = 1.0
    return block


# --------------------------------------------------------------------------- the registry

@dataclass
class Attacks:
    """How to attack one check.

    wrong : callable, optional
        The reference's answer made slightly wrong, for ``first_right`` (default ×1.003 on
        every float); ``downcast(answer, factor, dtype)`` the same for ``downcast`` (default
        the float leaves ×factor cast to dtype).
    shortcuts : dict
        The forbidden routes to the right answer, name -> function (``shortcut``), and the
        words the hint must say.
    factors : tuple
        The (factor, dtype) pairs of ``downcast``; an exercise whose stated tolerance
        accepts ×1.00005 (numbers typed by hand, a rate judged by its speed) has only the
        float16 one.
    """

    wrong: object = None
    downcast: object = None
    factors: tuple = ((1.003, np.float16), (1.00005, np.float32))
    shortcuts: dict = field(default_factory=dict)
    watched: tuple = ()
    containers: dict = field(default_factory=dict)


def _shortcuts_backward():
    from check_helpers import _backward

    from bnutils import batchnorm_backward, batchnorm_backward_staged
    from bnutils.reference import batchnorm_backward_loops, batchnorm_backward_naive

    def via_layer(dout, cache):
        bn = BatchNorm(dout.shape[1])
        bn._cache = cache
        return bn.backward(dout), bn.dgamma, bn.dbeta

    shortcuts = {"batchnorm_backward": batchnorm_backward,
                 "batchnorm_backward_staged": batchnorm_backward_staged,
                 "batchnorm_backward_loops": batchnorm_backward_loops,
                 "batchnorm_backward_naive": batchnorm_backward_naive,
                 "BatchNorm.backward": via_layer}
    assert _backward is not None
    return shortcuts


def _shortcuts_scaled_gradient():
    from check_helpers import _scaled_gradient

    def at_aW(X, W, dout, a):
        return _scaled_gradient(X, a * W, dout, 1.0)

    def both(X, W, dout, a):
        _scaled_gradient(X, W, dout, a)
        return _scaled_gradient(X, a * W, dout, 1.0)

    return {"a pass at a·W": at_aW, "a second pass": both}


def _shortcuts_output_stats():
    from bnutils.batchnorm import batchnorm_forward

    def from_a_batch(gamma, beta, var, eps):
        x = np.array([[-1.0], [1.0]]) * np.sqrt(var)        # a batch whose variance is var
        out = batchnorm_forward(x, np.array([gamma]), np.array([beta]), eps)[0]
        return float(out.mean()), float(out.std())

    return {"a batch through batchnorm_forward": from_a_batch}


def _shortcuts_update_ratios():
    from bnutils.lab.dynamics import update_to_data_ratio

    def library(pairs, lr):
        return [update_to_data_ratio(W, dW, lr) for W, dW in pairs]

    def via_alias(pairs, lr):
        ratio = update_to_data_ratio          # reached by another name
        return list(map(lambda p: ratio(*p, lr=lr), pairs))

    return {"update_to_data_ratio": library, "update_to_data_ratio by another name": via_alias}


def _to_float32(a):
    """float64 arrays (also inside a cache) as float32."""
    if isinstance(a, np.ndarray) and a.dtype == np.float64:
        return a.astype(np.float32)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return dataclasses.replace(a, **{f.name: _to_float32(getattr(a, f.name))
                                         for f in dataclasses.fields(a) if f.init})
    return a


def _float32_round_trip(reference):
    """The reference computed on float32 inputs, its answer cast back to float64 (written
    without a loop of its own: Exercise 4.2 refuses loops)."""
    def fn(*args, **kwargs):
        out = reference(*map(_to_float32, args), **kwargs)
        return _map(out, lambda v: np.asarray(v, dtype=np.float64) if np.ndim(v) else float(v))
    return fn


ATTACKS = {key: Attacks() for key in REFERENCES}
ATTACKS["covariate_shift.most_saturated_layer"] = Attacks(wrong=lambda i: i + 1)
ATTACKS["covariate_shift.layers_to_grow"] = Attacks(wrong=lambda n: n + 1)
# numbers typed by hand are right to 2e-3; a rate is right if it converges as fast
ATTACKS["forward.bn_by_hand"] = Attacks(factors=((1.003, np.float16),))
ATTACKS["scaling.fastest_lr"] = Attacks(factors=((1.003, np.float16),))
ATTACKS["inference.predict"] = Attacks(wrong=_other_label)
ATTACKS["limits.adabn"] = Attacks(
    wrong=lambda m: _bn_stats_scaled(m, 1.003),
    downcast=lambda m, factor, dtype: _bn_stats_scaled(m, factor, dtype))
ATTACKS["training.add_batchnorm"] = Attacks(wrong=_one_bn_less)
ATTACKS["conv_residual.zero_gamma_block"] = Attacks(wrong=_gamma_one)
ATTACKS["backward.bn_backward"] = Attacks(shortcuts=_shortcuts_backward(),
                                          watched=("which the check watches", "own compact"))
ATTACKS["backward.fixed_backward"] = Attacks(shortcuts=_shortcuts_backward(),
                                             watched=("which the check watches", "repair"))
ATTACKS["backward.scaled_gradient"] = Attacks(shortcuts=_shortcuts_scaled_gradient(),
                                              watched=("the check watches", "one pass at W"))
ATTACKS["backward.scaled_gradient_per_feature"] = Attacks(
    shortcuts=_shortcuts_scaled_gradient(), watched=("the check watches", "one pass at W"))
ATTACKS["forward.output_stats"] = Attacks(shortcuts=_shortcuts_output_stats(),
                                          watched=("without computing any batch",))
ATTACKS["training.update_ratios"] = Attacks(shortcuts=_shortcuts_update_ratios(),
                                            watched=("which the check watches", "np.log10"))

#: (check, attack) pairs that do not apply, with the reason.
NOT_APPLICABLE = {
    ("forward.bn_by_hand", "memo"): "takes no input: its by-hand numbers are the same at every call",
    ("forward.bn_by_hand", "replay"): "takes no input: the exercise is typing in numbers",
    ("forward.bn_by_hand", "first_right"): "one call only (no input)",
    ("limits.batch_of_two", "memo"): "takes no input: the answer is a prediction, the same at every call",
    ("limits.batch_of_two", "replay"): "takes no input: the exercise is typing in a prediction",
    ("limits.batch_of_two", "first_right"): "one call only (no input)",
    ("limits.batch_of_two", "downcast"): "the answer is a set of names: no precision",
    ("covariate_shift.most_saturated_layer", "downcast"): "the answer is an index: no precision",
    ("covariate_shift.layers_to_grow", "downcast"): "the answer is a whole number of layers: no "
                                                    "precision",
    ("inference.predict", "downcast"): "the answer is class labels (whole numbers): no precision",
    ("training.add_batchnorm", "downcast"): "the answer is a network's structure: no precision",
    **{(f"inventory.{name}", kind): why for name in ("before", "after") for kind, why in (
        ("memo", "takes no input: the answers are typed in, the same at every call"),
        ("replay", "takes no input: the exercise is choosing answers"),
        ("first_right", "one call only (no input)"),
        ("downcast", "the answers are letters: no precision"))},
    ("conv_residual.zero_gamma_block", "downcast"): "the answer is a block's structure; its "
                                                    "weights are checked to be exactly rng's",
}
KINDS = ("reference", "downcast", "memo", "replay", "first_right", "shortcut", "slow", "container")


# --------------------------------------------------------------------------- the attacks

def _memo(reference):
    memory = {}

    def fn(*args, **kwargs):
        if "answer" not in memory:
            memory["answer"] = reference(*args, **kwargs)
        return copy.deepcopy(memory["answer"])
    return fn


def _recording(reference, answers):
    def fn(*args, **kwargs):
        answers.append(copy.deepcopy(out := reference(*args, **kwargs)))
        return out
    return fn


def _replay(answers):
    """The recorded answers in call order, none of the work done."""
    position = iter(range(10**9))

    def fn(*args, **kwargs):
        return copy.deepcopy(answers[min(next(position), len(answers) - 1)])
    return fn


def _first_right(reference, wrong):
    calls = []

    def fn(*args, **kwargs):
        calls.append(1)
        out = reference(*args, **kwargs)
        return out if len(calls) == 1 else wrong(out)
    return fn


def _sleeping(reference):
    def fn(*args, **kwargs):
        time.sleep(3600)
        return reference(*args, **kwargs)
    return fn


def _busy(reference):
    def fn(*args, **kwargs):
        n = 0
        while n >= 0:           # endless, in Python (no sleep to interrupt)
            n += 1
        return reference(*args, **kwargs)
    return fn


def _containers(key, reference):
    """name -> a function returning the right answer written differently."""
    def lists(v):
        return v.tolist() if isinstance(v, np.ndarray) else v

    def as_0d(v):
        if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool):
            return np.array(v)
        return v

    def walk(value, fn):
        if isinstance(value, tuple):
            return [walk(v, fn) for v in value]             # a tuple as a list
        if isinstance(value, list):
            return [walk(v, fn) for v in value]
        return fn(value)

    out = {"nested lists, tuples as lists": lambda *a, **k: walk(reference(*a, **k), lists),
           "numbers as 0-d arrays": lambda *a, **k: walk(reference(*a, **k), as_0d),
           "float32 inputs, cast back": _float32_round_trip(reference)}
    if key.startswith("inventory."):
        out = {"numbers as strings, capital letters":
               lambda: {str(k): v.upper() for k, v in reference().items()},
               "letters with a parenthesis": lambda: {k: f" {v}) " for k, v in reference().items()}}
    if key == "limits.batch_of_two":
        out = {"a list": lambda: sorted(reference()), "a frozenset": lambda: frozenset(reference())}
    return out


# --------------------------------------------------------------------------- running them

COUNTS = Counter()
PROBLEMS: list = []


def _evaluate(chk, fn):
    return chk.evaluate(fn)


def _expect_fail(key, kind, name, result, words=()):
    COUNTS["attacks"] += 1
    if result.passed:
        COUNTS["fooled"] += 1
        PROBLEMS.append(f"{key} [{kind}: {name}] fooled: {result.message}")
    elif "could not handle" in result.message:
        COUNTS["check errors"] += 1
        PROBLEMS.append(f"{key} [{kind}: {name}] the check's own error: {result.message}")
    elif words and not all(w in result.message for w in words):
        COUNTS["hint misses the point"] += 1
        PROBLEMS.append(f"{key} [{kind}: {name}] hint lacks {words}: {result.message}")
    else:
        COUNTS["rejected"] += 1


def _expect_pass(key, kind, name, result):
    COUNTS["right answers"] += 1
    if not result.passed:
        COUNTS["right answer rejected"] += 1
        PROBLEMS.append(f"{key} [{kind}: {name}] a right answer rejected: {result.message}")
    else:
        COUNTS["accepted"] += 1


def run_attack(key, kind) -> list:
    """Run one attack kind on one check; return the problems it found."""
    before = len(PROBLEMS)
    if (key, kind) in NOT_APPLICABLE:
        COUNTS["not applicable"] += 1
        return []
    if key not in REFERENCES:
        PROBLEMS.append(f"{key} [{kind}] has no reference solution in tests/check_helpers.py")
        return PROBLEMS[before:]
    chk, reference, attacks = CHECKS[key], REFERENCES[key], ATTACKS.get(key, Attacks())
    wrong = attacks.wrong or (lambda out: _scaled(out, 1.003))
    if kind == "reference":
        first, second = _evaluate(chk, reference), _evaluate(chk, reference)
        _expect_pass(key, kind, "the reference", first)
        if first.message != second.message:
            COUNTS["right answer rejected"] += 1
            PROBLEMS.append(f"{key} [reference] two runs print different lines: "
                            f"{first.message!r} / {second.message!r}")
    elif kind == "downcast":
        downcast = attacks.downcast or (lambda out, f, dtype: _scaled(out, f, dtype))
        for factor, dtype in attacks.factors:
            fn = (lambda f, d: lambda *a, **k: downcast(reference(*a, **k), f, d))(factor, dtype)
            _expect_fail(key, kind, f"×{factor} as {dtype.__name__}", _evaluate(chk, fn))
    elif kind == "memo":
        _expect_fail(key, kind, "the first answer every time", _evaluate(chk, _memo(reference)))
    elif kind == "replay":
        answers = []
        assert _evaluate(chk, _recording(reference, answers)).passed
        _expect_fail(key, kind, f"{len(answers)} answers of an earlier run",
                     _evaluate(chk, _replay(answers)))
    elif kind == "first_right":
        _expect_fail(key, kind, "right once, then wrong", _evaluate(chk, _first_right(reference, wrong)))
    elif kind == "shortcut":
        if not attacks.shortcuts:
            COUNTS["no shortcut forbidden"] += 1
        for name, fn in attacks.shortcuts.items():
            _expect_fail(key, kind, name, _evaluate(chk, fn), attacks.watched)
    elif kind == "slow":
        saved = chk.time_limit
        chk.time_limit = SLOW_LIMIT
        try:
            for name, fn in (("time.sleep", _sleeping(reference)), ("a busy loop", _busy(reference))):
                start = time.perf_counter()
                result = _evaluate(chk, fn)
                took = time.perf_counter() - start
                COUNTS["slow functions"] += 1
                if "was stopped after" in result.message and not result.passed and took < 5.0:
                    COUNTS["stopped with a verdict"] += 1
                elif key == "backward.bn_backward" and "has a loop" in result.message:
                    COUNTS["stopped with a verdict"] += 1    # refused before it runs: 4.2
                    COUNTS["refused for its loop"] += 1      # forbids loops
                else:
                    PROBLEMS.append(f"{key} [slow: {name}] not stopped ({took:.1f} s): "
                                    f"{result.message}")
        finally:
            chk.time_limit = saved
    elif kind == "container":
        for name, fn in _containers(key, reference).items():
            _expect_pass(key, kind, name, _evaluate(chk, fn))
    else:
        raise AssertionError(kind)
    return PROBLEMS[before:]


# --------------------------------------------------------------------------- the tests

def test_every_check_is_attacked():
    """A new check joins the battery: ``discover_checks`` finds it, every attack kind runs on
    it from its reference solution, and until it has one this test fails, naming it (an
    ATTACKS entry is needed only for a non-default wrong answer or a forbidden shortcut)."""
    assert len(CHECKS) >= 30
    missing = sorted(set(CHECKS) - set(REFERENCES))
    assert not missing, (f"checks without a reference solution in tests/check_helpers.py "
                         f"REFERENCES (the attack battery starts from it): {missing}")
    assert not set(REFERENCES) - set(CHECKS), sorted(set(REFERENCES) - set(CHECKS))
    assert set(ATTACKS) <= set(CHECKS), sorted(set(ATTACKS) - set(CHECKS))
    assert all(key in CHECKS and kind in KINDS for key, kind in NOT_APPLICABLE)


def test_every_check_is_exported():
    """Each check a checks module defines is in its ``__all__`` (and nothing else is found:
    a check imported from another module is attacked once, where it is defined)."""
    import importlib

    for key in CHECKS:
        module_name, name = key.split(".")
        module = importlib.import_module(f"bnutils.checks.{module_name}")
        assert name in module.__all__, f"add {name!r} to bnutils/checks/{module_name}.py's __all__"
    assert len(set(map(id, CHECKS.values()))) == len(CHECKS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", sorted(CHECKS))
def test_attack(key, kind):
    problems = [p for _ in range(1 if kind == "slow" else REPEAT) for p in run_attack(key, kind)]
    assert not problems, "\n".join(problems)


def _evaluate_with_short_limit(chk, fn):
    """``chk.evaluate(fn)`` with the check's time limit cut to SLOW_LIMIT, then restored."""
    saved, chk.time_limit = chk.time_limit, SLOW_LIMIT
    try:
        return chk.evaluate(fn)
    finally:
        chk.time_limit = saved


def test_a_function_that_swallows_the_interruption_is_stopped_anyway():
    """A learner's ``except Exception`` (even a bare ``except:`` that returns) cannot turn the
    time limit into a pass."""
    chk = CHECKS["start.standardize"]

    def swallows(x):
        try:
            time.sleep(3600)
        except BaseException:           # noqa: BLE001 - what the attack is
            pass
        return (x - x.mean()) / x.std()

    result = _evaluate_with_short_limit(chk, swallows)
    assert not result.passed and "was stopped after 0.05 s" in result.message, result.message


def test_a_slow_layer_returned_by_the_learner_is_stopped_too():
    """Exercise 8.2 runs the block the learner built: its forward is the learner's code."""
    from bnutils.checks import conv_residual

    chk = conv_residual.zero_gamma_block

    def slow_block(width, rng):
        block = conv_residual._reference_zero_gamma_block(width, rng)
        block.forward = lambda x: time.sleep(3600)
        return block

    result = _evaluate_with_short_limit(chk, slow_block)
    assert not result.passed and "was stopped after" in result.message, result.message


def test_a_new_check_joins_the_battery(monkeypatch):
    """A check added to a checks module is found and attacked with no edit here: without a
    reference it is named; with one, a check that runs one fixed input is caught fooled."""
    from bnutils.checks import _core
    from bnutils.checks import scaling as module

    @_core.self_check("Exercise 99 · a new check")
    def new_check(student_fn):          # one fixed input: a memoised answer passes it
        x = np.arange(4.0)
        _core.compare(_core.as_answer_array(student_fn(x), "out"), 2 * x, "off by {err}")
        return "doubles"

    new_check.__module__ = module.__name__           # as if written at the end of scaling.py
    monkeypatch.setattr(module, "new_check", new_check, raising=False)
    assert discover_checks()["scaling.new_check"] is new_check     # even before it is in __all__
    counts, problems = COUNTS.copy(), list(PROBLEMS)
    try:
        monkeypatch.setitem(CHECKS, "scaling.new_check", new_check)
        assert "no reference solution" in run_attack("scaling.new_check", "memo")[0]
        monkeypatch.setitem(REFERENCES, "scaling.new_check", lambda x: 2 * x)
        assert run_attack("scaling.new_check", "reference") == []
        assert "fooled" in run_attack("scaling.new_check", "memo")[0]
    finally:
        COUNTS.clear()
        COUNTS.update(counts)
        PROBLEMS[:] = problems


def test_zz_attack_counts():
    """Print the counts (pytest -s); the tests above fail on any problem."""
    print(f"\nattack battery: {len(CHECKS)} checks × {len(KINDS)} kinds; {COUNTS['attacks']} "
          f"attacks: {COUNTS['rejected']} rejected, {COUNTS['fooled']} fooled, "
          f"{COUNTS['check errors']} check errors, {COUNTS['hint misses the point']} hints "
          f"missing the point; {COUNTS['right answers']} right answers: {COUNTS['accepted']} "
          f"accepted, {COUNTS['right answer rejected']} rejected; {COUNTS['slow functions']} "
          f"slow functions: {COUNTS['stopped with a verdict']} stopped with a verdict ("
          f"{COUNTS['refused for its loop']} refused for its loop before running); "
          f"{COUNTS['not applicable']} (check, kind) pairs not applicable, "
          f"{COUNTS['no shortcut forbidden']} checks forbid no shortcut")
    for p in PROBLEMS:
        print("  ", p)
