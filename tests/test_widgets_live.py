"""bnutils.widgets.live: the explorers' figures redrawn in place must look exactly as if drawn afresh."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from redraw_helpers import controls, redraw_ms  # noqa: E402

from bnutils.lab.plots import use_course_style  # noqa: E402
from bnutils.widgets.forward import forward_explorer  # noqa: E402
from bnutils.widgets.limits import batch_mates_explorer  # noqa: E402
from bnutils.widgets.live import LiveFigure, encode_png, nice_limit  # noqa: E402
from bnutils.widgets.running_stats import running_stats_explorer  # noqa: E402
from bnutils.widgets.scaling import scaling_explorer  # noqa: E402
from bnutils.widgets.start import standardize_explorer  # noqa: E402


@pytest.fixture(autouse=True)
def _style_and_close():
    use_course_style()
    yield
    plt.close("all")


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _set(w, settings):
    c = controls(w)
    for name, value in settings:
        c[name].value = value


# explorer, a detour through other settings, the settings to compare at
CASES = {
    "00": (standardize_explorer, [("shift", -6.0), ("scale", 0.4), ("shift", 7.5)],
           [("shift", -2.0), ("scale", 3.0)]),
    "01": (scaling_explorer, [("feature-scale ratio", 16.0), ("learning rate", 0.5),
                              ("feature-scale ratio", 1.0)],
           [("feature-scale ratio", 2.0), ("learning rate", 0.02)]),
    "03": (forward_explorer, [("batch size m", 4), ("γ (gamma)", 3.0), ("batch #", 9),
                              ("ε (eps)", 10.0)],
           [("batch size m", 16), ("γ (gamma)", -1.5), ("β (beta)", 0.5), ("batch #", 2),
            ("ε (eps)", 1e-3)]),
    "06": (running_stats_explorer, [("momentum", 1.0), ("batch size", 2), ("unbiased var", False)],
           [("momentum", 0.01), ("batch size", 8), ("unbiased var", True)]),
    "09": (batch_mates_explorer, [("batch size", 64), ("normalization", "GroupNorm"),
                                  ("batch size", 2)],
           [("normalization", "LayerNorm"), ("batch size", 8)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_redrawn_figure_equals_one_drawn_afresh(case):
    """After a detour through other settings (other limits, other stored images), the
    image at a setting is pixel for pixel the image a new explorer draws there: no stale
    background, no text left over from an earlier value."""
    make, detour, target = CASES[case]
    moved = make()
    _set(moved, detour)
    _set(moved, target)
    fresh = make()
    _set(fresh, target)
    assert moved.result == fresh.result or case == "09"
    a, b = _pixels(moved.live.png), _pixels(fresh.live.png)
    assert a.shape == b.shape
    assert np.array_equal(a, b), f"{int((a != b).any(axis=-1).sum())} pixels differ"


@pytest.mark.parametrize("case", sorted(CASES))
def test_drawing_ahead_changes_no_image(case):
    """With the backgrounds an idle kernel draws ahead between moves (``finish_warm``
    after every move), every image is pixel for pixel the one of an explorer that never
    drew ahead, and each explorer but 00's (whose limits never change) prepares something."""
    make, detour, target = CASES[case]
    warmed, plain = make(), make()
    prepared = 0
    for name, value in detour + target:
        prepared += warmed.live.finish_warm()
        _set(warmed, [(name, value)])
        _set(plain, [(name, value)])
        a, b = _pixels(warmed.live.png), _pixels(plain.live.png)
        differ = int((a != b).any(axis=-1).sum())
        assert differ == 0, f"after {name} = {value}: {differ} pixels differ"
    assert (prepared > 0) == (case != "00")
    assert warmed.result == plain.result or case == "09"


def test_a_prepared_batch_size_draws_no_axes():
    """After drawing ahead, moving to a neighbouring batch size copies stored backgrounds
    instead of drawing any axes (what made the first visit of a batch size slow)."""
    w = forward_explorer()
    calls = []
    for ax in w.live.fig.axes:
        original = ax.draw
        ax.draw = (lambda orig, a: (lambda renderer: (calls.append(a), orig(renderer))))(original, ax)
    assert w.live.finish_warm() == 2                  # batch sizes 32 and 128
    calls.clear()
    controls(w)["batch size m"].value = 128
    assert calls == []
    controls(w)["γ (gamma)"].value = 0.3              # taller bars in panel 2: drawn
    assert calls
    assert w.live.finish_warm() == 2                  # 32 and 128 again, at this γ


def test_warming_waits_for_the_learner_in_a_kernel(monkeypatch):
    """In a kernel's event loop, drawing ahead starts ``WARM_AFTER_S`` after the last
    image and pauses while the controls keep moving; outside a kernel it only queues."""
    import asyncio

    import IPython.display

    from bnutils.widgets import live

    w = forward_explorer()                            # no kernel: queued, not drawn
    assert w.live.warmed == 0 and len(w.live._warm_queue) == 2
    monkeypatch.setattr(live, "_kernel_shell", lambda: object())
    # a wide margin between the moves (0.05 s apart) and the idle time drawing ahead
    # waits for, so that a loaded machine's late wake-ups cannot look like a pause
    monkeypatch.setattr(live, "WARM_AFTER_S", 0.5)
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: None)

    async def learner():
        w = forward_explorer()
        gamma = controls(w)["γ (gamma)"]
        for k in range(12):                           # moving every 0.05 s: nothing ahead
            gamma.value = 1.0 + 0.1 * (k % 2)
            await asyncio.sleep(0.05)
        assert w.live.warmed == 0
        for _ in range(100):                          # then idle: batch sizes 32 and 128
            await asyncio.sleep(0.05)
            if w.live.warmed == 2:
                break
        assert w.live.warmed == 2
        assert w.live._warm_handle is None            # and nothing left scheduled

    asyncio.run(learner())


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_live_image_is_the_static_figure(case):
    """The explorer's image matches the pyplot figure a notebook shows for the same
    setting (the static figure before the widget): at most a few pixels differ, where a
    moving line is drawn over a fixed one instead of under it."""
    make, _, _ = CASES[case]
    w = make()
    live = _pixels(w.live.png)
    static = {"00": "bnutils.widgets.start:plot_standardize",
              "01": "bnutils.widgets.scaling:show_descent",
              "03": "bnutils.widgets.forward:plot_forward_state",
              "06": None, "09": "bnutils.widgets.limits:plot_batch_mates"}[case]
    if static is None:
        from bnutils.widgets.running_stats import plot_running_stats, simulate_running_stats
        fig = plot_running_stats(simulate_running_stats(), 0.1, 32)
    else:
        import importlib

        module, name = static.split(":")
        getattr(importlib.import_module(module), name)()
        fig = plt.gcf()
    fig.canvas.draw()
    drawn = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    assert drawn.shape == live.shape
    differ = (np.abs(drawn.astype(int) - live.astype(int)).sum(axis=-1) > 60).mean()
    assert differ < 0.005, f"{differ:.2%} of the pixels differ"


def test_only_the_changed_axes_are_drawn_again():
    w = forward_explorer()
    canvas = w.live
    calls = []
    for ax in canvas.fig.axes:
        original = ax.draw
        ax.draw = (lambda orig, a: (lambda renderer: (calls.append(a), orig(renderer))))(original, ax)
    controls(w)["β (beta)"].value = 0.1
    calls.clear()
    controls(w)["β (beta)"].value = 0.0      # back to the first limits: all from stored images
    assert calls == []
    controls(w)["batch size m"].value = 4    # new y limits in panels 1-3, not in panel 4
    assert canvas.fig.axes[3] not in calls and canvas.fig.axes[0] in calls


def test_nice_limit_and_bad_input():
    assert [nice_limit(v) for v in (0.7, 1, 1.01, 13, 40, 41, 999)] == [0.8, 1, 1.5, 15, 40, 50, 1000]
    with pytest.raises(ValueError, match="positive"):
        nice_limit(0)
    with pytest.raises(ValueError, match="positive"):
        nice_limit(float("nan"))


def test_encode_png_round_trip_and_bad_input():
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    assert np.array_equal(_pixels(encode_png(rgb)), rgb)
    with pytest.raises(ValueError, match="rgb"):
        encode_png(rgb.astype(float))
    with pytest.raises(ValueError, match="rgb"):
        encode_png(rgb[..., :2])


def test_static_mode_is_an_ordinary_pyplot_figure():
    canvas = LiveFigure((3, 2), live=False)
    ax = canvas.fig.subplots()
    canvas.dynamic(ax.plot([0, 1], [0, 1])[0])
    assert plt.gcf() is canvas.fig and not ax.lines[0].get_animated()
    canvas.show()                                # plt.show(): nothing to assert under Agg
    assert canvas.png is None


def test_redraw_time_includes_the_png_of_pyplot_explorers():
    """An explorer drawn with pyplot: redraw_ms encodes its figure as the inline backend does."""
    import ipywidgets as widgets

    encoded = []

    def draw(a=1.0):
        fig, ax = plt.subplots()
        ax.plot([0, a])
        original = fig.canvas.print_figure
        fig.canvas.print_figure = lambda *args, **kw: (encoded.append(kw), original(*args, **kw))
        return a

    w = widgets.interactive(draw, a=widgets.FloatSlider(value=1.0, min=0, max=2, description="a"))
    plt.close("all")                             # the figure of the first call
    encoded.clear()
    times = redraw_ms(w, "a", [0.5, 1.5])
    assert len(times) == 2 and all(t > 0 for t in times)
    assert len(encoded) == 2 and all(kw.get("bbox_inches") == "tight" for kw in encoded)


def test_the_redraw_budget_counts_cpu_time_of_the_callback_and_the_png():
    """tests/redraw_helpers.py times what redraw_ms times (callback plus PNG) in CPU time:
    a callback that computes for 150 ms fails the budget, one that sleeps 150 ms (the
    wall clock of a busy machine) does not."""
    import time

    import ipywidgets as widgets
    from redraw_helpers import REDRAW_BUDGET_MS, assert_redraws_fast, cpu_redraw_ms

    def explorer(callback):
        encoded = []

        def draw(a=1.0):
            callback()
            fig, ax = plt.subplots(figsize=(1, 1), dpi=20)       # a figure that costs little
            ax.plot([0, a])
            original = fig.canvas.print_figure
            fig.canvas.print_figure = lambda *args, **kw: (encoded.append(kw), original(*args, **kw))
            return a

        w = widgets.interactive(draw, a=widgets.FloatSlider(value=1.0, min=0, max=2, description="a"))
        plt.close("all")
        encoded.clear()
        return w, encoded

    def busy(seconds=0.15):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    w, encoded = explorer(lambda: time.sleep(0.15))
    assert max(cpu_redraw_ms(w, "a", [0.5, 1.5])) < REDRAW_BUDGET_MS
    assert len(encoded) == 2                     # the PNG is made (and timed) for each move
    assert_redraws_fast(w, "a", [0.5, 1.5, 1.0], tries=1)
    w, _ = explorer(busy)
    assert min(cpu_redraw_ms(w, "a", [0.5, 1.5])) >= 150
    with pytest.raises(AssertionError, match="ms of CPU time"):
        assert_redraws_fast(w, "a", [0.5, 1.5, 1.0], tries=1)
