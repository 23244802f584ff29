"""bnutils.models: the make_mlp builder (the norm layers it uses are tested with their
functions, in test_normalization.py and test_batchnorm.py)."""

import numpy as np
import pytest

from bnutils.batchnorm import BatchNorm
from bnutils.gradcheck import numerical_gradient, rel_error
from bnutils.layers import Linear, ReLU, Sigmoid
from bnutils.models import make_mlp
from bnutils.normalization import GroupNorm, LayerNorm


def test_make_mlp_builds_linear_norm_activation_blocks():
    net = make_mlp([3, 8, 8, 2], activation="sigmoid", norm="bn", bias=False)
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [Linear, BatchNorm, Sigmoid, Linear, BatchNorm, Sigmoid, Linear]
    assert net[0].b is None and net[3].b is None and net[-1].b is not None
    after = make_mlp([3, 8, 2], norm="ln", norm_position="after")
    assert [type(layer) for layer in after.layers] == [Linear, ReLU, LayerNorm, Linear]
    assert make_mlp([3, 2]).layers[0].W.shape == (3, 2)


def test_make_mlp_norm_layers_and_their_settings():
    gn = make_mlp([3, 8, 2], norm="gn", num_groups=2, eps=1e-3)
    assert isinstance(gn[1], GroupNorm) and gn[1].num_groups == 2 and gn[1].eps == 1e-3
    bn = make_mlp([3, 8, 2], norm="bn", momentum=0.3, dtype=np.float32)
    assert bn[1].momentum == 0.3 and bn[1].gamma.dtype == np.float32 and bn[0].W.dtype == np.float32


def test_make_mlp_refuses_a_size_that_is_not_an_integer():
    with pytest.raises(TypeError, match="every entry of sizes must be an integer, got 2.5"):
        make_mlp([3, 2.5, 2])


def test_make_mlp_same_seed_same_weights_with_or_without_norm():
    plain, with_bn = make_mlp([4, 6, 3], rng=7), make_mlp([4, 6, 3], norm="bn", rng=7)
    assert np.array_equal(plain[0].W, with_bn[0].W)
    assert np.array_equal(plain[-1].W, with_bn[-1].W)


def test_make_mlp_init_sets_the_weight_scale():
    net = make_mlp([400, 400, 2], init=0.5, rng=0)
    assert net[0].W.std() == pytest.approx(0.5, rel=0.02)
    assert make_mlp([400, 400, 2], init="he", rng=0)[0].W.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)


def test_make_mlp_gradient_of_a_whole_network():
    rng = np.random.default_rng(1)
    # groups of 3 values (with 5 groups of one value every GN output was beta, dx = 0, and
    # the check could not fail; one value per group is now refused)
    net = make_mlp([3, 6, 2], activation="tanh", norm="gn", num_groups=2, rng=0)
    x, dout = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    net.forward(x)
    dx = net.backward(dout)
    assert rel_error(dx, numerical_gradient(lambda v: np.sum(net.forward(v) * dout), x)) < 1e-7


@pytest.mark.parametrize("kwargs, message", [
    (dict(sizes=[3]), "at least"),
    (dict(sizes=[3, 0, 2]), "every entry of sizes must be ≥ 1, got 0"),
    (dict(sizes=[3, 2], activation="gelu"), "activation must be one of"),
    (dict(sizes=[3, 2], norm="batch"), "norm must be None"),
    (dict(sizes=[3, 4, 2], norm="bn", norm_position="inside"), "norm_position"),
    (dict(sizes=[3, 6, 2], norm="gn", num_groups=4), "num_groups must divide"),
])
def test_make_mlp_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_mlp(**kwargs)


@pytest.mark.parametrize("rng, error", [(-3, ValueError), (1.5, TypeError), ("0", TypeError)])
def test_make_mlp_names_a_bad_rng(rng, error):
    from bnutils.models import make_mlp
    with pytest.raises(error, match="^rng must be"):
        make_mlp([4, 3, 2], rng=rng)
