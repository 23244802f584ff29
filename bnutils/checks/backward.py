"""Self-checks for notebook 04 (backprop through BN).

Each check compares the learner's gradients with ``bnutils.batchnorm_backward`` (itself
tested against finite differences) and, when they differ, names the known mistake the
answer reproduces: a missing term (the path through the mean or through the variance),
γ or 1/sqrt(σ² + ε) forgotten, sums over the wrong axis, dγ and dβ swapped, ...
Exercises 4.4-4.6 put the backward pass to work: projecting out the null space of
BN's Jacobian (span{1, x_hat}), the scale-invariance identity dW(aW) = dW(W)/a, and
LayerNorm's backward pass (the same formula with the sums over each sample).

Introduced in notebook 04.
"""

from __future__ import annotations

import numpy as np

from ..batchnorm import batchnorm_backward, batchnorm_forward
from ..gradcheck import rel_error
from ..normalization import layernorm_backward, layernorm_forward
from ._core import (
    Failed,
    as_answer_array,
    as_answer_tuple,
    call_learner,
    compare,
    diagnose,
    fmt_err,
    is_close,
    self_check,
)

__all__ = ["bn_backward", "dgamma_dbeta", "fixed_backward", "ln_backward", "project_out",
           "scaled_gradient"]


def _cases():
    """Two (x, gamma, dout, eps) cases: a 5×3 batch with a large ε and a 7×2 batch."""
    rng = np.random.default_rng(40)
    x = rng.normal([1.0, -3.0, 10.0], [0.2, 1.0, 5.0], size=(5, 3))
    gamma = np.array([1.5, -0.7, 2.0])
    yield x, gamma, rng.normal(size=(5, 3)), 0.05
    x2 = rng.normal(2.0, 3.0, size=(7, 2))
    yield x2, np.array([0.9, 1.3]), rng.normal(size=(7, 2)), 1e-5


def _caches():
    for x, gamma, dout, eps in _cases():
        _, cache = batchnorm_forward(x, gamma, np.zeros_like(gamma), eps)
        yield dout, cache


def _parts(dout, cache):
    """Pieces of the compact backward, from which the known mistakes are assembled."""
    x_hat, gamma, inv, m = cache.x_hat, cache.gamma, cache.inv_std, cache.count
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    return x_hat, gamma, inv, m, dbeta, dgamma


def _dx_mistakes(dout, cache):
    x_hat, gamma, inv, m, dbeta, dgamma = _parts(dout, cache)
    row_b = dout.sum(axis=1, keepdims=True)
    row_g = (dout * x_hat).sum(axis=1, keepdims=True)
    no_eps = gamma / np.sqrt(cache.var)
    return {
        "dx: you treated μ_B and σ²_B as constants, but they depend on every x_i: subtract "
        "the terms through the mean (Σ dout) and the variance (x_hat·Σ dout·x_hat)":
            gamma * inv * dout,
        "dx is missing the term through the mean: inside the bracket, subtract Σ dout (= dbeta)":
            gamma * inv / m * (m * dout - x_hat * dgamma),
        "dx is missing the term through the variance: inside the bracket, subtract "
        "x_hat · Σ(dout·x_hat) (= x_hat · dgamma)":
            gamma * inv / m * (m * dout - dbeta),
        "dx: the variance term has the wrong sign; it is - x_hat · dgamma":
            gamma * inv / m * (m * dout - dbeta + x_hat * dgamma),
        "dx: the sums run over the wrong axis; sum over the batch (axis=0), one sum per feature":
            gamma * inv / m * (m * dout - row_b - x_hat * row_g),
        "dx: you forgot the factor γ (out = γ·x_hat + β, so dx_hat = γ·dout)":
            inv / m * (m * dout - dbeta - x_hat * dgamma),
        "dx: you forgot the factor 1/sqrt(σ² + ε) (cache.inv_std)":
            gamma / m * (m * dout - dbeta - x_hat * dgamma),
        "dx: use cache.inv_std = 1/sqrt(σ² + ε); you divided by sqrt(σ²) without ε":
            no_eps / m * (m * dout - dbeta - x_hat * dgamma),
        "dx: the two sums need the factor 1/m (the mean and the variance average over m "
        "samples)": gamma * inv * (dout - dbeta - x_hat * dgamma),
        "dx: the factor in front is γ·inv_std/m; you dropped the 1/m":
            gamma * inv * (m * dout - dbeta - x_hat * dgamma),
        "dx: use m, not m − 1: BN's mean and variance average over all m samples "
        "(the biased variance)": gamma * inv / (m - 1) * ((m - 1) * dout - dbeta - x_hat * dgamma),
        "dx: use m, not m − 1, in the factor in front: γ·inv_std/m":
            gamma * inv / (m - 1) * (m * dout - dbeta - x_hat * dgamma),
    }


def _param_grad_hint(name, got, dout, x_hat):
    """Explain a wrong dgamma or dbeta, or return None."""
    n, d = dout.shape
    want = {"dgamma": (dout * x_hat).sum(axis=0), "dbeta": dout.sum(axis=0)}
    other = "dbeta" if name == "dgamma" else "dgamma"
    if got.shape == (d,) and is_close(got, want[name], rtol=1e-7, atol=1e-10):
        return None
    if got.shape == (n, d):
        return (f"{name} has shape {got.shape}: γ and β are shared by every sample of the "
                f"batch, so the N per-sample contributions add up; sum over axis 0")
    if got.shape == (n,):
        return (f"{name} has one value per sample; it needs one per feature: sum over the "
                f"batch, axis=0")
    if got.shape != (d,):
        return f"{name} must have shape ({d},), one value per feature; got {got.shape}"
    return diagnose(got, {
        f"{name} and {other} are swapped: dbeta = Σ dout, dgamma = Σ dout·x_hat": want[other],
        f"{name}: take the sum over the batch, not the mean": want[name] / n,
    }) or (f"{name} is wrong: dbeta = Σ_i dout_i (β is added to every output) and "
           f"dgamma = Σ_i dout_i·x_hat_i")


def _gradients(result, names, hint):
    """The learner's gradients, each read as a finite array (hints name the gradient)."""
    values = as_answer_tuple(result, len(names), hint)
    return tuple(as_answer_array(v, n) for v, n in zip(values, names, strict=True))


def _learner_gradients(student_fn, dout, cache):
    """Run a full backward ``student_fn(dout, cache)``; its (dx, dgamma, dbeta), after the
    checks every normalization's backward shares: dγ and dβ (a named mistake gets its
    hint) and the shape of dx."""
    dx, dgamma, dbeta = _gradients(call_learner(student_fn, dout, cache, names=("dout",)),
                                   ("dx", "dgamma", "dbeta"),
                                   "return the three gradients as a tuple: dx, dgamma, dbeta")
    for name, got in (("dbeta", dbeta), ("dgamma", dgamma)):
        hint = _param_grad_hint(name, got, dout, cache.x_hat)
        if hint:
            raise Failed(hint)
    if dx.shape != dout.shape:
        raise Failed(f"dx must have the shape of x, {dout.shape}; got {dx.shape}")
    return dx, dgamma, dbeta


def _check_full_backward(student_fn, extra_mistakes=None):
    worst = 0.0
    for dout, cache in _caches():
        dx, dgamma, dbeta = _learner_gradients(student_fn, dout, cache)
        want, _, _ = batchnorm_backward(dout, cache)

        def mistakes(dout=dout, cache=cache):
            found = dict(extra_mistakes(dout, cache)) if extra_mistakes else {}
            found.update(_dx_mistakes(dout, cache))
            return found

        err = compare(dx, want, "dx differs from bnutils.batchnorm_backward (max rel. error "
                                "{err}); run a gradient check term by term",
                      rtol=2e-7, atol=1e-15, mistakes=mistakes, error=rel_error)
        worst = max(worst, err)
    return worst


# ----------------------------------------------------------------------------- 4.2

@self_check("Exercise 4.2 · compact BN backward")
def bn_backward(student_fn):
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` on two batches."""
    worst = _check_full_backward(student_fn)
    return f"dx, dgamma, dbeta match bnutils (rel. error {fmt_err(worst)})"


# ----------------------------------------------------------------------------- 4.1

@self_check("Exercise 4.1 · dgamma and dbeta")
def dgamma_dbeta(student_fn):
    """Check ``student_fn(dout, x_hat) -> (dgamma, dbeta)``."""
    for dout, cache in _caches():
        x_hat = np.array(cache.x_hat)
        result = _gradients(call_learner(student_fn, dout, x_hat, names=("dout", "x_hat")),
                            ("dgamma", "dbeta"),
                            "return the two gradients as a tuple: dgamma, dbeta")
        for name, got in zip(("dgamma", "dbeta"), result, strict=True):
            hint = _param_grad_hint(name, got, dout, x_hat)
            if hint:
                raise Failed(hint)
    return "dgamma = Σ dout·x_hat, dbeta = Σ dout, per feature"


# ----------------------------------------------------------------------------- 4.3

def _broken_mistakes(dout, cache):
    """What the broken backward of notebook 04 and its half-fixes return."""
    x_hat, gamma, inv, m, _, _ = _parts(dout, cache)
    dx_hat = dout * gamma
    dvar = np.sum(dx_hat * x_hat, axis=0) * -0.5 * inv**2
    dmean = -np.sum(dx_hat, axis=0) * inv
    xmu = x_hat / inv
    return {
        "still the broken result: x_i's direct path into σ²_B is missing (in dmean, dvar "
        "is multiplied by Σ(x - μ) = 0); add dvar · 2(x_i - μ)/m":
            dx_hat * inv + dmean / m,
        "closer, but the path through σ² needs x - μ, not x_hat: x - μ = x_hat · sqrt(σ² + ε) "
        "(= x_hat / cache.inv_std)":
            dx_hat * inv + dmean / m + dvar * 2.0 * x_hat / m,
        "the path through σ² has the wrong sign: it is + dvar · 2(x - μ)/m":
            dx_hat * inv + dmean / m - dvar * 2.0 * xmu / m,
        "now the path through μ is missing: keep the dmean / m term":
            dx_hat * inv + dvar * 2.0 * xmu / m,
        "the path through σ² lost its factor 2: ∂σ²/∂x_i = 2(x_i - μ)/m":
            dx_hat * inv + dmean / m + dvar * xmu / m,
    }


@self_check("Exercise 4.3 · fix the broken backward")
def fixed_backward(student_fn):
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)``, the repaired broken backward."""
    worst = _check_full_backward(student_fn, _broken_mistakes)
    return f"all three gradients right (rel. error {fmt_err(worst)})"


# ----------------------------------------------------------------------------- 4.4

def _projection_cases():
    """(v, x_hat) pairs: a large ε (so Σ x_hat² is visibly below m) and a small one, N ≠ D."""
    rng = np.random.default_rng(44)
    for shape, eps in (((6, 3), 0.5), ((9, 2), 1e-5)):
        x = rng.normal([1.0, -2.0, 5.0][:shape[1]], [0.8, 1.0, 2.0][:shape[1]], size=shape)
        _, cache = batchnorm_forward(x, np.ones(shape[1]), np.zeros(shape[1]), eps)
        yield rng.normal(size=shape), np.array(cache.x_hat), cache


def _project_out(v, x_hat):
    """v without its components along (1, ..., 1) and along x_hat, per feature (column)."""
    along_x_hat = (v * x_hat).sum(axis=0) / (x_hat**2).sum(axis=0)
    return v - v.mean(axis=0) - along_x_hat * x_hat


def _projection_mistakes(v, x_hat):
    m = v.shape[0]
    mean, coef = v.mean(axis=0), (v * x_hat).sum(axis=0) / (x_hat**2).sum(axis=0)
    row_mean = v.mean(axis=1, keepdims=True)
    row_coef = (v * x_hat).sum(axis=1, keepdims=True) / (x_hat**2).sum(axis=1, keepdims=True)
    return {
        "you removed the component along (1, …, 1) but not the one along x_hat":
            v - mean,
        "you removed the component along x_hat but not the mean (the direction (1, …, 1))":
            v - coef * x_hat,
        "divide v·x_hat by Σ x_hat² (= |x_hat|²), not by m: with ε > 0 they differ, "
        "Σ x_hat² = m·σ²/(σ² + ε)":
            v - mean - (v * x_hat).sum(axis=0) / m * x_hat,
        "you returned the part of v in the null space; return v minus that part":
            mean + coef * x_hat + 0 * v,
        "project each feature (column) separately: the sums run over the batch, axis=0":
            v - row_mean - row_coef * x_hat,
    }


@self_check("Exercise 4.4 · null space")
def project_out(student_fn):
    """Check ``student_fn(v, x_hat) -> v`` without its components along 1 and x_hat."""
    worst_dx = 0.0
    for v, x_hat, cache in _projection_cases():
        got = as_answer_array(call_learner(student_fn, v, x_hat, names=("v", "x_hat")), "p",
                              shape=v.shape)
        compare(got, _project_out(v, x_hat),
                "p is not v without its components along (1, …, 1) and x_hat (max error "
                "{err}): per feature, subtract mean(v) and (Σ v·x_hat / Σ x_hat²)·x_hat",
                rtol=1e-9, atol=1e-12, mistakes=lambda v=v, x_hat=x_hat: _projection_mistakes(v, x_hat))
        if cache.eps < 1e-3:    # BN's dx is γ/σ times this projection, up to the ε-term
            dx = batchnorm_backward(v, cache)[0]
            worst_dx = max(worst_dx, rel_error(cache.inv_std * got, dx))
    return f"span{{1, x_hat}} removed; inv_std·p(dout) = BN's dx ± {fmt_err(worst_dx)}"


# ----------------------------------------------------------------------------- 4.5

def _bn_weight_grad(X, W, dout):
    _, cache = batchnorm_forward(X @ W, np.ones(W.shape[1]), np.zeros(W.shape[1]))
    return X.T @ batchnorm_backward(dout, cache)[0]


def _scaling_cases():
    rng = np.random.default_rng(45)
    X = rng.normal(size=(16, 5))
    W = rng.normal(size=(5, 3))
    dout = rng.normal(size=(16, 3))
    for a in (10.0, 0.5, 3.0):
        yield X, W, dout, a


@self_check("Exercise 4.5 · scale invariance")
def scaled_gradient(student_fn):
    """Check ``student_fn(X, W, dout, a) -> dL/dW at a·W`` for L = Σ BN(X W)·dout."""
    worst_cos = 0.0
    for X, W, dout, a in _scaling_cases():
        got = as_answer_array(call_learner(student_fn, X, W, dout, a, names=("X", "W", "dout")),
                              "dW", shape=W.shape)
        at_W = _bn_weight_grad(X, W, dout)
        want = _bn_weight_grad(X, a * W, dout)
        compare(got, want, "dW is not the gradient at a·W (max error {err}); compute dW at W "
                           "(dz from batchnorm_backward, then dW = X.T @ dz) and divide by a",
                rtol=1e-3, atol=1e-9, mistakes={
                    "that is the gradient at W itself: BN's output ignores the scale of W, "
                    "but its gradient does not; at a·W it is 1/a of it": at_W,
                    "the gradient at a·W is dW/a, not dW·a (the larger the weights, the "
                    "smaller the gradient)": at_W * a,
                    "1/a² is how the *effective learning rate* scales; the gradient itself "
                    "scales like 1/a": at_W / a**2,
                }, diagnose_rtol=1e-3)
        cos = np.abs((W * got).sum(axis=0)) / (np.linalg.norm(W, axis=0) * np.linalg.norm(got, axis=0))
        worst_cos = max(worst_cos, float(cos.max()))
    return f"dW(aW) = dW(W)/a, and dW ⊥ W (|cos| {fmt_err(worst_cos)})"


# ----------------------------------------------------------------------------- 4.6

def _ln_cases():
    rng = np.random.default_rng(46)
    for shape, eps in (((5, 4), 0.05), ((3, 7), 1e-5)):
        x = rng.normal(2.0, 3.0, size=shape)
        gamma = rng.uniform(0.5, 2.0, size=shape[1])
        _, cache = layernorm_forward(x, gamma, np.zeros(shape[1]), eps)
        yield rng.normal(size=shape), cache


def _ln_mistakes(dout, cache):
    x_hat, gamma, inv = cache.x_hat, cache.gamma, cache.inv_std
    n, d = x_hat.shape
    g = dout * gamma

    def rows(mean_term=True, var_term=True, m=d, use_gamma=True):
        gg = g if use_gamma else dout
        inner = m * gg
        if mean_term:
            inner = inner - gg.sum(axis=1, keepdims=True)
        if var_term:
            inner = inner - x_hat * (gg * x_hat).sum(axis=1, keepdims=True)
        return inv / m * inner

    return {
        "you used BN's sums over the batch (axis 0); LayerNorm normalizes each sample, so the "
        "sums run over its D features (axis=1, keepdims=True)":
            gamma * inv / n * (n * dout - dout.sum(axis=0) - x_hat * (dout * x_hat).sum(axis=0)),
        "γ varies along a row (one value per feature), so it cannot be pulled out of the row "
        "sums as in BN: apply it first, dx_hat = γ·dout, then use dx_hat in the sums":
            gamma * inv / d * (d * dout - dout.sum(axis=1, keepdims=True)
                               - x_hat * (dout * x_hat).sum(axis=1, keepdims=True)),
        "dx is missing the term through the sample's mean: subtract Σ_j γ_j·dout_j per row":
            rows(mean_term=False),
        "dx is missing the term through the sample's variance: subtract x_hat · Σ_j "
        "γ_j·dout_j·x_hat_j per row": rows(var_term=False),
        "the statistics average over the D features of a sample: use 1/D, not 1/N":
            rows(m=n) if n != d else rows(m=d + 1),
        "dx: you forgot γ (dx_hat = γ·dout, with γ of shape (D,))": rows(use_gamma=False),
        "dx: you forgot the factor inv_std (cache.inv_std, one per sample, shape (N, 1))":
            rows() / inv,
    }


@self_check("Exercise 4.6 · LayerNorm backward")
def ln_backward(student_fn):
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` against layernorm_backward."""
    worst = 0.0
    for dout, cache in _ln_cases():
        dx, dgamma, dbeta = _learner_gradients(student_fn, dout, cache)
        want = layernorm_backward(dout, cache)[0]
        worst = max(worst, compare(
            dx, want, "dx differs from bnutils.normalization.layernorm_backward (max rel. error "
                      "{err}); write BN's formula with the sums over axis=1",
            rtol=2e-7, atol=1e-15, mistakes=lambda dout=dout, cache=cache: _ln_mistakes(dout, cache),
            error=rel_error))
    return f"dx, dgamma, dbeta match bnutils (rel. error {fmt_err(worst)})"


# ----------------------------------------------------------------------------- 4.5, per feature
# Issue 24: the exercise no longer hands over the identity dW(aW) = dW(W)/a (section 5.3
# states it for one number a): the learner derives what happens when each column of W, i.e.
# each BN feature, is scaled by its own factor. ``scaled_gradient`` above stays for the old
# exercise. ``scaled_gradient_per_feature`` is not in ``__all__`` yet: the odd-answer battery
# (tests/test_checks_odd_answers.py) wants a reference for every check listed there and is
# being reworked; tests/test_checks_backward_24.py runs the same odd answers on it meanwhile.

def _per_feature_cases():
    """(X, W, dout, a) with a one number (as in section 5.3) or one factor per column of W."""
    for X, W, dout, a in _scaling_cases():
        yield X, W, dout, a
    X, W, dout, _ = next(_scaling_cases())
    for a in ([10.0, 0.5, 3.0], [1.0, 4.0, 0.25], [2.0, 2.0, 2.0]):
        yield X, W, dout, np.array(a)


@self_check("Exercise 4.5 · scaling each feature")
def scaled_gradient_per_feature(student_fn):
    """Check ``student_fn(X, W, dout, a) -> dL/dW at W·diag(a)`` for L = Σ BN(X W)·dout.

    ``a`` is a positive number or a ``(D,)`` array, one factor per column of ``W``.
    """
    worst_cos = 0.0
    for X, W, dout, a in _per_feature_cases():
        got = as_answer_array(call_learner(student_fn, X, W, dout, a, names=("X", "W", "dout", "a")),
                              "dW", shape=W.shape)
        at_W = _bn_weight_grad(X, W, dout)
        want = _bn_weight_grad(X, W * a, dout)
        per_column = np.ndim(a) == 1 and len(set(np.asarray(a).tolist())) > 1
        mistakes = {
            "that is the gradient at W itself: BN's output ignores the scale of each column "
            "of W, but its gradient does not": at_W,
            "the gradient at the scaled weights is dW/a, not dW·a (the larger the weights, "
            "the smaller the gradient)": at_W * a,
            "1/a² is how the *effective learning rate* scales; the gradient itself scales "
            "like 1/a": at_W / np.square(a),
        }
        if per_column:
            mistakes.update({
                "one number for all columns: column k of W feeds BN feature k only, and BN "
                "removes that column's own scale a[k], so column k of dW is divided by a[k]":
                    at_W / np.mean(a),
                "column k of W feeds BN feature k, whose output ignores only that column's "
                "scale: divide column k of dW by a[k], not by a norm of all of a":
                    at_W / np.linalg.norm(a),
            })
        compare(got, want, "dW is not the gradient at W·diag(a) (max error {err}); what does "
                           "scaling column k of W do to BN feature k, and so to column k of dW?",
                rtol=1e-3, atol=1e-9, mistakes=mistakes, diagnose_rtol=1e-3)
        cos = np.abs((W * got).sum(axis=0)) / (np.linalg.norm(W, axis=0) * np.linalg.norm(got, axis=0))
        worst_cos = max(worst_cos, float(cos.max()))
    return f"dW(W)/a column by column, dW ⊥ W (|cos| {fmt_err(worst_cos)})"
