"""Helpers shared by the tests of the exercise self-checks (tests/test_checks_*.py).

``REFERENCES`` holds one right solution per self-check, keyed like ``discover_checks()``
("module.name"); the odd-answer test (tests/test_checks_odd_answers.py) and the attack
battery (tests/test_checks_attacks.py) both start from it.
"""

from __future__ import annotations

import copy
import importlib
import math
import pkgutil

import numpy as np

import bnutils.checks
from bnutils.checks import conv_residual, forward, inference, scaling, training


def stub(*args, **kwargs):
    """What the student edition puts in place of a solution."""
    raise NotImplementedError("Exercise: replace this line with your solution")


def assert_fails_with(chk, fn, *fragments):
    """Assert that self-check ``chk`` rejects ``fn`` with a complete hint containing ``fragments``."""
    result = chk.evaluate(fn)
    assert not result.passed, result.message
    assert result.message.startswith("✗ ")
    assert not result.message.endswith("..."), f"hint cut off: {result.message}"
    for fragment in fragments:
        assert fragment in result.message, result.message
    return result


def verdict_count(printed: str) -> int:
    """How many verdicts a self-check printed: lines that start with ✓ or ✗.

    A verdict longer than 90 characters is wrapped at spaces onto indented continuation
    lines (bnutils.checks._core.wrap_verdict); those are part of the same verdict.
    """
    lines = printed.rstrip("\n").split("\n")
    assert all(line.startswith(("✓ ", "✗ ", "  ")) for line in lines), printed
    assert all(len(line) <= 90 for line in lines), printed
    return sum(line.startswith(("✓ ", "✗ ")) for line in lines)


def is_check(obj) -> bool:
    """True for a function made by ``@self_check`` (it has ``evaluate`` and ``title``)."""
    return callable(getattr(obj, "evaluate", None)) and hasattr(obj, "title")


def discover_checks() -> dict:
    """Every self-check defined in a module of bnutils.checks, as {"module.name": check}.

    Read from each module's namespace, not its ``__all__``: a check added at the end of a
    module and not yet exported is attacked too (``test_every_check_is_exported`` asks
    for the export). A check imported from another module counts once, where defined.
    """
    found = {}
    for info in pkgutil.iter_modules(bnutils.checks.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bnutils.checks.{info.name}")
        for name, obj in sorted(vars(module).items()):
            if is_check(obj) and getattr(obj, "__module__", None) == module.__name__:
                found[f"{info.name}.{name}"] = obj
    return found


# --------------------------------------------------------------------------- references
# Independent of the checks' own helpers where that is short (plain NumPy).


def _bn(x, gamma, beta, eps, axes):
    shape = [1] * x.ndim
    shape[1] = -1
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return np.reshape(gamma, shape) * (x - mean) / np.sqrt(var + eps) + np.reshape(beta, shape)


def _by_hand():
    x = forward.BY_HAND_BATCH
    return x.mean(axis=0), x.var(axis=0), _bn(x, forward.BY_HAND_GAMMA, forward.BY_HAND_BETA,
                                              1e-5, (0,))


def _backward(dout, cache):
    x_hat, gamma, m = cache.x_hat, cache.gamma, dout.shape[0]
    dbeta, dgamma = dout.sum(axis=0), (dout * x_hat).sum(axis=0)
    dx = gamma / np.sqrt(cache.var + cache.eps) / m * (m * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def _spatial_backward(dout, x_hat, gamma, inv_std):
    m = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dbeta, dgamma = dout.sum(axis=(0, 2, 3)), (dout * x_hat).sum(axis=(0, 2, 3))
    g, inv = gamma.reshape(1, -1, 1, 1), inv_std.reshape(1, -1, 1, 1)
    c = (1, -1, 1, 1)
    dx = g * inv / m * (m * dout - dbeta.reshape(c) - x_hat * dgamma.reshape(c))
    return dx, dgamma, dbeta


def _project_out(v, x_hat):
    return v - v.mean(axis=0) - (v * x_hat).sum(axis=0) / (x_hat**2).sum(axis=0) * x_hat


def _scaled_gradient(X, W, dout, a):
    from bnutils.batchnorm import batchnorm_backward, batchnorm_forward

    _, cache = batchnorm_forward(X @ W, np.ones(W.shape[1]), np.zeros(W.shape[1]))
    return X.T @ batchnorm_backward(dout, cache)[0] / a


def _ln_backward(dout, cache):
    x_hat, gamma, inv = cache.x_hat, cache.gamma, cache.inv_std
    d = x_hat.shape[1]
    g = dout * gamma
    dx = inv / d * (d * g - g.sum(axis=1, keepdims=True)
                    - x_hat * (g * x_hat).sum(axis=1, keepdims=True))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def _groupnorm(x, gamma, beta, G, eps):
    N, C, H, W = x.shape
    g = x.reshape(N, G, C // G, H, W)
    x_hat = ((g - g.mean(axis=(2, 3, 4), keepdims=True))
             / np.sqrt(g.var(axis=(2, 3, 4), keepdims=True) + eps)).reshape(x.shape)
    return x_hat * gamma.reshape(1, C, 1, 1) + beta.reshape(1, C, 1, 1)


def _merge(counts, means, m2s):
    """Chan's merge of per-device means and centred sums of squares (Exercise 9.3)."""
    n = counts[:, None]
    mean = (n * means).sum(axis=0) / counts.sum()
    return mean, (m2s.sum(axis=0) + (n * (means - mean) ** 2).sum(axis=0)) / counts.sum()


def _adabn(model, X_target):
    """Re-estimate each BN layer's statistics on the target data, layer by layer (9.4)."""
    adapted = copy.deepcopy(model).eval()
    x = X_target
    for layer in adapted.layers:
        if type(layer).__name__ == "BatchNorm":
            layer.running_mean = x.mean(axis=0)
            layer.running_var = x.var(axis=0, ddof=1)
        x = layer.forward(x)
    return adapted


def _scale(X_train, X_test, method):
    stats = scaling.scaling.fit_scaler(X_train, method)
    return (scaling.scaling.apply_scaler(X_train, stats),
            scaling.scaling.apply_scaler(X_test, stats))


def _kappa(X):
    lam = np.linalg.eigvalsh(2.0 / len(X) * X.T @ X)
    return lam[-1] / lam[0]


def _fastest_lr(H):
    lam = np.linalg.eigvalsh(H)
    return 2.0 / (lam[-1] + lam[0])


def _saturated(activations, threshold):
    return int(np.argmax([np.mean(np.abs(a) > threshold) for a in activations]))


def _largest_stable_lr(make_model, lrs, X, y, steps=100, batch_size=60):
    """The reference answer without the cost of training: every rate gets a fresh model that
    makes ``steps`` training-mode forward passes of ``batch_size`` rows (what the check
    counts, no SGD), and the answer is the check's own cached reference runs'."""
    for _ in lrs:
        model = make_model().train()
        for _ in range(steps):
            model.forward(X[:batch_size])
    kind = "BN" if any(type(layer).__name__ == "BatchNorm" for layer in model.layers) else "plain"
    return training._reference_runs(kind, tuple(lrs), steps)[1]


REFERENCES = {
    "start.standardize": lambda x: (x - x.mean()) / x.std(),
    "forward.bn_by_hand": _by_hand,
    "forward.bn_forward": lambda x, g, b, eps: _bn(x, g, b, eps, (0,)),
    "forward.bn_forward_spatial": lambda x, g, b, eps: _bn(x, g, b, eps, (0, 2, 3)),
    "forward.output_stats": lambda g, b, v, e: (b, abs(g) * np.sqrt(v / (v + e))),
    "backward.bn_backward": _backward,
    "backward.fixed_backward": _backward,
    "backward.dgamma_dbeta": lambda dout, x_hat: ((dout * x_hat).sum(axis=0), dout.sum(axis=0)),
    "backward.project_out": _project_out,
    "backward.scaled_gradient": _scaled_gradient,
    "backward.scaled_gradient_per_feature": _scaled_gradient,   # a broadcasts over columns
    "backward.ln_backward": _ln_backward,
    "inference.update_running": inference._reference_update_running,
    "inference.fold_linear_bn": inference._reference_fold,
    "inference.predict": inference._reference_predict,
    "limits.batch_of_two": lambda: {"none", "ln", "gn"},
    "limits.groupnorm_forward": _groupnorm,
    "limits.merge_stats": _merge,
    "limits.adabn": _adabn,
    "scaling.scale_features": _scale,
    "scaling.condition_number": _kappa,
    "scaling.fastest_lr": _fastest_lr,
    "covariate_shift.compounding_factor": lambda rate, n: (1.0 + rate) ** n,
    "covariate_shift.most_saturated_layer": _saturated,
    "covariate_shift.layers_to_grow": lambda rate, factor: math.ceil(math.log(factor) / math.log1p(rate)),
    "training.add_batchnorm": training._reference_add_batchnorm,
    "training.largest_stable_lr_check": _largest_stable_lr,
    "training.update_ratios": training._reference_update_ratios,
    "conv_residual.spatial_bn_backward": _spatial_backward,
    "conv_residual.zero_gamma_block": conv_residual._reference_zero_gamma_block,
    "conv_residual.stream_variance": lambda v0, k, gamma: v0 + k * gamma**2,
    "why_bn_works.effective_lr": lambda W, lr: lr / np.sum(W**2, axis=0),
    "why_bn_works.variance_shift": lambda mean, var, p: (var + mean**2) / (1.0 - p) - mean**2,
    # the concept inventory: the key of each form, as {question number: letter}
    "inventory.before": lambda: _inventory_key("before"),
    "inventory.after": lambda: _inventory_key("after"),
}


def _inventory_key(name):
    from bnutils.lab.inventory import form

    return {fq.number: fq.answer_letter for fq in form(name)}
