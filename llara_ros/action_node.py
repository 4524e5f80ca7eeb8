"""action_node: the model's action text -> a checked 3-D plan -> the arm (MoveIt, joint trajectories) or nothing.

A lifecycle node (``rclpy.lifecycle``): ``configure`` loads the robot model,
the calibration and the backend; only ``active`` commands anything;
``deactivate`` stops motion. ``autostart: true`` (the simulator's config)
configures and activates itself; the real-arm config leaves activation to
the operator::

    ros2 run llara_ros action_node --ros-args --params-file config/action.yaml
    ros2 lifecycle set /action_node configure && ros2 lifecycle set /action_node activate

Subscribes ``action_text`` (std_msgs/String, the model's answer verbatim),
``/camera/color/camera_info``, ``/camera/color/image_raw`` (for the grasp
refinement; Image, or CompressedImage with ``image_transport: compressed``),
``/camera/aligned_depth_to_color/image_raw`` (with ``use_depth``),
``/joint_states``, ``estop`` (std_msgs/Bool) — remap the camera topics to yours. Publishes
``goals`` (PoseArray), ``markers`` (MarkerArray), ``step_done`` (String JSON
``{"step", "ok", "reason"}``), ``/diagnostics``; the joint_trajectory backend
also ``/<controller>/joint_trajectory`` and the gripper command. Services
``~/approve`` and ``~/reject`` (std_srvs/Trigger) with ``require_approval``.

Every refusal (unparseable or partly invalid text, a point off the table or
outside the workspace, IK failure, no camera_info or camera pose, a stale
image, a second action while one runs, estop) is a ``step_done`` with
``ok: false`` and the reason, and commands nothing. The logic is
:class:`llara_core.supervisor.Supervisor` and :class:`llara_core.robot.Planner`;
this file connects them to ROS.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseArray
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from llara_core.errors import LlaraError
from llara_core.execution import ActionPlan, Refusal
from llara_core.geometry import CameraModel, GeometryError, pose_to_matrix
from llara_core.robot import Planner, RobotConfig, load_kinematics
from llara_core.supervisor import Decision, StepDone, Supervisor
from llara_ros.backends import Backend, DryRunBackend, JointTrajectoryBackend, MoveItBackend
from llara_ros.conversions import camera_info_to_model, image_msg_to_array, image_msg_to_rgb
from llara_ros.params import declare_config, read_config
from llara_ros.qos import COMMAND, LATEST, SENSOR, TASK
from llara_ros.spin import run_node
from llara_ros.visualization import plan_goals, plan_markers

# The recorder's and the simulator's topic names (the bag contract); remap them to your camera's (-r OLD:=NEW).
IMAGE_TOPIC, CAMERA_INFO_TOPIC = "/camera/color/image_raw", "/camera/color/camera_info"
DEPTH_TOPIC, JOINT_STATES_TOPIC = "/camera/aligned_depth_to_color/image_raw", "/joint_states"


class ActionNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("action_node", **kwargs)
        declare_config(self, RobotConfig)
        self.cfg = read_config(self, RobotConfig)  # ConfigError names a bad parameter: main exits 2
        c = self.cfg
        self.supervisor = Supervisor(c.require_approval, c.approval_timeout_s, c.max_image_age_s)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.active = False
        self.backend: Backend | None = None
        self.planner: Planner | None = None
        self.worker: threading.Thread | None = None
        self.camera: CameraModel | None = None
        self.image: np.ndarray | None = None
        self.image_time: float | None = None
        self.depth: np.ndarray | None = None
        self.joints: dict[str, float] | None = None
        self.robot_description: str | None = None
        self.last_error = ""
        self.tf_buffer: Any = None
        self._entities: list[Any] = []
        self._description = threading.Event()
        if not c.urdf:  # latched by robot_state_publisher; its own group so configure can wait for it
            self.create_subscription(String, "robot_description", self._on_description, TASK,
                                     callback_group=MutuallyExclusiveCallbackGroup())  # fmt: skip
        if c.autostart:
            self._autostart = self.create_timer(0.1, self._start_once)

    # -- lifecycle ---------------------------------------------------------------------------------
    def _start_once(self) -> None:
        self.destroy_timer(self._autostart)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        c = self.cfg
        try:
            self.camera = None
            if c.camera_info_file:
                from llara_core.robot import load_camera

                self.camera = load_camera(c)
            kin = None
            if c.backend == "joint_trajectory" or c.urdf:
                kin = load_kinematics(c, self._wait_robot_description() if not c.urdf else None)
            self.planner = Planner(c, kinematics=kin if c.backend == "joint_trajectory" else None, camera=self.camera)
            self.backend = self._make_backend(kin)
        except (LlaraError, ValueError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.last_error = str(exc)
            return TransitionCallbackReturn.FAILURE
        if c.camera_pose is None:
            self._start_tf()
        group = MutuallyExclusiveCallbackGroup()
        image_type = CompressedImage if c.image_transport == "compressed" else Image
        self._entities = [
            self.create_subscription(String, "action_text", self._on_action, COMMAND, callback_group=group),
            self.create_subscription(Bool, "estop", self._on_estop, COMMAND),
            self.create_subscription(CameraInfo, CAMERA_INFO_TOPIC, self._on_info, SENSOR),
            self.create_subscription(image_type, IMAGE_TOPIC, self._on_image, SENSOR),
            self.create_subscription(JointState, JOINT_STATES_TOPIC, self._on_joints, SENSOR),
            self.create_service(Trigger, "~/approve", self._on_approve, callback_group=group),
            self.create_service(Trigger, "~/reject", self._on_reject, callback_group=group),
            self.create_timer(0.5, self._tick, callback_group=group),
        ]
        if c.use_depth:
            self._entities.append(self.create_subscription(Image, DEPTH_TOPIC, self._on_depth, SENSOR))
        self.goals_pub = self.create_publisher(PoseArray, "goals", LATEST)
        self.markers_pub = self.create_publisher(MarkerArray, "markers", LATEST)
        self.done_pub = self.create_publisher(String, "step_done", COMMAND)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", COMMAND)
        self.get_logger().info(f"configured: backend {self.backend.name}, base frame {c.base_frame}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = True
        self.get_logger().info(f"active: actions on 'action_text' now go to the {self.cfg.backend} backend")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self._halt("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self._halt("shutdown")
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entities(self) -> None:
        for e in self._entities:
            for destroy in (self.destroy_subscription, self.destroy_service, self.destroy_timer):
                try:
                    destroy(e)
                    break
                except (TypeError, AttributeError, ValueError):
                    continue
        self._entities = []

    def _make_backend(self, kin: Any) -> Backend:
        if self.cfg.backend == "joint_trajectory":
            return JointTrajectoryBackend(self, self.cfg, kin, lambda: self.joints)
        if self.cfg.backend == "moveit":
            return MoveItBackend(self.cfg)
        return DryRunBackend()

    def _on_description(self, msg: String) -> None:
        self.robot_description = msg.data
        self._description.set()

    def _wait_robot_description(self, timeout_s: float = 5.0) -> str | None:
        """The URDF from the robot_description topic (robot_state_publisher latches it)."""
        self._description.wait(timeout_s)
        return self.robot_description

    def _start_tf(self) -> None:
        try:
            from tf2_ros import Buffer, TransformListener  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            self.get_logger().warning(
                "no camera_pose and no tf2_ros here: every action is refused until camera_pose is set "
                "(or run in a ROS workspace with tf2_ros)"
            )
            return
        self.tf_buffer = Buffer()
        self._tf_listener = TransformListener(self.tf_buffer, self)

    def _camera_pose(self) -> np.ndarray | None:
        if self.cfg.camera_pose is not None:
            return self.cfg.base_T_camera
        if self.tf_buffer is None:
            return None
        try:
            t = self.tf_buffer.lookup_transform(self.cfg.base_frame, self.cfg.camera_frame, rclpy.time.Time())
        except Exception:  # tf2 raises several lookup/extrapolation types; all mean "no pose now"
            return None
        q, v = t.transform.rotation, t.transform.translation
        return pose_to_matrix([v.x, v.y, v.z], [q.x, q.y, q.z, q.w])

    # -- inputs --------------------------------------------------------------------------------------
    def _on_info(self, msg: CameraInfo) -> None:
        try:
            self.camera = camera_info_to_model(msg, rectified=self.cfg.rectified)
        except GeometryError as exc:
            self.last_error = f"camera_info unusable: {exc}"

    def _on_image(self, msg: Any) -> None:
        try:
            self.image = image_msg_to_rgb(msg)
            self.image_time = time.monotonic()
        except (LlaraError, ValueError) as exc:
            self.last_error = f"image unusable: {exc}"

    def _on_depth(self, msg: Image) -> None:
        try:
            self.depth = image_msg_to_array(msg)
        except (LlaraError, ValueError) as exc:
            self.last_error = f"depth image unusable: {exc}"

    def _on_joints(self, msg: JointState) -> None:
        joints = dict(self.joints or {})
        joints.update(zip(msg.name, msg.position, strict=False))
        self.joints = joints

    # -- actions -------------------------------------------------------------------------------------
    def _plan(self, text: str) -> ActionPlan | Refusal:
        assert self.planner is not None and self.backend is not None
        q0 = None
        if self.backend.needs_kinematics:
            kin = self.planner.kinematics
            if self.joints is None or kin is None or any(n not in self.joints for n in kin.joint_names):
                return Refusal("input", "no joint_states with every arm joint received yet")
            q0 = np.array([self.joints[n] for n in kin.joint_names])
        if self.cfg.use_depth and self.depth is None:
            return Refusal("input", "use_depth is set but no depth image arrived")
        return self.planner.plan(
            text, image=self.image, q0=q0, depth=self.depth, camera=self.camera, base_T_camera=self._camera_pose()
        )

    def _on_action(self, msg: String) -> None:
        if not self.active:
            self.get_logger().warning(
                "action ignored: the node is not active (ros2 lifecycle set /action_node activate)"
            )
            return
        if self.image_time is None and self.cfg.refine_grasp_with_image:
            self._apply(Decision(done=StepDone(msg.data, False, "no camera image received yet")))
            return
        with self.lock:
            decision = self.supervisor.submit(msg.data, time.monotonic(), self.image_time, self._plan)
        self._apply(decision)

    def _apply(self, d: Decision) -> None:
        stamp = self.get_clock().now().to_msg()
        plan = d.execute or d.wait
        if plan is not None:
            self.goals_pub.publish(plan_goals(plan, self.cfg.base_frame, stamp))
            self.markers_pub.publish(plan_markers(plan, self.cfg.base_frame, stamp, "pending" if d.wait else "active"))
        if d.wait is not None:
            self.get_logger().info(
                "plan waiting for approval: ros2 service call /action_node/approve std_srvs/srv/Trigger"
            )
        if d.execute is not None:
            self.stop.clear()
            self.worker = threading.Thread(target=self._execute, args=(d.execute,), daemon=True)
            self.worker.start()
        if d.done is not None:
            self._publish_done(d.done)

    def _execute(self, plan: ActionPlan) -> None:
        assert self.backend is not None
        try:
            why = self.backend.execute(plan, self.stop)
        except Exception as exc:  # a backend failure must end the step, not the node
            why = f"{type(exc).__name__}: {exc}"
        with self.lock:
            done = self.supervisor.finished(why is None, why or "")
        self._publish_done(done)

    def _publish_done(self, done: StepDone) -> None:
        if not done.ok:
            self.last_error = done.reason
            self.get_logger().warning(f"step refused or failed: {done.reason}")
        self.done_pub.publish(String(data=done.to_json()))

    def _on_approve(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.lock:
            d = self.supervisor.approve(time.monotonic())
        res.success = d.execute is not None
        res.message = "executing" if res.success else (d.done.reason if d.done else "no plan is waiting")
        self._apply(d)
        return res

    def _on_reject(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.lock:
            d = self.supervisor.reject()
        res.success = d.done is not None
        res.message = "dropped" if res.success else "no plan is waiting"
        self._apply(d)
        return res

    def _on_estop(self, msg: Bool) -> None:
        with self.lock:
            must_stop = self.supervisor.set_estop(bool(msg.data))
        if msg.data:
            self.stop.set()
            if self.backend is not None:
                self.backend.hold()
            self.get_logger().error("ESTOP: motion stopped; every action is refused until estop is false")
            if not must_stop:
                self.markers_pub.publish(MarkerArray())
        else:
            self.get_logger().info("estop cleared")

    def close(self) -> None:
        """Stop any motion (process shutdown)."""
        self._halt("shutdown")

    def _halt(self, why: str) -> None:
        self.stop.set()
        if self.backend is not None and self.context.ok():
            try:
                self.backend.hold()
            except RCLError:  # the context went down between the check and the publish (shutdown)
                pass
        with self.lock:
            self.supervisor.reset()

    def _tick(self) -> None:
        with self.lock:
            d = self.supervisor.tick(time.monotonic())
        self._apply(d)
        status = DiagnosticStatus(name="llara_ros: action_node", hardware_id=self.cfg.base_frame)
        status.level = DiagnosticStatus.ERROR if self.supervisor.estopped else (
            DiagnosticStatus.WARN if self.last_error else DiagnosticStatus.OK)  # fmt: skip
        status.message = "ESTOP" if self.supervisor.estopped else (self.last_error or "ok")
        status.values = [
            KeyValue(key="state", value=self.supervisor.state),
            KeyValue(key="active", value=str(self.active)),
            KeyValue(key="backend", value=self.cfg.backend),
            KeyValue(key="camera_info", value=str(self.camera is not None)),
            KeyValue(key="camera_pose", value=str(self._camera_pose() is not None)),
        ]
        self.diag_pub.publish(DiagnosticArray(header=self._header(), status=[status]))

    def _header(self) -> Any:
        from std_msgs.msg import Header

        return Header(stamp=self.get_clock().now().to_msg())


def main(args: list[str] | None = None) -> int:
    return run_node(ActionNode, "action_node", args, threads=3)


if __name__ == "__main__":
    sys.exit(main())
