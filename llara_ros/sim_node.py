"""sim_node: the MuJoCo tabletop as a ROS robot (camera, joint states, trajectory and gripper in, episode events).

    ros2 run llara_ros sim_node --ros-args --params-file config/sim_demo.yaml

Publishes the camera image (sensor_msgs/Image rgb8) and ``camera_info`` on the
recorder's default topics, ``joint_states`` (arm and finger joints),
``ee_pose`` (PoseStamped, base frame), ``gripper_closed`` (Bool), the current
``task`` (String, reliable + transient local; an empty task once the episode
ended) and ``episode`` events (String JSON: start / success / failure / timeout); ``/tf_static`` (base -> camera
optical frame) where tf2_msgs is installed. Executes JointTrajectory messages
on ``/<controller>/joint_trajectory`` as joint_trajectory_controller does and
the gripper's position command. ``~/reset`` (std_srvs/Trigger) starts the
next seed's scene. The physics runs from a timer (:class:`LiveSim`), so the
node keeps publishing while the arm moves.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import PoseStamped
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from llara_core import topics
from llara_core.datasets.bags.detections import objects_json
from llara_core.geometry import BASE_FRAME, CAMERA_FRAME
from llara_core.sim.live import LiveSim, SimConfig
from llara_ros.conversions import matrix_to_pose_msg, model_to_camera_info, numpy_to_image
from llara_ros.messages import package_available
from llara_ros.params import declare_config, read_config
from llara_ros.spin import run_node
from llara_ros.topics import publisher, subscription


class SimNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_node", **kwargs)
        declare_config(self, SimConfig)
        self.cfg = read_config(self, SimConfig)
        self.sim = LiveSim(self.cfg)
        self.image_pub = publisher(self, topics.IMAGE)
        self.info_pub = publisher(self, topics.CAMERA_INFO)
        self.joints_pub = publisher(self, topics.JOINT_STATES)
        self.pose_pub = publisher(self, topics.EE_POSE)
        self.grip_pub = publisher(self, topics.GRIPPER_CLOSED)
        self.task_pub = publisher(self, topics.TASK)
        self.episode_pub = publisher(self, topics.EPISODE)
        self.objects_pub = publisher(self, topics.OBJECTS)  # the objects' image boxes, with every camera frame
        subscription(self, topics.JOINT_TRAJECTORY, self._on_trajectory, topics.trajectory_topic(self.cfg.controller))
        subscription(self, topics.GRIPPER_COMMAND, self._on_gripper, self.cfg.gripper_command_topic)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.clock_pub = publisher(self, topics.CLOCK) if self.cfg.publish_clock else None
        self.tf_pub = publisher(self, topics.TF_STATIC) if package_available("tf2_msgs") else None
        self._last = time.monotonic()
        self._next_image = self._next_state = 0.0
        self.create_timer(1.0 / self.cfg.step_hz, self._step)
        self._started = self.cfg.autostart_episode
        if self._started:
            self._announce()

    def close(self, reason: str = "shutdown") -> None:
        self.sim.close()

    # -- commands ----------------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
        try:
            self.sim.command_trajectory(list(msg.joint_names), times, [list(p.positions) for p in msg.points])
        except ValueError as exc:  # joint_trajectory_controller rejects such a goal and keeps the current one
            self.get_logger().error(f"trajectory rejected: {exc}")

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        try:
            self.sim.command_gripper(float(msg.data[0]) if len(msg.data) else float("nan"))
        except ValueError as exc:
            self.get_logger().error(f"gripper command rejected: {exc}")

    def _on_reset(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        if self._started:
            task = self.sim.reset()
        else:  # without autostart_episode the first reset starts the configured seed's scene afresh (its clock at 0)
            self._started = True
            self.sim.events.clear()
            task = self.sim.reset(self.cfg.seed)
        self._announce()
        res.success, res.message = True, json.dumps({"seed": self.sim.seed, "instruction": task.instruction})
        return res

    # -- publishing ----------------------------------------------------------------------------------
    def _announce(self) -> None:
        """A new scene: its task, its start event, the camera pose; observations restart at its time 0."""
        assert self.sim.task is not None and self.sim.env is not None
        self._next_image = self._next_state = 0.0
        self.task_pub.publish(String(data=self.sim.task.instruction))
        self._publish_events(self.sim.advance(0.0))
        if self.tf_pub is not None:
            from geometry_msgs.msg import TransformStamped
            from tf2_msgs.msg import TFMessage  # type: ignore[import-not-found,unused-ignore]

            t = TransformStamped()
            t.header = Header(stamp=self.get_clock().now().to_msg(), frame_id=BASE_FRAME)
            t.child_frame_id = CAMERA_FRAME
            p = matrix_to_pose_msg(self.sim.env.camera_pose)
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
                p.position.x, p.position.y, p.position.z)  # fmt: skip
            t.transform.rotation = p.orientation
            self.tf_pub.publish(TFMessage(transforms=[t]))

    def _publish_events(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            self.episode_pub.publish(String(data=json.dumps(ev)))
            if ev["event"] != "start":
                self.get_logger().info(f"episode {ev['family']} seed {ev['seed']}: {ev['event']}")
                self.task_pub.publish(String(data=""))  # the task is over: a policy stops querying
                if self.cfg.auto_reset:
                    self.sim.reset()
                    self._announce()

    def _step(self) -> None:
        try:
            self._advance()
        except RCLError:
            if self.context.ok():
                raise  # a real failure; after shutdown a late timer tick finds its publishers gone

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = min(now - self._last, 0.1), now
        self._publish_events(self.sim.advance(dt))
        env = self.sim.env
        assert env is not None
        stamp = self.get_clock().now().to_msg()
        if self.clock_pub is not None:
            ns = round(self.sim.clock * 1e9)
            stamp = TimeMsg(sec=ns // 10**9, nanosec=ns % 10**9)
            self.clock_pub.publish(Clock(clock=stamp))
        t = self.sim.time
        if t >= self._next_state:
            self._next_state = t + 1.0 / self.cfg.state_rate
            names, positions = self.sim.joint_state()
            self.joints_pub.publish(JointState(header=Header(stamp=stamp, frame_id=BASE_FRAME), name=names,
                                               position=positions))  # fmt: skip
            self.pose_pub.publish(PoseStamped(header=Header(stamp=stamp, frame_id=BASE_FRAME),
                                              pose=matrix_to_pose_msg(env.tcp_pose())))  # fmt: skip
            self.grip_pub.publish(Bool(data=bool(env.gripper_closed)))
        if t >= self._next_image:
            self._next_image = t + 1.0 / self.cfg.camera_rate
            header = Header(stamp=stamp, frame_id=CAMERA_FRAME)
            self.image_pub.publish(numpy_to_image(np.ascontiguousarray(env.render()), "rgb8", header))
            self.info_pub.publish(model_to_camera_info(env.camera, header))
            self.objects_pub.publish(String(data=objects_json(
                env.object_boxes(), stamp.sec + stamp.nanosec * 1e-9, CAMERA_FRAME, env.camera.width, env.camera.height
            )))  # fmt: skip


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    sys.exit(main())
