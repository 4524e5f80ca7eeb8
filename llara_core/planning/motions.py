"""A pick-and-place as MoveIt plans one: free-space moves in joint space, only approach and retreat in straight lines.

:func:`motion_plan` is the waypoint sequence every executor runs (pre-grasp,
open, descend, close, lift, carry, descend, release, retreat), each motion
marked *free* or *straight*. :func:`joint_plan` turns it into joint
trajectories for an arm without a motion planner (the simulator's expert,
closed-loop evaluation, the action node's ``joint_trajectory`` executor);
the ``moveit`` executor sends the same poses as PTP / Pilz LIN goals.

- **Free-space moves** (to pre-grasp, the carry to pre-place) are what MoveIt's
  PTP/OMPL and every vendor's "move joint" do: IK for the target pose, chosen
  among the candidates of :meth:`~llara_core.planning.kinematics.RobotKinematics.ik_candidates`
  (nearest the current configuration first), then a minimum-jerk joint
  interpolation within the URDF velocity limits. Forcing these into straight
  tool lines, as this module once did, refused a quarter of the answers a
  Panda can execute (IK branch switches on long lines) and every answer
  without a good start pose. A joint move whose tool dips more than
  ``free_dip`` below its lower end (towards the table) runs as a straight
  line instead.
- **Straight segments** (descend to the grasp, lift, descend to the place,
  retreat) are solved point by point, each IK warm-started from the previous
  point, so the arm stays on one branch; a jump between branches is refused.
- When a candidate configuration leaves no continuous straight segment, the
  next candidate is tried; with a symmetric gripper the whole plan is tried
  again with the hand turned by 180° (the same grasp).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError
from llara_core.geometry import wrap_degrees, yaw_of
from llara_core.planning.kinematics import IKError, RobotKinematics, topdown_pose
from llara_core.planning.settings import ExecutionSettings, Timing

FloatArray = npt.NDArray[np.float64]
FALLBACK_JOINT_SPEED = 1.0  # rad/s where a URDF gives no velocity limit (0)
IK_SPACING = 0.01  # m between the points of a straight segment that are solved by IK


class MotionError(LlaraError, RuntimeError):
    """A motion could not be planned or did not do what it should (the message says which)."""


def relaxed_yaw(xy: npt.ArrayLike, offset: float = math.pi) -> float:
    """Tool yaw with the wrist at rest: the tool x axis points from the point back to the base (``offset`` = π).

    Arms whose tool frame is turned on the flange (a Panda hand: π/4 more) give
    their own offset.
    """
    p = np.asarray(xy, dtype=np.float64)
    return math.atan2(p[1], p[0]) + offset


def nearest_yaw(angle: float, symmetry: float, preferred: float) -> float:
    """``angle + k·symmetry`` closest to ``preferred`` (rad): the equivalent hand yaw the wrist reaches easiest."""
    return angle + round((preferred - angle) / symmetry) * symmetry


def _min_jerk(s: FloatArray) -> FloatArray:
    return 10 * s**3 - 15 * s**4 + 6 * s**5


# -- the waypoint sequence -------------------------------------------------------------------------
@dataclass(frozen=True)
class Motion:
    """Move the tool to ``pose`` (4×4, base frame, tool down): in a straight line, or free (joint space)."""

    label: str
    pose: FloatArray
    straight: bool = True


@dataclass(frozen=True)
class Gripper:
    """Close the gripper, or open it to ``opening`` (m per finger)."""

    label: str
    closed: bool
    opening: float | None = None


PlanItem = Motion | Gripper


def motion_plan(
    pick: npt.ArrayLike,
    place: npt.ArrayLike,
    yaw: float,
    rotation: float,
    settings: ExecutionSettings = ExecutionSettings(),
    half_width: float = 0.02,
) -> tuple[PlanItem, ...]:
    """The pick-and-place every executor runs: grasp at ``pick`` with hand yaw ``yaw``, release at ``place``.

    ``rotation`` (rad, counter-clockwise in the base frame) turns the object on
    the way; ``half_width`` of the object sets the opening before the grasp.
    Neither point goes below ``grasp_height`` above the table.
    """
    floor = settings.z(settings.grasp_height)
    p = np.asarray(pick, dtype=np.float64).copy()
    q = np.asarray(place, dtype=np.float64).copy()
    p[2], q[2] = max(p[2], floor), max(q[2], floor)
    carry = settings.z(settings.carry_height)
    opening = max(half_width + 0.015, settings.release_opening)
    turned = yaw + rotation
    return (
        Motion("pre_grasp", topdown_pose([*p[:2], max(carry, p[2] + settings.approach)], yaw), straight=False),
        Gripper("open", False, opening),
        Motion("grasp", topdown_pose(p, yaw)),
        Gripper("close", True),
        Motion("lift", topdown_pose([*p[:2], carry], yaw)),
        Motion("pre_place", topdown_pose([*q[:2], carry], turned), straight=False),
        Motion("place", topdown_pose(q, turned)),
        Gripper("release", False, opening),
        Motion("retreat", topdown_pose([*q[:2], q[2] + settings.approach], turned)),
    )


# -- segments ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JointSegment:
    """One motion as a joint trajectory: times from its start (s), positions (N, joints)."""

    label: str
    times: FloatArray
    positions: FloatArray


def cartesian_segment(
    kin: RobotKinematics,
    q0: npt.ArrayLike,
    T0: npt.ArrayLike,
    T1: npt.ArrayLike,
    timing: Timing = Timing(),
    yaw_offset: float = math.pi,
) -> tuple[FloatArray, FloatArray]:
    """Joint trajectory (times from now, positions (N, joints)) moving the tool from ``T0`` to ``T1`` in a line.

    Both poses point the tool down. Position moves linearly and yaw turns the
    short way relative to the relaxed wrist yaw at each point (which tracks the
    last joint: the short way in base-frame yaw can be the long way for the
    wrist and run it into its limit), on a minimum-jerk profile. Raises
    :class:`MotionError` if a waypoint is unreachable or IK jumps branches.
    """
    A, B = np.asarray(T0, dtype=np.float64), np.asarray(T1, dtype=np.float64)
    dp = B[:3, 3] - A[:3, 3]
    rel0 = math.radians(wrap_degrees(math.degrees(yaw_of(A) - relaxed_yaw(A[:3, 3], yaw_offset))))
    rel1 = math.radians(wrap_degrees(math.degrees(yaw_of(B) - relaxed_yaw(B[:3, 3], yaw_offset))))
    duration = max(
        timing.min_duration, float(np.linalg.norm(dp)) / timing.lin_speed, abs(rel1 - rel0) / timing.ang_speed
    )
    n = max(2, math.ceil(duration / timing.control_dt))
    s = _min_jerk(np.linspace(1 / n, 1.0, n))
    # IK at points >= IK_SPACING apart along the line (and the last); the trajectory points between them are
    # interpolated in joint space: over 1 cm the tool leaves the line by ~0.2 mm at most (joint steps of ~0.05 rad), and the
    # minimum-jerk profile puts most points within a millimetre of each other near the ends.
    span = max(float(np.linalg.norm(dp)), abs(rel1 - rel0) * 0.1, 1e-9)  # 0.1 m per rad of wrist turn
    solve, last = [], 0.0
    for i, si in enumerate(s):
        if (si - last) * span >= IK_SPACING or i == n - 1:
            solve.append(float(si))
            last = si
    q = np.asarray(q0, dtype=np.float64)
    known_s, known_q = [0.0], [q]
    for si in solve:
        p = A[:3, 3] + si * dp
        T = topdown_pose(p, relaxed_yaw(p, yaw_offset) + rel0 + si * (rel1 - rel0))
        try:
            q = kin.ik(T, q).q
        except IKError as exc:
            raise MotionError(f"unreachable waypoint {np.round(T[:3, 3], 3).tolist()}: {exc}") from exc
        known_s.append(si)
        known_q.append(q)
    K = np.asarray(known_q)
    out = np.stack([np.interp(s, known_s, K[:, j]) for j in range(K.shape[1])], axis=1)
    if np.max(np.abs(np.diff(K, axis=0))) > timing.max_joint_step:
        raise MotionError("IK jumped between branches on a straight segment")
    times = np.linspace(duration / n, duration, n)
    return retime_to_limits(times, np.asarray(q0, dtype=np.float64), out, kin.velocity_limits), out


def joint_segment(
    kin: RobotKinematics, q0: npt.ArrayLike, q1: npt.ArrayLike, timing: Timing = Timing()
) -> tuple[FloatArray, FloatArray]:
    """A free-space move: minimum-jerk joint interpolation ``q0`` -> ``q1``, peak joint speeds within the limits.

    The duration is the longest of: each joint's travel at
    ``joint_speed_fraction`` of its URDF limit (a minimum-jerk profile peaks at
    1.875× its mean speed), the tool's travel at ``lin_speed``, and
    ``min_duration``.
    """
    a, b = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    vmax = np.where(kin.velocity_limits > 0, kin.velocity_limits, FALLBACK_JOINT_SPEED) * timing.joint_speed_fraction
    tool = float(np.linalg.norm(kin.fk(b)[:3, 3] - kin.fk(a)[:3, 3]))
    duration = max(timing.min_duration, float(np.max(1.875 * np.abs(b - a) / vmax)), tool / timing.lin_speed)
    n = max(2, math.ceil(duration / timing.control_dt))
    s = _min_jerk(np.linspace(1 / n, 1.0, n))
    Q = a + s[:, None] * (b - a)
    return np.linspace(duration / n, duration, n), Q


def retime_to_limits(
    times: FloatArray, q0: FloatArray, Q: FloatArray, vmax: FloatArray, margin: float = 0.9
) -> FloatArray:
    """``times`` stretched uniformly so that no joint exceeds ``margin`` × its velocity limit between waypoints."""
    dt = np.diff(np.concatenate([[0.0], times]))
    dq = np.abs(np.diff(np.vstack([q0, Q]), axis=0))
    limits = np.where(np.asarray(vmax) > 0, np.asarray(vmax), np.inf) * margin
    ratio = float(np.max(dq / dt[:, None] / limits)) if len(dt) else 0.0
    return times * ratio if ratio > 1.0 else times


# -- the joint planner ------------------------------------------------------------------------------
def _lowest_tool_z(kin: RobotKinematics, Q: FloatArray) -> float:
    """The lowest tool height along a joint move (every fourth point: the move is smooth)."""
    return min(float(kin.fk(q)[2, 3]) for q in (*Q[::4], Q[-1]))


def _free_move(
    kin: RobotKinematics, q: FloatArray, goal: FloatArray, target: Motion, settings: ExecutionSettings
) -> JointSegment | None:
    """The joint move to configuration ``goal``, or a straight line where the joint move dips; None if neither."""
    times, Q = joint_segment(kin, q, goal, settings.timing)
    start = kin.fk(q)
    floor = min(float(start[2, 3]), float(target.pose[2, 3])) - settings.free_dip
    if _lowest_tool_z(kin, Q) >= floor:
        return JointSegment(target.label, times, Q)
    if start[2, 2] > -0.99:  # the tool does not point down: no straight line from here
        return None
    try:
        times, Q = cartesian_segment(kin, q, start, target.pose, settings.timing, settings.yaw_offset)
    except MotionError:
        return None
    return JointSegment(target.label, times, Q)


def _straight_run(
    kin: RobotKinematics, q: FloatArray, pose: FloatArray, items: tuple[PlanItem, ...], settings: ExecutionSettings
) -> list[JointSegment | Gripper]:
    """The straight motions and gripper commands of ``items`` from ``q`` at ``pose``; MotionError if one fails."""
    out: list[JointSegment | Gripper] = []
    for it in items:
        if isinstance(it, Gripper):
            out.append(it)
            continue
        times, Q = cartesian_segment(kin, q, pose, it.pose, settings.timing, settings.yaw_offset)
        out.append(JointSegment(it.label, times, Q))
        q, pose = Q[-1], it.pose
    return out


def _phases(items: tuple[PlanItem, ...]) -> Iterator[tuple[Motion | None, tuple[PlanItem, ...]]]:
    """``items`` cut before each free motion: (the free motion or None, the straight motions and grippers after it)."""
    start, head = 0, None
    for i, it in enumerate(items):
        if isinstance(it, Motion) and not it.straight:
            if i > start or head is not None:
                yield head, items[start:i]
            head, start = it, i + 1
    yield head, items[start:]


def joint_plan(
    kin: RobotKinematics, q0: npt.ArrayLike, items: tuple[PlanItem, ...], settings: ExecutionSettings
) -> tuple[JointSegment | Gripper, ...]:
    """Every motion of ``items`` as joint segments from ``q0`` (IK and limits checked); MotionError if not.

    Each free motion takes the first IK candidate (nearest ``q0`` first) from
    which the straight motions after it are continuous.
    """
    q = np.clip(np.asarray(q0, dtype=np.float64), kin.lower, kin.upper)
    pose = kin.fk(q)
    out: list[JointSegment | Gripper] = []
    for head, tail in _phases(items):
        if head is None:
            run = _straight_run(kin, q, pose, tail, settings)
        else:
            run, why = (
                [],
                f"{head.label} at {np.round(head.pose[:3, 3], 3).tolist()} is unreachable: no IK solution from any seed",
            )
            for goal in kin.ik_candidates(head.pose, q, settings.ik_restarts):
                move = _free_move(kin, q, goal, head, settings)
                if move is None:
                    why = f"{head.label}: the move there dips towards the table and no straight line reaches it"
                    continue
                try:
                    run = [move, *_straight_run(kin, move.positions[-1], head.pose, tail, settings)]
                    break
                except MotionError as exc:
                    why = f"after {head.label}: {exc}"
            else:
                raise MotionError(why)
        out.extend(run)
        last = next((s for s in reversed(run) if isinstance(s, JointSegment)), None)
        if last is not None:
            q = last.positions[-1]
            pose = kin.fk(q)
    return tuple(out)


def plan_motion(
    kin: RobotKinematics,
    q0: npt.ArrayLike,
    pick: npt.ArrayLike,
    place: npt.ArrayLike,
    yaw: float,
    rotation: float,
    settings: ExecutionSettings = ExecutionSettings(),
    half_width: float = 0.02,
) -> tuple[tuple[PlanItem, ...], tuple[JointSegment | Gripper, ...]]:
    """:func:`motion_plan` + :func:`joint_plan`; a symmetric gripper also tries the hand turned by 180°.

    Returns the waypoint sequence that was planned and its joint segments;
    MotionError (the first attempt's reason) when no attempt plans.
    """
    first: MotionError | None = None
    for y in (yaw, yaw + math.pi) if settings.symmetric_gripper else (yaw,):
        items = motion_plan(pick, place, y, rotation, settings, half_width)
        try:
            return items, joint_plan(kin, q0, items, settings)
        except MotionError as exc:
            first = first or exc
    assert first is not None
    raise first
