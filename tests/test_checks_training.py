"""Self-checks of notebook 05: pass on the reference, fail on the stub and on each known mistake."""

import numpy as np
import pytest
from check_helpers import verdict_count  # tests/check_helpers.py

from bnutils.batchnorm import BatchNorm
from bnutils.checks import training as check
from bnutils.lab.learning_rates import is_stable
from bnutils.layers import Linear, Sequential
from bnutils.training import train

# ----------------------------------------------------------------------------- Exercise 5.1


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: ...")


def _hidden_linear_indices(layers):
    idx = [i for i, layer in enumerate(layers) if isinstance(layer, Linear)]
    return idx[:-1], idx[-1]


def bn_after_every_linear(layers):
    out = []
    for layer in layers:
        out.append(layer)
        if isinstance(layer, Linear):
            out.append(BatchNorm(layer.out_features))
    return Sequential(*out)


def bn_after_activation(layers):
    hidden, last = _hidden_linear_indices(layers)
    out = []
    for i, layer in enumerate(layers):
        out.append(layer)
        if i - 1 in hidden:
            out.append(BatchNorm(layers[i - 1].out_features))
    return Sequential(*out)


def bn_only_first(layers):
    out = list(layers)
    out.insert(1, BatchNorm(layers[0].out_features))
    return Sequential(*out)


def shared_bn(layers):
    hidden, _ = _hidden_linear_indices(layers)
    widths = {layers[i].out_features for i in hidden}
    if len(widths) != 1:  # this mistake only shows when widths agree; use the widest
        pass
    bn = BatchNorm(layers[hidden[0]].out_features)
    out = []
    for i, layer in enumerate(layers):
        out.append(layer)
        if i in hidden:
            out.append(bn)
    return Sequential(*out)


def wrong_width(layers):
    hidden, _ = _hidden_linear_indices(layers)
    out = []
    for i, layer in enumerate(layers):
        out.append(layer)
        if i in hidden:
            out.append(BatchNorm(layer.in_features))
    return Sequential(*out)


def new_linear_layers(layers):
    hidden, last = _hidden_linear_indices(layers)
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, Linear):
            layer = Linear(layer.in_features, layer.out_features, bias=False)
        out.append(layer)
        if i in hidden:
            out.append(BatchNorm(layer.out_features))
    return Sequential(*out)


def returns_list(layers):
    return list(check._reference_add_batchnorm(layers).layers)


def test_add_batchnorm_passes_reference():
    result = check.add_batchnorm.evaluate(check._reference_add_batchnorm)
    assert result.passed, result.message
    assert result.message.startswith("✓ Exercise 5.1")


def test_add_batchnorm_accepts_dropping_the_bias_in_place():
    def drop_bias(layers):
        model = check._reference_add_batchnorm(layers)
        for i, layer in enumerate(model.layers[:-1]):
            if isinstance(layer, Linear) and isinstance(model.layers[i + 1], BatchNorm):
                layer.b = None
        return model

    assert check.add_batchnorm.evaluate(drop_bias).passed


@pytest.mark.parametrize("fn, hint", [
    (stub, "not done yet"),
    (bn_after_every_linear, "after the output layer"),
    (bn_after_activation, "after an activation"),
    (bn_only_first, "only 1 of the 2 hidden Linear layers"),
    (shared_bn, "own BatchNorm"),
    (wrong_width, "num_features"),
    (new_linear_layers, "keep the given layers"),
    (returns_list, "return a Sequential"),
    (lambda layers: Sequential(*layers), "no BatchNorm layer"),
])
def test_add_batchnorm_names_the_mistake(fn, hint):
    result = check.add_batchnorm.evaluate(fn)
    assert not result.passed
    assert result.message.startswith("✗ Exercise 5.1")
    assert hint in result.message, result.message


def test_add_batchnorm_prints_one_line(capsys):
    check.add_batchnorm(check._reference_add_batchnorm)
    out = capsys.readouterr().out
    assert verdict_count(out) == 1 and out.startswith("✓")


# ----------------------------------------------------------------------------- Exercise 5.2


def reference_lr(make_model, lrs, X, y, steps=100, batch_size=60):
    best = None
    for lr in sorted(lrs):
        h = train(make_model(), X, y, lr=lr, steps=steps, batch_size=batch_size)
        if is_stable(h, int(y.max()) + 1):
            best = lr
    return best


def first_unstable(make_model, lrs, X, y, steps=100, batch_size=60):
    for lr in sorted(lrs):
        h = train(make_model(), X, y, lr=lr, steps=steps, batch_size=batch_size)
        if not is_stable(h, int(y.max()) + 1):
            return lr
    return None


def only_diverged(make_model, lrs, X, y, steps=100, batch_size=60):
    best = None
    for lr in sorted(lrs):
        h = train(make_model(), X, y, lr=lr, steps=steps, batch_size=batch_size)
        if not h.diverged:
            best = lr
    return best


def unsorted_last(make_model, lrs, X, y, steps=100, batch_size=60):
    best = None
    for lr in lrs:
        h = train(make_model(), X, y, lr=lr, steps=steps, batch_size=batch_size)
        if is_stable(h, int(y.max()) + 1):
            best = lr
    return best


def reuses_model(make_model, lrs, X, y, steps=100, batch_size=60):
    model = make_model()
    best = None
    for lr in sorted(lrs):
        h = train(model, X, y, lr=lr, steps=steps, batch_size=batch_size)
        if is_stable(h, int(y.max()) + 1):
            best = lr
    return best


def returns_zero_when_none(make_model, lrs, X, y, steps=100, batch_size=60):
    best = reference_lr(make_model, lrs, X, y, steps, batch_size)
    return 0.0 if best is None else best


def returns_history(make_model, lrs, X, y, steps=100, batch_size=60):
    return train(make_model(), X, y, lr=min(lrs), steps=steps, batch_size=batch_size)


def test_largest_stable_lr_passes_reference():
    result = check.largest_stable_lr_check.evaluate(reference_lr)
    assert result.passed, result.message
    assert "plain net 1, BN 3" in result.message


@pytest.mark.parametrize("fn, hint", [
    (stub, "not done yet"),
    (first_unstable, "first *unstable*"),
    (only_diverged, "is_stable"),
    (unsorted_last, "not sorted"),
    (reuses_model, "fresh model"),
    (returns_zero_when_none, "not one of the learning rates"),
    (returns_history, "return one learning rate"),
])
def test_largest_stable_lr_names_the_mistake(fn, hint):
    result = check.largest_stable_lr_check.evaluate(fn)
    assert not result.passed
    assert result.message.startswith("✗ Exercise 5.2")
    assert hint in result.message, result.message


def test_largest_stable_lr_needs_none_when_nothing_trains():
    def never_none(make_model, lrs, X, y, steps=100, batch_size=60):
        best = reference_lr(make_model, lrs, X, y, steps, batch_size)
        return min(lrs) if best is None else best

    result = check.largest_stable_lr_check.evaluate(never_none)
    assert not result.passed and "None" in result.message


def test_reference_runs_distinguish_the_mistakes():
    # The check's lr grid must separate: stable / not-diverged-but-useless / per-net answers.
    runs, answer = check._reference_runs("plain", check._LRS)
    assert answer == 1.0
    assert not runs[3.0][0] and not runs[3.0][1]   # does not diverge, learns nothing
    runs, answer = check._reference_runs("BN", check._LRS)
    assert answer == 3.0
    assert check._reference_runs("plain", check._HOPELESS)[1] is None
    assert np.isfinite(answer)


def test_add_batchnorm_notices_changed_given_weights():
    def zero_weights(layers):
        for layer in layers:
            if isinstance(layer, Linear):
                layer.W = np.zeros_like(layer.W)
        return check._reference_add_batchnorm(layers)

    def scale_in_place(layers):
        layers[0].W *= 2.0
        return check._reference_add_batchnorm(layers)

    for fn in (zero_weights, scale_in_place):
        result = check.add_batchnorm.evaluate(fn)
        assert not result.passed and "has new values in W" in result.message, result.message


def test_true_is_not_a_learning_rate():
    # True == 1.0, the plain net's answer: a bool must not pass for it.
    result = check.largest_stable_lr_check.evaluate(lambda make_model, lrs, *a, **k: True)
    assert not result.passed and "bool" in result.message, result.message


def test_passing_lines_fit_a_90_character_output():
    for result in (check.add_batchnorm.evaluate(check._reference_add_batchnorm),
                   check.largest_stable_lr_check.evaluate(reference_lr)):
        assert result.passed and len(result.message) <= 90, result.message


# ----------------------------------------------------------------------------- issue 25


def ignores_steps(make_model, lrs, X, y, steps=100, batch_size=60):
    return reference_lr(make_model, lrs, X, y, 100, batch_size)


def ignores_batch_size(make_model, lrs, X, y, steps=100, batch_size=60):
    return reference_lr(make_model, lrs, X, y, steps, 30)


@pytest.mark.parametrize("fn, hint", [(ignores_steps, "passed steps="),
                                      (ignores_batch_size, "passed batch_size=60")])
def test_largest_stable_lr_sees_the_steps_and_batch_size(fn, hint):
    """Issue 25: the check ignored its steps argument (the answer came out the same)."""
    result = check.largest_stable_lr_check.evaluate(fn)
    assert not result.passed and hint in result.message, result.message


def test_a_typed_in_learning_rate_fails():
    """Issue 25: answers replayed from an earlier run, with no model trained, fail; so does a
    replay that trains (the fresh case draws other rates and steps)."""
    answers = []

    def recording(make_model, lrs, X, y, steps=100, batch_size=60):
        answers.append(reference_lr(make_model, lrs, X, y, steps, batch_size))
        return answers[-1]

    assert check.largest_stable_lr_check.evaluate(recording).passed
    replay = iter(list(answers))
    result = check.largest_stable_lr_check.evaluate(lambda *a, **k: next(replay))
    assert not result.passed and "models were trained" in result.message, result.message


def test_a_0d_array_is_a_learning_rate():
    """Issue 25: a 0-d array (np.float64(1.0) as an array) was refused."""
    result = check.largest_stable_lr_check.evaluate(
        lambda *a, **k: None if (best := reference_lr(*a, **k)) is None else np.array(best))
    assert result.passed, result.message


def test_add_batchnorm_runs_a_fresh_network_too():
    seen = []

    def recording(layers):
        seen.append(len(layers))
        return check._reference_add_batchnorm(layers)

    assert check.add_batchnorm.evaluate(recording).passed
    assert len(seen) == 4 and seen[:3] == [5, 3, 7]


# ----------------------------------------------------------------------------- Exercise 5.3

import math  # noqa: E402  (the section's own imports, as the 5.1/5.2 parts keep theirs above)

from bnutils.lab.dynamics import update_to_data_ratio  # noqa: E402

ref_ratios = check._reference_update_ratios


def _each(formula):
    return lambda pairs, lr: [formula(W, dW, lr) for W, dW in pairs]


def _norm(a):
    return np.linalg.norm(a)


RIGHT_RATIOS = {
    "math.log10": _each(lambda W, dW, lr: math.log10(lr * _norm(dW) / _norm(W))),
    "half the log of the sums of squares": lambda pairs, lr: np.array(
        [0.5 * np.log10(np.sum((lr * dW) ** 2) / np.sum(W ** 2)) for W, dW in pairs]),
    "log10 lr + log10 norms, as a tuple": lambda pairs, lr: tuple(
        np.log10(lr) + np.log10(_norm(dW)) - np.log10(_norm(W)) for W, dW in pairs),
    "norm of lr * dW, Frobenius by name": _each(
        lambda W, dW, lr: np.log10(np.linalg.norm(lr * dW, "fro") / np.linalg.norm(W, "fro"))),
    "computed in float32": _each(lambda W, dW, lr: np.log10(
        np.float32(lr) * _norm(dW.astype(np.float32)) / _norm(W.astype(np.float32)))),
    "an array of 0-d arrays": lambda pairs, lr: [np.array(r) for r in ref_ratios(pairs, lr)],
}


@pytest.mark.parametrize("name", sorted(RIGHT_RATIOS))
def test_update_ratios_accepts_right_answers_written_differently(name):
    result = check.update_ratios.evaluate(RIGHT_RATIOS[name])
    assert result.passed, result.message
    assert result.message == check.update_ratios.evaluate(ref_ratios).message


def test_update_ratios_reports_section_7s_nets():
    result = check.update_ratios.evaluate(ref_ratios)
    assert result.passed and "gain 5/3: -2.0 to -1.6, gain 0.2: -4.5 to -4.1" in result.message, \
        result.message


WRONG_RATIOS = {
    "no log10": (_each(lambda W, dW, lr: lr * _norm(dW) / _norm(W)), "the ratio itself"),
    "natural log": (_each(lambda W, dW, lr: np.log(lr * _norm(dW) / _norm(W))), "np.log10"),
    "no lr": (_each(lambda W, dW, lr: np.log10(_norm(dW) / _norm(W))), "learning rate is missing"),
    "upside down": (_each(lambda W, dW, lr: np.log10(_norm(W) / _norm(lr * dW))), "upside down"),
    "squared norms": (_each(lambda W, dW, lr: np.log10(np.sum((lr * dW) ** 2) / np.sum(W ** 2))),
                      "squared norms"),
    "standard deviations": (_each(lambda W, dW, lr: np.log10((lr * dW).std() / W.std())),
                            "standard deviations"),
    "W after the step": (_each(lambda W, dW, lr: np.log10(_norm(lr * dW) / _norm(W - lr * dW))),
                         "after the step"),
    "entrywise ratios": (_each(lambda W, dW, lr: np.log10(np.mean(np.abs(lr * dW / W)))),
                         "entrywise"),
    "one number": (lambda pairs, lr: float(np.mean(ref_ratios(pairs, lr))), "one number per"),
    "too few": (lambda pairs, lr: ref_ratios(pairs, lr)[:-1], "one number per"),
    "a generator": (lambda pairs, lr: (r for r in ref_ratios(pairs, lr)), "return a list"),
    "a list per pair": (lambda pairs, lr: [[r] for r in ref_ratios(pairs, lr)], "item 0"),
    "NaN": (lambda pairs, lr: [math.nan] * len(pairs), "NaN"),
    "float16": (lambda pairs, lr: np.array(ref_ratios(pairs, lr), dtype=np.float16), "float16"),
    "in place": (lambda pairs, lr: [np.log10(_norm(dW.__imul__(lr)) / _norm(W)) for W, dW in pairs],
                 "in place"),
    "a typo'd constant": (lambda pairs, lr: [r + 1e-4 for r in ref_ratios(pairs, lr)], "off by"),
    "the library": (_each(update_to_data_ratio), "which the check watches"),
    "not done": (stub, "not done yet"),
}


@pytest.mark.parametrize("name", sorted(WRONG_RATIOS))
def test_update_ratios_names_the_mistake(name):
    fn, hint = WRONG_RATIOS[name]
    result = check.update_ratios.evaluate(fn)
    assert not result.passed and hint in result.message, result.message
    assert "could not handle" not in result.message and len(result.message) <= 160, result.message


def test_update_ratios_hard_coded_for_the_reported_inputs_fails():
    """The answers to the three reported sets typed in: the fresh set (other sizes, scales
    and learning rate at every call) rejects them."""
    answers = []

    def recording(pairs, lr):
        answers.append(ref_ratios(pairs, lr))
        return answers[-1]

    assert check.update_ratios.evaluate(recording).passed
    typed = {len(a): a for a in answers[:3]}
    result = check.update_ratios.evaluate(lambda pairs, lr: typed.get(len(pairs), answers[0]))
    assert not result.passed, result.message


def test_update_ratios_sees_a_notebook_global():
    namespace = {"__name__": "__main__", "np": np, "eta": 0.1}
    exec("def f(pairs, lr):\n    return [np.log10(eta * np.linalg.norm(dW) / np.linalg.norm(W))"
         " for W, dW in pairs]", namespace)
    result = check.update_ratios.evaluate(namespace["f"])
    assert not result.passed and "reads `eta` from the notebook" in result.message, result.message


def test_update_ratios_fresh_case_changes_every_call():
    seen = []

    def recording(pairs, lr):
        seen.append((len(pairs), lr, pairs[0][0].shape))
        return ref_ratios(pairs, lr)

    for _ in range(2):
        assert check.update_ratios.evaluate(recording).passed
    assert len(seen) == 8 and seen[:3] == seen[4:7] and seen[3] != seen[7]


def test_update_ratios_matches_the_library():
    """The check's expected values are the library's update_to_data_ratio (one convention)."""
    pairs = check._tanh_net_pairs(0.2) + check._random_pairs(np.random.default_rng(1), 3)
    np.testing.assert_allclose(ref_ratios(pairs, 0.1),
                               [update_to_data_ratio(W, dW, 0.1) for W, dW in pairs], rtol=1e-12)
