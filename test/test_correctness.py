"""What a new user's walk through the README and a mutation test of the suite found (issue 23), each pinned.

Every test checks behaviour a user relies on: a planted bug in the named place
makes it fail.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llara_core.actions import ActionStep, parse_actions, render_step
from llara_core.bags import align_states, write_episode_bag, write_sidecar
from llara_core.conversations import DatasetWriter, read_dataset
from llara_core.convert import ConversionConfig, convert_bags
from llara_core.episodes import Episode, RobotState
from llara_core.model.runtime import PolicyOutput
from llara_core.synthetic import make_episode

LLARA = [sys.executable, "-m", "llara_core.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LLARA, *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def sim_episode():
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.expert import run_expert
    from llara_core.sim.tasks import make_task

    task = make_task("multi_step", 4)
    with TabletopEnv(task.scene, width=160, height=120) as env:
        res = run_expert(task, env)
    assert res.success
    return res.episode


# -- the parser's bounds --------------------------------------------------------------------------
def test_the_parser_accepts_the_image_edge_and_nothing_beyond_it():
    edge = "Pick up the object at <b>(1.0, 0.0)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.0, 1.000)</b>."
    assert parse_actions(edge).ok
    for bad in ("1.001", "1.01", "1.04", "1.05", "-0.001"):
        text = edge.replace("(1.0, 0.0)", f"({bad}, 0.5)")
        res = parse_actions(text)
        assert not res.steps and res.errors[0].code == "out_of_range", bad


# -- keyframes and alignment ---------------------------------------------------------------------------
def _poses(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        T = np.eye(4)
        T[:3, 3] = (0.4 + 0.01 * i, 0.02 * i, 0.02)
        out.append(T)
    return out


def test_a_keyframe_takes_the_state_at_the_gripper_change_not_the_one_before():
    ep = make_episode(3)
    closed = [False, False, True, True, True, False, False]
    poses = _poses(len(closed))
    states = [RobotState(0.1 * i, P, c) for i, (P, c) in enumerate(zip(poses, closed, strict=True))]
    ep2 = Episode("k", ep.instruction, ep.camera, ep.camera_pose, ep.frames, states)
    (st,) = ep2.steps()
    assert (st.pick_state, st.place_state) == (2, 5)
    from llara_core.geometry import base_to_normalized

    want = np.round(base_to_normalized(ep.camera, ep.camera_pose, np.stack([poses[2][:3, 3], poses[5][:3, 3]])), 3)
    step = ep2.action_steps()[0]
    assert step.pick == tuple(want[0]) and step.place == tuple(want[1])


def test_a_bag_aligns_each_pose_with_the_gripper_message_current_then_not_the_next():
    poses = [(t, P) for t, P in zip((0.0, 1.0, 2.0, 3.0), _poses(4), strict=True)]
    grips = [(0.0, False), (1.0, True), (2.5, False)]  # closed exactly at 1.0; opened between 2.0 and 3.0
    states = align_states(poses, grips)
    assert [s.gripper_closed for s in states] == [False, True, True, False]


# -- the dataset writer under a crash ----------------------------------------------------------------
_WRITER = """
import sys
from llara_core.conversations import DatasetWriter
from llara_core.synthetic import make_episode
w = DatasetWriter(sys.argv[1])
for seed in range(40):
    w.add_episode(make_episode(seed, n_blocks=3, n_steps=2))
w.finalize()
"""


def _visible_records_are_whole(root: Path) -> None:
    shards = sorted((root / "shards").glob("*.jsonl"))
    for shard in shards:
        for line in shard.read_text().splitlines():
            rec = json.loads(line)  # a committed shard is never half written
            assert (root / rec["image"]).is_file(), f"{rec['id']} names an image that is not there"
    committed = {s.stem for s in shards}
    for folder in (root / "images").glob("*"):
        if folder.name not in committed:  # images of an episode whose shard is not written yet
            continue
        assert all(p.suffix == ".png" for p in folder.iterdir())
    assert not list(root.rglob("*.tmp")) or True  # temporary files may remain; they are never read


def test_a_killed_writer_leaves_only_whole_episodes_and_a_rerun_completes_without_duplicates(tmp_path):
    rng = random.Random(0)
    root = tmp_path / "ds"
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)])
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (root / "shards").is_dir():
            _visible_records_are_whole(root)
    subprocess.run([sys.executable, "-c", _WRITER, str(root)], check=True)
    records = read_dataset(root, check_content=True)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert {i.split("/")[0] for i in ids} == {make_episode(s, n_blocks=3, n_steps=2).episode_id for s in range(40)}
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    for p in leftovers:  # temp files of killed writes are never referenced by any record
        assert not any(p.name in json.dumps(r) for r in records)


def test_the_shard_that_commits_an_episode_is_written_after_its_images(tmp_path, monkeypatch):
    import llara_core.conversations as conv

    order: list[str] = []
    real = conv.atomic_write_bytes

    def spy(path, data):
        order.append(Path(path).suffix)
        real(path, data)

    monkeypatch.setattr(conv, "atomic_write_bytes", spy)
    DatasetWriter(tmp_path).add_episode(make_episode(1, n_blocks=3, n_steps=2))
    assert (
        order[-1] == ".jsonl"
        and ".png" in order
        and order.index(".jsonl") > max(i for i, s in enumerate(order) if s == ".png")
    )


# -- training batches -------------------------------------------------------------------------------------
def test_padding_positions_carry_the_ignore_label():
    import torch

    from llara_core.model.data import IGNORE_INDEX, collate

    pix = torch.zeros(3, 8, 8)
    batch = [
        {"input_ids": [5, 6, 7, 8], "labels": [IGNORE_INDEX, IGNORE_INDEX, 7, 8], "pixel_values": pix},
        {"input_ids": [5, 6], "labels": [IGNORE_INDEX, 6], "pixel_values": pix},
    ]
    out = collate(batch, pad_id=0)
    assert out["labels"][1].tolist() == [IGNORE_INDEX, 6, IGNORE_INDEX, IGNORE_INDEX]
    assert out["attention_mask"][1].tolist() == [1, 1, 0, 0] and out["input_ids"][1].tolist() == [5, 6, 0, 0]
    assert out["labels"][0].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 7, 8]


# -- the closed loop's refusals ------------------------------------------------------------------------------
class ScriptedPolicy:
    """Answers from a list, one per query (then repeats the last): a model whose answers we choose."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.calls = 0

    def act(self, image, instruction, objects=None, history=()):
        text = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        res = parse_actions(text)
        return PolicyOutput(text, res.steps, res.errors, 0.0)


def _expert_steps(family: str, seed: int) -> list[ActionStep]:
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.expert import run_expert
    from llara_core.sim.tasks import make_task

    task = make_task(family, seed)
    with TabletopEnv(task.scene) as env:
        return run_expert(task, env).episode.action_steps()


@pytest.mark.sim
def test_an_unparseable_answer_ends_the_episode_even_if_a_requery_would_succeed():
    from llara_core.evaluate import run_episode

    good = render_step(_expert_steps("l1_placement", 6)[0], 1)
    policy = ScriptedPolicy(["I would rather not.", good])
    row = run_episode(policy, "l1_placement", 6, extra_steps=3)
    assert not row["success"] and row["steps"] == 0 and policy.calls == 1
    assert row["reason"].startswith("unparseable")


@pytest.mark.sim
def test_a_text_whose_first_step_is_invalid_is_not_executed_even_when_a_later_step_parses():
    from llara_core.evaluate import run_episode
    from llara_core.planning import select_step

    good = render_step(_expert_steps("l1_placement", 6)[0], 2)
    text = "Step 1: Pick up the object at <b>(0.4, 1.3)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.5, 0.5)</b>.\n"
    text += good
    assert select_step(text, "first_step").code == "out_of_range"
    assert select_step(text, "refuse").code == "out_of_range"
    row = run_episode(ScriptedPolicy([text]), "l1_placement", 6)
    assert not row["success"] and row["steps"] == 0


# -- README commands as a new user types them ---------------------------------------------------------------
@pytest.mark.sim
def test_bag_converted_answers_name_the_object_from_the_detections(sim_episode, tmp_path):
    """The same episode through the writer and through a bag gives the same records, text included."""
    DatasetWriter(tmp_path / "direct").add_episode(sim_episode)
    direct = DatasetWriter(tmp_path / "direct")
    direct.finalize()
    bag = write_episode_bag(sim_episode, tmp_path / "bags" / sim_episode.episode_id)
    convert_bags([bag], tmp_path / "conv", progress=False)
    from llara_core.demo import compare_records

    ours, theirs = read_dataset(tmp_path / "direct"), read_dataset(tmp_path / "conv")
    assert compare_records(ours, theirs) == []
    inbc = [r for r in theirs if r["task"] == "inbc"]
    assert all("<p>" in r["conversations"][1]["value"] for r in inbc)  # "Pick up the <p>red block</p> …"


@pytest.mark.ros
@pytest.mark.sim
def test_node_paths_expand_home_and_variables(sim_episode, tmp_path):
    home = tmp_path / "home"
    bag = write_episode_bag(sim_episode, home / "demos" / "ep1")
    env = {**os.environ, "HOME": str(home), "LLARA_DEMOS": str(home / "demos")}
    cmd = [sys.executable, "-m", "llara_ros.convert_bags", "--ros-args", "-p", "bags:=[$LLARA_DEMOS]",
           "-p", "out:=~/dataset", "-p", "kinds:=[inbc]"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (home / "dataset" / "data.json").is_file() and not (tmp_path / "~").exists()
    assert bag.name in (home / "dataset" / "report.json").read_text()


def test_validate_dataset_checks_the_content_of_each_record(tmp_path):
    DatasetWriter(tmp_path / "ds").add_episode(make_episode(2, n_blocks=3, n_steps=1))
    DatasetWriter(tmp_path / "ds").finalize()
    assert run("validate-dataset", str(tmp_path / "ds")).returncode == 0
    data = tmp_path / "ds" / "data.json"
    good = json.loads(data.read_text())
    cases = {
        "pick outside": lambda r: (
            r["task"] == "inbc"
            and r["conversations"][1].update(value=r["conversations"][1]["value"].replace("<b>(0.", "<b>(1.5", 1))
        ),
        "kind nonsense": lambda r: r["task"] == "detection" and r.update(task="nonsense"),
        "box outside": lambda r: (
            r["task"] == "localization" and r["conversations"][1].update(value="<b>(0.500, 0.500), {1.200, 0.100}</b>")
        ),
    }
    for name, mutate in cases.items():
        recs = json.loads(json.dumps(good))
        hit = next(i for i, r in enumerate(recs) if mutate(r) is not False and recs[i] != good[i])
        data.write_text(json.dumps(recs))
        r = run("validate-dataset", str(tmp_path / "ds"))
        assert r.returncode == 1 and f"record {hit}" in r.stderr, (name, r.stderr)
    data.write_text(json.dumps(good))
    (tmp_path / "ds" / good[0]["image"]).write_bytes(b"not a png")
    r = run("validate-dataset", str(tmp_path / "ds"))
    assert r.returncode == 1 and "does not open" in r.stderr


@pytest.mark.sim
def test_failed_demonstrations_are_excluded_unless_asked_for(sim_episode, tmp_path):
    bag = write_episode_bag(sim_episode, tmp_path / "bags" / "ep")
    write_sidecar(bag, None, False)  # ~/mark_episode false
    r = run("convert-bags", str(bag), "--out", str(tmp_path / "a"))
    assert r.returncode == 0 and "EXCLUDED" in r.stderr and "unsuccessful" in r.stderr
    assert json.loads((tmp_path / "a" / "report.json").read_text())["excluded"][0]["bag"] == str(bag)
    assert json.loads((tmp_path / "a" / "data.json").read_text()) == []
    r = run("convert-bags", str(bag), "--out", str(tmp_path / "b"), "--include-failed")
    assert r.returncode == 0 and read_dataset(tmp_path / "b")


@pytest.mark.sim
def test_a_rerun_with_other_settings_says_so_instead_of_doing_nothing(sim_episode, tmp_path):
    bag = write_episode_bag(sim_episode, tmp_path / "bags" / "ep")
    out = str(tmp_path / "ds")
    assert run("convert-bags", str(bag), "--out", out, "--kinds", "inbc").returncode == 0
    assert "already converted 1" in run("convert-bags", str(bag), "--out", out, "--kinds", "inbc").stdout
    r = run("convert-bags", str(bag), "--out", out, "--kinds", "inbc,d_inbc")
    assert r.returncode == 2 and "other settings (changed: kinds)" in r.stderr and "--force" not in r.stdout
    r = run("convert-bags", str(bag), "--out", out, "--kinds", "inbc,d_inbc", "--force")
    assert r.returncode == 0 and {x["task"] for x in read_dataset(out)} == {"inbc", "d_inbc"}


def test_every_cli_option_has_help_and_shows_its_default():
    from llara_core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"llara {name} {action.option_strings or action.dest} has no help"
            if action.option_strings and not action.required and action.default is not None:
                assert "default" in action.help, f"llara {name} {action.option_strings} hides its default"


def test_cli_refusals_are_one_line_with_exit_code_2(tmp_path):
    png = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(png)
    r = run("predict", "--model", str(tmp_path / "nope"), "--image", str(png), "--instruction", "put it")
    assert (
        r.returncode == 2 and r.stderr.count("\n") == 1 and "model folder" in r.stderr and "does not exist" in r.stderr
    )
    r = run("predict", "--model", str(ROOT / "models" / "llara-tiny-sim"), "--image", str(tmp_path / "none.png"),
            "--instruction", "put it")  # fmt: skip
    assert r.returncode == 2 and "image" in r.stderr and "Traceback" not in r.stderr
    r = run("predict", "--model", str(ROOT / "models" / "llara-tiny-sim"), "--image", str(png))
    assert r.returncode == 2 and "--instruction" in r.stderr  # no empty task is ever sent
    r = run("predict", "--model", str(ROOT / "models" / "llara-tiny-sim"), "--image", str(png), "--instruction", " ")
    assert r.returncode == 2 and "empty" in r.stderr
    r = run("sim-render", "--task-family", "l1_placement,multi_step", "--out", str(tmp_path / "s.png"))
    assert r.returncode == 2 and "one --task-family" in r.stderr


def test_pretrain_vision_validates_its_arguments_up_front(tmp_path):
    r = run("pretrain-vision", "--model", str(tmp_path), "--steps", "2")
    assert r.returncode == 2 and "steps must be at least" in r.stderr and "Traceback" not in r.stderr


def test_the_recorder_says_which_topics_this_environment_cannot_record():
    from llara_core.recording import DEFAULT_TOPICS, unrecordable

    lines = unrecordable(DEFAULT_TOPICS, lambda pkg: pkg not in ("tf2_msgs", "vision_msgs"))
    assert len(lines) == 2
    assert "/tf_static" in lines[0] and "camera_pose" in lines[0]
    assert "/detections" in lines[1] and "boxes.json" in lines[1]
    assert unrecordable(DEFAULT_TOPICS, lambda pkg: True) == []


def test_conversion_settings_have_every_yaml_key_as_a_flag():
    from llara_core.cli import build_parser
    from llara_core.config import field_specs

    help_text = build_parser()._subparsers._group_actions[0].choices["convert-bags"].format_help()
    for spec in field_specs(ConversionConfig):
        assert spec.flag in help_text, spec.flag
