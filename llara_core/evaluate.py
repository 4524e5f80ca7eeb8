"""Closed-loop evaluation in the simulator with LLaRA's loop, and the success tables it reports.

For each task: render the camera, ask the policy (inBC, or D-inBC with the
scene's object boxes), execute only the FIRST parsed step — lifted to the
table through the camera model (:mod:`llara_core.execution`) and run by the
same motion primitive as the expert —, re-query with the finished steps as
history, until the goal predicate holds or the step budget is spent. An answer
that does not parse is a failure, logged with its text; nothing is repaired.

Results: one row per episode, a summary per family and per generalization
level, written as JSON, a markdown table and a PNG bar chart.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from llara_core.actions import ActionStep
from llara_core.episodes import ObjectBox
from llara_core.execution import plan_step
from llara_core.geometry import GeometryError

GRASP_Z = 0.025  # m: TCP height of a grasp (the expert's; finger tips 1 cm above the table)
LIFT_PLACE_Z = 0.03  # m: plane the place point is lifted to (centers of objects resting on a target)
PLACE_Z = 0.035  # m: TCP height at release


class Policy(Protocol):
    def act(
        self,
        image: Any,
        instruction: str,
        objects: Sequence[ObjectBox] | None = None,
        history: Sequence[ActionStep] = (),
    ) -> Any: ...


def run_episode(
    policy: Policy,
    family: str,
    seed: int,
    d_inbc: bool = False,
    size: tuple[int, int] = (224, 224),
    extra_steps: int = 1,
    refine_grasp: bool = True,
) -> dict[str, Any]:
    """One closed-loop episode; returns its row (success, steps, reason, the model's answers).

    ``refine_grasp``: centre the grasp on the object under the pick point
    (:func:`llara_core.execution.plan_step`), as the action node does.
    """
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.expert import MotionError, pick_place
    from llara_core.sim.robot import ArmKinematics
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
            if not out.steps or (out.errors and out.errors[0].line <= 1):
                reason = f"unparseable answer: {out.text!r}"
                break
            step = out.steps[0]
            try:
                plan = plan_step(step, env.camera, env.camera_pose, GRASP_Z, LIFT_PLACE_Z, image, refine_grasp)
                pick_place(env, kin, plan.pick, [*plan.place[:2], PLACE_Z], plan.grasp_yaw, plan.rotation)
            except (MotionError, GeometryError) as exc:
                reason = f"not executable: {exc}"
                break
            history.append(dataclasses.replace(step, index=len(history) + 1))
            env.run_for(0.3)
            if all(goal_status(task, {o.name: env.object_pose(o.name) for o in task.scene.objects})):
                success, reason = True, ""
                break
    row.update(success=success, steps=len(history), reason=reason, answers=answers, latency_s=latencies)
    return row


_WORKER_POLICY: Policy | None = None


def _init_worker(factory: Callable[[], Policy], workers: int) -> None:
    """Process-pool initializer of :func:`evaluate`: GL backend, a share of the cores, one policy per process."""
    import os

    import torch

    from llara_core.sim import select_gl

    global _WORKER_POLICY
    select_gl()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    _WORKER_POLICY = factory()


def _worker_episode(args: tuple[str, int, bool, bool]) -> dict[str, Any]:
    family, seed, d_inbc, refine_grasp = args
    assert _WORKER_POLICY is not None, "_init_worker did not run"
    return run_episode(_WORKER_POLICY, family, seed, d_inbc, refine_grasp=refine_grasp)


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["families"])
    rates = [100 * summary["families"][n]["rate"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(names, rates, color="#4a7fb5")
    ax.set_ylim(0, 100)
    ax.set_ylabel("success (%)")
    ax.set_title(title)
    for i, r in enumerate(rates):
        ax.text(i, r + 2, f"{r:.0f}", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(
    policy: Policy | Callable[[], Policy],
    families: Sequence[str],
    seeds: Sequence[int],
    out: str | Path | None = None,
    d_inbc: bool = False,
    title: str = "closed-loop success",
    progress: bool = True,
    refine_grasp: bool = True,
    workers: int = 1,
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

    jobs = [(f, s) for f in families for s in seeds]
    loaded = hasattr(policy, "act")
    if workers > 1 and loaded:
        raise ValueError("workers > 1 needs a policy factory (each process loads its own), not a loaded policy")
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process whose torch/OpenMP threads already ran can hang the child
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(policy, workers)) as ex:
            args = [(f, s, d_inbc, refine_grasp) for f, s in jobs]
            rows = list(tqdm(ex.map(_worker_episode, args), total=len(jobs), desc="eval", unit="episode",
                             disable=not progress))  # fmt: skip
    else:
        pol: Policy = policy if loaded else policy()  # type: ignore[assignment,operator]
        rows = [
            run_episode(pol, f, s, d_inbc, refine_grasp=refine_grasp)
            for f, s in tqdm(jobs, desc="eval", unit="episode", disable=not progress)
        ]
    summary = summarize(rows)
    lat = sorted(x for r in rows for x in r["latency_s"])
    summary["latency_p50_s"] = lat[len(lat) // 2] if lat else None
    result = {"summary": summary, "episodes": rows, "d_inbc": d_inbc, "refine_grasp": refine_grasp}
    if out is not None:
        from llara_core.conversations import atomic_write_bytes, atomic_write_json

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "eval.json", result)
        atomic_write_bytes(out / "eval.md", markdown_table(summary, title).encode())
        bar_chart(summary, out / "eval.png", title)
    return result
