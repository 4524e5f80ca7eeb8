"""action_node: the model's action text -> a checked 3-D plan -> the arm (MoveIt, joint trajectories) or nothing.

A lifecycle node (``rclpy.lifecycle``): ``configure`` loads the robot model,
the calibration and the executor and creates the inputs, services and
lifecycle publishers; only ``active`` commands anything; ``deactivate`` stops
motion; ``cleanup`` destroys everything ``configure`` made, each entity with
its own destroy call. ``action_text``, ``estop``, ``step_done`` and
``/diagnostics`` exist in every state, so every action text gets exactly one
``step_done`` — refused (also while unconfigured or inactive), rejected, timed
out, stopped (estop, deactivation, shutdown), failed or done. Parameters are
read once at start and declared read-only. ``autostart: true`` (the
simulator's config) configures and activates itself; the real-arm config
leaves activation to the operator::

    ros2 run llara_ros action_node --ros-args --params-file config/action.yaml
    ros2 lifecycle set /action_node configure && ros2 lifecycle set /action_node activate

Subscribes ``action_text`` (std_msgs/String, the model's answer verbatim),
``/camera/color/camera_info``, ``/camera/color/image_raw`` (for the grasp
refinement; Image, or CompressedImage with ``image_transport: compressed``),
``/camera/aligned_depth_to_color/image_raw`` (with ``use_depth``),
``/joint_states``, ``estop`` (std_msgs/Bool) — remap the camera topics to yours. Publishes
``goals`` (PoseArray), ``markers`` (MarkerArray) — lifecycle publishers —, ``step_done`` (String JSON
``{"step", "ok", "reason"}``), ``/diagnostics``; the joint_trajectory executor
also ``/<controller>/joint_trajectory`` and the gripper command. Services
``~/approve`` and ``~/reject`` (std_srvs/Trigger) with ``require_approval``.

Every refusal (unparseable or partly invalid text, a point off the table or
outside the workspace, IK failure, no camera_info or camera pose, a stale
image, a second action while one runs, estop, an inactive node) is a
``step_done`` with ``ok: false`` and the reason, and commands nothing. The
logic is :class:`llara_core.planning.Supervisor` and
:class:`llara_core.planning.Planner`; this file connects them to ROS.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from llara_core import topics
from llara_core.config import check_choices, setting
from llara_core.errors import LlaraError
from llara_core.geometry import CameraModel, GeometryError, pose_to_matrix
from llara_core.planning import (
    ActionPlan,
    Decision,
    Planner,
    Refusal,
    RobotConfig,
    StepDone,
    Supervisor,
    load_camera,
    load_kinematics,
)
from llara_ros.backends import (
    STOPPED,
    DryRunExecutor,
    Executor,
    ExecutorName,
    JointTrajectoryConfig,
    JointTrajectoryExecutor,
    MoveItConfig,
    MoveItExecutor,
    wait_acked,
)
from llara_ros.conversions import camera_info_to_model, image_msg_to_array, image_msg_to_rgb
from llara_ros.params import declare_config, read_config
from llara_ros.spin import run_node
from llara_ros.topics import publisher, subscription
from llara_ros.visualization import plan_goals, plan_markers


@dataclass(frozen=True)
class ActionNodeConfig(RobotConfig):
    """The action node's parameters: the planning (:class:`RobotConfig`) plus the executor and lifecycle."""

    executor: ExecutorName = setting("dry_run", "dry_run plans and draws only; joint_trajectory or moveit move the arm")
    autostart: bool = setting(False, "configure and activate at start (the simulator); else the operator activates")
    joint_trajectory: JointTrajectoryConfig = field(default_factory=JointTrajectoryConfig)
    moveit: MoveItConfig = field(default_factory=MoveItConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self)


class ActionNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("action_node", **kwargs)
        declare_config(self, ActionNodeConfig)
        self.cfg = read_config(self, ActionNodeConfig)  # ConfigError names a bad parameter: main exits 2
        c = self.cfg
        self.supervisor = Supervisor(c.require_approval, c.approval_timeout_s, c.max_image_age_s)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.stop_reason = ""
        self.state_label = "unconfigured"
        self.active = False
        self.motion: Executor | None = None
        self.planner: Planner | None = None
        self.worker: threading.Thread | None = None
        self.camera: CameraModel | None = None
        self.image_msg: Any = None  # the newest frame as it arrived, converted only when a plan needs it
        self.image_time: float | None = None
        self._info_key: tuple[Any, ...] | None = None
        self.depth: np.ndarray | None = None
        self.joints: dict[str, float] | None = None
        self.robot_description: str | None = None
        self.last_error = ""
        self.tf_buffer: Any = None
        self._tf_listener: Any = None
        self._made_subs: list[Any] = []
        self._made_services: list[Any] = []
        self._made_pubs: list[Any] = []
        self._description = threading.Event()
        # In every state: the loop's contract (an action always gets its step_done), the estop, diagnostics.
        group = MutuallyExclusiveCallbackGroup()
        self.done_pub = publisher(self, topics.STEP_DONE)
        self.diag_pub = publisher(self, topics.DIAGNOSTICS)
        subscription(self, topics.ACTION_TEXT, self._on_action, callback_group=group)
        subscription(self, topics.ESTOP, self._on_estop)
        self.create_timer(0.5, self._tick, callback_group=group)
        if not c.urdf:  # latched by robot_state_publisher; its own group so configure can wait for it
            subscription(self, topics.ROBOT_DESCRIPTION, self._on_description,
                         callback_group=MutuallyExclusiveCallbackGroup())  # fmt: skip
        self._autostart = self.create_timer(0.1, self._start_once) if c.autostart else None

    # -- lifecycle ---------------------------------------------------------------------------------
    def _start_once(self) -> None:
        assert self._autostart is not None
        self.destroy_timer(self._autostart)
        self._autostart = None
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        c = self.cfg
        try:
            self.camera = load_camera(c) if c.camera_info_file else None
            kin = None
            if c.executor == "joint_trajectory" or c.urdf:
                kin = load_kinematics(c, self._wait_robot_description() if not c.urdf else None)
            self.planner = Planner(c, kinematics=kin if c.executor == "joint_trajectory" else None, camera=self.camera)
            self.motion = self._make_executor(kin)
        except (LlaraError, ValueError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self.last_error = str(exc)
            return TransitionCallbackReturn.FAILURE
        if c.camera_pose is None:
            self._start_tf()
        group = MutuallyExclusiveCallbackGroup()
        image = topics.COMPRESSED_IMAGE if c.image_transport == "compressed" else topics.IMAGE
        self._made_subs = [
            subscription(self, topics.CAMERA_INFO, self._on_info, destroyable=True),
            subscription(self, image, self._on_image, destroyable=True),
            subscription(self, topics.JOINT_STATES, self._on_joints, destroyable=True),
        ]
        if c.use_depth:
            self._made_subs.append(subscription(self, topics.DEPTH, self._on_depth, destroyable=True))
        self._made_services = [
            self.create_service(Trigger, "~/approve", self._on_approve, callback_group=group),
            self.create_service(Trigger, "~/reject", self._on_reject, callback_group=group),
        ]
        self.goals_pub = publisher(self, topics.GOALS, lifecycle=True)
        self.markers_pub = publisher(self, topics.MARKERS, lifecycle=True)
        self._made_pubs = [self.goals_pub, self.markers_pub]
        self.state_label = "inactive"
        self.get_logger().info(f"configured: executor {self.motion.name}, base frame {c.base_frame}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active, self.state_label = True, "active"
        self.get_logger().info(
            f"active: actions on {topics.ACTION_TEXT.name} now go to the {self.cfg.executor} executor"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active, self.state_label = False, "inactive"
        self._halt("deactivation")  # the hold goes out before the lifecycle publishers are disabled
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._wait_worker()
        self._destroy_entities()
        self.state_label = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active, self.state_label = False, "finalized"
        self._halt("shutdown")
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entities(self) -> None:
        """Destroy what configure made, each entity with its own call (rclpy's destroy_* return False, not raise)."""
        for sub in self._made_subs:
            self.destroy_subscription(sub)
        for srv in self._made_services:
            self.destroy_service(srv)
        for pub in self._made_pubs:
            self.destroy_lifecycle_publisher(pub)
        if self.motion is not None:
            self.motion.close()
        if self._tf_listener is not None:
            self._tf_listener.unregister()
        self._made_subs, self._made_services, self._made_pubs = [], [], []
        self.motion = self.planner = self.tf_buffer = self._tf_listener = None

    def _make_executor(self, kin: Any) -> Executor:
        if self.cfg.executor == "joint_trajectory":
            return JointTrajectoryExecutor(self, self.cfg.joint_trajectory, kin, lambda: self.joints)
        if self.cfg.executor == "moveit":
            return MoveItExecutor(self.cfg.moveit, self.cfg.base_frame, self.cfg.tool_frame)
        return DryRunExecutor()

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
    def _on_info(self, msg: Any) -> None:
        # camera_info comes with every frame and rarely changes: the model is rebuilt only when it does
        key = (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d), tuple(msg.r), tuple(msg.p))
        if key == self._info_key:
            return
        try:
            self.camera = camera_info_to_model(msg, rectified=self.cfg.rectified)
            self._info_key = key
        except GeometryError as exc:
            self.last_error = f"camera_info unusable: {exc}"

    def _on_image(self, msg: Any) -> None:
        self.image_msg, self.image_time = msg, time.monotonic()

    def _image(self) -> np.ndarray | None:
        """The newest frame as RGB, converted now (None, with the reason in last_error, when it is unusable)."""
        if self.image_msg is None:
            return None
        try:
            return image_msg_to_rgb(self.image_msg)
        except (LlaraError, ValueError) as exc:
            self.last_error = f"image unusable: {exc}"
            return None

    def _on_depth(self, msg: Any) -> None:
        try:
            self.depth = image_msg_to_array(msg)
        except (LlaraError, ValueError) as exc:
            self.last_error = f"depth image unusable: {exc}"

    def _on_joints(self, msg: Any) -> None:
        joints = dict(self.joints or {})
        joints.update(zip(msg.name, msg.position, strict=False))
        self.joints = joints

    # -- actions -------------------------------------------------------------------------------------
    def _plan(self, text: str) -> ActionPlan | Refusal:
        assert self.planner is not None and self.motion is not None
        q0 = None
        if self.motion.needs_kinematics:
            kin = self.planner.kinematics
            if self.joints is None or kin is None or any(n not in self.joints for n in kin.joint_names):
                return Refusal("input", "no joint_states with every arm joint received yet")
            q0 = np.array([self.joints[n] for n in kin.joint_names])
        if self.cfg.use_depth and self.depth is None:
            return Refusal("input", "use_depth is set but no depth image arrived")
        return self.planner.plan(
            text, image=self._image(), q0=q0, depth=self.depth, camera=self.camera, base_T_camera=self._camera_pose()
        )

    def _on_action(self, msg: String) -> None:
        if not self.active:
            how = "configure and activate" if self.state_label == "unconfigured" else "activate"
            why = (
                f"action node is {self.state_label}: {how} it (ros2 lifecycle set {self.get_fully_qualified_name()} …)"
            )
            self._apply(Decision(done=StepDone(msg.data, False, why)))
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
                f"plan waiting for approval: ros2 service call {self.get_fully_qualified_name()}/approve "
                "std_srvs/srv/Trigger"
            )
        if d.execute is not None:
            self.stop.clear()
            self.worker = threading.Thread(target=self._execute, args=(d.execute,), daemon=True)
            self.worker.start()
        if d.done is not None:
            self._publish_done(d.done)

    def _execute(self, plan: ActionPlan) -> None:
        assert self.motion is not None
        try:
            why = self.motion.execute(plan, self.stop)
        except Exception as exc:  # an executor failure must end the step, not the node
            why = f"{type(exc).__name__}: {exc}"
        if why == STOPPED:
            why = f"stopped by {self.stop_reason or 'estop'}"
        with self.lock:
            done = self.supervisor.finished(why is None, why or "")
        self._publish_done(done)

    def _publish_done(self, done: StepDone) -> None:
        if not done.ok:
            self.last_error = done.reason
            self.get_logger().warning(f"step refused or failed: {done.reason}")
        try:
            self.done_pub.publish(String(data=done.to_json()))
        except RCLError:
            if self.context.ok():
                raise  # a real failure; at shutdown the context went down between the step's end and its report

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

    def _on_estop(self, msg: Any) -> None:
        with self.lock:
            d = self.supervisor.set_estop(bool(msg.data))
        if msg.data:
            self.stop_reason = "estop"
            self.stop.set()
            if self.motion is not None:
                self.motion.hold()
            self.get_logger().error("ESTOP: motion stopped; every action is refused until estop is false")
            if self.active:
                self.markers_pub.publish(MarkerArray())
        else:
            self.get_logger().info("estop cleared")
        if d.done is not None:
            self._publish_done(d.done)

    def close(self, reason: str = "shutdown") -> None:
        """Process shutdown: hold the arm, answer a waiting plan, and let an executing step report its stop
        (bounded: a step_done that cannot go out within 1 s is not waited for)."""
        self._halt(reason)
        self._wait_worker(1.0)
        # the hold and the last step_done reach their readers before the process ends
        if self.motion is not None and self.context.ok():
            self.motion.flush(0.5)
        if self.context.ok():
            wait_acked((self.done_pub,), 0.5)

    def _halt(self, why: str) -> None:
        """Stop motion; a plan waiting for approval is answered now, an executing one by its worker."""
        self.stop_reason = why
        self.stop.set()
        if self.motion is not None and self.context.ok():
            try:
                self.motion.hold()
            except RCLError:  # the context went down between the check and the publish (shutdown)
                pass
        with self.lock:
            d = self.supervisor.drop_pending(f"dropped by {why}")
        if d.done is not None:
            self._publish_done(d.done)

    def _wait_worker(self, timeout_s: float = 5.0) -> None:
        if self.worker is not None and self.worker.is_alive():
            self.worker.join(timeout_s)

    def _tick(self) -> None:
        with self.lock:
            d = self.supervisor.tick(time.monotonic())
        if d.done is not None:
            self._publish_done(d.done)
        status = DiagnosticStatus(name="llara_ros: action_node", hardware_id=self.cfg.base_frame)
        status.level = DiagnosticStatus.ERROR if self.supervisor.estopped else (
            DiagnosticStatus.WARN if self.last_error else DiagnosticStatus.OK)  # fmt: skip
        status.message = "ESTOP" if self.supervisor.estopped else (self.last_error or "ok")
        status.values = [
            KeyValue(key="state", value=self.supervisor.state),
            KeyValue(key="lifecycle", value=self.state_label),
            KeyValue(key="active", value=str(self.active)),
            KeyValue(key="executor", value=self.cfg.executor),
            KeyValue(key="camera_info", value=str(self.camera is not None)),
            KeyValue(key="camera_pose", value=str(self._camera_pose() is not None)),
        ]
        self.diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))


def main(args: list[str] | None = None) -> int:
    return run_node(ActionNode, "action_node", args, threads=3)


if __name__ == "__main__":
    sys.exit(main())
