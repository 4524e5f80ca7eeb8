"""The robot side as configuration: which arm, which camera calibration, which workspace — loaded once.

:class:`RobotConfig` is what ``config/action.yaml`` holds (the action node's
parameters, ``llara plan --config``); :class:`Planner` loads the robot model,
the calibration and the workspace from it once and then answers
:func:`~llara_core.execution.plan_action` for any number of texts — a
calibration or a model's answers can be checked with the arm off, thousands of
texts a second.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from llara_core.config import check_choices, setting
from llara_core.errors import ConfigError
from llara_core.execution import ActionPlan, ExecutionSettings, Partial, Refusal, Workspace, plan_action
from llara_core.geometry import BASE_FRAME, CAMERA_FRAME, CameraModel, GeometryError, pose_to_matrix
from llara_core.kinematics import KinematicsError, RobotKinematics

Backend = Literal["dry_run", "joint_trajectory", "moveit"]
MoveItApi = Literal["auto", "humble", "jazzy"]


@dataclass(frozen=True)
class RobotConfig:
    """The action node's parameters (``config/action.yaml``); defaults are for a real arm: plan, command nothing."""

    backend: Backend = setting("dry_run", "dry_run plans and draws only; joint_trajectory or moveit move the arm")
    urdf: str | None = setting(None, "robot URDF (unset: the robot_description topic)", path=True)
    base_frame: str = setting(BASE_FRAME, "robot base frame: goals are expressed in it")
    tool_frame: str = setting("tcp", "tool frame whose pose the goals set (between the fingers, z out of the hand)")
    arm_joints: tuple[str, ...] = setting((), "the arm's joints (empty: every joint between base and tool)")
    home: tuple[float, ...] = setting((), "IK start configuration when no joint_states arrived (empty: mid-range)")
    camera_frame: str = setting(CAMERA_FRAME, "the camera's optical frame")
    camera_pose: tuple[float, ...] | None = setting(
        None, "x y z qx qy qz qw of the optical frame in the base frame (hand-eye calibration); unset: tf2", length=7
    )
    camera_info_file: str | None = setting(
        None, "calibration YAML (camera_calibration format) used when no camera_info arrives", path=True
    )
    rectified: bool = setting(False, "the image topic is rectified (image_rect*): project with P, not K and D")
    image_transport: Literal["raw", "compressed"] = setting(
        "raw", "camera topic type: sensor_msgs/Image (raw) or CompressedImage (compressed)"
    )
    workspace: tuple[float, ...] = setting(
        (0.15, 0.85, -0.45, 0.45, -0.01, 0.45),
        "xmin xmax ymin ymax zmin zmax (m, base frame) every waypoint must lie in",
        length=6,
    )
    partial: Partial = setting(
        "refuse", "an answer with any invalid step: refuse (nothing moves), or first_step (execute a valid first step)"
    )
    refine_grasp_with_image: bool = setting(True, "use the camera image to centre the grasp and turn the hand")
    use_depth: bool = setting(False, "lift points with the registered depth image instead of the table plane")
    max_image_age_s: float = setting(2.0, "an action is refused when the newest image is older than this")
    require_approval: bool = setting(False, "a plan waits for ~/approve (Trigger) before anything moves")
    approval_timeout_s: float = setting(60.0, "a pending plan is dropped after this")
    autostart: bool = setting(False, "configure and activate at start (the simulator); else the operator activates")
    controller: str = setting("joint_trajectory_controller", "joint_trajectory backend: <controller>/joint_trajectory")
    gripper_command_topic: str = setting(
        "/gripper_controller/commands", "std_msgs/Float64MultiArray: the gripper's position command (m per finger)"
    )
    gripper_closed_position: float = setting(0.0, "gripper command that closes the fingers (squeeze)")
    gripper_wait_s: float = setting(0.5, "seconds the fingers get after a gripper command")
    joint_tolerance: float = setting(0.01, "rad: the arm counts as arrived when every joint is this close")
    settle_s: float = setting(0.15, "seconds the arm rests at the end of each segment before the next command")
    arrival_timeout_s: float = setting(10.0, "seconds past a segment's duration before its execution fails")
    arm_group: str = setting("manipulator", "moveit: planning group of the arm")
    gripper_group: str = setting("gripper", "moveit: planning group of the hand (empty: no gripper)")
    gripper_open_state: str = setting("open", "moveit: SRDF named state of the open hand")
    gripper_closed_state: str = setting("close", "moveit: SRDF named state of the closed hand")
    pilz_lin: bool = setting(True, "moveit: straight approach and retreat through the Pilz LIN planner")
    moveit_api: MoveItApi = setting("auto", "moveit_py execute() signature: humble, or jazzy (Iron and later)")
    execution: ExecutionSettings = dataclasses.field(default_factory=ExecutionSettings)

    def __post_init__(self) -> None:
        check_choices(self)
        Workspace.from_bounds(self.workspace)
        if self.settle_s < 0:
            raise ValueError("settle_s must be >= 0")
        for name in ("max_image_age_s", "approval_timeout_s", "gripper_wait_s",
                     "joint_tolerance", "arrival_timeout_s"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.backend == "joint_trajectory" and not self.controller:
            raise ValueError("the joint_trajectory backend needs a controller name")

    @property
    def base_T_camera(self) -> npt.NDArray[np.float64] | None:
        if self.camera_pose is None:
            return None
        return pose_to_matrix(self.camera_pose[:3], self.camera_pose[3:])


def load_kinematics(cfg: RobotConfig, robot_description: str | None = None) -> RobotKinematics:
    """The arm's kinematic model from the URDF file, or the robot_description string."""
    if not cfg.urdf and not robot_description:
        raise ConfigError("set urdf (a URDF file), or publish robot_description")
    try:
        return RobotKinematics(
            cfg.urdf if cfg.urdf else None,
            robot_description=None if cfg.urdf else robot_description,
            base_link=cfg.base_frame,
            tip_link=cfg.tool_frame,
            joints=cfg.arm_joints or None,
            home=np.asarray(cfg.home) if cfg.home else None,
        )
    except KinematicsError as exc:
        raise ConfigError(str(exc)) from exc


def load_camera(cfg: RobotConfig) -> CameraModel | None:
    """The calibration file's camera model, when one is configured."""
    if not cfg.camera_info_file:
        return None
    try:
        return CameraModel.from_calibration_file(cfg.camera_info_file, rectified=cfg.rectified)
    except GeometryError as exc:
        raise ConfigError(str(exc)) from exc


class Planner:
    """Everything :func:`plan_action` needs that does not change between texts, loaded once from a RobotConfig."""

    def __init__(
        self,
        cfg: RobotConfig,
        kinematics: RobotKinematics | None = None,
        camera: CameraModel | None = None,
        base_T_camera: npt.ArrayLike | None = None,
    ) -> None:
        self.cfg = cfg
        self.kinematics = kinematics
        self.camera = camera if camera is not None else load_camera(cfg)
        self.base_T_camera = np.asarray(base_T_camera) if base_T_camera is not None else cfg.base_T_camera
        self.workspace = Workspace.from_bounds(cfg.workspace)

    def plan_json(self, answer: object, image: npt.NDArray[np.uint8] | None = None) -> dict[str, object]:
        """One ``llara plan --jsonl`` output line: ``{"ok", "reason", "steps": [{"waypoints", "gripper", …}]}``."""
        if not isinstance(answer, str):
            return {"ok": False, "reason": f"expected a JSON string, got {type(answer).__name__}", "steps": []}
        plan = self.plan(answer, image=image)
        if isinstance(plan, Refusal):
            return {"ok": False, "reason": plan.reason, "code": plan.code, "steps": []}
        return {"ok": True, "reason": None, "steps": [plan.to_json()]}

    def plan(
        self,
        answer: str,
        image: npt.NDArray[np.uint8] | None = None,
        q0: npt.ArrayLike | None = None,
        depth: npt.NDArray[np.generic] | None = None,
        camera: CameraModel | None = None,
        base_T_camera: npt.ArrayLike | None = None,
    ) -> ActionPlan | Refusal:
        """:func:`plan_action` with this robot's settings; ``camera``/``base_T_camera`` override the loaded ones."""
        return plan_action(
            answer,
            camera if camera is not None else self.camera,
            base_T_camera if base_T_camera is not None else self.base_T_camera,
            self.cfg.execution,
            image=image if self.cfg.refine_grasp_with_image else None,
            depth=depth if self.cfg.use_depth else None,
            workspace=self.workspace,
            kinematics=self.kinematics,
            q0=q0,
            partial=self.cfg.partial,
        )
