"""Planning: the model's action text -> a checked base-frame plan and joint trajectories, or a typed refusal.

What the robot side decides, without ROS: :mod:`~.settings` (heights, speeds,
workspace), :mod:`~.kinematics` (any URDF arm on Pinocchio: FK, IK with a seed
search), :mod:`~.motions` (the pick-and-place waypoints; free-space moves in
joint space, approach and retreat straight), :mod:`~.plan` (text -> plan |
refusal, never raises), :mod:`~.planner` (the action node's configuration,
loaded once: ``llara plan``) and :mod:`~.supervisor` (approval, estop, one step
at a time). The simulator's expert, closed-loop evaluation, ``llara plan`` and
the action node all plan through here, so they measure the same planner.
"""

from llara_core.planning.kinematics import IKError, IKResult, KinematicsError, RobotKinematics, topdown_pose
from llara_core.planning.motions import (
    Gripper,
    JointSegment,
    Motion,
    MotionError,
    PlanItem,
    cartesian_segment,
    joint_plan,
    joint_segment,
    motion_plan,
    nearest_yaw,
    plan_motion,
    relaxed_yaw,
)
from llara_core.planning.plan import (
    ActionPlan,
    Outline,
    Refusal,
    StepPlan,
    depth_point,
    object_outline,
    plan_action,
    plan_step,
    select_step,
)
from llara_core.planning.planner import Planner, RobotConfig, load_camera, load_kinematics
from llara_core.planning.settings import ExecutionSettings, Partial, Timing, Workspace
from llara_core.planning.supervisor import Decision, StepDone, Supervisor

__all__ = [
    "ActionPlan",
    "Decision",
    "ExecutionSettings",
    "Gripper",
    "IKError",
    "IKResult",
    "JointSegment",
    "KinematicsError",
    "Motion",
    "MotionError",
    "Outline",
    "Partial",
    "PlanItem",
    "Planner",
    "Refusal",
    "RobotConfig",
    "RobotKinematics",
    "StepDone",
    "StepPlan",
    "Supervisor",
    "Timing",
    "Workspace",
    "cartesian_segment",
    "depth_point",
    "joint_plan",
    "joint_segment",
    "load_camera",
    "load_kinematics",
    "motion_plan",
    "nearest_yaw",
    "object_outline",
    "plan_action",
    "plan_motion",
    "plan_step",
    "relaxed_yaw",
    "select_step",
    "topdown_pose",
]  # fmt: skip
