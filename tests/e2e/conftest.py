"""Fixtures for the browser tests: Debian's Chromium driven by Python Playwright.

* ``browser`` (per module): headless Chromium (``/usr/bin/chromium``; Playwright's own
  browser download is neither used nor needed).
* ``lab`` (per session, so per pytest-xdist worker): one JupyterLab server, shared by
  the tests, on a free loopback port with a token (passed in the environment, as ``make
  lab`` does), in temporary config/runtime/settings/workspace folders, serving
  generated or copied notebooks only: ``explorers/NN_name.ipynb`` (for each course
  notebook that shows an explorer, a small notebook holding its title, its setup cell
  and its explorer cells: ``explorer_notebook``) and ``student/`` (the student edition,
  built by tools/make_student.py). Nothing is ever saved over the repository. The server
  is stopped by its PID. The tests never depend on what a notebook has stored: no widget
  model id (an autosave rewrites them; a stored view whose model is gone shows "model
  not found"), no stored output: they run their notebook and look at what it draws.
* ``lab_page`` (per test): a browser page on that server, wrapped in ``LabPage`` (open a
  notebook, wait for its kernel, Run All, find sliders by their label, move them with the
  keyboard or the mouse). Kernels the test started are shut down afterwards.
* ``console`` records page errors and console errors of every page a test opens, and
  the requests it blocked: pages may talk to this machine only.

When Chromium or playwright is missing these fixtures skip with a message that says how
to enable the tests. Under CI=true, tests/conftest.py turns that skip into a failure:
CI must run the browser tests (.ci/run installs chromium).

Screenshots go to ``screenshots/`` (git-ignored) for a person to look at.

Measured facts behind the waits (JupyterLab 4 in headless Chromium): the
toolbar's idle indicator shows "idle" before a kernel is attached, so readiness is the
status bar's "<kernel> | Idle" button; the news toast is switched off in the settings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from explorers import explorer_cells, widget_notebooks, write_explorer_notebooks

from tools import lab as lab_tool

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = os.environ.get("BN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNEL_NAME = "Python 3 (ipykernel)"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HOW_TO_ENABLE = ("to enable the browser tests: sudo apt-get install -y chromium (Debian's; playwright's "
                 "own browser download is not needed) and pip install -e '.[test]'; under CI=true "
                 "they must run")
LOCAL_URL = re.compile(r"^(file:|data:|blob:|about:|https?://(127\.0\.0\.1|localhost|\[::1\])[:/])")
# Timeouts (ms). Generous: the machine is shared; a wait that passes returns at once.
KERNEL_READY_MS = 120_000
RUN_ALL_MS = 240_000
REDRAW_MS = 30_000


def _sync_api():
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip(f"browser test skipped: the Python package playwright is not installed; {HOW_TO_ENABLE}")
    return sync_api


def _require_chromium() -> None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"browser test skipped: Chromium not found at {CHROMIUM}; {HOW_TO_ENABLE}")


# --------------------------------------------------------------------------- browser

class Console:
    """Page errors, console errors and blocked (non-local) requests of the pages it watches."""

    def __init__(self):
        self.errors: list[str] = []
        self.blocked: list[str] = []

    def watch(self, page) -> None:
        page.on("pageerror", lambda err: self.errors.append(f"page error: {err}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"console error: {msg.text} ({msg.location.get('url', '')})"))

    def route(self, route) -> None:
        url = route.request.url
        if LOCAL_URL.match(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def assert_clean(self) -> None:
        assert self.blocked == [], f"the page tried to load from outside this machine: {self.blocked}"
        assert self.errors == [], "errors in the browser console:\n" + "\n".join(self.errors)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium, one per test module."""
    sync_api = _sync_api()
    _require_chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def console():
    return Console()


@pytest.fixture
def new_page(browser, console):
    """A factory of pages that only reach this machine and report their errors to ``console``."""
    contexts = []

    def make(width: int = 1400, height: int = 1100):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        context.route("**/*", console.route)
        page = context.new_page()
        console.watch(page)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The git-ignored folder where the browser tests leave screenshots for people to look at."""
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


# --------------------------------------------------------------------------- JupyterLab

class LabServer:
    """A running JupyterLab server (see the ``lab`` fixture)."""

    def __init__(self, base: str, token: str, root: Path, log: Path):
        self.base, self.token, self.root, self.log = base, token, root, log

    def url(self, workspace: str) -> str:
        """Address of JupyterLab in a new, empty workspace (no tabs restored from an earlier
        module, so no kernels started for them)."""
        return f"{self.base}/lab/workspaces/{workspace}?reset&token={self.token}"

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every session (and its kernel), so the next test has the CPU."""
        for session in self.api("GET", "/api/sessions"):
            try:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            except urllib.error.HTTPError:
                pass


def _start_lab(tmp: Path, root: Path):
    token = "e2e-" + os.urandom(16).hex()
    env = lab_tool.scratch_environment(token, tmp)
    last_log = ""
    for attempt in range(3):               # a free port can be taken before the server binds it
        port = lab_tool.free_port()
        log_path = tmp / f"lab-{attempt}.log"
        # expose_app_in_browser: window.jupyterapp, so that a test opens a notebook with
        # JupyterLab's own command instead of loading the whole application again.
        cmd = lab_tool.lab_command(port, root, open_browser=False) + ["--LabApp.expose_app_in_browser=True"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).close()
                return proc, LabServer(base, token, root, log_path)
            except OSError:
                time.sleep(0.2)
        _stop(proc)
        last_log = log_path.read_text(errors="replace")
    raise RuntimeError(f"JupyterLab did not start (3 attempts); last log:\n{last_log}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server by its PID: SIGTERM (it shuts its kernels down), SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One JupyterLab server for the browser tests (of one pytest-xdist worker).

    Its root holds ``explorers/`` (``write_explorer_notebooks``) and ``student/`` (the
    student edition, built from notebooks/ by tools/make_student.py).
    """
    _sync_api()
    _require_chromium()
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    write_explorer_notebooks(root / "explorers")
    made = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"),
                           "--out", str(root / "student")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, f"make_student.py failed:\n{made.stdout}\n{made.stderr}"
    proc, server = _start_lab(tmp, root)
    try:
        yield server
    finally:
        _stop(proc)


class LabPage:
    """JupyterLab in a browser page: open a notebook, run it, read and move its widgets."""

    def __init__(self, page, server: LabServer, sync_api):
        self.page, self.server, self.expect = page, server, sync_api.expect
        # Every wait on what the page shows gets REDRAW_MS, not Playwright's 5 s default
        # for ``expect`` (a kernel on a loaded machine can take longer to answer a move).
        self.expect.set_options(timeout=REDRAW_MS)
        # The notebook on show (JupyterLab hides the panels of other tabs).
        self.panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    # ---- notebook
    def start(self, workspace: str) -> None:
        """Load JupyterLab in a new, empty workspace and wait until it has started."""
        self.page.goto(self.server.url(workspace))
        # If JupyterLab asks which kernel to use, take the one it proposes.
        dialog = self.page.locator(".jp-Dialog").filter(has_text="Select Kernel")
        self.page.add_locator_handler(
            dialog, lambda d: d.get_by_role("button", name="Select", exact=True).click())
        self.page.wait_for_function("() => window.jupyterapp !== undefined", timeout=KERNEL_READY_MS)
        self.page.evaluate("() => window.jupyterapp.restored")

    def open(self, rel: str) -> None:
        """Open notebook ``rel`` (relative to the server root) and wait for an idle kernel."""
        self.page.evaluate("rel => window.jupyterapp.commands.execute('docmanager:open', {path: rel})", rel)
        self.expect(self.panel.locator(".jp-Cell").first).to_be_visible(
            timeout=KERNEL_READY_MS)
        self.wait_idle()

    def close_all(self) -> None:
        """Close every tab of the main area without asking to save (the notebooks are
        throw-away copies)."""
        self.page.evaluate("() => { for (const w of Array.from(window.jupyterapp.shell.widgets('main')))"
                           " w.dispose(); }")

    def wait_idle(self, timeout: int = KERNEL_READY_MS) -> None:
        # The status bar names the kernel and its state; the toolbar indicator says "idle"
        # even before a kernel is attached.
        self.expect(self.page.get_by_role("button", name=f"{KERNEL_NAME} | Idle")).to_be_visible(
            timeout=timeout)

    def run_all(self, timeout: int = RUN_ALL_MS) -> None:
        """Run > Run All Cells, then wait until every code cell has run (numbered prompt)."""
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        prompts = self.panel.locator(".jp-CodeCell .jp-InputPrompt")
        self.expect(prompts.last).to_have_text(re.compile(r"\[\d+\]:"), timeout=timeout)
        texts = prompts.all_inner_texts()
        unrun = [i for i, t in enumerate(texts) if not re.fullmatch(r"\s*\[\d+\]:\s*", t)]
        assert not unrun, f"code cells {unrun} did not run (prompts: {[texts[i] for i in unrun]})"
        self.wait_idle()

    def code_cells(self):
        return self.panel.locator(".jp-CodeCell")

    def output_texts(self) -> list[str]:
        """The text of every plain-text output (stdout, results) in the notebook."""
        return self.panel.locator(".jp-OutputArea-output pre").all_inner_texts()

    # ---- widgets
    def interacts(self):
        """Every ``interactive`` widget rendered in the notebook, in order."""
        return self.panel.locator(".widget-interact")

    def interact_with(self, label: str):
        """The interactive widget that has a slider whose label matches regex ``label``."""
        return self.interacts().filter(has=self.slider_in(self.page, label))

    def slider_in(self, scope, label: str):
        """The slider in ``scope`` (the page or a widget) whose label matches regex ``label``."""
        return scope.locator(".widget-slider").filter(
            has=self.page.locator(".widget-label", has_text=re.compile(label)))

    def readout(self, widget, label: str) -> str:
        return self.slider_in(widget, label).locator(".widget-readout").inner_text().strip()

    def figure(self, widget):
        """The (last) image in the widget's output area."""
        return widget.locator(".widget-output img").last

    def figure_src(self, widget) -> str:
        img = self.figure(widget)
        self.expect(img).to_be_visible(timeout=REDRAW_MS)
        return img.get_attribute("src")

    def press_keys(self, widget, label: str, key: str, times: int) -> None:
        """Move a slider with the keyboard: focus its handle and press ``key`` ``times`` times,
        waiting after each press until the widget has drawn its new figure (each press is
        one new value, so one redraw; without the wait a screenshot or a later check could
        catch a redraw half-way)."""
        handle = self.slider_in(widget, label).locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        for _ in range(times):
            src = self.figure_src(widget)
            handle.focus()
            self.page.keyboard.press(key)
            self.wait_figure_changed(widget, src, f"pressing {key} on {label!r}")

    def drag(self, widget, label: str, dx: float) -> None:
        """Move a slider with the mouse: drag its handle ``dx`` pixels to the right, then wait
        for the new figure (the sliders send their value when the mouse is released)."""
        handle = self.slider_in(widget, label).locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        src = self.figure_src(widget)
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        self.page.mouse.move(x + dx, y, steps=8)
        self.page.mouse.up()
        self.wait_figure_changed(widget, src, f"dragging {label!r}")

    def screenshot(self, locator, path) -> None:
        """Screenshot of one element, scrolled to the top of the notebook first (an element
        cut by the notebook's scroll area comes out blank)."""
        locator.evaluate("el => el.scrollIntoView({block: 'start'})")
        locator.screenshot(path=str(path))

    def wait_figure_changed(self, widget, old_src: str, what: str = "the move") -> str:
        """Wait (up to REDRAW_MS) until the widget shows an image other than ``old_src``;
        return the new image's src. Fails naming ``what`` if it never comes."""
        img = self.figure(widget)
        try:
            self.expect(img).not_to_have_attribute("src", old_src, timeout=REDRAW_MS)
        except AssertionError:
            shot = SCREENSHOTS / "failed_redraw.png"
            SCREENSHOTS.mkdir(exist_ok=True)
            widget.screenshot(path=str(shot))
            printed = " | ".join(widget.locator(".widget-output pre").all_inner_texts())
            (SCREENSHOTS / "failed_redraw.txt").write_text(printed, encoding="utf-8")
            printed = printed[-500:]
            raise AssertionError(f"the image did not change within {REDRAW_MS / 1000:.0f} s after "
                                 f"{what} (the widget prints {printed!r}; screenshot: {shot})") from None
        self.expect(img).to_be_visible(timeout=REDRAW_MS)
        return img.get_attribute("src")

    def wait_until(self, condition, message: str, timeout: int = REDRAW_MS) -> None:
        """Poll ``condition()`` (a Python check of the page) every 100 ms until it is true;
        after ``timeout`` ms fail with ``message``."""
        deadline = time.monotonic() + timeout / 1000
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{message} (waited {timeout / 1000:.0f} s)")
            self.page.wait_for_timeout(100)


class _ConsoleRelay:
    """Sends a long-lived page's console errors and blocked requests to the current test's
    ``console``."""

    def __init__(self):
        self.current = Console()

    def watch(self, page) -> None:
        page.on("pageerror", lambda err: self.current.errors.append(f"page error: {err}"))
        page.on("console", lambda msg: msg.type == "error" and self.current.errors.append(
            f"console error: {msg.text} ({msg.location.get('url', '')})"))

    def route(self, route) -> None:
        self.current.route(route)


@pytest.fixture(scope="module")
def lab_app(lab, browser, request):
    """JupyterLab loaded once per test module in one browser page (loading it takes ~4 s;
    each test opens its notebook in it with JupyterLab's own command)."""
    sync_api = _sync_api()
    relay = _ConsoleRelay()
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.route("**/*", relay.route)
    page = context.new_page()
    relay.watch(page)
    app = LabPage(page, lab, sync_api)
    app.start(workspace="e2e-" + re.sub(r"\W", "-", request.module.__name__))
    try:
        yield app, relay
    finally:
        context.close()


@pytest.fixture
def lab_page(lab_app, console):
    """JupyterLab on the shared server, with nothing open; what the page reports goes to
    this test's ``console``. Afterwards the test's tabs are closed, its kernels shut down
    and the window set back to its size."""
    app, relay = lab_app
    relay.current = console
    try:
        yield app
    finally:
        try:
            app.close_all()
            app.page.set_viewport_size({"width": 1400, "height": 1100})
        finally:
            relay.current = Console()
            app.server.shutdown_kernels()


@pytest.fixture
def explorers_shown(widget_notebook) -> int:
    """How many explorers ``widget_notebook`` shows (from its sources)."""
    return explorer_cells(widget_notebook)


def pytest_generate_tests(metafunc):
    """``widget_notebook``: one test per course notebook that shows a widget."""
    if "widget_notebook" in metafunc.fixturenames:
        paths = widget_notebooks()
        metafunc.parametrize("widget_notebook", paths, ids=[p.stem for p in paths])
