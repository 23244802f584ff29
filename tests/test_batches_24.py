"""bnutils.lab.batches.train_on_batches' callback (issue 24: notebook 09 relaxes Batch Renorm's
limits on a schedule while training on chosen batches)."""

import numpy as np
import pytest

from bnutils.batch_renorm import BatchRenorm
from bnutils.lab.batches import train_on_batches
from bnutils.lab.comparisons import swap_norm
from bnutils.models import make_mlp
from bnutils.training import minibatches, train

RNG = np.random.default_rng(24)
X = RNG.normal(size=(48, 4))
Y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
_ORDER = np.random.default_rng(3)
BATCHES = [b for _ in range(2) for b in minibatches(48, 8, _ORDER)]     # train(seed=3)'s batches


def _renorm_net():
    return swap_norm(make_mlp([4, 8, 8, 3], "relu", norm="bn", rng=0),
                     lambda d: BatchRenorm(d, r_max=1.0, d_max=0.0))


def test_callback_sees_every_step_from_1_with_the_updated_model():
    net = _renorm_net()
    seen = []
    losses = train_on_batches(net, X, Y, BATCHES, lr=0.1,
                              callback=lambda step, model: seen.append((step, model[0].W.copy())))
    assert [s for s, _ in seen] == list(range(1, len(BATCHES) + 1)) == list(range(1, len(losses) + 1))
    assert not np.array_equal(seen[0][1], seen[1][1])          # called after each update
    np.testing.assert_array_equal(seen[-1][1], net[0].W)


def test_callback_steps_match_train_and_a_schedule_takes_effect():
    """Relaxing r_max/d_max from the callback changes the run from the next step on, and
    the callback's step is train's: the same schedule through train gives the same run."""

    def relax(step, model):
        for layer in model.layers:
            if isinstance(layer, BatchRenorm):
                layer.r_max, layer.d_max = 1.0 + 0.5 * step, 1.0 * step

    plain, relaxed = _renorm_net(), _renorm_net()
    base = train_on_batches(plain, X, Y, BATCHES, lr=0.1)
    with_schedule = train_on_batches(relaxed, X, Y, BATCHES, lr=0.1, callback=relax)
    assert base[0] == with_schedule[0]                         # step 1 runs before any change
    assert not np.allclose(base[1:], with_schedule[1:])
    assert relaxed[1].r_max == 1.0 + 0.5 * len(BATCHES)

    via_train = _renorm_net()
    hist = train(via_train, X, Y, lr=0.1, steps=len(BATCHES), batch_size=8, seed=3, callback=relax)
    np.testing.assert_allclose(with_schedule, hist.loss, rtol=1e-9)


def test_no_callback_is_the_old_behaviour():
    a, b = _renorm_net(), _renorm_net()
    assert train_on_batches(a, X, Y, BATCHES, lr=0.1) == \
        train_on_batches(b, X, Y, BATCHES, lr=0.1, callback=None)


def test_a_callback_that_is_not_callable_is_refused_by_name_before_training():
    net = _renorm_net()
    W0 = net[0].W.copy()
    with pytest.raises(TypeError, match="callback must be callable"):
        train_on_batches(net, X, Y, BATCHES, lr=0.1, callback=5)
    np.testing.assert_array_equal(net[0].W, W0)
