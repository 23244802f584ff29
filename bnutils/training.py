"""Mini-batch stochastic gradient descent for ``bnutils.layers`` models.

Two different things are called "momentum" in this course. Here, ``sgd_momentum`` is
the optimizer's heavy-ball momentum: the weight of the previous update in the next
one (``v = sgd_momentum * v + grad``), which changes the weights. BN's ``momentum``
(``bnutils.batchnorm.BatchNorm``, ``update_running_stats``) is the weight of a new
batch in the running statistics, which are never used by a training-mode forward and
never change the weights.

Introduced in notebook 05 (first used in notebooks 01 and 02).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._validation import (
    NonFiniteError,
    as_float_array,
    as_generator,
    check_finite,
    check_fraction,
    check_int,
    check_learning_rate,
    check_model,
)
from .layers import accuracy, seed_random_layers, softmax_cross_entropy

__all__ = ["TrainingHistory", "evaluate", "minibatches", "one_blas_thread", "sgd_step", "train"]


def one_blas_thread(fn):
    """Decorator: run ``fn`` with OpenBLAS/MKL limited to one thread.

    The course's matrices are small (at most a few hundred columns); for them one BLAS
    thread is faster than several, and several threads per process oversubscribe a
    2-core machine that runs anything else (measured: 150 training steps took 5.2 s
    with the default two threads under load, 0.6 s with one). Results are unchanged.
    ``train`` and ``evaluate`` use it; so do the experiment helpers.

    Examples
    --------
    >>> @one_blas_thread
    ... def gram(a):
    ...     return a.T @ a
    >>> gram(np.eye(2))
    array([[1., 0.],
           [0., 1.]])

    Introduced in notebook 05.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return fn(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@dataclass
class TrainingHistory:
    """What ``train`` recorded.

    Attributes
    ----------
    steps : list of int
        The step numbers at which ``loss`` was recorded (every step).
    loss : list of float
        Training loss of each mini-batch.
    eval_steps : list of int
        Steps at which the model was evaluated (every ``eval_every`` steps and at the end).
    test_accuracy, test_loss : list of float
        Accuracy and loss on the evaluation set at ``eval_steps`` (eval mode).
    diverged : bool
        True if the loss became NaN/inf or the parameters blew up; training then stopped.
    """

    steps: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    diverged: bool = False

    @property
    def final_accuracy(self) -> float:
        """Last recorded test accuracy (NaN if none, or 0.0 after divergence)."""
        if self.diverged:
            return 0.0
        return self.test_accuracy[-1] if self.test_accuracy else float("nan")


def minibatches(n: int, batch_size: int, rng, drop_last: bool = True):
    """Yield index arrays that split ``range(n)`` into shuffled mini-batches (one epoch).

    ``batch_size = n`` is batch gradient descent, ``batch_size = 1`` stochastic GD.
    With ``drop_last`` the ragged final batch is skipped (BN needs full batches).

    Examples
    --------
    >>> [b.tolist() for b in minibatches(5, 2, np.random.default_rng(0))]
    [[2, 4], [3, 0]]

    Introduced in notebook 09.
    """
    n = check_int(n, "n (the number of samples)")
    batch_size = check_int(batch_size, "batch_size", 1, maximum=n)
    order = as_generator(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def sgd_step(model, lr: float, velocity: dict | None = None, sgd_momentum: float = 0.0):
    """Update every parameter in place: ``p -= lr * grad`` (with optional heavy-ball momentum).

    With ``sgd_momentum`` > 0 and a ``velocity`` dict (kept by the caller between steps),
    ``v = sgd_momentum * v + grad`` and ``p -= lr * v``. This is the optimizer's momentum;
    it has nothing to do with BN's ``momentum``, the weight of a new batch in the running
    statistics (see the module docstring).

    Parameters
    ----------
    model : Layer
        Its ``params()`` are updated in place from its ``grads()``.
    lr : float
        Learning rate.
    velocity : dict, optional
        The running updates by parameter name; needed when ``sgd_momentum`` > 0.
    sgd_momentum : float in [0, 1], optional
        Heavy-ball momentum; 0 is plain SGD.

    Examples
    --------
    >>> from bnutils.layers import Linear
    >>> layer = Linear(2, 1, init=1.0, rng=0)
    >>> W0 = layer.W.copy()
    >>> _ = layer.forward(np.array([[1.0, 2.0]])); _ = layer.backward(np.array([[1.0]]))
    >>> sgd_step(layer, lr=0.1)
    >>> np.round(layer.W - W0, 6).ravel().tolist()     # -lr * dW, dW = x.T @ dout
    [-0.1, -0.2]

    Introduced in notebook 05.
    """
    check_model(model)
    lr = check_learning_rate(lr)
    sgd_momentum = check_fraction(sgd_momentum, "sgd_momentum")
    if sgd_momentum and velocity is None:
        raise ValueError("sgd_momentum > 0 needs a velocity dict kept between steps "
                         "(e.g. velocity = {} before the loop)")
    grads = model.grads()
    for name, p in model.params().items():
        g = grads[name]
        if sgd_momentum:
            v = velocity.setdefault(name, np.zeros_like(p))
            v *= sgd_momentum
            v += g
            g = v
        p -= lr * g


@one_blas_thread
def evaluate(model, X, y, batch_size: int = 1024) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(X, y)`` in eval mode.

    The model's mode is restored afterwards, and what its forward passes kept for
    ``backward`` is dropped (``Layer.clear_caches``: an evaluation has no backward, and a
    kept model would otherwise hold the whole of X's activations). Returns
    ``(accuracy, loss)``; a model whose outputs are no longer finite (it diverged) scores
    ``(0.0, inf)``.

    Examples
    --------
    >>> from bnutils.layers import Linear
    >>> model = Linear(2, 2, init=1.0, rng=0)
    >>> acc, loss = evaluate(model, np.eye(2), np.array([0, 1]))
    >>> 0.0 <= acc <= 1.0 and loss > 0
    True

    Introduced in notebook 01.
    """
    check_model(model)
    X = as_float_array(X, "X")
    if X.ndim == 0 or len(X) == 0:          # no samples: no accuracy to report
        raise ValueError(f"X must hold at least one sample, shape (N, ...) with N ≥ 1; "
                         f"got shape {X.shape}")
    check_finite(X, "X")
    batch_size = check_int(batch_size, "batch_size")
    was_training = getattr(model, "training", True)
    model.eval()
    try:
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                logits = np.concatenate([model.forward(X[i:i + batch_size])
                                         for i in range(0, len(X), batch_size)])
        except NonFiniteError:          # a layer met NaN/inf: the model has blown up
            return 0.0, float("inf")
        if not np.all(np.isfinite(logits)):
            return 0.0, float("inf")
        with np.errstate(over="ignore"):    # finite but huge logits: the loss may be inf
            loss, _ = softmax_cross_entropy(logits, y)
        return accuracy(logits, y), loss
    finally:
        if was_training:
            model.train()
        clear = getattr(model, "clear_caches", None)     # any object with forward/backward is accepted
        if clear is not None:
            clear()


@one_blas_thread
def train(model, X, y, *, lr: float, steps: int, batch_size: int = 64, sgd_momentum: float = 0.0,
          X_test=None, y_test=None, eval_every: int = 50, seed: int = 0,
          loss_fn: Callable = softmax_cross_entropy, callback: Callable | None = None,
          log_every: int | None = None) -> TrainingHistory:
    """Train ``model`` by mini-batch SGD for a fixed number of steps.

    Parameters
    ----------
    model : Layer
        Anything with forward/backward/params/grads/train/eval (e.g. ``Sequential``).
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    lr : float
        Learning rate.
    steps : int
        Number of SGD updates; the data are reshuffled every epoch.
    batch_size : int, optional
    sgd_momentum : float in [0, 1], optional
        The optimizer's heavy-ball momentum (0 = plain SGD; see ``sgd_step``). Not BN's
        ``momentum``, which a model's ``BatchNorm`` layers take when they are built
        (``make_mlp(..., momentum=...)``) and which weighs each batch in the running
        statistics.
    X_test, y_test : ndarray, optional
        Evaluated every ``eval_every`` steps and after the last step.
    seed : int, optional
        Seeds the shuffling, and every layer that draws random numbers and was built
        without its own ``rng`` (e.g. ``NoisyBatchNorm(rng=None)``; see
        ``bnutils.layers.seed_random_layers``), so runs are reproducible.
    loss_fn : callable, optional
        ``loss, dlogits = loss_fn(logits, y)``.
    callback : callable, optional
        ``callback(step, model)`` after every update (e.g. to record activations).
    log_every : int, optional
        Print one compact line every ``log_every`` steps (deterministic text).

    Returns
    -------
    TrainingHistory
        Training stops early, with ``diverged = True``, as soon as the loss, the
        parameters or any layer's numbers (e.g. BN's running variance) become NaN/inf.

    Examples
    --------
    >>> from bnutils.layers import Linear, ReLU, Sequential
    >>> X = np.random.default_rng(0).standard_normal((64, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> model = Sequential(Linear(2, 8, rng=0), ReLU(), Linear(8, 2, rng=1))
    >>> history = train(model, X, y, lr=0.5, steps=40, batch_size=16, X_test=X, y_test=y)
    >>> len(history.loss), history.loss[-1] < history.loss[0], history.final_accuracy > 0.9
    (40, True, True)

    Introduced in notebook 01.
    """
    check_model(model)
    lr = check_learning_rate(lr)
    steps = check_int(steps, "steps")
    sgd_momentum = check_fraction(sgd_momentum, "sgd_momentum")
    if log_every is not None:
        log_every = check_int(log_every, "log_every")
    X = as_float_array(X, "X")
    check_finite(X, "X")       # bad data is an error; NaN/inf appearing later is divergence
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    if X_test is not None:
        if y_test is None:
            raise ValueError("X_test was given without y_test")
        eval_every = check_int(eval_every, "eval_every")
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    seed_random_layers(model, seed)
    history = TrainingHistory()
    velocity: dict = {}
    model.train()
    step = 0
    while step < steps:
        for idx in minibatches(len(X), batch_size, rng):
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    logits = model.forward(X[idx])
                    if not np.all(np.isfinite(logits)):
                        history.diverged = True
                        return history
                    loss, dlogits = loss_fn(logits, y[idx])
                    model.backward(dlogits)
                    sgd_step(model, lr, velocity, sgd_momentum)
            except NonFiniteError:
                # A layer refused NaN/inf produced by the blow-up itself (e.g. an overflowed
                # activation, or BN's running variance after a huge batch): divergence.
                history.diverged = True
                return history
            step += 1
            history.steps.append(step)
            history.loss.append(loss)
            if not np.isfinite(loss) or any(not np.all(np.isfinite(p)) for p in model.params().values()):
                history.diverged = True
                return history
            if callback is not None:
                callback(step, model)
            if X_test is not None and (step % eval_every == 0 or step == steps):
                acc, test_loss = evaluate(model, X_test, y_test)
                history.eval_steps.append(step)
                history.test_accuracy.append(acc)
                history.test_loss.append(test_loss)
            if log_every and step % log_every == 0:
                line = f"step {step:5d}  loss {loss:.3f}"
                if history.test_accuracy:
                    line += f"  test acc {history.test_accuracy[-1]:.3f}"
                print(line)
            if step >= steps:
                break
    return history
