"""Self-checks for notebook 07 (why BN works).

* Exercise 7.1 — the effective learning rate of a scale-invariant layer, per unit.
* Exercise 7.2 — the variance shift: training-mode variance of inverted dropout's output.

Each check compares the learner's answer with an independent computation and, when it
is wrong, names the known mistake its output reproduces.

Introduced in notebook 07.
"""

from __future__ import annotations

import numpy as np

from ._core import Failed, as_answer_array, compare, fmt_err, fresh_rng, self_check

__all__ = ["effective_lr", "variance_shift"]


# ----------------------------------------------------------------------------- 7.1
def _lr_cases():
    rng = np.random.default_rng(71)
    # a wide and a square layer (the square one tells columns from rows), one tiny column
    wide = rng.normal(0.0, 0.3, size=(6, 4)) * np.array([1.0, 0.1, 2.0, 0.5])
    square = rng.normal(0.0, 1.0, size=(4, 4)) * np.array([[0.2], [1.0], [3.0], [0.5]])
    fresh = fresh_rng()
    shape = (int(fresh.integers(2, 8)), int(fresh.integers(2, 8)))
    W = fresh.normal(0.0, 1.0, shape) * 10.0 ** fresh.uniform(-1, 1, shape[1])
    return [(wide, 0.1), (square, 0.5), (W, float(np.round(fresh.uniform(0.01, 1.0), 3)))]


def _lr_mistakes(W, lr):
    col2, row2 = np.sum(W**2, axis=0), np.sum(W**2, axis=1)
    return {
        "you divided by ‖w_j‖, not by its square: the gradient shrinks like 1/‖w‖ *and* the "
        "step is measured relative to ‖w‖, so lr / ‖w_j‖²": lr / np.sqrt(col2),
        "you multiplied by ‖w_j‖²; the effective rate *falls* as the weights grow: lr / ‖w_j‖²":
            lr * col2,
        "you used the rows of W; unit j is fed by column j, W[:, j] (sum over axis 0)":
            lr / row2,
        "you used the whole matrix's ‖W‖² for every unit; each unit's BN ignores the length "
        "of its own column W[:, j]": np.full(W.shape[1], lr / np.sum(W**2)),
        "you returned 1 / ‖w_j‖² without the learning rate": 1.0 / col2,
    }


@self_check("Exercise 7.1 · effective learning rate")
def effective_lr(student_fn):
    """Check ``student_fn(W, lr) -> (D_out,)`` array ``lr / ‖W[:, j]‖²``."""
    errors = []
    for W, lr in _lr_cases():
        W_given = W.copy()
        answer = student_fn(W_given, lr)
        if not np.array_equal(W_given, W):
            raise Failed("your function changed W in place; compute a new array instead")
        D_in, D_out = W.shape
        answer = as_answer_array(answer, "eff_lr")
        if answer.shape != (D_out,):
            if answer.shape == (D_in,):
                raise Failed(f"eff_lr has one value per row (shape ({D_in},)); unit j is fed by "
                             f"column j: one value per column, shape ({D_out},)")
            if answer.size == 1:
                raise Failed(f"return one effective rate per unit (shape ({D_out},)), not one "
                             "number for the layer: each unit's BN ignores its own column's "
                             "length")
            raise Failed(f"eff_lr must have shape ({D_out},), one value per unit; got "
                         f"{answer.shape}")
        expected = lr / np.sum(W**2, axis=0)
        errors.append(compare(answer, expected,
                              "eff_lr differs from lr / ‖W[:, j]‖² by up to {err}",
                              rtol=1e-9, mistakes=lambda W=W, lr=lr: _lr_mistakes(W, lr),
                              error=lambda a, e: float(np.max(np.abs(a - e) / np.abs(e))),
                              scale=np.abs(expected)))
    return f"lr / ‖W[:, j]‖² per unit (rel. error {fmt_err(max(errors[:2]))})"


# ----------------------------------------------------------------------------- 7.2
def _shift_case():
    # ReLU-like means (large), one unit with mean 0, and two dropout rates
    mean = np.array([0.0, 0.4, 1.0, 2.5, 0.05])
    var = np.array([1.0, 0.3, 0.5, 4.0, 0.01])
    fresh = fresh_rng()
    d = int(fresh.integers(2, 8))
    return [(mean, var, 0.5), (mean[::-1].copy(), var[::-1].copy(), 0.2),
            (fresh.uniform(-1.0, 3.0, d), fresh.uniform(0.01, 4.0, d),
             float(np.round(fresh.uniform(0.05, 0.8), 3)))]


def _shift_mistakes(mean, var, p):
    q = 1.0 - p
    return {
        "you left out the mean: a kept value is a/q, so E[(a m/q)²] = (var + mean²)/q, and the "
        "variance is that minus mean²": var / q,
        "you did not subtract mean² (the output's mean is still mean: inverted dropout keeps "
        "it)": (var + mean**2) / q,
        "you divided by p instead of q = 1 - p (p is the rate of *dropped* values)":
            (var + mean**2) / p - mean**2,
        "you divided by q²; E[m²] = E[m] = q for a 0/1 mask, so E[(a m/q)²] = E[a²]/q":
            (var + mean**2) / q**2 - mean**2,
        "that is dropout without the 1/q scaling (q·E[a²] − q²·mean²); inverted dropout divides "
        "the kept values by q": q * (var + mean**2) - (q * mean)**2,
        "that is the eval-mode variance; in training the mask adds variance": var,
    }


@self_check("Exercise 7.2 · the variance shift")
def variance_shift(student_fn):
    """Check ``student_fn(mean, var, p) -> array`` against ``(var + mean²)/(1-p) - mean²``."""
    errors = []
    for mean, var, p in _shift_case():
        args = (mean.copy(), var.copy(), p)
        answer = student_fn(*args)
        if not (np.array_equal(args[0], mean) and np.array_equal(args[1], var)):
            raise Failed("your function changed mean or var in place; compute a new array")
        answer = as_answer_array(answer, "train_var")
        if answer.shape != mean.shape:
            raise Failed(f"return one variance per unit, shape {mean.shape}; got {answer.shape}")
        expected = (var + mean**2) / (1.0 - p) - mean**2
        errors.append(compare(answer, expected,
                              "train_var differs from the training-mode variance by up to "
                              "{err}; write the output as a·m/q with m ~ Bernoulli(q) "
                              "independent of a",
                              rtol=1e-9, atol=1e-12, scale=(var + mean**2) / (1.0 - p) + mean**2,
                              mistakes=lambda m=mean, v=var, p=p: _shift_mistakes(m, v, p)))
    return f"(var + mean²)/(1 - p) - mean² (error {fmt_err(max(errors[:2]))})"
