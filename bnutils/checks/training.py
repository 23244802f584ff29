"""Self-checks for notebook 05, training with BN.

Exercise 5.1 · add BN to a given network; Exercise 5.2 · the largest stable learning rate;
Exercise 5.3 · the update-to-data ratio of each weight matrix.
Each check prints one ✓/✗ line (see ``bnutils.checks._core``).

Introduced in notebook 05.
"""

from __future__ import annotations

import functools
import types

import numpy as np

from ..batchnorm import BatchNorm
from ..lab.learning_rates import is_stable
from ..layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from ..models import make_mlp
from ..training import TrainingHistory, one_blas_thread
from ._core import (
    Failed,
    as_answer_array,
    as_answer_number,
    compare,
    describe,
    fresh_rng,
    is_close,
    low_precision_hint,
    run_learner,
    self_check,
    watch_calls,
)

__all__ = ["add_batchnorm", "largest_stable_lr_check", "update_ratios"]


# ----------------------------------------------------------------------------- Exercise 5.1


def _reference_add_batchnorm(layers):
    """Reference solution of Exercise 5.1 (used by the tests)."""
    layers = list(layers)
    last_linear = max(i for i, layer in enumerate(layers) if isinstance(layer, Linear))
    out = []
    for i, layer in enumerate(layers):
        out.append(layer)
        if isinstance(layer, Linear) and i != last_linear:
            out.append(BatchNorm(layer.out_features))
    return Sequential(*out)


def _test_networks(rng=None):
    """Fresh plain networks (lists of layers) to hand to the learner's function: the three
    fixed ones (reported), and with ``rng`` one more of drawn depth, widths and activation."""
    nets = [
        [Linear(6, 5, rng=0), ReLU(), Linear(5, 4, rng=1), ReLU(), Linear(4, 3, rng=2)],
        [Linear(3, 7, rng=3), Tanh(), Linear(7, 2, rng=4)],
        [Linear(4, 4, rng=5), Sigmoid(), Linear(4, 6, rng=6), Sigmoid(), Linear(6, 8, rng=7),
         Sigmoid(), Linear(8, 2, rng=8)],
    ]
    if rng is not None:
        widths = [int(w) for w in rng.integers(2, 10, int(rng.integers(3, 6)))]
        activation = (ReLU, Tanh, Sigmoid)[int(rng.integers(3))]
        layers = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers += [Linear(a, b, rng=int(rng.integers(2**31)))]
            if i < len(widths) - 2:
                layers.append(activation())
        nets.append(layers)
    return nets


def _name(layer) -> str:
    return repr(layer).split("\n")[0]


def _parameters(layers) -> list[dict]:
    """A copy of every layer's parameters (to notice a learner who changes the given ones)."""
    return [{k: np.array(v, copy=True) for k, v in layer.params().items()} for layer in layers]


def _check_one_network(given, model, given_params) -> None:
    if not isinstance(model, Sequential):
        raise Failed(f"return a Sequential(...) built from the layers; got {type(model).__name__}")
    got = list(model.layers)
    bns = [layer for layer in got if isinstance(layer, BatchNorm)]
    hidden = [layer for layer in given if isinstance(layer, Linear)][:-1]
    if not bns:
        raise Failed("the returned network has no BatchNorm layer: insert BatchNorm(width) "
                     "right after each hidden Linear layer")
    if isinstance(got[-1], BatchNorm):
        raise Failed("there is a BatchNorm after the output layer: leave the last Linear "
                     "(the logits) un-normalized, BN goes after the hidden Linear layers only")
    if len({id(b) for b in bns}) < len(bns):
        raise Failed("one BatchNorm object is used in several places: every layer needs its "
                     "own BatchNorm (its own γ, β and running statistics)")
    for layer in given:
        if not any(layer is g for g in got):
            raise Failed(f"the given layer {_name(layer)} is missing from the result: keep the "
                         f"given layers (the same objects) and insert BatchNorm layers between them")
    for i, layer in enumerate(got):
        if isinstance(layer, BatchNorm):
            prev = got[i - 1] if i > 0 else None
            if isinstance(prev, (ReLU, Sigmoid, Tanh)):
                raise Failed("a BatchNorm comes after an activation: this exercise puts BN "
                             "between each hidden Linear and its activation (Linear → BN → "
                             "activation), as in the BN paper")
            if not isinstance(prev, Linear):
                raise Failed(f"layer {i} is a BatchNorm that does not follow a Linear layer")
            if layer.num_features != prev.out_features:
                raise Failed(f"the BatchNorm after {_name(prev)} has num_features="
                             f"{layer.num_features}; it must equal that layer's output width, "
                             f"{prev.out_features}")
    if len(bns) < len(hidden):
        raise Failed(f"only {len(bns)} of the {len(hidden)} hidden Linear layers are followed by "
                     f"a BatchNorm; add one after each of them")
    if len(bns) > len(hidden):
        raise Failed(f"{len(bns)} BatchNorm layers for {len(hidden)} hidden Linear layers; "
                     f"add exactly one after each")
    for layer, before in zip(given, given_params, strict=True):
        for name, value in layer.params().items():   # a bias dropped (set to None) is fine
            if name in before and not np.array_equal(value, before[name]):
                raise Failed(f"the given layer {_name(layer)} has new values in {name}: keep "
                             f"the given layers as they are and only insert BatchNorm layers")
    expected = [type(layer) for layer in _reference_add_batchnorm(given).layers]
    if [type(layer) for layer in got] != expected:
        names = " → ".join(type(layer).__name__ for layer in got)
        raise Failed(f"unexpected layer order {names}; expected Linear → BatchNorm → activation "
                     f"for each hidden layer and a plain Linear at the end")
    x = np.random.default_rng(0).standard_normal((16, given[0].in_features))
    try:
        out = run_learner(model.train().forward, x)
    except Exception as exc:    # e.g. a layer of the learner's own
        raise Failed(f"your network fails on a batch of 16 samples ({type(exc).__name__}: "
                     f"{exc})") from None
    if out.shape != (16, given[-1].out_features):
        raise Failed(f"the network's output has shape {out.shape}, expected "
                     f"{(16, given[-1].out_features)}")


@self_check("Exercise 5.1 · add BN to a network")
def add_batchnorm(student_fn):
    """Check ``student_fn(layers) -> Sequential`` on three plain networks and a fresh one."""
    nets = _test_networks(fresh_rng())
    for given in nets:
        given_params = _parameters(given)
        _check_one_network(given, student_fn(list(given)), given_params)
    reported = nets[:3]                        # the fresh network is not in the ✓ line
    n_bn = sum(sum(isinstance(layer, Linear) for layer in given) - 1 for given in reported)
    return f"{n_bn} BN layers, after each hidden Linear ({len(reported)} networks)"


# ----------------------------------------------------------------------------- Exercise 5.2


@functools.lru_cache(maxsize=1)
def _lr_data():
    from ..data import load_digits_split

    X_train, _, y_train, _ = load_digits_split()
    return X_train[:600], y_train[:600]


_LRS = (3.0, 0.1, 10.0, 1.0, 0.3, 30.0)      # deliberately not sorted
_HOPELESS = (30.0, 100.0)                    # no net trains at these
_STEPS = 60


def _builders():
    return {
        "plain": lambda: make_mlp([64, 32, 32, 10], "relu", rng=0),
        "BN": lambda: make_mlp([64, 32, 32, 10], "relu", norm="bn", rng=0),
    }


@functools.cache
@one_blas_thread
def _reference_run(kind: str, lr: float, steps: int):
    """(stable?, diverged?, steps taken) of the reference run of one net at one rate."""
    from ..training import train

    X, y = _lr_data()
    h = train(_builders()[kind](), X, y, lr=lr, steps=steps, batch_size=60, seed=0)
    return is_stable(h, 10), h.diverged, len(h.loss)


def _reference_runs(kind: str, lrs: tuple, steps: int = _STEPS):
    """For each lr: (stable?, diverged?) of the reference run, and the reference answer."""
    runs = {lr: _reference_run(kind, lr, steps)[:2] for lr in lrs}
    stable = [lr for lr in lrs if runs[lr][0]]
    return runs, (max(stable) if stable else None)


def _lr_cases(rng):
    """(kind, lrs, steps): the reported ones, then a fresh draw of net, rates and steps."""
    yield "plain", _LRS, _STEPS
    yield "BN", _LRS, _STEPS
    yield "plain", _HOPELESS, _STEPS
    lrs = tuple(float(v) for v in rng.permutation(_LRS)[:int(rng.integers(3, 5))])
    yield ("plain", "BN")[int(rng.integers(2))], lrs, int(rng.choice([40, 80]))


def _diagnose_lr(answer, kind, lrs, runs, expected):
    stable = sorted(lr for lr in lrs if runs[lr][0])
    not_diverged = [lr for lr in lrs if not runs[lr][1]]
    unstable_above = sorted(lr for lr in lrs if not runs[lr][0] and (expected is None or lr > expected))
    if expected is None:
        return (f"for the {kind} net no learning rate in {sorted(lrs)} is stable, so the answer "
                f"is None; you returned {answer}")
    if answer in unstable_above and answer == min(unstable_above):
        return (f"{answer} is the first *unstable* learning rate for the {kind} net; return the "
                f"last stable one before it")
    if not_diverged and answer == max(not_diverged) and not runs[answer][0]:
        return (f"at lr={answer} the {kind} net does not diverge, but its loss stays above ln K "
                f"(it learns nothing): use is_stable(history, num_classes), not just "
                f"history.diverged")
    if answer in stable and answer < expected:
        return (f"{answer} is stable for the {kind} net but not the largest stable learning rate "
                f"({expected} is also stable): compare learning rates by value - lrs is not "
                f"sorted")
    return None


def _counted(model, steps_taken: list):
    """``model``, its training-mode forward passes recorded in ``steps_taken`` (one batch
    size per SGD step), to see each model trained ``steps`` steps of ``batch_size``."""
    forward = model.forward

    def counting_forward(x):
        if model.training:
            steps_taken.append(len(x))
        return forward(x)

    model.forward = counting_forward
    return model


def _check_training(records, lrs, steps, batch_size, any_stable):
    """The models were trained as asked: ``steps`` steps (fewer only if a run diverged,
    which stops it) on batches of ``batch_size``, and not one model for several rates."""
    if len(records) == 1 and len(lrs) > 1:
        raise Failed(f"make_model() was called once for {len(lrs)} learning rates: "
                     f"build a fresh model for every learning rate (a model already "
                     f"trained at another rate does not tell you about this one)")
    trained = [r for r in records if r]
    if not trained:
        return
    if any(len(r) > steps for r in trained) or (any_stable and max(map(len, trained)) < steps):
        raise Failed(f"your models were trained {max(map(len, trained))} steps, but the check "
                     f"passed steps={steps}: call train(..., steps=steps, ...) with the "
                     f"function's own argument")
    sizes = {n for r in trained for n in r}
    if max(sizes) != batch_size:
        raise Failed(f"your models were trained on batches of {max(sizes)}, but the check "
                     f"passed batch_size={batch_size}: use the function's own argument")


@self_check("Exercise 5.2 · largest stable learning rate", time_limit=300.0)
@one_blas_thread
def largest_stable_lr_check(student_fn):
    """Check ``student_fn(make_model, lrs, X, y, steps=..., batch_size=...)`` on two small nets:
    its answer, and that every rate trained a fresh model for ``steps`` steps."""
    X, y = _lr_data()
    found = {}
    for kind, lrs, steps in _lr_cases(fresh_rng()):
        records = []

        def make_model(kind=kind, records=records):
            records.append([])
            return _counted(_builders()[kind](), records[-1])

        answer = student_fn(make_model, list(lrs), X.copy(), y.copy(), steps=steps, batch_size=60)
        runs, expected = _reference_runs(kind, lrs, steps)
        if isinstance(answer, (TrainingHistory, tuple, list, dict, set)) or (
                isinstance(answer, np.ndarray) and answer.size != 1):
            raise Failed(f"return one learning rate (a float from lrs) or None; got "
                         f"{describe(answer)}")
        if answer is not None:
            lr = as_answer_number(answer, "the learning rate")
            same = [rate for rate in lrs if is_close(lr, rate, rtol=1e-6)]   # float32 too
            if not same:
                raise Failed(low_precision_hint(lr) or f"returned {answer!r}, which is not one "
                             f"of the learning rates tried {sorted(lrs)}")
            answer = same[0]
        _check_training(records, lrs, steps, 60, expected is not None)
        if answer != expected:
            hint = _diagnose_lr(answer, kind, lrs, runs, expected)
            raise Failed(hint or f"for the {kind} net the largest stable learning rate in "
                                 f"{sorted(lrs)} is {expected}; you returned {answer}")
        trained = sum(bool(r) for r in records)
        if trained < len(lrs):
            raise Failed(f"only {trained} models were trained for {len(lrs)} learning rates: "
                         f"train a fresh model with train(...) at every rate in lrs")
        if lrs == _LRS:
            found[kind] = answer
    return f"plain net {found['plain']:g}, BN {found['BN']:g}, None if nothing trains"


# ----------------------------------------------------------------------------- Exercise 5.3


def _reference_update_ratios(pairs, lr):
    """Reference solution of Exercise 5.3 (used by the tests)."""
    return [float(np.log10(lr * np.linalg.norm(dW) / np.linalg.norm(W))) for W, dW in pairs]


_TANH_NET = [64, 64, 64, 64, 64, 64, 10]       # notebook 05's section 7 network
_TANH_GAINS = {"gain 5/3": 5 / 3, "gain 0.2": 0.2}


def _tanh_net_pairs(gain: float) -> list:
    """(W, dW) of every Linear layer of section 7's tanh MLP at initialization, after one
    backward pass on 60 training digits: the gradients a first SGD step would take."""
    from ..layers import softmax_cross_entropy

    X, y = _lr_data()
    net = make_mlp(_TANH_NET, "tanh", init=gain / np.sqrt(64), rng=0)
    _, dlogits = softmax_cross_entropy(net.train().forward(X[:60]), y[:60])
    net.backward(dlogits)
    return [(layer.W.copy(), layer.dW.copy()) for layer in net.layers if isinstance(layer, Linear)]


def _random_pairs(rng, n_pairs: int, dtype=np.float64) -> list:
    """Weight matrices with a mean well away from zero (so a ratio of standard deviations
    differs from the ratio of norms), and gradients a thousandth to a tenth their size."""
    pairs = []
    for _ in range(n_pairs):
        shape = tuple(int(v) for v in rng.integers(2, 13, size=2))
        scale = 10.0 ** rng.uniform(-1, 1)
        W = scale * (rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5) + rng.standard_normal(shape))
        dW = scale * 10.0 ** rng.uniform(-2, 0) * (rng.uniform(-1, 1) + rng.standard_normal(shape))
        pairs.append((W.astype(dtype), dW.astype(dtype)))
    return pairs


def _ratio_cases(rng):
    """(label, pairs, lr): the reported ones (section 7's two tanh nets, one random set in
    float32), then a fresh draw of matrices, sizes, scales and learning rate."""
    for label, gain in _TANH_GAINS.items():
        yield label, _tanh_net_pairs(gain), 0.1
    yield "random float32", _random_pairs(np.random.default_rng(53), 3, np.float32), 0.03
    yield "fresh", _random_pairs(rng, int(rng.integers(2, 6))), float(10.0 ** rng.uniform(-3, -0.5))


def _ratio_mistakes(pairs, lr) -> dict:
    """The known wrong answers of Exercise 5.3 on ``pairs``, each with its hint."""
    def each(fn):
        with np.errstate(all="ignore"):
            return np.array([fn(np.asarray(W, dtype=float), np.asarray(dW, dtype=float))
                             for W, dW in pairs])

    def norm(a):
        return np.linalg.norm(a)

    right = each(lambda W, dW: np.log10(lr * norm(dW) / norm(W)))
    return {
        "you returned the ratio itself: the exercise asks for its log10 (-3: a step moves W "
        "by a thousandth)": 10.0 ** right,
        "np.log is the natural logarithm: use np.log10": right * np.log(10.0),
        "the learning rate is missing: the step is lr·dW, so the ratio is ||lr·dW|| / ||W||":
            right - np.log10(lr),
        "your ratio is upside down: ||lr·dW|| goes on top, ||W|| below": -right,
        "you divided squared norms (sums of squares without the square root): use "
        "np.linalg.norm": 2 * right,
        "you used standard deviations, as the makemore code does: use norms (np.linalg.norm), "
        "which also count the mean": each(lambda W, dW: np.log10((lr * dW).std() / W.std())),
        "you divided by the norm of W after the step (W - lr·dW): use W as given, before "
        "the update": each(lambda W, dW: np.log10(lr * norm(dW) / norm(W - lr * dW))),
        "you averaged entrywise ratios |lr·dW| / |W|: divide the norms of the whole "
        "matrices": each(lambda W, dW: np.log10(np.mean(np.abs(lr * dW / W)))),
    }


def _copies(pairs) -> list:
    return [(np.array(W, copy=True), np.array(dW, copy=True)) for W, dW in pairs]


@self_check("Exercise 5.3 · update-to-data ratios")
def update_ratios(student_fn):
    """Check ``student_fn(pairs, lr)``: one log10 ||lr·dW|| / ||W|| per (W, dW) pair, on
    section 7's two tanh nets, a float32 set and a fresh set; the library's
    ``update_to_data_ratio`` may not be called."""
    from ..lab.dynamics import update_to_data_ratio

    found = {}
    for label, pairs, lr in _ratio_cases(fresh_rng()):
        given = _copies(pairs)
        with watch_calls({update_to_data_ratio: "bnutils' update_to_data_ratio"}) as seen:
            result = student_fn(given, lr)
        if seen:
            raise Failed(f"you call {seen.called()[0]}, which the check watches for: "
                         f"use np.linalg.norm and np.log10")
        for (W, dW), (W2, dW2) in zip(pairs, given, strict=True):
            if not (np.array_equal(W, W2) and np.array_equal(dW, dW2)):
                raise Failed("your function changed a W or dW in place (like dW *= lr): "
                             "compute lr * dW as a new array")
        if isinstance(result, types.GeneratorType) or isinstance(result, (map, filter)):
            raise Failed("return a list: a generator such as (... for W, dW in pairs) is not "
                         "one, write [... for W, dW in pairs]")
        if isinstance(result, (list, tuple)):
            for k, item in enumerate(result):
                if isinstance(item, (list, tuple)) or (isinstance(item, np.ndarray) and item.size != 1):
                    raise Failed(f"return one number per (W, dW) pair; item {k} of your answer "
                                 f"is {describe(item)}")
        elif isinstance(result, (int, float, np.number)) and not isinstance(result, bool) or (
                isinstance(result, np.ndarray) and result.ndim == 0):
            raise Failed(f"return one number per (W, dW) pair ({len(pairs)} pairs here), as a "
                         f"list, not a single number")
        ratios = as_answer_array(result, "ratios")
        if ratios.shape != (len(pairs),):
            raise Failed(f"return one number per (W, dW) pair: {len(pairs)} pairs gave an "
                         f"answer of shape {ratios.shape}")
        expected = [np.log10(lr * np.linalg.norm(np.asarray(dW, dtype=float))
                             / np.linalg.norm(np.asarray(W, dtype=float))) for W, dW in pairs]
        # a log10 is off by about (relative error of each norm) / ln 10: float32 norms pass
        compare(ratios, expected, f"your ratios ({label} matrices) are off by up to {{err}}: "
                f"log10(lr·||dW|| / ||W||), np.linalg.norm for ||·||",
                rtol=1e-9, atol=1e-9, scale=1.0, mistakes=functools.partial(_ratio_mistakes, pairs, lr))
        found[label] = np.asarray(expected)
    return ", ".join(f"{label}: {found[label].min():.1f} to {found[label].max():.1f}"
                     for label in _TANH_GAINS)
