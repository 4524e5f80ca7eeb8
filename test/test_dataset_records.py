"""Dataset records: content checks per task kind, the writer's manifest, samples skipped with a reason."""

from __future__ import annotations

import json

import pytest

from llara_core.datasets.reader import read_dataset
from llara_core.datasets.records import DatasetError, validate_content, validate_record
from llara_core.datasets.samples import episode_samples
from llara_core.datasets.writer import DatasetWriter
from llara_core.language.actions import ActionStep, ParseError, first_step, render_step
from llara_core.sim.synthetic import make_episode


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
