"""The scripted expert: solves every task family from ground truth, and records demonstrations.

Each pick-and-place is planned by the action node's planner
(:func:`llara_core.planning.plan_motion`: joint-space moves to pre-grasp and
pre-place, straight descend, lift, place and retreat, minimum-jerk timing,
Pinocchio IK) and executed by the arm's servos in MuJoCo. The
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

from llara_core.datasets.episodes import Episode
from llara_core.geometry import wrap_degrees, yaw_of
from llara_core.planning import (
    ExecutionSettings,
    Gripper,
    JointSegment,
    MotionError,
    cartesian_segment,
    nearest_yaw,
    plan_motion,
    relaxed_yaw,
)
from llara_core.sim.arm import ArmKinematics
from llara_core.sim.env import TabletopEnv
from llara_core.sim.scene import GRASP_HALF_WIDTH, GRASP_SYMMETRY, OBJECT_HEIGHT, TARGET_TOP
from llara_core.sim.tasks import Task, episode_id, goal_status, make_task

EXPERT = ExecutionSettings()  # the demonstrations' heights and speeds: what the shipped model learned from
# Multi-step tasks place objects side by side along the target's x axis, this far from its center (m):
# wide enough that a bar (8 cm) and a block never touch, and that the fingers, closing across the line,
# never touch the object placed before.
MULTI_SLOT = 0.0375
# Seconds the fingers get after each gripper command of the plan.
GRIPPER_WAIT_S = {"open": 0.2, "close": 0.4, "release": 0.3}


@dataclass
class ExpertResult:
    """What happened: success of the task predicate, the reason for a failure, and the recording."""

    success: bool
    reason: str = ""
    collisions: int = 0
    episode: Episode | None = None
    steps_done: int = 0
    goals: list[bool] = field(default_factory=list)


def move_to(env: TabletopEnv, kin: ArmKinematics, target: npt.ArrayLike, settings: ExecutionSettings = EXPERT) -> None:
    """Move the TCP from its commanded pose to ``target`` (top-down pose) along a straight line."""
    q0 = env.commanded_q
    times, Q = cartesian_segment(kin, q0, kin.fk(q0), target, settings.timing, settings.yaw_offset)
    env.execute(times, Q)


def execute_joints(env: TabletopEnv, joints: tuple[JointSegment | Gripper, ...], obj: str | None = None) -> None:
    """Run the joint segments of a plan (:func:`~llara_core.planning.plan_motion`) in the simulator (blocking).

    ``obj`` names the object the fingers may touch between opening and
    retreat (collision bookkeeping).
    """
    env.handling = None
    for it in joints:
        if isinstance(it, Gripper):
            env.set_gripper(it.closed, opening=it.opening, wait_s=GRIPPER_WAIT_S.get(it.label, 0.3))
            if it.label == "open":
                env.handling = obj
        else:
            env.execute(it.times, it.positions)
    env.handling = None


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
    settings: ExecutionSettings = EXPERT,
) -> None:
    """One LLaRA action step: grasp at ``pick_xyz`` with hand yaw ``yaw``, release at ``place_xyz``.

    ``rotation`` (rad, counter-clockwise in the base frame) turns the object on
    the way. The plan is :func:`~llara_core.planning.plan_motion`'s from the
    commanded configuration, the one the action node sends to a real arm.
    Raises :class:`MotionError` when it cannot be planned.
    """
    _, joints = plan_motion(kin, env.commanded_q, pick_xyz, place_xyz, yaw, rotation, settings, half_width)
    execute_joints(env, joints, obj)


def expert_scene(family: str, seed: int, width: int = 224, height: int = 224) -> tuple[Task, ExpertResult]:
    """One scene solved by the expert, recorded at the camera size (``llara sim-render``, the pipeline check)."""
    task = make_task(family, seed)
    with TabletopEnv(task.scene, width=width, height=height) as env:
        return task, run_expert(task, env)


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
            episode_id(task.family, task.seed),
            task.instruction,
            family=task.family,
            level=task.level,
            seed=task.seed,
            step_objects=step_objects,
            expert_success=success,
        )
    return ExpertResult(success, reason, len(env.collisions), episode, len(step_objects), goals)


def expert_answers(family: str, seed: int) -> list[str]:
    """The expert's steps of (family, seed) as the answers a perfect model would give, one query each.

    The oracle of the closed loop: what ``scripts/closed_loop_dds.py`` sends to
    the action node to measure the robot side alone.
    """
    from llara_core.language.actions import render_step

    task = make_task(family, seed)
    with TabletopEnv(task.scene) as env:
        result = run_expert(task, env)
    if result.episode is None:
        raise MotionError(f"the expert failed {family} seed {seed}: {result.reason}")
    return [render_step(step, 1) for step in result.episode.action_steps()]


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
