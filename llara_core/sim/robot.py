"""The demo arm's kinematics, read from ``urdf/llara_arm.urdf`` with Pinocchio.

The URDF is the one source of truth: MuJoCo compiles the same file for the
physics (:mod:`llara_core.sim.scene`), Pinocchio reads it here for forward and
inverse kinematics. IK is damped least squares on the 6 arm joints (the finger
joints are locked out of the model), clamped to the URDF joint limits — a
standard, dependable solver for a 6-DOF arm; we use Pinocchio's FK, Jacobians
and SE(3) log rather than hand-written ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llara_core.resources import resource_path

ARM_JOINTS: tuple[str, ...] = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
FINGER_JOINTS: tuple[str, ...] = ("finger_left_joint", "finger_right_joint")
TCP_FRAME = "tcp"
CAMERA_OPTICAL_FRAME = "camera_color_optical_frame"
BASE_FRAME = "base_link"
# Arm above the table, tool pointing down, fingers clear of everything.
HOME_Q = np.array([0.0, 0.0, math.pi / 2, 0.0, math.pi / 2, 0.0])
FINGER_OPEN = 0.04  # m, per finger (URDF upper limit)


class IKError(RuntimeError):
    """The pose cannot be reached within the joint limits (message gives the residual)."""


def urdf_path() -> Path:
    """Locate ``llara_arm.urdf``: $LLARA_URDF, the source tree, or the installed share/llara_ros/urdf."""
    return resource_path("urdf", "llara_arm.urdf", env="LLARA_URDF")


@dataclass(frozen=True)
class IKResult:
    q: npt.NDArray[np.float64]
    pos_err: float
    rot_err: float
    iterations: int


class ArmKinematics:
    """FK/IK of the arm's TCP in the base frame (base_link = world of the URDF)."""

    def __init__(self, urdf: str | Path | None = None) -> None:
        import pinocchio as pin

        self._pin = pin
        self.urdf = Path(urdf) if urdf else urdf_path()
        full = pin.buildModelFromUrdf(str(self.urdf))
        lock = [full.getJointId(n) for n in FINGER_JOINTS]
        self.full_model = full
        self.model = pin.buildReducedModel(full, lock, pin.neutral(full))
        names = [self.model.names[i] for i in range(1, self.model.njoints)]
        if tuple(names) != ARM_JOINTS:
            raise ValueError(f"{self.urdf}: expected arm joints {ARM_JOINTS}, found {names}")
        self.data = self.model.createData()
        self.tcp_id = self.model.getFrameId(TCP_FRAME)
        self.lower = np.array(self.model.lowerPositionLimit)
        self.upper = np.array(self.model.upperPositionLimit)

    @cached_property
    def camera_pose(self) -> npt.NDArray[np.float64]:
        """base_T_optical of the fixed camera, from the URDF."""
        pin = self._pin
        d = self.full_model.createData()
        pin.framesForwardKinematics(self.full_model, d, pin.neutral(self.full_model))
        return np.array(d.oMf[self.full_model.getFrameId(CAMERA_OPTICAL_FRAME)].homogeneous)

    def fk(self, q: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """TCP pose (4×4, base frame) for arm joint angles ``q`` (6,)."""
        pin = self._pin
        pin.framesForwardKinematics(self.model, self.data, np.asarray(q, dtype=np.float64))
        return np.array(self.data.oMf[self.tcp_id].homogeneous)

    def ik(
        self,
        target: npt.ArrayLike,
        q0: npt.ArrayLike | None = None,
        tol_pos: float = 5e-4,
        tol_rot: float = 5e-3,
        max_iter: int = 200,
        damping: float = 1e-3,
    ) -> IKResult:
        """Damped least-squares IK for a 4×4 TCP pose, starting from ``q0`` (home if None).

        Joint limits are enforced by clamping each iterate. Raises :class:`IKError`
        with the remaining error when the pose is not reached — the caller
        decides; nothing silently returns a wrong configuration.
        """
        pin = self._pin
        goal = pin.SE3(np.asarray(target, dtype=np.float64))
        q = np.clip(np.array(HOME_Q if q0 is None else q0, dtype=np.float64), self.lower, self.upper)
        err = np.full(6, np.inf)
        for it in range(1, max_iter + 1):
            pin.framesForwardKinematics(self.model, self.data, q)
            cur = self.data.oMf[self.tcp_id]
            err = pin.log6(cur.actInv(goal)).vector  # in the TCP frame
            if np.linalg.norm(err[:3]) < tol_pos and np.linalg.norm(err[3:]) < tol_rot:
                return IKResult(q, float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:])), it)
            J = pin.computeFrameJacobian(self.model, self.data, q, self.tcp_id, pin.ReferenceFrame.LOCAL)
            JJt = J @ J.T + damping * np.eye(6)
            dq = J.T @ np.linalg.solve(JJt, err)
            step = np.linalg.norm(dq)
            if step > 0.5:  # trust region: keeps the iterate on the same branch
                dq *= 0.5 / step
            q = np.clip(pin.integrate(self.model, q, dq), self.lower, self.upper)
        raise IKError(
            f"IK did not converge: position error {1000 * np.linalg.norm(err[:3]):.1f} mm, "
            f"rotation error {math.degrees(np.linalg.norm(err[3:])):.1f} deg after {max_iter} iterations"
        )


def topdown_pose(position: npt.ArrayLike, yaw: float) -> npt.NDArray[np.float64]:
    """TCP pose with the tool z axis pointing down and the tool x axis at ``yaw`` (rad) in the base frame.

    The fingers close along the tool y axis, i.e. across the direction ``yaw + 90°``.
    """
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:3, 0] = (c, s, 0.0)
    T[:3, 1] = (s, -c, 0.0)
    T[:3, 2] = (0.0, 0.0, -1.0)
    T[:3, 3] = np.asarray(position, dtype=np.float64)
    return T
