#!/usr/bin/env python3
"""LLaRA's auxiliary-task claim, tested fairly: inBC vs D-inBC vs D-inBC + aux at equal main-task exposure.

    python scripts/ablation.py [--sizes 300] [--seeds 0,1,2] [--check-every 100] [--patience 4]
                               [--max-main-steps 3000] [--eval-episodes 50] [--workers 2]

For every dataset size (number of demonstration episodes, 3/4 l1_placement and
1/4 multi_step, seeds >= 10000) and training seed, one tiny LLaVA is finetuned
per variant:

- ``inbc``: inBC only;
- ``d_inbc``: D-inBC only (object boxes in the prompt);
- ``d_inbc_aux``: D-inBC plus the six auxiliary tasks, each at ratio 0.5 to the
  demonstration steps — LLaRA *adds* these datasets to the training data.

**Equal main-task exposure, near convergence.** Every variant is budgeted in
main-task samples: a variant whose batches are 1/4 main task (D-inBC + six
tasks at 0.5) takes 4× the optimizer steps for the same number of D-inBC
samples. Its main-task validation token accuracy (``--val-metric``; ``val_kinds``: inBC or
D-inBC alone, on ``--val-fraction`` of the episodes held out) is checked every ``--check-every``
main-task-equivalent steps; the learning rate is halved after two checks without
improvement (``--schedule plateau``) and training stops after ``--patience``
(or at ``--max-main-steps``); the best checkpoint is the model. The table reports the steps and main-task samples each model used.

Every variant starts from one shared base, as LLaRA's all start from LLaVA-1.5:
a tiny LLaVA whose vision tower is pretrained on object boxes and kept frozen,
and whose projector and language model were trained ``--base-steps`` on
localization questions about demonstration episodes no variant trains on.
The training seed sets the data order and mixture sampling.

Each model is evaluated in closed loop on ``--eval-episodes`` held-out seeds of
every family (the same seeds for every model; the scene's boxes in the prompt
for the D-inBC variants), and probed directly on what the auxiliary tasks teach:
localization accuracy and detection precision/recall on the frames of its
held-out validation episodes. docs/RESULTS.md gets mean ± std over training
seeds, a paired bootstrap 95 % confidence interval of (D-inBC + aux − D-inBC)
per family, and a reading written from those numbers, after every model;
docs/ablation.json the raw numbers. A finished model is skipped and an
interrupted one resumes from its newest checkpoint (patience included), so the
run continues across sessions. Not part of CI; ``make ablation``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

AUX = ("localization", "detection", "action_prediction", "future_prediction", "spatial_relationship",
       "temporal_relationship")  # fmt: skip
#: name -> (mixture, main task kind, boxes in the prompt)
VARIANTS = {
    "inbc": ({"inbc": 1.0}, "inbc", False),
    "d_inbc": ({"d_inbc": 1.0}, "d_inbc", True),
    "d_inbc_aux": ({"d_inbc": 1.0, **dict.fromkeys(AUX, 0.5)}, "d_inbc", True),
}
SHARES = (("l1_placement", 0.75), ("multi_step", 0.25))
COMPARE = ("d_inbc_aux", "d_inbc")  # the claim: auxiliary tasks on top of D-inBC


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="300", help="demonstration episodes per dataset (comma list)")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (comma list)")
    ap.add_argument("--check-every", type=int, default=100, help="main-task steps between validation losses")
    ap.add_argument("--patience", type=int, default=4, help="validations without improvement before stopping")
    # A constant rate stopped the first real model at 600 steps, useless in closed loop (0-2 %): the validation loss
    # bottomed out while the rate stayed at 1e-3. Halving it on a plateau lets training settle before it stops.
    ap.add_argument("--schedule", default="plateau", choices=("plateau", "wsd"), help="learning-rate schedule")
    # The validation loss bottomed out at 300 steps in the first real model, useless in closed loop; the share of
    # answer tokens predicted right follows the answers themselves.
    ap.add_argument(
        "--val-metric",
        default="token_accuracy",
        choices=("token_accuracy", "loss"),
        help="what early stopping judges on the held-out main-task records",
    )
    ap.add_argument(
        "--min-improvement",
        type=float,
        default=0.005,
        help="gain of the validation figure that resets the patience (0.005: ~3 of ~550 answer tokens)",
    )
    ap.add_argument("--max-main-steps", type=int, default=3000, help="main-task steps at most per model")
    ap.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out for validation and probes")
    ap.add_argument("--base-steps", type=int, default=1500, help="grounding steps of the shared base model")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-episodes", type=int, default=50, help="held-out seeds per family")
    ap.add_argument("--workers", type=int, default=2, help="evaluation processes")
    ap.add_argument("--probe-frames", type=int, default=100, help="held-out records per probed kind")
    ap.add_argument("--data-l1", help="existing l1_placement demonstrations (all task kinds); generated if absent")
    ap.add_argument("--data-multi", help="existing multi_step demonstrations (all task kinds); generated if absent")
    ap.add_argument("--vision-model", help="a tiny model whose pretrained vision tower all runs share")
    ap.add_argument("--vision-steps", type=int, default=1500, help="tower pretraining steps (without --vision-model)")
    ap.add_argument("--scenes", type=int, default=1000, help="rendered layouts per family for the tower")
    ap.add_argument(
        "--report",
        action="store_true",
        help="only rewrite RESULTS.md and ablation.json from the finished models (e.g. while a run goes on)",
    )
    ap.add_argument("--work", default=".ablation-work")
    ap.add_argument("--docs", default="docs")
    a = ap.parse_args()

    from llara_core.apps.evaluate import EvalConfig, evaluate, grounding_accuracy
    from llara_core.fileio import atomic_write_json
    from llara_core.model.runtime import VLMPolicy
    from llara_core.model.train import TrainConfig, train
    from llara_core.sim.tasks import FAMILIES

    work = Path(a.work)
    sizes = [int(s) for s in a.sizes.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    base = None if a.report else _prepare(work, sizes, a)  # data, tower, shared base, subsets (reused)
    results: dict[str, dict[str, list[dict]]] = {}
    # seed-major: after the first 3 * len(sizes) models every cell of the table has a run
    for seed in seeds:
        for size in sizes:
            subset = work / f"subset_{size}"
            datasets = [subset / fam for fam, _ in SHARES]
            # the compared pair first: the claim's difference has a first estimate after two models
            for name in sorted(VARIANTS, key=lambda v: (v not in COMPARE, v)):
                mix, main_kind, boxes = VARIANTS[name]
                key = f"{name}/{size}"
                out = work / "models" / f"{name}_{size}_{seed}"
                done = out / "ablation_row.json"  # a finished model is not trained or evaluated again
                scale = sum(mix.values()) / mix[main_kind]  # optimizer steps per main-task step
                if done.is_file():
                    row = json.loads(done.read_text())
                    metrics = out / "train_metrics.json"
                    if "resumed" not in row and metrics.is_file():  # rows written before these fields
                        m = json.loads(metrics.read_text())
                        row["resumed"] = m["resumed_from"] is not None
                        row["minutes_full_train"] = _full_train_minutes(m)
                        row["best_main_step"] = _best_main_step(m, scale)
                elif a.report:
                    continue
                else:
                    t0 = time.perf_counter()
                    cfg = TrainConfig(max_steps=round(a.max_main_steps * scale), batch_size=a.batch_size, lr=a.lr,
                                      mix=mix, val_fraction=a.val_fraction, val_kinds=(main_kind,),
                                      eval_steps=round(a.check_every * scale), early_stopping_patience=a.patience,
                                      early_stopping_threshold=a.min_improvement,
                                      schedule=a.schedule, val_metric=a.val_metric, seed=seed, resume=True, freeze_vision=True,
                                      progress=False)  # fmt: skip
                    assert base is not None  # prepared unless --report, which trains nothing
                    m = train(datasets, base, out, cfg)
                    t_train = time.perf_counter() - t0
                    policy = VLMPolicy.from_pretrained(out)
                    held = {e.split(":")[-1] for e in m["val_episodes"]}  # load_records prefixes "<k>:"
                    probe = {fam: grounding_accuracy(policy, subset / fam, held, a.probe_frames)
                             for fam, _ in SHARES}  # fmt: skip
                    del policy
                    ecfg = EvalConfig(task_family=tuple(FAMILIES), episodes=a.eval_episodes, d_inbc=boxes,
                                      workers=a.workers)  # fmt: skip
                    res = evaluate(functools.partial(VLMPolicy.from_pretrained, out), ecfg, out / "eval",
                                   progress=False)  # fmt: skip
                    row = {fam: v["rate"] for fam, v in res["summary"]["families"].items()}
                    row["per_seed"] = {fam: [int(bool(r["success"])) for r in res["episodes"] if r["family"] == fam]
                                       for fam in FAMILIES}  # fmt: skip
                    row["steps"] = m["steps"]
                    row["main_samples"] = round(m["steps"] * a.batch_size / scale)
                    row["val_metric"] = m["val_metric"]
                    row["best_metric"] = m["best_metric"]
                    row["stopped_early"] = m["steps"] < cfg.max_steps
                    row["probe"] = probe
                    row["resumed"] = m["resumed_from"] is not None
                    row["minutes_full_train"] = _full_train_minutes(m)
                    row["best_main_step"] = _best_main_step(m, scale)
                    row["minutes_train"] = t_train / 60
                    row["minutes"] = (time.perf_counter() - t0) / 60
                    atomic_write_json(done, row)
                results.setdefault(key, {}).setdefault("runs", []).append(row)
                print(key, seed, {k: row[k] for k in (*FAMILIES, "steps", "minutes")}, flush=True)
                _write(Path(a.docs), results, a, list(FAMILIES))
    return 0


def _prepare(work: Path, sizes: list[int], a: argparse.Namespace) -> Path:
    """Demonstrations, the pretrained tower, the shared grounded base and the per-size subsets (each made once)."""
    from llara_core.model.tiny import dataset_texts
    from llara_core.sim.demonstrations import DemosConfig, generate_demos

    data = {"l1_placement": a.data_l1, "multi_step": a.data_multi}
    for fam, share in SHARES:  # the largest size (smaller ones are subsets) and as many again for the base
        if not data[fam]:
            data[fam] = str(work / "data" / fam)
            if not (Path(data[fam]) / "data.json").is_file():
                generate_demos(DemosConfig(out=str(data[fam]), task_family=(fam,),
                                           episodes=2 * round(max(sizes) * share), seed=10000, record_hz=2.0))  # fmt: skip
    corpus = dataset_texts(data.values())  # one tokenizer corpus: every base gets the same tokenizer
    vision = Path(a.vision_model) if a.vision_model else _pretrained_tower(work / "vision", data, corpus, a)
    used = {fam: _episodes(fam, share, max(sizes)) for fam, share in SHARES}
    base = _grounded_base(work / "base", vision, corpus, data, used, a)
    for size in sizes:
        for fam, share in SHARES:
            keep = _episodes(fam, share, size)
            _subset(Path(data[fam]), work / f"subset_{size}" / fam, lambda ep, keep=keep: ep in keep)
    return base


def _full_train_minutes(metrics: dict) -> float:
    """Training minutes of the whole model: a resumed run's seconds cover only the steps after its checkpoint."""
    done_before = int(metrics["resumed_from"].rsplit("-", 1)[1]) if metrics.get("resumed_from") else 0
    ran = max(1, metrics["steps"] - done_before)
    return metrics["seconds"] * metrics["steps"] / ran / 60


def _best_main_step(metrics: dict, scale: float) -> int | None:
    """The main-task step of the checkpoint kept (the best validation), from train()'s metrics."""
    best = metrics.get("best_checkpoint")
    return round(int(best.rsplit("-", 1)[1]) / scale) if best else None


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
                      val_fraction=0.0, save_steps=max(min(a.base_steps, 250), 1), seed=0, resume=True, freeze_vision=True,
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


def paired_bootstrap(a: list[list[int]], b: list[list[int]], n: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Mean difference (a − b, points) and its 95 % bootstrap interval; ``a[s][j]``: success of training seed s's
    model on evaluation seed j. The evaluation seeds are resampled (every model saw the same ones: paired)."""
    runs = min(len(a), len(b))
    m = min(len(x) for x in (*a[:runs], *b[:runs]))
    diff = [statistics.mean(a[s][j] for s in range(runs)) - statistics.mean(b[s][j] for s in range(runs))
            for j in range(m)]  # fmt: skip
    rng = random.Random(seed)
    boots = sorted(statistics.mean(rng.choices(diff, k=m)) for _ in range(n))
    return {"diff": 100 * statistics.mean(diff), "lo": 100 * boots[int(0.025 * n)], "hi": 100 * boots[int(0.975 * n)],
            "runs": runs, "episodes": m}  # fmt: skip


def _mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.1f}"


def _write(docs: Path, results: dict, a: argparse.Namespace, families: list[str]) -> None:
    from llara_core.fileio import atomic_write_bytes, atomic_write_json

    docs.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in a.sizes.split(",")]
    stats = {}
    for size in sizes:
        with_aux, without = (results.get(f"{v}/{size}", {}).get("runs", []) for v in COMPARE)
        if with_aux and without:
            stats[size] = {f: paired_bootstrap([r["per_seed"][f] for r in with_aux], [r["per_seed"][f] for r in without])
                           for f in families}  # fmt: skip
            # every family's episodes as one paired sample: the single "how big" of the claim
            stats[size]["all"] = paired_bootstrap([[x for f in families for x in r["per_seed"][f]] for r in with_aux],
                                                  [[x for f in families for x in r["per_seed"][f]] for r in without])  # fmt: skip
    atomic_write_json(docs / "ablation.json", {"args": vars(a), "results": results, "aux_minus_no_aux": stats})
    done = sum(len(v["runs"]) for v in results.values())
    total = len(sizes) * len(a.seeds.split(",")) * len(VARIANTS)
    lines = [
        "# LLaRA's auxiliary tasks, tested at equal main-task exposure (closed-loop success in the simulator, %)",
        "",
        f"Tiny LLaVA finetuned from one shared base (frozen pretrained vision tower; projector and language model "
        f"trained {a.base_steps} steps on localization questions about episodes no variant uses). Every variant sees "
        f"the same main-task samples per step budget: auxiliary samples come as extra steps. Each model trained until "
        f"its main-task validation {a.val_metric.replace('_', ' ')} ({a.val_fraction:.0%} of the episodes held out) "
        f"did not improve by more than {a.min_improvement:g} for "
        f"{a.patience} checks {a.check_every} main-task steps apart (at most {a.max_main_steps}), batch "
        f"{a.batch_size}, lr {a.lr:g} ({a.schedule} schedule); the best checkpoint is the model. {a.eval_episodes} held-out seeds per family, "
        "the same for every model; mean ± std over training seeds. Produced by `scripts/ablation.py` (`make "
        "ablation`); raw numbers in `ablation.json`.",
        "",
        f"**{done} of {total} models done.**" if done < total else f"All {total} models done.",
        "",
        "| variant / episodes | runs | "
        + " | ".join(families)
        + " | main-task steps run (best kept) | minutes per model |",
        "|---|---|" + "---|" * len(families) + "---|---|",
    ]
    order = {name: i for i, name in enumerate(VARIANTS)}
    for key, v in sorted(results.items(), key=lambda kv: (int(kv[0].split("/")[1]), order[kv[0].split("/")[0]])):
        runs = v["runs"]
        cells = [_mean_sd([100 * r[f] for r in runs]) for f in families]
        used = ", ".join(f"{r['main_samples'] // a.batch_size} (best {r.get('best_main_step')})" for r in runs)
        # a resumed model: its last process's rate over all its steps, plus its evaluation
        full = [r["minutes"] - r["minutes_train"] + r.get("minutes_full_train", r["minutes_train"]) for r in runs]
        minutes = _mean_sd(full) + (" †" if any(r.get("resumed") for r in runs) else "")
        lines.append(f"| {key} | {len(runs)} | " + " | ".join(cells) + f" | {used} | {minutes} |")  # fmt: skip
    if any(r.get("resumed") for v in results.values() for r in v["runs"]):
        lines += [
            "",
            "† includes a model resumed after an interruption: its training minutes are its last process's rate "
            "per step times all its steps.",
        ]
    lines += ["", "## What the auxiliary tasks teach, measured directly (held-out validation frames)", "",
              "| variant / episodes | localization accuracy (centre within 0.05) | detection recall | precision |",
              "|---|---|---|---|"]  # fmt: skip
    for key, v in sorted(results.items(), key=lambda kv: (int(kv[0].split("/")[1]), order[kv[0].split("/")[0]])):

        def probe(field: str, metric: str, runs: list = v["runs"]) -> str:
            xs = [100 * p[field][metric] for r in runs for p in r["probe"].values() if p[field][metric] is not None]
            return _mean_sd(xs) if xs else "n/a"

        lines.append(f"| {key} | {probe('localization', 'accuracy')} | {probe('detection', 'recall')} | "
                     f"{probe('detection', 'precision')} |")  # fmt: skip
    lines += ["", "## D-inBC + aux − D-inBC, per family (paired bootstrap over evaluation seeds)", ""]
    if not stats:
        lines.append("Not yet: both variants need at least one finished model.")
    reading = []
    for size, per in stats.items():
        lines += [
            f"{size} episodes:",
            "",
            "| family | difference (points) | 95 % CI | significant |",
            "|---|---|---|---|",
        ]
        for f, st in per.items():
            sig = st["lo"] > 0 or st["hi"] < 0
            label, unit = ("all families", "episodes") if f == "all" else (f, "seeds")
            lines.append(f"| {label} | {st['diff']:+.1f} | [{st['lo']:+.1f}, {st['hi']:+.1f}] | {'yes' if sig else 'no'} "
                         f"({st['runs']} runs × {st['episodes']} {unit}) |")  # fmt: skip
            if f != "all":  # the pooled figure has its own sentence in the reading
                reading.append((size, f, st, sig))
        lines.append("")
    if reading:
        gains = ", ".join(
            f"{f} at {n} episodes (+{st['diff']:.1f})" for n, f, st, sig in reading if sig and st["diff"] > 0
        )
        losses = ", ".join(
            f"{f} at {n} episodes ({st['diff']:.1f})" for n, f, st, sig in reading if sig and st["diff"] < 0
        )
        text = "" if done == total else f"Provisional: {done} of {total} models. "
        if min(st["runs"] for _, _, st, _ in reading) < 2:
            text += ("With one training seed per variant the intervals cover the evaluation seeds only, not how much "
                     "another training seed would change the model. ")  # fmt: skip
        text += (
            f"The auxiliary tasks improved success significantly in {gains}. "
            if gains
            else ("No family shows a significant gain from the auxiliary tasks. ")
        )
        text += f"They hurt significantly in {losses}. " if losses else ""
        text += "Elsewhere the 95 % interval contains zero: no difference this grid can resolve."
        for size, per in stats.items():
            st = per["all"]
            verdict = ("a significant gain" if st["lo"] > 0 else "a significant loss" if st["hi"] < 0
                       else "not significant")  # fmt: skip
            text += (f" Over all families at {size} episodes ({st['episodes']} paired episodes per run, {st['runs']} "
                     f"runs): {st['diff']:+.1f} points, 95 % CI [{st['lo']:+.1f}, {st['hi']:+.1f}], {verdict}.")  # fmt: skip
            loc = {v: [p["localization"]["accuracy"] for r in results.get(f"{v}/{size}", {}).get("runs", [])
                       for p in r["probe"].values() if p["localization"]["accuracy"] is not None] for v in COMPARE}  # fmt: skip
            steps = {v: [r["main_samples"] // a.batch_size for r in results.get(f"{v}/{size}", {}).get("runs", [])]
                     for v in COMPARE}  # fmt: skip
            text += (f" Early stopping ended D-inBC + aux after {statistics.mean(steps[COMPARE[0]]):.0f} main-task steps "
                     f"and D-inBC after {statistics.mean(steps[COMPARE[1]]):.0f} (mean; equal exposure per step, not in "
                     "total: each trained as long as its own main-task validation kept improving).")  # fmt: skip
            if all(loc.values()):
                text += (f" Localization on held-out frames: {100 * statistics.mean(loc[COMPARE[0]]):.0f} % with the "
                         f"auxiliary tasks vs {100 * statistics.mean(loc[COMPARE[1]]):.0f} % without — what they "
                         "teach directly.")  # fmt: skip
        lines += ["## Reading", "", text]
    atomic_write_bytes(docs / "RESULTS.md", ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main())
