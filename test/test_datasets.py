"""Episodes -> prompts -> LLaVA records -> dataset folder, with ground truth from synthetic episodes."""

import json
import random

import numpy as np
import pytest

from llara_core.datasets.auxiliary import relation_answer
from llara_core.datasets.episodes import Episode, EpisodeError, RobotState
from llara_core.datasets.reader import read_dataset
from llara_core.datasets.records import TASK_KINDS, DatasetError
from llara_core.datasets.samples import episode_samples
from llara_core.datasets.writer import DatasetWriter, write_dataset
from llara_core.geometry import base_to_normalized
from llara_core.language.actions import parse_actions
from llara_core.language.objects import ObjectBox, format_box
from llara_core.language.prompts import ACTION_REQUESTS, ground_instruction, inbc_prompt
from llara_core.sim.synthetic import make_episode


def test_keyframes_and_actions_match_ground_truth():
    ep = make_episode(7, n_blocks=3, n_steps=2)
    kinds = [k.kind for k in ep.keyframes()]
    assert kinds == ["pick", "place", "pick", "place"]
    acts = ep.action_steps()
    assert [a.index for a in acts] == [1, 2] and [a.object for a in acts] == ep.metadata["step_objects"]
    for act, st in zip(acts, ep.steps(), strict=True):
        for xy, si in ((act.pick, st.pick_state), (act.place, st.place_state)):
            truth = base_to_normalized(ep.camera, ep.camera_pose, ep.states[si].ee_pose[:3, 3])
            assert np.abs(np.array(xy) - truth).max() <= 0.0005 + 1e-12  # 3-decimal rounding only


def test_rotation_sign_is_clockwise_positive():
    ep = make_episode(3, n_blocks=2, n_steps=1)
    st = ep.steps()[0]
    from math import degrees

    from llara_core.geometry import wrap_degrees, yaw_of

    ccw = wrap_degrees(degrees(yaw_of(ep.states[st.place_state].ee_pose) - yaw_of(ep.states[st.pick_state].ee_pose)))
    assert ep.action_steps()[0].rotation_deg == -round(ccw)


def test_unreleased_grasp_and_stray_release_are_not_steps():
    ep = make_episode(1)
    T = np.eye(4)
    states = [RobotState(0.0, T, True), RobotState(0.1, T, False), RobotState(0.2, T, True)]
    odd = Episode("odd", "x", ep.camera, ep.camera_pose, ep.frames[:1], states)
    assert [k.kind for k in odd.keyframes()] == ["place", "pick"]
    assert odd.steps() == []
    samples, skipped = episode_samples(odd, ["inbc", "d_inbc"])
    assert samples == [] and set(skipped) == {"inbc", "d_inbc"} and "no grasp" in skipped["inbc"]


def test_episode_rejects_inconsistent_data():
    ep = make_episode(1)
    with pytest.raises(EpisodeError):
        Episode("bad", "x", ep.camera, ep.camera_pose, [ep.frames[1], ep.frames[0]], ep.states)
    small = ep.frames[0].image[:10]
    from llara_core.datasets.episodes import CameraFrame

    with pytest.raises(EpisodeError):
        Episode("bad", "x", ep.camera, ep.camera_pose, [CameraFrame(small, 0.0)], ep.states)


def test_inbc_prompt_structure_and_history():
    p = inbc_prompt("stack the blocks", request_index=0)
    lines = p.split("\n")
    assert lines[0] == "<image>" and lines[1] == "<task>stack the blocks</task>"
    assert lines[2].startswith(ACTION_REQUESTS[0]) and "<b>(x, y)</b>" in lines[2] and "<r>[r]</r>" in lines[2]
    assert len(ACTION_REQUESTS) >= 10
    ep = make_episode(5, n_steps=2, n_blocks=2)
    hist = ep.action_steps()[:1]
    p2 = inbc_prompt("x", history=hist, rng=random.Random(1))
    assert p2.split("\n")[-1].startswith("You have finished: Step 1: Pick up")
    assert "spatula" in inbc_prompt("x", kind="sweep", request_index=3)
    # same seed, same paraphrase: datasets are reproducible
    assert inbc_prompt("x", rng=random.Random(9)) == inbc_prompt("x", rng=random.Random(9))


def test_dinbc_grounds_mentioned_objects_longest_name_first():
    objs = [
        ObjectBox("block", 0.1, 0.1, 0.05, 0.05),
        ObjectBox("red block", 0.4123, 0.6331, 0.08, 0.065),
        ObjectBox("bowl", 0.7, 0.3, 0.2, 0.1),
        ObjectBox("cup", 0.9, 0.9, 0.1, 0.1),
    ]
    text = ground_instruction("Put the Red Block into the bowl", objs)
    assert text == (
        "Put the <p>red block</p> at <b>(0.412, 0.633), {0.080, 0.065}</b> into the "
        "<p>bowl</p> at <b>(0.700, 0.300), {0.200, 0.100}</b>"
    )
    assert format_box(objs[0]) == "<b>(0.100, 0.100), {0.050, 0.050}</b>"


def test_relation_notation():
    a, b = ObjectBox("a", 0.2, 0.3, 0.1, 0.1), ObjectBox("b", 0.5, 0.7, 0.1, 0.1)
    assert relation_answer(a, b) == "<p>a</p> is left of and above <p>b</p>, <d>(-0.300, -0.400)</d>, <e>0.500</e>."


def test_all_eight_task_kinds_are_generated_and_answers_are_grounded():
    ep = make_episode(11, n_blocks=3, n_steps=2)
    samples, skipped = episode_samples(ep, TASK_KINDS, seed=0)
    assert skipped == {}
    assert {s.kind for s in samples} == set(TASK_KINDS)
    boxes0 = {b.name: b for b in ep.frames[0].objects}
    for s in samples:
        assert s.question.startswith("<image>\n")
        if s.kind == "localization":
            name = s.question.split("<p>")[1].split("</p>")[0]
            assert s.answer == format_box(boxes0[name])
        if s.kind in ("inbc", "d_inbc", "action_prediction"):
            assert parse_actions(s.answer).ok
        if s.kind == "d_inbc":
            assert "<p>" in s.question.split("<task>")[1].split("</task>")[0]
    # no boxes -> D-inBC and every auxiliary task is skipped, never invented
    bare = make_episode(11, n_blocks=3, n_steps=2, with_boxes=False)
    samples, skipped = episode_samples(bare, TASK_KINDS)
    assert {s.kind for s in samples} == {"inbc"} and set(skipped) == set(TASK_KINDS) - {"inbc"}


def test_dataset_write_read_resume_and_manifest(tmp_path):
    eps = [make_episode(s, n_steps=1 + s % 2) for s in range(4)]
    data = write_dataset(tmp_path, eps[:2])
    first = json.loads(data.read_text())
    records = read_dataset(tmp_path)
    assert records == first and len({r["id"] for r in records}) == len(records)
    for r in records:
        assert (tmp_path / r["image"]).is_file()
    # resume: re-adding finished episodes is a no-op, new ones are appended
    w = DatasetWriter(tmp_path)
    assert w.has_episode(eps[0].episode_id)
    for ep in eps:
        w.add_episode(ep, source=f"seed{ep.metadata['seed']}")
    w.finalize()
    records = read_dataset(tmp_path)
    assert [r for r in records if r["id"].startswith(eps[0].episode_id)] == [
        r for r in first if r["id"].startswith(eps[0].episode_id)
    ]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["total"] == len(records) and sum(manifest["counts"].values()) == len(records)
    assert len(manifest["episodes"]) == 4 and manifest["generator_version"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_reader_reports_first_bad_record_with_position(tmp_path):
    write_dataset(tmp_path, [make_episode(1)])
    records = json.loads((tmp_path / "data.json").read_text())
    bad = [dict(r) for r in records]
    bad[3] = {**bad[3], "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]}
    bad[5] = {**bad[5], "image": "../escape.png"}
    (tmp_path / "data.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError) as exc:
        read_dataset(tmp_path)
    assert exc.value.position == 3 and "turn 0" in str(exc.value) and bad[3]["id"] in str(exc.value)
    dup = records + records[:1]
    (tmp_path / "data.json").write_text(json.dumps(dup))
    with pytest.raises(DatasetError, match="duplicate id"):
        read_dataset(tmp_path)
    (tmp_path / "data.json").write_text("[{")
    with pytest.raises(DatasetError, match="invalid JSON"):
        read_dataset(tmp_path)


def test_writer_rejects_unsafe_episode_ids(tmp_path):
    ep = make_episode(1)
    ep.episode_id = "../../etc"
    with pytest.raises(ValueError, match="episode id"):
        DatasetWriter(tmp_path).add_episode(ep)


def test_record_ids_name_their_episode_and_errors_their_position(tmp_path):
    from llara_core.datasets.reader import read_dataset
    from llara_core.datasets.records import DatasetError, record_episode
    from llara_core.datasets.writer import write_dataset

    assert record_episode("multi_step-000003/inbc/0002") == "multi_step-000003"
    assert record_episode("1:ep/detection/0000") == "1:ep"  # records of several datasets stay apart
    assert str(DatasetError("bad", 3, "x/inbc/0001")) == "record 3 (id='x/inbc/0001'): bad"
    assert str(DatasetError("bad", 0)) == "record 0: bad" and str(DatasetError("bad")) == "bad"
    data = write_dataset(tmp_path / "ds", [make_episode(1), make_episode(2)], kinds=["inbc"])
    assert data == tmp_path / "ds" / "data.json"
    recs = read_dataset(tmp_path / "ds")
    assert {record_episode(r["id"]) for r in recs} == {make_episode(1).episode_id, make_episode(2).episode_id}
    assert {r["task"] for r in recs} == {"inbc"}
