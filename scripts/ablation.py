#!/usr/bin/env python3
"""LLaRA's ablation at small scale: inBC vs D-inBC vs D-inBC + auxiliary tasks, same demonstrations.

    python scripts/ablation.py [--sizes 250,1000] [--seeds 0,1,2] [--steps 500] [--base-steps 1500]
                               [--eval-episodes 10] [--data-l1 DIR --data-multi DIR] [--vision-model DIR]

For every dataset size (number of demonstration episodes, 3/4 l1_placement and
1/4 multi_step, seeds >= 10000) and training seed, one tiny LLaVA is finetuned
per variant with the same step budget:

- ``inbc``: inBC only;
- ``d_inbc``: D-inBC only (object boxes in the prompt);
- ``d_inbc_aux``: D-inBC plus the six auxiliary tasks, each at ratio 0.5 per step.

Every variant starts from one shared base, as LLaRA's all start from LLaVA-1.5:
a tiny LLaVA whose vision tower is pretrained on object boxes (built here, or
taken from --vision-model) and kept frozen, and whose projector and language
model were trained --base-steps on localization questions about demonstration
episodes that no variant trains on (LLaVA-1.5 had learned referring-expression
grounding before LLaRA; a randomly initialised language model has not: the
demo model needed 1500-3000 steps before it found a named object, more than
this grid can afford per model on a CPU).
The training seed sets the data order and mixture sampling.

Each model is evaluated in closed loop on held-out seeds of every family (with
the scene's boxes in the prompt for the D-inBC variants, as LLaRA evaluates
D-inBC with detections). The table of mean ± std success per variant, size and
family is written to docs/RESULTS.md after every model, with the raw numbers in
docs/ablation.json; a finished model is skipped when the script runs again, so
an interrupted run resumes. Order: seed by seed, so every cell fills before the
second run of any. Time on two CPU cores: base 12 min, then 4.7-6.8 min per
model (18 models, ~1.7 h). Not part of CI; `make ablation`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
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
    ap.add_argument("--steps", type=int, default=500, help="finetuning steps per model (same for every variant)")
    ap.add_argument("--base-steps", type=int, default=1500, help="grounding steps of the shared base model")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-episodes", type=int, default=10, help="held-out seeds per family")
    ap.add_argument("--data-l1", help="existing l1_placement demonstrations (all task kinds); generated if absent")
    ap.add_argument("--data-multi", help="existing multi_step demonstrations (all task kinds); generated if absent")
    ap.add_argument("--vision-model", help="a tiny model whose pretrained vision tower all runs share")
    ap.add_argument("--vision-steps", type=int, default=1500, help="tower pretraining steps (without --vision-model)")
    ap.add_argument("--scenes", type=int, default=1000, help="rendered layouts per family for the tower")
    ap.add_argument("--work", default=".ablation-work")
    ap.add_argument("--docs", default="docs")
    a = ap.parse_args()

    from llara_core.apps.evaluate import EvalConfig, evaluate
    from llara_core.fileio import atomic_write_json
    from llara_core.model.runtime import VLMPolicy
    from llara_core.model.train import TrainConfig, train
    from llara_core.sim.demonstrations import DemosConfig, generate_demos
    from llara_core.sim.tasks import FAMILIES

    work = Path(a.work)
    sizes = [int(s) for s in a.sizes.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    data = {"l1_placement": a.data_l1, "multi_step": a.data_multi}
    for fam, share in SHARES:  # the largest size (smaller ones are subsets) and as many again for the base
        if not data[fam]:
            data[fam] = str(work / "data" / fam)
            generate_demos(
                DemosConfig(
                    out=str(data[fam]),
                    task_family=(fam,),
                    episodes=2 * round(max(sizes) * share),
                    seed=10000,
                    record_hz=2.0,
                )
            )
    from llara_core.model.tiny import dataset_texts

    corpus = dataset_texts(data.values())  # one tokenizer corpus: every base gets the same tokenizer
    vision = Path(a.vision_model) if a.vision_model else _pretrained_tower(work / "vision", data, corpus, a)
    used = {fam: _episodes(fam, share, max(sizes)) for fam, share in SHARES}
    base = _grounded_base(work / "base", vision, corpus, data, used, a)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for size in sizes:
        for fam, share in SHARES:
            keep = _episodes(fam, share, size)
            _subset(Path(data[fam]), work / f"subset_{size}" / fam, lambda ep, keep=keep: ep in keep)
    # seed-major: after the first 3 * len(sizes) models every cell of the table has a run
    for seed in seeds:
        for size in sizes:
            subset = work / f"subset_{size}"
            for name, (mix, boxes) in VARIANTS.items():
                key = f"{name}/{size}"
                out = work / "models" / f"{name}_{size}_{seed}"
                done = out / "ablation_row.json"  # a finished model is not trained or evaluated again
                if done.is_file():
                    row = json.loads(done.read_text())
                else:
                    t0 = time.perf_counter()
                    cfg = TrainConfig(max_steps=a.steps, batch_size=a.batch_size, lr=a.lr, mix=mix,
                                      val_fraction=0.0, save_steps=min(a.steps, 300), seed=seed, resume=True,
                                      freeze_vision=True, progress=False)  # fmt: skip
                    m = train([subset / "l1_placement", subset / "multi_step"], base, out, cfg)
                    cfg = EvalConfig(task_family=tuple(FAMILIES), episodes=a.eval_episodes, d_inbc=boxes)
                    res = evaluate(VLMPolicy.from_pretrained(out), cfg, out / "eval", progress=False)
                    row = {fam: v["rate"] for fam, v in res["summary"]["families"].items()}
                    row["train_loss"] = m["train_loss"]
                    row["minutes"] = (time.perf_counter() - t0) / 60
                    atomic_write_json(done, row)
                results.setdefault(key, {}).setdefault("runs", []).append(row)  # type: ignore[arg-type]
                print(key, seed, row, flush=True)
                _write(Path(a.docs), results, a, list(FAMILIES))
    return 0


def _episodes(family: str, share: float, size: int) -> set[str]:
    """Episode ids of ``family`` in a dataset of ``size`` episodes: the first ``share`` of them, seeds from 10000."""
    return {f"{family}-{s:06d}" for s in range(10000, 10000 + round(size * share))}


def _pretrained_tower(path: Path, data: dict[str, str], corpus: list[str], a: argparse.Namespace) -> Path:
    """A tiny LLaVA whose tower is pretrained on the demonstrations' boxes and freshly rendered scenes."""
    from llara_core.model.folder import has_pretrained_tower
    from llara_core.model.pretrain_vision import tiny_with_pretrained_tower
    from llara_core.sim.demonstrations import scene_boxes

    if not has_pretrained_tower(path):
        scenes = scene_boxes(["l1_placement", "multi_step"], a.scenes, seed=200000)
        tiny_with_pretrained_tower(path, list(data.values()), corpus, a.vision_steps, extra_samples=scenes,
                                   progress=False)  # fmt: skip
    return path


def _grounded_base(
    path: Path, vision: Path, corpus: list[str], data: dict[str, str], used: dict[str, set[str]],
    a: argparse.Namespace,
) -> Path:  # fmt: skip
    """The shared starting point of every variant: a tiny LLaVA that can already ground object names.

    LLaRA finetunes LLaVA-1.5, whose own training included referring-expression
    grounding; a randomly initialised tiny language model needs thousands of
    steps to learn that alone, which would drown the comparison. So the base is
    the pretrained tower plus a projector and language model trained for
    ``--base-steps`` on localization questions ("give the position of <p>X</p>")
    about demonstration episodes that *no* variant trains on: none of their
    actions, and none of their scenes, reach the variants' data.
    """
    from transformers import AutoModelForImageTextToText

    from llara_core.model.tiny import build_tiny_model
    from llara_core.model.train import TrainConfig, train

    if (path / "model.safetensors").is_file():
        return path
    init = path.with_name(path.name + "_init")
    if not (init / "model.safetensors").is_file():
        build_tiny_model(init, corpus, seed=0)  # the same corpus gives the same tokenizer as the tower's model
        model = AutoModelForImageTextToText.from_pretrained(init, local_files_only=True)
        pretrained = AutoModelForImageTextToText.from_pretrained(vision, local_files_only=True)
        model.model.vision_tower.load_state_dict(pretrained.model.vision_tower.state_dict())
        model.save_pretrained(init, safe_serialization=True)
    rest = path.with_name(path.name + "_data")
    for fam, _ in SHARES:
        _subset(Path(data[fam]), rest / fam, lambda ep, fam=fam: ep not in used[fam])
    cfg = TrainConfig(max_steps=a.base_steps, batch_size=a.batch_size, lr=a.lr, mix={"localization": 3.0},
                      val_fraction=0.0, save_steps=max(a.base_steps, 1), seed=0, resume=True, freeze_vision=True,
                      progress=False)  # fmt: skip
    m = train([rest / fam for fam, _ in SHARES], init, path, cfg)
    print(f"grounded base: {m['steps']} steps, loss {m['train_loss']:.3f}, {m['seconds'] / 60:.1f} min", flush=True)
    return path


def _subset(src: Path, dst: Path, keep: Callable[[str], bool]) -> None:
    """A dataset folder with only the records of the episodes ``keep`` accepts (images linked, not copied)."""
    from llara_core.datasets.reader import read_dataset
    from llara_core.fileio import atomic_write_json

    dst.mkdir(parents=True, exist_ok=True)
    recs = [r for r in read_dataset(src) if keep(r["id"].split("/")[0])]
    for r in recs:
        target = dst / r["image"]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(src / r["image"], target)
    atomic_write_json(dst / "data.json", recs)


def _write(docs: Path, results: dict, a: argparse.Namespace, families: list[str]) -> None:
    from llara_core.fileio import atomic_write_bytes, atomic_write_json

    docs.mkdir(parents=True, exist_ok=True)
    atomic_write_json(docs / "ablation.json", {"args": vars(a), "results": results})
    done = sum(len(v["runs"]) for v in results.values())
    total = len(a.sizes.split(",")) * len(a.seeds.split(",")) * len(VARIANTS)
    lines = [
        "# LLaRA ablation at small scale (closed-loop success in the simulator, %)",
        "",
        f"Tiny LLaVA finetuned from one shared base (frozen pretrained vision tower; projector and language model "
        f"trained {a.base_steps} steps on localization questions about episodes no variant uses), {a.steps} steps × "
        f"batch {a.batch_size} per model, training seed = data order; {a.eval_episodes} held-out seeds per family; "
        "mean ± std over training seeds. Produced by `scripts/ablation.py`; raw numbers in `ablation.json`.",
        "",
        f"**{done} of {total} models done.**" if done < total else f"All {total} models done.",
        "",
        "| variant / episodes | runs | " + " | ".join(families) + " |",
        "|---|---|" + "---|" * len(families),
    ]
    order = {name: i for i, name in enumerate(VARIANTS)}
    for key, v in sorted(results.items(), key=lambda kv: (int(kv[0].split("/")[1]), order[kv[0].split("/")[0]])):
        runs = v["runs"]
        cells = []
        for f in families:
            xs = [100 * r[f] for r in runs]
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            cells.append(f"{statistics.mean(xs):.1f} ± {sd:.1f}")
        lines.append(f"| {key} | {len(runs)} | " + " | ".join(cells) + " |")
    atomic_write_bytes(docs / "RESULTS.md", ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main())
