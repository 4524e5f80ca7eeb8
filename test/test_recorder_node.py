"""recorder_node over real DDS: a simulated demonstration is published, recorded, killed, converted.

The recorder runs as its own process (``python -m llara_ros.recorder_node``)
so that it can be SIGKILLed like a crashed recorder; this process publishes a
MuJoCo expert episode on the standard topics, stamped with the current time as
a live robot would, and drives the recorder's services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from sim_helpers import expert_episode
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from llara_core.datasets.bags import BagOptions, quaternion_pose, read_episode_bag, read_sidecar
from llara_core.datasets.convert import ConversionConfig, convert_bags, inspect_bag
from llara_ros.conversions import matrix_to_pose_msg, model_to_camera_info, numpy_to_image
from llara_ros.topics import TASK

pytestmark = pytest.mark.ros
TOPICS = [
    "/camera/color/image_raw",
    "/camera/color/camera_info",
    "/ee_pose",
    "/gripper_closed",
    "/task",
    "/joint_states",
]


@pytest.fixture(scope="module")
def episode():
    return expert_episode("multi_step", 21)


@pytest.fixture
def node():
    rclpy.init()
    n = rclpy.create_node("llara_test_robot")
    yield n
    n.destroy_node()
    rclpy.shutdown()


def start_recorder(out: Path, storage: str) -> subprocess.Popen:
    args = [f"output_dir:={out}", f"storage:={storage}", "checkpoint_s:=0.2", f"topics:=[{', '.join(TOPICS)}]"]
    cmd = [sys.executable, "-m", "llara_ros.recorder_node", "--ros-args", *[x for a in args for x in ("-p", a)]]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())


def call(node, srv_type, name: str, **fields) -> object:
    cli = node.create_client(srv_type, name)
    assert cli.wait_for_service(timeout_sec=20), f"{name} did not appear"
    req = srv_type.Request()
    for k, v in fields.items():
        setattr(req, k, v)
    fut = cli.call_async(req)
    rclpy.spin_until_future_complete(node, fut, timeout_sec=20)
    assert fut.done(), f"{name} did not answer"
    return fut.result()


class Robot:
    """Publishes an Episode on the standard topics, in time order, stamped with the node's clock."""

    def __init__(self, node, episode) -> None:
        self.node, self.ep = node, episode
        self.pubs = {
            "image": node.create_publisher(Image, TOPICS[0], qos_profile_sensor_data),  # like a camera driver
            "info": node.create_publisher(CameraInfo, TOPICS[1], 10),
            "pose": node.create_publisher(PoseStamped, TOPICS[2], 10),
            "grip": node.create_publisher(Bool, TOPICS[3], 10),
            "task": node.create_publisher(String, TOPICS[4], TASK),  # latched, as everywhere (ros2 topic pub too)
            "joints": node.create_publisher(JointState, TOPICS[5], 10),
        }

    def wait_for_recorder(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while any(p.get_subscription_count() == 0 for k, p in self.pubs.items() if k != "task"):
            assert time.monotonic() < deadline, "the recorder never subscribed"
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def publish(self, fraction: float = 1.0) -> None:
        ep = self.ep
        stamp = lambda: self.node.get_clock().now().to_msg()  # noqa: E731
        self.pubs["task"].publish(String(data=ep.instruction))
        events = [(f.stamp, 0, f) for f in ep.frames] + [(s.stamp, 1, s) for s in ep.states]
        events.sort(key=lambda e: (e[0], e[1]))
        for _, kind, item in events[: int(len(events) * fraction)]:
            if kind == 0:
                img = numpy_to_image(item.image, "rgb8")
                img.header.stamp = stamp()
                info = model_to_camera_info(ep.camera)
                info.header.stamp = img.header.stamp
                self.pubs["image"].publish(img)
                self.pubs["info"].publish(info)
            else:
                self.pubs["grip"].publish(Bool(data=item.gripper_closed))
                time.sleep(0.003)  # the gripper message is received before the pose stamped after it
                pose = PoseStamped()
                pose.header.stamp, pose.header.frame_id = stamp(), "base_link"
                pose.pose = matrix_to_pose_msg(item.ee_pose)
                self.pubs["pose"].publish(pose)
                js = JointState(name=list(item.joints), position=list(item.joints.values()))
                js.header.stamp = pose.header.stamp
                self.pubs["joints"].publish(js)
            time.sleep(0.004)


def _steps_match(truth, got, n):
    assert len(got) >= n
    for a, b in list(zip(truth, got, strict=False))[:n]:
        assert np.abs(np.subtract([*a.pick, *a.place], [*b.pick, *b.place])).max() <= 0.01
        assert abs(a.rotation_deg - b.rotation_deg) <= 1


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_over_dds_then_convert_matches_the_sim(node, episode, tmp_path, storage):
    proc = start_recorder(tmp_path / "bags", storage)
    try:
        robot = Robot(node, episode)
        res = call(node, Trigger, "/recorder_node/start_episode")
        assert res.success, res.message
        bag = Path(res.message)
        robot.wait_for_recorder()
        robot.publish()
        time.sleep(0.5)
        assert call(node, Trigger, "/recorder_node/stop_episode").success
        assert call(node, SetBool, "/recorder_node/mark_episode", data=True).success
        again = call(node, Trigger, "/recorder_node/stop_episode")
        assert not again.success and "no episode" in again.message
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, out
    side = read_sidecar(bag)
    assert side["success"] is True and side["instruction"] == episode.instruction and side["state"] == "finished"
    assert side["messages"]["/ee_pose"] == len(episode.states)
    cfg = ConversionConfig(kinds=("inbc",), bag=BagOptions(camera_pose=quaternion_pose(episode.camera_pose)))
    report = convert_bags([bag], tmp_path / "ds", cfg, progress=False)
    assert report["skipped"] == [] and report["samples"] == {"inbc": 2}
    back = read_episode_bag(bag, cfg.bag)
    assert back.metadata["operator_success"] is True
    assert np.array_equal(back.frames[0].image, episode.frames[0].image)
    _steps_match(episode.action_steps(), back.action_steps(), 2)
    # llara inspect-bag on a bag recorded in a venv (no /tf_static): every section, no read error
    seen = inspect_bag(bag, cfg)
    assert "/tf_static" not in {t["topic"] for t in seen["topics"]} and "read_error" not in seen, seen
    assert seen["tf_static"] == [] and seen["camera"]["size"] == [episode.camera.width, episode.camera.height]
    assert seen["ranges /joint_states"] and seen["verdict"]["converts"] is True, seen


def test_a_killed_recorder_leaves_a_bag_that_still_converts(node, episode, tmp_path):
    proc = start_recorder(tmp_path / "bags", "mcap")
    try:
        robot = Robot(node, episode)
        res = call(node, Trigger, "/recorder_node/start_episode")
        bag = Path(res.message)
        robot.wait_for_recorder()
        robot.publish(fraction=0.75)  # the first of two steps is complete, the second is not
        time.sleep(0.6)  # > checkpoint_s: what was received is on disk
    finally:
        proc.kill()
        proc.communicate(timeout=20)
    assert not (bag / "metadata.yaml").exists()
    cfg = ConversionConfig(kinds=("inbc",), bag=BagOptions(camera_pose=quaternion_pose(episode.camera_pose)))
    report = convert_bags([bag], tmp_path / "ds", cfg, progress=False)
    assert report["skipped"] == [], report
    assert report["notes"][str(bag)]["recovered_messages"] > 50
    back = read_episode_bag(bag, cfg.bag)
    _steps_match(episode.action_steps(), back.action_steps(), 1)


def test_recorder_rejects_invalid_parameters(tmp_path):
    cmd = [sys.executable, "-m", "llara_ros.recorder_node", "--ros-args", "-p", "storage:=zip", "-p",
           f"output_dir:={tmp_path}"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "storage: 'zip' is not one of mcap, sqlite3" in r.stderr


def test_shipped_configs_are_valid(tmp_path):
    """config/conversion.yaml parses into options; config/recorder.yaml starts the recorder with its services."""
    from llara_core.datasets.convert import ConversionConfig

    root = Path(__file__).resolve().parents[1]
    cfg = ConversionConfig.from_yaml(root / "config" / "conversion.yaml")
    assert cfg.bag.gripper_joint == "finger_left_joint" and len(cfg.kinds) == 8
    assert Path(cfg.bag.urdf).samefile(root / "urdf" / "llara_arm.urdf")
    rclpy.init()
    node = rclpy.create_node("llara_test_cfg")
    cmd = [sys.executable, "-m", "llara_ros.recorder_node", "--ros-args", "--params-file",
           str(root / "config" / "recorder.yaml"), "-p", f"output_dir:={tmp_path}"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        res = call(node, Trigger, "/recorder_node/start_episode")
        assert res.success and Path(res.message).parent == tmp_path
        assert call(node, Trigger, "/recorder_node/stop_episode").success
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=20)[0]
        node.destroy_node()
        rclpy.shutdown()
    assert proc.returncode == 0, out
    assert "'/tf_static'" in out and "'/detections'" in out
