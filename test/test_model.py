"""The VLM runtime and trainer on a real (tiny) transformers LLaVA built offline, and closed-loop evaluation."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sim_helpers import expert_episode
from transformers import AutoTokenizer

from llara_core.apps.evaluate import EvalConfig, evaluate, run_episode
from llara_core.datasets.mixing import mix_records, split_by_episode
from llara_core.datasets.reader import read_dataset
from llara_core.language.actions import ActionStep, parse_actions, render_step
from llara_core.model.data import IGNORE_INDEX, encode_example
from llara_core.model.decoding import FormatDraft
from llara_core.model.policy import PolicyOutput
from llara_core.model.runtime import VLMPolicy
from llara_core.model.tiny import TinySpec, build_tiny_model
from llara_core.model.train import TrainConfig, train
from llara_core.resources import demo_model_path
from llara_core.sim.demonstrations import DemosConfig, generate_demos
from llara_core.sim.env import TabletopEnv
from llara_core.sim.tasks import make_task

SMALL = TinySpec(image_size=64, patch_size=16, vision_hidden=64, vision_layers=2, text_hidden=128, text_layers=2,
                 vocab_size=512)  # fmt: skip
LLARA = [sys.executable, "-m", "llara_core.apps.cli"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    report = generate_demos(
        DemosConfig(out=str(out), task_family=("l1_placement", "multi_step"), episodes=1, seed=5), False
    )
    assert not report["failed"]
    return out


@pytest.fixture(scope="module")
def tiny(dataset, tmp_path_factory):
    corpus = [t["value"] for r in read_dataset(dataset) for t in r["conversations"]]
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), corpus, SMALL)


def test_tokenizer_round_trips_action_text_with_one_token_per_digit(tiny):
    proc = VLMPolicy.from_pretrained(tiny).processor
    text = "Step 1: Pick up the <p>red block</p> at <b>(0.301,  0.727)</b>, rotate <r>[-30]</r> degrees, and drop it."
    ids = proc.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert proc.tokenizer.decode(ids) == text
    toks = proc.tokenizer.convert_ids_to_tokens(ids)
    assert all(len(t.lstrip("Ġ")) <= 1 for t in toks if any(c.isdigit() for c in t))


def test_tokenizer_keeps_object_words_apart_and_merges_the_fixed_wording(dataset):
    from llara_core.model.tiny import name_words, train_tokenizer

    corpus = [t["value"] for r in read_dataset(dataset) for t in r["conversations"]]
    words = name_words(corpus)
    colors = [w for w in words if w in ("red", "green", "blue", "yellow", "orange", "purple")]
    shapes = [w for w in words if w in ("block", "cylinder", "bar")]
    tok = train_tokenizer(corpus, 512)
    for c in colors:  # every colour with every shape, pairs the corpus never had included
        for sh in shapes:
            text = f"Step 1: Pick up the <p>{c} {sh}</p> at <b>(0.1, 0.2)</b>"
            spans = tok(text, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
            for word in (c, sh):  # no token reaches across the word's edges
                a = text.index(f"{word}</p>" if word == sh else f"{word} ")
                b = a + len(word)
                assert all(e <= a or s >= b or (s >= a - 1 and e <= b) for s, e in spans), (word, text)
    answer = next(r for r in read_dataset(dataset) if r["task"] == "inbc")["conversations"][1]["value"]
    n_numeric = sum(c.isdigit() or c == "." for c in answer)
    assert len(tok.tokenize(answer)) <= n_numeric + 12  # the fixed wording merges across spaces


def test_loss_is_masked_to_the_answer(tiny, dataset):
    proc = VLMPolicy.from_pretrained(tiny).processor
    rec = next(r for r in read_dataset(dataset) if r["task"] == "inbc")
    with Image.open(dataset / rec["image"]) as im:
        ex = encode_example(proc, im.convert("RGB"), rec["conversations"][0]["value"], rec["conversations"][1]["value"])
    labels = np.array(ex["labels"])
    n_prompt = int((labels == IGNORE_INDEX).sum())
    assert labels[:n_prompt].tolist() == [IGNORE_INDEX] * n_prompt  # the prompt, image tokens included
    assert ex["input_ids"][n_prompt:] == labels[n_prompt:].tolist()
    image_id = proc.tokenizer.convert_tokens_to_ids("<image>")
    assert ex["input_ids"][:n_prompt].count(image_id) == (SMALL.image_size // SMALL.patch_size) ** 2
    assert proc.tokenizer.decode(labels[n_prompt:].tolist()) == " " + rec["conversations"][1]["value"] + "</s>"
    assert proc.tokenizer.decode(ex["input_ids"][:n_prompt]).endswith("ASSISTANT:")


def test_the_example_cache_returns_what_encoding_returns_and_keeps_to_its_budget(tiny, dataset):
    from llara_core.model.data import ConversationDataset
    from llara_core.model.train import load_records

    proc = VLMPolicy.from_pretrained(tiny).processor
    records, roots, _style = load_records([dataset])
    plain = ConversationDataset(records, roots, proc)
    cached = ConversationDataset(records, roots, proc, cache_mb=1000)
    for i in range(len(records)):
        a, b = plain[i], cached[i]
        assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]
        assert np.array_equal(a["pixel_values"].numpy(), b["pixel_values"].numpy())
        assert cached[i] is b  # the second read is the kept example
    by_image: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_image.setdefault(r["image"], []).append(i)
    i, j = next(v for v in by_image.values() if len(v) > 1)[:2]
    assert cached[i]["pixel_values"] is cached[j]["pixel_values"]  # one tensor per image file
    one_image = plain[0]["pixel_values"].nbytes / 1e6
    tight = ConversationDataset(records, roots, proc, cache_mb=1.5 * one_image)
    for i in range(len(records)):
        tight[i]
    assert len(tight._pixels) == 1 and len(by_image) > 1  # the budget holds; the rest loads from disk each time


def test_mixture_and_episode_split():
    recs = [{"id": f"ep{e}/{k}/{i}", "task": k} for e in range(10) for k in ("inbc", "localization") for i in range(2)]
    mixed = mix_records(recs, {"inbc": 1.0, "localization": 0.5}, seed=1)
    assert sum(r["task"] == "inbc" for r in mixed) == 20 and sum(r["task"] == "localization" for r in mixed) == 10
    assert sum(r["task"] == "inbc" for r in mix_records(recs, {"inbc": 2.5})) == 50  # repeats when asked
    train_r, val_r = split_by_episode(recs, 0.2, seed=0)
    assert {r["id"].split("/")[0] for r in train_r}.isdisjoint({r["id"].split("/")[0] for r in val_r})
    assert len(val_r) == 8 and len(train_r) == 32


def test_tiny_model_learns_its_answers_and_acts_through_the_cli(tiny, dataset, tmp_path):
    """build -> `llara train` (full finetune) -> save -> reload -> act: parseable, and the trained answer."""
    out = tmp_path / "trained"
    cmd = [*LLARA, "train", "--data", str(dataset), "--model", str(tiny), "--out", str(out), "--max-steps", "110",
           "--batch-size", "3", "--lr", "3e-3", "--mix", "inbc=1", "--val-fraction", "0", "--save-steps", "500"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["lora"] is False and metrics["steps"] == 110 and metrics["train_counts"] == {"inbc": 3}
    assert metrics["log"][-1]["loss"] < metrics["log"][0]["loss"] / 5
    policy = VLMPolicy.from_pretrained(out)
    recs = [r for r in read_dataset(dataset) if r["task"] == "inbc"]
    exact = 0
    for rec in recs:
        with Image.open(dataset / rec["image"]) as im:
            text = policy.generate([np.asarray(im.convert("RGB"))], [rec["conversations"][0]["value"]])[0]
        exact += text == rec["conversations"][1]["value"]
        assert parse_actions(text).ok, text
    assert exact >= 2
    first = recs[0]
    pr = subprocess.run([*LLARA, "predict", "--model", str(out), "--image", str(dataset / first["image"]),
                         "--question", first["conversations"][0]["value"]],
                        capture_output=True, text=True)  # fmt: skip
    assert pr.returncode == 0, pr.stdout + pr.stderr
    assert json.loads(pr.stdout.split("\n", 1)[1])["ok"] is True


def test_format_draft_guesses_the_wording_and_never_the_numbers(tiny):
    tok = AutoTokenizer.from_pretrained(tiny)
    draft = FormatDraft.for_tokenizer(tok)
    text = render_step(ActionStep((0.534, 0.458), (0.648, 0.627), 0.0, object="blue cylinder"), 1)
    ids = tok(" " + text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    passes, i = 1, 1  # a model answering exactly ``ids``: each pass accepts the right guesses plus one token
    while i < len(ids):
        guess = draft.propose(ids[:i])
        n = 0
        while n < len(guess) and i + n < len(ids) and guess[n] == ids[i + n]:
            n += 1
        i += n + 1
        passes += 1
    assert passes <= 0.6 * len(ids), (passes, len(ids))
    x = ids.index(tok.convert_tokens_to_ids("."))
    assert tok.decode(draft.propose(ids[: x - 1])[:2]) == "0."  # "(" -> "0."
    assert draft.propose(ids[: x + 1]) == []  # the digits are the model's


def test_speculative_decoding_returns_what_generate_returns(tiny):
    """Token for token, on the shipped model (format answers) and an untrained one (drafts keep failing)."""
    for folder, steps in ((demo_model_path(), 96), (tiny, 24)):
        fast = VLMPolicy.from_pretrained(folder, max_new_tokens=steps)
        plain = VLMPolicy(fast.model, fast.processor, max_new_tokens=steps, speculative=False)
        assert fast.draft is not None and plain.draft is None
        for seed in range(3):
            task = make_task("l1_placement", seed)
            with TabletopEnv(task.scene) as env:
                image = env.render()
            q = fast.build_prompt(task.instruction)
            assert fast.generate([image], [q]) == plain.generate([image], [q])


def test_wsd_schedule_holds_the_rate_then_decays(tiny, dataset, tmp_path):
    cfg = TrainConfig(max_steps=10, batch_size=2, val_fraction=0.0, warmup_ratio=0.0, schedule="wsd", decay_ratio=0.3,
                      logging_steps=1, progress=False)  # fmt: skip
    lrs = [e["learning_rate"] for e in train([dataset], tiny, tmp_path / "m", cfg)["log"]]
    assert len(lrs) == 10 and lrs[:7] == [cfg.lr] * 7 and lrs[7] > lrs[8] > lrs[9]
    with pytest.raises(ValueError, match="schedule"):
        train([dataset], tiny, tmp_path / "x", TrainConfig(schedule="linear"))


def test_resume_continues_with_the_checkpoints_weights(tiny, dataset, tmp_path):
    """Interrupted at step 3 and resumed = trained without interruption: same weights, loss carries on."""
    import shutil

    from safetensors.torch import load_file

    cfg = TrainConfig(max_steps=6, batch_size=2, save_steps=3, val_fraction=0.0, mix={"inbc": 1.0}, lr=3e-3,
                      logging_steps=1, progress=False)  # fmt: skip
    whole = train([dataset], tiny, tmp_path / "whole", cfg)
    part = tmp_path / "part" / "checkpoints"
    part.mkdir(parents=True)
    shutil.copytree(tmp_path / "whole" / "checkpoints" / "checkpoint-3", part / "checkpoint-3")
    resumed = train([dataset], tiny, tmp_path / "part", dataclasses.replace(cfg, resume=True))
    assert resumed["steps"] == 6 and resumed["resumed_from"].endswith("checkpoint-3")
    assert (part / "checkpoint-6").is_dir()
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "model.safetensors"))
    base = load_file(str(tiny / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k  # resumed from the checkpoint's weights, not the base's
    assert any(not torch.allclose(a[k], base[k]) for k in a)
    losses = {e["step"]: e["loss"] for e in whole["log"] if "loss" in e}
    resumed_losses = {e["step"]: e["loss"] for e in resumed["log"] if "loss" in e and e["step"] > 3}
    assert resumed_losses[4] == pytest.approx(losses[4], rel=1e-3)


def test_a_checkpoint_that_does_not_fit_the_model_is_an_error(tiny, dataset, tmp_path):
    import shutil

    from llara_core.model.train import load_checkpoint_weights

    bad = tmp_path / "bad"
    shutil.copytree(tiny, bad)
    (bad / "config.json").write_text(
        (bad / "config.json").read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    )
    model = VLMPolicy.from_pretrained(tiny).model
    with pytest.raises(ValueError, match="does not fit the model"):
        load_checkpoint_weights(model, bad)


def test_frozen_vision_tower_stays_as_pretrained(tiny, dataset, tmp_path):
    import torch

    cfg = TrainConfig(max_steps=2, batch_size=2, val_fraction=0.0, freeze_vision=True, progress=False)
    train([dataset], tiny, tmp_path / "m", cfg)
    before = VLMPolicy.from_pretrained(tiny).model.state_dict()
    after = VLMPolicy.from_pretrained(tmp_path / "m").model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not any("vision_tower" in k for k in changed)


def _tiny_idefics3(out: Path, corpus: list[str]) -> Path:
    """A random Idefics3 (SigLIP-style tower + Llama) with a processor, built offline: a second VLM family."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    from llara_core.model.tiny import train_tokenizer

    tok = train_tokenizer(corpus, 400)
    tok.add_special_tokens({"additional_special_tokens": ["<fake_token_around_image>", "<end_of_utterance>",
                            "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]})  # fmt: skip
    template = (
        "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:{% for c in message['content'] %}"
        "{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
        "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    text = dict(model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                num_attention_heads=2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id)  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=64,
                  patch_size=16)  # fmt: skip
    model = Idefics3ForConditionalGeneration(Idefics3Config(
        vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2,
        pad_token_id=tok.pad_token_id))  # fmt: skip
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 64},
                                       max_image_size={"longest_edge": 64})  # fmt: skip
    model.save_pretrained(out)
    Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=4, chat_template=template).save_pretrained(
        out
    )
    return out


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_lora_adapts_only_the_language_model_and_loads_on_its_base(family, tiny, dataset, tmp_path):
    """Same code path for another family: load, act, LoRA finetune, reload the adapter on its base, act."""
    if family == "idefics3":
        corpus = [t["value"] for r in read_dataset(dataset) for t in r["conversations"]]
        base, tower, projector = _tiny_idefics3(tmp_path / "idefics3", corpus), "vision_model", "connector"
    else:
        base, tower, projector = tiny, "vision_tower", "multi_modal_projector"
    image = np.zeros((64, 64, 3), np.uint8)
    before = VLMPolicy.from_pretrained(base, max_new_tokens=8).act(image, "put the red block into the bowl")
    assert isinstance(before, PolicyOutput) and before.latency_s > 0
    cfg = TrainConfig(max_steps=2, batch_size=2, val_fraction=0.3, lora=True, mix={"inbc": 1.0, "localization": 1.0},
                      freeze_vision=True, progress=False)  # fmt: skip
    m = train([dataset], base, tmp_path / "lora", cfg)
    assert m["lora"] is True and "eval_loss" in m
    from safetensors import safe_open

    with safe_open(tmp_path / "lora" / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    lora_keys = [k for k in keys if "lora_" in k]
    assert lora_keys and all(k.split(".")[-3] in ("q_proj", "k_proj", "v_proj", "o_proj") for k in lora_keys)
    assert not any(tower in k for k in keys) and any(projector in k for k in keys)
    policy = VLMPolicy.from_pretrained(tmp_path / "lora", max_new_tokens=8)
    out = policy.act(image, "put the red block into the bowl")
    assert isinstance(out, PolicyOutput) and out.latency_s > 0
    # merged into a full folder (what vLLM loads): the same answer without PEFT
    from llara_core.model.train import merge_lora

    merged = merge_lora(tmp_path / "lora", tmp_path / "merged")
    assert not (merged / "adapter_config.json").exists() and (merged / "llara_prompt.json").is_file()
    assert (
        VLMPolicy.from_pretrained(merged, max_new_tokens=8).act(image, "put the red block into the bowl").text
        == out.text
    )


class OraclePolicy:
    """Answers with the expert's next step (from a demonstration of the same seed): the loop's upper bound."""

    def __init__(self, family: str, seed: int) -> None:
        self.steps = expert_episode(family, seed, 224, 224).action_steps()

    def act(self, image, instruction, objects=None, history=()):
        step = self.steps[min(len(history), len(self.steps) - 1)]
        text = render_step(step, 1)
        return PolicyOutput(text, parse_actions(text).steps, [], 0.001)


class GarbagePolicy:
    def act(self, image, instruction, objects=None, history=()):
        text = "Step 1: Pick up the object at <b>(0.5, 1.7)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.2"
        res = parse_actions(text)
        return PolicyOutput(text, res.steps, res.errors, 0.001)


def test_closed_loop_executes_first_steps_and_requeries(tmp_path):
    row = run_episode(OraclePolicy("multi_step", 3), "multi_step", 3)
    assert row["success"] and row["steps"] == 2 and len(row["answers"]) == 2


def test_unparseable_answers_fail_and_never_move_the_arm(tmp_path):
    res = evaluate(
        GarbagePolicy(), EvalConfig(task_family=("l1_placement",), episodes=1, first_seed=4), tmp_path, progress=False
    )
    row = res["episodes"][0]
    assert not row["success"] and row["steps"] == 0 and row["reason"].startswith("unparseable")
    assert (tmp_path / "eval.png").stat().st_size > 1000 and "0/1" in (tmp_path / "eval.md").read_text()
    assert json.loads((tmp_path / "eval.json").read_text())["summary"]["levels"]["L1"]["n"] == 1


def test_parallel_evaluation_gives_the_rows_of_a_sequential_one():
    """Two processes, each loading the shipped model from the factory, return the same episodes in job order."""
    import functools

    factory = functools.partial(VLMPolicy.from_pretrained, demo_model_path())
    two = EvalConfig(task_family=("l1_placement", "multi_step"), episodes=3)
    seq = evaluate(factory(), two, progress=False)
    par = evaluate(factory, dataclasses.replace(two, workers=2), progress=False)
    strip = [{k: v for k, v in r.items() if k != "latency_s"} for r in seq["episodes"]]
    assert [{k: v for k, v in r.items() if k != "latency_s"} for r in par["episodes"]] == strip
    assert seq["summary"] == {**par["summary"], "latency_p50_s": seq["summary"]["latency_p50_s"]}
    assert sum(r["success"] for r in strip) >= 3  # a trained model, not six failures compared with six failures
    with pytest.raises(ValueError, match="factory"):
        evaluate(factory(), EvalConfig(task_family=("l1_placement",), episodes=1, workers=2))


def test_eval_cli_runs_a_model_in_the_sim(tiny, tmp_path):
    r = subprocess.run([*LLARA, "eval", "--model", str(tiny), "--task-family", "l1_placement", "--episodes", "2",
                        "--workers", "2", "--out", str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| l1_placement | 0/2" in r.stdout and "latency p50" in r.stdout  # an untrained model fails, honestly
    assert Path(tmp_path / "eval.json").is_file()


def test_a_dataset_converted_from_bags_trains_unchanged(tiny, tmp_path):
    """sim -> rosbag2 -> convert_bags -> llara train: the converter's output is a training set as it is."""
    from llara_core.datasets.convert import convert_bags

    generate_demos(DemosConfig(out=str(tmp_path / "sim"), episodes=1, seed=7, bags=str(tmp_path / "bags")), False)
    report = convert_bags(sorted((tmp_path / "bags").iterdir()), tmp_path / "conv", progress=False)
    assert report["skipped"] == [] and report["samples"]["inbc"] == 1
    m = train([tmp_path / "conv"], tiny, tmp_path / "m", TrainConfig(max_steps=2, batch_size=2, val_fraction=0.0,
                                                                     progress=False))  # fmt: skip
    assert m["steps"] == 2 and sum(m["train_counts"].values()) == sum(report["samples"].values())
    assert VLMPolicy.from_pretrained(tmp_path / "m").act(np.zeros((64, 64, 3), np.uint8), "x").text is not None


def test_vision_pretraining_changes_only_the_tower_and_learns(tiny, dataset, tmp_path):
    import shutil

    import torch

    from llara_core.model.pretrain_vision import PretrainVisionConfig, pretrain_vision_tower
    from llara_core.sim.demonstrations import scene_boxes

    model = tmp_path / "m"
    shutil.copytree(tiny, model)
    before = VLMPolicy.from_pretrained(model).model.state_dict()
    scenes = scene_boxes(["l1_placement"], 2, seed=300)  # rendered layouts, no expert
    assert len(scenes) == 2 and scenes[0][0].shape == (224, 224, 3) and all(0 < b[1] < 1 for b in scenes[0][1])
    m = pretrain_vision_tower(model, [dataset], PretrainVisionConfig(steps=20, batch_size=4, lr=3e-3), scenes, False)
    assert m["steps"] == 20  # the one-cycle schedule's warm-up no longer divides by zero here
    m = pretrain_vision_tower(model, [dataset], PretrainVisionConfig(steps=60, batch_size=4, lr=3e-3), scenes, False)
    after = VLMPolicy.from_pretrained(model).model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("vision_tower" in k for k in changed)
    assert m["images"] == 4 and "block" in m["shapes"] and m["final_loss"] < 0.7 * m["first_loss"]
    assert m["held_out_images"] == 1  # fewer than 20 images: one is still held out, never scored on training images
    assert set(m["digit_accuracy"]) == {"x1", "x2", "x3", "y1", "y2", "y3", "w1", "w2", "h1", "h2"}
    empty = tmp_path / "inbc_only"
    generate_demos(DemosConfig(out=str(empty), episodes=1, seed=9, kinds=("inbc",)), False)
    with pytest.raises(ValueError, match="0 images with object boxes"):
        pretrain_vision_tower(model, [empty], PretrainVisionConfig(steps=20), progress=False)


def test_a_finished_tower_is_reused_not_retrained(dataset, tmp_path):
    from llara_core.model.pretrain_vision import tiny_with_pretrained_tower

    corpus = [t["value"] for r in read_dataset(dataset) for t in r["conversations"]]
    first = tiny_with_pretrained_tower(tmp_path / "b", [dataset], corpus, steps=3, progress=False, spec=SMALL)
    weights = tmp_path / "b" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = tiny_with_pretrained_tower(tmp_path / "b", [dataset], corpus, steps=50, progress=False, spec=SMALL)
    assert again == first and first["steps"] == 3 and weights.stat().st_mtime_ns == stamp


def test_dense_targets_give_every_covered_patch_the_objects_digits():
    from llara_core.model.pretrain_vision import DIGITS, dense_targets, digit

    assert [digit(0.4567, p) for p in (1, 2, 3)] == [4, 5, 7] and digit(1.2, 1) == 9 and digit(-0.1, 2) == 0
    # a 4x4 grid: a big red block over the top-left 2x2 patches, a tiny pad inside the bottom-right patch
    objs = [("red block", 0.25, 0.25, 0.5, 0.5), ("pad", 0.9, 0.9, 0.1, 0.1)]
    cls, dig = dense_targets(objs, 4, ["red"], ["block", "pad"], margin=0)
    covered = {i for i in range(16) if cls[i, 1] > 0}
    assert covered == {0, 1, 4, 5, 15}
    assert cls[0].tolist() == [1, 1] and cls[15].tolist() == [0, 2]  # pad: no colour, shape 2
    assert dig[5, : len(DIGITS)].tolist() == [2, 5, 0, 2, 5, 0, 5, 0, 5, 0] and (dig[2] == -100).all()
    grown, _ = dense_targets(objs, 4, ["red"], ["block", "pad"], margin=1)  # one more patch on every side
    assert {i for i in range(16) if grown[i, 1] == 2} == {10, 11, 14, 15}  # the pad, nearer there than the block
    assert {i for i in range(16) if grown[i, 1] == 1} == {0, 1, 2, 4, 5, 6, 8, 9}


def test_finetune_adapts_the_shipped_model_and_never_overwrites_a_model(dataset, tmp_path):
    """`llara finetune MODEL DATA --out DIR`: the recipe's defaults, a model that still acts; --out == MODEL refused."""
    from llara_core.model.train import FinetuneConfig
    from llara_core.resources import resource_path

    shipped = resource_path("models", "llara-tiny-sim")
    cfg = FinetuneConfig().train_config()
    assert cfg.freeze_vision and cfg.mix == {"inbc": 1.0, "d_inbc": 1.0, "localization": 1.0} and cfg.lr == 2e-5
    for out in (shipped, shipped / "sub", shipped.parent / "other"):  # the model itself, inside it, the shipped models
        r = subprocess.run([*LLARA, "finetune", str(shipped), str(dataset), "--out", str(out)],
                           capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (shipped.parent / "other").exists()
    png = tmp_path / "frame.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    r = subprocess.run([*LLARA, "finetune", str(png), str(dataset), "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "is not a model folder" in r.stderr and "Traceback" not in r.stderr, r.stderr
    out = tmp_path / "ft"
    r = subprocess.run([*LLARA, "finetune", str(shipped), str(dataset), "--out", str(out), "--max-steps", "2",
                        "--batch-size", "2", "--no-progress"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["steps"] == 2 and set(metrics["train_counts"]) <= {"inbc", "d_inbc", "localization"}
    answer = VLMPolicy.from_pretrained(out).act(np.zeros((224, 224, 3), np.uint8), "put the red block in the bowl")
    assert answer.text


def test_cli_mistakes_are_one_line_not_a_traceback(tmp_path):
    """predict on a folder, --model on a folder that is no model, a device this machine lacks, a closed pipe."""
    from llara_core.resources import resource_path

    shipped = str(resource_path("models", "llara-tiny-sim"))
    png = tmp_path / "f.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(png)
    cases = {
        "is not an image file": ["predict", "--model", shipped, "--image", str(tmp_path), "--instruction", "x"],
        "is not a model folder": ["predict", "--model", str(tmp_path), "--image", str(png), "--instruction", "x"],
        "cuda:99": ["serve", "--model", shipped, "--device", "cuda:99", "--port", "18999"],
    }
    for expected, args in cases.items():
        r = subprocess.run([*LLARA, *args], capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr, (args, r.stderr[-2000:])
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    cmd = " ".join(
        [*LLARA, "predict", "--model", shipped, "--image", str(png), "--instruction", "'put it in the bowl'"]
    )
    r = subprocess.run(f"{cmd} | head -c 1 >/dev/null", shell=True, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


@pytest.mark.parametrize("metric", ["loss", "token_accuracy"])
def test_early_stopping_keeps_the_weights_of_the_best_main_task_validation(metric, tiny, dataset, tmp_path):
    """Stops ``patience`` validations after the best one, validated on the named kinds only, and the model written
    is the best checkpoint's (its validation figure is the best one seen: lowest loss or highest accuracy)."""
    cfg = TrainConfig(max_steps=80, batch_size=2, lr=0.05, warmup_ratio=0.0, schedule="wsd", val_fraction=0.5,
                      mix={"inbc": 1.0, "localization": 1.0}, val_kinds=("inbc",), eval_steps=2,
                      early_stopping_patience=2, val_metric=metric, logging_steps=1, progress=False)  # fmt: skip
    m = train([dataset], tiny, tmp_path / "es", cfg)
    key = f"eval_{metric}"
    evals = [(e["step"], e[key]) for e in m["log"] if key in e]
    # the first of equal figures is the best: a tie is no improvement
    best_step, best = min(evals, key=lambda e: (e[1], e[0]) if metric == "loss" else (-e[1], e[0]))
    assert m["steps"] < 80 and evals[-1][0] == best_step + 2 * cfg.eval_steps, evals  # two validations without gain
    assert m["val_metric"] == metric and m["best_metric"] == pytest.approx(best)
    assert m["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    assert m[key] == pytest.approx(best, rel=1e-4)  # the written model is the best one, not the last
    assert m["train_counts"].keys() == {"inbc", "localization"}
    held = {r["id"].split("/")[0] for r in read_dataset(dataset)}
    assert m["val_episodes"] and {e.split(":")[-1] for e in m["val_episodes"]} < held  # half the episodes
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(early_stopping_patience=2, val_fraction=0.0)


def test_answer_token_accuracy_scores_the_shifted_answer_tokens_only():
    from types import SimpleNamespace

    import numpy as np

    from llara_core.model.train import answer_token_accuracy

    labels = np.array([[-100, -100, 5, 6, 7], [-100, 8, 9, -100, -100]])
    right = np.array([[0, 5, 6, 7, 1], [8, 9, 3, 3, 3]])  # position t predicts the label at t + 1
    assert answer_token_accuracy(SimpleNamespace(predictions=right, label_ids=labels)) == {"token_accuracy": 1.0}
    wrong = right.copy()
    wrong[0, 2] = 0  # one of five answer tokens
    assert answer_token_accuracy(SimpleNamespace(predictions=wrong, label_ids=labels))["token_accuracy"] == 0.8


def test_grounding_accuracy_scores_localization_and_detection_answers(tiny, dataset):
    import re

    from llara_core.apps.evaluate import grounding_accuracy
    from llara_core.datasets.reader import read_dataset

    truth = {r["conversations"][0]["value"]: r["conversations"][1]["value"] for r in read_dataset(dataset)}

    class Oracle:  # answers every question with the record's own answer: the scoring must give full marks
        def generate(self, images, questions):
            return [truth[q] for q in questions]

    class Corner(Oracle):  # every box moved to the image's corner: outside the tolerance
        def generate(self, images, questions):
            far = "<b>(0.999, 0.999), {0.010, 0.010}</b>"
            return [re.sub(r"<b>\(.*?</b>", far, t) for t in super().generate(images, questions)]

    perfect = grounding_accuracy(Oracle(), dataset)
    assert perfect["localization"]["n"] > 0 and perfect["localization"]["accuracy"] == 1.0
    assert perfect["detection"]["recall"] == 1.0 and perfect["detection"]["precision"] == 1.0
    off = grounding_accuracy(Corner(), dataset)
    assert off["localization"]["accuracy"] < 0.5 and off["detection"]["recall"] < 0.5
    real = grounding_accuracy(VLMPolicy.from_pretrained(tiny), dataset, limit=4)
    assert real["localization"]["n"] == 4 and 0.0 <= real["localization"]["accuracy"] <= 1.0
    held = grounding_accuracy(Oracle(), dataset, episodes={"nonexistent-000000"})
    assert held["localization"] == {"n": 0, "accuracy": None}


def test_the_ablation_script_runs_its_whole_grid_on_a_tiny_dataset_and_resumes(tmp_path):
    """scripts/ablation.py end to end at toy scale (make ablation runs the real grid): data, shared base, the three
    variants with early stopping, evaluation, probes, bootstrap; a second run skips every finished model."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "scripts" / "ablation.py"), "--sizes", "8", "--seeds", "0", "--check-every", "5",
           "--patience", "1", "--max-main-steps", "10", "--base-steps", "5", "--vision-steps", "5", "--scenes", "10",
           "--eval-episodes", "2", "--workers", "1", "--probe-frames", "4", "--batch-size", "4",
           "--work", str(tmp_path / "work"), "--docs", str(tmp_path / "docs")]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads((tmp_path / "docs" / "ablation.json").read_text())
    rows = {k: v["runs"][0] for k, v in out["results"].items()}
    assert set(rows) == {"inbc/8", "d_inbc/8", "d_inbc_aux/8"}
    # equal main-task exposure: the auxiliary variant took 4x the steps for the same main-task samples
    assert rows["d_inbc_aux/8"]["steps"] == 4 * rows["d_inbc/8"]["steps"]
    assert rows["d_inbc_aux/8"]["main_samples"] == rows["d_inbc/8"]["main_samples"]
    assert all(len(r["per_seed"]["l1_placement"]) == 2 and r["probe"]["l1_placement"]["localization"]["n"] > 0
               for r in rows.values())  # fmt: skip
    assert set(out["aux_minus_no_aux"]["8"]) == {"l1_placement", "l2_combinatorial", "l3_novel", "multi_step", "all"}
    assert out["aux_minus_no_aux"]["8"]["all"]["episodes"] == 4 * 2  # every family's episodes, paired
    text = (tmp_path / "docs" / "RESULTS.md").read_text()
    assert "All 3 models done." in text and "95 % CI" in text and "## Reading" in text
    assert "Over all families at 8 episodes" in text
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Writing model shards" not in again.stderr  # nothing trained again
    (tmp_path / "docs" / "RESULTS.md").unlink()
    report = subprocess.run([*cmd, "--report"], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and (tmp_path / "docs" / "RESULTS.md").read_text() == text


def test_plateau_schedule_halves_the_rate_when_the_validation_loss_stalls(tiny, dataset, tmp_path):
    from itertools import pairwise

    cfg = TrainConfig(max_steps=60, batch_size=2, lr=0.05, warmup_ratio=0.0, schedule="plateau", val_fraction=0.5,
                      mix={"inbc": 1.0}, eval_steps=2, early_stopping_patience=4, logging_steps=1,
                      progress=False)  # fmt: skip
    m = train([dataset], tiny, tmp_path / "plateau", cfg)
    lrs = [e["learning_rate"] for e in m["log"] if "learning_rate" in e]
    assert lrs[0] == pytest.approx(cfg.lr) and all(a >= b for a, b in pairwise(lrs)), lrs
    assert min(lrs) <= cfg.lr / 2 + 1e-12, lrs  # halved at least once before the early stop
    with pytest.raises(ValueError, match="plateau"):
        TrainConfig(schedule="plateau", val_fraction=0.0)


def test_a_resumed_run_applies_its_own_patience_and_threshold(tiny, dataset, tmp_path):
    """transformers rebuilds the early-stopping callback from the checkpoint's arguments; the resumed run's settings
    must win (here: a threshold no validation can beat, patience 1 → it stops at the first validation after)."""
    common = dict(batch_size=2, lr=0.01, warmup_ratio=0.0, schedule="wsd", val_fraction=0.5, mix={"inbc": 1.0},
                  eval_steps=2, val_metric="token_accuracy", logging_steps=1, progress=False)  # fmt: skip
    first = train([dataset], tiny, tmp_path / "r", TrainConfig(max_steps=6, early_stopping_patience=50, **common))
    assert first["steps"] == 6
    cfg = TrainConfig(max_steps=80, early_stopping_patience=1, early_stopping_threshold=1.0, resume=True, **common)
    again = train([dataset], tiny, tmp_path / "r", cfg)
    assert again["resumed_from"].endswith("checkpoint-6") and again["steps"] == 8, again["steps"]
    with pytest.raises(ValueError, match="threshold"):
        TrainConfig(early_stopping_threshold=-0.1)
