"""What the ROS tests share: a fake robot on the wires (camera, joint states, a spy on commands) and node processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from llara_core.language.actions import ActionStep, render_step
from llara_core.sim.arm import ARM_JOINTS, HOME_Q
from llara_core.sim.env import TabletopEnv
from llara_core.sim.tasks import make_task
from llara_ros.conversions import model_to_camera_info, numpy_to_image
from llara_ros.loop_client import LoopClient
from llara_ros.topics import COMMAND, SENSOR

ROOT = Path(__file__).resolve().parents[1]
#: one executable step on the demo arm in the fake robot's scene (pick and place inside the workspace)
GOOD_STEP = render_step(ActionStep((0.45, 0.45), (0.55, 0.6)), 1)


def params_file(tmp: Path, name: str, node: str = "action_node", **overrides: object) -> Path:
    """config/sim_demo.yaml's parameters of ``node`` (camera_info from the topic), with overrides."""
    params = yaml.safe_load((ROOT / "config" / "sim_demo.yaml").read_text())[node]["ros__parameters"]
    params.pop("use_sim_time", None)
    params.pop("camera_info_file", None)
    for key, value in overrides.items():  # nested sections (joint_trajectory, execution) are merged, not replaced
        params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({node: {"ros__parameters": params}}))
    return path


def start_node(module: str, params: Path, log: Path, session: bool = False) -> subprocess.Popen:
    """``python -m llara_ros.<module>`` with ``params``, output to ``log``; ``session``: its own process group (a
    terminal's Ctrl-C reaches the group, so a test sends SIGINT with ``os.killpg`` and never hits pytest)."""
    cmd = [sys.executable, "-m", f"llara_ros.{module}", "--ros-args", "--params-file", str(params)]
    return subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=session
    )


def stop_nodes(*procs: subprocess.Popen) -> None:
    """SIGINT (what Ctrl-C and ros2 launch send), then SIGKILL whatever is still there after 10 s."""
    import signal

    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Robot:
    """This test's side of the wires: a fake camera and joint states, a spy on every command, the loop client."""

    def __init__(self, family: str = "l1_placement", seed: int = 3) -> None:
        self.node = rclpy.create_node("fake_robot")
        self.client = LoopClient(self.node)
        self.commands: list[object] = []
        n = self.node
        n.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                              self.commands.append, COMMAND)  # fmt: skip
        n.create_subscription(Float64MultiArray, "/gripper_controller/commands", self.commands.append, COMMAND)
        self.image_pub = n.create_publisher(Image, "/camera/color/image_raw", SENSOR)
        self.info_pub = n.create_publisher(CameraInfo, "/camera/color/camera_info", SENSOR)
        self.joints_pub = n.create_publisher(JointState, "/joint_states", SENSOR)
        self.task = make_task(family, seed)
        with TabletopEnv(self.task.scene) as env:
            self.image, self.camera = env.render(), env.camera
        self.send_camera = self.send_info = self.send_joints = True
        self.joints = list(HOME_Q)
        n.create_timer(0.05, self._publish)
        self.executor = MultiThreadedExecutor()
        self.executor.add_node(n)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _publish(self) -> None:
        if self.send_camera:
            self.image_pub.publish(numpy_to_image(self.image, "rgb8"))
        if self.send_info:
            self.info_pub.publish(model_to_camera_info(self.camera))
        if self.send_joints:
            self.joints_pub.publish(JointState(name=list(ARM_JOINTS), position=[float(v) for v in self.joints]))

    def call(self, service: str, timeout: float = 20.0) -> Trigger.Response:
        cli = self.node.create_client(Trigger, service)
        assert cli.wait_for_service(timeout_sec=timeout), service
        fut = cli.call_async(Trigger.Request())
        end = time.monotonic() + timeout
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.01)
        return fut.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def wait_for(pred, timeout: float, poll: float = 0.05):
    """``pred()``'s first truthy value within ``timeout`` seconds, else None (the caller says what failed)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if got := pred():
            return got
        time.sleep(poll)
    return None


def until(pred, timeout: float, what, poll: float = 0.1):
    """:func:`wait_for` that fails the test: ``what`` (a string, or a callable giving one at the timeout) names
    what was awaited."""
    got = wait_for(pred, timeout, poll)
    if not got:
        raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
    return got


def wait_ready(robot: Robot, timeout: float = 30.0) -> None:
    """Wait until the action node is active (it refuses an empty text then for the text, not for its state)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = robot.client.send("", timeout=1.0)
        if done is not None and not done.reason.startswith("action node is "):
            assert not done.ok
            return
        if done is not None:
            time.sleep(0.1)  # up but not active yet (unconfigured or inactive): it says so in every state
    raise AssertionError("action_node did not come up")
