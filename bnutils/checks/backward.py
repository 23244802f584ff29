"""Self-checks for notebook 04 (backprop through BN).

Each check compares the learner's gradients with ``bnutils.batchnorm_backward`` (itself
tested against finite differences) and, when they differ, names the known mistake the
answer reproduces: a missing term (the path through the mean or through the variance),
γ or 1/sqrt(σ² + ε) forgotten, sums over the wrong axis, dγ and dβ swapped, ...

Introduced in notebook 04.
"""

from __future__ import annotations

import numpy as np

from ..batchnorm import batchnorm_backward, batchnorm_forward
from ..gradcheck import rel_error
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

__all__ = ["bn_backward", "dgamma_dbeta", "fixed_backward"]


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


def _check_full_backward(student_fn, extra_mistakes=None):
    worst = 0.0
    for dout, cache in _caches():
        dx, dgamma, dbeta = _gradients(call_learner(student_fn, dout, cache, names=("dout",)),
                                       ("dx", "dgamma", "dbeta"),
                                       "return the three gradients as a tuple: dx, dgamma, dbeta")
        for name, got in (("dbeta", dbeta), ("dgamma", dgamma)):
            hint = _param_grad_hint(name, got, dout, cache.x_hat)
            if hint:
                raise Failed(hint)
        if dx.shape != dout.shape:
            raise Failed(f"dx must have the shape of x, {dout.shape}; got {dx.shape}")
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


# ----------------------------------------------------------------------------- 4.1

@self_check("Exercise 4.1 · compact BN backward")
def bn_backward(student_fn):
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` on two batches."""
    worst = _check_full_backward(student_fn)
    return (f"dx, dgamma, dbeta match bnutils.batchnorm_backward on 2 batches "
            f"(max rel. error {fmt_err(worst)})")


# ----------------------------------------------------------------------------- 4.2

@self_check("Exercise 4.2 · dgamma and dbeta")
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
    return "dgamma = Σ dout·x_hat and dbeta = Σ dout, per feature, on 2 batches"


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
    }


@self_check("Exercise 4.3 · fix the broken backward")
def fixed_backward(student_fn):
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)``, the repaired broken backward."""
    worst = _check_full_backward(student_fn, _broken_mistakes)
    return (f"repaired: all three gradients match bnutils.batchnorm_backward "
            f"(max rel. error {fmt_err(worst)})")
