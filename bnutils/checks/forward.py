"""Self-checks for notebook 03 (the BN forward pass).

Each check runs the learner's function on fixed inputs, compares it with an
independent reference and, when it is wrong, names the known mistake that its output
reproduces: statistics over the wrong axis, the unbiased variance (ddof=1), ε outside
the square root, γ/β forgotten or swapped, and so on.

Introduced in notebook 03.
"""

from __future__ import annotations

import numpy as np

from ._core import (
    Failed,
    as_answer_array,
    as_answer_number,
    as_answer_tuple,
    call_learner,
    compare,
    fmt_err,
    fresh_rng,
    is_close,
    self_check,
    watch_calls,
)

__all__ = [
    "BY_HAND_BATCH",
    "BY_HAND_BETA",
    "BY_HAND_GAMMA",
    "bn_by_hand",
    "bn_forward",
    "bn_forward_spatial",
    "output_stats",
]

#: The 3-row batch of Exercise 3.1 (two features), with its γ and β.
BY_HAND_BATCH = np.array([[4.0, 10.0], [4.0, 20.0], [7.0, 30.0]])
BY_HAND_GAMMA = np.array([2.0, 0.5])
BY_HAND_BETA = np.array([1.0, 3.0])


def _bn(x, gamma, beta, eps, axes=(0,), ddof=0, eps_outside=False, use_eps=True):
    """The forward pass and its usual variations, used to recognise mistakes."""
    x = np.asarray(x, dtype=float)
    shape = [1] * x.ndim
    shape[1] = -1
    g, b = np.reshape(gamma, shape), np.reshape(beta, shape)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=ddof)
    if not use_eps:
        x_hat = (x - mean) / np.sqrt(var)
    elif eps_outside:
        x_hat = (x - mean) / (np.sqrt(var) + eps)
    else:
        x_hat = (x - mean) / np.sqrt(var + eps)
    return x_hat, g * x_hat + b, (x - mean) / (var + eps)


def _as_array(value, name):
    if isinstance(value, tuple):
        raise Failed(f"return only `{name}` (one array), not a tuple of {len(value)} values")
    return as_answer_array(value, name)


def _forward_mistakes(x, gamma, beta, eps, axes, other_axes):
    """Known wrong outputs of a forward pass, each mapped to the hint that names it."""
    x_hat, _, by_var = _bn(x, gamma, beta, eps, axes)
    shape = [1] * x.ndim
    shape[1] = -1
    g, b = np.reshape(gamma, shape), np.reshape(beta, shape)
    mistakes = {}
    for wrong_axes, hint in other_axes.items():
        mistakes[hint] = _bn(x, gamma, beta, eps, wrong_axes)[1]
    mistakes.update({
        "you used the unbiased variance (ddof=1); BN normalizes with the biased batch "
        "variance, the mean of the squared deviations (divide by m, ddof=0)":
            _bn(x, gamma, beta, eps, axes, ddof=1)[1],
        "ε is outside the square root: you divided by σ + ε; divide by sqrt(σ² + ε)":
            _bn(x, gamma, beta, eps, axes, eps_outside=True)[1],
        "you left out ε (or ignored the `eps` argument): divide by sqrt(σ² + eps)":
            _bn(x, gamma, beta, eps, axes, use_eps=False)[1],
        "you ignored the `eps` argument and used a fixed 1e-5; use the eps you are given":
            _bn(x, gamma, beta, 1e-5, axes)[1],
        "you forgot γ and β: after normalizing, return gamma * x_hat + beta": x_hat,
        "you forgot β: add beta after scaling by gamma": g * x_hat,
        "you forgot γ: multiply x_hat by gamma before adding beta": x_hat + b,
        "γ and β are swapped: the output is gamma * x_hat + beta (γ scales, β shifts)":
            b * x_hat + g,
        "you divided by the variance; divide by the standard deviation sqrt(σ² + ε)":
            g * by_var + b,
        "you subtracted the mean but did not divide by the standard deviation":
            g * (x - x.mean(axis=axes, keepdims=True)) + b,
    })
    return mistakes


def _check_forward_case(student_fn, x, gamma, beta, eps, axes, other_axes, broadcast_hint):
    try:
        out = call_learner(student_fn, x, gamma, beta, eps, names=("x", "gamma", "beta"))
    except ValueError as exc:
        if "broadcast" in str(exc):
            raise Failed(broadcast_hint) from None
        raise
    out = _as_array(out, "out")
    if out.shape != x.shape:
        if out.ndim < x.ndim or (out.size < x.size):
            raise Failed(f"out has shape {out.shape} but must have the shape of x, {x.shape}: "
                         f"keep the batch axis (normalize each value, do not average it away)")
        raise Failed(f"out has shape {out.shape} but must have the shape of x, {x.shape}; "
                     f"{broadcast_hint}")
    expected = _bn(x, gamma, beta, eps, axes)[1]
    return compare(out, expected,
                   "the output differs from gamma * (x - mean) / sqrt(var + eps) + beta by up "
                   "to {err}; compare your mean, var and x_hat with bnutils.batchnorm_forward",
                   rtol=0.0, atol=1e-8 * max(1.0, float(np.max(np.abs(expected)))),
                   scale=_forward_scale(x, gamma, beta, eps, axes, expected),
                   mistakes=lambda: _forward_mistakes(x, gamma, beta, eps, axes, other_axes))


def _forward_scale(x, gamma, beta, eps, axes, out):
    """The magnitude float32 rounds in a forward pass: x (and its mean) in units of the
    standard deviation, times |γ|, plus |β| and |out| (a nearly constant feature far from
    0 is ill-conditioned: its x - mean cancels)."""
    x = np.asarray(x, dtype=float)
    shape = [1] * x.ndim
    shape[1] = -1
    big = np.max(np.abs(x), axis=axes, keepdims=True)
    std = np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return (np.abs(np.reshape(gamma, shape)) * big / std + np.abs(np.reshape(beta, shape))
            + np.abs(out))


# ----------------------------------------------------------------------------- 3.1

@self_check("Exercise 3.1 · BN by hand")
def bn_by_hand(student_fn):
    """Check ``student_fn() -> (mean, var, out)`` for ``BY_HAND_BATCH``, γ = [2, 0.5], β = [1, 3].

    Hand-rounded numbers are accepted to within 0.002.
    """
    result = as_answer_tuple(student_fn(), 3, "return the three results as a tuple: mean, var, out")
    mean, var, out = (as_answer_array(v, n) for v, n in zip(result, ("mean", "var", "out"),
                                                             strict=True))
    x = BY_HAND_BATCH
    tol = 2e-3
    if mean.shape != (2,):
        if mean.shape == (3,):
            raise Failed("you gave 3 means, one per row: BN takes one mean per feature "
                         "(column), over the 3 samples of the batch")
        raise Failed(f"mean must hold 2 numbers, one per feature (column); got shape {mean.shape}")
    want = (x.mean(axis=0), x.var(axis=0), _bn(x, BY_HAND_GAMMA, BY_HAND_BETA, 1e-5)[1])
    rtols = (1e-5, 1e-3, 1e-5)
    given = (mean, var, out)
    # Right to two decimals but not to three: a rounding matter, not a method error.
    if all(a.shape == w.shape and is_close(a, w, rtol=r, atol=6e-3)
           for a, w, r in zip(given, want, rtols, strict=True)) and not all(
            is_close(a, w, rtol=r, atol=tol) for a, w, r in zip(given, want, rtols, strict=True)):
        raise Failed("rounded too coarsely: give three decimals (2.388, not 2.39)")
    if not is_close(mean, x.mean(axis=0), rtol=1e-5, atol=tol):
        raise Failed("mean is off: add up each column's three values and divide by 3")
    if var.shape != (2,):
        raise Failed(f"var must hold 2 numbers, one per feature (column); got shape {var.shape}")
    compare(var, x.var(axis=0), "var is off: average the squared deviations from the mean",
            rtol=1e-3, atol=tol, diagnose_rtol=1e-3, diagnose_atol=tol, mistakes={
        "var: you divided by m - 1 = 2; BN's batch variance divides by m = 3 (ddof=0)":
            x.var(axis=0, ddof=1),
        "var: that is the standard deviation; the variance is its square": x.std(axis=0),
    })
    if out.shape != x.shape:
        raise Failed(f"out must have the shape of the batch, {x.shape}; got {out.shape}")
    compare(out, _bn(x, BY_HAND_GAMMA, BY_HAND_BETA, 1e-5)[1],
            "out is off: x_hat = (x - mean) / sqrt(var), then out = gamma * x_hat + beta, "
            "column by column", rtol=1e-5, atol=tol, diagnose_rtol=1e-3, diagnose_atol=tol,
            mistakes=lambda: _forward_mistakes(x, BY_HAND_GAMMA, BY_HAND_BETA, 1e-5, (0,), {
                (1,): "out: you normalized each row across the two features; normalize each "
                      "column (feature) over the 3 samples"}))
    return "mean, var and all six outputs are right"


# ----------------------------------------------------------------------------- 3.2

def _forward_cases():
    rng = np.random.default_rng(3)
    # Features on very different scales, one of them nearly constant (variance 1e-4), so
    # that each mistake gives a different output; eps = 0.01 makes ε's placement matter.
    x = rng.normal([5.0, -2.0, 0.0, 40.0], [0.01, 1.0, 3.0, 20.0], size=(6, 4))
    gamma = np.array([1.5, -0.5, 2.0, 0.7])
    beta = np.array([0.3, 1.0, -1.0, 2.0])
    yield x, gamma, beta, 0.01
    x2 = rng.normal(1.0, 2.0, size=(9, 3))
    yield x2, np.array([0.8, 1.2, 3.0]), np.array([-0.4, 0.0, 0.6]), 1e-3
    fresh = fresh_rng()                 # a fresh batch, not reported in the ✓ line
    n, d = int(fresh.integers(4, 11)), int(fresh.integers(2, 6))
    yield (fresh.normal(fresh.uniform(-10, 10, d), 10.0 ** fresh.uniform(-1, 1, d), (n, d)),
           fresh.uniform(0.5, 2.0, d) * fresh.choice([-1.0, 1.0], d), fresh.normal(0, 1, d),
           float(fresh.choice([1e-5, 1e-3, 1e-2])))


@self_check("Exercise 3.2 · BN forward pass")
def bn_forward(student_fn):
    """Check ``student_fn(x, gamma, beta, eps) -> out`` for (N, D) batches."""
    errors = []
    for x, gamma, beta, eps in _forward_cases():
        errors.append(_check_forward_case(
            student_fn, x, gamma, beta, eps, (0,),
            {(1,): "wrong axis: you normalized each sample (row) across its features; BN "
                   "normalizes each feature (column) over the batch, axis=0",
             None: "wrong axis: you used one mean and variance for the whole array; BN "
                   "takes them per feature (column) over the batch, axis=0"},
            "take the statistics per feature over the batch (axis=0), keeping shape (D,)"))
    return f"matches BN on 2 batches (max abs. error {fmt_err(max(errors[:2]))})"


# ----------------------------------------------------------------------------- 3.3

def _spatial_cases():
    """The reported (N, C, H, W) batch, then a fresh one (other sizes, none two alike)."""
    rng = np.random.default_rng(4)
    # N=4, C=3, H=5, W=2: no two axes the same length, so a wrong broadcast cannot pass.
    x = rng.normal(np.array([2.0, -1.0, 10.0])[None, :, None, None],
                   np.array([0.5, 1.0, 4.0])[None, :, None, None], size=(4, 3, 5, 2))
    x[:, 1, :, :] += np.linspace(-2, 2, 5)[None, :, None]   # the channel mean varies with H
    yield x, np.array([1.5, 0.5, -2.0]), np.array([0.0, 1.0, 3.0]), 0.01
    fresh = fresh_rng()
    N, C, H, W = (int(v) for v in fresh.permutation([2, 3, 4, 5, 6])[:4])
    x = fresh.normal(fresh.uniform(-5, 5, (1, C, 1, 1)), 10.0 ** fresh.uniform(-0.5, 0.5, (1, C, 1, 1)),
                     (N, C, H, W)) + fresh.normal(0, 1, (1, 1, H, 1))
    yield x, fresh.uniform(0.5, 2.0, C) * fresh.choice([-1.0, 1.0], C), fresh.normal(0, 1, C), 0.01


@self_check("Exercise 3.3 · spatial BN (N, C, H, W)")
def bn_forward_spatial(student_fn):
    """Check ``student_fn(x, gamma, beta, eps) -> out`` for (N, C, H, W) batches."""
    errors = []
    for x, gamma, beta, eps in _spatial_cases():
        errors.append(_check_forward_case(
            student_fn, x, gamma, beta, eps, (0, 2, 3),
            {(0,): "wrong axes: you took statistics over the batch only, separately for every "
                   "pixel; spatial BN shares them across the image: axes (0, 2, 3)",
             (2, 3): "wrong axes: you normalized each image's channel on its own (that is "
                     "InstanceNorm); BN also averages over the batch: axes (0, 2, 3)",
             (1, 2, 3): "wrong axes: you normalized each sample over all its channels and pixels "
                        "(that is LayerNorm); BN works per channel: axes (0, 2, 3)",
             (0, 1): "wrong axes: you averaged over batch and channels; BN keeps channels apart "
                     "and averages over batch, height and width: axes (0, 2, 3)",
             None: "wrong axes: one mean for the whole tensor; BN takes one per channel, "
                   "over axes (0, 2, 3)"},
            "γ, β and the statistics have one value per channel: reshape them to (1, C, 1, 1) "
            "(or use keepdims=True) so they broadcast along axis 1"))
    return f"right per channel (max abs. error {fmt_err(errors[0])})"


# ----------------------------------------------------------------------------- 3.4

#: (gamma, beta, var, eps) cases for Exercise 3.4: plain, negative γ, ε comparable to
#: the variance, and a constant feature.
OUTPUT_STATS_CASES = (
    (2.0, 1.0, 4.0, 1e-5),
    (-1.5, 0.5, 1.0, 1e-5),
    (1.0, 0.0, 0.01, 0.01),
    (3.0, -2.0, 0.0, 1e-3),
)


def _output_stats_cases():
    """The four reported cases, then a fresh one."""
    yield from OUTPUT_STATS_CASES
    rng = fresh_rng()
    var = float(10.0 ** rng.uniform(-3, 1))
    yield (float(rng.choice([-1, 1]) * rng.uniform(0.2, 3.0)), float(rng.normal(0, 2)), var,
           float(var * 10.0 ** rng.uniform(-2, 0)))


def _output_stats_bnutils():
    """bnutils' forward functions: computing a batch is what Exercise 3.4 asks to avoid."""
    from .. import batchnorm, normalization, reference

    return {batchnorm.batchnorm_forward: "bnutils.batchnorm.batchnorm_forward",
            batchnorm.BatchNorm.forward: "bnutils.batchnorm.BatchNorm",
            reference.batchnorm_forward_naive: "bnutils.reference.batchnorm_forward_naive",
            reference.batchnorm_forward_loops: "bnutils.reference.batchnorm_forward_loops",
            normalization.layernorm_forward: "bnutils.normalization.layernorm_forward"}


@self_check("Exercise 3.4 · predict the output mean and std")
def output_stats(student_fn):
    """Check ``student_fn(gamma, beta, var, eps) -> (mean, std)`` of the BN output.

    For a feature whose batch variance is ``var``: mean = β, std = |γ|·sqrt(var / (var + ε)).
    The prediction must not come from a batch run through bnutils' BN.
    """
    means, stds = [], []
    cases = list(_output_stats_cases())
    for gamma, beta, var, eps in cases:
        with watch_calls(_output_stats_bnutils()) as seen:
            result = student_fn(gamma, beta, var, eps)
        if seen:
            raise Failed(f"your function runs a batch through {seen.called()[0]}; the exercise "
                         f"asks you to predict the mean and std without computing any batch "
                         f"(the check watched for calls to bnutils' forward passes)")
        mean, std = as_answer_tuple(result, 2, "return two numbers as a tuple: (mean, std)",
                                    stacked=True)
        means.append(as_answer_number(mean, "the mean"))
        stds.append(as_answer_number(std, "the std"))
    means, stds = np.array(means), np.array(stds)
    g, b, v, e = (np.array(c) for c in zip(*cases, strict=True))
    want_mean, want_std = b, np.abs(g) * np.sqrt(v / (v + e))
    compare(means, want_mean, "mean is off: the normalized values average to 0; what does "
                              "gamma * x_hat + beta average to?",
            rtol=1e-5, atol=1e-6, diagnose_atol=1e-6, scale=np.abs(b), mistakes={
        "mean: x_hat has mean 0, so the output's mean is 0·γ + β = β, not 0": np.zeros(len(b)),
        "mean: you swapped the roles; β shifts (sets the mean), γ scales": g,
    })
    compare(stds, want_std, "std is off: the output is γ·x_hat + β; what is the std of x_hat "
                            "when the denominator is sqrt(σ² + ε) rather than σ?",
            rtol=1e-4, atol=1e-6, diagnose_rtol=1e-4, diagnose_atol=1e-6, scale=np.abs(g), mistakes={
        "std: a standard deviation is never negative; with γ < 0 it is |γ|·…":
            g * np.sqrt(v / (v + e)),
        "std: ε matters when the variance is small: x_hat's std is sqrt(σ²/(σ² + ε)), not 1 "
        "(look at the case var = eps = 0.01, and the constant feature)": np.abs(g),
        "std: two fixes: a std is never negative (use |γ| when γ < 0), and ε shrinks x_hat's "
        "std below 1 when σ² is small": g,
        "std: you forgot the square root: std(x_hat) = sqrt(σ²/(σ² + ε))": np.abs(g) * v / (v + e),
        "std: that is the variance of the output; take its square root": g**2 * v / (v + e),
        "std: γ scales the output, so its std is |γ| times that of x_hat": np.sqrt(v / (v + e)),
    })
    return "all 4 cases right, incl. γ < 0, ε ≈ σ²"
