"""Self-checks for notebook 08, convolutional and residual networks.

Exercise 8.1 · the spatial BN backward; Exercise 8.2 · a residual block that is the
identity at initialization (zero-init γ); Exercise 8.3 · predict the residual stream's
variance after k blocks with BN. Each check prints one ✓/✗ line (see
``bnutils.checks._core``) and names the known mistake an answer reproduces.

Introduced in notebook 08.
"""

from __future__ import annotations

import functools

import numpy as np

from ..batchnorm import BatchNorm, batchnorm_backward, batchnorm_forward
from ..layers import Layer, Linear, ReLU, Sequential, iter_layers
from ..residual import Residual, make_resnet, stream_variances
from ..training import sgd_step
from ._core import (
    Failed,
    as_answer_array,
    as_answer_number,
    as_answer_tuple,
    compare,
    describe,
    fmt_err,
    fresh_rng,
    run_learner,
    self_check,
)

__all__ = ["spatial_bn_backward", "stream_variance", "zero_gamma_block"]


# ----------------------------------------------------------------------------- Exercise 8.1

def _spatial_cases():
    """(dout, x_hat, gamma, inv_std, dx_expected) for three image batches, one of them
    float32 and one of a single image (N = 1: still H·W values per channel), then a fresh
    one.

    The expected dx comes from ``bnutils.batchnorm_backward`` in float64."""
    rng = np.random.default_rng(81)
    fresh = fresh_rng()
    fresh_shape = tuple(int(v) for v in fresh.permutation([2, 3, 4, 5, 6])[:4])
    for r, shape, dtype in ((rng, (3, 4, 5, 5), np.float64), (rng, (1, 2, 4, 6), np.float64),
                            (rng, (4, 3, 3, 5), np.float32), (fresh, fresh_shape, np.float64)):
        rng = r
        C = shape[1]
        x = rng.normal(2.0, 3.0, size=shape).astype(dtype)
        gamma = (rng.uniform(0.5, 2.0, size=C) * rng.choice([-1, 1], size=C)).astype(dtype)
        dout = rng.standard_normal(shape).astype(dtype)
        _, cache = batchnorm_forward(x, gamma, np.zeros(C, dtype), eps=1e-3)
        _, cache64 = batchnorm_forward(x.astype(np.float64), gamma.astype(np.float64),
                                       np.zeros(C), eps=1e-3)
        want, _, _ = batchnorm_backward(dout.astype(np.float64), cache64)
        yield dout, np.array(cache.x_hat), np.array(gamma), np.array(cache.inv_std), want


def _spatial_mistakes(dout, x_hat, gamma, inv_std):
    """What the common mistakes return for dx (float64)."""
    dout, x_hat = dout.astype(np.float64), x_hat.astype(np.float64)
    N, C, H, W = dout.shape
    g = gamma.astype(np.float64).reshape(1, C, 1, 1)
    inv = inv_std.astype(np.float64).reshape(1, C, 1, 1)
    m = N * H * W
    sb = dout.sum(axis=(0, 2, 3), keepdims=True)
    sg = (dout * x_hat).sum(axis=(0, 2, 3), keepdims=True)
    sb0 = dout.sum(axis=0, keepdims=True)
    sg0 = (dout * x_hat).sum(axis=0, keepdims=True)
    return {
        "dx: the sums run over the batch axis only; in a conv layer a channel's statistics pool "
        "N·H·W values, so sum over axes (0, 2, 3) and use m = N·H·W":
            g * inv / N * (N * dout - sb0 - x_hat * sg0),
        "dx: m must be N·H·W, the number of values each channel's mean and variance average "
        "over, not N": g * inv / N * (N * dout - sb - x_hat * sg),
        "dx: you treated the batch mean and variance as constants; subtract the terms through "
        "them (Σ dout and x_hat·Σ dout·x_hat, over N, H, W)": g * inv * dout,
        "dx is missing the term through the mean: subtract Σ dout (= dbeta) inside the bracket":
            g * inv / m * (m * dout - x_hat * sg),
        "dx is missing the term through the variance: subtract x_hat·Σ(dout·x_hat) "
        "(= x_hat·dgamma) inside the bracket": g * inv / m * (m * dout - sb),
        "dx: the variance term has the wrong sign; it is - x_hat·dgamma":
            g * inv / m * (m * dout - sb + x_hat * sg),
        "dx: you forgot the factor γ (out = γ·x_hat + β)": inv / m * (m * dout - sb - x_hat * sg),
        "dx: you forgot the factor 1/sqrt(σ² + ε) (inv_std)": g / m * (m * dout - sb - x_hat * sg),
    }


def _param_hint(name, got, dout, x_hat):
    """Explain a wrong dgamma/dbeta (shape or value), or return None."""
    N, C, H, W = dout.shape
    want = {"dgamma": (dout * x_hat).sum(axis=(0, 2, 3)), "dbeta": dout.sum(axis=(0, 2, 3))}
    scale = {"dgamma": np.abs(dout * x_hat).sum(axis=(0, 2, 3)),
             "dbeta": np.abs(dout).sum(axis=(0, 2, 3))}
    other = "dbeta" if name == "dgamma" else "dgamma"
    if got.shape == (C, H, W):
        return (f"{name} has shape {got.shape}, one value per pixel: γ and β are one number per "
                f"channel, shared by every pixel, so sum over axes (0, 2, 3)")
    if got.shape == (N, C) or got.shape == (1, C, 1, 1):
        return (f"{name} has shape {got.shape}: return one value per channel, shape ({C},), "
                f"summed over the batch and every pixel, axes (0, 2, 3)")
    if got.shape != (C,):
        return f"{name} must have shape ({C},), one value per channel; got shape {got.shape}"
    mistakes = {
        f"{name} and {other} are swapped: dbeta = Σ dout, dgamma = Σ dout·x_hat": want[other],
        f"{name}: take the sum over N, H and W, not the mean": want[name] / (N * H * W),
    }
    try:
        compare(got, want[name], f"{name} is wrong: dbeta = Σ dout and dgamma = Σ dout·x_hat, "
                                 f"each over N, H and W", rtol=1e-8, atol=1e-10, mistakes=mistakes,
                scale=scale[name])
    except Failed as failure:
        return str(failure)
    return None


@self_check("Exercise 8.1 · spatial BN backward")
def spatial_bn_backward(student_fn):
    """Check ``student_fn(dout, x_hat, gamma, inv_std) -> (dx, dgamma, dbeta)`` for images."""
    for dout, x_hat, gamma, inv_std, want in _spatial_cases():
        given = [a.copy() for a in (dout, x_hat, gamma, inv_std)]
        result = student_fn(*given)
        for before, after in zip((dout, x_hat, gamma, inv_std), given, strict=True):
            if not np.array_equal(before, after):
                raise Failed("your function changed one of its inputs in place; compute new "
                             "arrays instead")
        dx, dgamma, dbeta = as_answer_tuple(result, 3, "return the three gradients as a tuple: "
                                                       "dx, dgamma, dbeta")
        dgamma = as_answer_array(dgamma, "dgamma")
        dbeta = as_answer_array(dbeta, "dbeta")
        for name, got in (("dbeta", dbeta), ("dgamma", dgamma)):
            hint = _param_hint(name, got, dout.astype(np.float64), x_hat.astype(np.float64))
            if hint:
                raise Failed(hint)
        dx = as_answer_array(dx, "dx", shape=dout.shape)
        d, xh = dout.astype(np.float64), x_hat.astype(np.float64)
        scale = np.abs(gamma * inv_std).astype(np.float64).reshape(1, -1, 1, 1) * (
            np.abs(d) + np.abs(d).mean(axis=(0, 2, 3), keepdims=True)
            + np.abs(xh) * np.abs(d * xh).mean(axis=(0, 2, 3), keepdims=True))
        compare(dx, want, "dx differs from the spatial BN backward (max error {err}); write it "
                          "like the 2-D one with every sum over (0, 2, 3) and m = N·H·W",
                rtol=1e-7, atol=1e-9, scale=scale,
                mistakes=lambda d=dout, xh=x_hat, g=gamma, i=inv_std: _spatial_mistakes(d, xh, g, i))
    return "right on 3 image batches, incl. float32 and N = 1"


# ----------------------------------------------------------------------------- Exercise 8.2

def _last_layer(branch):
    layers = list(getattr(branch, "layers", [branch]))
    return layers[-1] if layers else None


@self_check("Exercise 8.2 · a block that starts as the identity")
def zero_gamma_block(student_fn):
    """Check ``student_fn(width, rng) -> Residual`` whose branch is ReLU → Linear (no bias,
    weights from ``rng``) → BatchNorm with γ = 0."""
    fresh = fresh_rng()
    for width, seed in ((6, 0), (10, 1), (int(fresh.integers(3, 13)), int(fresh.integers(2**31)))):
        block = student_fn(width, np.random.default_rng(seed))
        if block is None:
            raise Failed("your function returned None - did you forget `return Residual(branch)`?")
        if not isinstance(block, Residual):
            if isinstance(block, Layer):
                raise Failed(f"return the block, Residual(branch), so that its input is added to "
                             f"the branch's output; you returned {describe(block)}")
            raise Failed(f"return a Residual layer, got {describe(block)}")
        bns = [layer for layer in iter_layers(block.branch) if isinstance(layer, BatchNorm)]
        if not bns:
            raise Failed("the branch has no BatchNorm: build ReLU → Linear → BatchNorm and set "
                         "the BatchNorm's γ to 0")
        if not any(isinstance(layer, Linear) for layer in iter_layers(block.branch)):
            raise Failed("the branch has no Linear layer: build ReLU → Linear → BatchNorm")
        last = _last_layer(block.branch)
        x = np.random.default_rng(100 + seed).normal(1.0, 2.0, size=(16, width))
        block.train()
        try:
            out = run_learner(block.forward, x.copy())
        except ValueError as exc:
            raise Failed(f"the block cannot take a batch of shape (16, {width}): {exc}") from None
        out = as_answer_array(out, "the block's output")
        if out.shape != x.shape:
            raise Failed(f"the block maps ({16}, {width}) to {out.shape}: make the Linear layer "
                         f"Linear(width, width) and BatchNorm(width)")
        if not np.allclose(out, x, rtol=0, atol=1e-12):
            if isinstance(last, BatchNorm) and np.any(last.gamma != 0):
                raise Failed("the block is not the identity at initialization: set the γ of "
                             "the branch's last BatchNorm to 0 (bn.gamma[:] = 0); β already "
                             "starts at 0")
            if np.allclose(out, 0.0):
                raise Failed("the block's output is 0, not its input: the residual connection "
                             "adds x, so return Residual(branch)")
            raise Failed(f"the block's output differs from its input by up to "
                         f"{fmt_err(np.max(np.abs(out - x)))}: at initialization the branch must "
                         f"output exactly 0")
        if not isinstance(last, BatchNorm):
            raise Failed(f"the branch must end with the zero-γ BatchNorm, not {type(last).__name__}: "
                         f"a ReLU after it passes no gradient (ReLU'(0) = 0), so γ stays 0")
        if np.any(last.gamma != 0):
            raise Failed("the block is the identity, but not because of γ: start the last "
                         "BatchNorm's γ at 0 (leave the Linear weights random)")
        weights = [layer.W for layer in iter_layers(block.branch) if isinstance(layer, Linear)]
        if all(np.all(w == 0) for w in weights):
            raise Failed("the Linear weights are all 0; keep them random (He initialization "
                         "from rng) and zero only γ")
        dout = np.random.default_rng(200 + seed).standard_normal(x.shape)
        run_learner(block.backward, dout)
        if not np.any(last.dgamma != 0):
            raise Failed("γ gets no gradient, so it would stay 0 forever: nothing between the "
                         "BatchNorm and the sum may block the gradient")
        sgd_step(block, lr=0.1)
        if not np.any(last.gamma != 0):
            raise Failed("after one SGD step γ is still 0: γ must be a learned parameter of the "
                         "block (in block.params())")
        _check_block_structure(block, width, seed)
    return "identity at init; γ learns from 0"


def _check_block_structure(block, width, seed):
    """The branch the exercise asks for: ReLU → Linear(width, width, bias=False, rng=rng) → BN."""
    layers = [layer for layer in iter_layers(block.branch) if not layer.children()]
    kinds = [type(layer).__name__ for layer in layers]
    if kinds != ["ReLU", "Linear", "BatchNorm"]:
        raise Failed(f"the branch is {' → '.join(kinds)}; the exercise's branch is ReLU → "
                     f"Linear → BatchNorm (the ReLU first, as in a pre-activation ResNet block)")
    linear = layers[1]
    if linear.b is not None:
        raise Failed("the Linear layer has a bias; right before BN a bias is redundant (BN "
                     "subtracts the mean): Linear(width, width, bias=False, rng=rng)")
    expected = Linear(width, width, bias=False, rng=np.random.default_rng(seed)).W
    if linear.W.shape != expected.shape or not np.array_equal(linear.W, expected):
        raise Failed("the Linear weights are not the ones drawn from the rng the check passes: "
                     "build the layer with Linear(width, width, bias=False, rng=rng)")


def _reference_zero_gamma_block(width, rng):
    """Reference solution of Exercise 8.2 (used by the tests)."""
    bn = BatchNorm(width)
    bn.gamma[:] = 0.0
    return Residual(Sequential(ReLU(), Linear(width, width, bias=False, rng=rng), bn))


# ----------------------------------------------------------------------------- Exercise 8.3

# The first case tells the known mistakes apart (at γ = 1 several of them coincide).
_STREAM_CASES = ((2.5, 4, 0.5), (1.0, 10, 1.0), (0.3, 0, 2.0), (4.0, 7, 1.5))


@functools.cache
def _measured_variance(k, gamma, seeds=(0, 1, 2)):
    """The stream variance after k blocks ReLU → Linear → BN(γ), averaged over three inits."""
    x = np.random.default_rng(83).standard_normal((512, 64))
    results = []
    for seed in seeds:
        net = make_resnet(k, "bn", width=32, rng=seed)
        for layer in iter_layers(net):
            if isinstance(layer, BatchNorm):
                layer.gamma[:] = gamma
        results.append(stream_variances(net, x))
    return np.mean(results, axis=0)


@self_check("Exercise 8.3 · the stream's variance with BN")
def stream_variance(student_fn):
    """Check ``student_fn(v0, k, gamma) -> float``, the variance after k BN blocks."""
    fresh = fresh_rng()
    fresh_case = (float(np.round(fresh.uniform(0.1, 5.0), 3)), int(fresh.integers(1, 30)),
                  float(np.round(fresh.uniform(0.2, 3.0), 3)))
    for v0, k, gamma in (*_STREAM_CASES, fresh_case):
        got = as_answer_number(student_fn(v0, k, gamma), "the predicted variance")
        want = v0 + k * gamma**2
        compare(got, want, f"for v0 = {v0}, k = {k}, γ = {gamma} the variance is {want:g}, not "
                           f"{float(got):.4g}: each block adds an independent branch whose output "
                           f"BN has scaled to variance γ²",
                rtol=1e-6, scale=want, mistakes={
                    "that is the rule without normalization (each block doubles the variance); "
                    "BN fixes the branch's output variance at γ², whatever the stream's":
                        v0 * 2.0**k,
                    "the branch's output has standard deviation γ, so its variance is γ², not γ":
                        v0 + k * gamma,
                    "the branch's variance does not scale with the stream's: BN fixes it at γ², "
                    "so the variances add (v0 + k·γ²) rather than multiply":
                        v0 * (1 + gamma**2) ** k,
                    "you forgot the variance the stream starts with, v0": k * gamma**2,
                    "that is the variance of a block that is the identity (γ = 0)": v0,
                    "off by one block: after k blocks there are k branch outputs":
                        v0 + (k + 1) * gamma**2,
                    "off by one block: after k blocks there are k branch outputs, not k - 1":
                        v0 + (k - 1) * gamma**2,
                })
    measured = _measured_variance(16, 1.0)
    v0 = float(measured[0])
    predicted = float(as_answer_number(student_fn(v0, 16, 1.0), "the predicted variance"))
    if abs(predicted - measured[16]) > 0.2 * measured[16]:
        raise Failed(f"your rule gives {predicted:.3g} for 16 blocks, but a measured network "
                     f"has {measured[16]:.3g}")
    return f"4 cases; 16 blocks: {predicted:.1f} vs {measured[16]:.1f} measured"
