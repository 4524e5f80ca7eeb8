"""The ``llara`` command as a user types it: conversions, validation, refusals, help for every option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sim_helpers import expert_episode

from llara_core.datasets.bags import write_episode_bag, write_sidecar
from llara_core.datasets.convert import ConversionConfig, convert_bags
from llara_core.datasets.reader import read_dataset
from llara_core.datasets.writer import DatasetWriter
from llara_core.sim.synthetic import make_episode

LLARA = [sys.executable, "-m", "llara_core.apps.cli"]
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LLARA, *args], capture_output=True, text=True, **kw)


@pytest.fixture
def sim_episode():
    return expert_episode("multi_step", 4)


# -- README commands as a new user types them ---------------------------------------------------------------
@pytest.mark.sim
def test_bag_converted_answers_name_the_object_from_the_detections(sim_episode, tmp_path):
    """The same episode through the writer and through a bag gives the same records, text included."""
    DatasetWriter(tmp_path / "direct").add_episode(sim_episode)
    direct = DatasetWriter(tmp_path / "direct")
    direct.finalize()
    bag = write_episode_bag(sim_episode, tmp_path / "bags" / sim_episode.episode_id)
    convert_bags([bag], tmp_path / "conv", progress=False)
    from llara_core.apps.pipeline_check import compare_records

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
    from llara_core.apps.cli import build_parser

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
    from llara_core.datasets.recording import DEFAULT_TOPICS, unrecordable

    lines = unrecordable(DEFAULT_TOPICS, lambda pkg: pkg not in ("tf2_msgs", "vision_msgs"))
    assert len(lines) == 2
    assert "/tf_static" in lines[0] and "camera_pose" in lines[0]
    assert "/detections" in lines[1] and "boxes.json" in lines[1]
    assert unrecordable(DEFAULT_TOPICS, lambda pkg: True) == []


def test_conversion_settings_have_every_yaml_key_as_a_flag():
    from llara_core.apps.cli import build_parser
    from llara_core.config import field_specs

    help_text = build_parser()._subparsers._group_actions[0].choices["convert-bags"].format_help()
    for spec in field_specs(ConversionConfig):
        assert spec.flag in help_text, spec.flag


def test_every_subcommand_prints_its_help():
    """``llara <command> --help`` for every command, in a fresh process as a user runs it (argparse formats every
    help string only here: a stray ``%`` crashed ``llara train --help`` once)."""
    from llara_core.apps.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert len(sub.choices) >= 18
    for name in sub.choices:
        r = run(name, "--help")
        assert r.returncode == 0 and f"usage: llara {name}" in r.stdout, (name, r.stderr[-500:])
    r = run("dataset", "stats", "--help")
    assert r.returncode == 0 and "usage: llara dataset stats" in r.stdout
