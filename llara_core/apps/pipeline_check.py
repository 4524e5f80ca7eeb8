"""The library's end-to-end check (``llara demo``): every offline stage of LLaRA's loop, against the sim's truth.

Scripted expert in the MuJoCo tabletop -> demonstrations as a LLaVA dataset
(all eight task kinds) and as rosbag2 episodes -> dataset read back and
validated -> bags converted back and compared record by record, text included
-> every inBC answer lifted to 3-D through the camera model and compared with
the ground-truth gripper positions -> the actions drawn on a camera image ->
the shipped model in closed loop on held-out seeds. The same loop over ROS
(sim_node, policy_node, action_node over DDS) is ``llara_ros.dds_demo``.

Each stage prints one numbered line; a failed stage raises :class:`DemoError`
with what went wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llara_core.config import setting
from llara_core.errors import LlaraError
from llara_core.sim.tasks import TRAIN_FAMILIES

Log = Callable[[str], None]


class DemoError(LlaraError, RuntimeError):
    """A stage of the demo failed (the message says which and why)."""


@dataclass(frozen=True)
class DemoConfig:
    """``llara demo``'s settings."""

    episodes: int = setting(2, "expert episodes per task family")
    eval_episodes: int = setting(3, "held-out seeds per family the shipped model runs in closed loop")
    seed: int = setting(0, "first seed of the expert's episodes")
    out: str | None = setting(None, "output folder (unset: a new temporary folder)", path=True)

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.eval_episodes < 0:
            raise ValueError("episodes must be >= 1 and eval_episodes >= 0")


def compare_records(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[str]:
    """Differences between two datasets' records with the same ids (question, answer, task): [] when equal."""
    by_id = {r["id"]: r for r in theirs}
    diffs = []
    for r in ours:
        o = by_id.get(r["id"])
        if o is None:
            diffs.append(f"{r['id']}: missing")
            continue
        for key, a, b in (
            ("question", r["conversations"][0]["value"], o["conversations"][0]["value"]),
            ("answer", r["conversations"][1]["value"], o["conversations"][1]["value"]),
            ("task", r["task"], o["task"]),
        ):
            if a != b:
                diffs.append(f"{r['id']} {key}: {a!r} != {b!r}")
    diffs += [f"{i}: not in the simulator's dataset" for i in sorted(set(by_id) - {r["id"] for r in ours})]
    return diffs


def run_demo(config: DemoConfig = DemoConfig(), log: Log = print) -> Path:
    """Run every stage (see the module docstring); returns the output folder. DemoError when a stage fails."""
    import tempfile

    from llara_core.datasets.bags import read_episode_bag
    from llara_core.datasets.convert import convert_bags
    from llara_core.datasets.reader import read_dataset
    from llara_core.fileio import atomic_write_bytes
    from llara_core.geometry import normalized_to_table
    from llara_core.images import encode_png
    from llara_core.language.actions import parse_actions
    from llara_core.language.annotate import TRUE_RGB, draw_steps
    from llara_core.sim.demonstrations import DemosConfig, generate_demos
    from llara_core.sim.tasks import episode_id

    out = Path(config.out) if config.out else Path(tempfile.mkdtemp(prefix="llara-demo-"))
    families = list(TRAIN_FAMILIES)
    t0 = time.perf_counter()
    log(f"1. scripted expert in the MuJoCo tabletop: {config.episodes} episodes of {' and '.join(families)}")
    demos = DemosConfig(
        out=str(out / "dataset"),
        task_family=tuple(families),
        episodes=config.episodes,
        seed=config.seed,
        bags=str(out / "bags"),
    )
    report = generate_demos(demos, progress=False)
    if report["failed"]:
        raise DemoError(f"the expert failed {report['failed']}")
    records = read_dataset(out / "dataset")
    log(f"2. dataset {out / 'dataset'}: {len(records)} valid LLaVA records, {report['samples']}")
    bags = sorted((out / "bags").iterdir())
    conv = convert_bags(bags, out / "from_bags", progress=False)
    if conv["skipped"]:
        raise DemoError(f"bags did not convert: {conv['skipped']}")
    from_bags = read_dataset(out / "from_bags")
    log(f"3. {len(bags)} rosbag2 episodes (mcap) in {out / 'bags'} converted back: {len(from_bags)} records")
    diffs = compare_records(records, from_bags)
    if diffs:
        raise DemoError(f"{len(diffs)} bag-converted records differ from the simulator's, e.g. {diffs[:3]}")
    log(f"4. bag-converted records equal the simulator's: {len(records)} of {len(records)} (ids, prompts, answers)")

    errors_mm: list[float] = []
    bag_episodes: dict[str, Any] = {}  # each bag read once, whatever its number of steps
    for rec in from_bags:
        if rec["task"] != "inbc":
            continue
        step = parse_actions(rec["conversations"][1]["value"]).steps[0]
        eid = rec["id"].split("/")[0]
        if eid not in bag_episodes:
            bag_episodes[eid] = read_episode_bag(out / "bags" / eid)
        ep = bag_episodes[eid]
        st = ep.steps()[(step.index or 1) - 1]
        for xy, si in ((step.pick, st.pick_state), (step.place, st.place_state)):
            gt = ep.states[si].ee_pose[:3, 3]
            p = normalized_to_table(ep.camera, ep.camera_pose, xy, table_height=float(gt[2]))
            errors_mm.append(1000 * float(np.linalg.norm(p - gt)))
    log(
        f"5. action text -> 3-D through the camera model vs the ground-truth gripper positions: "
        f"max {max(errors_mm):.1f} mm, mean {np.mean(errors_mm):.1f} mm over {len(errors_mm)} points "
        "(3-decimal quantization)"
    )
    ep = read_episode_bag(out / "bags" / episode_id("multi_step", config.seed))
    png = out / "actions.png"
    atomic_write_bytes(png, encode_png(draw_steps(ep.frames[0].image, ep.action_steps(), TRUE_RGB, upscale=3)))
    log(f"6. {png}: {ep.instruction!r} with its pick (o) and place (+) points")
    if config.eval_episodes:
        _closed_loop(out, config.eval_episodes, log)
    log(f"done in {time.perf_counter() - t0:.1f} s")
    return out


def _closed_loop(out: Path, episodes: int, log: Log) -> None:
    """The shipped model drives the arm in the sim on held-out seeds (LLaRA's loop), and one answer is drawn."""
    from llara_core.apps.evaluate import EvalConfig, evaluate, markdown_table
    from llara_core.fileio import atomic_write_bytes
    from llara_core.images import encode_png
    from llara_core.language.actions import parse_actions
    from llara_core.language.annotate import PRED_RGB, TRUE_RGB, draw_steps
    from llara_core.model.runtime import VLMPolicy
    from llara_core.resources import demo_model_path
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.expert import run_expert
    from llara_core.sim.tasks import make_task

    try:
        model = demo_model_path()
    except FileNotFoundError as exc:
        raise DemoError(f"no demo model ({exc}); build it with `make demo-model`") from exc
    policy = VLMPolicy.from_pretrained(model)
    res = evaluate(
        policy, EvalConfig(task_family=tuple(TRAIN_FAMILIES), episodes=episodes), out / "eval", progress=False
    )
    log(f"7. the shipped model {model} in closed loop on held-out seeds 0..{episodes - 1}:")
    log(markdown_table(res["summary"]))
    log(f"   inference latency p50 {1000 * res['summary']['latency_p50_s']:.0f} ms; details in {out / 'eval'}")
    task = make_task("l1_placement", 0)
    with TabletopEnv(task.scene) as env:
        image = env.render()
        result = run_expert(task, env)
    if result.episode is None:
        raise DemoError(f"the expert failed l1_placement seed 0: {result.reason}")
    answer = policy.act(image, task.instruction)
    img = draw_steps(image, result.episode.action_steps(), TRUE_RGB, "T", upscale=3)
    img = draw_steps(image, parse_actions(answer.text).steps, PRED_RGB, "P", canvas=img)
    atomic_write_bytes(out / "prediction.png", encode_png(img))
    log(f"8. {out / 'prediction.png'}: {task.instruction!r} -> {answer.text!r} (green expert, magenta model)")
