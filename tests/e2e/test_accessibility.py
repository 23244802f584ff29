"""Every slider handle has an accessible name (issue 27): what a screen reader announces.

ipywidgets draws its sliders with noUiSlider, whose handle (``role="slider"``, the element
that takes the keyboard focus) carries no name of its own; the course's JupyterLab
extension bn-course-a11y (tools/labextensions/, loaded by tools/jupyter_config) ties each
handle to the widget's description, and makes it announce the readout's value. In
JupyterLab in Chromium, as a learner opens it:

* every slider of every explorer of the course is found by its role and its
  description, ``get_by_role("slider", name=<description>)``, no slider in the
  notebook is left without a name, and each still works from the keyboard: focused by
  name, an arrow key changes its readout, the opposite key brings it back, and the value
  it announces (aria-valuetext) is the readout's, not noUiSlider's (which is an option's
  index for a SelectionSlider, the exponent for a FloatLogSlider);
* the name follows the description when the kernel changes it, handles drawn again
  (a slider turned vertical) are named too, a range slider's handles are named
  "<description> lower" and "<description> upper", and a handle that already had a
  name keeps it (a scratch notebook);
* no errors in the browser console.

Each explorer notebook's accessibility tree (Playwright's ARIA snapshot: what Chromium
exposes to a screen reader) goes to ``screenshots/a11y_<notebook>.txt``, with a
screenshot of a focused handle, ``screenshots/a11y_<notebook>.png``.
"""

from __future__ import annotations

import json
import re
import urllib.request

import nbformat
import pytest

pytestmark = pytest.mark.e2e

# Where the test server holds the course notebooks that show explorers: the small
# explorer notebooks (title, setup cell, explorer cells; tests/e2e/explorers.py, written
# by the ``lab`` fixture of tests/e2e/conftest.py), run with Run All.
EXPLORER_FOLDER = "explorers"
NAMED = re.compile(r"\S")                  # an accessible name that is not empty


def _keyboard_round_trip(lab_page, widget, label: str) -> str:
    """Focus the handle named ``label``, press an arrow key and the opposite one: the
    readout changes, then comes back, and the value the handle announces (aria-valuetext)
    is the readout's all along. Returns what happened, for the log."""
    expect = lab_page.expect
    handle = widget.get_by_role("slider", name=label, exact=True)
    expect(handle).to_have_count(1)
    assert handle.get_attribute("tabindex") == "0", f"{label!r}: the handle is not in the tab order"
    by_name = lab_page.page.get_by_role("slider", name=label, exact=True)  # inside the slider
    readout = widget.locator(".widget-slider").filter(has=by_name).locator(".widget-readout")
    text = readout.inner_text().strip()
    expect(handle).to_have_attribute("aria-valuetext", text)
    at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    key, back = ("ArrowLeft", "ArrowRight") if at_end else ("ArrowRight", "ArrowLeft")
    handle.scroll_into_view_if_needed()
    handle.focus()
    expect(handle).to_be_focused()
    lab_page.page.keyboard.press(key)
    expect(readout).not_to_have_text(text)
    moved = readout.inner_text().strip()
    expect(handle).to_have_attribute("aria-valuetext", moved)
    assert (_number(moved) > _number(text)) == (key == "ArrowRight"), f"{key} moved {label!r} the wrong way"
    lab_page.page.keyboard.press(back)
    expect(readout).not_to_have_text(moved)
    returned = readout.inner_text().strip()
    expect(handle).to_have_attribute("aria-valuetext", returned)
    # Back where it was; a start value off the slider's steps comes back on one (a
    # learning rate of 0.0500 on a log slider: 0.0501).
    assert _number(returned) == pytest.approx(_number(text), rel=0.01), (label, text, moved, returned)
    return f"{label} {text} -> {moved} -> {returned}"


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def test_every_slider_of_every_explorer_is_named_and_works_by_keyboard(
        lab_page, console, screenshots, widget_notebook, explorers_shown):
    stem = widget_notebook.stem
    lab_page.open(f"{EXPLORER_FOLDER}/{widget_notebook.name}")
    lab_page.run_all()
    interacts = lab_page.interacts()
    assert interacts.count() >= explorers_shown >= 1

    done = []
    for k in range(interacts.count()):
        widget = interacts.nth(k)
        labels = [t.strip() for t in widget.locator(".widget-slider > .widget-label").all_inner_texts()]
        assert len(labels) == widget.locator(".noUi-handle").count(), (
            f"explorer {k + 1}: the sliders {labels} do not have one handle each")
        assert all(labels), f"explorer {k + 1}: a slider without a description: {labels}"
        unnamed = [label for label in labels
                   if widget.get_by_role("slider", name=label, exact=True).count() != 1]
        assert unnamed == [], f"explorer {k + 1}: slider handles a screen reader cannot name: {unnamed}"
        for label in labels:
            done.append(_keyboard_round_trip(lab_page, widget, label))
        lab_page.wait_idle()

    # No slider anywhere in the notebook without a name (not only the explorers' ones).
    sliders = lab_page.panel.get_by_role("slider")
    assert sliders.count() == lab_page.panel.get_by_role("slider", name=NAMED).count() == len(done)
    tree = "\n\n".join(f"# explorer {k + 1}\n" + interacts.nth(k).aria_snapshot()
                       for k in range(interacts.count()))
    (screenshots / f"a11y_{stem}.txt").write_text(tree + "\n", encoding="utf-8")
    interacts.first.evaluate("el => el.scrollIntoView({block: 'start'})")
    sliders.first.focus()                  # its focus ring, in the screenshot
    interacts.first.screenshot(path=str(screenshots / f"a11y_{stem}.png"))
    console.assert_clean()
    print(f"{stem}: {len(done)} sliders named and moved by keyboard: " + "; ".join(done))


# A scratch notebook: a slider whose description the kernel changes when it moves (and
# which then turns a range slider vertical, which draws that slider's handles again),
# the same slider shown twice, and a range slider.
SCRATCH = [
    "import ipywidgets as widgets\n"
    "shift = widgets.FloatSlider(value=3.0, min=-8.0, max=8.0, step=0.5, description='shift')\n"
    "window = widgets.IntRangeSlider(value=(2, 5), min=0, max=9, description='window')\n"
    "def moved(change):\n"
    "    shift.description = f'shift at {change.new:.1f}'\n"
    "    window.orientation = 'vertical'\n"
    "shift.observe(moved, 'value')\n"
    "widgets.VBox([shift, window])",
    "shift",
]


def test_names_follow_the_description_and_redrawn_and_range_handles(lab_page, console, screenshots):
    expect, page = lab_page.expect, lab_page.page
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in SCRATCH])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, lab_page.server.root / "a11y_scratch.ipynb")
    lab_page.open("a11y_scratch.ipynb")
    lab_page.run_all()
    panel = lab_page.panel

    # JupyterLab loads the extension from the course's folder, and tells the browser to
    # check for a newer file each time (its name does not change with its content).
    names = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data')"
                          ".textContent).federated_extensions.map(e => e.name)")
    assert "bn-course-a11y" in names, names
    server = lab_page.server
    with urllib.request.urlopen(f"{server.base}/lab/extensions/bn-course-a11y/index.js"
                                f"?token={server.token}", timeout=10) as resp:
        assert resp.headers["Cache-Control"] == "no-cache", resp.headers["Cache-Control"]

    expect(panel.get_by_role("slider", name="shift", exact=True)).to_have_count(2)   # two views
    lower = panel.get_by_role("slider", name="window lower", exact=True)
    upper = panel.get_by_role("slider", name="window upper", exact=True)
    expect(lower).to_have_count(1)
    expect(upper).to_have_count(1)
    upper.focus()
    page.keyboard.press("ArrowRight")
    expect(upper).to_have_attribute("aria-valuenow", "6.0")
    expect(lower).to_have_attribute("aria-valuenow", "2.0")
    (screenshots / "a11y_scratch_before.txt").write_text(panel.locator(".jp-OutputArea").first
                                                         .aria_snapshot() + "\n", encoding="utf-8")

    # The kernel renames the slider and redraws the range slider's handles.
    first = panel.get_by_role("slider", name="shift", exact=True).first
    first.focus()
    page.keyboard.press("ArrowRight")
    expect(panel.get_by_role("slider", name="shift at 3.5", exact=True)).to_have_count(2)
    expect(panel.locator(".noUi-vertical .noUi-handle[aria-orientation=vertical]")).to_have_count(2)
    expect(panel.get_by_role("slider", name="window lower", exact=True)).to_have_count(1)
    expect(panel.get_by_role("slider", name="window upper", exact=True)).to_have_count(1)
    expect(panel.get_by_role("slider", name="window upper", exact=True)).to_have_attribute(
        "aria-valuenow", "6.0")
    lab_page.wait_idle()
    assert panel.get_by_role("slider").count() == panel.get_by_role("slider", name=NAMED).count() == 4
    (screenshots / "a11y_scratch_after.txt").write_text(panel.locator(".jp-OutputArea").first
                                                        .aria_snapshot() + "\n", encoding="utf-8")
    lab_page.screenshot(panel.locator(".jp-OutputArea").first, screenshots / "a11y_scratch.png")

    # A handle that has a name already keeps it; one without is named after its label.
    page.evaluate("""() => {
        const slider = n => `<div class="widget-slider"><label class="widget-label">described</label>
            <div class="noUi-handle" role="slider" tabindex="0" ${n}></div></div>`;
        const box = document.createElement('div');
        box.id = 'a11y-probe';
        box.innerHTML = slider('aria-label="own name"') + slider('');
        document.body.appendChild(box);
    }""")
    probe = page.locator("#a11y-probe")
    expect(probe.get_by_role("slider", name="own name", exact=True)).to_have_count(1)
    expect(probe.get_by_role("slider", name="described", exact=True)).to_have_count(1)
    assert json.loads(probe.evaluate("b => JSON.stringify([...b.querySelectorAll('.noUi-handle')]"
                                     ".map(h => h.getAttribute('aria-labelledby')))"))[0] is None
    console.assert_clean()
