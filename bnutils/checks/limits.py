"""Self-checks for notebook 07 (advantages and limits of BN, the alternatives).

* Exercise 7.1 — predict which normalizations survive training with batches of 2.
* Exercise 7.2 — GroupNorm's forward pass, written from the BN code.
* Exercise 7.3 — synchronized BN statistics from the devices' sums.

Each check compares the learner's answer with an independent reference and, when it
is wrong, names the known mistake its output reproduces.

Introduced in notebook 07.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ._core import (
    Failed,
    as_answer_array,
    as_answer_tuple,
    call_learner,
    compare,
    describe,
    fmt_err,
    self_check,
)

__all__ = ["NORM_NAMES", "batch_of_two", "groupnorm_forward", "sync_stats"]

#: The names Exercise 7.1 accepts.
NORM_NAMES = ("none", "bn", "ln", "gn")


# ----------------------------------------------------------------------------- 7.1
@self_check("Exercise 7.1 · who survives a batch of 2")
def batch_of_two(student_fn):
    """Check ``student_fn() -> set of names``: the normalizations that still train with N = 2."""
    answer = student_fn()
    if isinstance(answer, (str, bytes, Mapping)) or not isinstance(answer, Iterable):
        raise Failed(f'return a set of names, e.g. {{"none", "ln"}}; got {describe(answer)}')
    answer = list(answer)
    odd = next((a for a in answer if not isinstance(a, str)), answer)
    if odd is not answer:
        raise Failed(f"every name must be a string such as 'ln'; your set holds {describe(odd)}"
                     + (" (write the string 'none', not None)" if odd is None else ""))
    names = {a.strip().lower() for a in answer}
    unknown = sorted(names - set(NORM_NAMES))
    if unknown:
        raise Failed(f"use the names 'none', 'bn', 'ln', 'gn'; {unknown} is not one of them")
    if "bn" in names:
        raise Failed("BN does not survive: with two samples every normalized feature is ±1, "
                     "whatever the inputs, so the network only learns which sample is larger")
    missing = {"ln", "gn"} - names
    if missing:
        which = " and ".join(name for key, name in (("ln", "LayerNorm"), ("gn", "GroupNorm"))
                             if key in missing)
        verb = "survive" if len(missing) == 2 else "survives"
        raise Failed(f"{which} {verb} too: each sample is normalized over its own features, "
                     f"so the batch size never enters the statistics")
    if "none" not in names:
        raise Failed("the network without normalization survives too: nothing in it depends on "
                     "the batch-mates; a batch of 2 only makes the gradient noisier")
    return "no normalization, LayerNorm and GroupNorm survive; BN collapses - the sweep shows it"


# ----------------------------------------------------------------------------- 7.2
def _normalize(x, axes, eps, ddof=0, eps_outside=False):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=ddof)
    if eps_outside:
        return (x - mean) / (np.sqrt(var) + eps)
    return (x - mean) / np.sqrt(var + eps)


def _gn(x, gamma, beta, G, eps, ddof=0, eps_outside=False, affine=True):
    """Reference GroupNorm of an (N, C, H, W) array, with the usual variations."""
    N, C, H, W = x.shape
    grouped = x.reshape(N, G, C // G, H, W)
    x_hat = _normalize(grouped, (2, 3, 4), eps, ddof, eps_outside).reshape(x.shape)
    if not affine:
        return x_hat
    return x_hat * gamma.reshape(1, C, 1, 1) + beta.reshape(1, C, 1, 1)


def _gn_mistakes(x, gamma, beta, G, eps):
    N, C, H, W = x.shape
    g4, b4 = gamma.reshape(1, C, 1, 1), beta.reshape(1, C, 1, 1)

    def affine(x_hat):
        return x_hat * g4 + b4

    interleaved = _normalize(x.reshape(N, C // G, G, H, W), (1, 3, 4), eps).reshape(x.shape)
    across_samples = _normalize(x.reshape(G, -1), (1,), eps).reshape(x.shape)
    bn_groups = _normalize(x.reshape(N, G, C // G, H, W), (0, 2, 3, 4), eps).reshape(x.shape)
    return {
        "you normalized each channel over the batch (axes 0, 2, 3): that is BatchNorm; "
        "GroupNorm takes each sample on its own, over a group of channels and H, W":
            affine(_normalize(x, (0, 2, 3), eps)),
        "you normalized each sample over all its channels at once: that is LayerNorm "
        "(GroupNorm with G = 1); use num_groups groups of C/G channels":
            affine(_normalize(x, (1, 2, 3), eps)),
        "you normalized each channel of each sample on its own: that is InstanceNorm "
        "(G = C); put C/G neighbouring channels in one group":
            affine(_normalize(x, (2, 3), eps)),
        "your groups mix samples: reshape to (N, G, C // G, H, W) so the batch axis stays "
        "first, then reduce over axes (2, 3, 4)": affine(across_samples),
        "your groups take every G-th channel (reshape (N, C // G, G, H, W)); a group is C/G "
        "*neighbouring* channels: reshape to (N, G, C // G, H, W)": affine(interleaved),
        "you reduced over the batch as well as the group (axes 0, 2, 3, 4); each sample has "
        "its own statistics": affine(bn_groups),
        "you used the unbiased variance (ddof=1); normalize with the biased one (ddof=0)":
            _gn(x, gamma, beta, G, eps, ddof=1),
        "ε is outside the square root: divide by sqrt(var + eps), not sqrt(var) + eps":
            _gn(x, gamma, beta, G, eps, eps_outside=True),
        "you forgot γ and β: scale and shift each *channel* after normalizing":
            _gn(x, gamma, beta, G, eps, affine=False),
    }


@self_check("Exercise 7.2 · GroupNorm forward")
def groupnorm_forward(student_fn):
    """Check ``student_fn(x, gamma, beta, num_groups, eps) -> out`` for (N, C, H, W) inputs."""
    rng = np.random.default_rng(70)
    worst = 0.0
    for shape, G, eps in (((3, 6, 2, 2), 2, 1e-5), ((2, 6, 3, 1), 3, 1e-3), ((4, 4, 1, 2), 1, 0.5)):
        N, C, H, W = shape
        scales = rng.uniform(0.5, 4.0, size=(1, C, 1, 1))
        offsets = rng.uniform(-5.0, 5.0, size=(1, C, 1, 1))
        x = rng.normal(size=shape) * scales + offsets + rng.normal(0, 3, size=(N, 1, 1, 1))
        gamma, beta = rng.uniform(0.5, 2.0, size=C), rng.normal(size=C)
        try:
            out = call_learner(student_fn, x, gamma, beta, G, eps, names=("x", "gamma", "beta"))
        except ValueError as exc:
            if "broadcast" in str(exc) or "reshape" in str(exc):
                raise Failed(f"shape error for x of shape {shape} with {G} groups: reshape x to "
                             "(N, G, C // G, H, W), and γ, β to (1, C, 1, 1)") from None
            raise
        out = as_answer_array(out, "out")
        if out.shape != x.shape:
            raise Failed(f"out has shape {out.shape} but must have the shape of x, {x.shape}; "
                         "reshape back after normalizing the groups")
        expected = _gn(x, gamma, beta, G, eps)
        err = compare(out, expected, f"for x of shape {shape} with {G} groups the output "
                                     "differs from bnutils.groupnorm_forward by up to {err}",
                      rtol=0.0, atol=1e-8 * max(1.0, float(np.max(np.abs(expected)))),
                      mistakes=lambda x=x, gamma=gamma, beta=beta, G=G, eps=eps:
                          _gn_mistakes(x, gamma, beta, G, eps))
        worst = max(worst, err)
    return (f"matches bnutils.groupnorm_forward for G = 2, 3 and 1 (LayerNorm) "
            f"(max error {fmt_err(worst)})")


# ----------------------------------------------------------------------------- 7.3
def _sync_case(seed=73):
    """Three devices with different sizes *and* different data (so the mistakes differ)."""
    rng = np.random.default_rng(seed)
    shards = [rng.normal(loc, scale, size=(n, 4))
              for n, loc, scale in ((2, -2.0, 0.5), (5, 1.0, 1.0), (9, 4.0, 2.0))]
    counts = np.array([len(s) for s in shards])
    sums = np.stack([s.sum(axis=0) for s in shards])
    sumsqs = np.stack([(s**2).sum(axis=0) for s in shards])
    return shards, counts, sums, sumsqs


def _sync_mistakes(counts, sums, sumsqs):
    M = counts.sum()
    n = counts[:, None]
    mean = sums.sum(axis=0) / M
    ex2 = sumsqs.sum(axis=0) / M
    var = ex2 - mean**2
    dev_mean = sums / n
    dev_var = sumsqs / n - dev_mean**2
    return {
        "mean": {
            "you averaged the devices' means without weighting them by their counts; divide "
            "the *total* sum by the *total* count": dev_mean.mean(axis=0),
            "you divided the total sum by the number of devices; divide by the total count "
            "Σ counts": sums.sum(axis=0) / len(counts),
        },
        "var": {
            "you averaged the devices' variances: that misses how far the device means are "
            "from each other. Use Σ sumsqs / M − mean²": (n * dev_var).sum(axis=0) / M,
            "you averaged the devices' variances without weights; use Σ sumsqs / M − mean²":
                dev_var.mean(axis=0),
            "you used the unbiased variance (divided by M − 1); BN normalizes with the biased "
            "one: Σ sumsqs / M − mean²": var * M / (M - 1),
            "you returned E[x²], the mean of the squares; subtract mean²": ex2,
            "you subtracted the mean, not the squared mean: Σ sumsqs / M − mean²": ex2 - mean,
            "you returned the standard deviation; return the variance": np.sqrt(var),
        },
    }


@self_check("Exercise 7.3 · synchronized statistics")
def sync_stats(student_fn):
    """Check ``student_fn(counts, sums, sumsqs) -> (mean, var)`` on three unequal devices."""
    shards, counts, sums, sumsqs = _sync_case()
    result = call_learner(student_fn, counts, sums, sumsqs, names=("counts", "sums", "sumsqs"))
    mean, var = as_answer_tuple(result, 2, "return two arrays, mean and var, as a tuple: "
                                           "`return mean, var`")
    mean, var = as_answer_array(mean, "mean"), as_answer_array(var, "var")
    whole = np.concatenate(shards)
    D, K = whole.shape[1], len(counts)
    for name, value in (("mean", mean), ("var", var)):
        if value.shape != (D,):
            if value.shape == (K,):
                raise Failed(f"{name} has one value per device; sum over the devices (axis 0) "
                             f"to get one value per feature, shape ({D},)")
            raise Failed(f"{name} must have shape ({D},), one value per feature; got {value.shape}")
    mistakes = _sync_mistakes(counts, sums, sumsqs)
    compare(mean, whole.mean(axis=0), "mean differs from the mean of the whole batch; it is "
                                      "Σ sums / Σ counts",
            rtol=1e-9, atol=1e-12, mistakes=mistakes["mean"])
    compare(var, whole.var(axis=0), "var differs from the (biased) variance of the whole "
                                    "batch; it is Σ sumsqs / Σ counts − mean²",
            rtol=1e-9, atol=1e-12, mistakes=mistakes["var"])
    err = max(float(np.max(np.abs(mean - whole.mean(axis=0)))),
              float(np.max(np.abs(var - whole.var(axis=0)))))
    return (f"equal to the statistics of the whole batch of {len(whole)} samples on {K} unequal "
            f"devices (max error {fmt_err(err)})")
