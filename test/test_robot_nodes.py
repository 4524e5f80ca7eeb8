"""action_node and sim_node over real DDS, each in its own process: the arm does what the text says, or nothing.

A spy in this process subscribes to every command topic (the joint trajectory
controller's and the gripper's); each refusal path asserts that the spy saw no
command at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_helpers import GOOD_STEP, params_file, start_node, stop_nodes, wait_ready
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from llara_core.language.actions import ActionStep, render_step
from llara_core.planning import StepDone
from llara_core.sim.arm import HOME_Q
from llara_core.sim.expert import expert_answers

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
GOOD = GOOD_STEP


def test_every_refusal_commands_nothing(robot, tmp_path):
    # max_image_age_s leaves room for a loaded CI machine (the fake camera publishes at 20 Hz from this process)
    proc = start_node("action_node", params_file(tmp_path, "strict", partial="refuse", max_image_age_s=2.0,
                                         joint_trajectory={"arrival_timeout_s": 30.0}), tmp_path / "action.log")  # fmt: skip
    try:
        robot.send_info = False
        wait_ready(robot)
        assert "camera_info" in robot.client.send(GOOD).reason
        robot.send_info = True
        time.sleep(0.5)
        cases = {
            "unparseable": ("I cannot see the block.", "answer not executable"),
            "partly invalid": (GOOD + "\nStep 2: Pick up the object at <b>(0.2, 1.3)</b>", "truncated"),
            "out of range": (GOOD.replace("0.450,  0.450", "1.450,  0.450"), "out_of_range"),
            "outside workspace": (render_step(ActionStep((0.45, 0.02), (0.55, 0.6)), 1), "outside the workspace"),
            "unreachable": (render_step(ActionStep((0.5, 0.996), (0.55, 0.6)), 1), "not reachable"),
        }
        for name, (text, why) in cases.items():
            done = robot.client.send(text, timeout=20)
            assert done is not None and not done.ok and why in done.reason, (name, done)
        robot.send_camera = False
        time.sleep(2.5)
        assert "stale image" in robot.client.send(GOOD).reason
        assert robot.commands == []  # not one trajectory or gripper command on any refusal path
        robot.send_camera = True
        time.sleep(0.5)
        # a valid step starts (the fake arm never moves, so it keeps executing) ...
        robot.client.action_pub.publish(String(data=GOOD))
        assert robot.client.wait_for(lambda: robot.commands, 20), "the valid step commanded nothing"
        busy = robot.client.send(GOOD, timeout=10)
        assert busy is not None and "busy" in busy.reason
        n = len(robot.commands)
        robot.client.estop_pub.publish(Bool(data=True))
        stopped = robot.client.wait_for(lambda: next((d for d in robot.client.done if "estop" in d.reason), None), 10)
        assert stopped is not None and not stopped.ok
        hold = robot.client.wait_for(lambda: robot.commands[n:], 5)
        assert hold and isinstance(hold[-1], JointTrajectory) and len(hold[-1].points) == 1  # hold where it is
        assert np.allclose(hold[-1].points[0].positions, HOME_Q, atol=1e-6)
        m = len(robot.commands)
        assert "estop is active" in robot.client.send(GOOD).reason
        time.sleep(0.3)
        assert len(robot.commands) == m
    finally:
        stop_nodes(proc)


def test_a_restarted_node_leaves_the_arm_still_and_approval_gates_every_plan(robot, tmp_path):
    proc = start_node("action_node", params_file(tmp_path, "approve", require_approval=True, approval_timeout_s=2.0),
                  tmp_path / "action.log")  # fmt: skip
    try:
        wait_ready(robot)
        time.sleep(1.0)
        assert robot.commands == []  # started mid-episode: nothing moves by itself
        robot.client.action_pub.publish(String(data=GOOD))
        time.sleep(1.0)
        assert robot.commands == [] and not [d for d in robot.client.done if d.step == GOOD]  # waiting for approval
        assert robot.call("/action_node/reject").success
        assert robot.client.wait_for(lambda: [d for d in robot.client.done if "rejected" in d.reason], 5)
        timed = robot.client.send(GOOD, timeout=10)
        assert timed is not None and "timed out" in timed.reason and robot.commands == []
        robot.client.action_pub.publish(String(data=GOOD))
        time.sleep(0.5)
        res = robot.call("/action_node/approve")
        assert res.success, res.message
        assert robot.client.wait_for(lambda: robot.commands, 10)
    finally:
        stop_nodes(proc)


def test_an_inactive_node_commands_nothing_and_says_so(robot, tmp_path):
    """An unconfigured node refuses with a step_done naming its state (the loop never waits for it) and moves nothing."""
    proc = start_node("action_node", params_file(tmp_path, "manual", autostart=False), tmp_path / "action.log")
    try:
        # alive first: the node's action_text subscription is discovered (a silent node fails here, not below)
        assert robot.client.wait_for(lambda: robot.client.action_pub.get_subscription_count() > 0, 30)
        done = robot.client.send(GOOD, timeout=10)
        assert done is not None and not done.ok and "unconfigured" in done.reason, done
        time.sleep(0.5)
        assert robot.commands == []
    finally:
        stop_nodes(proc)


def test_invalid_parameters_exit_with_a_clear_message(tmp_path):
    r = subprocess.run([sys.executable, "-m", "llara_ros.action_node", "--ros-args", "-p", "executor:=teleport"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "executor: 'teleport' is not one of dry_run, joint_trajectory, moveit" in r.stderr
    r = subprocess.run([sys.executable, "-m", "llara_ros.sim_node", "--ros-args", "-p", "family:=l9"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "unknown task families" in r.stderr


def test_the_expert_steps_over_dds_solve_the_task(robot, tmp_path):
    """sim_node + action_node in their own processes: the text of the expert's steps moves the simulated arm."""
    sim = start_node(
        "sim_node",
        params_file(tmp_path, "sim", node="sim_node", real_time_factor=4.0, autostart_episode=True),
        tmp_path / "sim.log",
    )
    act_params = yaml.safe_load((ROOT / "config" / "sim_demo.yaml").read_text())
    (tmp_path / "act.yaml").write_text(yaml.safe_dump({"action_node": act_params["action_node"]}))
    act = start_node("action_node", tmp_path / "act.yaml", tmp_path / "act.log")
    robot.send_camera = robot.send_info = robot.send_joints = False  # the simulator publishes the robot now
    try:
        first = robot.client.wait_for(lambda: next((e for e in robot.client.events if e["event"] == "start"), None), 60)
        assert first is not None and first["seed"] == 0
        results = []
        for seed in (0, 1):
            if seed:
                assert robot.client.reset()["seed"] == seed
            time.sleep(0.5)
            results.append(robot.client.run_answers(expert_answers("l1_placement", seed), seed)["event"])
        assert results == ["success", "success"], (results, (tmp_path / "act.log").read_text()[-2000:])
        names = json.loads(json.dumps([e["event"] for e in robot.client.events]))
        assert names.count("start") == 2
    finally:
        stop_nodes(act, sim)


def test_step_done_payload_is_what_the_policy_reads():
    d = StepDone("Step 1: …", False, "busy")
    assert json.loads(d.to_json()) == {"step": "Step 1: …", "ok": False, "reason": "busy"}
    with pytest.raises(ValueError):
        StepDone.from_json('{"ok": "yes"}')


def test_sigterm_to_bringup_stops_its_nodes(tmp_path):
    """kill (SIGTERM) of `python -m llara_ros.bringup` stops every node it started: none is left with parent 1."""
    import os
    import signal

    params = tmp_path / "rec.yaml"
    params.write_text(yaml.safe_dump({"recorder_node": {"ros__parameters": {"output_dir": str(tmp_path / "bags")}}}))
    proc = subprocess.Popen([sys.executable, "-m", "llara_ros.bringup", str(params)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("started recorder_node (pid "), line
    child = int(line.split("(pid ")[1].split(")")[0])
    time.sleep(3.0)  # the node is up and spinning
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.stdout.read()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # gone (reaped by bringup), not orphaned
