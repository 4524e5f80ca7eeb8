"""Ctrl-C or SIGTERM at any moment ends a node within 2 s, exit code 0, no traceback, the right last line.

Each node runs as its own process in its own process group, and the signal goes
to the group (``os.killpg``), as a terminal's Ctrl-C does; ``ros2 launch`` sends
SIGINT to each process, which is the same handler. Moments: idle, executing a
trajectory (the arm must receive a hold, and the step's report must say it was
a shutdown, not an e-stop), a plan waiting for approval (answered, nothing
commanded), and the model running (a remote model that never answers).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rcl_interfaces.srv import ListParameters
from ros_helpers import GOOD_STEP, params_file, start_node, stop_nodes, wait_for, wait_ready
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from llara_core.sim.arm import HOME_Q
from llara_ros.topics import COMMAND, TASK

pytestmark = pytest.mark.ros
EXIT_WITHIN_S = 2.0


def _interrupt(proc: subprocess.Popen, log: Path, sig: signal.Signals) -> str:
    """Signal the node's process group; assert it ends in time, cleanly, and says why. Returns its log."""
    t0 = time.monotonic()
    os.killpg(proc.pid, sig)
    try:
        rc = proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running 10 s after {sig.name}:\n{log.read_text()[-2000:]}") from None
    took = time.monotonic() - t0
    print(f"{log.stem}: exit {took:.2f} s after {sig.name}")
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert rc == 0, (rc, text[-2000:])
    assert took <= EXIT_WITHIN_S, f"{took:.2f} s after {sig.name}:\n{text[-2000:]}"
    assert "Traceback" not in text and "RCLError" not in text, text[-3000:]
    assert lines and lines[-1].endswith(f"shut down ({sig.name})"), lines[-3:]
    return text


def _up(robot, name: str, timeout: float = 60.0) -> None:
    """Wait until the node answers a parameter service: only a node past construction, spinning, answers."""
    client = robot.node.create_client(ListParameters, f"/{name}/list_parameters")
    try:
        assert client.wait_for_service(timeout_sec=timeout), f"{name} never came up"
        fut = client.call_async(ListParameters.Request())
        assert wait_for(fut.done, timeout), f"{name} does not spin"
    finally:
        robot.node.destroy_client(client)


@pytest.mark.parametrize("node", ["sim_node", "action_node", "recorder_node"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_idle_node_stops_at_once(robot, tmp_path, node, sig):
    if node == "recorder_node":
        params = tmp_path / "rec.yaml"
        params.write_text(json.dumps({node: {"ros__parameters": {"output_dir": str(tmp_path / "bags")}}}))
    else:
        params = params_file(tmp_path, node, node=node)
    log = tmp_path / f"{node}.log"
    proc = start_node(node, params, log, session=True)
    try:
        _up(robot, node)
        _interrupt(proc, log, sig)
    finally:
        stop_nodes(proc)


class Spy:
    def __init__(self, robot) -> None:
        self.done: list[dict] = []
        self.trajectories: list[JointTrajectory] = []
        robot.node.create_subscription(String, "step_done", lambda m: self.done.append(json.loads(m.data)), COMMAND)
        robot.node.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                       self.trajectories.append, COMMAND)  # fmt: skip


def test_ctrl_c_while_executing_holds_the_arm_and_reports_a_shutdown(robot, tmp_path):
    spy = Spy(robot)
    log = tmp_path / "action.log"
    # the fake arm never moves: the step keeps executing until something stops it
    params = params_file(tmp_path, "a", joint_trajectory={"arrival_timeout_s": 60.0})
    proc = start_node("action_node", params, log, session=True)
    try:
        wait_ready(robot)
        robot.client.action_pub.publish(String(data=GOOD_STEP))
        assert wait_for(lambda: spy.trajectories, 20), log.read_text()[-2000:]
        time.sleep(0.5)  # mid-segment
        sent = len(spy.trajectories)
        _interrupt(proc, log, signal.SIGINT)
        assert wait_for(lambda: len(spy.trajectories) > sent, 2), "no hold after the signal"
        hold = spy.trajectories[-1]
        assert len(hold.points) == 1 and list(hold.points[0].positions) == pytest.approx(list(HOME_Q))
        report = wait_for(lambda: [d for d in spy.done if d["step"] == GOOD_STEP], 2)
        assert report and not report[-1]["ok"] and report[-1]["reason"] == "stopped by shutdown (SIGINT)", spy.done
        assert "estop" not in log.read_text().lower()
    finally:
        stop_nodes(proc)


def test_sigterm_while_a_plan_waits_for_approval_answers_it_and_commands_nothing(robot, tmp_path):
    spy = Spy(robot)
    log = tmp_path / "action.log"
    proc = start_node("action_node", params_file(tmp_path, "a", require_approval=True), log, session=True)
    try:
        wait_ready(robot)
        robot.client.action_pub.publish(String(data=GOOD_STEP))
        assert wait_for(lambda: "waiting for approval" in log.read_text(), 20), log.read_text()[-2000:]
        _interrupt(proc, log, signal.SIGTERM)
        report = wait_for(lambda: [d for d in spy.done if d["step"] == GOOD_STEP], 2)
        assert report and report[-1] == {"step": GOOD_STEP, "ok": False, "reason": "dropped by shutdown (SIGTERM)"}
        assert all(len(t.points) == 1 for t in spy.trajectories)  # at most a hold: no plan ever reached the arm
    finally:
        stop_nodes(proc)


class SilentModelServer:
    """A TCP server that takes every request and never answers: a remote model mid-inference, for as long as needed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            conn.settimeout(5)
            try:
                if conn.recv(65536):
                    self.requests += 1
            except OSError:
                pass

    def close(self) -> None:
        for c in [self.sock, *self.conns]:
            c.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_model_runs_ends_the_policy_node_without_waiting_for_it(robot, tmp_path, sig):
    server = SilentModelServer()
    params = params_file(tmp_path, "p", node="policy_node", backend="openai",
                         remote={"base_url": f"http://127.0.0.1:{server.port}/v1", "timeout_s": 60.0, "retries": 0})  # fmt: skip
    log = tmp_path / "policy.log"
    task = robot.node.create_publisher(String, "/task", TASK)
    proc = start_node("policy_node", params, log, session=True)
    try:
        _up(robot, "policy_node")
        task.publish(String(data=robot.task.instruction))
        assert wait_for(lambda: server.requests, 30), log.read_text()[-2000:]  # the query is in the model's hands
        _interrupt(proc, log, sig)
    finally:
        stop_nodes(proc)
        server.close()
