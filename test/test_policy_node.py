"""policy_node over real DDS, in its own process: image + task -> action text, LLaRA's re-query loop, its refusals.

The fake robot (ros_helpers.Robot) publishes a simulator frame, its camera_info
and joint states; this test plays the action node's part on ``step_done``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import Robot, params_file, start_node, stop_nodes, wait_for
from sensor_msgs.msg import Image
from std_msgs.msg import String

from llara_core.apps.loop import PolicyLoop
from llara_core.datasets.reader import read_dataset
from llara_core.language.actions import parse_actions
from llara_core.planning import StepDone
from llara_ros.topics import COMMAND, LATEST, TASK

pytestmark = pytest.mark.ros


class Watch:
    def __init__(self, robot: Robot) -> None:
        self.answers: list[str] = []
        self.annotated: list[Image] = []
        self.diag: list[dict[str, str]] = []
        n = robot.node
        n.create_subscription(String, "action_text", lambda m: self.answers.append(m.data), COMMAND)
        n.create_subscription(Image, "annotated_image", self.annotated.append, LATEST)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._diag, COMMAND)
        self.task = n.create_publisher(String, "/task", TASK)
        self.done = n.create_publisher(String, "step_done", COMMAND)

    def _diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith("policy_node"):
                self.diag.append({"level": st.level, "message": st.message, **{kv.key: kv.value for kv in st.values}})


@pytest.fixture
def robot():
    rclpy.init()
    r = Robot(seed=0)
    yield r
    r.close()
    rclpy.shutdown()


def test_task_and_image_give_an_answer_then_a_requery_with_the_finished_step(robot, tmp_path):
    w = Watch(robot)
    proc = start_node("policy_node", params_file(tmp_path, "p", node="policy_node", max_steps=2), tmp_path / "p.log")
    try:
        assert wait_for(lambda: w.diag, 60), (tmp_path / "p.log").read_text()[-2000:]
        w.task.publish(String(data=robot.task.instruction))
        first = wait_for(lambda: w.answers, 30)
        assert first and parse_actions(first[0]).ok, first
        assert (
            wait_for(lambda: w.annotated, 10) and w.annotated[-1].width == 448
        )  # the frame, upscaled, with its points
        w.done.publish(String(data=StepDone(first[0], True).to_json()))
        assert wait_for(lambda: len(w.answers) >= 2, 30), "no re-query after a successful step"
        prompt = wait_for(lambda: next((d["last_prompt"] for d in reversed(w.diag) if "You have finished" in
                                     d.get("last_prompt", "")), None), 10)  # fmt: skip
        step1 = parse_actions(first[0]).steps[0]
        assert prompt and f"({step1.pick[0]:.3f}," in prompt  # LLaRA's history carries the executed step
        w.done.publish(String(data=StepDone(w.answers[1], True).to_json()))
        time.sleep(2.0)
        assert len(w.answers) == 2  # max_steps reached: no third query
    finally:
        stop_nodes(proc)


def test_refusals_keep_the_node_alive_and_publish_no_action(robot, tmp_path):
    w = Watch(robot)
    robot.send_info = False
    proc = start_node("policy_node", params_file(tmp_path, "p", node="policy_node", max_image_age_s=0.5),
                      tmp_path / "p.log")  # fmt: skip
    try:
        assert wait_for(lambda: w.diag, 60)
        w.task.publish(String(data=robot.task.instruction))
        assert wait_for(lambda: any("no camera_info" in d["message"] and d["level"] == b"\x02" for d in w.diag), 10), (
            w.diag[-3:]
        )
        robot.send_camera = False
        time.sleep(2.0)  # the newest frame is now older than max_image_age_s (with room for a slow machine)
        robot.send_info = True
        assert wait_for(lambda: any("stale image" in d["message"] for d in w.diag), 10)
        assert w.answers == []
        w.task.publish(String(data=""))  # cleared: nothing is queried when the camera comes back
        robot.send_camera = True
        time.sleep(2.0)
        assert w.answers == [] and proc.poll() is None
    finally:
        stop_nodes(proc)


def test_a_model_that_does_not_load_stops_the_node_at_start_with_the_reason(tmp_path):
    r = subprocess.run([sys.executable, "-m", "llara_ros.policy_node", "--ros-args", "-p",
                        f"model:={tmp_path / 'missing'}"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_garbage_answers_are_published_as_text_and_reported(robot, tmp_path):
    """A random, untrained model: its answers are published verbatim (the action node refuses them) and counted."""
    from test_model import SMALL

    from llara_core.model.tiny import build_tiny_model
    from llara_core.sim.demonstrations import DemosConfig, generate_demos

    generate_demos(DemosConfig(out=str(tmp_path / "ds"), episodes=1, seed=5, kinds=("inbc",)), False)
    texts = [t["value"] for r in read_dataset(tmp_path / "ds") for t in r["conversations"]]
    model = build_tiny_model(tmp_path / "random", texts, SMALL)
    w = Watch(robot)
    proc = start_node("policy_node", params_file(tmp_path, "p", node="policy_node", model=str(model),
                                                 max_new_tokens=24), tmp_path / "p.log")  # fmt: skip
    try:
        assert wait_for(lambda: w.diag, 60)
        w.task.publish(String(data=robot.task.instruction))
        got = wait_for(lambda: w.answers, 30)
        assert got and not parse_actions(got[0]).ok
        assert wait_for(lambda: any(d.get("unparseable_answers") == "1" and d["level"] == b"\x02" for d in w.diag), 10)
        assert proc.poll() is None
    finally:
        stop_nodes(proc)


def test_with_backend_openai_the_node_acts_through_the_server_and_publishes_nothing_once_it_is_gone(robot, tmp_path):
    from serve_helpers import free_port, start_server

    port = free_port()
    server = start_server(port, log=tmp_path / "serve.log")
    w = Watch(robot)
    params = params_file(tmp_path, "p", node="policy_node", backend="openai",
                         remote={"base_url": f"http://127.0.0.1:{port}/v1", "timeout_s": 2.0, "retries": 0})  # fmt: skip
    proc = start_node("policy_node", params, tmp_path / "p.log")
    try:
        assert wait_for(lambda: w.diag, 60), (tmp_path / "p.log").read_text()[-2000:]
        w.task.publish(String(data=robot.task.instruction))
        first = wait_for(lambda: w.answers, 30)
        assert first and parse_actions(first[0]).ok, first
        server.kill()  # the GPU server goes away mid-episode
        server.wait()
        w.done.publish(String(data=StepDone(first[0], True).to_json()))  # the re-query now fails
        assert wait_for(lambda: any("RemoteError" in d["message"] and d["level"] == b"\x02" for d in w.diag), 30), (
            w.diag[-2:]
        )
        time.sleep(1.0)
        assert w.answers == first and proc.poll() is None  # no action from a failed query; the node lives
        assert "no action: model error: RemoteError" in (tmp_path / "p.log").read_text()
    finally:
        stop_nodes(proc)
        if server.poll() is None:
            server.kill()


def test_an_answer_to_a_task_cleared_meanwhile_is_dropped():
    loop = PolicyLoop(max_steps=3)
    loop.on_task("put the red block into the bowl", now=0.0)
    assert loop.wants_query(frame_time=0.1)
    gen = loop.start_query()
    loop.on_task("", now=0.2)  # cleared while the model runs
    assert not loop.answered(gen, "Step 1: …", 0.0) and loop.phase == "idle"
    loop.on_task("put the blue bar onto the pad", now=0.3)
    assert not loop.wants_query(frame_time=0.25)  # only a frame taken after the task counts
    gen = loop.start_query()
    assert loop.answered(gen, "x", 0.0)
    loop.on_step_done(StepDone("x", False, "busy"), now=1.0)
    assert loop.phase == "want_query" and loop.failures == 1 and not loop.wants_query(1.1)  # settle first
    assert loop.wants_query(1.4)


def test_the_closed_loop_over_dds_records_converts_and_acts_on_a_private_graph(tmp_path):
    """make demo at two episodes: sim_node -> policy_node -> action_node -> sim_node, recorded and converted.

    Beside it, a second ROS graph on this session's domain (what the environment names: a lab's robot would be
    there) publishes estop, a task and action texts and listens to every stream the demo publishes: the demo
    completes undisturbed, and the listener — proven alive by its own messages — hears nothing of it.
    """
    import json
    import signal

    probe = subprocess.Popen([sys.executable, str(Path(__file__).parent / "dds_probe.py")], stdout=subprocess.PIPE,
                             text=True, env=os.environ.copy())  # fmt: skip
    try:
        assert probe.stdout is not None and probe.stdout.readline().strip() == "alive"
        r = subprocess.run([sys.executable, "-m", "llara_ros.dds_demo", "--episodes", "2", "--out", str(tmp_path / "demo"),
                            "--real-time-factor", "3"], capture_output=True, text=True, timeout=600)  # fmt: skip
    finally:
        probe.send_signal(signal.SIGINT)
        heard = json.loads(probe.communicate(timeout=30)[0].strip().splitlines()[-1])
    first = r.stdout.splitlines()[0]
    assert "private ROS graph" in first and f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}," not in first, first
    assert "LOCALHOST" in first
    assert "DEMO COMPLETE" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert heard.pop("/llara_probe", 0) > 0 and heard == {}, heard  # alive, and not one message from the demo

    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert [e["event"] for e in metrics["episodes"]] != [None, None]  # every episode ended with an event
    assert all(e["event"] in ("success", "failure", "timeout") for e in metrics["episodes"])
    assert len(list((tmp_path / "demo").glob("episode_*.gif"))) == 2
    assert len(list((tmp_path / "demo" / "bags").iterdir())) == 2

    # the data loop: the bags hold the simulator's object boxes (as vision_msgs detections, also in a venv), so the
    # shipped conversion config gives object names, D-inBC and the box-based auxiliary tasks; then finetune + act
    from llara_core.datasets.reader import read_dataset

    records = read_dataset(tmp_path / "demo" / "dataset")
    kinds = {r["task"] for r in records}
    assert {"inbc", "d_inbc", "localization", "detection"} <= kinds, kinds
    named = 0
    for r in (r for r in records if r["task"] == "inbc"):
        prompt, answer = r["conversations"][0]["value"], r["conversations"][1]["value"]
        if "<p>" not in answer:  # the recorded grasp fell outside every box (the model's pick, as executed): "object"
            continue
        name = answer.split("<p>")[1].split("</p>")[0]  # the object under the pick point, from the detections
        assert name in prompt, (name, prompt)
        named += 1
    assert named >= 1, [r["conversations"][1]["value"] for r in records if r["task"] == "inbc"]
    ft = tmp_path / "ft"
    cli = [sys.executable, "-m", "llara_core.apps.cli"]
    r = subprocess.run([*cli, "finetune", str(Path(__file__).resolve().parents[1] / "models" / "llara-tiny-sim"), str(tmp_path / "demo" / "dataset"),
                        "--out", str(ft), "--max-steps", "2", "--batch-size", "2", "--no-progress"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([*cli, "eval", "--model", str(ft), "--task-family", "l1_placement", "--episodes", "1"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0 and "| l1_placement |" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_the_loop_stops_waiting_for_a_step_done_that_never_comes(robot, tmp_path):
    """No action node answers: after step_timeout_s the step counts as failed and the policy re-queries, then stops."""
    w = Watch(robot)
    params = params_file(tmp_path, "p", node="policy_node", step_timeout_s=1.5, max_failures=2, on_failure="requery")
    proc = start_node("policy_node", params, tmp_path / "p.log")
    try:
        assert wait_for(lambda: w.diag, 60), (tmp_path / "p.log").read_text()[-2000:]
        w.task.publish(String(data=robot.task.instruction))
        assert wait_for(lambda: w.answers, 30), "no first answer"
        assert wait_for(lambda: len(w.answers) >= 2, 20), "still waiting for a step_done after step_timeout_s"
        assert wait_for(lambda: any(d.get("phase") == "done" for d in w.diag), 20), w.diag[-1:]
        assert "no step_done from the action node within 1.5 s" in (tmp_path / "p.log").read_text()
        time.sleep(3.0)
        assert len(w.answers) == 2 and proc.poll() is None  # max_failures reached: it stopped, it did not hang
    finally:
        stop_nodes(proc)


def test_policy_loop_timeout_counts_as_a_failed_step():
    loop = PolicyLoop(on_failure="stop", step_timeout_s=5.0)
    loop.on_task("put the block in the bowl", now=0.0)
    gen = loop.start_query()
    assert loop.answered(gen, "Step 1: …", now=1.0)
    assert loop.check_timeout(5.9) is None and loop.phase == "waiting_step"
    done = loop.check_timeout(6.1)
    assert done is not None and "within 5 s" in done.reason and loop.phase == "done"
    assert loop.check_timeout(100.0) is None  # once: it is not waiting any more
