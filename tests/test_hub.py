"""The course on a local JupyterHub, end to end: deploy/hub/ as `make hub` starts it.

Runs with ``make hub-test`` (which sets ``BN_HUB_E2E=1``, installs the ``hub`` extra
and configurable-http-proxy); skipped otherwise, so that ``make test`` stays as it is.
With ``BN_HUB_E2E=1`` a missing piece (JupyterHub, the proxy, Chromium) is a failure.

One hub for the module, started from deploy/hub/jupyterhub_config.py with its data in a
temporary folder, on free loopback ports. Then:

* three learners log in through the hub's log-in page in headless Chromium; each lands
  in JupyterLab on notebook 00 of their *own* student edition, runs it (Run All), and no
  cell fails; the warm-up exercise says "not done yet" (stubs, not solutions);
* none can reach another's server, neither with their browser session nor with their
  API token (403), while their own answers;
* a learner's edit survives a restart of their server (the copy step keeps it);
* nbgrader's exchange: the instructor releases notebook 00, each learner fetches and
  submits it from a kernel of their own server (one solves the exercise first), the
  instructor collects and autogrades: 1 point, 0, 0;
* an idle kernel is shut down by its server (the culling settings); the
  jupyterhub-idle-culler service runs;
* a kernel that allocates more than the learner's memory limit is killed (cgroup), the
  learner's server and the other learners' kernels are not (where the machine lets the
  hub create memory cgroups; skipped, with the reason, where not).

Screenshots: ``screenshots/hub_login.png``, ``screenshots/hub_lab_<user>.png``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HUB_DIR = ROOT / "deploy" / "hub"
CONFIG = HUB_DIR / "jupyterhub_config.py"
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = os.environ.get("BN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
USERS = ("alice", "bob", "carol")
PASSWORD = "hub-test-" + uuid.uuid4().hex[:8]
KERNEL_IDLE_S = 10          # the test hub culls kernels idle this long (the default is 2400)
KERNEL = "Python 3 (ipykernel)"

pytestmark = pytest.mark.skipif(os.environ.get("BN_HUB_E2E") != "1",
                                reason="the hub's end-to-end test runs with `make hub-test` (BN_HUB_E2E=1)")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """The running test hub: its address, the instructor's (admin) token, its data folder."""

    def __init__(self, base: str, token: str, data: Path, proc, log: Path):
        self.base, self.token, self.data, self.proc, self.log = base, token, data, proc, log
        self.user_tokens: dict[str, str] = {}

    def request(self, method: str, path: str, token: str | None = None, body=None):
        """(status, parsed JSON or text) of an HTTP request to the hub or a user's server."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                     headers={"Authorization": f"token {token or self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def token_for(self, user: str) -> str:
        """An API token of ``user`` (made by the instructor, an admin)."""
        if user not in self.user_tokens:
            status, body = self.request("POST", f"/hub/api/users/{user}/tokens", body={"note": "hub test"})
            assert status in (200, 201), (status, body)
            self.user_tokens[user] = body["token"]
        return self.user_tokens[user]

    def wait_server(self, user: str, timeout: float = 120) -> float:
        """Start ``user``'s server if it is not running; seconds until it answers."""
        t0 = time.monotonic()
        status, body = self.request("POST", f"/hub/api/users/{user}/server")
        assert status in (201, 202, 400), (status, body)          # 400: already running
        while time.monotonic() - t0 < timeout:
            status, body = self.request("GET", f"/hub/api/users/{user}")
            server = (body or {}).get("servers", {}).get("", {})
            if server.get("ready"):
                return time.monotonic() - t0
            time.sleep(0.3)
        raise AssertionError(f"{user}'s server did not start in {timeout} s; hub log:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


# --------------------------------------------------------------------------- a kernel over the hub

async def _execute(url: str, token: str, code: str, timeout: float) -> dict:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": session, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    result = {"stdout": "", "error": None, "died": False}
    deadline = time.monotonic() + timeout
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), max(0.1, deadline - time.monotonic()))
            if raw is None:                        # the server closed the connection: the kernel died
                result["died"] = True
                return result
            msg = json.loads(raw)
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] in ("restarting", "dead"):
                result["died"] = True
                return result
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream" and content["name"] == "stdout":
                result["stdout"] += content["text"]
            elif kind == "error":
                result["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return result
    finally:
        conn.close()


class Kernel:
    """A kernel in ``user``'s server, reached through the hub's proxy with the user's token."""

    def __init__(self, hub: Hub, user: str):
        self.hub, self.user, self.token = hub, user, hub.token_for(user)
        status, body = hub.request("POST", f"/user/{user}/api/kernels", self.token, {"name": "python3"})
        assert status == 201, (status, body)
        self.id = body["id"]

    def run(self, code: str, timeout: float = 180) -> dict:
        url = f"{self.hub.base.replace('http', 'ws', 1)}/user/{self.user}/api/kernels/{self.id}/channels"
        # In a thread of its own: Playwright's sync API keeps an event loop in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, _execute(url, self.token, code, timeout)).result()

    def check(self, code: str, timeout: float = 180) -> str:
        result = self.run(code, timeout)
        assert not result["died"] and result["error"] is None, f"{self.user}'s kernel: {result}"
        return result["stdout"]

    def state(self) -> int:
        return self.hub.request("GET", f"/user/{self.user}/api/kernels/{self.id}", self.token)[0]


# --------------------------------------------------------------------------- the hub

@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if importlib.util.find_spec("jupyterhub") is None:
        pytest.fail("JupyterHub is not installed: make hub-test installs the hub extra")
    start = _load("bn_hub_start", HUB_DIR / "start.py")
    proxy = start.find_proxy()
    if proxy is None:
        pytest.fail("configurable-http-proxy not found: make hub-test installs it "
                    "(python deploy/hub/start.py --install-only)")
    data = tmp_path_factory.mktemp("hub")
    port = _free_port()
    env = dict(os.environ, BN_HUB_DATA=str(data), BN_HUB_PROXY=proxy, BN_HUB_PASSWORD=PASSWORD,
               BN_HUB_PORT=str(port), BN_HUB_API_PORT=str(_free_port()),
               BN_HUB_PROXY_API_PORT=str(_free_port()), BN_HUB_KERNEL_IDLE=str(KERNEL_IDLE_S))
    env.pop("MPLBACKEND", None)
    jupyterhub = str(Path(sys.executable).parent / "jupyterhub")
    made = subprocess.run([jupyterhub, "token", "-f", str(CONFIG), "instructor"], cwd=data, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    log = data / "hub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([jupyterhub, "-f", str(CONFIG)], cwd=data, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    server = Hub(f"http://127.0.0.1:{port}", token, data, proc, log)
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the hub exited ({proc.returncode}):\n{server.log_tail()}")
        try:
            if server.request("GET", "/hub/api/")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() - t0 < 90, f"the hub did not answer in 90 s:\n{server.log_tail()}"
        time.sleep(0.2)
    print(f"hub up in {time.monotonic() - t0:.1f} s")
    try:
        yield server
    finally:
        proc.terminate()                       # the hub stops every server and its proxy
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM} (sudo apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def _log_in(browser, hub: Hub, user: str):
    """A browser page logged in as ``user`` through the hub's log-in form; the context's
    requests may go to this machine only."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    blocked = []

    def route(r):
        if re.match(r"^(data:|blob:|about:|https?://127\.0\.0\.1[:/])", r.request.url):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.goto(f"{hub.base}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", PASSWORD)
    if user == USERS[0]:
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "hub_login.png"))
    page.click("#login_submit")
    return context, page, blocked


def test_three_learners_log_in_and_run_notebook_00_of_their_own_student_edition(hub, browser):
    from playwright.sync_api import expect

    times, sessions = {}, {}
    for user in USERS:
        context, page, blocked = _log_in(browser, hub, user)
        sessions[user] = context, page, blocked
        t0 = time.monotonic()
        # The hub spawns the server and sends the learner to notebook 00 of their student edition.
        page.wait_for_url(re.compile(rf"/user/{user}/lab/tree/student/00_start_here\.ipynb"), timeout=120_000)
        dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
        page.add_locator_handler(dialog, lambda d: d.get_by_role("button", name="Select", exact=True).click())
        expect(page.get_by_role("button", name=f"{KERNEL} | Idle")).to_be_visible(timeout=120_000)
        times[user] = time.monotonic() - t0
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")
        expect(prompts.last).to_have_text(re.compile(r"\[\d+\]:"), timeout=180_000)
        expect(page.get_by_role("button", name=f"{KERNEL} | Idle")).to_be_visible(timeout=120_000)
        texts = prompts.all_text_contents()       # cells scrolled out of view have no inner text
        assert all(re.fullmatch(r"\s*\[\d+\]:\s*", t) for t in texts), f"{user}: unrun cells {texts}"
        errors = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                               ).all_text_contents()
        tracebacks = [t for t in errors if "Traceback" in t or "Error" in t]
        assert tracebacks == [], f"{user}: a cell of notebook 00 failed: {tracebacks[:2]}"
        out = "\n".join(panel.locator(".jp-OutputArea-output pre").all_text_contents())
        assert "every package the course needs is importable" in out, out[:2000]
        assert "standardize: not done yet" in out, f"{user}: not the student edition?\n{out[:2000]}"
        page.locator(".jp-Cell").first.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(SCREENSHOTS / f"hub_lab_{user}.png"))
        own = hub.data / "users" / user / "student" / "00_start_here.ipynb"
        assert "raise NotImplementedError" in own.read_text(encoding="utf-8")
    print("from log-in to an idle kernel on notebook 00:", {u: f"{t:.1f} s" for u, t in times.items()})
    # With all three servers running: each learner's browser session reaches their own
    # server only (the API answers 403; the page goes to the hub, which refuses).
    for user, (context, page, blocked) in sessions.items():
        assert page.request.get(f"{hub.base}/user/{user}/api/contents/student").status == 200
        for other in USERS:
            if other == user:
                continue
            response = page.request.get(f"{hub.base}/user/{other}/api/contents/student")
            assert response.status == 403, f"{user} reached {other}'s server ({response.status})"
            response = page.goto(f"{hub.base}/user/{other}/lab")
            assert response.status == 403, f"{user} opened {other}'s JupyterLab ({response.status})"
        assert blocked == [], f"{user}'s page tried to load from outside this machine: {blocked}"
        context.close()


def test_no_learner_reaches_another_learners_server_with_their_token(hub):
    for user in USERS:
        hub.wait_server(user)
    for user in USERS:
        token = hub.token_for(user)
        for other in USERS:
            status, _ = hub.request("GET", f"/user/{other}/api/contents", token)
            assert status == (200 if other == user else 403), (user, other, status)


def test_a_learners_edit_survives_a_restart_of_their_server(hub):
    user, path = "bob", "/user/bob/api/contents/student/03_batchnorm_forward.ipynb"
    token = hub.token_for(user)
    hub.wait_server(user)
    status, model = hub.request("GET", path, token)
    assert status == 200, status
    nb = model["content"]
    nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": "bob's own notes"})
    status, _ = hub.request("PUT", path, token, {"type": "notebook", "format": "json", "content": nb})
    assert status == 200, status
    status, _ = hub.request("DELETE", "/hub/api/users/bob/server")
    assert status in (202, 204), status
    while hub.request("GET", "/hub/api/users/bob")[1]["servers"]:
        time.sleep(0.3)
    hub.wait_server(user)
    status, model = hub.request("GET", path, token)
    assert status == 200 and model["content"]["cells"][0]["source"] == "bob's own notes"
    # the notebooks bob did not touch are the course's, fresh
    other = "/user/bob/api/contents/student/04_batchnorm_backward.ipynb"
    status, untouched = hub.request("GET", other, token)
    assert status == 200 and untouched["content"]["cells"][0]["source"] != "bob's own notes"


def _nbgrader(hub: Hub, course: Path, *args: str) -> str:
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(hub.data / "jupyter_config"))
    env.pop("MPLBACKEND", None)
    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args,
                           f"--Exchange.root={hub.data / 'exchange'}"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_nbgrader_release_fetch_submit_collect_autograde(hub):
    assignment = "00_start_here"
    course = hub.data / "course"
    built = subprocess.run([sys.executable, str(ROOT / "tools" / "nbgrader_course.py"),
                            "--course", str(course), assignment],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    _nbgrader(hub, course, "release_assignment", assignment, "--force")
    solution = next(cell["source"] for cell in json.loads(
        (course / "source" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))["cells"]
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "standardize")
    for user in USERS:
        hub.wait_server(user)
        kernel = Kernel(hub, user)
        # In the learner's own server, as the learner: fetch, (solve), submit.
        out = kernel.check(f"import subprocess\nr = subprocess.run(['nbgrader', 'fetch_assignment', "
                           f"'{assignment}'], capture_output=True, text=True)\n"
                           "print(r.returncode, r.stderr[-800:])")
        assert out.startswith("0"), f"{user}: fetch failed: {out}"
        if user == "alice":
            kernel.check(
                "import json\n"
                f"p = '{assignment}/{assignment}.ipynb'\n"
                "nb = json.load(open(p, encoding='utf-8'))\n"
                "for cell in nb['cells']:\n"
                "    if cell.get('metadata', {}).get('nbgrader', {}).get('grade_id') == 'standardize':\n"
                f"        cell['source'] = {solution!r}\n"
                "json.dump(nb, open(p, 'w', encoding='utf-8'))\n")
        out = kernel.check(f"r = subprocess.run(['nbgrader', 'submit', '{assignment}'], capture_output=True, "
                           f"text=True)\nprint(r.returncode, r.stderr[-800:])")
        assert out.startswith("0"), f"{user}: submit failed: {out}"
    _nbgrader(hub, course, "collect", assignment)
    assert sorted(p.name for p in (course / "submitted").iterdir()) == sorted(USERS)
    _nbgrader(hub, course, "autograde", assignment, "--force")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {user: gb.find_submission(assignment, user).score for user in USERS}
        max_score = gb.find_assignment(assignment).max_score
    assert max_score >= 1
    assert scores == {"alice": max_score, "bob": 0.0, "carol": 0.0}, scores


def test_an_idle_kernel_is_shut_down_by_its_server(hub):
    hub.wait_server("carol")
    kernel = Kernel(hub, "carol")
    assert kernel.check("print(1 + 1)").strip() == "2"
    deadline = time.monotonic() + KERNEL_IDLE_S + 30
    while kernel.state() == 200:
        assert time.monotonic() < deadline, f"a kernel idle for {KERNEL_IDLE_S + 30} s was not culled"
        time.sleep(1)
    assert kernel.state() == 404


def test_the_idle_culler_service_runs(hub):
    status, services = hub.request("GET", "/hub/api/services")
    assert status == 200, status
    culler = services["idle-culler"]
    assert "jupyterhub_idle_culler" in " ".join(culler["command"])
    assert culler["pid"] > 0
    os.kill(culler["pid"], 0)                   # the process exists


def test_a_kernel_over_the_memory_limit_is_killed_and_nobody_else(hub):
    spawner = _load("bn_course_spawner", HUB_DIR / "course_spawner.py")
    own = spawner._own_cgroups(Path("/proc/self/cgroup").read_text())
    for user in ("alice", "carol"):
        hub.wait_server(user)
    if "v1" in own:
        group = spawner.CGROUP_ROOT / "memory" / own["v1"].lstrip("/") / f"{spawner.PREFIX}carol"
        limit_file = "memory.limit_in_bytes"
    else:
        group = spawner.CGROUP_ROOT / own.get("v2", "/").lstrip("/") / f"{spawner.PREFIX}carol"
        limit_file = "memory.max"
    if not (group / limit_file).exists():
        pytest.skip(f"this machine does not let the hub create memory cgroups ({group}); "
                    "the limit is not enforced here (deploy/README.md)")
    limit = int((group / limit_file).read_text())
    assert limit == 2**30, f"carol's limit is {limit} bytes, not the configured 1G"
    assert (group / "cgroup.procs").read_text().split(), "carol's server is not in her memory cgroup"
    bystander, greedy = Kernel(hub, "alice"), Kernel(hub, "carol")
    bystander.check("mine = 'still here'")
    greedy.check("mine = 'still here'")
    result = greedy.run("import numpy as np\nbig = np.ones(int(1.3 * 2**30) // 8)\nprint('allocated')", 120)
    assert result["died"] or result["error"], f"a 1.3 GB allocation under a 1 GB limit went through: {result}"
    deadline = time.monotonic() + 60
    while True:                                 # the server restarts the killed kernel
        probe = greedy.run("print(mine)", 30)
        if probe["error"] and "NameError" in probe["error"]:
            break
        assert time.monotonic() < deadline, f"carol's kernel was not restarted: {probe}"
        time.sleep(1)
    assert bystander.check("print(mine)").strip() == "still here"
    assert hub.request("GET", "/user/carol/api/status", hub.token_for("carol"))[0] == 200
