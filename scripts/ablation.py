#!/usr/bin/env python3
"""LLaRA's ablation at small scale: inBC vs D-inBC vs D-inBC + auxiliary tasks, same demonstrations.

    python scripts/ablation.py [--sizes 250,1000] [--seeds 0,1,2] [--steps 1800] [--eval-episodes 20]
                               [--data-l1 DIR --data-multi DIR] [--vision-model DIR]

For every dataset size (number of demonstration episodes, 3/4 l1_placement and
1/4 multi_step, seeds >= 10000) and training seed, one tiny LLaVA is trained
per variant with the same step budget:

- ``inbc``: inBC only;
- ``d_inbc``: D-inBC only (object boxes in the prompt);
- ``d_inbc_aux``: D-inBC plus the six auxiliary tasks, each at ratio 0.5 per step.

All models share one pretrained vision tower, kept frozen (LLaRA's variants
share one pretrained LLaVA; here the tower stands in for CLIP: built and
pretrained once on object boxes, or taken from --vision-model); the language
model and projector are initialised from the training seed. Each model is
evaluated in closed loop on held-out seeds of every family (with the scene's
boxes in the prompt for the D-inBC variants, as LLaRA evaluates D-inBC with
detections). The table of mean ± std success per variant, size and family is
written to docs/RESULTS.md whatever the outcome, after every model, with the
raw numbers in docs/ablation.json. Slow: the tiny model needs ~1500 steps before
it finds the object under the pick point (see models/llara-tiny-sim/README.md),
so each model is ~16 min of training on two CPU cores and the default grid
(18 models) ~5 h; minutes on a GPU. Not part of CI; `make ablation`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

AUX = ("localization", "detection", "action_prediction", "future_prediction", "spatial_relationship",
       "temporal_relationship")  # fmt: skip
VARIANTS = {
    "inbc": ({"inbc": 1.0}, False),
    "d_inbc": ({"d_inbc": 1.0}, True),
    "d_inbc_aux": ({"d_inbc": 1.0, **dict.fromkeys(AUX, 0.5)}, True),
}
SHARES = (("l1_placement", 0.75), ("multi_step", 0.25))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="250,1000", help="demonstration episodes per dataset (comma list)")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (comma list)")
    ap.add_argument("--steps", type=int, default=1800, help="training steps per model (same for every variant)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-episodes", type=int, default=20, help="held-out seeds per family")
    ap.add_argument("--data-l1", help="existing l1_placement demonstrations (all task kinds); generated if absent")
    ap.add_argument("--data-multi", help="existing multi_step demonstrations (all task kinds); generated if absent")
    ap.add_argument("--vision-model", help="a tiny model whose pretrained vision tower all runs share")
    ap.add_argument("--work", default=".ablation-work")
    ap.add_argument("--docs", default="docs")
    a = ap.parse_args()

    from llara_core.evaluate import evaluate
    from llara_core.model.runtime import VLMPolicy
    from llara_core.model.train import TrainConfig, train
    from llara_core.sim.demos import generate_demos
    from llara_core.sim.tasks import FAMILIES

    work = Path(a.work)
    sizes = [int(s) for s in a.sizes.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    data = {"l1_placement": a.data_l1, "multi_step": a.data_multi}
    for fam, share in SHARES:  # the largest size; smaller ones are subsets
        if not data[fam]:
            data[fam] = str(work / "data" / fam)
            generate_demos([fam], round(max(sizes) * share), data[fam], seed=10000, record_hz=2.0)
    from llara_core.model.tiny import dataset_texts

    corpus = dataset_texts(data.values())  # one tokenizer corpus: every base gets the same tokenizer
    vision = Path(a.vision_model) if a.vision_model else _pretrained_tower(work / "vision", data, corpus)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for size in sizes:
        subset = work / f"subset_{size}"
        for fam, share in SHARES:
            keep = {f"{fam}-{s:06d}" for s in range(10000, 10000 + round(size * share))}
            _subset(Path(data[fam]), subset / fam, keep)
        for seed in seeds:
            base = _seeded_base(work / f"base_{seed}", vision, corpus, seed)
            for name, (mix, boxes) in VARIANTS.items():
                key = f"{name}/{size}"
                out = work / "models" / f"{name}_{size}_{seed}"
                t0 = time.perf_counter()
                cfg = TrainConfig(max_steps=a.steps, batch_size=a.batch_size, lr=a.lr, mix=mix, val_fraction=0.0,
                                  save_steps=max(a.steps, 1), seed=seed, resume=True, freeze_vision=True,
                                  progress=False)  # fmt: skip
                m = train([subset / "l1_placement", subset / "multi_step"], base, out, cfg)
                res = evaluate(VLMPolicy.from_pretrained(out), list(FAMILIES), range(a.eval_episodes), out / "eval",
                               d_inbc=boxes, progress=False)  # fmt: skip
                row = {fam: v["rate"] for fam, v in res["summary"]["families"].items()}
                row["train_loss"] = m["train_loss"]
                row["minutes"] = (time.perf_counter() - t0) / 60
                results.setdefault(key, {}).setdefault("runs", []).append(row)  # type: ignore[arg-type]
                print(key, seed, row, flush=True)
                _write(Path(a.docs), results, a, list(FAMILIES))
    return 0


def _pretrained_tower(path: Path, data: dict[str, str], corpus: list[str]) -> Path:
    """Build a tiny LLaVA and pretrain its tower on the demonstrations' boxes and 2000 rendered scenes."""
    from llara_core.model.pretrain_vision import pretrain_vision_tower
    from llara_core.model.tiny import build_tiny_model
    from llara_core.sim.demos import scene_boxes

    if (path / "vision_pretrained.json").is_file():
        return path
    build_tiny_model(path, corpus, seed=0)
    scenes = scene_boxes(["l1_placement", "multi_step"], 1000, seed=200000)
    vp = pretrain_vision_tower(path, list(data.values()), extra_samples=scenes, progress=False)
    (path / "vision_pretrained.json").write_text(json.dumps(vp))
    return path


def _seeded_base(path: Path, vision: Path, corpus: list[str], seed: int) -> Path:
    """A tiny LLaVA built from ``seed`` (projector, language model) carrying the shared pretrained tower."""
    from transformers import AutoModelForImageTextToText

    from llara_core.model.tiny import build_tiny_model

    if (path / "model.safetensors").is_file():
        return path
    build_tiny_model(path, corpus, seed=seed)  # the same corpus gives the same tokenizer as the tower's model
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    pretrained = AutoModelForImageTextToText.from_pretrained(vision, local_files_only=True)
    model.model.vision_tower.load_state_dict(pretrained.model.vision_tower.state_dict())
    model.save_pretrained(path, safe_serialization=True)
    return path


def _subset(src: Path, dst: Path, keep: set[str]) -> None:
    """A dataset folder with only the records of ``keep`` episodes (images linked, not copied)."""
    from llara_core.conversations import atomic_write_json, read_dataset

    dst.mkdir(parents=True, exist_ok=True)
    recs = [r for r in read_dataset(src) if r["id"].split("/")[0] in keep]
    for r in recs:
        target = dst / r["image"]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(src / r["image"], target)
    atomic_write_json(dst / "data.json", recs)


def _write(docs: Path, results: dict, a: argparse.Namespace, families: list[str]) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "ablation.json").write_text(json.dumps({"args": vars(a), "results": results}, indent=1) + "\n")
    lines = [
        "# LLaRA ablation at small scale (closed-loop success in the simulator, %)",
        "",
        f"Tiny LLaVA (shared frozen pretrained vision tower; projector and language model initialised per training "
        f"seed), {a.steps} steps × batch {a.batch_size} per model, {a.eval_episodes} held-out seeds per family; "
        "mean ± std over training seeds. Produced by `scripts/ablation.py`; raw numbers in `ablation.json`.",
        "",
        "| variant / episodes | runs | " + " | ".join(families) + " |",
        "|---|---|" + "---|" * len(families),
    ]
    for key, v in sorted(results.items()):
        runs = v["runs"]
        cells = []
        for f in families:
            xs = [100 * r[f] for r in runs]
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            cells.append(f"{statistics.mean(xs):.1f} ± {sd:.1f}")
        lines.append(f"| {key} | {len(runs)} | " + " | ".join(cells) + " |")
    (docs / "RESULTS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
