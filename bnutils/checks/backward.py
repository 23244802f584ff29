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
    ACCEPTED_PRECISION,
    Failed,
    as_answer_array,
    as_answer_tuple,
    call_learner,
    compare,
    fmt_err,
    fresh_rng,
    is_close,
    python_loops,
    self_check,
    watch_calls,
)

__all__ = ["bn_backward", "dgamma_dbeta", "fixed_backward", "ln_backward", "project_out",
           "scaled_gradient", "scaled_gradient_per_feature"]


def _cases():
    """(x, gamma, dout, eps): a 5×3 batch with a large ε and a 7×2 batch (reported), then
    a fresh one."""
    rng = np.random.default_rng(40)
    x = rng.normal([1.0, -3.0, 10.0], [0.2, 1.0, 5.0], size=(5, 3))
    gamma = np.array([1.5, -0.7, 2.0])
    yield x, gamma, rng.normal(size=(5, 3)), 0.05
    x2 = rng.normal(2.0, 3.0, size=(7, 2))
    yield x2, np.array([0.9, 1.3]), rng.normal(size=(7, 2)), 1e-5
    fresh = fresh_rng()
    n, d = int(fresh.integers(4, 10)), int(fresh.integers(2, 5))
    yield (fresh.normal(fresh.uniform(-5, 5, d), 10.0 ** fresh.uniform(-1, 1, d), (n, d)),
           fresh.uniform(0.5, 2.0, d) * fresh.choice([-1.0, 1.0], d), fresh.normal(size=(n, d)),
           float(fresh.choice([1e-5, 1e-3, 0.05])))


#: How many of the cases above the ✓ line reports (the fresh one never is).
_REPORTED = 2


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
    # float32 rounds each of the N terms of the sum: their magnitudes are the scale
    scale = {"dgamma": np.abs(dout * x_hat).sum(axis=0), "dbeta": np.abs(dout).sum(axis=0)}
    other = "dbeta" if name == "dgamma" else "dgamma"
    if got.shape == (d,) and is_close(got, want[name], rtol=1e-7, atol=1e-10,
                                      precision=ACCEPTED_PRECISION, scale=scale[name]):
        return None
    if got.shape == (n, d):
        return (f"{name} has shape {got.shape}: γ and β are shared by every sample of the "
                f"batch, so the N per-sample contributions add up; sum over axis 0")
    if got.shape == (n,):
        return (f"{name} has one value per sample; it needs one per feature: sum over the "
                f"batch, axis=0")
    if got.shape != (d,):
        return f"{name} must have shape ({d},), one value per feature; got {got.shape}"
    try:
        compare(got, want[name], f"{name} is wrong: dbeta = Σ_i dout_i (β is added to every "
                                 f"output) and dgamma = Σ_i dout_i·x_hat_i",
                rtol=1e-7, atol=1e-10, scale=scale[name], mistakes={
            f"{name} and {other} are swapped: dbeta = Σ dout, dgamma = Σ dout·x_hat": want[other],
            f"{name}: take the sum over the batch, not the mean": want[name] / n,
        })
    except Failed as failure:
        return str(failure)
    return None


def _gradients(result, names, hint):
    """The learner's gradients, each read as a finite array (hints name the gradient)."""
    values = as_answer_tuple(result, len(names), hint)
    return tuple(as_answer_array(v, n) for v, n in zip(values, names, strict=True))


def _library_backward() -> dict:
    """Library functions that compute BN's gradient for the learner: Exercises 4.2 and 4.3
    ask for the formula (4.2: derived by hand; 4.3: the given code repaired)."""
    from .. import gradcheck, reference
    from ..batch_renorm import batchrenorm_backward
    from ..batchnorm import BatchNorm, batchnorm_backward_staged
    from ..sharded_bn import sharded_batchnorm_backward

    return {batchnorm_backward: "bnutils' batchnorm_backward",
            batchnorm_backward_staged: "bnutils' batchnorm_backward_staged",
            BatchNorm.backward: "bnutils' BatchNorm.backward",
            reference.batchnorm_backward_loops: "bnutils.reference.batchnorm_backward_loops",
            reference.batchnorm_backward_naive: "bnutils.reference.batchnorm_backward_naive",
            batchrenorm_backward: "bnutils' batchrenorm_backward",
            sharded_batchnorm_backward: "bnutils' sharded_batchnorm_backward",
            gradcheck.numerical_gradient: "bnutils' numerical_gradient",
            reference.numerical_jacobian: "bnutils.reference.numerical_jacobian"}


def _learner_gradients(student_fn, dout, cache, forbidden=None, why=""):
    """Run a full backward ``student_fn(dout, cache)``; its (dx, dgamma, dbeta), after the
    checks every normalization's backward shares: dγ and dβ (a named mistake gets its
    hint) and the shape of dx. ``forbidden``: functions (see ``watch_calls``) the
    learner's code must not call, and ``why`` the hint says."""
    with watch_calls(forbidden or {}) as seen:
        result = call_learner(student_fn, dout, cache, names=("dout",))
    if seen:
        raise Failed(f"your function calls {seen.called()[0]}, which the check watches "
                     f"for: {why}")
    dx, dgamma, dbeta = _gradients(result, ("dx", "dgamma", "dbeta"),
                                   "return the three gradients as a tuple: dx, dgamma, dbeta")
    for name, got in (("dbeta", dbeta), ("dgamma", dgamma)):
        hint = _param_grad_hint(name, got, dout, cache.x_hat)
        if hint:
            raise Failed(hint)
    if dx.shape != dout.shape:
        raise Failed(f"dx must have the shape of x, {dout.shape}; got {dx.shape}")
    return dx, dgamma, dbeta


def _dx_scale(dout, cache):
    """The magnitude of the terms of BN's dx, which float32 rounds (they can cancel)."""
    x_hat, gamma, inv = cache.x_hat, cache.gamma, cache.inv_std
    return np.abs(gamma * inv) * (np.abs(dout) + np.abs(dout).mean(axis=0)
                                  + np.abs(x_hat) * np.abs(dout * x_hat).mean(axis=0))


def _check_full_backward(student_fn, extra_mistakes=None, forbidden=None, why=""):
    errors = []
    for dout, cache in _caches():
        dx, dgamma, dbeta = _learner_gradients(student_fn, dout, cache, forbidden, why)
        want, _, _ = batchnorm_backward(dout, cache)

        def mistakes(dout=dout, cache=cache):
            found = dict(extra_mistakes(dout, cache)) if extra_mistakes else {}
            found.update(_dx_mistakes(dout, cache))
            return found

        errors.append(compare(dx, want, "dx differs from bnutils.batchnorm_backward (max rel. "
                                        "error {err}); run a gradient check term by term",
                              rtol=2e-7, atol=1e-15, mistakes=mistakes, error=rel_error,
                              scale=_dx_scale(dout, cache)))
    return max(errors[:_REPORTED])


# ----------------------------------------------------------------------------- 4.2

@self_check("Exercise 4.2 · compact BN backward")
def bn_backward(student_fn):
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)`` on three batches.

    As the exercise says: no loops, and no library function computing the gradient."""
    loops = python_loops(student_fn)
    if loops:
        raise Failed(f"{loops[0]} has a loop (for, while or a comprehension); the exercise "
                     f"asks for the compact formula, with sums over the batch (axis=0) instead")
    worst = _check_full_backward(
        student_fn, forbidden=_library_backward(),
        why="the exercise asks for your own compact formula")
    return f"dx, dgamma, dbeta match bnutils (rel. error {fmt_err(worst)})"


# ----------------------------------------------------------------------------- 4.1

@self_check("Exercise 4.1 · dgamma and dbeta")
def dgamma_dbeta(student_fn):
    """Check ``student_fn(dout, x_hat) -> (dgamma, dbeta)``."""
    for dout, cache in _caches():
        x_hat = np.array(cache.x_hat)
        values = as_answer_tuple(call_learner(student_fn, dout, x_hat, names=("dout", "x_hat")),
                                 2, "return the two gradients as a tuple: dgamma, dbeta",
                                 stacked=True)
        result = tuple(as_answer_array(v, n) for v, n in zip(values, ("dgamma", "dbeta"),
                                                             strict=True))
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
    """Check ``student_fn(dout, cache) -> (dx, dgamma, dbeta)``, the repaired broken backward
    (its own code, not a library function computing the gradient)."""
    worst = _check_full_backward(
        student_fn, _broken_mistakes, forbidden=_library_backward(),
        why="the exercise is to repair broken_backward's own code")
    return f"all three gradients right (rel. error {fmt_err(worst)})"


# ----------------------------------------------------------------------------- 4.4

def _projection_cases():
    """(v, x_hat, cache): a large ε (so Σ x_hat² is visibly below m) and a small one, N ≠ D
    (reported), then a fresh one."""
    rng = np.random.default_rng(44)
    for shape, eps in (((6, 3), 0.5), ((9, 2), 1e-5)):
        x = rng.normal([1.0, -2.0, 5.0][:shape[1]], [0.8, 1.0, 2.0][:shape[1]], size=shape)
        _, cache = batchnorm_forward(x, np.ones(shape[1]), np.zeros(shape[1]), eps)
        yield rng.normal(size=shape), np.array(cache.x_hat), cache
    fresh = fresh_rng()
    shape = (int(fresh.integers(5, 12)), int(fresh.integers(2, 5)))
    x = fresh.normal(fresh.uniform(-5, 5, shape[1]), 1.0, shape)
    _, cache = batchnorm_forward(x, np.ones(shape[1]), np.zeros(shape[1]), float(fresh.choice([0.5, 0.05])))
    yield fresh.normal(size=shape) * 10.0 ** fresh.uniform(-1, 1), np.array(cache.x_hat), None


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
        coef = np.abs((v * x_hat).sum(axis=0) / (x_hat**2).sum(axis=0))
        compare(got, _project_out(v, x_hat),
                "p is not v without its components along (1, …, 1) and x_hat (max error "
                "{err}): per feature, subtract mean(v) and (Σ v·x_hat / Σ x_hat²)·x_hat",
                rtol=1e-9, atol=1e-12, scale=np.abs(v) + np.abs(v).mean(axis=0) + coef * np.abs(x_hat),
                mistakes=lambda v=v, x_hat=x_hat: _projection_mistakes(v, x_hat))
        if cache is not None and cache.eps < 1e-3:   # BN's dx is γ/σ times this projection,
            # up to the ε-term (reported for the fixed case only)
            dx = batchnorm_backward(v, cache)[0]
            worst_dx = max(worst_dx, rel_error(cache.inv_std * got, dx))
    return f"span{{1, x_hat}} removed; inv_std·p(dout) = BN's dx ± {fmt_err(worst_dx)}"


# ----------------------------------------------------------------------------- 4.5

def _bn_weight_grad(X, W, dout):
    _, cache = batchnorm_forward(X @ W, np.ones(W.shape[1]), np.zeros(W.shape[1]))
    return X.T @ batchnorm_backward(dout, cache)[0]


def _scaling_cases():
    """(X, W, dout, a, reported?): a = 10, 0.5 and 3 on one layer, then a fresh layer and a."""
    rng = np.random.default_rng(45)
    X = rng.normal(size=(16, 5))
    W = rng.normal(size=(5, 3))
    dout = rng.normal(size=(16, 3))
    for a in (10.0, 0.5, 3.0):
        yield X, W, dout, a, True
    fresh = fresh_rng()
    n, d_in, d = int(fresh.integers(8, 20)), int(fresh.integers(2, 6)), int(fresh.integers(2, 5))
    a = float(np.round(fresh.choice([-1, 1]) * fresh.uniform(0.1, 1.0), 3))    # log10 a
    yield (fresh.normal(size=(n, d_in)), fresh.normal(size=(d_in, d)), fresh.normal(size=(n, d)),
           float(np.round(10.0 ** (a if abs(a) > 0.1 else 0.5), 3)), False)


def _bn_passes():
    """bnutils' BN forward and backward passes, watched in Exercise 4.5 (one of each, at W)."""
    from .. import reference
    from ..batchnorm import BatchNorm, batchnorm_backward_staged

    forward = {batchnorm_forward: "forward", BatchNorm.forward: "forward",
               reference.batchnorm_forward_naive: "forward",
               reference.batchnorm_forward_loops: "forward"}
    backward = {fn: "backward" for fn in _library_backward()}
    backward[batchnorm_backward_staged] = "backward"
    return {**forward, **backward}


def _check_one_pass(seen, X, W, a):
    """Fail unless the learner ran BN's forward and backward at most once each, at W."""
    z = X @ W
    backwards = [args for name, args in seen.calls if name == "backward"]
    for name, args in seen.calls:
        if name != "forward":
            continue
        x = np.asarray(args["x"], dtype=float) if "x" in args else None
        # at a·W the input is a·z (a ≥ 1.25 or ≤ 0.8): far beyond float32's rounding of z
        if x is not None and x.shape == z.shape and \
                np.linalg.norm(x - z) > 1e-3 * np.linalg.norm(z):
            raise Failed("your function runs BN at a·W (the check watches bnutils' BN passes): "
                         "the exercise asks for one pass at W, then dW(aW) = dW(W)/a")
    if len(backwards) > 1:
        raise Failed(f"your function runs {len(backwards)} backward passes through BN (the "
                     f"check watches bnutils' BN passes): the exercise asks for one, at W, "
                     f"then dW(aW) = dW(W)/a")


@self_check("Exercise 4.5 · scale invariance")
def scaled_gradient(student_fn):
    """Check ``student_fn(X, W, dout, a) -> dL/dW at a·W`` for L = Σ BN(X W)·dout, from one
    pass through BN at W and the identity (no second backward pass)."""
    worst_cos = 0.0
    for X, W, dout, a, reported in _scaling_cases():
        with watch_calls(_bn_passes()) as seen:
            result = call_learner(student_fn, X, W, dout, a, names=("X", "W", "dout"))
        _check_one_pass(seen, X, W, a)
        got = as_answer_array(result, "dW", shape=W.shape)
        at_W = _bn_weight_grad(X, W, dout)
        want = at_W / a                               # what the identity gives
        _, cache = batchnorm_forward(X @ W, np.ones(W.shape[1]), np.zeros(W.shape[1]))
        scale = np.abs(X).T @ _dx_scale(dout, cache) / a
        compare(got, want, "dW is not the gradient at a·W (max error {err}); compute dW at W "
                           "(dz from batchnorm_backward, then dW = X.T @ dz) and divide by a",
                rtol=2e-7, atol=1e-12, scale=scale, mistakes={
                    "that is the gradient at W itself: BN's output ignores the scale of W, "
                    "but its gradient does not; at a·W it is 1/a of it": at_W,
                    "the gradient at a·W is dW/a, not dW·a (the larger the weights, the "
                    "smaller the gradient)": at_W * a,
                    "1/a² is how the *effective learning rate* scales; the gradient itself "
                    "scales like 1/a": at_W / a**2,
                    "that is the gradient at a·W from a second backward pass (it differs from "
                    "dW(W)/a by ε's small effect); use one pass at W and the identity":
                        _bn_weight_grad(X, a * W, dout),
                }, diagnose_rtol=1e-8, diagnose_atol=1e-14)
        if reported:
            cos = np.abs((W * got).sum(axis=0)) / (np.linalg.norm(W, axis=0)
                                                   * np.linalg.norm(got, axis=0))
            worst_cos = max(worst_cos, float(cos.max()))
    return f"dW(aW) = dW(W)/a, and dW ⊥ W (|cos| {fmt_err(worst_cos)})"


# ----------------------------------------------------------------------------- 4.6

def _ln_cases():
    """(dout, cache): a 5×4 and a 3×7 batch (reported), then a fresh one."""
    rng = np.random.default_rng(46)
    fresh = fresh_rng()
    fresh_shape = (int(fresh.integers(3, 8)), int(fresh.integers(3, 8)))
    for r, shape, eps in ((rng, (5, 4), 0.05), (rng, (3, 7), 1e-5), (fresh, fresh_shape, 1e-3)):
        x = r.normal(2.0, 3.0, size=shape)
        gamma = r.uniform(0.5, 2.0, size=shape[1])
        _, cache = layernorm_forward(x, gamma, np.zeros(shape[1]), eps)
        yield r.normal(size=shape), cache


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
    errors = []
    for dout, cache in _ln_cases():
        dx, dgamma, dbeta = _learner_gradients(student_fn, dout, cache)
        want = layernorm_backward(dout, cache)[0]
        g = np.abs(dout * cache.gamma)
        scale = cache.inv_std * (g + g.mean(axis=1, keepdims=True) + np.abs(cache.x_hat)
                                 * (g * np.abs(cache.x_hat)).mean(axis=1, keepdims=True))
        errors.append(compare(
            dx, want, "dx differs from bnutils.normalization.layernorm_backward (max rel. error "
                      "{err}); write BN's formula with the sums over axis=1",
            rtol=2e-7, atol=1e-15, mistakes=lambda dout=dout, cache=cache: _ln_mistakes(dout, cache),
            error=rel_error, scale=scale))
    return f"dx, dgamma, dbeta match bnutils (rel. error {fmt_err(max(errors[:2]))})"


# ----------------------------------------------------------------------------- 4.5, per feature
# Issue 24: the exercise no longer hands over the identity dW(aW) = dW(W)/a (section 5.3
# states it for one number a): the learner derives what happens when each column of W, i.e.
# each BN feature, is scaled by its own factor. ``scaled_gradient`` above stays for the old
# exercise. Like every check, it is attacked by tests/test_checks_attacks.py (its reference
# is in tests/check_helpers.py).

def _per_feature_cases():
    """(X, W, dout, a, reported?): section 5.3's cases (one number a), then one factor per
    column on the same layer (reported), then a fresh layer with fresh factors."""
    cases = list(_scaling_cases())
    yield from cases[:-1]
    X, W, dout, _, _ = cases[0]
    for a in ([10.0, 0.5, 3.0], [1.0, 4.0, 0.25], [2.0, 2.0, 2.0]):
        yield X, W, dout, np.array(a), True
    X, W, dout, _, _ = cases[-1]
    fresh = fresh_rng()
    yield X, W, dout, np.round(10.0 ** fresh.uniform(-1.0, 1.0, size=W.shape[1]), 3), False


@self_check("Exercise 4.5 · scaling each feature")
def scaled_gradient_per_feature(student_fn):
    """Check ``student_fn(X, W, dout, a) -> dL/dW at W·diag(a)`` for L = Σ BN(X W)·dout, from
    one pass through BN at W (no second backward pass).

    ``a`` is a positive number or a ``(D,)`` array, one factor per column of ``W``.
    """
    worst_cos = 0.0
    for X, W, dout, a, reported in _per_feature_cases():
        with watch_calls(_bn_passes()) as seen:
            result = call_learner(student_fn, X, W, dout, a, names=("X", "W", "dout", "a"))
        try:
            _check_one_pass(seen, X, W, a)
        except Failed:
            raise Failed("you ran BN at the scaled weights or twice (the check watches "
                         "bnutils' BN): one pass at W, then your derivation") from None
        got = as_answer_array(result, "dW", shape=W.shape)
        at_W = _bn_weight_grad(X, W, dout)
        want = at_W / a                               # what the derivation gives
        _, cache = batchnorm_forward(X @ W, np.ones(W.shape[1]), np.zeros(W.shape[1]))
        scale = np.abs(X).T @ _dx_scale(dout, cache) / a
        mistakes = {
            "that is the gradient at W itself: BN's output ignores the scale of each column "
            "of W, but its gradient does not": at_W,
            "the gradient at the scaled weights is dW/a, not dW·a (the larger the weights, "
            "the smaller the gradient)": at_W * a,
            "1/a² is how the *effective learning rate* scales; the gradient itself scales "
            "like 1/a": at_W / np.square(a),
        }
        if np.ndim(a) == 1 and len(set(np.asarray(a).tolist())) > 1:
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
                rtol=2e-7, atol=1e-12, scale=scale, mistakes=mistakes,
                diagnose_rtol=1e-8, diagnose_atol=1e-14)
        if reported:
            cos = np.abs((W * got).sum(axis=0)) / (np.linalg.norm(W, axis=0)
                                                   * np.linalg.norm(got, axis=0))
            worst_cos = max(worst_cos, float(cos.max()))
    return f"dW(W)/a column by column, dW ⊥ W (|cos| {fmt_err(worst_cos)})"
