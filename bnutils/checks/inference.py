"""Self-checks for notebook 06, BN at inference.

Exercise 6.1 · update the running statistics by hand; Exercise 6.2 · fold a BN layer into
the Linear layer before it; Exercise 6.3 · spot (and fix) the eval-mode bug.
Each check prints one ✓/✗ line (see ``bnutils.checks._core``).

Introduced in notebook 06.
"""

from __future__ import annotations

import numpy as np

from ..batchnorm import BatchNorm, batchnorm_forward, batchnorm_inference, update_running_stats
from ..folding import fold_batchnorm
from ..layers import Linear, ReLU, Sequential
from ._core import Failed, diagnose, fmt_err, self_check

__all__ = ["fold_linear_bn", "predict", "update_running"]


def _max_rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def _as_pair(result, what):
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Failed(f"return a pair {what}; got {type(result).__name__}")
    return np.asarray(result[0], dtype=float), np.asarray(result[1], dtype=float)


# ----------------------------------------------------------------------------- Exercise 6.1


def _reference_update_running(running_mean, running_var, x, momentum=0.1):
    """Reference solution of Exercise 6.1 (used by the tests)."""
    _, cache = batchnorm_forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]))
    return update_running_stats(running_mean, running_var, cache, momentum)


def _running_cases():
    rng = np.random.default_rng(61)
    return [
        (np.zeros(3), np.ones(3), rng.normal(2.0, 3.0, size=(4, 3)), 0.1),
        (np.array([1.0, -2.0]), np.array([0.5, 4.0]), rng.normal(-1.0, 0.5, size=(6, 2)), 0.3),
    ]


@self_check("Exercise 6.1 · running statistics by hand")
def update_running(student_fn):
    """Check ``student_fn(running_mean, running_var, x, momentum) -> (mean, var)``."""
    for running_mean, running_var, x, momentum in _running_cases():
        args = [a.copy() for a in (running_mean, running_var, x)]
        result = student_fn(*args, momentum=momentum)
        if any(not np.array_equal(a, b) for a, b in zip(args, (running_mean, running_var, x))):
            raise Failed("your function changed its inputs in place: return new arrays "
                         "(e.g. new_mean = (1 - momentum) * running_mean + ...)")
        new_mean, new_var = _as_pair(result, "(new_mean, new_var)")
        ref_mean, ref_var = _reference_update_running(running_mean, running_var, x, momentum)
        if new_mean.shape != ref_mean.shape or new_var.shape != ref_var.shape:
            raise Failed(f"expected two arrays of shape {ref_mean.shape} (one value per feature); "
                         f"got {new_mean.shape} and {new_var.shape} - average over axis 0")
        m, N = momentum, len(x)
        bmean, bvar = x.mean(axis=0), x.var(axis=0, ddof=1)
        mean_wrong = diagnose(new_mean, {
            "the Keras convention (momentum weighs the OLD value); here momentum weighs the "
            "new batch: (1 - momentum) * running + momentum * batch":
                m * running_mean + (1 - m) * bmean,
            "you returned the batch mean itself: blend it into the running mean":
                bmean,
            "you returned the old running mean unchanged": running_mean,
        })
        if mean_wrong:
            raise Failed(f"running mean: {mean_wrong}")
        err = _max_rel_err(new_mean, ref_mean)
        if err > 1e-9:
            raise Failed(f"new running mean is off (max rel. error {fmt_err(err)}): use "
                         f"(1 - momentum) * running_mean + momentum * x.mean(axis=0)")
        var_wrong = diagnose(new_var, {
            "the batch variance must be the unbiased one (ddof=1, divide by N - 1), as "
            "PyTorch stores it; the biased one (ddof=0) is for normalizing":
                (1 - m) * running_var + m * bvar * (N - 1) / N,
            "the Keras convention (momentum weighs the OLD value); here momentum weighs the "
            "new batch":
                m * running_var + (1 - m) * bvar,
            "you blended in the standard deviation; the running statistic is the variance":
                (1 - m) * running_var + m * np.sqrt(bvar),
            "you returned the batch variance itself: blend it into the running variance":
                bvar,
        })
        if var_wrong:
            raise Failed(f"running variance: {var_wrong}")
        err = _max_rel_err(new_var, ref_var)
        if err > 1e-9:
            raise Failed(f"new running variance is off (max rel. error {fmt_err(err)}): use "
                         f"(1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1)")
    return "matches bnutils.update_running_stats (PyTorch convention, unbiased variance)"


# ----------------------------------------------------------------------------- Exercise 6.2


def _reference_fold(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Reference solution of Exercise 6.2 (used by the tests)."""
    return fold_batchnorm(W, b, gamma, beta, running_mean, running_var, eps)


def _fold_case():
    rng = np.random.default_rng(62)
    D_in, D = 5, 3
    W = rng.standard_normal((D_in, D))
    b = rng.standard_normal(D)
    gamma = rng.uniform(0.5, 2.0, D)
    beta = rng.standard_normal(D)
    running_mean = rng.standard_normal(D)
    running_var = np.array([2.0, 0.5, 1e-5])    # a tiny variance makes a missing eps visible
    return W, b, gamma, beta, running_mean, running_var


@self_check("Exercise 6.2 · fold BN into the Linear layer")
def fold_linear_bn(student_fn):
    """Check ``student_fn(W, b, gamma, beta, running_mean, running_var, eps) -> (W', b')``."""
    W, b, gamma, beta, mu, var = _fold_case()
    eps = 1e-5
    args = [a.copy() for a in (W, b, gamma, beta, mu, var)]
    try:
        result = student_fn(*args, eps=eps)
    except ValueError as exc:
        if "broadcast" in str(exc):
            raise Failed("shapes do not broadcast: W has shape (D_in, D) and the BN scale has "
                         "shape (D,), one per output feature, so it scales W's columns: "
                         "W * scale") from exc
        raise
    if any(not np.array_equal(a, o) for a, o in zip(args, (W, b, gamma, beta, mu, var))):
        raise Failed("your function changed its inputs in place: return new arrays")
    Wf, bf = _as_pair(result, "(W_folded, b_folded)")
    W_ref, b_ref = _reference_fold(W, b, gamma, beta, mu, var, eps)
    if Wf.shape != W_ref.shape or bf.shape != b_ref.shape:
        raise Failed(f"expected W' of shape {W_ref.shape} and b' of shape {b_ref.shape}; got "
                     f"{Wf.shape} and {bf.shape}")
    scale = gamma / np.sqrt(var + eps)
    w_wrong = diagnose(Wf, {
        "ε is missing: scale = gamma / sqrt(running_var + eps) (see the feature with a tiny "
        "variance)": W * (gamma / np.sqrt(var)),
        "divide by the standard deviation sqrt(running_var + eps), not by the variance":
            W * (gamma / (var + eps)),
        "γ is missing from the scale: scale = gamma / sqrt(running_var + eps)":
            W / np.sqrt(var + eps),
        "W is unchanged: every output column must be multiplied by its BN scale": W,
    })
    if w_wrong:
        raise Failed(f"W': {w_wrong}")
    err_w = _max_rel_err(Wf, W_ref)
    if err_w > 1e-9:
        raise Failed(f"W' is off (max rel. error {fmt_err(err_w)}): W' = W * scale with "
                     f"scale = gamma / sqrt(running_var + eps)")
    b_wrong = diagnose(bf, {
        "β is missing: b' = (b - running_mean) * scale + beta": (b - mu) * scale,
        "the running mean is missing: b' = (b - running_mean) * scale + beta": b * scale + beta,
        "b - running_mean must be multiplied by the scale too": b - mu + beta,
        "the Linear layer's own bias b is missing: b' = (b - running_mean) * scale + beta":
            -mu * scale + beta,
        "ε is missing from the scale": (b - mu) * (gamma / np.sqrt(var)) + beta,
    })
    if b_wrong:
        raise Failed(f"b': {b_wrong}")
    err_b = _max_rel_err(bf, b_ref)
    if err_b > 1e-9:
        raise Failed(f"b' is off (max rel. error {fmt_err(err_b)}): b' = (b - running_mean) * "
                     f"scale + beta")
    x = np.random.default_rng(6).standard_normal((8, W.shape[0]))
    ref_out = batchnorm_inference(x @ W + b, gamma, beta, mu, var, eps)
    err = _max_rel_err(x @ Wf + bf, ref_out)
    return f"x @ W' + b' equals BN_eval(x @ W + b) (max rel. error {fmt_err(err)})"


# ----------------------------------------------------------------------------- Exercise 6.3


def _reference_predict(model, X):
    """Reference solution of Exercise 6.3 (used by the tests)."""
    was_training = model.training
    model.eval()
    try:
        return model.forward(X).argmax(axis=1)
    finally:
        if was_training:
            model.train()


def _trained_model():
    """A small BN model whose running statistics differ clearly from any one batch's."""
    rng = np.random.default_rng(63)
    model = Sequential(Linear(4, 8, rng=1), BatchNorm(8), ReLU(), Linear(8, 3, rng=2))
    bn = model[1]
    bn.running_mean = rng.normal(0.0, 1.0, 8)
    bn.running_var = rng.uniform(0.5, 3.0, 8)
    bn.gamma = rng.uniform(0.5, 1.5, 8)
    bn.beta = rng.normal(0.0, 0.5, 8)
    X = rng.normal(1.0, 2.0, size=(12, 4))
    return model, X


@self_check("Exercise 6.3 · spot the eval-mode bug")
def predict(student_fn):
    """Check ``student_fn(model, X) -> labels`` on a BN model left in training mode."""
    model, X = _trained_model()
    bn = model[1]
    saved = (bn.running_mean.copy(), bn.running_var.copy())
    expected = _reference_predict(model, X)
    model.train()
    try:
        labels = student_fn(model, X)
    except ValueError as exc:
        if "at least 2 values" in str(exc):
            raise Failed("training-mode BN needs a batch; put the model in eval mode "
                         "(model.eval()) before the forward pass") from exc
        raise
    changed = not (np.array_equal(bn.running_mean, saved[0]) and np.array_equal(bn.running_var, saved[1]))
    labels = np.asarray(labels)
    if labels.shape == (len(X), 3):
        raise Failed("you returned the logits; return class labels, logits.argmax(axis=1), "
                     "shape (N,)")
    if labels.shape != (len(X),):
        raise Failed(f"return one class label per row of X, shape ({len(X)},); got shape "
                     f"{labels.shape}")
    if changed:
        raise Failed("the running statistics changed: your predict ran the model in training "
                     "mode - call model.eval() before model.forward(X)")
    if not np.array_equal(labels, expected):
        raise Failed("the labels differ from the eval-mode predictions: BN must use its running "
                     "statistics (model.eval()), and predict the argmax of the logits")
    if not model.training:
        raise Failed("the model was in training mode and your predict left it in eval mode: "
                     "put it back as you found it (remember model.training, then model.train())")
    try:
        single = np.asarray(student_fn(model, X[:1]))
    except ValueError as exc:
        raise Failed(f"predicting a single sample failed ({exc}); in eval mode a batch of one "
                     f"is fine") from exc
    if single.shape != (1,) or single[0] != expected[0]:
        raise Failed("a single sample gets a different label than inside the batch: its "
                     "prediction must not depend on its batch-mates")
    model.eval()
    student_fn(model, X)
    if model.training:
        raise Failed("the model was in eval mode and your predict switched it to training mode: "
                     "restore the mode it was in (check model.training first)")
    return ("eval-mode labels, independent of batch-mates, batch of one works, running "
            "statistics untouched, model mode restored")
