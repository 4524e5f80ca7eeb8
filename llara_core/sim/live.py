"""The tabletop as a live robot: non-blocking stepping, joint-trajectory and gripper commands, episode events.

What ``sim_node`` runs (and what a test can drive without ROS): a timer calls
:meth:`LiveSim.advance` with the wall time that passed; commanded trajectories
play the way ros2_control's joint_trajectory_controller plays them (joints
matched by name, ``time_from_start``, a new trajectory replaces the running
one); the task's goal is checked whenever the arm rests with the gripper open,
and each episode ends with exactly one event: ``success``, ``failure`` (an
object fell off the table) or ``timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.config import setting
from llara_core.sim.arm import ARM_JOINTS, FINGER_JOINTS
from llara_core.sim.env import TabletopEnv
from llara_core.sim.tasks import Task, check_families, goal_status, make_task


@dataclass(frozen=True)
class SimConfig:
    """sim_node's parameters (``config/sim_demo.yaml``)."""

    family: str = setting("l1_placement", "task family of the scenes")
    seed: int = setting(0, "seed of the first scene; ~/reset moves to the next")
    image_size: tuple[int, ...] = setting((224, 224), "camera image width and height (px)", length=2)
    camera_rate: float = setting(10.0, "camera images per second of sim time")
    state_rate: float = setting(50.0, "joint_states / ee_pose / gripper_closed per second of sim time")
    real_time_factor: float = setting(1.0, "sim seconds per wall second (faster than real time above 1)")
    step_hz: float = setting(100.0, "how often the physics is advanced (wall clock)")
    episode_timeout_s: float = setting(60.0, "sim seconds after which an episode ends with a timeout event")
    publish_clock: bool = setting(True, "publish sim time on /clock (nodes with use_sim_time follow the simulator)")
    gripper_closed_below: float = setting(0.005, "a gripper command below this (m per finger) closes the fingers")
    controller: str = setting("joint_trajectory_controller", "trajectories on /<controller>/joint_trajectory")
    gripper_command_topic: str = setting("/gripper_controller/commands", "std_msgs/Float64MultiArray gripper command")
    auto_reset: bool = setting(False, "start the next seed's scene right after an episode event")
    autostart_episode: bool = setting(
        False,
        "start the 'seed' episode at start-up; unset: no task until the first ~/reset (which starts 'seed'), "
        "so a recording begun before the reset holds one whole episode",
    )

    def __post_init__(self) -> None:
        check_families([self.family])
        if min(self.camera_rate, self.state_rate, self.real_time_factor, self.step_hz, self.episode_timeout_s) <= 0:
            raise ValueError("rates, real_time_factor and episode_timeout_s must be > 0")


class LiveSim:
    """One scene at a time of ``cfg.family``, stepped in small increments; see the module docstring."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.env: TabletopEnv | None = None
        self.task: Task | None = None
        self.seed = cfg.seed
        self.events: list[dict[str, Any]] = []
        self.clock = 0.0  # sim seconds since start, across scenes (a clock never runs backwards)
        self.reset(cfg.seed)

    @property
    def time(self) -> float:
        assert self.env is not None
        return self.env.time - self._t0

    def reset(self, seed: int | None = None) -> Task:
        """A new scene (the next seed unless given); publishes nothing, returns the task."""
        if self.env is not None:
            self.env.close()
        self.seed = self.seed + 1 if seed is None else seed
        self.task = make_task(self.cfg.family, self.seed)
        w, h = self.cfg.image_size
        self.env = TabletopEnv(self.task.scene, width=w, height=h)
        self._t0 = self.env.time
        self.ended = False
        self.events.append(self._event("start"))
        return self.task

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def _event(self, kind: str, **extra: Any) -> dict[str, Any]:
        assert self.task is not None
        return {"event": kind, "family": self.task.family, "seed": self.seed, "instruction": self.task.instruction,
                "sim_time": round(self.time, 3) if self.env is not None else 0.0, **extra}  # fmt: skip

    # -- commands ----------------------------------------------------------------------------------
    def command_trajectory(self, names: Sequence[str], times: npt.ArrayLike, positions: npt.ArrayLike) -> float:
        """A JointTrajectory's joints (any order, every arm joint present), times and positions; ValueError if bad."""
        assert self.env is not None
        missing = [j for j in ARM_JOINTS if j not in names]
        if missing:
            raise ValueError(f"trajectory lacks joints {missing}; it names {list(names)}")
        P = np.asarray(positions, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != len(names):
            raise ValueError(f"positions must be (points, {len(names)}), got {P.shape}")
        order = [list(names).index(j) for j in ARM_JOINTS]
        return self.env.command_trajectory(times, P[:, order])

    def command_gripper(self, value: float) -> None:
        """Position command per finger (m): below ``gripper_closed_below`` closes (squeezes), else opens to it."""
        assert self.env is not None
        if not np.isfinite(value):
            raise ValueError(f"gripper command must be finite, got {value}")
        closed = value < self.cfg.gripper_closed_below
        self.env.command_gripper(closed, None if closed else float(value))

    def stop(self) -> None:
        assert self.env is not None
        self.env.stop_motion()

    # -- time ------------------------------------------------------------------------------------------
    def advance(self, wall_dt: float) -> list[dict[str, Any]]:
        """Step the physics by ``wall_dt × real_time_factor``; returns the episode events that happened."""
        assert self.env is not None and self.task is not None
        t = self.env.time
        self.env.step(wall_dt * self.cfg.real_time_factor)
        self.clock += self.env.time - t
        self.events.extend(self._check())
        out, self.events = self.events, []
        return out

    def _check(self) -> list[dict[str, Any]]:
        assert self.env is not None and self.task is not None
        if self.ended:
            return []
        poses = {o.name: self.env.object_pose(o.name) for o in self.task.scene.objects}
        fallen = [n for n, T in poses.items() if T[2, 3] < -0.05]
        if fallen:
            self.ended = True
            return [self._event("failure", reason=f"{', '.join(fallen)} fell off the table")]
        if not self.env.moving and not self.env.gripper_closed and all(goal_status(self.task, poses)):
            self.ended = True
            return [self._event("success")]
        if self.time > self.cfg.episode_timeout_s:
            self.ended = True
            return [self._event("timeout", reason=f"{self.cfg.episode_timeout_s:g} s of sim time")]
        return []

    # -- observations -----------------------------------------------------------------------------------
    def joint_state(self) -> tuple[list[str], list[float]]:
        assert self.env is not None
        return [*ARM_JOINTS, *FINGER_JOINTS], [*map(float, self.env.q), *map(float, self.env.finger_q)]
