"""The course's widgets render and react in a real JupyterLab, in a real browser.

For every notebook that shows a widget: open it, Run All, and check that every widget
drew its figure; then move sliders, with the keyboard and with the mouse, and check that
the slider's readout, the widget's figure and its printed readout (if it prints one)
change. Where a notebook is listed in
``MOVES`` the sliders named there are moved (notebook 03: γ with the keyboard, the batch
size with the mouse); every other widget gets its first slider moved with the keyboard.
No errors may appear in the browser console. Screenshots: ``screenshots/lab_*.png``.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.e2e

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# notebook number -> moves: (slider label regex, how, expected readout after the move or None)
#   ("keyboard", n): press ArrowRight n times on the focused handle
#   ("mouse", dx):   drag the handle dx pixels to the right
MOVES = {
    "00": [("^shift", ("keyboard", 4), "5.00"), ("^scale", ("mouse", 60), None)],
    "03": [("^γ", ("keyboard", 10), "2.00"), ("^batch size", ("mouse", 60), None)],
}


def _stored_interacts(path) -> int:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return sum(1 for cell in nb["cells"] if cell["cell_type"] == "code"
               for out in cell.get("outputs", [])
               if WIDGET_VIEW in out.get("data", {})
               and "".join(out["data"].get("text/plain", "")).startswith("interactive("))


def _output_text(widget) -> str:
    """What the widget's output area prints (empty if it only draws)."""
    return "\n".join(widget.locator(".widget-output pre").all_inner_texts()).strip()


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _move_and_check(lab_page, widget, label, how, expected):
    before_readout = lab_page.readout(widget, label)
    before_src = lab_page.figure_src(widget)
    before_text = _output_text(widget)
    kind, amount = how
    if kind == "keyboard":
        lab_page.press_keys(widget, label, "ArrowRight", amount)
    else:
        lab_page.drag(widget, label, amount)
    slider = lab_page.slider_in(widget, label).locator(".widget-readout")
    if expected is not None:
        lab_page.expect(slider).to_have_text(expected)
    else:
        lab_page.expect(slider).not_to_have_text(before_readout)
        assert _number(lab_page.readout(widget, label)) > _number(before_readout), (
            f"moving {label!r} to the right lowered its value")
    lab_page.wait_idle()
    assert lab_page.figure_src(widget) != before_src, f"moving {label!r} did not redraw the figure"
    if before_text:                          # a printed readout, if the widget prints one
        assert _output_text(widget) != before_text, f"moving {label!r} left the printed readout as it was"
    return before_readout, lab_page.readout(widget, label)


def test_widgets_render_and_react(lab_page, console, screenshots, widget_notebook):
    stem = widget_notebook.stem
    lab_page.open(f"notebooks/{widget_notebook.name}")
    lab_page.run_all()

    interacts = lab_page.interacts()
    n = interacts.count()
    assert n >= _stored_interacts(widget_notebook) >= 1, (
        f"{n} widgets rendered, the notebook shows {_stored_interacts(widget_notebook)}")
    for k in range(n):                       # every widget drew a non-empty figure
        img = lab_page.figure(interacts.nth(k))
        lab_page.expect(img).to_be_visible()
        assert img.evaluate("i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0")

    moved = []
    covered = set()
    for label, how, expected in MOVES.get(stem[:2], []):
        widget = lab_page.interact_with(label).first
        covered.add(widget.evaluate(
            "w => [...w.closest('.jp-NotebookPanel').querySelectorAll('.widget-interact')].indexOf(w)"))
        moved.append((label, *_move_and_check(lab_page, widget, label, how, expected)))
    for k in range(n):                       # widgets not named in MOVES: first slider, keyboard
        if k in covered:
            continue
        widget = interacts.nth(k)
        labels = widget.locator(".widget-slider .widget-label").all_inner_texts()
        if not labels:
            continue
        label = "^" + re.escape(labels[0].strip())
        moved.append((label, *_move_and_check(lab_page, widget, label, ("keyboard", 3), None)))

    for k in range(n):
        lab_page.screenshot(interacts.nth(k), screenshots / f"lab_{stem}_widget{k + 1}.png")
    console.assert_clean()
    print(f"{stem}: {n} widgets; moved " + ", ".join(f"{lab} {a} -> {b}" for lab, a, b in moved))
