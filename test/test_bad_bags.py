"""Other people's bags: a bag broken at any stage is reported in one line and skipped, the rest converts.

Each bag below is broken in a different stage of conversion — opening,
recovering, reading, decoding, converting — and all of them go through one
``llara convert-bags`` run with a good bag, serially and with ``--workers 2``.
Then the refusals that point at a fix (frames, gripper range, boxes), the
end-effector wording, and ``llara inspect-bag``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llara_core.datasets.bags import BagOptions, BagTopics, write_episode_bag
from llara_core.datasets.reader import read_dataset
from llara_core.sim.synthetic import make_episode

LLARA = [sys.executable, "-m", "llara_core.apps.cli"]


def _truncate(bag: Path, keep_metadata: bool) -> Path:
    for f in [*bag.glob("*.mcap"), *bag.glob("*.db3")]:
        with f.open("r+b") as fh:
            fh.truncate(f.stat().st_size // 2)
    if not keep_metadata:
        (bag / "metadata.yaml").unlink()
    return bag


def _corrupt_one_jpeg(bag: Path) -> Path:
    """Overwrite the header of the first JPEG frame (the first observation: always used) in place."""
    db = next(bag.glob("*.db3"))
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT m.id, m.data FROM messages m JOIN topics t ON m.topic_id = t.id WHERE t.name = ? ORDER BY m.timestamp",
        ("/camera/color/image_raw",),
    ).fetchall()
    mid, data = rows[0]
    data = bytearray(data)
    soi = data.index(b"\xff\xd8\xff")
    data[soi : soi + 64] = b"\x00" * 64
    con.execute("UPDATE messages SET data = ? WHERE id = ?", (bytes(data), mid))
    con.commit()
    con.close()
    return bag


def _unparseable_definition(path: Path) -> Path:
    """A bag whose one custom message's stored definition names a type that does not exist."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        bad = w.add_connection("/service_events", "pkg/msg/Event", msgdef="int32 x\nnot_a_pkg/Nope y\n",
                               rihs01="RIHS01_" + "0" * 64)  # fmt: skip
        w.write(bad, 1, b"\x00\x01\x00\x00\x05\x00\x00\x00")
        w.add_connection("/task", "std_msgs/msg/String", typestore=ts)
    return path


def _without_dac_override() -> list[str]:
    """A command prefix under which file permissions apply (root reads anything unless it drops these caps)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux setpriv: a mode-000 folder cannot be made unreadable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    ep, ep2 = make_episode(1, n_steps=2), make_episode(2, n_steps=1)
    made = {
        "good": write_episode_bag(ep, root / "good", storage="mcap"),
        "sqlite_truncated": _truncate(write_episode_bag(ep2, root / "sqlite_truncated", storage="sqlite3"), True),
        "sqlite_truncated_no_metadata": _truncate(
            write_episode_bag(ep2, root / "sqlite_truncated_no_metadata", storage="sqlite3"), False
        ),
        "mcap_truncated": _truncate(write_episode_bag(ep2, root / "mcap_truncated"), True),
        "mcap_truncated_no_metadata": _truncate(write_episode_bag(ep2, root / "mcap_truncated_no_metadata"), False),
        "corrupt_jpeg": _corrupt_one_jpeg(
            write_episode_bag(ep2, root / "corrupt_jpeg", storage="sqlite3", image_format="jpeg")
        ),
        "unparseable_definition": _unparseable_definition(root / "unparseable_definition"),
    }
    return made


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bag_broken_at_any_stage_is_reported_and_the_rest_converts(bags, tmp_path, workers):
    prefix = _without_dac_override()
    out = tmp_path / "ds"
    work = tmp_path / "bags"  # a copy per run: recovery rewrites unfinished bags in place
    shutil.copytree(bags["good"].parent, work)
    unreadable = work / "unreadable"  # a good bag in a folder without read permission
    shutil.copytree(bags["good"], unreadable)
    unreadable.chmod(0)
    cmd = [*prefix, *LLARA, "convert-bags", str(work), "--out", str(out), "--workers", str(workers)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
        # a re-run does not crash on the same bags and converts nothing twice
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        unreadable.chmod(0o755)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    converted = {Path(b).name for b in report["converted"]}
    reasons = {Path(s["bag"]).name: s for s in report["skipped"]}
    assert "good" in converted
    assert converted | set(reasons) == {p.name for p in work.iterdir()}
    # every failure: one line, the bag's name not repeated, its type recorded
    for s in reasons.values():
        assert "\n" not in s["reason"] and len(s["reason"]) < 400 and str(work) not in s["reason"], s
        assert s["error_type"], s
    assert "permission denied" in reasons["unreadable"]["reason"]
    bad_def = reasons["unparseable_definition"]["reason"]
    assert "pkg/msg/Event on /service_events" in bad_def and "['/service_events', '/task']" in bad_def
    assert reasons["corrupt_jpeg"]["error_type"] in ("ImageEncodingError", "BagError")
    # a truncated bag converts what is complete, or is skipped with why; never both lost and silent
    for name in ("sqlite_truncated", "sqlite_truncated_no_metadata", "mcap_truncated", "mcap_truncated_no_metadata"):
        assert name in converted or name in reasons, name
    for line in res.stderr.splitlines():
        if line.startswith("  SKIPPED"):
            assert line.count(str(work)) == 1, line
    assert (out / "manifest.json").is_file() and len(read_dataset(out)) == sum(report["samples"].values())
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr
    second = json.loads((out / "report.json").read_text())
    assert second["converted"] == [] and second["samples"] == {}
    assert {Path(b).name for b in second["already_converted"]} == converted
    assert {Path(s["bag"]).name for s in second["skipped"]} == set(reasons)


def test_the_report_and_manifest_are_written_when_every_bag_fails(bags, tmp_path):
    out = tmp_path / "ds"
    unreadable = shutil.copytree(bags["good"], tmp_path / "unreadable")
    unreadable.chmod(0)
    try:  # named directly (not found inside a folder of bags): the same one-line report, no crash
        res = subprocess.run([*_without_dac_override(), *LLARA, "convert-bags", str(bags["unparseable_definition"]),
                              str(unreadable), "--out", str(out)], capture_output=True, text=True)  # fmt: skip
    finally:
        unreadable.chmod(0o755)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["converted"] == [] and len(report["skipped"]) == 2
    assert json.loads((out / "manifest.json").read_text())["total"] == 0


def test_refusals_say_what_to_set(tmp_path):
    from llara_core.datasets.bags import read_episode_bag
    from llara_core.datasets.bags.options import BagError
    from llara_core.datasets.convert import ConversionConfig, convert_bags

    ep = make_episode(5, n_steps=1)
    bag = write_episode_bag(ep, tmp_path / "panda", options=BagOptions(base_frame="panda_link0"))
    with pytest.raises(BagError) as info:
        read_episode_bag(bag)
    assert str(info.value) == (
        "no camera pose: /tf_static has no chain base_link -> camera_color_optical_frame; it has panda_link0 -> "
        "camera_color_optical_frame; set 'bag.base_frame: panda_link0' (frames with a chain to the camera: "
        "['panda_link0'])"
    )
    with pytest.raises(BagError, match=r"set 'bag.camera_frame' to the camera's optical frame \(one of \['camera"):
        read_episode_bag(bag, BagOptions(base_frame="panda_link0", camera_frame="cam"))
    # a numeric gripper whose threshold lies outside the signal's range: no grasp, with the range and the setting
    fbag = write_episode_bag(ep, tmp_path / "float", gripper_float=True)
    cfg = ConversionConfig(kinds=("inbc",), bag=BagOptions(gripper_threshold=1.5))
    report = convert_bags([fbag], tmp_path / "ds", cfg, progress=False)
    assert report["skipped"][0]["reason"] == (
        "no grasp (a gripper close followed by an open): /gripper_closed (Float64) ranged 0–1; "
        "'bag.gripper_threshold' 1.5 is outside it"
    )
    # no detections and no boxes.json: the console says which kinds got nothing and why
    plain = make_episode(6, n_steps=1)
    for fr in plain.frames:
        fr.objects = []
    nobox = write_episode_bag(plain, tmp_path / "nobox")
    res = subprocess.run([*LLARA, "convert-bags", str(nobox), "--out", str(tmp_path / "ds2"), "--kinds", "inbc",
                          "d_inbc"], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"WARNING {nobox}: no d_inbc samples: no object boxes: the bag has no /detections messages and no " \
           "boxes.json" in res.stderr  # fmt: skip


def test_the_end_effector_is_a_setting_of_conversion_and_policy(tmp_path):
    from llara_core.datasets.convert import ConversionConfig, convert_bags
    from llara_core.datasets.reader import common_style, dataset_style
    from llara_core.language.prompts import PromptStyle, inbc_prompt
    from llara_core.model.runtime import VLMPolicy

    assert "where the suction cup picks up" in inbc_prompt("x", request_index=0)  # LLaRA's wording by default
    bag = write_episode_bag(make_episode(7, n_steps=1), tmp_path / "ep")
    convert_bags([bag], tmp_path / "grip", ConversionConfig(kinds=("inbc", "action_prediction"),
                 end_effector="gripper"), progress=False)  # fmt: skip
    records = read_dataset(tmp_path / "grip")
    assert records and all("where the gripper picks up" in r["conversations"][0]["value"] for r in records)
    assert json.loads((tmp_path / "grip" / "manifest.json").read_text())["end_effector"] == "gripper"
    convert_bags([bag], tmp_path / "cup", ConversionConfig(kinds=("inbc",)), progress=False)
    assert dataset_style(tmp_path / "grip") == PromptStyle("llara_ros", "gripper")
    with pytest.raises(ValueError, match="different end effectors"):
        common_style({str(d): dataset_style(d) for d in (tmp_path / "grip", tmp_path / "cup")})
    with pytest.raises(ValueError, match="one-line phrase"):
        ConversionConfig(end_effector=" ")
    policy = VLMPolicy.__new__(VLMPolicy)
    policy.style = PromptStyle(end_effector="gripper")
    assert "where the gripper picks up" in policy.build_prompt("put the block in the bowl")


def test_inspect_bag_shows_the_bag_and_the_converters_verdict(tmp_path):
    ep = make_episode(8, n_steps=2)
    bag = write_episode_bag(ep, tmp_path / "other", options=BagOptions(topics=BagTopics(image="/cam/rgb")),
                            gripper_float=True)  # fmt: skip
    res = subprocess.run([*LLARA, "inspect-bag", str(bag), "--json"], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    got = json.loads(res.stdout)
    assert {"topic": "/cam/rgb", "type": "sensor_msgs/msg/Image", "count": len(ep.frames)} in got["topics"]
    assert got["tf_static"] == ["base_link -> camera_color_optical_frame"]
    assert got["ranges /gripper_closed"] == {"data": [0.0, 1.0]}
    assert got["camera"]["size"] == [ep.camera.width, ep.camera.height]
    assert got["verdict"] == {"converts": False, "reason": "missing topic image (/camera/color/image_raw); the bag "
                              f"has {sorted(t['topic'] for t in got['topics'])}"}  # fmt: skip
    ok = subprocess.run([*LLARA, "inspect-bag", str(bag), "--bag.topics.image", "/cam/rgb",
                         "--bag.gripper-threshold", "0.5", "--no-bag.gripper-closed-below"],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "converts: 2 steps" in ok.stdout and "'inbc': 2" in ok.stdout
    assert not (bag / "unfinished").exists()
