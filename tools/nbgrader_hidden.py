"""The hidden tests of the nbgrader course: what tools/nbgrader_course.py writes into the
graded test cells of the source notebooks, between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS`` (nbgrader leaves the block out of the release).

Every graded test cell gets the same first part: bnutils/_grading.py loaded from its
file under a private name (``LOAD``), IPython's error display restored, and the
exercise's self-check run again from its file, not from the notebook's ``check``
(``checker_passes``): a cell that replaced ``check.X.evaluate``, a module of
``bnutils.checks`` or ``CheckResult.passed`` does not reach it.

The exercises in ``REFERENCES`` then get a test of their own that does not use the
checker at all: inputs drawn from the course's secret seed (``{seed}``, kept in
``nbgrader/source/.bn_hidden_seed``, never in the repository or the release) and from a
generator nobody has seen, expected values from a few lines of reference written in the
test, and the learner's function run with bnutils' own implementation of the exercise
unavailable (``forbidden``: a call scores 0 and the feedback says why). Each reference
is a function ``_bn_hidden(np, g)`` so that its names stay out of the notebook.
"""

from __future__ import annotations

import re

from bnutils._grading import LOAD

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
ASSERTION = re.compile(r'^assert check\.(\w+)\.evaluate\((.*)\)\.passed, "(\w+): ')
CHECK_MODULE = re.compile(r"^from bnutils\.checks import (\w+) as check\b", re.M)

_STANDARDIZE = '''
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        x = r.normal(r.uniform(-50, 50), 10 ** r.uniform(-1, 2), int(r.integers(5, 40)))
        mean = x.sum() / x.size
        want = (x - mean) / np.sqrt(((x - mean) ** 2).sum() / x.size)
        g.assert_close(g.run(standardize, x, forbidden=g.STANDARDIZE), want, "standardize(x)",
                       atol=1e-5)
'''

_BN_BY_HAND = '''
    x = np.array([[4.0, 10.0], [4.0, 20.0], [7.0, 30.0]])
    gamma, beta = np.array([2.0, 0.5]), np.array([1.0, 3.0])
    mean = x.sum(axis=0) / 3
    var = ((x - mean) ** 2).sum(axis=0) / 3
    want = gamma * (x - mean) / np.sqrt(var) + beta
    got = g.as_arrays(g.run(bn_by_hand, forbidden=g.FORWARD), 3, "mean, var, out")
    for value, expected, name in zip(got, (mean, var, want), ("mean", "var", "out")):
        g.assert_close(value, expected, name, rtol=0, atol=0.01)
'''

_BN_FORWARD = '''
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        n, d = int(r.integers(3, 30)), int(r.integers(1, 8))
        x = r.normal(r.uniform(-20, 20, d), 10 ** r.uniform(-1, 1, d), (n, d))
        gamma, beta, eps = r.normal(0, 2, d), r.normal(0, 2, d), float(r.choice([1e-5, 1e-3, 0.1]))
        mean = x.sum(axis=0) / n
        var = ((x - mean) ** 2).sum(axis=0) / n
        want = gamma * (x - mean) / np.sqrt(var + eps) + beta
        got = g.run(bn_forward, x, gamma, beta, eps, forbidden=g.FORWARD)
        g.assert_close(got, want, "bn_forward(x, gamma, beta, eps)", rtol=1e-4, atol=1e-4)
'''

_BN_FORWARD_SPATIAL = '''
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        n, c, h, w = (int(v) for v in r.permutation([2, 3, 4, 5, 6])[:4])
        x = r.normal(r.uniform(-20, 20, (1, c, 1, 1)), 10 ** r.uniform(-1, 1, (1, c, 1, 1)), (n, c, h, w))
        gamma, beta, eps = r.normal(0, 2, c), r.normal(0, 2, c), float(r.choice([1e-5, 1e-3, 0.1]))
        mean = x.sum(axis=(0, 2, 3), keepdims=True) / (n * h * w)
        var = ((x - mean) ** 2).sum(axis=(0, 2, 3), keepdims=True) / (n * h * w)
        want = gamma[None, :, None, None] * (x - mean) / np.sqrt(var + eps) + beta[None, :, None, None]
        got = g.run(bn_forward_spatial, x, gamma, beta, eps, forbidden=g.FORWARD)
        g.assert_close(got, want, "bn_forward_spatial(x, gamma, beta, eps)", rtol=1e-4, atol=1e-4)
'''

_OUTPUT_STATS = '''
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        for _ in range(3):
            gamma, beta = float(r.choice([-1, 1]) * r.uniform(0.2, 3)), float(r.normal(0, 2))
            var = float(10 ** r.uniform(-3, 1))
            eps = float(var * 10 ** r.uniform(-1.5, 0))
            got = g.as_arrays(g.run(output_stats, gamma, beta, var, eps, forbidden=g.FORWARD), 2,
                              "(mean, std)")
            g.assert_close(got[0], beta, "the mean", atol=1e-5)
            g.assert_close(got[1], abs(gamma) * (var / (var + eps)) ** 0.5, "the std", atol=1e-5)
'''

_DGAMMA_DBETA = '''
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        n, d = int(r.integers(3, 20)), int(r.integers(2, 7))
        dout, x_hat = r.normal(0, 2, (n, d)), r.normal(0, 1, (n, d))
        got = g.as_arrays(g.run(dgamma_dbeta, dout, x_hat, forbidden=g.BACKWARD), 2, "dgamma, dbeta")
        g.assert_close(got[0], (dout * x_hat).sum(axis=0), "dgamma", atol=1e-4)
        g.assert_close(got[1], dout.sum(axis=0), "dbeta", atol=1e-4)
'''

# One batch through BN by the definition, the cache the exercise reads, and dx from the
# compact formula: the reference of 4.2 and 4.3.
_BN_BACKWARD = '''
    import types
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        n, d = int(r.integers(3, 20)), int(r.integers(2, 7))
        x = r.normal(r.uniform(-5, 5, d), 10 ** r.uniform(-0.5, 0.5, d), (n, d))
        gamma, eps, dout = r.normal(0, 2, d), 1e-5, r.normal(0, 1, (n, d))
        mean = x.sum(axis=0) / n
        var = ((x - mean) ** 2).sum(axis=0) / n
        inv_std = 1 / np.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        cache = types.SimpleNamespace(x_hat=x_hat, gamma=gamma, mean=mean, var=var, inv_std=inv_std,
                                      eps=eps, axes=(0,), count=n, shape=x.shape)
        dx = gamma * inv_std * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
        got = g.as_arrays(g.run({function}, dout, cache, forbidden=g.BACKWARD), 3, "dx, dgamma, dbeta")
        g.assert_close(got[0], dx, "dx", rtol=1e-4, atol=1e-5 * np.abs(dx).max())
        g.assert_close(got[1], (dout * x_hat).sum(axis=0), "dgamma", atol=1e-4)
        g.assert_close(got[2], dout.sum(axis=0), "dbeta", atol=1e-4)
'''

_PROJECT_OUT = '''
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        n, d = int(r.integers(4, 15)), int(r.integers(2, 6))
        x = r.normal(0, 1, (n, d))
        x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + float(r.choice([1e-5, 0.5])))
        v = r.normal(0, 3, (n, d))
        want = v - v.mean(axis=0) - (v * x_hat).sum(axis=0) / (x_hat ** 2).sum(axis=0) * x_hat
        g.assert_close(g.run(project_out, v, x_hat, forbidden=g.BACKWARD), want, "project_out(v, x_hat)",
                       rtol=1e-4, atol=1e-4)
'''

# The gradient at a·W computed directly (a forward and backward pass at a·W): with a of
# 0.5 to 5 and pre-activation variances above 1, ε changes it by less than 1e-4.
_SCALED_GRADIENT = '''
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        n, d_in, d = int(r.integers(6, 20)), int(r.integers(3, 7)), int(r.integers(2, 6))
        X, W, dout = r.normal(0, 1, (n, d_in)), r.normal(0, 1, (d_in, d)), r.normal(0, 1, (n, d))
        a = float(r.uniform(0.5, 5))
        z = X @ (a * W)
        mean = z.mean(axis=0)
        inv_std = 1 / np.sqrt(((z - mean) ** 2).mean(axis=0) + 1e-5)
        z_hat = (z - mean) * inv_std
        dz = inv_std * (dout - dout.mean(axis=0) - z_hat * (dout * z_hat).mean(axis=0))
        want = X.T @ dz
        got = g.run(scaled_gradient, X, W, dout, a)
        g.assert_close(got, want, "scaled_gradient(X, W, dout, a)", rtol=1e-3, atol=1e-3 * np.abs(want).max())
'''

# The same with one factor per column of W (Exercise 4.5 as a derivation, issue 24).
_SCALED_GRADIENT_PER_FEATURE = _SCALED_GRADIENT.replace(
    "a = float(r.uniform(0.5, 5))", "a = r.uniform(0.5, 5, d)").replace(
    "X @ (a * W)", "X @ (W * a)").replace("scaled_gradient", "scaled_gradient_per_feature")

_LN_BACKWARD = '''
    import types
    for r in (np.random.default_rng({seed}), np.random.default_rng()):
        n, d = int(r.integers(2, 12)), int(r.integers(3, 9))
        x = r.normal(r.uniform(-5, 5, (n, 1)), 10 ** r.uniform(-0.5, 0.5, (n, 1)), (n, d))
        gamma, eps, dout = r.normal(0, 2, d), 1e-5, r.normal(0, 1, (n, d))
        mean = x.mean(axis=1, keepdims=True)
        inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + eps)
        x_hat = (x - mean) * inv_std
        cache = types.SimpleNamespace(x_hat=x_hat, gamma=gamma, inv_std=inv_std, eps=eps)
        g_hat = dout * gamma
        dx = inv_std * (g_hat - g_hat.mean(axis=1, keepdims=True)
                        - x_hat * (g_hat * x_hat).mean(axis=1, keepdims=True))
        got = g.as_arrays(g.run(ln_backward, dout, cache, forbidden=g.LN_BACKWARD + g.BACKWARD), 3,
                          "dx, dgamma, dbeta")
        g.assert_close(got[0], dx, "dx", rtol=1e-4, atol=1e-5 * np.abs(dx).max())
        g.assert_close(got[1], (dout * x_hat).sum(axis=0), "dgamma", atol=1e-4)
        g.assert_close(got[2], dout.sum(axis=0), "dbeta", atol=1e-4)
'''

#: The exercises with a reference of their own (the learner's function name -> its body).
REFERENCES = {
    "standardize": _STANDARDIZE,
    "bn_by_hand": _BN_BY_HAND,
    "bn_forward": _BN_FORWARD,
    "bn_forward_spatial": _BN_FORWARD_SPATIAL,
    "output_stats": _OUTPUT_STATS,
    "dgamma_dbeta": _DGAMMA_DBETA,
    "bn_backward": _BN_BACKWARD.replace("{function}", "bn_backward"),
    "fixed_backward": _BN_BACKWARD.replace("{function}", "fixed_backward"),
    "project_out": _PROJECT_OUT,
    "scaled_gradient": _SCALED_GRADIENT,
    "scaled_gradient_per_feature": _SCALED_GRADIENT_PER_FEATURE,
    "ln_backward": _LN_BACKWARD,
}


def check_module(nb) -> str | None:
    """The ``bnutils.checks`` module a notebook imports as ``check``, or None."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            found = CHECK_MODULE.search(cell.source)
            if found:
                return found.group(1)
    return None


def hidden_block(test_source: str, module: str, seed: int) -> str:
    """The hidden block for a graded test cell whose visible part is ``test_source``."""
    lines = [BEGIN,
             "# Hidden (not in the release): the self-check again, loaded from its file, then",
             "# inputs and a reference of this test's own (tools/nbgrader_hidden.py).",
             LOAD.rstrip("\n"),
             "_bn_g.reset_ipython_error_display()"]
    functions = []
    for line in test_source.splitlines():
        found = ASSERTION.match(line)
        if found:
            check, args, function = found.groups()
            lines.append(f'_bn_g.checker_passes("{module}", "{check}", {args})')
            functions.append(function)
    for function in functions:
        body = REFERENCES.get(function)
        if body is not None:
            lines += ["", "", "def _bn_hidden(np, g):", body.strip("\n").replace("{seed}", str(seed)),
                      "", "", '_bn_hidden(__import__("numpy"), _bn_g)']
    lines.append(END)
    return "\n".join(lines)
