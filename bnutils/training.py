"""Mini-batch stochastic gradient descent for ``bnutils.layers`` models.

Introduced in notebook 05 (first used in notebooks 01 and 02).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._validation import NonFiniteError, as_float_array, check_finite
from .layers import accuracy, softmax_cross_entropy

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

    Introduced in notebook 05.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an integer, got {batch_size!r}")
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size must lie in 1..{n} (the number of samples), got {batch_size}")
    order = np.random.default_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def sgd_step(model, lr: float, velocity: dict | None = None, momentum: float = 0.0):
    """Update every parameter in place: ``p -= lr * grad`` (with optional heavy-ball momentum).

    With ``momentum`` > 0 and a ``velocity`` dict (kept by the caller between steps),
    ``v = momentum * v + grad`` and ``p -= lr * v``.

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
    grads = model.grads()
    for name, p in model.params().items():
        g = grads[name]
        if momentum and velocity is not None:
            v = velocity.setdefault(name, np.zeros_like(p))
            v *= momentum
            v += g
            g = v
        p -= lr * g


@one_blas_thread
def evaluate(model, X, y, batch_size: int = 1024) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(X, y)`` in eval mode.

    The model's mode is restored afterwards. Returns ``(accuracy, loss)``; a model whose
    outputs are no longer finite (it diverged) scores ``(0.0, inf)``.

    Examples
    --------
    >>> from bnutils.layers import Linear
    >>> model = Linear(2, 2, init=1.0, rng=0)
    >>> acc, loss = evaluate(model, np.eye(2), np.array([0, 1]))
    >>> 0.0 <= acc <= 1.0 and loss > 0
    True

    Introduced in notebook 05.
    """
    X = as_float_array(X, "X")
    check_finite(X, "X")
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


@one_blas_thread
def train(model, X, y, *, lr: float, steps: int, batch_size: int = 64, momentum: float = 0.0,
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
    momentum : float, optional
        Heavy-ball momentum (0 = plain SGD).
    X_test, y_test : ndarray, optional
        Evaluated every ``eval_every`` steps and after the last step.
    seed : int, optional
        Seeds the shuffling, so runs are reproducible.
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

    Introduced in notebook 05.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    X = as_float_array(X, "X")
    check_finite(X, "X")       # bad data is an error; NaN/inf appearing later is divergence
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    if X_test is not None:
        if y_test is None:
            raise ValueError("X_test was given without y_test")
        if isinstance(eval_every, bool) or not isinstance(eval_every, (int, np.integer)) \
                or eval_every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {eval_every!r}")
    rng = np.random.default_rng(seed)
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
                    sgd_step(model, lr, velocity, momentum)
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
