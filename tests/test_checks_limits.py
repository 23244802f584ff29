"""Notebook 09's self-checks pass the solutions, fail the stubs and name each known mistake."""

import copy

import numpy as np
import pytest
from check_helpers import assert_fails_with, stub, verdict_count  # tests/check_helpers.py

from bnutils.batchnorm import BatchNorm
from bnutils.checks import limits as check
from bnutils.lab.finetuning import adapt_batchnorm
from bnutils.normalization import groupnorm_forward


@pytest.mark.parametrize("chk", [check.batch_of_two, check.groupnorm_forward, check.merge_stats,
                                 check.adabn])
def test_stub_is_not_done_yet(chk):
    assert_fails_with(chk, stub, "not done yet")


def test_checks_print_one_line(capsys):
    check.batch_of_two(lambda: {"none", "ln", "gn"})
    check.merge_stats(stub)
    out = capsys.readouterr().out
    assert verdict_count(out) == 2 and out.startswith("✓ ") and "\n✗ " in out


# ----------------------------------------------------------------------------- 9.1
SWEEP = {"none": (0.87, 0.94), "bn": (0.48, 0.93), "ln": (0.88, 0.93), "gn": (0.88, 0.93)}


@pytest.mark.parametrize("answer", [{"none", "ln", "gn"}, ["gn", "ln", "none"], ("LN", " gn", "None")])
def test_batch_of_two_passes(answer):
    for measured in (None, SWEEP):
        result = check.batch_of_two.evaluate(lambda: answer, measured)
        assert result.passed, result.message
        assert result.message.startswith("✓ ")


def test_batch_of_two_follows_the_measurement():
    # a sweep in which the plain network also collapsed: the answer must follow the data
    collapsed = {**SWEEP, "none": (0.50, 0.94)}
    assert check.batch_of_two.evaluate(lambda: {"ln", "gn"}, collapsed).passed
    _fails_with_measured(lambda: {"none", "ln", "gn"}, collapsed, "0.94 -> 0.50")
    # the plain network missing the old fixed threshold of 0.1 by 0.073 still survives
    assert check.batch_of_two.evaluate(lambda: {"none", "ln", "gn"},
                                       {**SWEEP, "none": (0.871, 0.944)}).passed


@pytest.mark.parametrize(("answer", "fragment"), [
    ({"none", "bn", "ln", "gn"}, "±1"),
    ({"bn"}, "±1"),
    ({"none", "gn"}, "LayerNorm survives"),
    ({"none"}, "GroupNorm survives"),
    ({"ln", "gn"}, "without normalization survives"),
    ({"none", "layernorm"}, "use the names"),
    ("ln", "return a set of names"),
    (None, "return a set of names"),
    ({None, "ln", "gn"}, "not None"),
])
def test_batch_of_two_names_the_mistake(answer, fragment):
    _fails_with_measured(lambda: answer, SWEEP, fragment)


def _fails_with_measured(fn, measured, fragment):
    result = check.batch_of_two.evaluate(fn, measured)
    assert not result.passed and result.message.startswith("✗ "), result.message
    assert fragment in result.message, result.message


@pytest.mark.parametrize("measured", [{"bn": (0.5, 0.9)}, {**SWEEP, "bn": (float("nan"), 0.9)}])
def test_batch_of_two_refuses_a_broken_measurement(measured):
    result = check.batch_of_two.evaluate(lambda: {"none", "ln", "gn"}, measured)
    assert not result.passed


# ----------------------------------------------------------------------------- 9.2
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


# ----------------------------------------------------------------------------- 9.3
def merge_solution(counts, means, m2s):
    n = counts[:, None]
    mean = (n * means).sum(axis=0) / counts.sum()
    return mean, (m2s.sum(axis=0) + (n * (means - mean) ** 2).sum(axis=0)) / counts.sum()


def merge_pairwise(counts, means, m2s):
    n, mean, m2 = counts[0], means[0], m2s[0]
    for n_b, mean_b, m2_b in zip(counts[1:], means[1:], m2s[1:]):
        delta, total = mean_b - mean, n + n_b
        mean, m2, n = mean + delta * n_b / total, m2 + m2_b + delta**2 * n * n_b / total, total
    return mean, m2 / n


@pytest.mark.parametrize("fn", [merge_solution, merge_pairwise])
def test_merge_stats_passes(fn):
    result = check.merge_stats.evaluate(fn)
    assert result.passed, result.message
    assert "whole-batch statistics, 3 devices" in result.message


def _merge_with(mean=None, var=None):
    def fn(counts, means, m2s):
        m, v = merge_solution(counts, means, m2s)
        n, M = counts[:, None], counts.sum()
        choices = {
            "unweighted": means.mean(axis=0),
            "summed": means.sum(axis=0),
            "within-only": m2s.sum(axis=0) / M,
            "device-vars": (m2s / n).mean(axis=0),
            "ddof1": v * M / (M - 1),
            "m2": v * M,
            "no-counts": (m2s.sum(axis=0) + ((means - m) ** 2).sum(axis=0)) / M,
            "std": np.sqrt(v),
            "per-device": means.sum(axis=1),
        }
        return (choices[mean] if mean else m), (choices[var] if var else v)

    return fn


@pytest.mark.parametrize(("fn", "fragment"), [
    (_merge_with(mean="unweighted"), "without weighting"),
    (_merge_with(mean="summed"), "you summed the means"),
    (_merge_with(mean="per-device"), "one value per device"),
    (_merge_with(var="within-only"), "left out how far the device means"),
    (_merge_with(var="device-vars"), "averaged the devices' variances"),
    (_merge_with(var="ddof1"), "M − 1"),
    (_merge_with(var="m2"), "divide it by the total count"),
    (_merge_with(var="no-counts"), "needs the counts"),
    (_merge_with(var="std"), "standard deviation"),
    (lambda c, m, q: merge_solution(c, m, q)[0], "as a tuple"),
    (lambda c, m, q: [1.0, 2.0], "one value per feature"),   # a list is a tuple (issue 25)
    (lambda c, m, q: (None, None), "returned None"),
    (lambda c, m, q: (np.full(4, np.nan), np.ones(4)), "NaN"),
    (lambda c, m, q: ("1.0", "2.0"), "string"),
    (lambda c, m, q: (np.zeros(4), np.zeros(4)), "Σ n_k mean_k / Σ n_k"),
])
def test_merge_stats_names_the_mistake(fn, fragment):
    assert_fails_with(check.merge_stats, fn, fragment)


def test_merge_stats_inputs_are_copies():
    def mutating(counts, means, m2s):
        m2s *= 0
        return merge_solution(counts, means, m2s)

    assert_fails_with(check.merge_stats, mutating, "in place")
    assert check.merge_stats.evaluate(merge_solution).passed


def test_merge_stats_passes_in_float32():
    def in_float32(counts, means, m2s):
        mean, var = merge_solution(counts, means.astype(np.float32), m2s.astype(np.float32))
        return mean.astype(np.float32), var.astype(np.float32)

    assert check.merge_stats.evaluate(in_float32).passed


# ----------------------------------------------------------------------------- 9.4
def adabn_solution(model, X_target):
    adapted = copy.deepcopy(model).eval()
    x = X_target
    for layer in adapted.layers:
        if isinstance(layer, BatchNorm):
            layer.running_mean = x.mean(axis=0)
            layer.running_var = x.var(axis=0, ddof=1)
        x = layer.forward(x)
    return adapted


@pytest.mark.parametrize("fn", [adabn_solution, adapt_batchnorm])
def test_adabn_passes_the_solution_and_bnutils(fn):
    result = check.adabn.evaluate(fn)
    assert result.passed, result.message


def _adabn_wrong(kind):
    def fn(model, X):
        if kind == "in-place":
            x = X
            for layer in model.layers:
                if isinstance(layer, BatchNorm):
                    layer.running_mean, layer.running_var = x.mean(axis=0), x.var(axis=0, ddof=1)
                x = layer.forward(x)
            return model
        adapted = copy.deepcopy(model).eval()
        if kind == "one-pass":
            model.eval().forward(X)
            for i, layer in enumerate(adapted.layers):
                if isinstance(layer, BatchNorm):
                    a = model.outputs[i - 1]
                    layer.running_mean, layer.running_var = a.mean(axis=0), a.var(axis=0, ddof=1)
            return adapted
        if kind == "untouched":
            return adapted
        if kind == "weights":
            adapted = adabn_solution(model, X)
            adapted[0].W = adapted[0].W * 2
            return adapted
        x, done = X, False
        for layer in adapted.layers:
            if isinstance(layer, BatchNorm) and not (kind == "first-only" and done):
                mean, var = x.mean(axis=0), x.var(axis=0, ddof=0 if kind == "biased" else 1)
                if kind == "momentum":
                    mean = 0.9 * layer.running_mean + 0.1 * mean
                    var = 0.9 * layer.running_var + 0.1 * var
                layer.running_mean, layer.running_var, done = mean, var, True
            x = layer.forward(x)
        return adapted

    return fn


@pytest.mark.parametrize(("kind", "fragment"), [
    ("in-place", "changed the given model"),
    ("one-pass", "layer by layer"),
    ("biased", "ddof=0"),
    ("first-only", "only the first BN layer"),
    ("momentum", "blended"),
    ("untouched", "unchanged"),
    ("weights", "changed the weights"),
])
def test_adabn_names_the_mistake(kind, fragment):
    assert_fails_with(check.adabn, _adabn_wrong(kind), fragment)


@pytest.mark.parametrize(("fn", "fragment"), [
    (lambda model, X: None, "returned None"),
    (lambda model, X: np.zeros(3), "return the adapted network"),
    (lambda model, X: "model", "return the adapted network"),
])
def test_adabn_wrong_types(fn, fragment):
    assert_fails_with(check.adabn, fn, fragment)


def test_adabn_nan_statistics_fail():
    def nan_stats(model, X):
        adapted = adabn_solution(model, X)
        adapted[1].running_mean = adapted[1].running_mean * np.nan
        return adapted

    assert_fails_with(check.adabn, nan_stats, "NaN")


def test_passing_lines_fit_90_characters(capsys):
    check.batch_of_two(lambda: {"none", "ln", "gn"})
    check.groupnorm_forward(gn_solution)
    check.merge_stats(merge_solution)
    check.adabn(adabn_solution)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.startswith("✓ ") and len(line) <= 90 for line in lines), lines
