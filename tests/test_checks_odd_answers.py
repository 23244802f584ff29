"""Every self-check, fed the same odd answers: the right verdict and a hint naming the problem.

The checks are discovered from the modules of ``bnutils.checks`` (a new check without a
reference solution here fails ``test_every_check_has_a_reference``). Each odd answer is
the reference solution's return value, transformed:

* NaN everywhere, one NaN, one inf, every number as a numeric string, an int as a bool,
  a wrong shape, ``None``, a plain string, a function that raises: all must fail, with a
  hint that names the problem (never "the check could not handle your answer");
* arrays as nested lists and float32 versions of the right numbers: must pass (every
  exercise accepts float32; its tolerance comes from the exercise, not the answer);
* float16 versions of the right numbers: pass where the check's tolerance allows them (the
  by-hand exercise, exact whole numbers), else fail with a hint that names float16 - never
  with a hint that blames the method.
"""

from __future__ import annotations

import numpy as np
import pytest
from check_helpers import REFERENCES, _backward, _bn, _kappa, discover_checks

from bnutils.checks import covariate_shift, forward, limits, scaling
from bnutils.layers import Sequential

#: Known gaps, each to fix in the check (strict: the test fails once the gap is closed).
KNOWN_GAPS: dict = {}


CHECKS = discover_checks()


def test_every_check_has_a_reference():
    assert len(CHECKS) >= 27
    assert sorted(CHECKS) == sorted(REFERENCES), "add the new check's reference solution here"


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_reference_passes(key):
    result = CHECKS[key].evaluate(REFERENCES[key])
    assert result.passed, result.message


# --------------------------------------------------------------------------- odd answers

def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _is_numeric_array(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind in "iuf"


def _is_float(v) -> bool:
    return isinstance(v, (float, np.floating)) or (isinstance(v, np.ndarray) and v.dtype.kind == "f")


def _map_leaves(value, fn, state):
    """Apply ``fn`` to each number / numeric array inside tuples and lists."""
    if isinstance(value, (tuple, list)):
        return type(value)(_map_leaves(v, fn, state) for v in value)
    if _is_number(value) or _is_numeric_array(value):
        new = fn(value, state)
        if new is not value:
            state["changed"] = True
        return new
    return value


def _first_only(fn):
    def apply(v, state):
        if state.get("done"):
            return v
        state["done"] = True
        return fn(v)
    return apply


def _set_one(v, bad):
    arr = np.array(v, dtype=float)
    arr.flat[arr.size // 2] = bad
    return arr if arr.ndim else float(arr)


def _wrong_shape(v):
    arr = np.asarray(v)
    if arr.ndim == 0:
        return np.array([arr, arr])
    return arr[..., :-1] if arr.shape[-1] > 1 else np.concatenate([arr, arr], axis=-1)


LEAF_TRANSFORMS = {
    "all NaN": lambda v, s: np.full(np.shape(v), np.nan) if np.ndim(v) else float("nan"),
    "one NaN": _first_only(lambda v: _set_one(v, np.nan)),
    "one inf": _first_only(lambda v: _set_one(v, np.inf)),
    "numeric strings": lambda v, s: np.asarray(v).astype(str) if np.ndim(v) else str(v),
    "bool for an int": lambda v, s: (np.asarray(v) % 2 == 1 if np.ndim(v) else bool(v % 2))
    if np.asarray(v).dtype.kind in "iu" else v,
    "wrong shape": _first_only(_wrong_shape),
    "nested lists": lambda v, s: v.tolist() if isinstance(v, np.ndarray) else v,
    "float32": lambda v, s: (v.astype(np.float32) if np.ndim(v) else np.float32(v))
    if _is_float(v) else v,
    "float16": lambda v, s: (v.astype(np.float16) if np.ndim(v) else np.float16(v))
    if _is_float(v) else v,
}

#: What each odd answer must give: passes?, and (for failures) words one of which the hint says.
VERDICTS = {
    "all NaN": (False, ("NaN",)),
    "one NaN": (False, ("NaN",)),
    "one inf": (False, ("inf",)),
    "numeric strings": (False, ("string",)),
    "bool for an int": (False, ("bool",)),
    "wrong shape": (False, ("shape", "one number", "list or array", "one value per", "label")),
    "nested lists": (True, ()),
    "float32": (True, ()),
    "float16": (None, ("float16",)),      # passes, or fails naming float16
    "None": (False, ("None",)),
    "a string": (False, ("str",)),
    "raises": (False, ("your code raised RuntimeError: the learner's own bug",)),
}


def _odd_function(reference, kind):
    if kind == "raises":
        def fn(*args, **kwargs):
            raise RuntimeError("the learner's own bug")
        return fn
    if kind == "None":
        return lambda *args, **kwargs: (reference(*args, **kwargs), None)[1]
    if kind == "a string":
        return lambda *args, **kwargs: (reference(*args, **kwargs), "12.3")[1]

    def fn(*args, **kwargs):
        state = {}
        out = _map_leaves(reference(*args, **kwargs), LEAF_TRANSFORMS[kind], state)
        fn.changed = fn.changed or state.get("changed", False)
        return out

    fn.changed = False
    return fn


@pytest.mark.parametrize("kind", list(VERDICTS))
@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_odd_answer(key, kind, request):
    if (key, kind) in KNOWN_GAPS:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_GAPS[key, kind], strict=True))
    fn = _odd_function(REFERENCES[key], kind)
    result = CHECKS[key].evaluate(fn)
    if getattr(fn, "changed", True) is False:
        pytest.skip(f"{key} returns nothing that {kind!r} applies to")
    passes, words = VERDICTS[kind]
    message = result.message
    assert "could not handle" not in message, message
    assert not message.endswith("..."), f"hint cut off: {message}"
    if passes is None:
        passes = result.passed
    assert result.passed == passes, message
    if not passes:
        assert any(w in message for w in words), f"{kind}: {message}"


# --------------------------------------------------------------------------- named cases

def test_numeric_string_is_not_a_condition_number():
    result = scaling.condition_number.evaluate(lambda X: f"{_kappa(X):.10g}")
    assert not result.passed and "string" in result.message, result.message


def test_true_is_not_index_1():
    for answer in (True, np.True_):
        result = covariate_shift.most_saturated_layer.evaluate(lambda acts, t, a=answer: a)
        assert not result.passed and "bool" in result.message, result.message


def test_nan_index_is_named_not_blamed_on_the_learner():
    result = covariate_shift.most_saturated_layer.evaluate(lambda acts, t: float("nan"))
    assert not result.passed and "NaN" in result.message, result.message
    assert "your code raised" not in result.message


def test_none_in_a_set_is_not_the_string_none():
    result = limits.batch_of_two.evaluate(lambda: {None, "ln", "gn"})
    assert not result.passed and "None" in result.message and "string" in result.message


@pytest.mark.parametrize("answer", [{"none": 1, "ln": 1, "gn": 1}, 5, b"none ln gn"])
def test_batch_of_two_wants_a_collection_of_names(answer):
    result = limits.batch_of_two.evaluate(lambda: answer)
    assert not result.passed and "set of names" in result.message, result.message


def test_nan_gradients_fail_with_a_nan_hint():
    from bnutils.checks import backward

    for chk in (backward.bn_backward, backward.fixed_backward):
        result = chk.evaluate(lambda d, c: (lambda dx, dg, db: (dx * np.nan, dg, db))(*_backward(d, c)))
        assert not result.passed and "NaN" in result.message, result.message


def test_float32_answers_to_3_2_and_2_1_pass():
    def forward32(x, g, b, eps):
        x, g, b = (np.asarray(a, dtype=np.float32) for a in (x, g, b))
        return _bn(x, g, b, np.float32(eps), (0,))

    assert forward.bn_forward.evaluate(forward32).passed
    result = covariate_shift.compounding_factor.evaluate(
        lambda rate, n: (np.float32(1) + np.float32(rate)) ** np.float32(n))
    assert result.passed, result.message


def test_float32_wrong_answer_is_still_diagnosed():
    def ddof1(x, g, b, eps):
        x, g, b = (np.asarray(a, dtype=np.float32) for a in (x, g, b))
        mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)
        return g * (x - mean) / np.sqrt(var + eps) + b

    result = forward.bn_forward.evaluate(ddof1)
    assert not result.passed and "ddof=1" in result.message, result.message


def test_a_returned_model_is_not_an_array():
    result = forward.bn_forward.evaluate(lambda x, g, b, eps: Sequential())
    assert not result.passed and "Sequential" in result.message, result.message
