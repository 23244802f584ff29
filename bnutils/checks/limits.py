"""Self-checks for notebook 09 (limits of BN and the alternatives).

* Exercise 9.1 — predict which normalizations survive training with batches of 2
  (judged against the notebook's own measurement).
* Exercise 9.2 — GroupNorm's forward pass, written from the BN code.
* Exercise 9.3 — synchronized BN statistics: merge the devices' means and centred sums
  of squares (Chan, Golub & LeVeque), the stable way.
* Exercise 9.4 — AdaBN: re-estimate a network's BN statistics on a target domain.

Each check compares the learner's answer with an independent reference and, when it
is wrong, names the known mistake its output reproduces.

Introduced in notebook 09 (first written for notebook 07).
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
    fresh_rng,
    self_check,
)

__all__ = ["COLLAPSE", "COURSE_SWEEP", "NORM_NAMES", "adabn", "batch_of_two", "groupnorm_forward",
           "merge_stats"]

#: The names Exercise 9.1 accepts.
NORM_NAMES = ("none", "bn", "ln", "gn")
#: A normalization "collapses" at batch size 2 if it loses more than this much test accuracy
#: against its own batch size 64 (in the notebook: BN loses about 0.45, the others < 0.1).
COLLAPSE = 0.2
_LABELS = {"none": "the network without normalization", "bn": "BN", "ln": "LayerNorm",
           "gn": "GroupNorm"}


# ----------------------------------------------------------------------------- 9.1
def _survivors(measured) -> set:
    """The names whose accuracy at batch size 2 is within COLLAPSE of their own at 64.

    ``measured`` comes from the notebook's sweep, not from the learner's answer: when it is
    not a valid measurement the check says so (re-run the sweep), and blames no one's code.
    """
    rerun = "re-run the batch-size sweep above, then this cell"
    if not isinstance(measured, Mapping) or set(measured) != set(NORM_NAMES):
        raise Failed(f"the measurement given to the check (measured) must map each of "
                     f"{', '.join(NORM_NAMES)} to (accuracy at batch size 2, at 64); got "
                     f"{describe(measured)}: {rerun}")
    out = set()
    for name, pair in measured.items():
        try:
            a2, a64 = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise Failed(f"the measurement given to the check (measured) holds {describe(pair)} "
                         f"for {name!r}, not two accuracies: {rerun}") from None
        if not (np.isfinite(a2) and np.isfinite(a64)):
            raise Failed(f"the measurement given to the check (measured) holds accuracies "
                         f"{a2:g} and {a64:g} for {name!r}, not finite numbers: {rerun}")
        if a64 - a2 <= COLLAPSE:
            out.add(name)
    return out


#: What notebook 09's sweep measured (mean of 3 random seeds), used when no measurement is given.
COURSE_SWEEP = {"none": (0.869, 0.941), "bn": (0.480, 0.932), "ln": (0.877, 0.933),
                "gn": (0.884, 0.928)}


@self_check("Exercise 9.1 · who survives a batch of 2")
def batch_of_two(student_fn, measured=None):
    """Check ``student_fn() -> set of names`` against the sweep's own measurement.

    ``measured`` maps "none", "bn", "ln", "gn" to (mean test accuracy with batches of 2,
    with batches of 64), as the notebook's sweep measured them; a normalization survives
    if it loses at most ``COLLAPSE``. Without it, the course's stored sweep is used.
    """
    measured = COURSE_SWEEP if measured is None else measured
    expected = _survivors(measured)
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

    def drop(name):
        a2, a64 = measured[name]
        return f"{float(a64):.2f} -> {float(a2):.2f}"

    wrongly_in = sorted(names - expected)
    if wrongly_in:
        name = wrongly_in[0]
        why = (": with two samples every normalized feature is ±1, whatever the inputs"
               if name == "bn" else "")
        raise Failed(f"{_LABELS[name]} does not survive: the sweep measured {drop(name)}{why}")
    missing = sorted(expected - names)
    if missing:
        name = missing[0]
        why = {"ln": ": each sample is normalized over its own features",
               "gn": ": each sample is normalized over its own groups of features",
               "none": ": nothing in it depends on the batch-mates",
               "bn": ""}[name]
        raise Failed(f"{_LABELS[name]} survives too (the sweep measured {drop(name)}){why}")
    survivors = ", ".join(n for n in NORM_NAMES if n in expected) or "none"
    return f"as the sweep measured ({survivors} survive)"


# ----------------------------------------------------------------------------- 9.2
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


@self_check("Exercise 9.2 · GroupNorm forward")
def groupnorm_forward(student_fn):
    """Check ``student_fn(x, gamma, beta, num_groups, eps) -> out`` for (N, C, H, W) inputs."""
    rng = np.random.default_rng(70)
    fresh = fresh_rng()
    G = int(fresh.choice([1, 2, 3]))
    fresh_case = ((int(fresh.integers(2, 5)), G * int(fresh.integers(2, 4)), int(fresh.integers(1, 4)),
                   int(fresh.integers(2, 4))), G, float(fresh.choice([1e-5, 1e-3])))
    errors = []
    for i, (shape, G, eps) in enumerate((((3, 6, 2, 2), 2, 1e-5), ((2, 6, 3, 1), 3, 1e-3),
                                         ((4, 4, 1, 2), 1, 0.5), fresh_case)):
        rng = fresh if i == 3 else rng
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
        grouped = x.reshape(N, G, -1)
        big = np.abs(grouped).max(axis=2, keepdims=True) / np.sqrt(grouped.var(axis=2, keepdims=True)
                                                                 + eps)
        scale = (np.abs(gamma).reshape(1, C, 1, 1) * np.repeat(big, C // G, axis=1).reshape(N, C, 1, 1)
                 + np.abs(beta).reshape(1, C, 1, 1) + np.abs(expected))
        errors.append(compare(out, expected, f"for x of shape {shape} with {G} groups the output "
                                             "differs from bnutils.groupnorm_forward by up to {err}",
                              rtol=0.0, atol=1e-8 * max(1.0, float(np.max(np.abs(expected)))),
                              scale=scale,
                              mistakes=lambda x=x, gamma=gamma, beta=beta, G=G, eps=eps:
                                  _gn_mistakes(x, gamma, beta, G, eps)))
    return f"matches bnutils for G = 2, 3 and 1 (error {fmt_err(max(errors[:3]))})"


# ----------------------------------------------------------------------------- 9.3
def _merge_case(seed=93, rng=None):
    """Three devices with different sizes *and* different data (so the mistakes differ);
    with ``rng``, 2 to 5 devices of fresh sizes and data."""
    if rng is None:
        rng = np.random.default_rng(seed)
        plan = ((2, -2.0, 0.5), (5, 1.0, 1.0), (9, 4.0, 2.0))
        d = 4
    else:
        k, d = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        plan = tuple((int(rng.integers(2, 12)), float(rng.uniform(-5, 5)), float(rng.uniform(0.3, 3)))
                     for _ in range(k))
    shards = [rng.normal(loc, scale, size=(n, d)) for n, loc, scale in plan]
    counts = np.array([len(s) for s in shards])
    means = np.stack([s.mean(axis=0) for s in shards])
    m2s = np.stack([((s - s.mean(axis=0)) ** 2).sum(axis=0) for s in shards])
    return shards, counts, means, m2s


def _merge_mistakes(counts, means, m2s):
    M = counts.sum()
    n = counts[:, None]
    mean = (n * means).sum(axis=0) / M
    between = (n * (means - mean) ** 2).sum(axis=0)
    var = (m2s.sum(axis=0) + between) / M
    return {
        "mean": {
            "you averaged the devices' means without weighting them by their counts; weight "
            "each mean by its device's count and divide by the total count": means.mean(axis=0),
            "you summed the means; weight each by its count and divide by the total count":
                means.sum(axis=0),
        },
        "var": {
            "you added up the centred sums of squares but left out how far the device means "
            "lie from the global mean: add Σ n_k (mean_k - mean)²": m2s.sum(axis=0) / M,
            "you averaged the devices' variances M2_k / n_k; that misses the spread between "
            "the device means": (m2s / n).mean(axis=0),
            "you used the unbiased variance (divided by M − 1); BN normalizes with the biased "
            "one: divide by the total count M": var * M / (M - 1),
            "you returned the merged sum of squares M2; divide it by the total count": var * M,
            "the between-device term needs the counts: Σ n_k (mean_k - mean)², not "
            "Σ (mean_k - mean)²": (m2s.sum(axis=0) + ((means - mean) ** 2).sum(axis=0)) / M,
            "you returned the standard deviation; return the variance": np.sqrt(var),
        },
    }


@self_check("Exercise 9.3 · device statistics")
def merge_stats(student_fn):
    """Check ``student_fn(counts, means, m2s) -> (mean, var)`` on three unequal devices."""
    errors = []
    for shards, counts, means, m2s in (_merge_case(), _merge_case(rng=fresh_rng())):
        args = (counts.copy(), means.copy(), m2s.copy())
        mean, var = as_answer_tuple(student_fn(*args), 2, "return two arrays, mean and var, as a "
                                                          "tuple: `return mean, var`", stacked=True)
        if not all(np.array_equal(a, b) for a, b in zip(args, (counts, means, m2s))):
            raise Failed("your function changed its inputs in place; compute new arrays instead")
        mean, var = as_answer_array(mean, "mean"), as_answer_array(var, "var")
        whole = np.concatenate(shards)
        D, K = whole.shape[1], len(counts)
        for name, value in (("mean", mean), ("var", var)):
            if value.shape != (D,):
                if value.shape == (K,):
                    raise Failed(f"{name} has one value per device; combine the devices (axis 0) "
                                 f"to get one value per feature, shape ({D},)")
                raise Failed(f"{name} must have shape ({D},), one value per feature; got {value.shape}")
        mistakes = _merge_mistakes(counts, means, m2s)
        big = np.abs(means).max(axis=0)
        compare(mean, whole.mean(axis=0), "mean differs from the mean of the whole batch; it is "
                                          "Σ n_k mean_k / Σ n_k",
                rtol=1e-9, atol=1e-12, mistakes=mistakes["mean"], scale=big)
        compare(var, whole.var(axis=0), "var differs from the (biased) variance of the whole "
                                        "batch; it is (Σ M2_k + Σ n_k (mean_k - mean)²) / Σ n_k",
                rtol=1e-9, atol=1e-12, mistakes=mistakes["var"],
                scale=(m2s.sum(axis=0) + counts @ (np.abs(means) + big) ** 2) / counts.sum())
        err = max(float(np.max(np.abs(mean - whole.mean(axis=0)))),
                  float(np.max(np.abs(var - whole.var(axis=0)))))
        errors.append((K, err))
    K, err = errors[0]                        # the fixed case's (the fresh one is not reported)
    return f"= whole-batch statistics, {K} devices (error {fmt_err(err)})"


# ----------------------------------------------------------------------------- 9.4
def _adabn_case(rng=None):
    """A small BN network with trained-looking statistics in eval mode, and shifted target
    data; with ``rng``, a fresh network (given in *training* mode) and fresh data."""
    from ..batchnorm import BatchNorm
    from ..layers import Linear, ReLU, Sequential

    fixed = rng is None
    rng = np.random.default_rng(94) if fixed else rng
    seeds = (1, 2, 3) if fixed else tuple(int(v) for v in rng.integers(2**31, size=3))
    net = Sequential(Linear(5, 6, rng=seeds[0]), BatchNorm(6), ReLU(), Linear(6, 4, rng=seeds[1]),
                     BatchNorm(4), ReLU(), Linear(4, 3, rng=seeds[2]))
    for layer in (net[1], net[4]):
        layer.running_mean = rng.normal(size=layer.num_features)
        layer.running_var = rng.uniform(0.5, 2.0, size=layer.num_features)
        layer.gamma = rng.uniform(0.5, 1.5, size=layer.num_features)
        layer.beta = rng.normal(0.0, 0.5, size=layer.num_features)
    net.eval() if fixed else net.train()
    X_target = rng.normal(2.0, 3.0, size=(12 if fixed else int(rng.integers(8, 20)), 5))
    return net, X_target                                # few samples: ddof matters


def _adabn_reference(net, X, *, ddof=1, sequential=True, first_only=False, momentum=None):
    import copy

    from ..batchnorm import BatchNorm

    new = copy.deepcopy(net).eval()
    if not sequential:                          # statistics from one pass of the old network
        net.eval().forward(X)
        inputs = {i: net.outputs[i - 1] for i, layer in enumerate(net.layers)
                  if isinstance(layer, BatchNorm)}
        for i, x in inputs.items():
            new[i].running_mean, new[i].running_var = x.mean(axis=0), x.var(axis=0, ddof=ddof)
        return new
    x, done = X, False
    for layer in new.layers:
        if isinstance(layer, BatchNorm) and not (first_only and done):
            mean, var = x.mean(axis=0), x.var(axis=0, ddof=ddof)
            if momentum is not None:
                mean = (1 - momentum) * layer.running_mean + momentum * mean
                var = (1 - momentum) * layer.running_var + momentum * var
            layer.running_mean, layer.running_var = mean, var
            done = True
        x = layer.forward(x)
    return new


def _bn_stats(model, positions):
    return np.concatenate([np.concatenate([np.asarray(model[i].running_mean, dtype=float).ravel(),
                                           np.asarray(model[i].running_var, dtype=float).ravel()])
                           for i in positions])


@self_check("Exercise 9.4 · AdaBN")
def adabn(student_fn):
    """Check ``student_fn(model, X_target) -> adapted copy`` against layer-by-layer AdaBN, on
    a fixed network and a fresh one; the copy must be in eval mode."""
    errors = [_check_adabn(student_fn, *case) for case in (_adabn_case(), _adabn_case(fresh_rng()))]
    return f"both BN layers hold the target statistics (error {fmt_err(errors[0])})"


def _check_adabn(student_fn, net, X):
    from ..batchnorm import BatchNorm
    from ..layers import Sequential, iter_layers

    modes = [layer.training for layer in iter_layers(net)]
    positions = [i for i, layer in enumerate(net.layers) if isinstance(layer, BatchNorm)]
    before = _bn_stats(net, positions)
    weights = [layer.W.copy() for layer in net.layers if hasattr(layer, "W")]
    X_given = X.copy()
    adapted = student_fn(net, X_given)
    if not np.array_equal(X_given, X):
        raise Failed("your function changed X_target in place")
    if adapted is None:
        raise Failed("your function returned None - did you forget `return adapted`?")
    if not isinstance(adapted, Sequential) or len(adapted) != len(net):
        raise Failed(f"return the adapted network (a Sequential of {len(net)} layers, e.g. "
                     f"copy.deepcopy(model)); got {describe(adapted)}")
    if adapted is net or not np.array_equal(_bn_stats(net, positions), before):
        raise Failed("your function changed the given model; adapt a copy "
                     "(copy.deepcopy(model)) and return it")
    if [layer.training for layer in iter_layers(net)] != modes:
        raise Failed("your function changed the given model's mode (train/eval); switch only "
                     "the copy: copy.deepcopy(model).eval()")
    if not all(isinstance(adapted[i], BatchNorm) for i in positions):
        raise Failed("the returned network must keep its BatchNorm layers in place")
    if not all(np.array_equal(a.W, w) for a, w in
               zip([layer for layer in adapted.layers if hasattr(layer, "W")], weights)):
        raise Failed("AdaBN changes only the BN statistics; your function changed the weights")
    got = as_answer_array(_bn_stats(adapted, positions), "the running statistics")
    expected = _bn_stats(_adabn_reference(net, X), positions)
    mistakes = {
        "the later BN layer must see the activations of the *adapted* earlier layers: set the "
        "statistics layer by layer, forwarding X_target through each adapted layer":
            _bn_stats(_adabn_reference(net, X, sequential=False), positions),
        "you stored the biased variance (ddof=0); the running variance holds the unbiased "
        "one, x.var(axis=0, ddof=1)": _bn_stats(_adabn_reference(net, X, ddof=0), positions),
        "only the first BN layer was adapted; continue the pass through every layer":
            _bn_stats(_adabn_reference(net, X, first_only=True), positions),
        "you blended the target statistics into the old ones (a training-mode forward with "
        "momentum); AdaBN replaces them": _bn_stats(_adabn_reference(net, X, momentum=0.1),
                                                    positions),
        "the statistics are unchanged: set each BatchNorm layer's running_mean and running_var "
        "from the activations arriving there": before,
    }
    err = compare(got, expected, "the BN statistics differ from AdaBN's by up to {err}: for "
                                 "each BatchNorm layer, in order, the mean and unbiased "
                                 "variance of its input on X_target",
                  rtol=1e-9, atol=1e-12, mistakes=mistakes, scale=_adabn_scale(net, X, positions))
    if any(layer.training for layer in iter_layers(adapted)):
        raise Failed("the adapted copy is in training mode: return it in eval mode "
                     "(adapted.eval()), or its BN layers normalize with each batch's statistics "
                     "and overwrite the adapted ones")
    return err


def _adabn_scale(net, X, positions):
    """What float32 rounds in each statistic: the largest |activation| arriving at the BN
    layer (for its mean), and that times the largest deviation (for its variance)."""
    adapted = _adabn_reference(net, X)
    adapted.eval().forward(X)
    parts = []
    for i in positions:
        a = X if i == 0 else adapted.outputs[i - 1]
        big = np.abs(a).max(axis=0)
        parts += [big, a.var(axis=0, ddof=1) + big * np.abs(a - a.mean(axis=0)).max(axis=0)]
    return np.concatenate(parts)
