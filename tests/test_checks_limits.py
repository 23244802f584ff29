"""Notebook 07's self-checks pass the solutions, fail the stubs and name each known mistake."""

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub  # tests/check_helpers.py

from bnutils import groupnorm_forward
from bnutils.checks import limits as check


@pytest.mark.parametrize("chk", [check.batch_of_two, check.groupnorm_forward, check.sync_stats])
def test_stub_is_not_done_yet(chk):
    assert_fails_with(chk, stub, "not done yet")


def test_checks_print_one_line(capsys):
    check.batch_of_two(lambda: {"none", "ln", "gn"})
    check.sync_stats(stub)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("✓ ") and lines[1].startswith("✗ ")


# ----------------------------------------------------------------------------- 7.1
@pytest.mark.parametrize("answer", [{"none", "ln", "gn"}, ["gn", "ln", "none"], ("LN", " gn", "None")])
def test_batch_of_two_passes(answer):
    result = check.batch_of_two.evaluate(lambda: answer)
    assert result.passed, result.message
    assert result.message.startswith("✓ ")


@pytest.mark.parametrize(("answer", "fragment"), [
    ({"none", "bn", "ln", "gn"}, "±1"),
    ({"bn"}, "±1"),
    ({"none", "gn"}, "LayerNorm survives"),
    ({"none"}, "LayerNorm and GroupNorm survive"),
    ({"ln", "gn"}, "without normalization survives"),
    ({"none", "layernorm"}, "use the names"),
    ("ln", "return a set of names"),
    (None, "return a set of names"),
])
def test_batch_of_two_names_the_mistake(answer, fragment):
    assert_fails_with(check.batch_of_two, lambda: answer, fragment)


# ----------------------------------------------------------------------------- 7.2
def gn_solution(x, gamma, beta, num_groups, eps=1e-5):
    N, C, H, W = x.shape
    g = x.reshape(N, num_groups, C // num_groups, H, W)
    mean = g.mean(axis=(2, 3, 4), keepdims=True)
    var = g.var(axis=(2, 3, 4), keepdims=True)
    x_hat = ((g - mean) / np.sqrt(var + eps)).reshape(N, C, H, W)
    return x_hat * gamma.reshape(1, C, 1, 1) + beta.reshape(1, C, 1, 1)


def test_groupnorm_passes_the_solution_and_bnutils():
    assert check.groupnorm_forward.evaluate(gn_solution).passed
    result = check.groupnorm_forward.evaluate(
        lambda x, gamma, beta, G, eps: groupnorm_forward(x, gamma, beta, G, eps)[0])
    assert result.passed, result.message


def make_gn(kind):
    """GroupNorm with one deliberate mistake."""

    def fn(x, gamma, beta, G, eps=1e-5):
        N, C, H, W = x.shape
        g4, b4 = gamma.reshape(1, C, 1, 1), beta.reshape(1, C, 1, 1)

        def norm(a, axes, ddof=0, outside=False):
            m, v = a.mean(axis=axes, keepdims=True), a.var(axis=axes, keepdims=True, ddof=ddof)
            return (a - m) / (np.sqrt(v) + eps if outside else np.sqrt(v + eps))

        if kind == "bn":
            x_hat = norm(x, (0, 2, 3))
        elif kind == "ln":
            x_hat = norm(x, (1, 2, 3))
        elif kind == "in":
            x_hat = norm(x, (2, 3))
        elif kind == "mix-samples":
            x_hat = norm(x.reshape(G, -1), (1,)).reshape(x.shape)
        elif kind == "interleaved":
            x_hat = norm(x.reshape(N, C // G, G, H, W), (1, 3, 4)).reshape(x.shape)
        elif kind == "with-batch":
            x_hat = norm(x.reshape(N, G, C // G, H, W), (0, 2, 3, 4)).reshape(x.shape)
        elif kind == "ddof1":
            x_hat = norm(x.reshape(N, G, C // G, H, W), (2, 3, 4), ddof=1).reshape(x.shape)
        elif kind == "eps-outside":
            x_hat = norm(x.reshape(N, G, C // G, H, W), (2, 3, 4), outside=True).reshape(x.shape)
        elif kind == "no-affine":
            return norm(x.reshape(N, G, C // G, H, W), (2, 3, 4)).reshape(x.shape)
        elif kind == "in-place":
            x -= x.mean()
            return gn_solution(x, gamma, beta, G, eps)
        elif kind == "flat":
            return gn_solution(x, gamma, beta, G, eps).reshape(N, -1)
        elif kind == "flat-gamma":          # (C,) broadcasts against W, not against C
            return norm(x.reshape(N, G, C // G, H, W), (2, 3, 4)).reshape(x.shape) * gamma + beta
        elif kind == "off":
            return gn_solution(x, gamma, beta, G, eps) + 0.01
        return x_hat * g4 + b4

    return fn


@pytest.mark.parametrize(("kind", "fragment"), [
    ("bn", "that is BatchNorm"),
    ("ln", "that is LayerNorm"),
    ("in", "that is InstanceNorm"),
    ("mix-samples", "mix samples"),
    ("interleaved", "every G-th channel"),
    ("with-batch", "over the batch as well"),
    ("ddof1", "ddof=1"),
    ("eps-outside", "outside the square root"),
    ("no-affine", "forgot γ and β"),
    ("in-place", "in place"),
    ("flat", "must have the shape of x"),
    ("flat-gamma", "shape error"),
    ("off", "differs from bnutils.groupnorm_forward"),
])
def test_groupnorm_names_the_mistake(kind, fragment):
    assert_fails_with(check.groupnorm_forward, make_gn(kind), fragment)


# ----------------------------------------------------------------------------- 7.3
def sync_solution(counts, sums, sumsqs):
    M = counts.sum()
    mean = sums.sum(axis=0) / M
    return mean, sumsqs.sum(axis=0) / M - mean**2


def test_sync_stats_passes():
    result = check.sync_stats.evaluate(sync_solution)
    assert result.passed, result.message
    assert "16 samples on 3 unequal devices" in result.message


def _with(mean=None, var=None):
    def fn(counts, sums, sumsqs):
        m, v = sync_solution(counts, sums, sumsqs)
        n = counts[:, None]
        dev_mean, dev_var = sums / n, sumsqs / n - (sums / n) ** 2
        choices = {
            "unweighted": dev_mean.mean(axis=0),
            "by-devices": sums.sum(axis=0) / len(counts),
            "within-only": (n * dev_var).sum(axis=0) / counts.sum(),
            "within-unweighted": dev_var.mean(axis=0),
            "ddof1": v * counts.sum() / (counts.sum() - 1),
            "ex2": sumsqs.sum(axis=0) / counts.sum(),
            "minus-mean": sumsqs.sum(axis=0) / counts.sum() - m,
            "std": np.sqrt(v),
            "per-device": sums.sum(axis=1),
        }
        return (choices[mean] if mean else m), (choices[var] if var else v)

    return fn


@pytest.mark.parametrize(("fn", "fragment"), [
    (_with(mean="unweighted"), "without weighting"),
    (_with(mean="by-devices"), "number of devices"),
    (_with(mean="per-device"), "one value per device"),
    (_with(var="within-only"), "misses how far the device means"),
    (_with(var="within-unweighted"), "without weights"),
    (_with(var="ddof1"), "M − 1"),
    (_with(var="ex2"), "E[x²]"),
    (_with(var="minus-mean"), "not the squared mean"),
    (_with(var="std"), "standard deviation"),
    (lambda c, s, q: sync_solution(c, s, q)[0], "as a tuple"),
    (lambda c, s, q: [1.0, 2.0], "as a tuple"),
    (lambda c, s, q: (None, None), "returned None"),
    (lambda c, s, q: (np.zeros(4), np.zeros(4)), "Σ sums / Σ counts"),
])
def test_sync_stats_names_the_mistake(fn, fragment):
    assert_fails_with(check.sync_stats, fn, fragment)


def test_sync_stats_inputs_are_copies():
    def mutating(counts, sums, sumsqs):
        sums *= 0
        return sync_solution(counts, sums, sumsqs)

    assert_fails_with(check.sync_stats, mutating)
    assert check.sync_stats.evaluate(sync_solution).passed
