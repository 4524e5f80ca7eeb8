"""Episodes through real rosbag2 files (mcap and sqlite3) and back, against known ground truth."""

import numpy as np
import pytest

from llara_core.datasets.bags import BagError, BagOptions, BagTopics, read_episode_bag, write_episode_bag
from llara_core.datasets.reader import read_dataset
from llara_core.datasets.writer import write_dataset
from llara_core.sim.synthetic import make_episode


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip_matches_ground_truth(tmp_path, storage):
    ep = make_episode(21, n_blocks=3, n_steps=2)
    bag = write_episode_bag(ep, tmp_path / "ep", storage=storage)
    back = read_episode_bag(bag)
    assert back.instruction == ep.instruction and len(back.frames) == len(ep.frames)
    assert np.array_equal(back.frames[3].image, ep.frames[3].image)
    assert np.allclose(back.camera_pose, ep.camera_pose, atol=1e-9)
    truth, got = ep.action_steps(), back.action_steps()
    assert len(got) == len(truth) == 2
    for a, b in zip(truth, got, strict=True):
        assert np.abs(np.subtract(a.pick, b.pick)).max() <= 0.01
        assert np.abs(np.subtract(a.place, b.place)).max() <= 0.01
        assert a.rotation_deg == b.rotation_deg
    data = write_dataset(tmp_path / "ds", [back], kinds=["inbc"])
    assert data.is_file() and len(read_dataset(tmp_path / "ds")) == 2


def test_missing_topic_names_it_and_lists_the_bag(tmp_path):
    bag = write_episode_bag(make_episode(1), tmp_path / "ep")
    with pytest.raises(BagError, match=r"ee_pose \(/tool_pose\).*the bag has \[.*'/ee_pose'"):
        read_episode_bag(bag, BagOptions(topics=BagTopics(ee_pose="/tool_pose")))


def test_corrupt_bag_is_a_clear_error(tmp_path):
    bag = write_episode_bag(make_episode(1), tmp_path / "ep")
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(b"\x89MCAP0\r\n" + b"garbage" * 10)
    with pytest.raises(BagError):
        read_episode_bag(bag)
    with pytest.raises(BagError, match="cannot open"):
        read_episode_bag(tmp_path / "does-not-exist")


def test_convert_skips_bad_bags_reports_them_and_resumes(tmp_path):
    import json
    import subprocess
    import sys

    good = [
        write_episode_bag(make_episode(s, n_steps=1 + s % 2), tmp_path / f"ep{s}", storage=st)
        for s, st in ((1, "mcap"), (2, "sqlite3"))
    ]
    broken = write_episode_bag(make_episode(3), tmp_path / "broken")
    next(broken.glob("*.mcap")).write_bytes(b"not a bag")
    ep = make_episode(4)
    for s in ep.states:  # an episode in which the gripper never closes
        object.__setattr__(s, "gripper_closed", False)
    nograsp = write_episode_bag(ep, tmp_path / "nograsp")
    out = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "llara_core.apps.cli",
        "convert-bags",
        *map(str, [*good, broken, nograsp]),
        "--out",
        str(out),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["converted"]) == sorted(map(str, good))
    reasons = {s["bag"]: s["reason"] for s in report["skipped"]}
    assert "cannot open" in reasons[str(broken)] and "no grasp" in reasons[str(nograsp)]
    records = read_dataset(out)
    assert report["samples"]["inbc"] == 3 and len(records) == sum(report["samples"].values())
    # resume: nothing is converted twice
    again = subprocess.run([*cmd[:4], str(good[0]), "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 0 and "already converted 1" in again.stdout
    assert read_dataset(out) == records
