"""The robot side as configuration: which arm, which camera calibration, which workspace — loaded once.

:class:`RobotConfig` is what ``config/action.yaml`` holds (the action node's
parameters, ``llara plan --config``); :class:`Planner` loads the robot model,
the calibration and the workspace from it once and then answers
:func:`~llara_core.planning.plan_action` for any number of texts — a
calibration or a model's answers can be checked with the arm off, thousands of
texts a second.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from llara_core.config import check_choices, setting
from llara_core.errors import ConfigError
from llara_core.geometry import BASE_FRAME, CAMERA_FRAME, CameraModel, GeometryError, pose_to_matrix
from llara_core.planning.kinematics import KinematicsError, RobotKinematics
from llara_core.planning.plan import ActionPlan, Refusal, plan_action
from llara_core.planning.settings import ExecutionSettings, Partial, Workspace

# The action node's keys that are not planning: its executor and lifecycle (llara_ros.action_node.ActionNodeConfig).
# ``llara plan --config`` reads the node's own parameters file and skips these.
NODE_ONLY_KEYS = ("executor", "autostart", "joint_trajectory", "moveit")


@dataclass(frozen=True)
class RobotConfig:
    """What the action node plans with (``config/action.yaml``, ``llara plan --config``): arm, camera, workspace.

    The executor's settings (MoveIt groups, ros2_control controller and
    gripper topics) belong to the node (``llara_ros.backends``), not here.
    """

    urdf: str | None = setting(None, "robot URDF (unset: the robot_description topic)", path=True)
    srdf: str | None = setting(None, "SRDF whose named states (e.g. 'ready') seed IK (optional)", path=True)
    base_frame: str = setting(BASE_FRAME, "robot base frame: goals are expressed in it")
    tool_frame: str = setting("tcp", "tool frame whose pose the goals set (between the fingers, z out of the hand)")
    arm_joints: tuple[str, ...] = setting((), "the arm's joints (empty: every joint between base and tool)")
    home: tuple[float, ...] = setting(
        (), "start configuration when no joint_states arrived, and an IK seed (empty: mid-range)"
    )
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
    execution: ExecutionSettings = dataclasses.field(default_factory=ExecutionSettings)

    def __post_init__(self) -> None:
        check_choices(self)
        Workspace.from_bounds(self.workspace)
        for name in ("max_image_age_s", "approval_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

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
            srdf=cfg.srdf,
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

    def plan_lines(
        self, lines: Iterable[str], image: npt.NDArray[np.uint8] | None = None
    ) -> Iterator[dict[str, object]]:
        """``llara plan --jsonl``: one :meth:`plan_json` result per non-empty line (a JSON-encoded action text);
        a line that is not JSON gets a refusal naming it, and the rest still plan."""
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)
            except json.JSONDecodeError as exc:
                yield {"ok": False, "reason": f"line {n} is not JSON: {exc.msg}", "steps": []}
            else:
                yield self.plan_json(text, image)

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
