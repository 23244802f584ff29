"""bnutils.training: mini-batches, the SGD step, train() (reproducible, evaluates on
schedule, detects divergence instead of crashing) and evaluate()."""

import warnings

import numpy as np
import pytest

from bnutils import BatchNorm, Linear, ReLU, Sequential
from bnutils.training import TrainingHistory, evaluate, minibatches, sgd_step, train


def toy_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def mlp(bn=True, seed=0):
    norm = [BatchNorm(16)] if bn else []
    return Sequential(Linear(4, 16, rng=seed), *norm, ReLU(), Linear(16, 2, rng=seed + 1))


# --------------------------------------------------------------------------- minibatches


def test_minibatches_partition_a_shuffled_epoch():
    batches = list(minibatches(10, 3, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [3, 3, 3]                      # ragged batch dropped
    used = np.concatenate(batches)
    assert len(set(used.tolist())) == 9 and set(used.tolist()) <= set(range(10))
    assert used.tolist() != sorted(used.tolist())                     # shuffled
    batches = list(minibatches(10, 3, np.random.default_rng(0), drop_last=False))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [b.tolist() for b in minibatches(10, 3, 5)] == [b.tolist() for b in minibatches(10, 3, 5)]
    assert sorted(next(minibatches(4, 4, 0)).tolist()) == [0, 1, 2, 3]


# --------------------------------------------------------------------------- sgd_step


def test_sgd_step_plain_and_with_momentum():
    layer = Linear(2, 2, rng=0)
    x = np.array([[1.0, 2.0]])
    layer.forward(x)
    layer.backward(np.array([[1.0, -1.0]]))
    W0, b0 = layer.W.copy(), layer.b.copy()
    sgd_step(layer, lr=0.5)
    np.testing.assert_allclose(layer.W, W0 - 0.5 * x.T @ np.array([[1.0, -1.0]]))
    np.testing.assert_allclose(layer.b, b0 - 0.5 * np.array([1.0, -1.0]))
    # heavy ball: v = 0.9 v + g; p -= lr v  (same gradient twice: steps of g, then 1.9 g)
    layer = Linear(2, 2, rng=0)
    layer.forward(x)
    layer.backward(np.array([[1.0, -1.0]]))
    W0, velocity = layer.W.copy(), {}
    sgd_step(layer, 0.1, velocity, sgd_momentum=0.9)
    sgd_step(layer, 0.1, velocity, sgd_momentum=0.9)
    np.testing.assert_allclose(layer.W, W0 - 0.1 * (1 + 1.9) * layer.dW)
    assert sorted(velocity) == ["W", "b"]


def test_sgd_momentum_is_named_apart_from_bn_momentum_and_checked():
    layer = Linear(2, 2, rng=0)
    layer.forward(np.ones((1, 2)))
    layer.backward(np.ones((1, 2)))
    with pytest.raises(TypeError, match="momentum"):
        sgd_step(layer, 0.1, {}, momentum=0.9)          # the old, ambiguous name is gone
    with pytest.raises(ValueError, match="sgd_momentum must lie in"):
        sgd_step(layer, 0.1, {}, sgd_momentum=1.5)
    with pytest.raises(ValueError, match="needs a velocity dict"):
        sgd_step(layer, 0.1, None, sgd_momentum=0.9)    # used to fall back to plain SGD silently
    X, y = toy_data()
    with pytest.raises(TypeError, match="momentum"):
        train(mlp(), X, y, lr=0.1, steps=2, momentum=0.9)
    for doc in (sgd_step.__doc__, train.__doc__):
        assert "sgd_momentum" in doc and "BN's" in doc


def test_train_with_sgd_momentum_takes_heavy_ball_steps():
    X, y = toy_data()
    plain, heavy = mlp(), mlp()
    h0 = train(plain, X, y, lr=0.05, steps=30, batch_size=16)
    h1 = train(heavy, X, y, lr=0.05, steps=30, batch_size=16, sgd_momentum=0.9)
    assert h1.loss[0] == h0.loss[0]                    # the same first batch and weights
    # momentum speeds up this easy problem (measured: 0.30 against 0.45, last 5 batches)
    assert np.mean(h1.loss[-5:]) < np.mean(h0.loss[-5:]) - 0.05


# --------------------------------------------------------------------------- train / evaluate


@pytest.mark.parametrize("bn", [True, False], ids=["with-bn", "without-bn"])
def test_train_learns_a_separable_problem(bn):
    X, y = toy_data()
    Xt, yt = toy_data(128, seed=1)
    model = mlp(bn=bn)
    acc0, loss0 = evaluate(model, Xt, yt)
    history = train(model, X, y, lr=0.2, steps=120, batch_size=32, X_test=Xt, y_test=yt,
                    eval_every=40)
    assert isinstance(history, TrainingHistory) and not history.diverged
    assert history.steps == list(range(1, 121)) and len(history.loss) == 120
    assert history.eval_steps == [40, 80, 120]
    assert len(history.test_accuracy) == len(history.test_loss) == 3
    assert np.mean(history.loss[-10:]) < 0.5 * np.mean(history.loss[:10])
    assert history.final_accuracy > 0.9 and history.final_accuracy > acc0
    assert history.test_loss[-1] < loss0
    assert model.training                                    # left in training mode


def test_train_is_reproducible():
    X, y = toy_data()
    h1 = train(mlp(seed=2), X, y, lr=0.1, steps=30, batch_size=16, seed=7)
    h2 = train(mlp(seed=2), X, y, lr=0.1, steps=30, batch_size=16, seed=7)
    h3 = train(mlp(seed=2), X, y, lr=0.1, steps=30, batch_size=16, seed=8)
    assert h1.loss == h2.loss
    assert h1.loss != h3.loss


def test_train_callback_and_log(capsys):
    X, y = toy_data(64)
    seen = []
    model = mlp()
    train(model, X, y, lr=0.1, steps=5, batch_size=16, callback=lambda step, m: seen.append((step, m)),
          log_every=2, X_test=X, y_test=y, eval_every=2)
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5] and all(m is model for _, m in seen)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("step     2  loss ") and "test acc" in lines[0]


def test_train_does_not_modify_the_data():
    X, y = toy_data(64)
    Xc, yc = X.copy(), y.copy()
    train(mlp(), X, y, lr=0.1, steps=5, batch_size=16, X_test=X, y_test=y, eval_every=2)
    np.testing.assert_array_equal(X, Xc)
    np.testing.assert_array_equal(y, yc)


@pytest.mark.parametrize("bn", [True, False], ids=["with-bn", "without-bn"])
@pytest.mark.parametrize("lr", [1e6, 1e12])
def test_divergence_is_reported_not_raised(bn, lr):
    """A huge learning rate makes the numbers overflow. With BN the overflow first shows up
    inside a layer (an inf running variance, an inf pre-activation), which the layer refuses
    with a ValueError; train must report it as divergence rather than crash, and quietly."""
    X, y = toy_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = train(mlp(bn=bn), X, y, lr=lr, steps=200, batch_size=32, X_test=X, y_test=y,
                        eval_every=5)
    assert history.diverged
    assert history.final_accuracy == 0.0
    assert len(history.loss) < 200


def test_evaluate_restores_the_mode_and_batches_consistently():
    X, y = toy_data(100)
    model = mlp()
    train(model, X, y, lr=0.1, steps=20, batch_size=20)
    acc_all, loss_all = evaluate(model, X, y, batch_size=1024)
    acc_small, loss_small = evaluate(model, X, y, batch_size=7)       # eval mode: per sample
    assert acc_all == acc_small and loss_all == pytest.approx(loss_small, rel=1e-12)
    assert model.training
    model.eval()
    evaluate(model, X, y)
    assert not model.training


def test_evaluate_scores_a_blown_up_model_as_zero():
    X, y = toy_data(32)
    model = mlp()
    model.forward(X)
    model[0].W[...] = 1e308                        # finite parameters, overflowing activations
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate(model, X, y) == (0.0, float("inf"))


@pytest.mark.parametrize("X", [np.zeros((0, 3)), np.zeros((0, 3, 2, 2)), np.array(1.0)])
def test_evaluate_refuses_an_X_without_samples_naming_X(X):
    """No samples, no accuracy: a clear error instead of NumPy's "need at least one array
    to concatenate" (or len() of a 0-d array)."""
    model = Sequential(Linear(3, 2, rng=0))
    with pytest.raises(ValueError, match=r"^X must hold at least one sample"):
        evaluate(model, X, np.zeros(0, dtype=int))
