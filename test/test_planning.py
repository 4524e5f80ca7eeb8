"""The robot side without ROS: kinematics of real arms, camera calibrations, the planner, the safety state machine.

Everything the action node decides is decided here; the node tests only check the wiring.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llara_core.config import load_ros_params
from llara_core.geometry import CameraModel, DegenerateCameraError, UndistortionError, base_to_normalized
from llara_core.language.actions import ActionStep, parse_actions, render_step
from llara_core.planning import (
    ActionPlan,
    ExecutionSettings,
    Gripper,
    IKError,
    KinematicsError,
    Motion,
    Planner,
    Refusal,
    RobotConfig,
    RobotKinematics,
    StepDone,
    Supervisor,
    Workspace,
    depth_point,
    load_kinematics,
    motion_plan,
    plan_action,
    select_step,
    topdown_pose,
)
from llara_core.planning.planner import NODE_ONLY_KEYS
from llara_core.sim.arm import ArmKinematics

ROOT = Path(__file__).resolve().parents[1]
SIM_CFG = load_ros_params(RobotConfig, ROOT / "config" / "sim_demo.yaml", "action_node", ignore=NODE_ONLY_KEYS)


def _robots() -> Path:
    import site

    for d in site.getsitepackages():
        p = Path(d, "cmeel.prefix", "share", "example-robot-data", "robots")
        if p.is_dir():
            return p
    raise FileNotFoundError("example-robot-data is a test dependency (requirements-dev.txt)")


# -- kinematics of any arm --------------------------------------------------------------------------
ARMS = {
    "llara_arm": lambda: ArmKinematics(),
    "panda": lambda: RobotKinematics(
        _robots() / "panda_description" / "urdf" / "panda.urdf", base_link="panda_link0", tip_link="panda_hand_tcp"
    ),
    "ur5": lambda: RobotKinematics(
        _robots() / "ur_description" / "urdf" / "ur5_robot.urdf", base_link="base_link", tip_link="tool0"
    ),
}


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_fk_ik_round_trips_within_the_joint_limits(arm):
    kin = ARMS[arm]()
    rng = np.random.default_rng(1)
    assert len(kin.joint_names) == (7 if arm == "panda" else 6)  # fingers locked out of the arm
    solved = 0
    for _ in range(25):
        q = kin.lower + (kin.upper - kin.lower) * rng.uniform(0.2, 0.8, len(kin.joint_names))
        target = kin.fk(q)
        start = np.clip(q + rng.normal(0, 0.15, len(q)), kin.lower, kin.upper)  # a nearby start, as a plan has
        try:
            res = kin.ik(target, start)
        except IKError:
            continue
        solved += 1
        assert kin.within_limits(res.q)
        back = kin.fk(res.q)
        assert np.linalg.norm(back[:3, 3] - target[:3, 3]) < 1e-3
        assert np.allclose(back[:3, :3], target[:3, :3], atol=1e-2)
    assert solved >= 22


def test_ik_refuses_what_it_cannot_reach_and_names_bad_frames():
    kin = ARMS["ur5"]()
    with pytest.raises(IKError, match="did not converge"):
        kin.ik(topdown_pose([3.0, 0.0, 0.2], 0.0))
    with pytest.raises(KinematicsError, match=r"frame 'flange'.*frames:"):
        RobotKinematics(_robots() / "ur_description" / "urdf" / "ur5_robot.urdf", base_link="base_link",
                        tip_link="flange")  # fmt: skip
    desc = (ROOT / "urdf" / "llara_arm.urdf").read_text()
    k = RobotKinematics(robot_description=desc, base_link="base_link", tip_link="tcp")
    assert k.joint_names == ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
    assert k.fk_named([*k.joint_names, "finger_left_joint"], [0.1] * 7).shape == (4, 4)
    with pytest.raises(KinematicsError, match="lacks joints"):
        k.fk_named(["joint1"], [0.0])


# -- camera calibrations ---------------------------------------------------------------------------------
# Real calibrations found in public ROS repositories (numbers only): an OAK-D preview stream with the 8-coefficient
# rational model (TurtleBot 4), an Azure Kinect depth and colour camera (factory rational model) and a USB camera with
# k1 = -0.51 (plumb_bob).
REAL_CAMERAS = {
    "oakd_rational8": ([202.61964416503906, 0, 124.34600067138672, 0, 202.61964416503906, 127.28642272949219, 0, 0, 1],
                       [-3.4751670360565186, -38.5734748840332, 0.00034309603506699204, -9.377215610584244e-05,
                        286.4400939941406, -3.6408045291900635, -36.68898010253906, 279.0523681640625], 250, 250),
    "k4a_depth": ([503.927643, 0, 332.064270, 0, 503.978729, 325.880615, 0, 0, 1],
                  [3.130577, 2.324939, 0.000081, -0.000051, 0.130416, 3.458652, 3.350115, 0.662942], 640, 576),
    "k4a_color": ([904.141541, 0, 953.284424, 0, 903.521362, 555.142456, 0, 0, 1],
                  [0.722746, -2.885590, 0.000783, -0.000143, 1.632723, 0.602199, -2.719626, 1.565053], 1920, 1080),
    "usb_cam": ([568.19319, 0, 355.41726, 0, 565.76245, 166.62636, 0, 0, 1],
                [-0.513007, 0.203746, -0.000107, 0.001255, 0.0], 640, 480),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REAL_CAMERAS))
def test_every_ray_of_a_real_calibration_projects_back_onto_its_pixel(name):
    K, D, w, h = REAL_CAMERAS[name]
    cam = CameraModel.from_camera_info(K, D, w, h, "rational_polynomial" if len(D) == 8 else "plumb_bob")
    us, vs = np.meshgrid(np.linspace(0, w - 1, 21), np.linspace(0, h - 1, 21))
    for uv in np.c_[us.ravel(), vs.ravel()]:
        try:
            ray = cam.pixel_to_ray(uv)
        except UndistortionError:
            continue  # refused, never wrong
        assert np.linalg.norm(cam.project(ray) - uv) < cam.undistort_tol_px


def test_a_pixel_where_undistortion_does_not_converge_is_refused_not_answered():
    # OpenCV 5 inverted every real calibration above across the whole image; this lens model folds back inside the
    # image (synthetic: k1 = -0.6 at a 100 deg field of view), so its corners have no true ray.
    cam = CameraModel.from_camera_info([300, 0, 320, 0, 300, 240, 0, 0, 1], [-0.6, 0, 0, 0, 0], 640, 480)
    with pytest.raises(UndistortionError, match="re-projection error"):
        cam.pixel_to_ray([5.0, 5.0])
    assert np.linalg.norm(cam.project(cam.pixel_to_ray([320.0, 240.0])) - [320, 240]) < 1e-6
    T = np.eye(4)
    T[:3, 3] = (0.5, 0.0, 1.0)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # looking straight down
    plan = plan_action(render_step(ActionStep((0.005, 0.005), (0.5, 0.5))), cam, T, workspace=Workspace())
    assert isinstance(plan, Refusal) and plan.code == "geometry"


def test_calibration_files_keep_r_and_p_and_name_what_is_wrong(tmp_path):
    sim = CameraModel.from_calibration_file(str(ROOT / "config" / "sim_camera_info.yaml"))
    assert np.allclose(sim.K, CameraModel.from_fovy(50.0, 224, 224).K, atol=1e-6)
    text = (ROOT / "config" / "sim_camera_info.yaml").read_text()
    f = tmp_path / "rect.yaml"
    head, _, tail = text.partition("projection_matrix:")
    f.write_text(
        head + "projection_matrix:" + tail.replace("data: [240.184775097, 0.0, 111.5", "data: [200.0, 0.0, 100.0")
    )
    rect = CameraModel.from_calibration_file(str(f), rectified=True)
    assert rect.P is not None and rect.P[0, 0] == 200.0 and rect.P[0, 2] == 100.0
    # rectified images project with P: the principal point of P is where the optical axis lands
    assert np.allclose(rect.project([0.0, 0.0, 1.0]), [100.0, rect.P[1, 2]])
    assert rect.camera_info_fields()["p"][0] == 200.0  # kept, not replaced by [K|0]
    assert np.allclose(rect.pixel_to_ray([100.0, rect.P[1, 2]]), [0, 0, 1])
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("camera_matrix:", "camera_matrx:"))
    with pytest.raises(DegenerateCameraError, match="missing field 'camera_matrix'"):
        CameraModel.from_calibration_file(str(bad))
    bad.write_text(text.replace("cols: 5", "cols: 4"))
    with pytest.raises(DegenerateCameraError, match="distortion_coefficients"):
        CameraModel.from_calibration_file(str(bad))


# -- the planner -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_view():
    cam = CameraModel.from_calibration_file(str(ROOT / "config" / "sim_camera_info.yaml"))
    return cam, SIM_CFG.base_T_camera


def test_goals_land_within_5_mm_of_the_points_the_text_names(sim_view):
    cam, T = sim_view
    s = ExecutionSettings(refine_grasp=False)
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(200):
        pick = np.array([*rng.uniform([0.32, -0.24], [0.62, 0.24]), s.grasp_height])
        place = np.array([*rng.uniform([0.32, -0.24], [0.62, 0.24]), s.place_plane])
        xy = np.round(base_to_normalized(cam, T, np.stack([pick, place])), 3)
        text = render_step(ActionStep(tuple(xy[0]), tuple(xy[1]), 30.0), 1)
        plan = plan_action(text, cam, T, s, workspace=Workspace.from_bounds(SIM_CFG.workspace))
        assert isinstance(plan, ActionPlan), plan
        worst = max(
            worst, np.linalg.norm(plan.lifted.pick[:2] - pick[:2]), np.linalg.norm(plan.lifted.place[:2] - place[:2])
        )
        assert math.isclose(plan.lifted.rotation, -math.radians(30.0))
    assert worst < 0.005


def test_the_waypoint_sequence_is_the_one_every_executor_runs():
    items = motion_plan([0.4, 0.1, 0.0], [0.5, -0.1, 0.05], 1.0, 0.5, ExecutionSettings())
    labels = [it.label for it in items]
    assert labels == ["pre_grasp", "open", "grasp", "close", "lift", "pre_place", "place", "release", "retreat"]
    grasp = next(it for it in items if it.label == "grasp")
    assert isinstance(grasp, Motion) and grasp.pose[2, 3] == 0.025  # never below grasp_height
    assert np.allclose(grasp.pose[:3, 2], [0, 0, -1])  # tool pointing down
    place = next(it for it in items if it.label == "place")
    assert math.isclose(math.atan2(place.pose[1, 0], place.pose[0, 0]), 1.5)  # yaw + rotation
    assert [it.closed for it in items if isinstance(it, Gripper)] == [False, True, False]


def test_depth_lifts_a_point_onto_the_measured_surface(sim_view):
    cam, T = sim_view
    target = np.array([0.45, 0.05, 0.08])  # on top of something 8 cm high
    xy = tuple(base_to_normalized(cam, T, target[None])[0])
    z_cam = (np.linalg.inv(T) @ [*target, 1.0])[2]
    depth = np.full((224, 224), z_cam, dtype=np.float32)
    assert np.linalg.norm(depth_point(cam, T, xy, depth) - target) < 1e-6
    mm = (depth * 1000).astype(np.uint16)
    assert np.linalg.norm(depth_point(cam, T, xy, mm) - target) < 1e-3
    from llara_core.geometry import GeometryError

    with pytest.raises(GeometryError, match="no valid depth"):
        depth_point(cam, T, xy, np.zeros((224, 224), np.uint16))


def test_ik_failures_and_out_of_workspace_points_are_refused(sim_view):
    cam, _T = sim_view
    planner = Planner(SIM_CFG, kinematics=load_kinematics(SIM_CFG), camera=cam)
    ok = planner.plan(render_step(ActionStep((0.45, 0.45), (0.55, 0.6)), 1))
    assert isinstance(ok, ActionPlan) and ok.joints and all(
        ArmKinematics().within_limits(seg.positions[i]) for seg in ok.joints if not isinstance(seg, Gripper)
        for i in range(len(seg.positions))
    )  # fmt: skip
    far = planner.plan(render_step(ActionStep((0.45, 0.05), (0.55, 0.6)), 1))
    assert isinstance(far, Refusal) and far.code == "workspace"
    import dataclasses

    wide = Planner(dataclasses.replace(SIM_CFG, workspace=(-3.0, 3.0, -3.0, 3.0, -1.0, 2.0)),
                   kinematics=load_kinematics(SIM_CFG), camera=cam)  # fmt: skip
    unreachable = wide.plan(render_step(ActionStep((0.45, 0.09), (0.55, 0.6)), 1))
    assert isinstance(unreachable, Refusal) and unreachable.code == "kinematics", unreachable
    from llara_core.geometry import look_at

    level = look_at([0.0, 0.0, 0.5], [1.0, 0.0, 0.5])  # a camera looking level: its upper half sees no table
    sky = wide.plan(render_step(ActionStep((0.5, 0.2), (0.55, 0.6)), 1), base_T_camera=level)
    assert isinstance(sky, Refusal) and sky.code == "geometry"
    assert planner.plan("Step 1: garbage").code == "parse"
    import dataclasses

    blind = Planner(dataclasses.replace(SIM_CFG, camera_info_file=None))
    assert blind.plan(GOOD).code == "input" and "camera_info" in blind.plan(GOOD).reason
    unplaced = Planner(dataclasses.replace(SIM_CFG, camera_pose=None))
    assert unplaced.plan(GOOD).code == "input" and "camera pose" in unplaced.plan(GOOD).reason


# -- fuzz: nothing that is not fully valid ever becomes a plan ------------------------------------------------
ADVERSARIAL = [
    "", "\x00", "Step 1:", "<b>(0.5, 0.5)</b>", "Pick up the object at <b>(nan, 0.5)</b>, and drop it at <b>(0.5, 0.5)</b>.",
    "Pick up the object at <b>(0.5, 0.5)</b>, rotate <r>[1e309]</r> degrees, and drop it at <b>(0.5, 0.5)</b>.",
    "Pick up the object at <b>(0.5, 0.5)</b>, and drop it at <b>(0.5, 1.0000001)</b>.",
    "Pick up the object at <b>(-0.0, 0.5)</b>, and drop it at <b>(0.5, 0.5)</b>. Step 2: Pick up",
    "Step 1: Pick up the object at <b>(0.5,0.5)</b>, and drop it at <b>(0.6, 0.6)</b>.\nStep 2: Sweep <b>(2, 2)</b>",
    "step 1) pick up the <p>x</p> at <b>( .5 , .5 )</b> , rotate <r>[ -359 ]</r> degree and drop it at <b>(1,1)</b>",
]  # fmt: skip


def _fuzz_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pieces = ["Step 1:", "Step 2:", "Pick up", "Sweep", "the <p>red block</p>", "at", "<b>(", ")</b>", ",",
              "rotate <r>[", "]</r> degrees", "and drop it at", "stop at", ".", "\n", " ", "nan", "-", "1e3"]  # fmt: skip
    num = lambda: rng.choice([f"{rng.uniform(-0.2, 1.2):.3f}", f"{rng.random():.3f}", str(rng.randint(-400, 400))])  # noqa: E731
    out = list(ADVERSARIAL)
    while len(out) < n:
        kind = rng.random()
        if kind < 0.4:  # near-valid: rendered steps with numbers perturbed
            a = (rng.uniform(-0.1, 1.1), rng.uniform(-0.1, 1.1))
            b = (rng.uniform(-0.1, 1.1), rng.uniform(-0.1, 1.1))
            text = (f"Step 1: Pick up the object at <b>({a[0]:.3f}, {a[1]:.3f})</b>, rotate <r>[{num()}]</r> degrees, "
                    f"and drop it at <b>({b[0]:.3f}, {b[1]:.3f})</b>.")  # fmt: skip
            if rng.random() < 0.3:
                text = text[: rng.randint(0, len(text))]  # cut off by the token limit
            if rng.random() < 0.2:
                text += "\n" + text[::-1]
        elif kind < 0.8:
            text = " ".join(rng.choice(pieces) if rng.random() < 0.7 else num() for _ in range(rng.randint(1, 25)))
        else:
            text = "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 80)))
        out.append(text)
    return out


def test_twenty_thousand_texts_never_plan_anything_not_fully_valid(sim_view):
    cam, T = sim_view
    ws = Workspace.from_bounds(SIM_CFG.workspace)
    planned = 0
    for text in _fuzz_texts(20_000):
        plan = plan_action(text, cam, T, workspace=ws, partial="refuse")
        res = parse_actions(text)
        if isinstance(plan, ActionPlan):
            planned += 1
            assert res.ok, text  # every step valid
            assert all(ws.contains(p[:3, 3]) for p in plan.poses)
        else:
            assert isinstance(plan, Refusal) and plan.reason
    assert planned > 500  # the generator does produce valid answers too


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_the_planner_never_raises_on_any_text(text):
    cam = CameraModel.from_fovy(50.0, 224, 224)
    plan = plan_action(text, cam, SIM_CFG.base_T_camera)
    assert isinstance(plan, (ActionPlan, Refusal))


def test_llara_plan_handles_20000_jsonl_lines(tmp_path):
    texts = _fuzz_texts(20_000, seed=1)
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps(t) + "\n" for t in texts) + "not json\n" + "42\n")
    import yaml

    params = yaml.safe_load((ROOT / "config" / "sim_demo.yaml").read_text())
    params["action_node"]["ros__parameters"]["partial"] = "refuse"  # a real arm's setting: any invalid step, no motion
    params["action_node"]["ros__parameters"]["urdf"] = str(ROOT / "urdf" / "llara_arm.urdf")
    params["action_node"]["ros__parameters"]["camera_info_file"] = str(ROOT / "config" / "sim_camera_info.yaml")
    cfg = tmp_path / "strict.yaml"
    cfg.write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "llara_core.apps.cli", "plan", "--config", str(cfg), "--jsonl", str(f), "--no-ik"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == len(texts) + 2 and not lines[-1]["ok"] and not lines[-2]["ok"]
    ws = Workspace.from_bounds(SIM_CFG.workspace)
    for text, out in zip(texts, lines, strict=False):
        if out["ok"]:
            assert parse_actions(text).ok
            assert all(ws.contains(w[:3]) for w in out["steps"][0]["waypoints"])
        else:
            assert out["reason"]
    one = subprocess.run([*cmd[:-3], render_step(ActionStep((0.45, 0.45), (0.55, 0.6)), 1)], capture_output=True,
                         text=True)  # fmt: skip
    out = json.loads(one.stdout)
    assert one.returncode == 0 and out["ok"] and len(out["steps"][0]["waypoints"]) == 6  # with the IK check


# -- step selection and the safety state machine -----------------------------------------------------------
GOOD = render_step(ActionStep((0.45, 0.45), (0.55, 0.6)), 1)
BAD = "Step 2: Pick up the object at <b>(0.45, 1.45)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.5, 0.6)</b>."


def test_partly_invalid_answers_move_nothing_unless_configured_to_take_the_first_step():
    assert select_step(GOOD + "\n" + BAD, "refuse").code == "out_of_range"
    assert isinstance(select_step(GOOD + "\n" + BAD, "first_step"), ActionStep)
    assert select_step("Sure!\n" + BAD + "\n" + GOOD, "first_step").code == "out_of_range"


def _fake_plan(text: str):
    return plan_action(text, CameraModel.from_fovy(50.0, 224, 224), SIM_CFG.base_T_camera)


def test_supervisor_runs_one_step_at_a_time_and_refuses_stale_images_and_estop():
    s = Supervisor(max_image_age_s=1.0)
    assert s.submit(GOOD, now=10.0, image_stamp=8.5, planner=_fake_plan).done.reason.startswith("stale image")
    d = s.submit(GOOD, now=10.0, image_stamp=9.8, planner=_fake_plan)
    assert d.execute is not None and s.state == "executing"
    busy = s.submit(GOOD, now=10.1, image_stamp=10.0, planner=_fake_plan)
    assert busy.execute is None and not busy.done.ok and "busy" in busy.done.reason
    assert s.set_estop(True).done is None and s.state == "executing"  # the node stops it; its executor answers
    done = s.finished(False, "stopped by estop")
    assert done == StepDone(GOOD, False, "stopped by estop")
    assert "estop" in s.submit(GOOD, 11.0, 10.9, _fake_plan).done.reason
    s.set_estop(False)
    assert s.submit("nonsense", 12.0, 11.9, _fake_plan).done.reason.startswith("answer not executable")
    assert StepDone.from_json(done.to_json()) == done


def test_supervisor_approval_gate():
    s = Supervisor(require_approval=True, approval_timeout_s=5.0)
    d = s.submit(GOOD, 0.0, 0.0, _fake_plan)
    assert d.wait is not None and d.execute is None and s.state == "pending_approval"
    assert s.reject().done.reason == "rejected by the operator" and s.state == "idle"
    s.submit(GOOD, 1.0, 1.0, _fake_plan)
    assert s.approve(3.0).execute is not None
    s.finished(True)
    s.submit(GOOD, 10.0, 10.0, _fake_plan)
    assert s.tick(14.0).done is None
    timed_out = s.tick(15.5).done
    assert timed_out is not None and "timed out" in timed_out.reason and s.state == "idle"
    assert s.approve(16.0).execute is None  # nothing waits any more


# -- what the mutation run found untested ---------------------------------------------------------------------
def test_a_calibration_file_is_read_field_by_field(tmp_path):
    f = tmp_path / "cam.yaml"
    f.write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: c\n"
        "camera_matrix: {rows: 3, cols: 3, data: [500, 0, 320, 0, 510, 240, 0, 0, 1]}\n"
        "distortion_model: rational_polynomial\n"
        "distortion_coefficients: {rows: 1, cols: 8, data: [0.1, -0.2, 0.001, 0.002, 0.05, 0.01, 0.02, 0.03]}\n"
        "rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
        "projection_matrix: {rows: 3, cols: 4, data: [490, 0, 321, 0, 0, 495, 241, 0, 0, 0, 1, 0]}\n"
    )
    cam = CameraModel.from_calibration_file(str(f))
    assert (cam.width, cam.height, cam.distortion_model, cam.rectified) == (640, 480, "rational_polynomial", False)
    assert cam.K.tolist() == [[500, 0, 320], [0, 510, 240], [0, 0, 1]]
    assert cam.D.tolist() == [0.1, -0.2, 0.001, 0.002, 0.05, 0.01, 0.02, 0.03]
    assert cam.P is not None and cam.P[0].tolist() == [490, 0, 321, 0] and cam.P[1, 2] == 241
    assert cam.R is not None and np.allclose(cam.R, np.eye(3))
    assert CameraModel.from_calibration_file(str(f), rectified=True).rectified
    text = f.read_text()
    for broken, why in (
        ("image_width: 640\n", "image_width and image_height are required"),
        ("data: [500, 0, 320, 0, 510, 240, 0, 0, 1]", "camera_matrix"),
        ("rows: 3, cols: 4", "projection_matrix"),
    ):
        f.write_text(text.replace(broken, "data: [1, 2]" if "data" in broken else ("rows: 2, cols: 4" if "rows" in broken
                                                                                     else "")))  # fmt: skip
        with pytest.raises(DegenerateCameraError, match=why):
            CameraModel.from_calibration_file(str(f))
    f.write_text("- not a mapping\n")
    with pytest.raises(DegenerateCameraError, match="expected a mapping"):
        CameraModel.from_calibration_file(str(f))
    with pytest.raises(DegenerateCameraError, match="cannot read"):
        CameraModel.from_calibration_file(str(tmp_path / "none.yaml"))
    f.write_text(
        text.replace("distortion_model: rational_polynomial\n", "").replace(
            "distortion_coefficients: {rows: 1, cols: 8, data: [0.1, -0.2, 0.001, 0.002, 0.05, 0.01, 0.02, 0.03]}\n", ""
        )
    )
    bare = CameraModel.from_calibration_file(str(f))
    assert bare.D.size == 0 and bare.distortion_model == ""


def test_depth_lifts_along_the_ray_and_refuses_invalid_depth(sim_view):
    from llara_core.geometry import BehindCameraError

    cam, T = sim_view
    p = cam.lift_depth([111.5, 111.5], 0.8)
    assert np.allclose(p, [0.0, 0.0, 0.8])
    pts = cam.lift_depth([[0.0, 0.0], [223.0, 100.0]], [1.0, 2.0])
    assert np.allclose(pts[:, 2], [1.0, 2.0]) and np.allclose(cam.project(pts), [[0.0, 0.0], [223.0, 100.0]])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(BehindCameraError):
            cam.lift_depth([10.0, 10.0], bad)
    # the median of the valid depths in the window: one wrong pixel and holes do not move the point
    target = np.array([0.45, 0.05, 0.0])
    xy = tuple(base_to_normalized(cam, T, target[None])[0])
    z = (np.linalg.inv(T) @ [*target, 1.0])[2]
    depth = np.full((224, 224), z, dtype=np.float32)
    u, v = (round(c) for c in cam.normalized_to_pixel(xy))
    depth[v, u] = 5.0
    depth[v - 2, u - 2 : u + 3] = np.nan
    depth[v + 2, u] = 0.0
    assert np.linalg.norm(depth_point(cam, T, xy, depth) - target) < 1e-3
    depth[v - 1 : v + 2, u - 1 : u + 2] = 0.0
    assert np.linalg.norm(depth_point(cam, T, xy, depth, window=5) - target) < 1e-3
    with pytest.raises(Exception, match="no valid depth"):
        depth_point(cam, T, xy, depth, window=3)


def test_a_plan_as_json_names_its_waypoints_and_gripper_commands(sim_view):
    cam, T = sim_view
    plan = plan_action(GOOD, cam, T, ExecutionSettings(refine_grasp=False))
    out = plan.to_json()
    assert out["labels"] == ["pre_grasp", "grasp", "lift", "pre_place", "place", "retreat"]
    assert len(out["waypoints"]) == 6 and all(len(w) == 7 for w in out["waypoints"])
    assert [(g["after"], g["closed"]) for g in out["gripper"]] == [(1, False), (2, True), (5, False)]
    assert out["gripper"][0]["opening"] == pytest.approx(0.035) and out["gripper"][1]["opening"] is None
    assert out["step"] == {"pick": [0.45, 0.45], "place": [0.55, 0.6], "rotation": 0.0}
    assert np.allclose(out["waypoints"][1][:3], plan.lifted.pick, atol=1e-6)
    kin = load_kinematics(SIM_CFG)
    joints = plan_action(GOOD, cam, T, kinematics=kin, q0=kin.home).joints
    segs = [j for j in joints if not isinstance(j, Gripper)]
    assert [s.label for s in segs] == out["labels"] and all(np.all(np.diff(s.times) > 0) for s in segs)
    assert np.allclose(kin.fk(segs[1].positions[-1])[:3, 3], plan.lifted.pick, atol=1e-3)
