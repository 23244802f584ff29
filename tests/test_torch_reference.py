"""Cross-check against PyTorch, an independent implementation, when it happens to be
installed. torch is not a dependency: without it this module is skipped.

Compared in float64: BatchNorm1d/2d forward in training and eval mode, the running
statistics after several steps (momentum 0.1, unbiased running variance), the
gradients dx, dgamma, dbeta through autograd, LayerNorm and GroupNorm forward and
backward, in 2-D and 4-D; and bnutils's direct fast path on large input.
"""

import numpy as np
import pytest

from bnutils import (
    BatchNorm,
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_forward,
    batchnorm_inference,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    update_running_stats,
)

torch = pytest.importorskip("torch")

TOL = dict(rtol=1e-10, atol=1e-12)


def data(shape, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    loc, scale = rng.uniform(-3, 3, C).reshape(bshape), rng.uniform(0.5, 2, C).reshape(bshape)
    x = loc + scale * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2, C) * rng.choice([-1.0, 1.0], C)
    beta = rng.standard_normal(C)
    dout = rng.standard_normal(shape)
    return x, gamma, beta, dout


def t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def torch_bn(C, ndim, gamma, beta, eps=1e-5, momentum=0.1):
    cls = torch.nn.BatchNorm1d if ndim == 2 else torch.nn.BatchNorm2d
    bn = cls(C, eps=eps, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(t(gamma))
        bn.bias.copy_(t(beta))
    return bn


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 3, 2)], ids=["2d", "4d"])
def test_batchnorm_training_forward_and_backward(shape):
    x, gamma, beta, dout = data(shape, 0)
    bn = torch_bn(shape[1], len(shape), gamma, beta)
    xt = t(x, grad=True)
    out_t = bn(xt)
    out_t.backward(t(dout))
    out, cache = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    for backward in (batchnorm_backward, batchnorm_backward_staged):
        dx, dgamma, dbeta = backward(dout, cache)
        np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
        np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), **TOL)
        np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), **TOL)


@pytest.mark.parametrize("shape", [(600, 512), (8, 16, 48, 48)], ids=["2d", "4d"])
def test_batchnorm_large_input(shape):
    """Large input (hundreds of thousands of values, float64 sums over many rows)."""
    rng = np.random.default_rng(1)
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    scale = rng.uniform(0.5, 2, C).reshape(bshape)
    x = scale * (rng.uniform(-0.5, 0.5, C).reshape(bshape) + rng.standard_normal(shape))
    gamma, beta, dout = rng.uniform(0.5, 2, C), rng.standard_normal(C), rng.standard_normal(shape)
    bn = torch_bn(C, len(shape), gamma, beta)
    xt = t(x, grad=True)
    out_t = bn(xt)
    out_t.backward(t(dout))
    out, cache = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 3, 2)], ids=["2d", "4d"])
def test_running_statistics_and_eval_mode(shape):
    C = shape[1]
    _, gamma, beta, _ = data(shape, 1)
    tbn = torch_bn(C, len(shape), gamma, beta, momentum=0.1)
    ours = BatchNorm(C, momentum=0.1)
    ours.gamma[:], ours.beta[:] = gamma, beta
    rm, rv = np.zeros(C), np.ones(C)
    for step in range(6):
        x, _, _, _ = data(shape, 10 + step)
        x = 3.0 + 2.0 * x                               # statistics far from the initial 0 and 1
        with torch.no_grad():
            tbn(t(x))
        ours.forward(x)
        _, cache = batchnorm_forward(x, gamma, beta)
        rm, rv = update_running_stats(rm, rv, cache, momentum=0.1)
    np.testing.assert_allclose(rm, tbn.running_mean.numpy(), **TOL)
    np.testing.assert_allclose(rv, tbn.running_var.numpy(), **TOL)      # unbiased, as torch
    np.testing.assert_allclose(ours.running_mean, tbn.running_mean.numpy(), **TOL)
    np.testing.assert_allclose(ours.running_var, tbn.running_var.numpy(), **TOL)
    tbn.eval()
    x, _, _, dout = data(shape, 99)
    xt = t(x, grad=True)
    out_t = tbn(xt)
    out_t.backward(t(dout))
    np.testing.assert_allclose(batchnorm_inference(x, gamma, beta, rm, rv), out_t.detach().numpy(), **TOL)
    out = ours.eval().forward(x)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(ours.backward(dout), xt.grad.numpy(), **TOL)       # frozen BN
    np.testing.assert_allclose(ours.dgamma, tbn.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(ours.dbeta, tbn.bias.grad.numpy(), **TOL)


def test_layernorm_forward_and_backward():
    x, gamma, beta, dout = data((5, 6), 2)
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    out_t = torch.nn.functional.layer_norm(xt, (6,), gt, bt, eps=1e-5)
    out_t.backward(t(dout))
    out, cache = layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), **TOL)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), **TOL)


@pytest.mark.parametrize("shape, G", [((4, 6), 3), ((4, 6), 1), ((3, 4, 3, 2), 2), ((2, 6, 2, 2), 6)],
                         ids=["2d-G3", "2d-G1", "4d-G2", "4d-G=C"])
def test_groupnorm_forward_and_backward(shape, G):
    x, gamma, beta, dout = data(shape, 3)
    xt, gt, bt = t(x, True), t(gamma, True), t(beta, True)
    out_t = torch.nn.functional.group_norm(xt, G, gt, bt, eps=1e-5)
    out_t.backward(t(dout))
    out, cache = groupnorm_forward(x, gamma, beta, G)
    dx, dgamma, dbeta = groupnorm_backward(dout, cache)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), **TOL)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), **TOL)
