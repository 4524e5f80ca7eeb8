"""The MuJoCo tabletop: URDF in both engines, IK, camera calibration, tasks, the expert, failure reporting."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from llara_core.datasets.bags import read_episode_bag
from llara_core.datasets.reader import read_dataset
from llara_core.geometry import base_to_normalized, yaw_of
from llara_core.sim.arm import ARM_JOINTS, HOME_Q, ArmKinematics, IKError, topdown_pose, urdf_path
from llara_core.sim.env import TabletopEnv
from llara_core.sim.expert import MotionError, grasp_yaw, move_to, pick_place, run_expert
from llara_core.sim.scene import CAMERA_NAME, COLORS, GRASPABLE_SHAPES, TARGET_SHAPES, ObjectSpec, Scene
from llara_core.sim.tasks import (
    FAMILIES,
    HELD_OUT_COMBOS,
    NOVEL_SHAPES,
    TRAIN_FAMILIES,
    goal_status,
    make_task,
)


@pytest.fixture(scope="module")
def kin() -> ArmKinematics:
    return ArmKinematics()


def test_urdf_is_one_source_for_pinocchio_and_mujoco(kin):
    """FK of the TCP and the camera pose agree between Pinocchio and MuJoCo at random configurations."""
    env = TabletopEnv(Scene([ObjectSpec("pad", None, (0.5, 0.0), 0.0)]), render=False)
    m, d = env.model, env.data
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.uniform(kin.lower, kin.upper)
        d.qpos[env._arm_qadr] = q
        mujoco.mj_kinematics(m, d)
        assert np.allclose(env.tcp_pose(), kin.fk(q), atol=1e-9)
    assert np.allclose(env.camera_pose, kin.camera_pose, atol=1e-9)
    for j, lo, hi in zip(ARM_JOINTS, kin.lower, kin.upper, strict=True):
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        assert np.allclose(m.jnt_range[jid], (lo, hi))
    assert urdf_path().name == "llara_arm.urdf"


def test_ik_reaches_the_workspace_within_limits_and_refuses_the_impossible(kin):
    rng = np.random.default_rng(1)
    for _ in range(30):
        p = [rng.uniform(0.3, 0.65), rng.uniform(-0.26, 0.26), rng.uniform(0.025, 0.3)]
        T = topdown_pose(p, grasp_yaw(rng.uniform(-np.pi, np.pi), "block", p))
        res = kin.ik(T)
        assert np.all(res.q >= kin.lower) and np.all(res.q <= kin.upper)
        assert np.linalg.norm(kin.fk(res.q)[:3, 3] - p) < 1e-3
        assert np.allclose(kin.fk(res.q)[:3, :3], T[:3, :3], atol=1e-2)
    with pytest.raises(IKError, match="did not converge"):
        kin.ik(topdown_pose([1.5, 0.0, 0.1], 0.0))


def test_camera_info_matches_the_renderer_within_2px():
    """The true grasp point, projected with the CameraInfo + URDF pose, lands on the object in MuJoCo's image."""
    for family, seed in (("l1_placement", 0), ("l3_novel", 1), ("multi_step", 2)):
        task = make_task(family, seed)
        with TabletopEnv(task.scene) as env:
            seg_r = mujoco.Renderer(env.model, env.height, env.width)
            seg_r.enable_segmentation_rendering()
            seg_r.update_scene(env.data, camera=CAMERA_NAME)
            seg = seg_r.render()
            seg_r.close()
            centers = {}
            for name, _ in task.goals:
                geoms = np.flatnonzero(env.model.geom_bodyid == env._obj_body[name])
                mask = np.isin(seg[..., 0], geoms) & (seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM)
                assert mask.sum() > 50, f"{name} not visible"
                v, u = np.nonzero(mask)
                centers[name] = np.array([u.mean(), v.mean()])
            res = run_expert(task, env)
        assert res.success, res.reason
        ep = res.episode
        for (name, _), st in zip(task.goals, ep.steps(), strict=True):
            grasp = ep.states[st.pick_state].ee_pose[:3, 3]
            uv = ep.camera.normalized_to_pixel(base_to_normalized(ep.camera, ep.camera_pose, grasp))
            assert np.linalg.norm(uv - centers[name]) <= 2.0, (family, name, uv, centers[name])


def test_task_families_are_deterministic_and_keep_held_out_objects_out_of_training():
    shapes, colors = set(), set()
    for family in FAMILIES:
        for seed in range(60):
            t = make_task(family, seed)
            assert make_task(family, seed).instruction == t.instruction
            assert 2 <= len(t.scene.objects) <= 6
            names = [o.name for o in t.scene.objects]
            assert len(set(names)) == len(names)
            combos = {(o.color, o.shape) for o in t.scene.graspables}
            shapes |= {o.shape for o in t.scene.objects}
            colors |= {o.color for o in t.scene.graspables}
            moved = {(t.scene.by_name(o).color, t.scene.by_name(o).shape) for o, _ in t.goals}
            if family in TRAIN_FAMILIES:
                assert not combos & HELD_OUT_COMBOS and not {s for _, s in combos} & set(NOVEL_SHAPES)
            elif family == "l2_combinatorial":
                assert moved <= HELD_OUT_COMBOS
            elif family == "l3_novel":
                assert {s for _, s in moved} <= set(NOVEL_SHAPES)
    assert shapes == set(GRASPABLE_SHAPES) | set(TARGET_SHAPES) and len(shapes) >= 4
    assert colors == set(COLORS) and len(colors) >= 6
    with pytest.raises(ValueError, match="unknown task family"):
        make_task("l9", 0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_expert_solves_every_family_with_real_contacts(family, kin):
    for seed in (100, 101):
        task = make_task(family, seed)
        with TabletopEnv(task.scene, render=False) as env:
            start = {o.name: env.object_pose(o.name)[:3, 3].copy() for o in task.scene.graspables}
            res = run_expert(task, env, kin, record=False)
            assert res.success, (seed, res.reason)
            assert res.collisions == 0, env.collisions
            for obj, _ in task.goals:  # the object really travelled
                assert np.linalg.norm(env.object_pose(obj)[:2, 3] - start[obj][:2]) > 0.05


def _grasp_and_lift(env: TabletopEnv, kin: ArmKinematics, obj: ObjectSpec) -> float:
    """Grasp ``obj`` from above and lift it to carrying height; returns the hand yaw used."""
    T = env.object_pose(obj.name)
    yaw = grasp_yaw(yaw_of(T), obj.shape, T[:2, 3])
    move_to(env, kin, topdown_pose([*T[:2, 3], 0.17], yaw))
    env.set_gripper(False, opening=0.035)
    env.handling = obj.name
    move_to(env, kin, topdown_pose(T[:3, 3], yaw))
    env.set_gripper(True)
    move_to(env, kin, topdown_pose([*T[:2, 3], 0.17], yaw))
    return yaw


def test_grasp_holds_during_transport(kin):
    """Mid-carry the object hangs between the fingers, lifted off the table (no teleporting)."""
    task = make_task("l1_placement", 3)
    obj, target = task.goals[0]
    with TabletopEnv(task.scene, render=False) as env:
        yaw = _grasp_and_lift(env, kin, task.scene.by_name(obj))
        dest = env.object_pose(target)[:2, 3]
        move_to(env, kin, topdown_pose([*dest, 0.17], yaw))
        held = env.object_pose(obj)[:3, 3]
        assert held[2] > 0.12 and np.linalg.norm(held - env.tcp_pose()[:3, 3]) < 0.02
        assert env.fingers_touch(obj)


def test_episode_from_the_expert_matches_ground_truth(kin):
    task = make_task("multi_step", 5)
    with TabletopEnv(task.scene) as env:
        starts = {o: env.object_pose(o)[:3, 3].copy() for o, _ in task.goals}
        res = run_expert(task, env, kin)
    ep = res.episode
    assert res.success and ep is not None
    assert ep.instruction == task.instruction and ep.metadata["family"] == "multi_step"
    assert [k.kind for k in ep.keyframes()] == ["pick", "place", "pick", "place"]
    steps = ep.action_steps()
    assert [s.object for s in steps] == [o for o, _ in task.goals]
    for s, (obj, _) in zip(steps, task.goals, strict=True):
        want = base_to_normalized(ep.camera, ep.camera_pose, starts[obj])
        assert np.abs(np.subtract(s.pick, want)).max() < 0.01
    first, last = ep.frames[0], ep.frames[-1]
    assert first.image.shape == (224, 224, 3) and first.image.std() > 10
    assert {b.name for b in first.objects} == {o.name for o in task.scene.objects}
    for b in first.objects:
        assert 0 <= b.cx <= 1 and 0 <= b.cy <= 1 and 0 < b.w < 0.5 and 0 < b.h < 0.5
    assert not np.array_equal(first.image, last.image)
    # rotation_deg is LLaRA's clockwise-positive turn: the negative of the base-frame yaw change
    st = ep.steps()[0]
    dyaw = math.degrees(yaw_of(ep.states[st.place_state].ee_pose) - yaw_of(ep.states[st.pick_state].ee_pose))
    assert steps[0].rotation_deg == pytest.approx(-((dyaw + 180) % 360 - 180), abs=0.51)


def test_failures_are_reported_not_hidden(kin):
    task = make_task("l1_placement", 7)
    obj, target = task.goals[0]
    with TabletopEnv(task.scene, render=False) as env:
        q_before = env.q
        with pytest.raises(MotionError, match="unreachable"):
            pick_place(env, kin, [1.4, 0.0, 0.02], [0.5, 0.0, 0.03], 0.0)
        assert np.allclose(env.q, q_before, atol=1e-3)  # nothing was executed
        # a pick where nothing is: the gripper closes on air and the goal predicate stays false
        far = env.object_pose(target)[:2, 3] * [1, -1] if abs(env.object_pose(target)[1, 3]) > 0.1 else [0.6, 0.2]
        pick_place(env, kin, [*far, 0.02], [*env.object_pose(target)[:2, 3], 0.03], math.pi)
        assert goal_status(task, {n: env.object_pose(n) for n in (obj, target)}) == [False]


def test_hand_into_the_table_is_a_collision_on_record(kin):
    with TabletopEnv(Scene([ObjectSpec("pad", None, (0.6, 0.2), 0.0)]), render=False) as env:
        move_to(env, kin, topdown_pose([0.4, -0.15, 0.1], 0.0))
        assert env.collisions == []
        q = kin.ik(topdown_pose([0.4, -0.15, 0.0], 0.0), env.q).q
        env.execute([1.0], [q])
        assert {(c.arm_body, c.other) for c in env.collisions} & {("finger_left", "table"), ("finger_right", "table")}


def test_dropped_object_fails_the_task(kin):
    task = make_task("l1_placement", 8)
    obj, target = task.goals[0]
    with TabletopEnv(task.scene, render=False) as env:
        _grasp_and_lift(env, kin, task.scene.by_name(obj))
        env.set_gripper(False)  # drop it on the way
        env.run_for(1.0)
        assert env.object_pose(obj)[2, 3] < 0.03
        assert goal_status(task, {n: env.object_pose(n) for n in (obj, target)}) == [False]


def test_execute_rejects_bad_trajectories_without_moving():
    with TabletopEnv(make_task("l1_placement", 0).scene, render=False) as env:
        q0 = env.q
        for times, pos, msg in (
            ([1.0], [[0.0] * 5], "positions"),
            ([1.0, 0.5], [HOME_Q, HOME_Q], "increase"),
            ([1.0], [[np.nan] * 6], "finite"),
            ([1.0], [[0, 0, 3.0, 0, 0, 0]], "limits"),
        ):
            with pytest.raises(ValueError, match=msg):
                env.execute(times, pos)
        assert np.array_equal(env.q, q0)


def test_sim_demos_cli_writes_dataset_and_bags_that_convert_back(tmp_path):
    """sim -> dataset + bags (mcap, sqlite3) -> convert_bags -> same coordinates as the sim's ground truth."""
    out, bags = tmp_path / "ds", tmp_path / "bags"
    base = [sys.executable, "-m", "llara_core.apps.cli"]
    for storage, fam in (("mcap", "l1_placement,multi_step"), ("sqlite3", "l2_combinatorial")):
        cmd = [*base, "sim-demos", "--task-family", fam, "--episodes", "1", "--seed", "3", "--out", str(out)]
        r = subprocess.run([*cmd, "--bags", str(bags), "--storage", storage], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    records = read_dataset(out)
    kinds = {r["task"] for r in records}
    assert {"inbc", "d_inbc", "localization", "detection"} <= kinds
    report = json.loads((out / "report.json").read_text())
    assert report["failed"] == []
    # re-running is a no-op (resumable)
    r = subprocess.run([*cmd, "--bags", str(bags)], capture_output=True, text=True)
    assert r.returncode == 0 and "already there 1" in r.stdout
    conv = tmp_path / "conv"
    r = subprocess.run(
        [*base, "convert-bags", *map(str, sorted(bags.iterdir())), "--out", str(conv), "--kinds", "inbc"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    from llara_core.language.actions import parse_actions

    truth = {r["id"]: parse_actions(r["conversations"][1]["value"]).steps[0] for r in records if r["task"] == "inbc"}
    got = {r["id"]: parse_actions(r["conversations"][1]["value"]).steps[0] for r in read_dataset(conv)}
    assert len(got) == len(truth) == 4  # l1 (1 step) + multi_step (2 steps) + l2 (1 step)
    for rid, g in got.items():
        t = truth[rid]
        assert np.abs(np.subtract(g.pick, t.pick)).max() <= 0.01 and np.abs(np.subtract(g.place, t.place)).max() <= 0.01
        assert g.rotation_deg == t.rotation_deg
    storages = {p.suffix for b in bags.iterdir() for p in b.iterdir()}
    assert {".mcap", ".db3"} <= storages
    assert read_episode_bag(bags / "multi_step-000003").instruction.startswith("put all the")


def test_sim_render_draws_truth_and_prediction(tmp_path):
    import cv2

    png = tmp_path / "scene.png"
    base = [
        sys.executable,
        "-m",
        "llara_core.apps.cli",
        "sim-render",
        "--seed",
        "2",
        "--out",
        str(png),
        "--upscale",
        "2",
    ]
    pred = (
        "Step 1: Pick up the object at <b>(0.5, 0.5)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.2, 0.8)</b>."
    )
    r = subprocess.run([*base, "--predicted", pred], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(png))[..., ::-1]
    assert img.shape == (448, 448, 3)
    magenta = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] > 160)
    green = (img[..., 0] < 80) & (img[..., 1] > 200) & (img[..., 2] < 100)
    assert magenta.sum() > 30 and green.sum() > 30
    r = subprocess.run(
        [*base, "--predicted", "Step 1: Pick up the object at <b>(1.5, 0.5)</b>"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "does not parse" in r.stderr  # a usage error: the argument is bad
    r = subprocess.run([*base, "--clean"], capture_output=True, text=True)  # the frame the model sees
    assert r.returncode == 0, r.stderr
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task

    with TabletopEnv(make_task("l1_placement", 2).scene, width=224, height=224) as env:
        frame = env.render()
    assert np.array_equal(cv2.imread(str(png))[..., ::-1], frame)  # camera size, nothing drawn


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_expert_success_rate(family):
    """The issue's bar: the scripted expert solves >= 98 % of 200 seeds per family (scripts/bench_sim.py prints it)."""
    from llara_core.sim.expert import expert_success

    rows = expert_success(family, range(1000, 1200))
    ok = sum(bool(r["success"]) for r in rows)
    assert ok >= 196, [r for r in rows if not r["success"]][:5]
