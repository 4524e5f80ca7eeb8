"""The ``llara`` prompt profile: LLaRA's released models see exactly the prompts they were trained on.

The examples are prompts LLaRA's evaluation recorded (github.com/LostXine/LLaRA,
results/[hso]D-inBC-AuxB-VIMA-80k.json, ``lm_prompt_hist``): a D-inBC pick-and-
place query with one executed step, and a sweep with two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from llara_core.language.actions import ActionStep
from llara_core.language.objects import ObjectBox
from llara_core.language.prompts import (
    LLARA_ACTION_REQUESTS,
    VICUNA_V1_SYSTEM,
    LlaraPrompt,
    PromptStyle,
    ground_instruction,
    parse_llara_prompt,
    query_prompt,
    render_llara_prompt,
)

SUCTION = (
    "Every action you take must include two locations in the format of <b>(x, y)</b> and one clockwise rotation "
    "angle in the format of <r>[r]</r>. The first location is the image coordinate where you use a suction cup to "
    "pick up the object, and the second location is where you place the object.The image coordinate ranges from 0 "
    "to 1. The rotation angle indicates how many degrees you rotate the object clockwise, and it ranges from -359 "
    "to 359."
)
SPATULA = (
    "Every action you take must include two locations in the format of <b>(x, y)</b> and one clockwise rotation "
    "angle in the format of <r>[r]</r>. The first location is the image coordinate where you start to sweep the "
    "object using a spatula, and the second location is where you stop sweeping. The image coordinate ranges from 0 "
    "to 1. The rotation angle indicates how many degrees you rotate the spatula clockwise, and it ranges from -359 "
    "to 359."
)
NOVEL_NOUN = (
    "<image0>\n<task>This is a wug <p>gray bowl</p> at <b>(0.457, 0.531), {0.195, 0.328}</b>. This is a dax "
    "<p>gray letter E</p> at <b>(0.500, 0.594), {0.055, 0.180}</b>. Put a dax into a wug.</task>\n"
    "List out the actions needed to accomplish the task in this scene.\n" + SUCTION + "\nYou have finished: "
    "Step 1: Pick up the object at <b>(0.367,  0.797)</b>, rotate <r>[-170]</r> degrees, and drop it at "
    "<b>(0.531, 0.516)</b>."
)
SWEEP = (
    "<image0>\n<task>Sweep three <p>green and blue polka dot small block</p> at <b>(0.500, 0.617), {0.203, 0.578}</b>"
    " into <p>yellow and blue stripe three-sided rectangle</p> at <b>(0.500, 0.625), {0.297, 0.398}</b> without "
    "exceeding <p>plastic line</p> at <b>(0.500, 0.617), {0.328, 0.047}</b>.</task>\n"
    "What steps are required to perform the task shown in this scene?\n" + SPATULA + "\nYou have finished: "
    "Step 1: Sweep the object at <b>(0.395,  0.852)</b>, rotate <r>[0]</r> degrees, and stop at <b>(0.496, 0.609)"
    "</b>.\nStep 2: Sweep the object at <b>(0.340,  0.852)</b>, rotate <r>[0]</r> degrees, and stop at <b>(0.496, "
    "0.609)</b>."
)
NO_HISTORY = (
    "<image0>\n<task>This is a dax <p>gray letter A</p> at <b>(0.500, 0.594), {0.086, 0.180}</b>. This is a "
    "blicket <p>gray container</p> at <b>(0.500, 0.617), {0.164, 0.297}</b>. Put a dax into a blicket.</task>\n"
    "Describe the actions required to complete the task on this scene.\n" + SUCTION
)


@pytest.mark.parametrize("text", [NOVEL_NOUN, SWEEP, NO_HISTORY])
def test_llaras_published_prompts_parse_and_render_back_byte_for_byte(text):
    got = parse_llara_prompt(text)
    assert got is not None and render_llara_prompt(got) == text
    assert got.image_tag == "<image0>" and LLARA_ACTION_REQUESTS[got.request_index] in text


def test_the_fields_of_a_parsed_prompt():
    got = parse_llara_prompt(NOVEL_NOUN)
    assert got.request_index == 1 and got.kind == "pick_place"
    assert got.objects == [ObjectBox("gray bowl", 0.457, 0.531, 0.195, 0.328),
                           ObjectBox("gray letter E", 0.5, 0.594, 0.055, 0.18)]  # fmt: skip
    assert [(s.pick, s.place, s.rotation_deg) for s in got.history] == [((0.367, 0.797), (0.531, 0.516), -170.0)]
    sweep = parse_llara_prompt(SWEEP)
    assert sweep.kind == "sweep" and len(sweep.history) == 2 and sweep.request_index == 4


def test_the_profile_builds_llaras_prompt_from_an_instruction_objects_and_history():
    """The same string LLaRA recorded, built from our inputs (D-inBC grounding, history from parsed steps)."""
    objects = [ObjectBox("gray bowl", 0.457, 0.531, 0.195, 0.328), ObjectBox("gray letter E", 0.5, 0.594, 0.055, 0.18)]
    task = ground_instruction("This is a wug gray bowl. This is a dax gray letter E. Put a dax into a wug.", objects)
    step = ActionStep((0.367, 0.797), (0.531, 0.516), -170.0, object="green paisley letter E")  # name dropped
    assert render_llara_prompt(LlaraPrompt(task, 1, history=(step,), image_tag="<image0>")) == NOVEL_NOUN
    query = query_prompt("This is a wug gray bowl. This is a dax gray letter E. Put a dax into a wug.", objects,
                         [step], style=PromptStyle("llara"))  # fmt: skip
    assert query == NOVEL_NOUN.replace("<image0>", "<image>").replace(LLARA_ACTION_REQUESTS[1],
                                                                      LLARA_ACTION_REQUESTS[0])  # fmt: skip


def test_other_texts_are_not_llara_prompts():
    ours = query_prompt("put the red block into the bowl")
    assert parse_llara_prompt(ours) is None
    assert parse_llara_prompt(NOVEL_NOUN.replace("place the object.The", "place the object. The")) is None
    assert parse_llara_prompt(NOVEL_NOUN + "\nStep 2: nonsense") is None
    assert parse_llara_prompt("hello") is None
    assert VICUNA_V1_SYSTEM.endswith("answers to the user's questions.")


def test_a_dataset_converted_in_the_llara_profile_holds_llaras_prompts(tmp_path):
    from llara_core.datasets.bags import write_episode_bag
    from llara_core.datasets.convert import ConversionConfig, convert_bags
    from llara_core.datasets.reader import dataset_style, read_dataset
    from llara_core.sim.synthetic import make_episode

    bag = write_episode_bag(make_episode(3, n_steps=2), tmp_path / "ep")
    convert_bags([bag], tmp_path / "ds", ConversionConfig(kinds=("inbc", "d_inbc"), prompt_profile="llara"),
                 progress=False)  # fmt: skip
    questions = [r["conversations"][0]["value"] for r in read_dataset(tmp_path / "ds")]
    parsed = [parse_llara_prompt(q) for q in questions]
    assert len(parsed) == 4 and all(p is not None for p in parsed), questions
    assert {len(p.history) for p in parsed} == {0, 1} and any(p.objects for p in parsed)
    assert dataset_style(tmp_path / "ds") == PromptStyle("llara")


def _released_dataset(tmp_path):
    """A file shaped like LLaRA's released training data: LLaVA JSON, images under a separate root, no task kinds."""
    from PIL import Image

    images = tmp_path / "vima_images"
    (images / "novel_noun").mkdir(parents=True)
    records = []
    for k in range(4):
        Image.fromarray(np.full((32, 64, 3), 40 * k, np.uint8)).save(images / "novel_noun" / f"{k}.png")
        answer = ("Step 1: Pick up the <p>gray letter E</p> at <b>(0.500,  0.594)</b>, rotate <r>[0]</r> degrees, "
                  "and drop it at <b>(0.457, 0.531)</b>.")  # fmt: skip
        records.append({"id": f"novel_noun/{k}", "image": f"novel_noun/{k}.png",
                        "conversations": [{"from": "human", "value": NO_HISTORY if k % 2 else NOVEL_NOUN},
                                          {"from": "gpt", "value": answer}]})  # fmt: skip
    data = tmp_path / "released" / "llara-vima-demo.json"
    data.parent.mkdir()
    data.write_text(json.dumps(records))
    return data, images


def test_llaras_released_datasets_are_read_as_they_are_and_train_with_converted_ones(tmp_path):
    import subprocess
    import sys

    from llara_core.datasets.bags import write_episode_bag
    from llara_core.datasets.convert import ConversionConfig, convert_bags
    from llara_core.datasets.reader import read_dataset
    from llara_core.datasets.records import DatasetError
    from llara_core.model.tiny import TinySpec, build_tiny_model
    from llara_core.model.train import TrainConfig, train
    from llara_core.sim.synthetic import make_episode

    data, images = _released_dataset(tmp_path)
    before = data.read_bytes()
    res = subprocess.run([sys.executable, "-m", "llara_core.apps.cli", "validate-dataset", str(data), "--image-root",
                          str(images)], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0 and "4 valid records" in res.stdout and "d_inbc" in res.stdout, res.stdout + res.stderr
    recs = read_dataset(data, image_root=images)
    assert recs[0]["conversations"][0]["value"].startswith("<image>\n<task>") and recs[0]["task"] == "d_inbc"
    assert data.read_bytes() == before  # read as it is, never rewritten
    # mixed with a dataset converted from bags in the same profile: trains, and the model remembers the profile
    bag = write_episode_bag(make_episode(3, n_steps=1), tmp_path / "ep")
    convert_bags([bag], tmp_path / "ours", ConversionConfig(kinds=("inbc",), prompt_profile="llara"), progress=False)
    corpus = [t["value"] for r in recs + read_dataset(tmp_path / "ours") for t in r["conversations"]]
    base = build_tiny_model(tmp_path / "tiny", corpus, TinySpec(image_size=32, patch_size=16, vision_hidden=32,
                            vision_layers=1, text_hidden=64, text_layers=1, vocab_size=400))  # fmt: skip
    cfg = TrainConfig(max_steps=1, batch_size=2, val_fraction=0.0, progress=False)
    train([f"{data}={images}", tmp_path / "ours"], base, tmp_path / "model", cfg)
    assert json.loads((tmp_path / "model" / "llara_prompt.json").read_text())["prompt_profile"] == "llara"
    # mixed with data in this project's wording: refused before training, naming both
    convert_bags([bag], tmp_path / "plain", ConversionConfig(kinds=("inbc",)), progress=False)
    with pytest.raises(DatasetError, match="word their prompts differently"):
        train([f"{data}={images}", tmp_path / "plain"], base, tmp_path / "model2", cfg)
