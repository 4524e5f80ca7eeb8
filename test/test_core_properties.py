"""Properties of the pure core that the mutation run (make mutation) showed no test pinned down.

Everything here runs in-process and fast: mutmut only credits tests that call
the mutated function themselves (a subprocess is invisible to it).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llara_core.actions import ActionStep, ParseError, first_step, render_step
from llara_core.conversations import (
    DatasetError,
    DatasetWriter,
    episode_samples,
    read_dataset,
    validate_content,
    validate_record,
)
from llara_core.episodes import ObjectBox, RobotState, align_states, object_at
from llara_core.geometry import (
    BehindCameraError,
    CameraModel,
    ParallelRayError,
    base_to_normalized,
    chain_transform,
    intersect_plane,
    invert_transform,
    look_at,
    matrix_to_quaternion,
    normalized_to_table,
    pose_to_matrix,
    quaternion_pose,
    quaternion_to_matrix,
)
from llara_core.planning import (
    ExecutionSettings,
    Motion,
    Outline,
    Workspace,
    motion_plan,
    nearest_yaw,
    object_outline,
    plan_action,
    plan_step,
)
from llara_core.synthetic import make_episode

# -- rotations and transforms ----------------------------------------------------------------------------
HALF_TURNS = [np.diag(d) for d in ([1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0])]  # trace -1: every branch


@pytest.mark.parametrize("R", [*HALF_TURNS, np.eye(3)])
def test_quaternions_of_half_turns_and_identity(R):
    q = matrix_to_quaternion(R)
    assert np.isclose(np.linalg.norm(q), 1.0) and q[3] >= 0
    assert np.allclose(quaternion_to_matrix(q), R, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1))
def test_matrix_quaternion_round_trip(v):
    q = np.asarray(v) / np.linalg.norm(v)
    R = quaternion_to_matrix(q)
    back = matrix_to_quaternion(R)
    assert back[3] >= 0 and (np.allclose(back, q, atol=1e-9) or np.allclose(back, -q, atol=1e-9))
    assert np.allclose(quaternion_to_matrix(back), R, atol=1e-9)
    T = pose_to_matrix([0.1, -0.2, 0.3], q)
    assert np.allclose(quaternion_pose(T), [0.1, -0.2, 0.3, *back], atol=1e-9)
    assert np.allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)


def test_chain_transform_walks_any_path_and_ignores_leading_slashes():
    A = pose_to_matrix([1.0, 0.0, 0.0], [0.0, 0.0, math.sin(0.3), math.cos(0.3)])
    B = pose_to_matrix([0.0, 2.0, 0.5], [math.sin(0.2), 0.0, 0.0, math.cos(0.2)])
    C = pose_to_matrix([0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0])
    edges = [("/world", "base", A), ("base", "mount", B), ("cam", "mount", C), ("other", "x", np.eye(4))]
    assert np.allclose(chain_transform(edges, "world", "cam"), A @ B @ invert_transform(C))
    assert np.allclose(chain_transform(edges, "/cam", "world"), invert_transform(A @ B @ invert_transform(C)))
    assert np.allclose(chain_transform(edges, "mount", "mount"), np.eye(4))
    assert chain_transform(edges, "world", "x") is None and chain_transform([], "a", "b") is None


def test_ray_plane_intersections_and_their_refusals():
    p = intersect_plane([0, 0, 2.0], [0, 0.6, -0.8], [5.0, 5.0, 0.5], [0, 0, 3.0])  # any point, unnormalized normal
    assert np.allclose(p, [0, 1.125, 0.5])
    with pytest.raises(ParallelRayError):
        intersect_plane([0, 0, 1.0], [1.0, 0, 0], [0, 0, 0], [0, 0, 1.0])
    with pytest.raises(BehindCameraError):
        intersect_plane([0, 0, 1.0], [0, 0, 1.0], [0, 0, 0], [0, 0, 1.0])
    cam = CameraModel.from_fovy(60.0, 320, 240)
    T = look_at([0.5, 0.0, 1.0], [0.5, 0.0, 0.0], up=[1.0, 0.0, 0.0])
    for xy in ((0.5, 0.5), (0.1, 0.9), (0.8, 0.3)):
        pt = normalized_to_table(cam, T, xy, table_height=0.05)
        assert math.isclose(pt[2], 0.05) and np.allclose(base_to_normalized(cam, T, pt), xy, atol=1e-9)


def test_undistortion_inverts_the_distortion_and_keeps_inputs_untouched():
    cam = CameraModel.from_camera_info([400, 0, 320, 0, 410, 240, 0, 0, 1], [-0.2, 0.05, 0.001, -0.002, 0.01], 640, 480)
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-0.5, 0.5, 50), rng.uniform(-0.4, 0.4, 50), np.ones(50)]
    seen = cam.project(pts)
    ideal = cam.undistort_pixels(seen)
    expect = pts[:, :2] / pts[:, 2:] * [400, 410] + [320, 240]
    assert np.allclose(ideal, expect, atol=1e-6)
    assert np.allclose(cam.pixel_to_ray(seen), pts / np.linalg.norm(pts, axis=1, keepdims=True), atol=1e-8)
    single = cam.undistort_pixels(seen[0])
    assert single.shape == (2,) and np.allclose(single, expect[0], atol=1e-6)
    plain = CameraModel.from_fovy(50.0, 100, 80)
    uv = np.array([[3.0, 4.0]])
    out = plain.undistort_pixels(uv)
    assert np.array_equal(out, uv) and out is not uv  # a copy: the caller's array is never aliased
    fields = CameraModel.from_camera_info(cam.K.ravel(), cam.D, 640, 480, "plumb_bob", np.eye(3).ravel(),
                                          [390, 0, 321, 0, 0, 392, 241, 0, 0, 0, 1, 0], True).camera_info_fields()  # fmt: skip
    assert fields["p"][:3] == [390, 0, 321] and fields["r"] == np.eye(3).ravel().tolist()
    assert fields["distortion_model"] == "plumb_bob" and fields["d"] == cam.D.tolist()
    assert (fields["width"], fields["height"]) == (640, 480) and fields["k"] == cam.K.ravel().tolist()


# -- boxes and the alignment of recorded streams -------------------------------------------------------------
def test_the_object_under_a_point_is_the_smallest_box_holding_it():
    bowl, block = ObjectBox("bowl", 0.5, 0.5, 0.4, 0.4), ObjectBox("red block", 0.55, 0.5, 0.1, 0.1)
    assert block.contains((0.599, 0.549)) and block.contains((0.501, 0.451)) and not block.contains((0.601, 0.5))
    assert not block.contains((0.55, 0.551)) and not block.contains((0.499, 0.5)) and bowl.contains((0.301, 0.301))
    assert object_at([bowl, block], (0.56, 0.52)) == "red block"
    assert object_at([bowl, block], (0.35, 0.5)) == "bowl" and object_at([bowl, block], (0.9, 0.9)) is None
    twin = ObjectBox("blue block", 0.55, 0.5, 0.1, 0.1)
    assert object_at([block, twin], (0.55, 0.5)) == "blue block"  # equal sizes: the name decides, deterministically


def test_alignment_sorts_the_streams_and_holds_the_first_value_before_any_message():
    P = [np.eye(4) * (i + 1) for i in range(4)]
    poses = [(3.0, P[3]), (0.5, P[0]), (2.0, P[2]), (1.0, P[1])]
    grips = [(2.5, False), (1.0, True)]
    states = align_states(poses, grips)
    assert [s.stamp for s in states] == [0.5, 1.0, 2.0, 3.0]
    assert [s.gripper_closed for s in states] == [True, True, True, False]  # before 1.0: the first value
    assert all(np.array_equal(s.ee_pose, P[i]) for i, s in enumerate(states))
    assert isinstance(states[0], RobotState)


# -- records -----------------------------------------------------------------------------------------------------
def _rec(kind: str, question: str, answer: str) -> dict:
    return {"id": "e/x/0", "image": "i.png", "task": kind,
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}  # fmt: skip


GOOD_STEP = render_step(ActionStep((0.2, 0.3), (0.4, 0.5)), 1)


@pytest.mark.parametrize(
    ("kind", "question", "answer", "why"),
    [
        ("nonsense", "<image>\nq", "a", "unknown task kind 'nonsense'"),
        ("inbc", "<image>\nq", "I cannot", "inbc answer does not parse"),
        ("d_inbc", "<image>\nq", GOOD_STEP.replace("0.200", "1.200"), "d_inbc answer does not parse"),
        ("action_prediction", "<image>\nq", "no", "action_prediction answer does not parse"),
        ("localization", "<image>\nq", "somewhere", "localization answer holds no box"),
        ("detection", "<image>\nq", "<p>a</p>", "detection answer holds no box"),
        ("future_prediction", "<image>\nq", "<b>(0.1, 0.1)</b>", "future_prediction answer holds no box"),
        ("spatial_relationship", "<image>\nq", "left of", "spatial_relationship answer holds no finite"),
        ("temporal_relationship", "<image>\nq", "<d>(nan, 0.1)</d>, <e>0.1</e>", "temporal_relationship answer"),
        ("localization", "<image>\nq", "<b>(0.5, 0.5), {0.1, -0.2}</b>", "answer box"),
        ("d_inbc", "<image>\n<p>a</p> at <b>(1.5, 0.5), {0.1, 0.1}</b>", GOOD_STEP, "question box"),
        ("localization", "<image>\nq", "<b>(inf, 0.5), {0.1, 0.2}</b>", "not within the image"),
    ],
)
def test_content_is_checked_per_task_kind(kind, question, answer, why):
    problem = validate_content(_rec(kind, question, answer))
    assert problem is not None and why in problem, problem


def test_good_content_and_records_without_a_kind_pass():
    assert validate_content(_rec("inbc", "<image>\nUse the format <b>(x, y), {w, h}</b>", GOOD_STEP)) is None
    assert validate_content(_rec("spatial_relationship", "<image>\nq", "<d>(0.1, -0.2)</d>, <e>0.224</e>")) is None
    rec = _rec("inbc", "<image>\nq", GOOD_STEP)
    del rec["task"]
    assert validate_content(rec) is None  # LLaRA's released records carry no kind
    assert validate_content(_rec("localization", "<image>\nq", "<b>(0.5, 0.5), {0.1, 0.2}</b>")) is None


def test_a_dataset_with_bad_content_names_the_record(tmp_path):
    w = DatasetWriter(tmp_path / "ds", ["inbc", "localization"])
    w.add_episode(make_episode(4))
    w.finalize()
    data = tmp_path / "ds" / "data.json"
    recs = json.loads(data.read_text())
    assert read_dataset(tmp_path / "ds", check_content=True) == recs
    recs[1]["conversations"][1]["value"] = "<b>(2.0, 0.5), {0.1, 0.1}</b>"
    data.write_text(json.dumps(recs))
    read_dataset(tmp_path / "ds")  # the structure alone is fine
    with pytest.raises(DatasetError, match=r"record 1 \(id=.*\): answer box"):
        read_dataset(tmp_path / "ds", check_content=True)
    (tmp_path / "ds" / recs[0]["image"]).write_bytes(b"\x89PNG broken")
    assert "does not open" in validate_content(recs[0], tmp_path / "ds")
    assert validate_content(recs[0]) is None  # without a root the image is not opened
    assert validate_record({**recs[0], "image": "../x.png"}) is not None


def test_the_writer_commits_episodes_whole_and_the_manifest_says_what_is_there(tmp_path):
    w = DatasetWriter(tmp_path, ["inbc", "d_inbc", "detection"], seed=7)
    ep = make_episode(5, n_steps=2)
    counts = w.add_episode(ep, source="bag:5")
    assert counts == {"inbc": 2, "d_inbc": 2, "detection": 1}
    assert w.add_episode(ep) == counts  # idempotent: the shard is the commit
    meta = json.loads((tmp_path / "shards" / f"{ep.episode_id}.meta.json").read_text())
    assert meta == {"id": ep.episode_id, "source": "bag:5", "instruction": ep.instruction, "samples": counts,
                    "skipped": {}}  # fmt: skip
    bare = make_episode(6, with_boxes=False)
    assert w.add_episode(bare) == {"inbc": 1}
    data = w.finalize({"extra": 1})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    recs = json.loads(data.read_text())
    assert manifest["total"] == len(recs) == 6 and manifest["counts"] == {"d_inbc": 2, "detection": 1, "inbc": 3}
    assert manifest["seed"] == 7 and manifest["task_kinds"] == ["inbc", "d_inbc", "detection"]
    assert manifest["sources"] == ["bag:5"] and manifest["extra"] == 1
    assert [e["id"] for e in manifest["episodes"]] == sorted([ep.episode_id, bare.episode_id])
    skipped = next(e for e in manifest["episodes"] if e["id"] == bare.episode_id)["skipped"]
    assert set(skipped) == {"d_inbc", "detection"} and "no object boxes" in skipped["d_inbc"]
    assert [r["id"].split("/")[0] for r in recs] == sorted(r["id"].split("/")[0] for r in recs)
    assert all((tmp_path / r["image"]).is_file() for r in recs)
    with pytest.raises(ValueError, match="must match"):
        w.add_episode(make_episode(7).__class__(**{**make_episode(7).__dict__, "episode_id": "../bad"}))
    with pytest.raises(ValueError, match="unknown task kinds"):
        DatasetWriter(tmp_path / "x", ["inbc", "dance"])


def test_samples_say_why_a_kind_was_skipped():
    ep = make_episode(8, with_boxes=False)
    samples, skipped = episode_samples(ep, ["inbc", "localization"])
    assert [s.kind for s in samples] == ["inbc"] and skipped == {"localization": "no object boxes in the episode"}
    with pytest.raises(ValueError, match="unknown task kinds"):
        episode_samples(ep, ["bogus"])
    first = samples[0]
    assert first.frame_index == ep.steps()[0].obs_frame and first.answer == render_step(ep.action_steps()[0], 1)


def test_parse_errors_read_well_and_the_first_step_decides():
    e = ParseError("out_of_range", "too far", 3, "Step 2: …", 2)
    assert str(e) == "line 3 (step 2): out_of_range: too far: 'Step 2: …'"
    assert str(ParseError("empty", "x", 0, "")) == "line 0: empty: x: ''"
    assert isinstance(first_step("prose\n" + GOOD_STEP), ActionStep)
    assert first_step("").code == "empty" and first_step("nothing here").code == "no_action"


# -- planning ------------------------------------------------------------------------------------------------------
def _top_view():
    cam = CameraModel.from_fovy(60.0, 200, 200)
    T = look_at([0.5, 0.0, 0.8], [0.5, 0.0, 0.0], up=[-1.0, 0.0, 0.0])
    return cam, T


def _draw_bar(cam, T, center, yaw, size=(0.12, 0.03), color=(200, 30, 30)):
    """A flat coloured bar on the table, drawn by projecting its corners (ground truth for the outline)."""
    import cv2

    img = np.full((cam.height, cam.width, 3), 180, np.uint8)
    c, s = math.cos(yaw), math.sin(yaw)
    corners = [[center[0] + c * a * size[0] / 2 - s * b * size[1] / 2, center[1] + s * a * size[0] / 2 +
                c * b * size[1] / 2, 0.0] for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1))]  # fmt: skip
    px = cam.normalized_to_pixel(base_to_normalized(cam, T, np.array(corners)))
    cv2.fillPoly(img, [np.round(px).astype(np.int32)], color)
    return img


def test_the_outline_of_an_elongated_object_gives_its_centre_and_axis():
    cam, T = _top_view()
    img = _draw_bar(cam, T, (0.52, 0.03), 0.4)
    xy = tuple(base_to_normalized(cam, T, [0.53, 0.034, 0.0]))
    out = object_outline(img, cam, T, xy, 0.0)
    assert isinstance(out, Outline) and out.whole
    assert np.linalg.norm(out.center - [0.52, 0.03]) < 0.004
    assert abs(math.remainder(out.yaw - 0.4, math.pi)) < 0.05 and out.ratio > 3
    grey = np.full((cam.height, cam.width, 3), 180, np.uint8)
    assert object_outline(grey, cam, T, (0.5, 0.5), 0.0).ratio < 1.2  # a plain table: one round blob, not a bar
    assert object_outline(img, cam, T, (1.2, 0.5), 0.0) is None  # outside the image
    s = ExecutionSettings(grasp_height=0.0, place_plane=0.0)
    step = ActionStep(xy, (0.3, 0.3))
    refined = plan_step(step, cam, T, s, img)
    assert np.linalg.norm(refined.pick[:2] - [0.52, 0.03]) < 0.004
    assert abs(math.remainder(refined.grasp_yaw - 0.4, math.pi)) < 0.05  # the fingers close across the bar
    raw = plan_step(step, cam, T, s)
    assert np.linalg.norm(raw.pick[:2] - [0.53, 0.034]) < 1e-6 and math.isclose(
        raw.grasp_yaw, math.atan2(raw.pick[1], raw.pick[0]) + math.pi)  # fmt: skip
    no_centring = plan_step(step, cam, T, ExecutionSettings(grasp_height=0.0, place_plane=0.0, refine_grasp=False),
                            img)  # fmt: skip
    assert np.allclose(no_centring.pick, raw.pick) and abs(math.remainder(no_centring.grasp_yaw - 0.4, math.pi)) < 0.05


def test_plan_heights_follow_the_settings_and_the_table():
    cam, T = _top_view()
    s = ExecutionSettings(table_height=0.1, grasp_height=0.02, place_plane=0.05, release_height=0.06,
                          carry_height=0.3, approach=0.08, refine_grasp=False)  # fmt: skip
    plan = plan_action(render_step(ActionStep((0.5, 0.5), (0.3, 0.6), 90.0), 1), cam, T, s, workspace=Workspace())
    assert plan.ok and math.isclose(plan.lifted.pick[2], 0.12) and math.isclose(plan.lifted.place[2], 0.15)
    z = {it.label: it.pose[2, 3] for it in plan.items if isinstance(it, Motion)}
    assert z == pytest.approx({"pre_grasp": 0.4, "grasp": 0.12, "lift": 0.4, "pre_place": 0.4, "place": 0.16,
                               "retreat": 0.24})  # fmt: skip
    assert math.isclose(plan.lifted.rotation, -math.pi / 2)
    with pytest.raises(ValueError, match="carry_height"):
        ExecutionSettings(carry_height=0.01)
    for bad in ({"grasp_height": -0.01}, {"lin_speed": 0.0}, {"control_dt": -1.0}, {"approach": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ExecutionSettings(**bad)
    assert math.isclose(ExecutionSettings().yaw_offset, math.pi) and ExecutionSettings().z(0.2) == 0.2
    tight = Workspace.from_bounds((0.0, 1.0, -1.0, 1.0, 0.0, 0.35))
    out = plan_action(render_step(ActionStep((0.5, 0.5), (0.3, 0.6)), 1), cam, T, s, workspace=tight)
    assert out.code == "workspace" and "pre_grasp at [" in out.reason
    for bounds in ((1.0, 0.0, 0, 1, 0, 1), (0, 1, 0, 1, 0)):
        with pytest.raises(ValueError, match="workspace"):
            Workspace.from_bounds(bounds)


def test_motion_plan_never_goes_below_the_grasp_height_and_opens_wide_enough():
    items = motion_plan([0.4, 0.0, -0.5], [0.5, 0.1, -0.5], 0.0, 0.0, ExecutionSettings(), half_width=0.03)
    poses = [it.pose for it in items if isinstance(it, Motion)]
    assert min(p[2, 3] for p in poses) == 0.025
    assert [it.opening for it in items if not isinstance(it, Motion) and not it.closed] == [0.045, 0.045]
    assert math.isclose(nearest_yaw(0.1, math.pi / 2, 3.0), 0.1 + 2 * math.pi / 2)
    assert math.isclose(nearest_yaw(0.1, math.pi, -3.0), 0.1 - math.pi)


# -- error records are part of the contract: what a user (and the action node's step_done) reads ------------------
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", [("empty", "model output is empty", 0, "", None)]),
        ("   \n ", [("empty", "model output is empty", 0, "", None)]),
        ("no action here", [("no_action", "no action step found in the output", 0, "no action here", None)]),
        ("Step 2: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3",
         [("truncated", "line ends before the step is complete", 1,
           "Step 2: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3", 2)]),
        ("ok\nPick up the object at <b>(0.1, 0.2)</b>, rotate <r>[0]</r> degrees.",
         [("missing_place", "step has no place point", 2,
           "Pick up the object at <b>(0.1, 0.2)</b>, rotate <r>[0]</r> degrees.", None)]),
        ("Step 1: Pick up <b>(0.1, 0.2)</b> then <b>(0.3, 0.4)</b>",
         [("malformed", "line does not follow the action format", 1,
           "Step 1: Pick up <b>(0.1, 0.2)</b> then <b>(0.3, 0.4)</b>", 1)]),
        ("Pick up the object at <b>(nan, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>.",
         [("not_finite", "coordinates and rotation must be finite numbers", 1,
           "Pick up the object at <b>(nan, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>.", None)]),
        ("Step 3: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3, 1.4)</b>.",
         [("out_of_range", "place point (0.3, 1.4) is outside the normalized image [0, 1]", 1,
           "Step 3: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3, 1.4)</b>.", 3)]),
        ("Pick up the object at <b>(0.1, 0.2)</b>, rotate <r>[400]</r> degrees, and drop it at <b>(0.3, 0.4)</b>.",
         [("rotation_out_of_range", "rotation 400.0 outside [-359, 359]", 1,
           "Pick up the object at <b>(0.1, 0.2)</b>, rotate <r>[400]</r> degrees, and drop it at <b>(0.3, 0.4)</b>.",
           None)]),
    ],
)  # fmt: skip
def test_every_parse_error_says_what_where_and_why(text, want):
    from llara_core.actions import parse_actions

    res = parse_actions(text)
    assert res.steps == [] and not res.ok
    assert [(e.code, e.message, e.line, e.text, e.index) for e in res.errors] == want


def test_the_parser_refuses_what_is_not_text_and_keeps_good_steps_around_bad_ones():
    from llara_core.actions import parse_actions

    res = parse_actions(42)  # type: ignore[arg-type]
    assert res.steps == [] and [(e.code, e.message, e.line, e.text) for e in res.errors] == [
        ("malformed", "expected str, got int", 0, "42")]  # fmt: skip
    two = render_step(ActionStep((0.1, 0.2), (0.3, 0.4), -15.0, object="red block"), 1)
    res = parse_actions(two + "\nStep 2: Pick up the object at <b>(2, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>.")
    assert len(res.steps) == 1 and res.steps[0].rotation_deg == -15.0 and res.steps[0].object == "red block"
    assert res.steps[0].index == 1 and [e.line for e in res.errors] == [2] and not res.ok
    assert math.copysign(1.0, parse_actions(two.replace("[-15]", "[-0]")).steps[0].rotation_deg) == 1.0
    for bad, why in ((((0.1,), (0.2, 0.3)), "exactly two"), (((0.1, 0.2), (0.2, float("inf"))), "finite")):
        with pytest.raises(ValueError, match=why):
            ActionStep(*bad)
    with pytest.raises(ValueError, match="unknown action kind 'push'"):
        ActionStep((0.1, 0.2), (0.3, 0.4), kind="push")  # type: ignore[arg-type]
    assert render_step(ActionStep((0.1, 0.2), (0.3, 0.4), 12.5)).split("[")[1].startswith("12.5]")
    assert render_step(ActionStep((0.1, 0.2), (0.3, 0.4), -0.0004)).split("[")[1].startswith("0]")


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (([1, 0, 0, 0, 1, 0, 0, 0], [], 10, 10), "K must have 9 entries, got 8"),
        (([1, 0, 0, 0, 1, 0, 0, 0, 1], [float("nan")] * 5, 10, 10), "K and D must be finite"),
        (([0, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, 10), "focal lengths must be positive, got fx=0.0, fy=1.0"),
        (([1, 0, 5, 0, -1, 5, 0, 0, 1], [], 10, 10), "focal lengths must be positive, got fx=1.0, fy=-1.0"),
        (([1, 0, 5, 1, 1, 5, 0, 0, 1], [], 10, 10), "K is not an upper-triangular pinhole matrix"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 2], [], 10, 10), "K is not an upper-triangular pinhole matrix"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 0, 10), "image size must be positive, got 0x10"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, -1), "image size must be positive, got 10x-1"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 1], [0.1] * 6, 10, 10), "6 distortion coefficients is not an OpenCV layout"),
    ],
)
def test_camera_models_that_cannot_be_real_say_why(args, why):
    from llara_core.geometry import DegenerateCameraError

    with pytest.raises(DegenerateCameraError, match=re.escape(why)):
        CameraModel.from_camera_info(*args)


def test_camera_model_choices_and_projections_are_exact():
    from llara_core.geometry import DegenerateCameraError

    with pytest.raises(DegenerateCameraError, match="distortion model 'fisheye' not supported; use one of"):
        CameraModel.from_camera_info([1, 0, 5, 0, 1, 5, 0, 0, 1], [0.1] * 4, 10, 10, "fisheye")
    with pytest.raises(DegenerateCameraError, match="R is not a rotation matrix"):
        CameraModel.from_camera_info([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, 10, r=[2, 0, 0, 0, 1, 0, 0, 0, 1])
    with pytest.raises(DegenerateCameraError, match="P must be finite with positive focal lengths"):
        CameraModel.from_camera_info([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, 10, p=[-1, 0, 5, 0, 0, 1, 5, 0, 0, 0, 1, 0])
    with pytest.raises(DegenerateCameraError, match="fovy must be in"):
        CameraModel.from_fovy(180.0, 10, 10)
    cam = CameraModel.from_fovy(90.0, 200, 100)
    assert np.allclose(cam.K, [[50.0, 0.0, 99.5], [0.0, 50.0, 49.5], [0.0, 0.0, 1.0]]) and cam.D.tolist() == [0.0] * 5
    assert cam.width == 200 and isinstance(cam.width, int) and not cam.has_distortion
    assert np.allclose(cam.project([[0.2, -0.1, 2.0], [0.0, 0.0, 1.0]]), [[104.5, 47.0], [99.5, 49.5]])
    with pytest.raises(BehindCameraError, match="behind the camera"):
        cam.project([0.0, 0.0, -1.0])
    with pytest.raises(ValueError, match=r"expected shape \(3,\) or \(N, 3\)"):
        cam.project([[1.0, 2.0]])
    assert np.allclose(cam.normalized_to_pixel([[0.0, 0.0], [1.0, 1.0]]), [[-0.5, -0.5], [199.5, 99.5]])
    assert np.allclose(cam.pixel_to_normalized([99.5, 49.5]), [0.5, 0.5])
    T = look_at([0.0, 0.0, 1.0], [1.0, 0.0, 1.0])  # looking along x, image up = z
    assert np.allclose(T[:3, 2], [1, 0, 0]) and np.allclose(T[:3, 1], [0, 0, -1]) and np.allclose(T[:3, 3], [0, 0, 1])
    from llara_core.geometry import GeometryError, transform_points, wrap_degrees, yaw_of

    with pytest.raises(GeometryError, match="coincide"):
        look_at([1, 1, 1], [1, 1, 1])
    with pytest.raises(GeometryError, match="parallel"):
        look_at([0, 0, 1], [0, 0, 0])
    assert [wrap_degrees(a) for a in (180.0, -180.0, 190.0, -190.0, 540.0)] == [-180.0, -180.0, -170.0, 170.0, -180.0]
    R = pose_to_matrix([1.0, 2.0, 3.0], [0.0, 0.0, math.sin(0.35), math.cos(0.35)])
    assert math.isclose(yaw_of(R), 0.7) and math.isclose(yaw_of(R[:3, :3]), 0.7)
    assert np.allclose(transform_points(R, [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), [[1, 2, 3], [1 + math.cos(0.7),
                                                                                         2 + math.sin(0.7), 3]])  # fmt: skip
