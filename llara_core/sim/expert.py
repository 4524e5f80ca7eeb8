"""The scripted expert: solves every task family from ground truth, and records demonstrations.

Each pick-and-place is planned as straight Cartesian segments of the TCP
(pre-grasp above the object, descend, close, lift, carry at a safe height,
descend, release, retreat) with minimum-jerk timing, turned into joint
trajectories by Pinocchio IK and executed by the arm's servos in MuJoCo. The
grasp is real: the fingers squeeze the object and friction carries it.

The same motion primitive (:func:`pick_place`) executes a policy's predicted
step in closed-loop evaluation, so the expert and the learned policy move the
arm the same way and differ only in where they choose to pick and place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from llara_core.episodes import Episode
from llara_core.execution import nearest_yaw, relaxed_yaw
from llara_core.geometry import wrap_degrees, yaw_of
from llara_core.sim.env import TabletopEnv
from llara_core.sim.robot import ArmKinematics, IKError, topdown_pose
from llara_core.sim.scene import GRASP_HALF_WIDTH, GRASP_SYMMETRY, OBJECT_HEIGHT, TARGET_TOP
from llara_core.sim.tasks import Task, goal_status, make_task

CARRY_Z = 0.17  # m, TCP height while carrying (object bottom clears the bowl wall by ~10 cm)
APPROACH = 0.10  # m, pre-grasp / pre-place height above the grasp / place point
MIN_GRASP_Z = 0.025  # m, lowest TCP height (finger tips 1 cm above the table)
LIN_SPEED = 0.30  # m/s mean TCP speed of a segment
ANG_SPEED = 1.5  # rad/s mean yaw rate
# Per-finger opening (m) before a grasp and at release: never below this, so that a finger-position
# threshold (e.g. 0.026 m with 4 mm hysteresis) tells open from closed on any object (closed <= 0.022 m).
RELEASE_OPENING = 0.032
CONTROL_DT = 0.02  # s between IK waypoints (50 Hz)
# Multi-step tasks place objects side by side along the target's x axis, this far from its center (m):
# wide enough that a bar (8 cm) and a block never touch, and that the fingers, closing across the line,
# never touch the object placed before.
MULTI_SLOT = 0.0375


class MotionError(RuntimeError):
    """A motion could not be planned or did not do what it should (the message says which)."""


@dataclass
class ExpertResult:
    """What happened: success of the task predicate, the reason for a failure, and the recording."""

    success: bool
    reason: str = ""
    collisions: int = 0
    episode: Episode | None = None
    steps_done: int = 0
    goals: list[bool] = field(default_factory=list)


def _min_jerk(s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def plan_line(
    kin: ArmKinematics, q0: npt.ArrayLike, T0: npt.ArrayLike, T1: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Joint trajectory (times from now, positions (N, 6)) moving the TCP along a straight line.

    Position moves linearly and yaw turns the short way, both on a minimum-jerk
    profile; every waypoint is solved by IK warm-started from the previous one
    (so the arm stays on one branch). Raises :class:`MotionError` if any
    waypoint is unreachable.
    """
    A, B = np.asarray(T0), np.asarray(T1)
    dp = B[:3, 3] - A[:3, 3]
    # Yaw is interpolated relative to the arm's relaxed wrist yaw at each point, which tracks joint6: the
    # short way in base-frame yaw can be the long way for the wrist (and run it into its limit).
    rel0 = math.radians(wrap_degrees(math.degrees(yaw_of(A) - relaxed_yaw(A[:3, 3]))))
    rel1 = math.radians(wrap_degrees(math.degrees(yaw_of(B) - relaxed_yaw(B[:3, 3]))))
    duration = max(0.4, float(np.linalg.norm(dp)) / LIN_SPEED, abs(rel1 - rel0) / ANG_SPEED)
    n = max(2, math.ceil(duration / CONTROL_DT))
    times = np.linspace(duration / n, duration, n)
    s = _min_jerk(times / duration)
    q = np.asarray(q0, dtype=np.float64)
    out = np.empty((n, 6))
    for i, si in enumerate(s):
        p = A[:3, 3] + si * dp
        T = topdown_pose(p, relaxed_yaw(p) + rel0 + si * (rel1 - rel0))
        try:
            q = kin.ik(T, q).q
        except IKError as exc:
            raise MotionError(f"unreachable waypoint {np.round(T[:3, 3], 3).tolist()}: {exc}") from exc
        out[i] = q
    if np.max(np.abs(np.diff(np.vstack([q0, out]), axis=0))) > 0.25:
        raise MotionError("IK jumped between branches on a straight segment")
    return times, out


def move_to(env: TabletopEnv, kin: ArmKinematics, target: npt.ArrayLike) -> None:
    """Move the TCP from its commanded pose to ``target`` (top-down pose) along a straight line."""
    q0 = env.commanded_q
    times, Q = plan_line(kin, q0, kin.fk(q0), target)
    env.execute(times, Q)


def grasp_yaw(obj_yaw: float, shape: str, xy: npt.ArrayLike) -> float:
    """The hand yaw among the object's grasp symmetries closest to the arm's relaxed wrist orientation."""
    return nearest_yaw(obj_yaw, GRASP_SYMMETRY[shape], relaxed_yaw(xy))


def pick_place(
    env: TabletopEnv,
    kin: ArmKinematics,
    pick_xyz: npt.ArrayLike,
    place_xyz: npt.ArrayLike,
    yaw: float,
    rotation: float = 0.0,
    half_width: float = 0.02,
    obj: str | None = None,
) -> None:
    """One LLaRA action step: grasp at ``pick_xyz`` with hand yaw ``yaw``, release at ``place_xyz``.

    ``rotation`` (rad, counter-clockwise in the base frame) turns the object on
    the way. ``obj`` names the object the fingers may touch (collision
    bookkeeping). Raises :class:`MotionError` on an unreachable pose.
    """
    pick = np.asarray(pick_xyz, dtype=np.float64).copy()
    place = np.asarray(place_xyz, dtype=np.float64).copy()
    pick[2] = max(pick[2], MIN_GRASP_Z)
    place[2] = max(place[2], MIN_GRASP_Z)
    env.handling = None
    move_to(env, kin, topdown_pose([*pick[:2], max(CARRY_Z, pick[2] + APPROACH)], yaw))
    env.set_gripper(False, opening=max(half_width + 0.015, RELEASE_OPENING), wait_s=0.2)
    env.handling = obj
    move_to(env, kin, topdown_pose(pick, yaw))
    env.set_gripper(True)
    move_to(env, kin, topdown_pose([*pick[:2], CARRY_Z], yaw))
    move_to(env, kin, topdown_pose([*place[:2], CARRY_Z], yaw + rotation))
    move_to(env, kin, topdown_pose(place, yaw + rotation))
    env.set_gripper(False, opening=max(half_width + 0.015, RELEASE_OPENING), wait_s=0.3)
    move_to(env, kin, topdown_pose([*place[:2], place[2] + APPROACH], yaw + rotation))
    env.handling = None


def run_expert(task: Task, env: TabletopEnv, kin: ArmKinematics | None = None, record: bool = True) -> ExpertResult:
    """Solve ``task`` in ``env`` (freshly reset) from ground truth; record an Episode when rendering."""
    kin = kin or ArmKinematics()
    if record:
        env.start_recording()
    step_objects: list[str] = []
    reason = ""
    multi = len(task.goals) > 1
    for k, (obj_name, target_name) in enumerate(task.goals):
        spec = task.scene.by_name(obj_name)
        T_obj = env.object_pose(obj_name)
        T_tgt = env.object_pose(target_name)
        yaw = grasp_yaw(yaw_of(T_obj), spec.shape, T_obj[:2, 3])
        line = yaw_of(T_tgt)
        place_xy = T_tgt[:2, 3].copy()
        rotation = 0.0
        if multi:  # slot k along the target's x axis; turn the object so the fingers close across that line
            place_xy += (1 if k % 2 == 0 else -1) * MULTI_SLOT * np.array([math.cos(line), math.sin(line)])
            final = nearest_yaw(line, math.pi, relaxed_yaw(place_xy))  # keeps the wrist near its middle
            rotation = math.radians(wrap_degrees(math.degrees(final - yaw)))
        place = [*place_xy, T_tgt[2, 3] + TARGET_TOP[target_name] + OBJECT_HEIGHT / 2 + 0.004]
        try:
            pick_place(
                env, kin, T_obj[:3, 3], place, yaw, rotation, half_width=GRASP_HALF_WIDTH[spec.shape], obj=obj_name
            )
        except MotionError as exc:
            reason = f"step {k + 1} ({obj_name}): {exc}"
            break
        step_objects.append(obj_name)
        if not goal_status(_single(task, k), {n: env.object_pose(n) for n in (obj_name, target_name)})[0]:
            z = env.object_pose(obj_name)[2, 3]
            reason = f"step {k + 1}: {obj_name} not in the {target_name} after release (z = {z:.3f} m)"
            break
    env.run_for(0.3)
    if record:
        env.stop_recording()
    poses = {o.name: env.object_pose(o.name) for o in task.scene.objects}
    goals = goal_status(task, poses)
    success = all(goals)
    if success and reason:
        reason = ""
    if not success and not reason:
        reason = "goal predicate false at the end"
    episode = None
    if record and env.render_enabled:
        episode = env.episode(
            f"{task.family}-{task.seed:06d}",
            task.instruction,
            family=task.family,
            level=task.level,
            seed=task.seed,
            step_objects=step_objects,
            expert_success=success,
        )
    return ExpertResult(success, reason, len(env.collisions), episode, len(step_objects), goals)


def _single(task: Task, k: int) -> Task:
    return Task(task.family, task.seed, task.scene, task.instruction, [task.goals[k]])


def expert_success(family: str, seeds: Sequence[int]) -> list[dict[str, object]]:
    """Run the expert (no rendering) on each seed of ``family``; one row per seed: success, reason, collisions."""
    kin = ArmKinematics()
    rows = []
    for seed in seeds:
        task = make_task(family, seed)
        with TabletopEnv(task.scene, render=False) as env:
            res = run_expert(task, env, kin, record=False)
        rows.append(
            {"family": family, "seed": seed, "success": res.success, "reason": res.reason, "collisions": res.collisions}
        )
    return rows
