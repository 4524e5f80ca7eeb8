"""Kinematics of any URDF arm with Pinocchio: forward kinematics, damped-least-squares IK, joint limits.

One class serves the simulator's arm, the action node on a lab's arm (its
``robot_description``) and bag conversion (end-effector poses from
``joint_states``). The arm is named by a base link, a tip link (the tool
frame the poses refer to) and, optionally, its joints; every other joint of
the URDF (fingers, a mobile base, a torso) is locked in place, so a Panda,
a UR5 or a robot with a gripper on a rail all reduce to the same question.

IK is damped least squares on SE(3) (Pinocchio's log map and frame Jacobian),
each iterate clamped to the URDF joint limits, with a trust region that keeps
the solution on the branch of the start configuration; on a redundant arm
(7 joints) a null-space term pulls the free joint motion towards a reference
configuration (the seed), so the elbow stays where it was instead of drifting
to a limit. :meth:`RobotKinematics.ik` raises :class:`IKError` with the
residual when the pose is not reached: nothing returns a wrong configuration.
:meth:`RobotKinematics.ik_candidates` is the seed search that finds a solution
when one exists: the current configuration, ``home``, the SRDF's named states,
then deterministic random seeds within the limits, solutions ordered by joint
distance to the current configuration.

Why hand-written on Pinocchio rather than a packaged solver: the problem is one
pose target with box joint limits, which clamped DLS solves in ~0.5 ms; the
maintained task-space packages on PyPI (pink, placo) solve differential IK
through a QP (qpsolvers + a backend) per iteration — more dependencies and
slower per solve, and they still leave the seed search and the branch
continuity along a straight line to the caller, which is the part that matters
here. Pinocchio gives the model, FK, Jacobians, the SE(3) log map and the SRDF
reader (``loadReferenceConfigurations``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError

FloatArray = npt.NDArray[np.float64]


class KinematicsError(LlaraError, ValueError):
    """The robot model cannot serve the request: unknown frame or joint, missing joint values."""


class IKError(LlaraError, RuntimeError):
    """The pose cannot be reached within the joint limits (message gives the residual)."""


@dataclass(frozen=True)
class IKResult:
    q: FloatArray
    pos_err: float
    rot_err: float
    iterations: int


def _build_model(urdf: str | Path | None, robot_description: str | None) -> Any:
    import pinocchio as pin

    if robot_description is not None:
        return pin.buildModelFromXML(robot_description)
    if urdf is None:
        raise KinematicsError("give a URDF path or a robot_description string")
    if not Path(urdf).is_file():
        raise KinematicsError(f"URDF {urdf} does not exist")
    return pin.buildModelFromUrdf(str(urdf))


class RobotKinematics:
    """FK/IK of ``tip_link`` in ``base_link`` over the arm's joints; other joints locked at ``locked`` (or 0)."""

    def __init__(
        self,
        urdf: str | Path | None = None,
        *,
        robot_description: str | None = None,
        base_link: str,
        tip_link: str,
        joints: Sequence[str] | None = None,
        locked: Mapping[str, float] | None = None,
        home: npt.ArrayLike | None = None,
        srdf: str | Path | None = None,
    ) -> None:
        import pinocchio as pin

        self._pin = pin
        full = _build_model(urdf, robot_description)
        self.full_model = full
        for link in (base_link, tip_link):
            if not full.existFrame(link):
                frames = sorted({f.name for f in full.frames})
                raise KinematicsError(f"frame {link!r} is not in the robot model; frames: {frames}")
        self.base_link, self.tip_link = base_link, tip_link
        chain = self._chain(full, tip_link)
        all_joints = [full.names[j] for j in range(1, full.njoints)]
        wanted = list(joints) if joints is not None else [n for n in all_joints if n in chain]
        unknown = [n for n in wanted if n not in all_joints]
        if unknown:
            raise KinematicsError(f"joints {unknown} are not in the robot model; joints: {all_joints}")
        q_lock = pin.neutral(full)
        for name, value in (locked or {}).items():
            if name not in all_joints:
                raise KinematicsError(f"locked joint {name!r} is not in the robot model")
            q_lock[full.joints[full.getJointId(name)].idx_q] = value
        lock_ids = [full.getJointId(n) for n in all_joints if n not in wanted]
        self.model = pin.buildReducedModel(full, lock_ids, q_lock) if lock_ids else full
        self.joint_names: tuple[str, ...] = tuple(self.model.names[i] for i in range(1, self.model.njoints))
        self.data = self.model.createData()
        self._base_id = self.model.getFrameId(base_link)
        self._tip_id = self.model.getFrameId(tip_link)
        self.lower = np.array(self.model.lowerPositionLimit, dtype=np.float64)
        self.upper = np.array(self.model.upperPositionLimit, dtype=np.float64)
        self.velocity_limits = np.array(self.model.velocityLimit, dtype=np.float64)
        home_q = np.asarray(home, dtype=np.float64) if home is not None else (self.lower + self.upper) / 2
        if home_q.shape != (len(self.joint_names),):
            raise KinematicsError(f"home has {home_q.size} values for joints {self.joint_names}")
        self.home: FloatArray = np.clip(home_q, self.lower, self.upper)
        self.named_states: dict[str, FloatArray] = self._named_states(full, srdf) if srdf else {}

    def _named_states(self, full: Any, srdf: str | Path) -> dict[str, FloatArray]:
        """The SRDF's group states that set every arm joint, as arm configurations (Pinocchio's SRDF reader)."""
        import xml.etree.ElementTree as ET

        path = Path(srdf)
        if not path.is_file():
            raise KinematicsError(f"SRDF {srdf} does not exist")
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise KinematicsError(f"SRDF {srdf} is not XML: {exc}") from exc
        self._pin.loadReferenceConfigurations(full, str(path), False)
        out: dict[str, FloatArray] = {}
        for state in root.iter("group_state"):
            name = state.get("name", "")
            given = {j.get("name") for j in state.iter("joint")}
            if not set(self.joint_names) <= given or name not in full.referenceConfigurations:
                continue  # a hand's state, or one that leaves arm joints unset
            q_full = full.referenceConfigurations[name]
            q = np.array([q_full[full.joints[full.getJointId(n)].idx_q] for n in self.joint_names])
            if self.within_limits(q):
                out[name] = q
        return out

    @staticmethod
    def _chain(model: Any, frame: str) -> set[str]:
        """Names of the joints that move ``frame``."""
        names = set()
        j = model.frames[model.getFrameId(frame)].parentJoint
        while j > 0:
            names.add(model.names[j])
            j = model.parents[j]
        return names

    # -- forward kinematics --------------------------------------------------------------------
    def _forward(self, q: npt.ArrayLike) -> None:
        self._pin.framesForwardKinematics(self.model, self.data, np.asarray(q, dtype=np.float64))

    def fk(self, q: npt.ArrayLike) -> FloatArray:
        """Tip pose (4×4) in the base link for joint values ``q`` (in :attr:`joint_names` order)."""
        self._forward(q)
        return np.array((self.data.oMf[self._base_id].inverse() * self.data.oMf[self._tip_id]).homogeneous)

    def frame_pose(self, frame: str, q: npt.ArrayLike | None = None) -> FloatArray:
        """Any frame's pose (4×4) in the base link, e.g. a fixed camera's optical frame."""
        if not self.model.existFrame(frame):
            raise KinematicsError(f"frame {frame!r} is not in the robot model")
        self._forward(self.home if q is None else q)
        fid = self.model.getFrameId(frame)
        return np.array((self.data.oMf[self._base_id].inverse() * self.data.oMf[fid]).homogeneous)

    def fk_named(self, names: Sequence[str], positions: Iterable[float]) -> FloatArray:
        """Tip pose from a JointState's names and positions (extra joints ignored, missing arm joints refused)."""
        values = dict(zip(names, positions, strict=False))
        missing = [n for n in self.joint_names if n not in values]
        if missing:
            raise KinematicsError(f"joint_states lacks joints {missing} needed for forward kinematics")
        return self.fk([values[n] for n in self.joint_names])

    def within_limits(self, q: npt.ArrayLike, tol: float = 1e-6) -> bool:
        a = np.asarray(q, dtype=np.float64)
        return bool(np.all(a >= self.lower - tol) and np.all(a <= self.upper + tol))

    # -- inverse kinematics --------------------------------------------------------------------
    def ik(
        self,
        target: npt.ArrayLike,
        q0: npt.ArrayLike | None = None,
        tol_pos: float = 5e-4,
        tol_rot: float = 5e-3,
        max_iter: int = 200,
        damping: float = 1e-3,
        q_ref: npt.ArrayLike | None = None,
        nullspace_gain: float = 0.1,
    ) -> IKResult:
        """Damped least-squares IK for a 4×4 tip pose in the base link, starting from ``q0`` (home if None).

        On an arm with more than six joints the self-motion is pulled towards
        ``q_ref`` (default: the start), so the solution stays near the seed.
        """
        pin = self._pin
        q = np.clip(np.array(self.home if q0 is None else q0, dtype=np.float64), self.lower, self.upper)
        ref = q.copy() if q_ref is None else np.asarray(q_ref, dtype=np.float64)
        redundant = len(q) > 6
        euclidean = self.model.nq == self.model.nv  # revolute/prismatic only: integrate is q + dq
        self._forward(q)
        goal = self.data.oMf[self._base_id] * pin.SE3(np.asarray(target, dtype=np.float64))
        err = np.full(6, np.inf)
        eye, damp = np.eye(len(q)), damping * np.eye(6)
        tp2, tr2 = tol_pos**2, tol_rot**2
        # Hot loop of every plan (~100 solves an answer): squared norms and in-place clipping, no extra allocations.
        for it in range(1, max_iter + 1):
            self._forward(q)
            err = pin.log6(self.data.oMf[self._tip_id].actInv(goal)).vector  # in the tip frame
            ep, er = err[:3] @ err[:3], err[3:] @ err[3:]
            if ep < tp2 and er < tr2:
                return IKResult(q, math.sqrt(ep), math.sqrt(er), it)
            J = pin.computeFrameJacobian(self.model, self.data, q, self._tip_id, pin.ReferenceFrame.LOCAL)
            dq = J.T @ np.linalg.solve(J @ J.T + damp, err)
            if redundant:  # exact projector: a damped one leaks the pull into the task and stalls short of tol
                dq += (eye - np.linalg.pinv(J, rcond=1e-4) @ J) @ (nullspace_gain * (ref - q))
            step2 = dq @ dq
            if step2 > 0.25:  # trust region (0.5 rad): keeps the iterate on the same branch
                dq *= 0.5 / math.sqrt(step2)
            q = q + dq if euclidean else pin.integrate(self.model, q, dq)
            np.clip(q, self.lower, self.upper, out=q)
        raise IKError(
            f"IK did not converge: position error {1000 * np.linalg.norm(err[:3]):.1f} mm, "
            f"rotation error {math.degrees(np.linalg.norm(err[3:])):.1f} deg after {max_iter} iterations"
        )

    def seeds(self, current: npt.ArrayLike | None = None) -> list[FloatArray]:
        """The deterministic IK seeds in order: the current configuration, home, the SRDF's named states."""
        out: list[FloatArray] = []
        for s in ([] if current is None else [np.asarray(current, dtype=np.float64)]) + [
            self.home,
            *self.named_states.values(),
        ]:
            if not any(np.allclose(s, o, atol=1e-6) for o in out):
                out.append(s)
        return out

    def random_configurations(self, n: int, seed: int = 0) -> FloatArray:
        """``n`` reproducible configurations within the limits (continuous-range joints drawn in ±π)."""
        rng = np.random.default_rng(seed)
        lo, hi = np.maximum(self.lower, -math.pi), np.minimum(self.upper, math.pi)
        return np.asarray(lo + (hi - lo) * rng.uniform(0.05, 0.95, (n, len(lo))), dtype=np.float64)

    def ik_candidates(
        self, target: npt.ArrayLike, current: npt.ArrayLike | None = None, restarts: int = 8, seed: int = 0
    ) -> Iterator[FloatArray]:
        """Distinct IK solutions of ``target``: those from :meth:`seeds` nearest ``current`` first, then random seeds.

        A generator, so a caller that takes the first solution pays for the
        deterministic seeds only; it yields nothing when the pose is out of reach.
        """
        near = np.asarray(self.home if current is None else current, dtype=np.float64)
        found: list[FloatArray] = []

        def new(q: FloatArray) -> bool:
            if any(np.max(np.abs(q - f)) < 1e-2 for f in found):
                return False
            found.append(q)
            return True

        fixed = []
        for s in self.seeds(current):
            try:
                q = self.ik(target, s).q
            except IKError:
                continue
            if new(q):
                fixed.append(q)
        yield from sorted(fixed, key=lambda q: float(np.linalg.norm(q - near)))
        for s in self.random_configurations(restarts, seed):
            try:
                q = self.ik(target, s, q_ref=near).q
            except IKError:
                continue
            if new(q):
                yield q


def topdown_pose(position: npt.ArrayLike, yaw: float) -> FloatArray:
    """Tool pose with the tool z axis pointing down and the tool x axis at ``yaw`` (rad) in the base frame.

    The fingers of a parallel gripper close along the tool y axis, i.e. across
    the direction ``yaw + 90°`` (REP 103 tool frames: z out of the flange).
    """
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:3, 0] = (c, s, 0.0)
    T[:3, 1] = (s, -c, 0.0)
    T[:3, 2] = (0.0, 0.0, -1.0)
    T[:3, 3] = np.asarray(position, dtype=np.float64)
    return T
