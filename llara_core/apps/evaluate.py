"""Closed-loop evaluation in the simulator with LLaRA's loop, and the success tables it reports.

For each task: render the camera, ask the policy (inBC, or D-inBC with the
scene's object boxes), execute only the FIRST parsed step — lifted to the
table through the camera model (:mod:`llara_core.planning`) and run by the
same motion primitive as the expert —, re-query with the finished steps as
history, until the goal predicate holds or the step budget is spent. An answer
that does not parse is a failure, logged with its text; nothing is repaired.

Results: one row per episode, a summary per family and per generalization
level, written as JSON, a markdown table and a PNG bar chart.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llara_core.config import setting
from llara_core.language.actions import ActionStep
from llara_core.model.policy import Policy
from llara_core.planning import ActionPlan, ExecutionSettings, plan_action


@dataclass(frozen=True)
class EvalConfig:
    """What ``llara eval`` runs: families × seeds, prompt mode, and how steps are executed."""

    task_family: tuple[str, ...] = setting(("all",), "task families (l1_placement, l2_combinatorial, l3_novel, "
                                           "multi_step) or all")  # fmt: skip
    episodes: int = setting(100, "seeds per family")
    first_seed: int = setting(0, "first seed (training data uses seeds >= 10000)")
    d_inbc: bool = setting(False, "give the scene's object boxes in the prompt (D-inBC)")
    workers: int = setting(1, "processes, each with its own model and simulator")
    extra_steps: int = setting(1, "queries allowed beyond the task's number of steps")
    execution: ExecutionSettings = dataclasses.field(default_factory=ExecutionSettings)

    def __post_init__(self) -> None:
        from llara_core.sim.tasks import check_families

        object.__setattr__(self, "task_family", check_families(self.task_family))
        if self.episodes < 1 or self.workers < 1 or self.extra_steps < 0:
            raise ValueError("episodes and workers must be >= 1, extra_steps >= 0")

    @property
    def seeds(self) -> range:
        return range(self.first_seed, self.first_seed + self.episodes)


def run_episode(
    policy: Policy,
    family: str,
    seed: int,
    d_inbc: bool = False,
    size: tuple[int, int] = (224, 224),
    extra_steps: int = 1,
    settings: ExecutionSettings = ExecutionSettings(),
) -> dict[str, Any]:
    """One closed-loop episode; returns its row (success, steps, reason, the model's answers).

    Each answer goes through :func:`llara_core.planning.plan_action` — the
    action node's planner — with ``partial="first_step"``: LLaRA executes the
    first step of an answer; an answer whose first step does not parse ends the
    episode as a failure and moves nothing.
    """
    from llara_core.sim.arm import ArmKinematics
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.expert import execute_joints
    from llara_core.sim.tasks import goal_status, make_task

    task = make_task(family, seed)
    kin = ArmKinematics()
    row: dict[str, Any] = {"family": family, "level": task.level, "seed": seed, "instruction": task.instruction}
    answers: list[str] = []
    history: list[ActionStep] = []
    reason = "step budget spent"
    success = False
    latencies = []
    with TabletopEnv(task.scene, width=size[0], height=size[1]) as env:
        for _ in range(len(task.goals) + extra_steps):
            image = env.render()
            out = policy.act(image, task.instruction, env.object_boxes() if d_inbc else None, history)
            answers.append(out.text)
            latencies.append(out.latency_s)
            plan = plan_action(out.text, env.camera, env.camera_pose, settings, image=image, partial="first_step",
                               kinematics=kin, q0=env.commanded_q)  # fmt: skip
            if not isinstance(plan, ActionPlan):
                reason = (
                    f"unparseable answer: {out.text!r}" if plan.code == "parse" else f"not executable: {plan.reason}"
                )
                break
            execute_joints(env, plan.joints)
            history.append(dataclasses.replace(plan.step, index=len(history) + 1))
            env.run_for(0.3)
            if all(goal_status(task, {o.name: env.object_pose(o.name) for o in task.scene.objects})):
                success, reason = True, ""
                break
    row.update(success=success, steps=len(history), reason=reason, answers=answers, latency_s=latencies)
    return row


_WORKER_POLICY: Policy | None = None


def _init_worker(factory: Callable[[], Policy], workers: int) -> None:
    """Process-pool initializer of :func:`evaluate`: a share of the cores, one policy per process."""
    import os

    import torch

    global _WORKER_POLICY
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    _WORKER_POLICY = factory()


def _worker_episode(args: tuple[str, int, bool, int, ExecutionSettings]) -> dict[str, Any]:
    family, seed, d_inbc, extra, settings = args
    assert _WORKER_POLICY is not None, "_init_worker did not run"
    return run_episode(_WORKER_POLICY, family, seed, d_inbc, extra_steps=extra, settings=settings)


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Success counts and rates per family and per level."""
    out: dict[str, Any] = {"families": {}, "levels": {}}
    for key, group in (("families", "family"), ("levels", "level")):
        acc: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            acc[r[group]].append(bool(r["success"]))
        out[key] = {k: {"success": sum(v), "n": len(v), "rate": sum(v) / len(v)} for k, v in sorted(acc.items())}
    out["total"] = {"success": sum(r["success"] for r in rows), "n": len(rows)}
    return out


def markdown_table(summary: dict[str, Any], title: str = "") -> str:
    lines = [f"### {title}", ""] if title else []
    lines += ["| family / level | success | rate |", "|---|---|---|"]
    for key in ("families", "levels"):
        for k, v in summary[key].items():
            lines.append(f"| {k} | {v['success']}/{v['n']} | {100 * v['rate']:.1f} % |")
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict[str, Any], path: Path, title: str) -> None:
    """Success rate per family as a PNG; draws on its own Agg canvas (the caller's matplotlib backend is untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(summary["families"])
    rates = [100 * summary["families"][n]["rate"] for n in names]
    fig = Figure(figsize=(6, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.bar(names, rates, color="#4a7fb5")
    ax.set_ylim(0, 100)
    ax.set_ylabel("success (%)")
    ax.set_title(title)
    for i, r in enumerate(rates):
        ax.text(i, r + 2, f"{r:.0f}", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def evaluate(
    policy: Policy | Callable[[], Policy],
    config: EvalConfig,
    out: str | Path | None = None,
    title: str = "closed-loop success",
    progress: bool = True,
) -> dict[str, Any]:
    """Run every (family, seed); write ``eval.json``, ``eval.md``, ``eval.png`` into ``out`` when given.

    ``policy`` is a loaded policy, or a picklable factory of one (e.g.
    ``functools.partial(VLMPolicy.from_pretrained, path)``); with a factory,
    ``workers`` > 1 runs the episodes in that many processes, each with its own
    policy and simulator and ``cpu_count // workers`` torch threads — episodes
    are independent, and a tiny model's decoding and the physics each use one
    core poorly. Rows come back in job order whatever the number of workers.
    """
    from tqdm import tqdm

    d_inbc, workers, settings, extra_steps = config.d_inbc, config.workers, config.execution, config.extra_steps
    jobs = [(f, s) for f in config.task_family for s in config.seeds]
    loaded = hasattr(policy, "act")
    if workers > 1 and loaded:
        raise ValueError("workers > 1 needs a policy factory (each process loads its own), not a loaded policy")
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process whose torch/OpenMP threads already ran can hang the child
        ctx = multiprocessing.get_context("spawn")
        init = functools.partial(_init_worker, typing.cast(Callable[[], Policy], policy), workers)
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init) as ex:
            args = [(f, s, d_inbc, extra_steps, settings) for f, s in jobs]
            rows = list(tqdm(ex.map(_worker_episode, args), total=len(jobs), desc="eval", unit="episode",
                             disable=not progress))  # fmt: skip
    else:
        pol = typing.cast(Policy, policy) if loaded else typing.cast(Callable[[], Policy], policy)()
        rows = [
            run_episode(pol, f, s, d_inbc, extra_steps=extra_steps, settings=settings)
            for f, s in tqdm(jobs, desc="eval", unit="episode", disable=not progress)
        ]
    summary = summarize(rows)
    lat = sorted(x for r in rows for x in r["latency_s"])
    summary["latency_p50_s"] = lat[len(lat) // 2] if lat else None
    result = {"summary": summary, "episodes": rows, "d_inbc": d_inbc, "refine_grasp": settings.refine_grasp}
    if out is not None:
        from llara_core.fileio import atomic_write_bytes, atomic_write_json

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "eval.json", result)
        atomic_write_bytes(out / "eval.md", markdown_table(summary, title).encode())
        bar_chart(summary, out / "eval.png", title)
    return result


def grounding_accuracy(
    policy: Any, dataset: str | Path, episodes: set[str] | None = None, limit: int = 200, tolerance: float = 0.05,
    batch: int = 8,
) -> dict[str, Any]:  # fmt: skip
    """What LLaRA's localization and detection tasks teach, measured directly on a dataset's frames.

    For the ``localization`` records ("where is <p>X</p>?") the answer is right
    when its box centre lies within ``tolerance`` (normalized image units) of the
    true one; for ``detection`` ("list the objects") precision and recall count an
    object as found when a predicted one of the same name lies within
    ``tolerance``. ``episodes`` restricts the records to those episode ids (held-out
    ones); at most ``limit`` records of each kind, in the dataset's order.
    """
    from PIL import Image

    from llara_core.datasets.mixing import kinds_of
    from llara_core.datasets.reader import read_dataset
    from llara_core.language.objects import BOX_RE, parse_objects

    root = Path(dataset)
    records = read_dataset(root)
    kinds = kinds_of(records)
    chosen: dict[str, list[dict[str, Any]]] = {"localization": [], "detection": []}
    for rec, kind in zip(records, kinds, strict=True):
        if kind in chosen and len(chosen[kind]) < limit and (episodes is None or rec["id"].split("/")[0] in episodes):
            chosen[kind].append(rec)

    def answers(recs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for i in range(0, len(recs), batch):
            part = recs[i : i + batch]
            images = [Image.open(root / r["image"]).convert("RGB") for r in part]
            texts = policy.generate(images, [r["conversations"][0]["value"] for r in part])
            out.extend((r["conversations"][1]["value"], t) for r, t in zip(part, texts, strict=True))
        return out

    def centre(text: str) -> tuple[float, float] | None:
        m = BOX_RE.search(text)
        return (float(m[1]), float(m[2])) if m else None

    hits = 0
    loc = answers(chosen["localization"])
    for truth, said in loc:
        t, p = centre(truth), centre(said)
        hits += bool(t and p and max(abs(t[0] - p[0]), abs(t[1] - p[1])) <= tolerance)
    found = predicted = wanted = 0
    det = answers(chosen["detection"])
    for truth, said in det:
        true_objs, pred_objs = parse_objects(truth), parse_objects(said)
        wanted, predicted = wanted + len(true_objs), predicted + len(pred_objs)
        for o in true_objs:
            found += any(q.name == o.name and max(abs(q.cx - o.cx), abs(q.cy - o.cy)) <= tolerance for q in pred_objs)
    precision = found / predicted if predicted else (0.0 if det else None)
    return {
        "localization": {"n": len(loc), "accuracy": hits / len(loc) if loc else None},
        "detection": {"n": len(det), "recall": found / wanted if wanted else None, "precision": precision},
        "tolerance": tolerance,
    }
