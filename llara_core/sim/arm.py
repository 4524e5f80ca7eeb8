"""The demo arm (``urdf/llara_arm.urdf``) as a :class:`~llara_core.planning.RobotKinematics`.

The URDF is the one source of truth: MuJoCo compiles the same file for the
physics (:mod:`llara_core.sim.scene`), Pinocchio reads it here for forward and
inverse kinematics — the same general solver the action node uses on a lab's
arm, configured with this arm's joints, tool frame and home pose.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llara_core.geometry import BASE_FRAME, CAMERA_FRAME
from llara_core.planning import IKError, IKResult, RobotKinematics, topdown_pose
from llara_core.resources import resource_path

ARM_JOINTS: tuple[str, ...] = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
FINGER_JOINTS: tuple[str, ...] = ("finger_left_joint", "finger_right_joint")
TCP_FRAME = "tcp"
# Arm above the table, tool pointing down, fingers clear of everything.
HOME_Q = np.array([0.0, 0.0, math.pi / 2, 0.0, math.pi / 2, 0.0])
FINGER_OPEN = 0.04  # m, per finger (URDF upper limit)

__all__ = ["ARM_JOINTS", "FINGER_JOINTS", "FINGER_OPEN", "HOME_Q", "TCP_FRAME", "ArmKinematics", "IKError",
           "IKResult", "topdown_pose", "urdf_path"]  # fmt: skip


def urdf_path() -> Path:
    """Locate ``llara_arm.urdf``: $LLARA_URDF, the source tree, or the installed share/llara_ros/urdf."""
    return resource_path("urdf", "llara_arm.urdf", env="LLARA_URDF")


class ArmKinematics(RobotKinematics):
    """FK/IK of the demo arm's TCP in base_link over its six arm joints (fingers locked open)."""

    def __init__(self, urdf: str | Path | None = None) -> None:
        super().__init__(urdf or urdf_path(), base_link=BASE_FRAME, tip_link=TCP_FRAME, joints=ARM_JOINTS, home=HOME_Q)

    @cached_property
    def camera_pose(self) -> npt.NDArray[np.float64]:
        """base_T_optical of the fixed camera, from the URDF."""
        return self.frame_pose(CAMERA_FRAME)
