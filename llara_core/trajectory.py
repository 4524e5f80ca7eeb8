"""Straight tool-frame lines -> time-parameterized joint trajectories (IK per waypoint, URDF limits respected).

What a pick-and-place needs from an arm without a motion planner: the tool
moves along straight segments (approach, descend, lift, carry, …) with a
minimum-jerk profile; every waypoint is solved by IK warm-started from the
previous one (one branch), and the timing is stretched until every joint stays
under its URDF velocity limit. The scripted expert and the action node's
``joint_trajectory`` backend use this; MoveIt users get the same waypoints as
pose goals instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError
from llara_core.geometry import wrap_degrees, yaw_of
from llara_core.kinematics import IKError, RobotKinematics, topdown_pose

FloatArray = npt.NDArray[np.float64]


class MotionError(LlaraError, RuntimeError):
    """A motion could not be planned or did not do what it should (the message says which)."""


@dataclass(frozen=True)
class Timing:
    """How fast the tool moves along a straight segment."""

    lin_speed: float = 0.30  # m/s mean tool speed
    ang_speed: float = 1.5  # rad/s mean yaw rate
    control_dt: float = 0.02  # s between IK waypoints
    min_duration: float = 0.4  # s, shortest segment
    max_joint_step: float = 0.25  # rad between waypoints: more means IK switched branches


def relaxed_yaw(xy: npt.ArrayLike, offset: float = math.pi) -> float:
    """Tool yaw with the wrist at rest: the tool x axis points from the point back to the base (``offset`` = π).

    Arms whose tool frame is turned on the flange (a Panda hand: π/4 more) give
    their own offset.
    """
    p = np.asarray(xy, dtype=np.float64)
    return math.atan2(p[1], p[0]) + offset


def _min_jerk(s: FloatArray) -> FloatArray:
    return 10 * s**3 - 15 * s**4 + 6 * s**5


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
    q = np.asarray(q0, dtype=np.float64)
    out = np.empty((n, len(q)))
    for i, si in enumerate(s):
        p = A[:3, 3] + si * dp
        T = topdown_pose(p, relaxed_yaw(p, yaw_offset) + rel0 + si * (rel1 - rel0))
        try:
            q = kin.ik(T, q).q
        except IKError as exc:
            raise MotionError(f"unreachable waypoint {np.round(T[:3, 3], 3).tolist()}: {exc}") from exc
        out[i] = q
    steps = np.abs(np.diff(np.vstack([q0, out]), axis=0))
    if np.max(steps) > timing.max_joint_step:
        raise MotionError("IK jumped between branches on a straight segment")
    times = np.linspace(duration / n, duration, n)
    return retime_to_limits(times, np.asarray(q0, dtype=np.float64), out, kin.velocity_limits), out


def retime_to_limits(
    times: FloatArray, q0: FloatArray, Q: FloatArray, vmax: FloatArray, margin: float = 0.9
) -> FloatArray:
    """``times`` stretched uniformly so that no joint exceeds ``margin`` × its velocity limit between waypoints."""
    dt = np.diff(np.concatenate([[0.0], times]))
    dq = np.abs(np.diff(np.vstack([q0, Q]), axis=0))
    limits = np.where(np.asarray(vmax) > 0, np.asarray(vmax), np.inf) * margin
    ratio = float(np.max(dq / dt[:, None] / limits)) if len(dt) else 0.0
    return times * ratio if ratio > 1.0 else times
