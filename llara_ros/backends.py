"""How a plan reaches the arm, the action node's ``executor``: ``dry_run`` (nothing), ``joint_trajectory``
(ros2_control topics), ``moveit`` (moveit_py) — and each executor's configuration (``joint_trajectory.*``,
``moveit.*`` parameters), which the ROS-free planner does not need.

Every executor runs one :class:`~llara_core.planning.ActionPlan` at a time in the
action node's worker thread and returns None when the step was executed, else
the reason it stopped. ``stop`` is set by an emergency stop, a deactivation or
a shutdown: the executor then stops commanding (returns :data:`STOPPED`) and the
node holds the arm where it is.

joint_trajectory follows ros2_control's joint_trajectory_controller topic
convention: ``/<controller>/joint_trajectory`` (trajectory_msgs/JointTrajectory,
``header.stamp`` 0 = start now, ``time_from_start`` strictly increasing and
> 0, every joint named, the last point at zero velocity; a new trajectory
replaces the running one, which is how a hold stops it). The gripper is a
position command on its own topic (std_msgs/Float64MultiArray, as a
``position_controllers/JointGroupPositionController`` takes): control_msgs'
gripper action has no wheel for a plain venv.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from llara_core import topics
from llara_core.config import check_choices, setting
from llara_core.errors import ConfigError
from llara_core.planning import ActionPlan, Gripper, JointSegment, Motion, RobotKinematics
from llara_ros.conversions import matrix_to_pose_msg
from llara_ros.topics import publisher

JointReader = Callable[[], dict[str, float] | None]
STOPPED = "stopped"  # what an executor returns when ``stop`` was set; the node says why (estop, deactivation, shutdown)
ExecutorName = Literal["dry_run", "joint_trajectory", "moveit"]
MoveItApi = Literal["auto", "humble", "jazzy"]


@dataclass(frozen=True)
class JointTrajectoryConfig:
    """``joint_trajectory.*``: the ros2_control side of the joint_trajectory executor."""

    controller: str = setting("joint_trajectory_controller", "trajectories go to /<controller>/joint_trajectory")
    gripper_command_topic: str = setting(
        topics.GRIPPER_COMMAND.name, "std_msgs/Float64MultiArray: the gripper's position command (m per finger)"
    )
    gripper_closed_position: float = setting(0.0, "gripper command that closes the fingers (squeeze)")
    gripper_wait_s: float = setting(0.5, "seconds the fingers get after a gripper command")
    joint_tolerance: float = setting(0.01, "rad: the arm counts as arrived when every joint is this close")
    settle_s: float = setting(0.15, "seconds the arm rests at the end of each segment before the next command")
    arrival_timeout_s: float = setting(10.0, "seconds past a segment's duration before its execution fails")

    def __post_init__(self) -> None:
        if not self.controller:
            raise ValueError("joint_trajectory.controller must name the controller")
        if self.settle_s < 0:
            raise ValueError("joint_trajectory.settle_s must be >= 0")
        for name in ("gripper_wait_s", "joint_tolerance", "arrival_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"joint_trajectory.{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class MoveItConfig:
    """``moveit.*``: planning groups and planners of the moveit executor."""

    arm_group: str = setting("manipulator", "planning group of the arm")
    gripper_group: str = setting("gripper", "planning group of the hand (empty: no gripper)")
    gripper_open_state: str = setting("open", "SRDF named state of the open hand")
    gripper_closed_state: str = setting("close", "SRDF named state of the closed hand")
    pilz_lin: bool = setting(True, "straight approach and retreat through the Pilz LIN planner")
    api: MoveItApi = setting("auto", "moveit_py execute() signature: humble, or jazzy (Iron and later)")

    def __post_init__(self) -> None:
        check_choices(self)


class Executor(Protocol):
    """Runs one plan at a time on the node's worker thread: None when done, else why it stopped."""

    name: str
    needs_kinematics: bool

    def execute(self, plan: ActionPlan, stop: threading.Event) -> str | None: ...

    def hold(self) -> None: ...

    def flush(self, timeout_s: float) -> None:
        """Wait (bounded) until what was commanded reached its readers: the process may end right after."""

    def close(self) -> None: ...


def wait_acked(publishers: Any, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` per publisher for its reliable readers to acknowledge every message.

    A reliable writer destroyed at once can drop what is not yet acknowledged (seen under load at shutdown: the
    hold trajectory never arrived). The context can go down between the check and the call (a second signal).
    """
    from rclpy._rclpy_pybind11 import RCLError  # not re-exported by rclpy.exceptions
    from rclpy.duration import Duration as RclpyDuration

    for pub in publishers:
        try:
            pub.wait_for_all_acked(RclpyDuration(seconds=timeout_s))
        except RCLError:
            return


class DryRunExecutor:
    """Plans are drawn and published as goals; nothing is ever commanded (the default for a real arm)."""

    name = "dry_run"
    needs_kinematics = False

    def execute(self, plan: ActionPlan, stop: threading.Event) -> str | None:
        return None

    def hold(self) -> None:
        return None

    def flush(self, timeout_s: float) -> None:
        return None

    def close(self) -> None:
        return None


def _duration(t: float) -> Duration:
    sec = int(t)
    return Duration(sec=sec, nanosec=round((t - sec) * 1e9))


def trajectory_msg(joints: tuple[str, ...], times: np.ndarray, positions: np.ndarray) -> JointTrajectory:
    """A JointTrajectory (start now) with velocities by finite differences and the last point at rest."""
    msg = JointTrajectory()
    msg.joint_names = list(joints)
    t = np.asarray(times, dtype=np.float64)
    Q = np.asarray(positions, dtype=np.float64)
    vel = np.gradient(Q, t, axis=0) if len(t) > 2 else np.zeros_like(Q)
    vel[-1] = 0.0
    for ti, qi, vi in zip(t, Q, vel, strict=True):
        pt = JointTrajectoryPoint()
        pt.positions = [float(v) for v in qi]
        pt.velocities = [float(v) for v in vi]
        pt.time_from_start = _duration(float(ti))
        msg.points.append(pt)
    return msg


class JointTrajectoryExecutor:
    """IK-planned joint segments on the ros2_control joint_trajectory_controller topic; the gripper on its topic.

    Both publishers are lifecycle publishers of the action node: nothing goes
    out unless the node is active.
    """

    name = "joint_trajectory"
    needs_kinematics = True

    def __init__(
        self, node: Any, cfg: JointTrajectoryConfig, kinematics: RobotKinematics, joint_reader: JointReader
    ) -> None:
        self.node, self.cfg, self.kin, self.read_joints = node, cfg, kinematics, joint_reader
        self.clock = node.get_clock()  # ROS time: the simulator's /clock with use_sim_time, else wall time
        self.traj_pub = publisher(node, topics.JOINT_TRAJECTORY, topics.trajectory_topic(cfg.controller), True)
        self.grip_pub = publisher(node, topics.GRIPPER_COMMAND, cfg.gripper_command_topic, True)

    def flush(self, timeout_s: float) -> None:
        """The hold and gripper commands acknowledged by the controller before the process ends."""
        wait_acked((self.traj_pub, self.grip_pub), timeout_s)

    def close(self) -> None:
        """Destroy the publishers (the node's cleanup)."""
        for pub in (self.traj_pub, self.grip_pub):
            self.node.destroy_lifecycle_publisher(pub)

    def _current(self) -> np.ndarray | None:
        js = self.read_joints()
        if js is None or any(n not in js for n in self.kin.joint_names):
            return None
        return np.array([js[n] for n in self.kin.joint_names])

    def execute(self, plan: ActionPlan, stop: threading.Event) -> str | None:
        for item in plan.joints:
            if stop.is_set():
                return STOPPED
            if isinstance(item, Gripper):
                value = self.cfg.gripper_closed_position if item.closed else float(item.opening or 0.0)
                self.grip_pub.publish(Float64MultiArray(data=[value]))
                if self._wait(self.cfg.gripper_wait_s, stop):
                    return STOPPED
                continue
            assert isinstance(item, JointSegment)
            self.traj_pub.publish(trajectory_msg(self.kin.joint_names, item.times, item.positions))
            why = self._arrive(item, stop)
            if why:
                return why
        return None

    def _now(self) -> float:
        return float(self.clock.now().nanoseconds) * 1e-9

    def _wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` of ROS time (sim time under use_sim_time); True when ``stop`` was set meanwhile."""
        end = self._now() + seconds
        while self._now() < end:
            if stop.wait(0.01):
                return True
        return stop.is_set()

    def _arrive(self, seg: JointSegment, stop: threading.Event) -> str | None:
        """Wait the segment's duration, then until the joints are within tolerance of its last point, then settle."""
        if self._wait(float(seg.times[-1]), stop):
            return STOPPED
        deadline = self._now() + self.cfg.arrival_timeout_s
        goal = seg.positions[-1]
        while self._now() < deadline:
            q = self._current()
            if q is not None and np.max(np.abs(q - goal)) <= self.cfg.joint_tolerance:
                return STOPPED if self._wait(self.cfg.settle_s, stop) else None
            if self._wait(0.01, stop):
                return STOPPED
        q = self._current()
        err = "no joint_states" if q is None else f"{np.max(np.abs(q - goal)):.3f} rad off"
        return f"{seg.label}: the arm did not arrive within {self.cfg.arrival_timeout_s:g} s ({err})"

    def hold(self) -> None:
        """Replace the running trajectory by one that holds the current position (joint_trajectory_controller)."""
        q = self._current()
        if q is None:
            return
        self.traj_pub.publish(trajectory_msg(self.kin.joint_names, np.array([0.05]), q[None, :]))


def _import_moveit() -> tuple[Any, Any]:
    """moveit_py's MoveItPy and PlanRequestParameters, or ConfigError naming what to install."""
    try:
        from moveit.planning import MoveItPy, PlanRequestParameters  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        distro = os.environ.get("ROS_DISTRO", "<distro>")
        raise ConfigError(
            f"backend moveit needs moveit_py (import failed: {exc}); install ros-{distro}-moveit-py and source the "
            "workspace, or use backend joint_trajectory / dry_run"
        ) from exc
    return MoveItPy, PlanRequestParameters


class MoveItExecutor:
    """Each motion as a pose goal of the arm's planning component; the gripper by SRDF named states.

    The moveit_py calls, pinned against MoveIt 2's bindings
    (``moveit_py/src/moveit/moveit_ros/moveit_cpp/moveit_cpp.cpp`` and
    ``planning_component.cpp``): ``MoveItPy(node_name=…)``;
    ``get_planning_component(name)``; ``set_start_state_to_current_state()``;
    ``set_goal_state(pose_stamped_msg=…, pose_link=…)`` or
    ``set_goal_state(configuration_name=…)``; ``plan(parameters)`` — first
    positional argument in both Humble (``parameters``) and Jazzy
    (``single_plan_parameters``) — returning a MotionPlanResponse that is
    falsy on failure and holds ``.trajectory``; ``PlanRequestParameters(moveit,
    namespace)`` with ``planning_pipeline`` and ``planner_id`` for Pilz LIN.
    ``execute`` differs: Humble (2.5.x) ``execute(group_name, robot_trajectory,
    blocking=True)``; Iron (2.7) and later incl. Jazzy 2.10 and Kilted
    ``execute(robot_trajectory, controllers)`` (blocking). moveit_py has no
    Cartesian-path call: straight approach and retreat go through Pilz LIN.
    """

    name = "moveit"
    needs_kinematics = False

    def __init__(
        self,
        cfg: MoveItConfig,
        base_frame: str,
        tool_frame: str,
        node_name: str = "llara_moveit_py",
        modules: tuple[Any, Any] | None = None,
    ):
        MoveItPy, PlanRequestParameters = modules or _import_moveit()
        self.cfg, self.base_frame, self.tool_frame = cfg, base_frame, tool_frame
        self.moveit = MoveItPy(node_name=node_name)
        self.arm = self.moveit.get_planning_component(cfg.arm_group)
        self.hand = self.moveit.get_planning_component(cfg.gripper_group) if cfg.gripper_group else None
        self.lin = None
        if cfg.pilz_lin:
            self.lin = PlanRequestParameters(self.moveit, "pilz_lin")
            self.lin.planning_pipeline = "pilz_industrial_motion_planner"
            self.lin.planner_id = "LIN"
        api = cfg.api
        if api == "auto":
            api = "humble" if os.environ.get("ROS_DISTRO", "") == "humble" else "jazzy"
        self.api = api

    def _run(self, component: Any, group: str, params: Any) -> str | None:
        result = component.plan(params) if params is not None else component.plan()
        if not result:
            return f"MoveIt found no plan for {group}"
        if self.api == "humble":
            self.moveit.execute(group, result.trajectory, blocking=True)
        else:
            self.moveit.execute(result.trajectory, controllers=[])
        return None

    def execute(self, plan: ActionPlan, stop: threading.Event) -> str | None:
        for item in plan.items:
            if stop.is_set():
                return STOPPED
            if isinstance(item, Motion):
                goal = PoseStamped()
                goal.header.frame_id = self.base_frame
                goal.pose = matrix_to_pose_msg(item.pose)
                self.arm.set_start_state_to_current_state()
                self.arm.set_goal_state(pose_stamped_msg=goal, pose_link=self.tool_frame)
                # approach and retreat must be lines (Pilz LIN); free-space moves take any collision-free path (PTP)
                why = self._run(self.arm, self.cfg.arm_group, self.lin if item.straight else None)
            else:
                if self.hand is None:
                    continue
                self.hand.set_start_state_to_current_state()
                state = self.cfg.gripper_closed_state if item.closed else self.cfg.gripper_open_state
                self.hand.set_goal_state(configuration_name=state)
                why = self._run(self.hand, self.cfg.gripper_group, None)
            if why:
                return f"{item.label}: {why}"
        return None

    def hold(self) -> None:
        """Stop the running execution (TrajectoryExecutionManager.stop_execution; the binding is spelt 'trajactory')."""
        manager = getattr(self.moveit, "get_trajactory_execution_manager", None)
        if manager is not None:
            manager().stop_execution()

    def flush(self, timeout_s: float) -> None:
        """Nothing to wait for: MoveItPy's stop_execution returns once the controllers were told."""
        return None

    def close(self) -> None:
        """Stop any execution; MoveItPy owns its own node and shuts down with the process."""
        self.hold()
