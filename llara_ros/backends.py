"""How a plan reaches the arm: ``dry_run`` (nothing), ``joint_trajectory`` (ros2_control topics), ``moveit`` (moveit_py).

Every backend runs one :class:`~llara_core.execution.ActionPlan` at a time in the
action node's worker thread and returns None when the step was executed, else
the reason it stopped. ``stop`` is set by an emergency stop: the backend then
stops commanding and holds the arm where it is.

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
from typing import Any, Protocol

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from llara_core.errors import ConfigError
from llara_core.execution import ActionPlan, Gripper, JointSegment, Motion
from llara_core.kinematics import RobotKinematics
from llara_core.robot import RobotConfig
from llara_ros.conversions import matrix_to_pose_msg

JointReader = Callable[[], dict[str, float] | None]


class Backend(Protocol):
    name: str
    needs_kinematics: bool

    def execute(self, plan: ActionPlan, stop: threading.Event) -> str | None: ...

    def hold(self) -> None: ...


class DryRunBackend:
    """Plans are drawn and published as goals; nothing is ever commanded (the default for a real arm)."""

    name = "dry_run"
    needs_kinematics = False

    def execute(self, plan: ActionPlan, stop: threading.Event) -> str | None:
        return None

    def hold(self) -> None:
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


class JointTrajectoryBackend:
    """IK-planned joint segments on the ros2_control joint_trajectory_controller topic; the gripper on its topic."""

    name = "joint_trajectory"
    needs_kinematics = True

    def __init__(
        self,
        node: Any,
        cfg: RobotConfig,
        kinematics: RobotKinematics,
        joint_reader: JointReader,
    ) -> None:
        from llara_ros.qos import COMMAND

        self.cfg, self.kin, self.read_joints = cfg, kinematics, joint_reader
        self.clock = node.get_clock()  # ROS time: the simulator's /clock with use_sim_time, else wall time
        self.traj_pub = node.create_publisher(JointTrajectory, f"/{cfg.controller}/joint_trajectory", COMMAND)
        self.grip_pub = node.create_publisher(Float64MultiArray, cfg.gripper_command_topic, COMMAND)

    def _current(self) -> np.ndarray | None:
        js = self.read_joints()
        if js is None or any(n not in js for n in self.kin.joint_names):
            return None
        return np.array([js[n] for n in self.kin.joint_names])

    def execute(self, plan: ActionPlan, stop: threading.Event) -> str | None:
        for item in plan.joints:
            if stop.is_set():
                return "stopped by estop"
            if isinstance(item, Gripper):
                value = self.cfg.gripper_closed_position if item.closed else float(item.opening or 0.0)
                self.grip_pub.publish(Float64MultiArray(data=[value]))
                if self._wait(self.cfg.gripper_wait_s, stop):
                    return "stopped by estop"
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
            return "stopped by estop"
        deadline = self._now() + self.cfg.arrival_timeout_s
        goal = seg.positions[-1]
        while self._now() < deadline:
            q = self._current()
            if q is not None and np.max(np.abs(q - goal)) <= self.cfg.joint_tolerance:
                return "stopped by estop" if self._wait(self.cfg.settle_s, stop) else None
            if self._wait(0.01, stop):
                return "stopped by estop"
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


class MoveItBackend:
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

    def __init__(self, cfg: RobotConfig, node_name: str = "llara_moveit_py", modules: tuple[Any, Any] | None = None):
        MoveItPy, PlanRequestParameters = modules or _import_moveit()
        self.cfg = cfg
        self.moveit = MoveItPy(node_name=node_name)
        self.arm = self.moveit.get_planning_component(cfg.arm_group)
        self.hand = self.moveit.get_planning_component(cfg.gripper_group) if cfg.gripper_group else None
        self.lin = None
        if cfg.pilz_lin:
            self.lin = PlanRequestParameters(self.moveit, "pilz_lin")
            self.lin.planning_pipeline = "pilz_industrial_motion_planner"
            self.lin.planner_id = "LIN"
        api = cfg.moveit_api
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
        straight = {"grasp", "lift", "place", "retreat"}  # the moves that must be lines, not any collision-free path
        for item in plan.items:
            if stop.is_set():
                return "stopped by estop"
            if isinstance(item, Motion):
                goal = PoseStamped()
                goal.header.frame_id = self.cfg.base_frame
                goal.pose = matrix_to_pose_msg(item.pose)
                self.arm.set_start_state_to_current_state()
                self.arm.set_goal_state(pose_stamped_msg=goal, pose_link=self.cfg.tool_frame)
                why = self._run(self.arm, self.cfg.arm_group, self.lin if item.label in straight else None)
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
