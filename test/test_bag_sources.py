"""Every way an episode can sit in a bag, against the simulator's ground truth.

Detections, compressed images, end-effector poses from joint_states through the
URDF, a finger-joint gripper with hysteresis, camera extrinsics through a tf
chain or from the config, sidecars, unfinished bags of a killed recorder, the
YAML config and --workers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from sim_helpers import expert_episode

from llara_core.datasets.bags import (
    BOXES_SIDECAR,
    BagError,
    BagOptions,
    BagTopics,
    GripperFilter,
    chain_transform,
    quaternion_pose,
    read_episode_bag,
    recover_bag,
    write_episode_bag,
    write_sidecar,
)
from llara_core.datasets.convert import ConversionConfig, convert_bags
from llara_core.datasets.reader import read_dataset
from llara_core.geometry import invert_transform, look_at
from llara_core.sim.arm import urdf_path

pytestmark = pytest.mark.sim  # MuJoCo scenes: seconds per test (left out of mutation runs)

FK_OPTIONS = dict(
    urdf=str(urdf_path()), gripper_joint="finger_left_joint", gripper_threshold=0.026, gripper_hysteresis=0.004
)


@pytest.fixture(scope="module")
def episodes():
    """Two expert demonstrations (1 and 2 steps) with boxes and joint states."""
    return [expert_episode("l1_placement", 11), expert_episode("multi_step", 12)]


def _same_actions(a, b, tol=0.01):
    """Same steps; with ``tol`` > 0 (actions recovered another way) the whole-degree rotation may differ by 1.

    A recovered keyframe is a neighbouring state (the finger joint crosses its
    threshold a few samples after the Bool topic switches), and a yaw of
    -13.49° there against -13.50° rounds to 13 against 14.
    """
    ta, tb = a.action_steps(), b.action_steps()
    assert len(ta) == len(tb) > 0
    for x, y in zip(ta, tb, strict=True):
        assert np.abs(np.subtract([*x.pick, *x.place], [*y.pick, *y.place])).max() <= tol
        assert abs(x.rotation_deg - y.rotation_deg) <= (1.0 if tol > 0 else 0.0)


def test_detections_give_boxes_for_d_inbc_and_aux_tasks(episodes, tmp_path):
    ep = episodes[1]
    back = read_episode_bag(write_episode_bag(ep, tmp_path / "b"))
    _same_actions(ep, back, tol=0.0)
    for f, g in zip(ep.frames, back.frames, strict=True):
        assert [o.name for o in f.objects] == [o.name for o in g.objects]
        for o, p in zip(f.objects, g.objects, strict=True):
            assert np.allclose([o.cx, o.cy, o.w, o.h], [p.cx, p.cy, p.w, p.h], atol=1e-9)
    report = convert_bags([tmp_path / "b"], tmp_path / "ds", progress=False)
    assert set(report["samples"]) == {
        "inbc", "d_inbc", "localization", "detection", "action_prediction",
        "future_prediction", "spatial_relationship", "temporal_relationship",
    }  # fmt: skip


def test_without_detections_d_inbc_is_skipped_with_a_warning_or_read_from_the_sidecar(episodes, tmp_path):
    ep = episodes[0]
    boxes = [f.objects for f in ep.frames]
    for f in ep.frames:
        f.objects = None
    try:
        bag = write_episode_bag(ep, tmp_path / "nobox")
    finally:
        for f, b in zip(ep.frames, boxes, strict=True):
            f.objects = b
    cfg = ConversionConfig(kinds=("inbc", "d_inbc"))
    report = convert_bags([bag], tmp_path / "ds1", cfg, progress=False)
    assert report["samples"] == {"inbc": 1}
    assert report["notes"][str(bag)]["kinds_without_samples"] == ["d_inbc"]
    frames = [{"stamp": f.stamp, "objects": [o.__dict__ for o in f.objects]} for f in ep.frames]
    (bag / BOXES_SIDECAR).write_text(json.dumps({"frames": frames}))
    report = convert_bags([bag], tmp_path / "ds2", cfg, progress=False)
    assert report["samples"] == {"inbc": 1, "d_inbc": 1}


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_decode_only_when_used(episodes, tmp_path, fmt):
    ep = episodes[0]
    back = read_episode_bag(write_episode_bag(ep, tmp_path / "c", image_format=fmt))
    assert not any(f.decoded for f in back.frames)
    img = back.frames[2].image
    assert img.shape == ep.frames[2].image.shape
    diff = np.abs(img.astype(int) - ep.frames[2].image.astype(int))
    assert diff.max() == 0 if fmt == "png" else diff.mean() < 6
    assert sum(f.decoded for f in back.frames) == 1
    _same_actions(ep, back, tol=0.0)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_end_effector_from_joint_states_and_gripper_from_a_finger_joint(episodes, tmp_path, storage):
    """No ee_pose and no gripper topic: FK through the URDF and a thresholded finger joint recover the actions."""
    ep = episodes[1]
    bag = write_episode_bag(ep, tmp_path / "fk", storage=storage, ee_pose=False)
    # drop the Bool gripper topic by pointing the options at a name that is not in the bag
    opts = BagOptions(topics=BagTopics(gripper="/not_recorded"), **FK_OPTIONS)
    back = read_episode_bag(bag, opts)
    _same_actions(ep, back, tol=0.01)
    with pytest.raises(BagError, match=r"ee_pose.*urdf"):
        read_episode_bag(bag, BagOptions(topics=BagTopics(gripper="/not_recorded")))
    with pytest.raises(BagError, match="gripper_threshold"):
        read_episode_bag(bag, BagOptions(topics=BagTopics(gripper="/not_recorded"), urdf=str(urdf_path()),
                                         gripper_joint="finger_left_joint"))  # fmt: skip


def test_gripper_hysteresis_ignores_chatter_at_the_threshold():
    g = GripperFilter(0.026, 0.004)
    seq = [0.04, 0.03, 0.0265, 0.025, 0.0239, 0.025, 0.027, 0.0279, 0.0281, 0.026]
    assert [g(v) for v in seq] == [False, False, False, False, True, True, True, True, False, False]
    up = GripperFilter(0.5, 0.1, closed_below=False)  # e.g. a Robotiq position: larger = more closed
    assert [up(v) for v in (0.0, 0.52, 0.56, 0.5, 0.44)] == [False, False, True, True, False]


def test_camera_pose_through_a_tf_chain_or_from_the_config(episodes, tmp_path):
    cam = look_at([1.0, 0.2, 0.7], [0.4, 0.0, 0.0])
    mount = look_at([0.9, 0.0, 0.5], [0.0, 0.0, 0.0])
    edges = [("world", "base_link", np.eye(4)), ("base_link", "mount", mount),
             ("mount", "camera_color_optical_frame", invert_transform(mount) @ cam)]  # fmt: skip
    assert np.allclose(chain_transform(edges, "base_link", "camera_color_optical_frame"), cam)
    assert np.allclose(chain_transform(edges, "camera_color_optical_frame", "base_link"), invert_transform(cam))
    assert chain_transform(edges, "base_link", "nowhere") is None
    ep = episodes[0]
    bag = write_episode_bag(ep, tmp_path / "b")
    back = read_episode_bag(bag, BagOptions(camera_pose=quaternion_pose(ep.camera_pose)))
    assert np.allclose(back.camera_pose, ep.camera_pose, atol=1e-9)
    with pytest.raises(BagError, match="no camera pose"):
        read_episode_bag(bag, BagOptions(camera_frame="some_other_camera"))


def test_instruction_and_operator_flag_from_the_sidecar(episodes, tmp_path):
    ep = episodes[0]
    bag = write_episode_bag(ep, tmp_path / "b", options=BagOptions(topics=BagTopics(task="/unused_task")))
    opts = BagOptions(topics=BagTopics(task="/not_in_bag"))
    with pytest.raises(BagError, match="no instruction"):
        read_episode_bag(bag, opts)
    write_sidecar(bag, "put it there", True, operator="test")
    back = read_episode_bag(bag, opts)
    assert back.instruction == "put it there" and back.metadata["operator_success"] is True
    assert read_episode_bag(bag, BagOptions(topics=opts.topics, instruction="override")).instruction == "override"


def _kill(bag, storage):
    """What a SIGKILLed writer leaves: no metadata.yaml; an mcap cut inside its last chunk, without a summary."""
    (bag / "metadata.yaml").unlink()
    if storage == "mcap":
        f = next(bag.glob("*.mcap"))
        data = f.read_bytes()
        f.write_bytes(data[: int(len(data) * 0.8)])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_killed_recorders_bag_is_recovered_up_to_the_last_complete_message(episodes, tmp_path, storage):
    ep = episodes[1]
    bag = write_episode_bag(ep, tmp_path / "killed", storage=storage)
    _kill(bag, storage)
    report = convert_bags([bag], tmp_path / "ds", ConversionConfig(kinds=("inbc",)), progress=False)
    assert report["skipped"] == [] and report["notes"][str(bag)]["recovered_messages"] > 100
    back = read_episode_bag(bag)  # now a normal bag; the originals are kept
    assert (bag / "metadata.yaml").is_file() and any((bag / "unfinished").iterdir())
    assert back.instruction == ep.instruction
    if storage == "sqlite3":
        _same_actions(ep, back, tol=0.0)
    else:  # the tail is gone; what is left is exact
        assert len(back.frames) < len(ep.frames)
        for a, b in zip(ep.frames, back.frames, strict=False):
            assert a.stamp == pytest.approx(b.stamp) and np.array_equal(a.image, b.image)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "empty.mcap").write_bytes(b"\x89MCAP0\r\n")
    with pytest.raises(BagError, match="no complete message"):
        recover_bag(empty)


def test_config_file_flags_and_workers(episodes, tmp_path):
    bags = []
    for i, ep in enumerate(episodes):
        bags.append(write_episode_bag(ep, tmp_path / f"ep{i}", ee_pose=False, storage="sqlite3" if i else "mcap"))
    cfg = tmp_path / "conversion.yaml"
    cfg.write_text(
        "kinds: [inbc, d_inbc]\nworkers: 2\nbag:\n"
        f"  urdf: {urdf_path()}\n  gripper_joint: finger_left_joint\n  gripper_threshold: 0.026\n"
        "  gripper_hysteresis: 0.004\n  topics: {gripper: /not_recorded}\n"
    )
    base = [sys.executable, "-m", "llara_core.apps.cli", "convert-bags", *map(str, bags), "--config", str(cfg)]
    r = subprocess.run([*base, "--out", str(tmp_path / "w2")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r1 = subprocess.run([*base, "--out", str(tmp_path / "w1"), "--workers", "1", "--kinds", "inbc"],
                        capture_output=True, text=True)  # fmt: skip
    assert r1.returncode == 0, r1.stderr
    two, one = read_dataset(tmp_path / "w2"), read_dataset(tmp_path / "w1")
    assert {r["task"] for r in two} == {"inbc", "d_inbc"} and {r["task"] for r in one} == {"inbc"}
    assert [r for r in two if r["task"] == "inbc"] == one  # the flag overrode the file; workers change nothing
    cfg.write_text("kinds: [inbc]\nbag:\n  gripper_treshold: 0.02\n")
    bad = subprocess.run([*base, "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 2 and "gripper_treshold" in bad.stderr and not (tmp_path / "bad").exists()


def test_bags_without_ros_bag_record_naming_convert_by_topic_flags(episodes, tmp_path):
    """A bag recorded with other topic names converts when the flags name them."""
    topics = BagTopics(image="/cam/rgb", camera_info="/cam/info", ee_pose="/robot/tcp", gripper="/robot/grip")
    bag = write_episode_bag(episodes[0], tmp_path / "named", options=BagOptions(topics=topics))
    out = tmp_path / "ds"
    flags = ["--bag.topics.image", "/cam/rgb", "--bag.topics.camera-info", "/cam/info",
             "--bag.topics.ee-pose", "/robot/tcp", "--bag.topics.gripper", "/robot/grip"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "llara_core.apps.cli", "convert-bags", str(bag), "--out", str(out), *flags],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    shutil.rmtree(out)
    r = subprocess.run([sys.executable, "-m", "llara_core.apps.cli", "convert-bags", str(bag), "--out", str(out)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "missing topic image (/camera/color/image_raw)" in r.stderr and "/cam/rgb" in r.stderr


def test_a_numeric_gripper_topic_needs_and_uses_a_threshold(episodes, tmp_path):
    ep = episodes[0]
    bag = write_episode_bag(ep, tmp_path / "f", gripper_float=True)
    with pytest.raises(BagError, match=r"Float64: set 'bag.gripper_threshold' \(its values range 0–1\)"):
        read_episode_bag(bag)
    _same_actions(ep, read_episode_bag(bag, BagOptions(gripper_threshold=0.5, gripper_closed_below=False)), tol=0.0)


def test_a_recorder_on_the_wall_clock_beside_a_robot_on_sim_time_still_converts(episodes, tmp_path):
    """Headers in sim time (seconds since start), receive times on the wall clock, a Bool gripper without a header:
    every stream goes on the receive clock, so the grasps are found (they were lost when poses used headers)."""
    ep = episodes[1]
    bag = write_episode_bag(ep, tmp_path / "wall", receive_offset_s=1.79e9)
    back = read_episode_bag(bag)
    assert back.metadata["time_base"] == "receive"
    _same_actions(ep, back, tol=0.0)


def test_streams_stamped_on_different_clocks_are_refused_with_what_to_set(episodes, tmp_path):
    ep = episodes[1]
    # every stream has a header (FK from joint states, gripper from a finger joint), but the camera's clock is off
    bag = write_episode_bag(ep, tmp_path / "clocks", ee_pose=False, camera_clock_offset_s=1.79e9)
    opts = BagOptions(topics=BagTopics(gripper="/not_recorded"), **FK_OPTIONS)
    with pytest.raises(BagError, match=r"header times do not overlap.*image.*use_sim_time:=true"):
        read_episode_bag(bag, opts)
    same = write_episode_bag(ep, tmp_path / "one_clock", ee_pose=False)
    assert read_episode_bag(same, opts).metadata["time_base"] == "header"
