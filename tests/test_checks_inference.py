"""Self-checks of notebook 06: pass on the reference, fail on the stub and on each known mistake."""

import numpy as np
import pytest

from bnutils.checks import inference as check


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: ...")


# ----------------------------------------------------------------------------- Exercise 6.1


def run_ok(running_mean, running_var, x, momentum=0.1):
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=0),
            (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1))


def run_keras(running_mean, running_var, x, momentum=0.1):
    return (momentum * running_mean + (1 - momentum) * x.mean(axis=0),
            momentum * running_var + (1 - momentum) * x.var(axis=0, ddof=1))


def run_biased(running_mean, running_var, x, momentum=0.1):
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=0),
            (1 - momentum) * running_var + momentum * x.var(axis=0))


def run_std(running_mean, running_var, x, momentum=0.1):
    return ((1 - momentum) * running_mean + momentum * x.mean(axis=0),
            (1 - momentum) * running_var + momentum * x.std(axis=0, ddof=1))


def run_batch_only(running_mean, running_var, x, momentum=0.1):
    return x.mean(axis=0), x.var(axis=0, ddof=1)


def run_in_place(running_mean, running_var, x, momentum=0.1):
    running_mean *= 1 - momentum
    running_mean += momentum * x.mean(axis=0)
    running_var *= 1 - momentum
    running_var += momentum * x.var(axis=0, ddof=1)
    return running_mean, running_var


def run_wrong_axis(running_mean, running_var, x, momentum=0.1):
    return ((1 - momentum) * running_mean.mean() + momentum * x.mean(axis=1),
            (1 - momentum) * running_var.mean() + momentum * x.var(axis=1, ddof=1))


def run_keras_var_only(running_mean, running_var, x, momentum=0.1):
    return (run_ok(running_mean, running_var, x, momentum)[0],
            momentum * running_var + (1 - momentum) * x.var(axis=0, ddof=1))


def test_update_running_passes_reference_and_hand_version():
    for fn in (check._reference_update_running, run_ok):
        result = check.update_running.evaluate(fn)
        assert result.passed, result.message


@pytest.mark.parametrize("fn, hint", [
    (stub, "not done yet"),
    (run_keras, "Keras convention"),
    (run_biased, "unbiased"),
    (run_std, "standard deviation"),
    (run_batch_only, "batch mean itself"),
    (run_in_place, "in place"),
    (run_wrong_axis, "axis 0"),
    (run_keras_var_only, "running variance: the Keras convention"),
    (lambda m, v, x, momentum=0.1: m, "return a pair"),
])
def test_update_running_names_the_mistake(fn, hint):
    result = check.update_running.evaluate(fn)
    assert not result.passed
    assert result.message.startswith("✗ Exercise 6.1")
    assert hint in result.message, result.message


# ----------------------------------------------------------------------------- Exercise 6.2


def fold_ok(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    return W * scale, (b - running_mean) * scale + beta


def fold_no_eps(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var)
    return W * scale, (b - running_mean) * scale + beta


def fold_var_not_std(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / (running_var + eps)
    return W * scale, (b - running_mean) * scale + beta


def fold_rows(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    return W * scale[:, None], (b - running_mean) * scale + beta


def fold_no_beta(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    return W * scale, (b - running_mean) * scale


def fold_no_mean(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    return W * scale, b * scale + beta


def fold_bias_unscaled(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    return W * scale, b - running_mean + beta


def fold_no_gamma(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = 1 / np.sqrt(running_var + eps)
    return W * scale, (b - running_mean) * scale + beta


def fold_forgets_b(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    return W * scale, -running_mean * scale + beta


def fold_in_place(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / np.sqrt(running_var + eps)
    W *= scale
    return W, (b - running_mean) * scale + beta


def test_fold_passes_reference_and_hand_version():
    for fn in (check._reference_fold, fold_ok):
        result = check.fold_linear_bn.evaluate(fn)
        assert result.passed, result.message
        assert "BN_eval" in result.message


@pytest.mark.parametrize("fn, hint", [
    (stub, "not done yet"),
    (fold_no_eps, "ε is missing"),
    (fold_var_not_std, "standard deviation"),
    (fold_rows, "columns"),
    (fold_no_beta, "β is missing"),
    (fold_no_mean, "running mean is missing"),
    (fold_bias_unscaled, "multiplied by the scale"),
    (fold_no_gamma, "γ is missing"),
    (fold_forgets_b, "own bias b is missing"),
    (fold_in_place, "in place"),
    (lambda W, b, *a, **k: W, "return a pair"),
])
def test_fold_names_the_mistake(fn, hint):
    result = check.fold_linear_bn.evaluate(fn)
    assert not result.passed
    assert result.message.startswith("✗ Exercise 6.2")
    assert hint in result.message, result.message


# ----------------------------------------------------------------------------- Exercise 6.3


def predict_buggy(model, X):
    return model.forward(X).argmax(axis=1)


def predict_no_restore(model, X):
    model.eval()
    return model.forward(X).argmax(axis=1)


def predict_always_train_after(model, X):
    model.eval()
    labels = model.forward(X).argmax(axis=1)
    model.train()
    return labels


def predict_logits(model, X):
    was = model.training
    model.eval()
    out = model.forward(X)
    if was:
        model.train()
    return out


def predict_frozen_train_mode(model, X):
    # Train-mode forward that restores the running statistics: still batch-dependent.
    bn = model[1]
    saved = bn.running_mean.copy(), bn.running_var.copy()
    labels = model.forward(X).argmax(axis=1)
    bn.running_mean, bn.running_var = saved
    return labels


def test_predict_passes_reference():
    result = check.predict.evaluate(check._reference_predict)
    assert result.passed, result.message


@pytest.mark.parametrize("fn, hint", [
    (stub, "not done yet"),
    (predict_buggy, "training mode"),
    (predict_no_restore, "left it in eval mode"),
    (predict_always_train_after, "switched it to training mode"),
    (predict_logits, "returned the logits"),
    (predict_frozen_train_mode, "differ from the eval-mode predictions"),
])
def test_predict_names_the_mistake(fn, hint):
    result = check.predict.evaluate(fn)
    assert not result.passed
    assert result.message.startswith("✗ Exercise 6.3")
    assert hint in result.message, result.message


def test_train_mode_predictions_really_differ_on_the_check_model():
    # Otherwise the check could not tell train mode from eval mode by the labels alone.
    model, X = check._trained_model()
    expected = check._reference_predict(model, X)
    assert not np.array_equal(predict_frozen_train_mode(model.train(), X), expected)


def test_passing_lines_fit_a_90_character_output():
    for chk, solution in ((check.update_running, check._reference_update_running),
                          (check.fold_linear_bn, check._reference_fold),
                          (check.predict, check._reference_predict)):
        result = chk.evaluate(solution)
        assert result.passed and len(result.message) <= 90, result.message
