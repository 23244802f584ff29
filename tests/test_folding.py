"""fold_batchnorm: BN in eval mode folded into the linear layer before it is the same map."""

import numpy as np
import pytest

from bnutils import BatchNorm, Linear, batchnorm_forward, batchnorm_inference, fold_batchnorm


def make_params(D_in=5, D=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((D_in, D))
    b = rng.standard_normal(D)
    gamma = rng.uniform(0.5, 2.0, D) * rng.choice([-1.0, 1.0], D)
    beta = rng.standard_normal(D)
    rm = rng.standard_normal(D)
    rv = rng.uniform(0.1, 3.0, D)
    x = rng.standard_normal((7, D_in))
    return [a.astype(dtype) for a in (x, W, b, gamma, beta, rm, rv)]


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_folded_layer_equals_linear_then_bn_eval(eps):
    x, W, b, gamma, beta, rm, rv = make_params()
    expected = batchnorm_inference(x @ W + b, gamma, beta, rm, rv, eps=eps)
    Wf, bf = fold_batchnorm(W, b, gamma, beta, rm, rv, eps=eps)
    assert Wf.shape == W.shape and bf.shape == b.shape
    np.testing.assert_allclose(x @ Wf + bf, expected, rtol=1e-12, atol=1e-12)


def test_fold_formula():
    _, W, b, gamma, beta, rm, rv = make_params(seed=1)
    Wf, bf = fold_batchnorm(W, b, gamma, beta, rm, rv, eps=1e-3)
    scale = gamma / np.sqrt(rv + 1e-3)
    np.testing.assert_allclose(Wf, W * scale[None, :], rtol=1e-14)      # columns scaled
    np.testing.assert_allclose(bf, (b - rm) * scale + beta, rtol=1e-14)


def test_fold_without_bias():
    x, W, _, gamma, beta, rm, rv = make_params(seed=2)
    Wf, bf = fold_batchnorm(W, None, gamma, beta, rm, rv)
    np.testing.assert_allclose(x @ Wf + bf, batchnorm_inference(x @ W, gamma, beta, rm, rv),
                               rtol=1e-12, atol=1e-12)


def test_fold_a_trained_layer_pair():
    """Linear(bias=False) → BatchNorm trained for a few steps, then folded: same eval outputs."""
    rng = np.random.default_rng(3)
    lin, bn = Linear(6, 4, bias=False, rng=0), BatchNorm(4, momentum=0.3)
    for _ in range(5):
        bn.forward(lin.forward(2.0 + rng.standard_normal((16, 6))))
    bn.gamma[:] = rng.uniform(0.5, 2, 4)
    bn.beta[:] = rng.standard_normal(4)
    bn.eval()
    x = rng.standard_normal((9, 6))
    expected = bn.forward(lin.forward(x))
    Wf, bf = fold_batchnorm(lin.W, None, bn.gamma, bn.beta, bn.running_mean, bn.running_var, bn.eps)
    folded = Linear(6, 4, rng=1)
    folded.W[:], folded.b[:] = Wf, bf
    np.testing.assert_allclose(folded.forward(x), expected, rtol=1e-12, atol=1e-12)


def test_fold_is_not_training_mode_bn():
    """Folding uses the running statistics: it does not reproduce training-mode BN."""
    x, W, b, gamma, beta, rm, rv = make_params(seed=4)
    Wf, bf = fold_batchnorm(W, b, gamma, beta, rm, rv)
    train_out, _ = batchnorm_forward(x @ W + b, gamma, beta)
    assert np.max(np.abs(x @ Wf + bf - train_out)) > 0.1


def test_fold_dtypes_and_inputs_unchanged():
    args32 = make_params(seed=5, dtype=np.float32)[1:]
    copies = [a.copy() for a in args32]
    Wf, bf = fold_batchnorm(*args32)
    assert Wf.dtype == np.float32 and bf.dtype == np.float32
    for a, c in zip(args32, copies):
        np.testing.assert_array_equal(a, c)
    assert not np.shares_memory(Wf, args32[0]) and not np.shares_memory(bf, args32[1])
    Wf, bf = fold_batchnorm(np.ones((2, 2), dtype=int), np.array([1, 2]), [1, 1], [0, 0], [0, 0], [1, 1])
    assert Wf.dtype == np.float64 and bf.dtype == np.float64
    Wf64, _ = fold_batchnorm(*make_params(seed=5)[1:])
    np.testing.assert_allclose(fold_batchnorm(*args32)[0], Wf64, rtol=1e-6)


@pytest.mark.parametrize("shape", [(5, 0), (0, 4), (0, 0)])
def test_fold_refuses_an_empty_weight_naming_weight(shape):
    """A weight with no columns (or no rows) is the mistake: name it, not bias, whose shape
    (4,) only fails to match the D = 0 read from the weight; no rows is no layer at all."""
    _, _, b, gamma, beta, rm, rv = make_params()
    with pytest.raises(ValueError, match=r"^weight must have shape \(D_in, D\) with D_in ≥ 1 "
                                         rf"and D ≥ 1.*got shape \({shape[0]}, {shape[1]}\)"):
        fold_batchnorm(np.zeros(shape), b, gamma, beta, rm, rv)
