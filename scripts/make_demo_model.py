#!/usr/bin/env python3
"""Build the shipped demo model from nothing: sim demonstrations -> tiny LLaVA -> training -> evaluation -> model card.

    python scripts/make_demo_model.py [--out models/llara-tiny-sim] [--work .demo-model-work]

(`make demo-model`.) Steps, all on the CPU, nothing downloaded:
1. expert demonstrations in the MuJoCo tabletop, training seeds >= 10000
   (l1_placement and multi_step; the L2/L3 objects never appear), 2 Hz recording,
   plus freshly laid-out scenes (no expert) for the vision tower;
2. a tiny LLaVA whose tokenizer is trained on those conversations;
3. its vision tower pretrained on object boxes (the stand-in for CLIP
   pretraining, :mod:`llara_core.model.pretrain_vision`);
4. finetuning of projector + language model (tower frozen) on the task mix,
   three cosine schedules each from the last one's weights, bf16 autocast
   where the CPU has bf16 units (--precision);
5. closed-loop evaluation on held-out seeds 0..N-1 of every family (2 processes);
6. the model folder (safetensors + processor) and README.md, the model card,
   assembled in --work and swapped into --out whole at the end.
Work already done in --work (datasets, scenes, tower, checkpoints) is reused
when the script is run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import pickle
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

KEEP = ("config.json", "generation_config.json", "model.safetensors", "processor_config.json", "tokenizer.json",
        "tokenizer_config.json", "chat_template.jinja", "llara_tiny_spec.json", "llara_model.json", "train_metrics.json")  # fmt: skip
KINDS = ["inbc", "d_inbc", "localization", "detection"]


def _demos(args: tuple[str, int, int, str]) -> dict[str, object]:
    from llara_core.sim.demonstrations import DemosConfig, generate_demos

    family, n, seed, out = args
    return generate_demos(
        DemosConfig(out=str(out), task_family=(family,), episodes=n, seed=seed, kinds=tuple(KINDS), record_hz=2.0),
        progress=False,
    )


def _scenes(args: tuple[str, int, int]) -> list:
    from llara_core.sim.demonstrations import scene_boxes

    family, n, seed = args
    return scene_boxes([family], n, seed=seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/llara-tiny-sim")
    ap.add_argument("--work", default=".demo-model-work", help="scratch folder for data and checkpoints")
    ap.add_argument("--l1-episodes", type=int, default=2000)
    ap.add_argument("--multi-episodes", type=int, default=700)
    ap.add_argument("--scenes", type=int, default=2000, help="rendered layouts per family for the vision tower")
    ap.add_argument("--vision-steps", type=int, default=3000)
    # Defaults: the recipe of the shipped model (three cosine schedules, bf16 autocast where the CPU has bf16 units;
    # 92/100 inBC on l1_placement, 37 min of finetuning here). In fp32 the same data and tower gave 87/100 in 58 min,
    # and --seed 1 gave 73/100: one run does not reliably clear 90 % (model card). Measured alternative, worse
    # (82/100): --steps 5800 --more-steps "" --schedule wsd.
    ap.add_argument("--steps", type=int, default=1800, help="finetuning steps, first schedule")
    ap.add_argument(
        "--more-steps",
        default="2000,2000",
        help="then, from those weights, more schedules of these lengths at full rate again (comma list)",
    )
    ap.add_argument("--schedule", choices=["wsd", "cosine"], default="cosine", help="learning-rate schedule")
    ap.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="bf16 autocast for finetuning (the tower stays fp32: bf16 measured slower for it, 4.4 vs 5.4 it/s); "
        "auto (default): bf16 where the CPU has bf16 units (AMX / AVX512-BF16) or on a GPU, else fp32",
    )
    ap.add_argument("--workers", type=int, default=2, help="processes for the closed-loop evaluation")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--mix", default="inbc=1,d_inbc=1,localization=1", help="task kinds and ratios (llara train --mix)")
    ap.add_argument("--eval-episodes", type=int, default=100, help="held-out seeds per family")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from safetensors import safe_open

    from llara_core.apps.evaluate import EvalConfig, evaluate, markdown_table
    from llara_core.datasets.mixing import parse_mix
    from llara_core.fileio import atomic_write_bytes
    from llara_core.model.folder import has_pretrained_tower
    from llara_core.model.pretrain_vision import tiny_with_pretrained_tower
    from llara_core.model.runtime import VLMPolicy
    from llara_core.model.tiny import dataset_texts
    from llara_core.model.train import TrainConfig, bf16_is_fast, train
    from llara_core.sim.tasks import FAMILIES

    mix = parse_mix(a.mix) or {}
    bf16 = a.precision == "bf16" or (a.precision == "auto" and bf16_is_fast())
    work, out = Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # Two processes, work split evenly: each family in two halves (a multi_step episode costs ~2 l1 ones).
    jobs = []
    for family, n, name in (("l1_placement", a.l1_episodes, "l1"), ("multi_step", a.multi_episodes, "multi")):
        half = n // 2
        jobs += [
            (family, half, 10000, str(work / f"{name}a")),
            (family, n - half, 10000 + half, str(work / f"{name}b")),
        ]
    jobs = [j for j in jobs if j[1] > 0]
    datasets = [Path(j[3]) for j in jobs]
    scenes_file = work / "scenes.pkl"
    with ProcessPoolExecutor(2) as ex:
        demo_runs = [ex.submit(_demos, j) for j in jobs]
        scene_runs = [] if scenes_file.is_file() else [
            ex.submit(_scenes, (f, a.scenes, 200000)) for f in ("l1_placement", "multi_step")
        ]  # fmt: skip
        reports = [r.result() for r in demo_runs]
        scenes = [s for r in scene_runs for s in r.result()]
    if scene_runs:
        atomic_write_bytes(scenes_file, pickle.dumps(scenes))
    else:  # rendered by an earlier run
        scenes = pickle.loads(scenes_file.read_bytes())
    t_data = time.perf_counter() - t0
    episodes = sum(len(r["written"]) + len(r["already_written"]) for r in reports)  # type: ignore[arg-type]
    # What an earlier run in --work already did is reused; the card then says so instead of timing it as ~0 min.
    reused = ["data"] if any(r["already_written"] for r in reports) or not scene_runs else []
    print(f"1. {episodes} demonstrations, {len(scenes)} scenes: {t_data / 60:.1f} min", flush=True)

    corpus = dataset_texts(datasets)
    base = work / "base"
    t1 = time.perf_counter()
    reused += ["vision tower"] if has_pretrained_tower(base) else []
    vision = tiny_with_pretrained_tower(base, datasets, corpus, a.vision_steps, a.seed, extra_samples=scenes)
    print(f"2-3. tiny LLaVA + vision tower: {json.dumps(vision)}", flush=True)

    cfg = TrainConfig(max_steps=a.steps, batch_size=a.batch_size, lr=a.lr, mix=mix, val_fraction=0.02,
                      save_steps=300, eval_steps=300, seed=a.seed, resume=True, freeze_vision=True,
                      schedule=a.schedule, bf16=bf16)  # fmt: skip
    more = [int(n) for n in a.more_steps.split(",") if n.strip() and int(n) > 0]
    # The object under the pick point is found late (after ~1500 steps, long after the targets); schedules at
    # full learning rate again, each from the last one's weights, are what got the shipped model there.
    trained = base
    for i, n in enumerate([a.steps, *more], start=1):
        metrics = train(datasets, trained, work / f"stage{i}", dataclasses.replace(cfg, max_steps=n))
        trained = work / f"stage{i}"
        if metrics["resumed_from"]:
            reused.append(f"schedule {i} up to {Path(metrics['resumed_from']).name}")
        print(f"4{'abcdefgh'[i - 1]}. {n} steps, eval loss {metrics.get('eval_loss')}", flush=True)
    t_train = time.perf_counter() - t1
    print(f"4. trained, {t_train / 60:.1f} min, eval loss {metrics.get('eval_loss')}", flush=True)
    print(f"data + training: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)

    # The release is assembled and evaluated in --work, then swapped in whole: an interrupted run never leaves
    # a half-written model in --out (the shipped one stays until the new one is complete).
    release = work / "release"
    shutil.rmtree(release, ignore_errors=True)
    release.mkdir()
    for name in KEEP:
        if (trained / name).is_file():
            shutil.copy(trained / name, release / name)
    policy = functools.partial(VLMPolicy.from_pretrained, release)
    seeds = range(a.eval_episodes)
    t2 = time.perf_counter()
    results = {}
    for mode, kind in (("inBC", "inbc"), ("D-inBC", "d_inbc")):
        if kind not in mix:
            continue
        d_inbc = kind == "d_inbc"
        cfg = EvalConfig(task_family=tuple(FAMILIES), episodes=len(seeds), d_inbc=d_inbc, workers=a.workers)
        res = evaluate(policy, cfg, work / f"eval_{mode}", title=f"llara-tiny-sim, {mode}, held-out seeds")
        results[mode] = res["summary"]
        print(markdown_table(res["summary"], mode), flush=True)
    t_eval = time.perf_counter() - t2
    (release / "eval_summary.json").write_text(json.dumps(results, indent=1) + "\n")
    size_mb = sum(f.stat().st_size for f in release.iterdir()) / 1e6
    with safe_open(release / "model.safetensors", "pt") as weights:  # the count moves with the learnt vocabulary
        n_params = sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
    tables = "\n".join(
        f"### {mode}\n{markdown_table(s)}\nLatency (image → parsed action) p50: "
        f"{1000 * (s['latency_p50_s'] or 0):.0f} ms during the evaluation.\n"
        for mode, s in results.items()
    )
    more_text = f", then schedules of {more} more steps, each from the last weights" if more else ""
    t_total = t_data + t_train
    level = [
        f"{mode}: l1_placement {sm['families']['l1_placement']['success']}/{sm['families']['l1_placement']['n']}, "
        f"level L1 (l1_placement + multi_step) {sm['levels']['L1']['success']}/{sm['levels']['L1']['n']}"
        for mode, sm in results.items()
        if "l1_placement" in sm["families"] and "L1" in sm["levels"]
    ]
    reused_text = (
        f" Reused from an earlier run in the work folder, not timed here: {', '.join(reused)}." if reused else ""
    )
    card = f"""# llara-tiny-sim

A tiny LLaVA-architecture model (CLIP-style vision tower 4×128 on 160-px input, Llama 4×256,
≈ {n_params / 1e6:.1f} M parameters, {size_mb:.1f} MB with its processor) trained from random weights by
`make demo-model` (`scripts/make_demo_model.py`) on this project's simulator. It stands in for
LLaVA-7B so that the whole LLaRA loop runs on a CPU; it knows only the tabletop of `llara_core.sim`.

## Data
- scripted-expert demonstrations: {a.l1_episodes} `l1_placement` + {a.multi_episodes} `multi_step` episodes,
  seeds 10000 and up, 224×224 camera, recorded at 2 Hz; L2 colour–shape pairs and the L3 hexagon never appear;
- {len(scenes)} more rendered layouts (seeds 200000 and up, no expert) for the vision tower;
- finetuning mix per demonstration step: {mix} ({metrics["train_counts"]}); 2 % of the episodes held out.

## Time on this machine ({os.cpu_count()} CPU cores)
Data {t_data / 60:.1f} min + model and training {t_train / 60:.1f} min = **{t_total / 60:.1f} min**; then the
evaluation below, {t_eval / 60:.1f} min ({a.workers} processes).{reused_text}

## Training
1. Vision tower pretraining (dense object reading, `llara pretrain-vision`): {a.vision_steps} steps, batch 32,
   {vision["images"]} images; on {vision["held_out_images"]} held-out images: object patches with the right colour and
   shape {100 * vision["object_patch_accuracy"]:.1f} %, digit accuracy {vision["digit_accuracy"]}.
2. Finetuning of projector + language model, tower frozen: {a.steps} steps{more_text}, batch {a.batch_size},
   AdamW lr {a.lr}, schedule {a.schedule}, {"bf16 autocast" if bf16 else "fp32"}, seed {a.seed}; final train loss
   {metrics["train_loss"]:.3f}, validation loss {metrics.get("eval_loss", float("nan")):.3f}.

## Closed-loop success (held-out seeds 0..{a.eval_episodes - 1}, first step executed, re-query)
D-inBC is given the simulator's object boxes (an oracle detector, as in LLaRA's D-inBC evaluation).
The grasp is centred on the object under the predicted pick point (`llara_core.planning.plan_step`).
{"; ".join(level)}.

{tables}
Latency above is measured with one torch thread per evaluation process; `python scripts/bench_policy.py`
measures it alone (2 threads).

## Use
`VLMPolicy.from_pretrained("{out}")`, `llara predict --model {out} …`, `llara eval --model {out} [--d-inbc]`.
"""
    (release / "README.md").write_text(card)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    out.parent.mkdir(parents=True, exist_ok=True)
    release.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    print(card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
