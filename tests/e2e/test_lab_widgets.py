"""The course's widgets render and react in a real JupyterLab, in a real browser.

For every notebook that shows an explorer (found from its sources): open its explorer
notebook (``explorers/NN_name.ipynb`` on the test server: the notebook's title, setup
cell and explorer cells, outputs cleared; see ``explorer_notebook`` in explorers.py), Run
All, and check that every explorer drew its figure; then move every control and check
that the widget's figure is redrawn, and for a slider that its readout and the printed
readout (if the widget prints one) change. Where a notebook is listed in ``MOVES`` the
sliders named there are moved as said (notebook 03: γ with the keyboard, the batch size
with the mouse); every other slider gets two key presses, dropdowns their next option,
checkboxes a click. No errors may appear in the browser console.
Screenshots: ``screenshots/lab_*.png``.

Every check waits for what it expects to see (the image's ``src`` changing, the readout's
new text), up to the fixtures' REDRAW_MS (30 s) per step, and never asserts right after
a fixed pause: on a loaded machine a redraw can take seconds, and the test must still
pass. That bound is generous on purpose; the latency goal is measured by
benchmarks/widget_latency.py.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e

# notebook number -> moves: (slider label regex, how, expected readout after the move or None)
#   ("keyboard", n): press ArrowRight n times on the focused handle
#   ("mouse", dx):   drag the handle dx pixels to the right
MOVES = {
    "00": [("^shift", ("keyboard", 4), "5.00"), ("^scale", ("mouse", 60), None)],
    "03": [("^γ", ("keyboard", 10), "2.00"), ("^batch size", ("mouse", 60), None)],
}


def _output_text(widget) -> str:
    """What the widget's output area prints (empty if it only draws)."""
    return "\n".join(widget.locator(".widget-output pre").all_inner_texts()).strip()


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _move_and_check(lab_page, widget, label, how, expected, key="ArrowRight"):
    """Move slider ``label`` and wait until its readout, the figure and the printed text
    have changed (each wait up to REDRAW_MS)."""
    before_readout = lab_page.readout(widget, label)
    before_src = lab_page.figure_src(widget)
    before_text = _output_text(widget)
    kind, amount = how
    if kind == "keyboard":
        lab_page.press_keys(widget, label, key, amount)
    else:
        lab_page.drag(widget, label, amount)
    slider = lab_page.slider_in(widget, label).locator(".widget-readout")
    if expected is not None:
        lab_page.expect(slider).to_have_text(expected)
    else:
        lab_page.expect(slider).not_to_have_text(before_readout)
        moved_up = _number(lab_page.readout(widget, label)) > _number(before_readout)
        assert moved_up == (key == "ArrowRight"), f"{key} moved {label!r} the wrong way"
    lab_page.wait_figure_changed(widget, before_src, f"moving {label!r}")
    if before_text:                          # a printed readout, if the widget prints one
        lab_page.wait_until(lambda: _output_text(widget) not in ("", before_text),
                            f"moving {label!r} left the printed readout as it was")
    lab_page.wait_idle()
    return before_readout, lab_page.readout(widget, label)


def _assert_tracks_aligned(widget):
    """Within one column of sliders, every track starts at the same x."""
    columns = {}
    for slider in widget.locator(".widget-slider").all():
        label = slider.locator(".widget-label").bounding_box()
        track = slider.locator(".slider-container, .noUi-target").first.bounding_box()
        columns.setdefault(round(label["x"]), []).append(track["x"])
    for lefts in columns.values():
        assert max(lefts) - min(lefts) <= 2, f"slider tracks start at different x: {lefts}"


def _toggle_and_check(lab_page, widget, control, kind):
    """Change a dropdown (next option) or a checkbox; the figure must be redrawn."""
    before_src = lab_page.figure_src(widget)
    if kind == "dropdown":
        select = control.locator("select")
        labels = [o.strip() for o in select.locator("option").all_inner_texts()]
        before = select.evaluate("s => s.options[s.selectedIndex].text").strip()
        after = labels[(labels.index(before) + 1) % len(labels)]
        select.select_option(label=after)
    else:
        box = control.locator("input[type=checkbox]")
        before = box.is_checked()
        box.click()
        after = box.is_checked()
        assert after != before
    lab_page.wait_figure_changed(widget, before_src, f"changing the {kind} to {after!r}")
    lab_page.wait_idle()
    return str(before), str(after)


def test_widgets_render_and_react(lab_page, console, screenshots, widget_notebook, explorers_shown):
    stem = widget_notebook.stem
    lab_page.open(f"explorers/{widget_notebook.name}")
    lab_page.run_all()

    interacts = lab_page.interacts()
    expected = explorers_shown
    assert expected >= 1
    lab_page.expect(interacts).to_have_count(expected)
    n = interacts.count()
    for k in range(n):                       # every widget drew a non-empty figure
        img = lab_page.figure(interacts.nth(k))
        lab_page.expect(img).to_be_visible()
        lab_page.wait_until(
            lambda img=img: img.evaluate("i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0"),
            f"explorer {k + 1}'s figure did not load")

    moved = []
    named = {}                               # widget index -> slider labels moved by MOVES
    for label, how, expected in MOVES.get(stem[:2], []):
        widget = lab_page.interact_with(label).first
        index = widget.evaluate(
            "w => [...w.closest('.jp-NotebookPanel').querySelectorAll('.widget-interact')].indexOf(w)")
        named.setdefault(index, set()).add(label)
        moved.append((label, *_move_and_check(lab_page, widget, label, how, expected)))
    for k in range(n):                       # every other control of every widget
        widget = interacts.nth(k)
        for text in widget.locator(".widget-slider .widget-label").all_inner_texts():
            label = "^" + re.escape(text.strip())
            if any(re.match(done, text.strip()) for done in named.get(k, ())):
                continue
            handle = lab_page.slider_in(widget, label).locator(".noUi-handle")
            at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
            moved.append((label, *_move_and_check(lab_page, widget, label, ("keyboard", 2), None,
                                                  key="ArrowLeft" if at_end else "ArrowRight")))
        for kind in ("dropdown", "checkbox"):
            for control in widget.locator(f".widget-{kind}").all():
                moved.append((kind, *_toggle_and_check(lab_page, widget, control, kind)))

    for k in range(n):                       # slider tracks start together (one label width)
        _assert_tracks_aligned(interacts.nth(k))
    # Every explorer fits a 1366 x 768 laptop screen with the file browser open.
    lab_page.page.set_viewport_size({"width": 1366, "height": 768})
    lab_page.expect(lab_page.page.locator(".jp-FileBrowser")).to_be_visible()
    notebook = lab_page.panel.locator(".jp-WindowedPanel-outer, .jp-Notebook").first
    lab_page.page.wait_for_timeout(500)      # the layout follows the new size
    area = notebook.bounding_box()
    for k in range(n):
        box = interacts.nth(k).bounding_box()
        assert box["height"] <= area["height"] and box["width"] <= area["width"], (
            f"widget {k + 1} ({box['width']:.0f} x {box['height']:.0f} px) does not fit the "
            f"notebook area ({area['width']:.0f} x {area['height']:.0f} px) at 1366 x 768")
    for k in range(n):
        lab_page.screenshot(interacts.nth(k), screenshots / f"lab_{stem}_widget{k + 1}.png")
    console.assert_clean()
    print(f"{stem}: {n} widgets; moved " + ", ".join(f"{lab} {a} -> {b}" for lab, a, b in moved))


THREAD_PROBE = """\
import threading

import ipywidgets as widgets


def where(a=0):
    print(f"move {a} ran in {threading.current_thread().name}")


widgets.interactive(where, a=widgets.IntSlider(value=0, min=0, max=5, description="a"))"""


def test_widget_callbacks_run_in_the_kernels_main_thread(lab_page, lab, console):
    """A slider move runs its callback in the kernel's main thread, where the cells run
    and where an explorer draws ahead between moves (bnutils.widgets.live: one figure,
    drawn by one thread at a time). JupyterLab >= 4.4 sends widget messages to a kernel
    subshell by default, which ipykernel 7 runs in a thread of its own: a move then drew
    at the same time as the explorer's drawing ahead in the main thread, and now and
    then failed (a mathtext ValueError, seen on notebook 01's explorer) or could show a
    figure of another setting. The course's JupyterLab settings turn that off
    (``commsOverSubshells``)."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(THREAD_PROBE)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(nb, lab.root / "explorers" / "thread_probe.ipynb")
    lab_page.open("explorers/thread_probe.ipynb")
    lab_page.run_all()
    widget = lab_page.interacts().first
    output = widget.locator(".widget-output")
    lab_page.expect(output).to_contain_text("move 0 ran in MainThread")
    handle = lab_page.slider_in(widget, "^a").locator(".noUi-handle")
    for k in range(1, 4):
        handle.focus()
        lab_page.page.keyboard.press("ArrowRight")
        lab_page.expect(output).to_contain_text(re.compile(rf"move {k} ran in \S+"))
        print(output.inner_text())
        assert f"move {k} ran in MainThread" in output.inner_text(), output.inner_text()
    console.assert_clean()
