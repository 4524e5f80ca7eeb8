"""How a pick-and-place moves: heights, distances, speeds, the workspace box, and what the gripper's symmetry allows.

One frozen dataclass (:class:`ExecutionSettings`) is the ``execution.*`` YAML
section, the ``--execution.*`` flags and the action node's ``execution.*``
parameters; the scripted expert, closed-loop evaluation, ``llara plan`` and
the action node all read the same values, so a plan checked offline is the
plan the arm runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from llara_core.config import setting

Partial = Literal["refuse", "first_step"]


@dataclass(frozen=True)
class Timing:
    """How fast the tool and the joints move."""

    lin_speed: float = 0.30  # m/s mean tool speed on straight segments
    ang_speed: float = 1.5  # rad/s mean yaw rate
    control_dt: float = 0.02  # s between trajectory points
    min_duration: float = 0.4  # s, shortest segment
    max_joint_step: float = 0.25  # rad between points of a straight segment: more means IK switched branches
    joint_speed_fraction: float = 0.5  # free-space moves: peak joint speed as a fraction of the URDF limit


@dataclass(frozen=True)
class ExecutionSettings:
    """Heights, distances and speeds of a pick-and-place; every value is a YAML key, flag and parameter.

    Heights are of the tool centre point above ``table_height`` (base frame). The
    defaults fit the demo arm: the demonstrations' keyframes (what the action
    text's points are projections of) are TCP positions at ``grasp_height``
    (pick) and about ``place_plane`` (place).
    """

    table_height: float = setting(0.0, "z of the table plane in the base frame (m)")
    grasp_height: float = setting(0.025, "TCP height at the grasp, and the lowest the TCP may go (m above table)")
    place_plane: float = setting(0.03, "plane the place point is lifted to (m above table)")
    release_height: float = setting(0.035, "TCP height at release (m above table)")
    carry_height: float = setting(0.17, "TCP height while carrying (m above table)")
    approach: float = setting(0.10, "pre-grasp / pre-place / retreat distance above the grasp or place pose (m)")
    release_opening: float = setting(0.032, "finger opening before a grasp and at release (m per finger)")
    refine_grasp: bool = setting(True, "centre the grasp on the object under the pick point (image outline)")
    yaw_offset_deg: float = setting(180.0, "tool yaw at rest relative to the direction from base to tool (deg)")
    symmetric_gripper: bool = setting(
        True, "a parallel gripper: hand yaw and yaw + 180 deg are the same grasp (the planner picks the reachable one)"
    )
    lin_speed: float = setting(0.30, "mean tool speed on straight segments (m/s)")
    ang_speed: float = setting(1.5, "mean tool yaw rate (rad/s)")
    joint_speed_fraction: float = setting(0.5, "free-space moves: peak joint speed as a fraction of the URDF limit")
    free_dip: float = setting(
        0.03, "a free-space (joint) move may take the TCP this far below its lower end; else it runs straight (m)"
    )
    ik_restarts: int = setting(8, "random IK seeds tried (deterministic) when the current, home and SRDF seeds fail")
    control_dt: float = setting(0.02, "time between trajectory points (s)")

    def __post_init__(self) -> None:
        for name in ("grasp_height", "place_plane", "release_height", "approach", "release_opening", "free_dip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.carry_height < max(self.grasp_height, self.release_height):
            raise ValueError("carry_height must be at least grasp_height and release_height")
        for name in ("lin_speed", "ang_speed", "control_dt"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.joint_speed_fraction <= 1:
            raise ValueError(f"joint_speed_fraction must be in (0, 1], got {self.joint_speed_fraction}")
        if self.ik_restarts < 0:
            raise ValueError(f"ik_restarts must be >= 0, got {self.ik_restarts}")

    @property
    def timing(self) -> Timing:
        return Timing(self.lin_speed, self.ang_speed, self.control_dt, joint_speed_fraction=self.joint_speed_fraction)

    @property
    def yaw_offset(self) -> float:
        return math.radians(self.yaw_offset_deg)

    def z(self, height: float) -> float:
        """A height above the table as a base-frame z."""
        return self.table_height + height


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box of the base frame every waypoint must lie in (m)."""

    x: tuple[float, float] = (-1.0, 1.0)
    y: tuple[float, float] = (-1.0, 1.0)
    z: tuple[float, float] = (-0.1, 1.0)

    @classmethod
    def from_bounds(cls, bounds: tuple[float, ...]) -> Workspace:
        """From ``(xmin, xmax, ymin, ymax, zmin, zmax)`` (the ``workspace`` parameter)."""
        if len(bounds) != 6 or any(bounds[i] >= bounds[i + 1] for i in (0, 2, 4)):
            raise ValueError(f"workspace must be xmin xmax ymin ymax zmin zmax with min < max, got {bounds}")
        return cls((bounds[0], bounds[1]), (bounds[2], bounds[3]), (bounds[4], bounds[5]))

    def contains(self, p: npt.ArrayLike) -> bool:
        x, y, z = np.asarray(p, dtype=np.float64)[:3]
        return bool(self.x[0] <= x <= self.x[1] and self.y[0] <= y <= self.y[1] and self.z[0] <= z <= self.z[1])
