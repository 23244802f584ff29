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
from ..gradcheck import rel_error
from ..layers import Linear, ReLU, Sequential
from ._core import (
    Failed,
    as_answer_array,
    as_answer_tuple,
    call_learner,
    compare,
    fmt_err,
    fresh_rng,
    self_check,
)

__all__ = ["fold_linear_bn", "predict", "update_running"]


def _as_pair(result, names, stacked=True):
    first, second = as_answer_tuple(result, 2, f"return a pair ({names[0]}, {names[1]})",
                                    stacked=stacked)
    return as_answer_array(first, names[0]), as_answer_array(second, names[1])


def _compare_rel(actual, expected, message, mistakes, prefix, scale):
    """Exercises 6.1 and 6.2: right to 1e-9 relative (or to float32 rounding of ``scale``),
    else the known mistake, else ``message``."""
    return compare(actual, expected, message, rtol=1e-9, atol=1e-12, mistakes=mistakes,
                   prefix=prefix, error=rel_error, scale=scale)


# ----------------------------------------------------------------------------- Exercise 6.1


def _reference_update_running(running_mean, running_var, x, momentum=0.1):
    """Reference solution of Exercise 6.1 (used by the tests)."""
    _, cache = batchnorm_forward(x, np.ones(x.shape[1]), np.zeros(x.shape[1]))
    return update_running_stats(running_mean, running_var, cache, momentum)


def _running_cases():
    """Two fixed updates, then a fresh one."""
    rng = np.random.default_rng(61)
    fresh = fresh_rng()
    n, d = int(fresh.integers(3, 10)), int(fresh.integers(2, 5))
    return [
        (np.zeros(3), np.ones(3), rng.normal(2.0, 3.0, size=(4, 3)), 0.1),
        (np.array([1.0, -2.0]), np.array([0.5, 4.0]), rng.normal(-1.0, 0.5, size=(6, 2)), 0.3),
        (fresh.normal(0, 2, d), fresh.uniform(0.1, 5.0, d),
         fresh.normal(fresh.uniform(-5, 5, d), fresh.uniform(0.2, 3.0, d), (n, d)),
         float(np.round(fresh.uniform(0.01, 0.9), 3))),
    ]


@self_check("Exercise 6.1 · running statistics by hand")
def update_running(student_fn):
    """Check ``student_fn(running_mean, running_var, x, momentum) -> (mean, var)``."""
    for running_mean, running_var, x, momentum in _running_cases():
        result = call_learner(student_fn, running_mean, running_var, x, momentum=momentum,
                              names=("running_mean", "running_var", "x"),
                              hint="return new arrays (e.g. new_mean = (1 - momentum) * "
                                   "running_mean + ...)")
        new_mean, new_var = _as_pair(result, ("new_mean", "new_var"))
        ref_mean, ref_var = _reference_update_running(running_mean, running_var, x, momentum)
        if new_mean.shape != ref_mean.shape or new_var.shape != ref_var.shape:
            raise Failed(f"expected two arrays of shape {ref_mean.shape} (one value per feature); "
                         f"got {new_mean.shape} and {new_var.shape} - average over axis 0")
        m, N = momentum, len(x)
        bmean, bvar = x.mean(axis=0), x.var(axis=0, ddof=1)
        big = np.abs(x).max(axis=0)
        mean_scale = (1 - m) * np.abs(running_mean) + m * big
        var_scale = (1 - m) * np.abs(running_var) + m * (bvar + big * np.abs(x - bmean).max(axis=0))
        _compare_rel(new_mean, ref_mean, "new running mean is off (max rel. error {err}): use "
                     "(1 - momentum) * running_mean + momentum * x.mean(axis=0)", {
            "the Keras convention (momentum weighs the OLD value); here momentum weighs the "
            "new batch: (1 - momentum) * running + momentum * batch":
                m * running_mean + (1 - m) * bmean,
            "you returned the batch mean itself: blend it into the running mean":
                bmean,
            "you returned the old running mean unchanged": running_mean,
        }, "running mean: ", mean_scale)
        _compare_rel(new_var, ref_var, "new running variance is off (max rel. error {err}): use "
                     "(1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1)", {
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
        }, "running variance: ", var_scale)
    return "PyTorch's rule with the unbiased variance"


# ----------------------------------------------------------------------------- Exercise 6.2


def _reference_fold(W, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Reference solution of Exercise 6.2 (used by the tests)."""
    return fold_batchnorm(W, b, gamma, beta, running_mean, running_var, eps)


def _fold_cases():
    """A fixed layer with one tiny variance, then a fresh layer (another size)."""
    rng = np.random.default_rng(62)
    D_in, D = 5, 3
    W = rng.standard_normal((D_in, D))
    b = rng.standard_normal(D)
    gamma = rng.uniform(0.5, 2.0, D)
    beta = rng.standard_normal(D)
    running_mean = rng.standard_normal(D)
    running_var = np.array([2.0, 0.5, 1e-5])    # a tiny variance makes a missing eps visible
    yield W, b, gamma, beta, running_mean, running_var
    fresh = fresh_rng()
    D_in, D = int(fresh.integers(2, 7)), int(fresh.integers(2, 6))
    yield (fresh.standard_normal((D_in, D)), fresh.standard_normal(D),
           fresh.uniform(0.5, 2.0, D) * fresh.choice([-1.0, 1.0], D), fresh.standard_normal(D),
           fresh.standard_normal(D), 10.0 ** fresh.uniform(-4, 1, D))


@self_check("Exercise 6.2 · fold BN into the Linear layer")
def fold_linear_bn(student_fn):
    """Check ``student_fn(W, b, gamma, beta, running_mean, running_var, eps) -> (W', b')``."""
    eps = 1e-5
    for W, b, gamma, beta, mu, var in _fold_cases():
        try:
            result = call_learner(student_fn, W, b, gamma, beta, mu, var, eps=eps,
                                  names=("W", "b", "gamma", "beta", "running_mean", "running_var"),
                                  hint="return new arrays")
        except ValueError as exc:
            if "broadcast" in str(exc):
                raise Failed("shapes do not broadcast: W has shape (D_in, D) and the BN scale has "
                             "shape (D,), one per output feature, so it scales W's columns: "
                             "W * scale") from exc
            raise
        Wf, bf = _as_pair(result, ("W_folded", "b_folded"), stacked=False)
        W_ref, b_ref = _reference_fold(W, b, gamma, beta, mu, var, eps)
        if Wf.shape != W_ref.shape or bf.shape != b_ref.shape:
            raise Failed(f"expected W' of shape {W_ref.shape} and b' of shape {b_ref.shape}; got "
                         f"{Wf.shape} and {bf.shape}")
        scale = gamma / np.sqrt(var + eps)
        _compare_rel(Wf, W_ref, "W' is off (max rel. error {err}): W' = W * scale with "
                     "scale = gamma / sqrt(running_var + eps)", {
            "ε is missing: scale = gamma / sqrt(running_var + eps) (see the feature with a tiny "
            "variance)": W * (gamma / np.sqrt(var)),
            "divide by the standard deviation sqrt(running_var + eps), not by the variance":
                W * (gamma / (var + eps)),
            "γ is missing from the scale: scale = gamma / sqrt(running_var + eps)":
                W / np.sqrt(var + eps),
            "W is unchanged: every output column must be multiplied by its BN scale": W,
        }, "W': ", np.abs(W_ref))
        _compare_rel(bf, b_ref, "b' is off (max rel. error {err}): b' = (b - running_mean) * "
                     "scale + beta", {
            "β is missing: b' = (b - running_mean) * scale + beta": (b - mu) * scale,
            "the running mean is missing: b' = (b - running_mean) * scale + beta": b * scale + beta,
            "b - running_mean must be multiplied by the scale too": b - mu + beta,
            "the Linear layer's own bias b is missing: b' = (b - running_mean) * scale + beta":
                -mu * scale + beta,
            "ε is missing from the scale": (b - mu) * (gamma / np.sqrt(var)) + beta,
        }, "b': ", (np.abs(b) + np.abs(mu)) * np.abs(scale) + np.abs(beta))
        x = np.random.default_rng(6).standard_normal((8, W.shape[0]))
        ref_out = batchnorm_inference(x @ W + b, gamma, beta, mu, var, eps)
        err = np.max(np.abs(x @ Wf.astype(float) + bf.astype(float) - ref_out))
        if err > 1e-3 * max(1.0, float(np.max(np.abs(ref_out)))):
            # W' and b' passed above, so this can only be the check's own error: not a Failed
            raise RuntimeError(f"x @ W' + b' differs from BN_eval(x @ W + b) by {fmt_err(err)}")
    return "x @ W' + b' equals BN_eval(x @ W + b)"


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


def _trained_model(rng=None):
    """A small BN model whose running statistics differ clearly from any one batch's, and a
    batch: the fixed one (seed 63), or one drawn from ``rng``."""
    fixed = rng is None
    rng = np.random.default_rng(63) if fixed else rng
    seeds = (1, 2) if fixed else tuple(int(v) for v in rng.integers(2**31, size=2))
    model = Sequential(Linear(4, 8, rng=seeds[0]), BatchNorm(8), ReLU(), Linear(8, 3, rng=seeds[1]))
    bn = model[1]
    bn.running_mean = rng.normal(0.0, 1.0, 8)
    bn.running_var = rng.uniform(0.5, 3.0, 8)
    bn.gamma = rng.uniform(0.5, 1.5, 8)
    bn.beta = rng.normal(0.0, 0.5, 8)
    X = rng.normal(1.0, 2.0, size=(12 if fixed else int(rng.integers(10, 40)), 4))
    return model, X


@self_check("Exercise 6.3 · spot the eval-mode bug")
def predict(student_fn):
    """Check ``student_fn(model, X) -> labels`` on BN models left in training mode (a fixed
    one and a fresh one)."""
    fresh = fresh_rng()
    while True:          # a fresh model whose predictions are not all one class
        fresh_case = _trained_model(fresh)
        if len(set(_reference_predict(*fresh_case).tolist())) > 1:
            break
    for model, X in (_trained_model(), fresh_case):
        _check_predict(student_fn, model, X)
    return "eval-mode labels, batch of one OK, mode restored"


def _check_predict(student_fn, model, X):
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
    labels = as_answer_array(labels, "labels")
    if labels.shape == (len(X), 3):
        raise Failed("you returned the logits; return class labels, logits.argmax(axis=1), "
                     "shape (N,)")
    if labels.shape != (len(X),):
        raise Failed(f"return one class label per row of X, shape ({len(X)},); got shape "
                     f"{labels.shape}")
    if not np.array_equal(labels, np.round(labels)):
        raise Failed("return class labels (whole numbers, logits.argmax(axis=1)), not "
                     "probabilities or scores")
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
        single = as_answer_array(student_fn(model, X[:1]), "labels")
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
