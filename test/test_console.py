"""The operator console in a real browser: headless Chromium against sim_node + policy_node + action_node +
console_node over DDS (config/console_demo.yaml: approval on), each node its own process.

The browser clicks what an operator clicks — set task, Approve, Reject, E-STOP,
release, teach by two clicks — and the test checks the robot side (the
simulator's joint states, /step_done) as well as the page. Screenshots of each
state are saved in the test's temporary folder (``pytest --basetemp=DIR`` keeps
them). Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium``
package (``make test`` installs them where it can; the test fails, naming what is
missing, where they are not).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from ros_helpers import until
from serve_helpers import free_port

from llara_core.apps.console import ConsoleConfig, teach_step
from llara_core.language.actions import parse_actions
from llara_core.sim.expert import expert_answers
from llara_core.sim.tasks import make_task
from llara_ros import bringup

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
SHOTS = {}


def _browser():
    missing = [what for what, ok in (("chromium (apt install chromium)", shutil.which("chromium")),
                                     ("chromedriver (apt install chromium-driver)", shutil.which("chromedriver")))
               if not ok]  # fmt: skip
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -r requirements-dev.txt)")
    if missing:
        pytest.fail(f"the console's browser tests need {', '.join(missing)}; `make test` installs them as root")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


class Arm:
    """The simulator's joint states and every step_done, seen from this process."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from llara_ros.loop_client import LoopClient
        from llara_ros.topics import COMMAND, SENSOR

        rclpy.init()
        self.node = rclpy.create_node("console_test")
        self.q: np.ndarray | None = None
        self.done: list[dict] = []
        self.node.create_subscription(JointState, "/joint_states", self._q, SENSOR)
        self.node.create_subscription(String, "/step_done", lambda m: self.done.append(json.loads(m.data)), COMMAND)
        self.client = LoopClient(self.node)  # the simulator's ~/reset
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        threading.Thread(target=self.ex.spin, daemon=True).start()

    def _q(self, msg) -> None:
        self.q = np.asarray(msg.position, float)

    def motion(self, window: float = 0.5) -> float:
        """Largest joint change over ``window`` seconds (rad)."""
        a = None if self.q is None else self.q.copy()
        time.sleep(window)
        return float("nan") if a is None or self.q is None else float(np.max(np.abs(self.q - a)))

    def close(self) -> None:
        import rclpy

        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    work = tmp_path_factory.mktemp("console")
    params = yaml.safe_load((ROOT / "config" / "console_demo.yaml").read_text())
    port = free_port()
    params["console_node"]["ros__parameters"]["port"] = port
    params["sim_node"]["ros__parameters"]["real_time_factor"] = 1.0
    params["recorder_node"]["ros__parameters"]["output_dir"] = str(work / "bags")
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    procs = bringup.start(work / "params.yaml", log_dir=work / "logs")
    arm = Arm()
    driver = _browser()
    try:
        url = f"http://127.0.0.1:{port}/"
        end = time.monotonic() + 90
        while time.monotonic() < end:
            try:
                urllib.request.urlopen(url + "api/state", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        driver.get(url)
        yield SimpleNamespace(driver=driver, arm=arm, url=url, work=work)
    finally:
        driver.quit()
        arm.close()
        codes = bringup.stop(procs)
        logs = "".join((work / "logs" / f"{n}.log").read_text()[-1500:] for n in procs)
        assert all(c == 0 for c in codes.values()), (codes, logs)
        assert "Traceback" not in logs, logs


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def _shot(driver, work: Path, name: str) -> None:
    path = work / f"console-{name}.png"
    driver.save_screenshot(str(path))
    SHOTS[name] = path


def _set_task(driver, text: str) -> None:
    box = driver.find_element("id", "task")
    box.clear()
    box.send_keys(text)
    driver.find_element("id", "settask").click()


def _pending(driver) -> bool:
    return driver.find_element("id", "approve").is_enabled()


def _quiet(driver) -> None:
    """No task, no plan waiting, no e-stop: what the previous test left (a re-query after a rejection) is cleared."""
    _set_task(driver, "")
    end = time.monotonic() + 20
    calm_since = time.monotonic()
    while time.monotonic() < end and time.monotonic() - calm_since < 1.5:
        if _pending(driver):
            driver.find_element("id", "reject").click()
            calm_since = time.monotonic()
        time.sleep(0.2)
    if "E-STOPPED" in _text(driver, "estopstate"):
        driver.find_element("id", "release").click()
        driver.switch_to.alert.accept()


def test_the_page_shows_live_frames_the_answer_and_the_states(loop):
    driver, work = loop.driver, loop.work
    first = int(until(lambda: int(_text(driver, "seq") or 0) > 0 and _text(driver, "seq"), 60, "a frame"))
    until(lambda: int(_text(driver, "seq")) > first + 3, 10, "the view to change")
    assert driver.execute_script("return document.getElementById('frame').naturalWidth") == 224
    until(lambda: "active" in _text(driver, "action"), 60, "the action node to be active")
    assert _text(driver, "mode") == "LIVE: joint_trajectory"
    until(lambda: _pending(driver), 90, "the model's answer to wait for approval")  # the sim's first task
    assert "Pick up" in _text(driver, "answer") and "parses" in _text(driver, "parse")
    until(lambda: "model p50" in _text(driver, "latency"), 5, "the model's latency")
    _shot(driver, work, "pending")


def test_approve_executes_the_pending_plan_and_reject_moves_nothing(loop):
    driver, arm, work = loop.driver, loop.arm, loop.work
    if not _pending(driver):  # (the sim's first task gave one in the test before)
        _quiet(driver)
        _set_task(driver, "put the green block onto the pad")
        until(lambda: _pending(driver), 90, "a plan to approve")
    n = len(arm.done)
    driver.find_element("id", "approve").click()
    until(lambda: arm.motion(0.3) > 1e-3, 10, "the arm to move after Approve")
    done = until(lambda: arm.done[n:], 60, "the approved step's step_done")[0]
    assert done["ok"], done
    until(lambda: "done" in _text(driver, "steps"), 5, "the step in the page's history")
    _shot(driver, work, "approved")
    _set_task(driver, "put the green block onto the pad")  # the next episode's task, from the page's task box
    until(lambda: _pending(driver), 90, "the next plan")
    n = len(arm.done)
    driver.find_element("id", "reject").click()
    done = until(lambda: arm.done[n:], 10, "the rejected step's step_done")[0]
    assert not done["ok"] and done["reason"] == "rejected by the operator", done
    assert arm.motion(1.0) < 1e-3  # nothing moved
    until(lambda: "rejected by the operator" in _text(driver, "steps"), 5, "the rejection in the page's history")


def test_estop_stops_a_motion_and_refuses_actions_until_released(loop):
    driver, arm, work = loop.driver, loop.arm, loop.work
    _quiet(driver)
    _set_task(driver, "put the green block onto the pad")
    until(lambda: _pending(driver), 90, "a plan to approve")
    driver.find_element("id", "approve").click()
    until(lambda: arm.motion(0.2) > 1e-3, 10, "the arm to move")
    n = len(arm.done)
    driver.find_element("id", "estop").click()
    time.sleep(0.5)
    assert arm.motion(0.5) < 1e-3, "the arm still moves 0.5 s after E-STOP"
    stopped = until(lambda: [d for d in arm.done[n:] if "estop" in d["reason"]], 5, "the stopped step's step_done")
    assert not stopped[0]["ok"], stopped
    until(lambda: "E-STOPPED" in _text(driver, "estopstate"), 5, "the page to show the e-stop")
    _shot(driver, work, "estop")
    n = len(arm.done)
    _set_task(driver, "put the green block onto the pad")  # the model answers; the action node must refuse
    until(lambda: [d for d in arm.done[n:] if "estop" in d["reason"]], 90, "an action refused under e-stop")
    assert not any(d["ok"] for d in arm.done[n:]), arm.done[n:]  # nothing executed while e-stopped
    assert arm.motion(0.5) < 1e-3
    driver.find_element("id", "release").click()
    driver.switch_to.alert.accept()  # the deliberate release: a confirmation
    until(lambda: "E-STOPPED" not in _text(driver, "estopstate"), 5, "the release")
    _set_task(driver, "")


def test_teach_by_clicking_records_an_episode_that_converts_into_the_taught_inbc_answer(loop):
    from selenium.webdriver.common.action_chains import ActionChains

    from llara_core.datasets.bags import BagOptions
    from llara_core.datasets.convert import ConversionConfig, convert_bags
    from llara_core.datasets.reader import read_dataset

    driver, arm, work = loop.driver, loop.arm, loop.work
    seed = arm.client.reset()["seed"]  # a fresh scene; the operator teaches the expert's first step in it
    time.sleep(1.0)
    _quiet(driver)  # the model may have answered the new scene's task before teach mode holds it
    driver.find_element("id", "teach").click()  # teach mode: the policy is held
    until(lambda: "teach mode" in _text(driver, "notice"), 5, "teach mode")
    instruction = make_task("l1_placement", seed).instruction
    driver.find_element("id", "recstart").click()
    until(lambda: "episode" in _text(driver, "notice") and "bags" in _text(driver, "notice"), 10,
           lambda: f"the recorder to start, not {_text(driver, 'notice')!r}")  # fmt: skip
    _set_task(driver, instruction)  # recorded as the demonstration's instruction; the model stays out
    time.sleep(1.5)
    assert not _pending(driver), "the model answered while the operator teaches"
    img = driver.find_element("id", "frame")
    shown = img.size["width"]
    (expert,) = parse_actions(expert_answers("l1_placement", seed)[0]).steps
    # the pixels whose centres are nearest the expert's points, on the 224x224 frame
    picks = {name: tuple(round(c * 224 - 0.5) for c in xy) for name, xy in
             (("pick", expert.pick), ("place", expert.place))}  # fmt: skip

    def click(u: int, v: int) -> None:  # offsets from the element's centre, to the middle of pixel (u, v)
        scale = shown / 224
        ActionChains(driver).move_to_element_with_offset(img, int((u + 0.5) * scale - shown / 2),
                                                         int((v + 0.5) * scale - img.size["height"] / 2)).click().perform()  # fmt: skip

    click(*picks["pick"])
    click(*picks["place"])
    want = teach_step(picks["pick"], picks["place"], (224, 224))
    shown_text = lambda: " ".join(_text(driver, "teachtext").split())  # noqa: E731  (a browser folds spaces)
    until(lambda: shown_text() == " ".join(want.split()), 5,
           lambda: f"the taught text {want!r}, not {shown_text()!r}")  # fmt: skip
    (step,) = parse_actions(want).steps
    for got, (u, v) in ((step.pick, picks["pick"]), (step.place, picks["place"])):
        assert got == (round((u + 0.5) / 224, 3), round((v + 0.5) / 224, 3))  # the project's pixel convention
    n = len(arm.done)
    driver.find_element("id", "teachsend").click()
    until(lambda: _pending(driver), 10, "the taught step to wait for approval")
    _shot(driver, work, "teach")
    driver.find_element("id", "approve").click()
    done = until(lambda: arm.done[n:], 60, "the taught step's step_done")[0]
    assert done["step"] == want and done["ok"], done
    time.sleep(1.0)  # the arm back up, recorded
    driver.find_element("id", "marksuccess").click()
    until(lambda: "success" in _text(driver, "notice").lower() or "marked" in _text(driver, "notice").lower(), 5,
           lambda: f"the mark, not {_text(driver, 'notice')!r}")  # fmt: skip
    driver.find_element("id", "recstop").click()
    time.sleep(1.0)
    driver.find_element("id", "teach").click()  # teach mode off
    bags = sorted(p for p in (work / "bags").iterdir() if p.is_dir())
    assert len(bags) == 1, bags
    pose = yaml.safe_load((ROOT / "config" / "console_demo.yaml").read_text())["action_node"]["ros__parameters"]
    cfg = ConversionConfig(kinds=("inbc",), bag=BagOptions(camera_pose=tuple(pose["camera_pose"])))
    report = convert_bags(bags, work / "taught_ds", cfg, progress=False)
    assert report["skipped"] == [] and report["samples"]["inbc"] >= 1, report
    (rec,) = [r for r in read_dataset(work / "taught_ds") if r["id"].endswith("/inbc/0000")]
    assert instruction in rec["conversations"][0]["value"]
    (learned,) = parse_actions(rec["conversations"][1]["value"]).steps[:1]
    # the inBC answer is the taught step, as the arm did it (the grasp is refined onto the object's centre)
    assert np.allclose(learned.pick, step.pick, atol=0.03) and np.allclose(learned.place, step.place, atol=0.03), (
        learned,
        step,
    )


def test_a_token_console_refuses_changes_without_it_and_bad_input_is_4xx(loop, tmp_path):
    url = loop.url
    with pytest.raises(ValueError, match="token_env"):
        ConsoleConfig(host="0.0.0.0")
    os.environ["LLARA_TEST_CONSOLE_TOKEN"] = "tok-123"
    port = free_port()
    params = tmp_path / "console.yaml"
    params.write_text(yaml.safe_dump({"console_node": {"ros__parameters": {
        "port": port, "token_env": "LLARA_TEST_CONSOLE_TOKEN"}}}))  # fmt: skip
    procs = bringup.start(params, log_dir=tmp_path)
    base = f"http://127.0.0.1:{port}"

    def post(path: str, body: bytes | dict, token: str | None = None) -> tuple[int, dict]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
        req = urllib.request.Request(base + path, data=raw, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    try:
        until(lambda: _ok(base + "/api/state"), 30, "the token console")
        for path, body in (("/api/task", {"task": "x"}), ("/api/approve", {}), ("/api/release", {"confirm": True}),
                           ("/api/teach", {"pick": [1, 1], "place": [2, 2]}), ("/api/record/start", {})):  # fmt: skip
            code, got = post(path, body)
            assert code == 401 and "token" in got["error"], (path, code, got)
        assert post("/api/task", {"task": "x"}, "wrong")[0] == 401
        assert post("/api/task", {"task": ""}, "tok-123")[0] == 200
        assert post("/api/estop", {})[0] == 200  # anyone may stop the arm
        assert post("/api/release", {"confirm": True}, "tok-123")[0] == 200
        bad = {
            "task of 100 kB": ("/api/task", {"task": "x" * 100_000}, 413),
            "task not a string": ("/api/task", {"task": 3}, 400),
            "malformed JSON": ("/api/task", b"{nope", 400),
            "release without confirm": ("/api/release", {}, 400),
            "teach without a frame yet or outside": ("/api/teach", {"pick": [500, 5], "place": [2, 2]}, None),
            "teach not numbers": ("/api/teach", {"pick": ["a", 1], "place": [2, 2]}, None),
            "mark not a bool": ("/api/mark", {"success": "yes"}, 400),
            "unknown recording action": ("/api/record/pause", {}, 404),
        }
        for name, (path, body, status) in bad.items():
            code, got = post(path, body, "tok-123")
            assert (code in (400, 409) if status is None else code == status) and not got.get("ok"), (name, code, got)
    finally:
        bringup.stop(procs)
    # the same bad teach requests on the live console (it has frames): outside the image is a 400
    req = urllib.request.Request(url + "api/teach", data=json.dumps({"pick": [500, 5], "place": [2, 2]}).encode(),
                                 method="POST", headers={"content-type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400 and "outside the 224x224 image" in json.loads(err.value.read())["error"]


def _ok(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except (urllib.error.URLError, ConnectionError):
        return False
