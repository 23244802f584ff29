"""Every slider handle has an accessible name (issue 27): what a screen reader announces.

In JupyterLab in Chromium, each slider of notebook 00's explorer (the student edition,
as a learner opens it) must be found by its role and its description:
``page.get_by_role("slider", name=<description>)``. ipywidgets draws its sliders with
noUiSlider, whose handle (``role="slider"``) carries no ``aria-label`` and is not
labelled by the widget's description, so today a screen reader announces an unnamed
slider. The test is marked ``xfail(strict=True)`` until the course gives the handles a
name: it records the gap, and fails (XPASS) the day the names are there, so the marker
is then removed. No Python-side setting reaches the handle (a description, a tooltip
and CSS classes land on the widget around it); naming it needs code in the browser (a
JupyterLab extension, or ipywidgets passing noUiSlider's handleAttributes).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.xfail(strict=True, reason="ipywidgets' noUiSlider handles have no accessible name yet")
def test_every_slider_handle_is_named_by_its_description(lab_page, screenshots):
    lab_page.open("student/00_start_here.ipynb")
    lab_page.run_all()
    sliders = lab_page.panel.locator(".widget-slider")
    lab_page.expect(sliders.first).to_be_visible()
    labels = [s.locator(".widget-label").inner_text().strip() for s in sliders.all()]
    assert labels and all(labels), f"sliders without a description: {labels}"
    handles = lab_page.panel.get_by_role("slider")
    assert handles.count() == len(labels), (handles.count(), labels)
    unnamed = [label for label in labels
               if lab_page.panel.get_by_role("slider", name=label, exact=True).count() != 1]
    lab_page.screenshot(sliders.first, screenshots / "a11y_00_slider.png")
    assert unnamed == [], f"slider handles a screen reader cannot name: {unnamed}"
