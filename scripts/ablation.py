#!/usr/bin/env python3
"""LLaRA's ablation at small scale: inBC vs D-inBC vs D-inBC + auxiliary tasks, same demonstrations.

    python scripts/ablation.py [--sizes 300,1000] [--seeds 0,1,2] [--steps 800] [--eval-episodes 50]

For every dataset size (number of l1_placement + multi_step demonstration
episodes, seeds >= 10000) and training seed, one tiny LLaVA is trained per
variant with the same step budget:

- ``inbc``: inBC only;
- ``d_inbc``: D-inBC only (object boxes in the prompt);
- ``d_inbc_aux``: D-inBC plus the six auxiliary tasks, each at ratio 0.5 per step.

Every variant of one training seed starts from the same tiny LLaVA whose
vision tower was pretrained on the demonstrations' boxes (as LLaRA's variants
share one pretrained LLaVA). Each model is evaluated in closed loop on held-out seeds of every family (with
the scene's boxes in the prompt for the D-inBC variants, as LLaRA evaluates
D-inBC with detections). The table of mean ± std success per variant, size
and level is written to docs/RESULTS.md whatever the outcome, with the raw
numbers in docs/ablation.json. Slow: hours on a CPU; not part of CI.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="300,1000", help="demonstration episodes per dataset (comma list)")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (comma list)")
    ap.add_argument("--steps", type=int, default=800, help="training steps per model (same for every variant)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--eval-episodes", type=int, default=50, help="held-out seeds per family")
    ap.add_argument("--work", default=".ablation-work")
    ap.add_argument("--docs", default="docs")
    a = ap.parse_args()

    from llara_core.conversations import read_dataset
    from llara_core.evaluate import evaluate
    from llara_core.model.pretrain_vision import pretrain_vision_tower
    from llara_core.model.runtime import VLMPolicy
    from llara_core.model.tiny import build_tiny_model
    from llara_core.model.train import TrainConfig, train
    from llara_core.sim.demos import generate_demos
    from llara_core.sim.tasks import FAMILIES

    work = Path(a.work)
    sizes = [int(s) for s in a.sizes.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    data = work / "data"
    for fam, share in (("l1_placement", 0.75), ("multi_step", 0.25)):  # the largest size; smaller ones are subsets
        generate_demos([fam], round(max(sizes) * share), data / fam, seed=10000, record_hz=2.0)
    all_records = {fam: read_dataset(data / fam) for fam in ("l1_placement", "multi_step")}
    corpus = [t["value"] for recs in all_records.values() for r in recs for t in r["conversations"]]
    for size in sizes:
        subset = work / f"subset_{size}"
        for fam, share in (("l1_placement", 0.75), ("multi_step", 0.25)):
            keep = {f"{fam}-{s:06d}" for s in range(10000, 10000 + round(size * share))}
            _subset(data / fam, subset / fam, keep)
        for seed in seeds:
            base = work / f"base_{seed}"
            if not (base / "vision_pretrained.json").is_file():  # one pretrained tower per seed, shared by variants
                build_tiny_model(base, corpus, seed=seed)
                vp = pretrain_vision_tower(base, [data / "l1_placement", data / "multi_step"], seed=seed, progress=False)
                (base / "vision_pretrained.json").write_text(json.dumps(vp))
            for name, (mix, boxes) in VARIANTS.items():
                key = f"{name}/{size}"
                out = work / "models" / f"{name}_{size}_{seed}"
                t0 = time.perf_counter()
                cfg = TrainConfig(max_steps=a.steps, batch_size=a.batch_size, lr=1.5e-3, mix=mix, val_fraction=0.0,
                                  save_steps=max(a.steps, 1), seed=seed, resume=True)  # fmt: skip
                train([subset / "l1_placement", subset / "multi_step"], base, out, cfg)
                res = evaluate(VLMPolicy.from_pretrained(out), list(FAMILIES), range(a.eval_episodes), out / "eval",
                               d_inbc=boxes, progress=False)  # fmt: skip
                row = {lvl: v["rate"] for lvl, v in res["summary"]["families"].items()}
                row["minutes"] = (time.perf_counter() - t0) / 60
                results.setdefault(key, {}).setdefault("runs", []).append(row)  # type: ignore[arg-type]
                print(key, seed, row, flush=True)
                _write(Path(a.docs), results, a, list(FAMILIES))
    return 0


def _subset(src: Path, dst: Path, keep: set[str]) -> None:
    """A dataset folder with only the records of ``keep`` episodes (images linked, not copied)."""
    import os

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
        "# LLaRA ablation at small scale (closed-loop success in the simulator)",
        "",
        f"Tiny LLaVA trained from random weights, {a.steps} steps × batch {a.batch_size} per model, "
        f"{a.eval_episodes} held-out seeds per family; mean ± std over training seeds. "
        "Produced by `scripts/ablation.py`; raw numbers in `ablation.json`.",
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
