"""Demonstrations from the scripted expert: Episodes -> LLaVA dataset, and optionally -> rosbag2 episodes.

The bags use the standard message types of :mod:`llara_core.datasets.bags` (what a
recorder on a real arm writes), so the bag converter is tested against bags
whose ground truth is known. Generation is resumable like conversion: an
episode whose shard (and bag, if asked for) exists is not simulated again.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llara_core.config import check_choices, setting
from llara_core.datasets.bags import Storage, write_episode_bag
from llara_core.datasets.records import TASK_KINDS, check_kinds
from llara_core.datasets.writer import DatasetWriter
from llara_core.fileio import atomic_write_json
from llara_core.sim.arm import ArmKinematics
from llara_core.sim.env import DEFAULT_SIZE, TabletopEnv
from llara_core.sim.expert import run_expert
from llara_core.sim.tasks import check_families, episode_id, make_task


@dataclass(frozen=True)
class DemosConfig:
    """``llara sim-demos``: which demonstrations to run and what to write."""

    out: str = setting("", "dataset folder (created, or resumed when it exists)", path=True)
    task_family: tuple[str, ...] = setting(("l1_placement",), "task families, or all")
    episodes: int = setting(10, "episodes (seeds) per family")
    seed: int = setting(0, "first seed")
    kinds: tuple[str, ...] = setting(TASK_KINDS, "task kinds to write")
    bags: str | None = setting(None, "also write each episode as a rosbag2 into this folder", path=True)
    storage: Storage = setting("mcap", "bag storage")
    image_size: tuple[int, ...] = setting(DEFAULT_SIZE, "camera image width and height (px)", length=2)
    record_hz: float = setting(10.0, "camera/state recording rate in sim time (Hz)")

    def __post_init__(self) -> None:
        check_choices(self)
        object.__setattr__(self, "task_family", check_families(self.task_family))
        check_kinds(self.kinds)
        if not self.out:
            raise ValueError("set out, the dataset folder")
        if self.episodes < 1 or self.record_hz <= 0 or not all(16 <= v <= 2048 for v in self.image_size):
            raise ValueError("episodes must be >= 1, record_hz > 0 and the image 16..2048 px")


def write_bag_atomic(episode: Any, path: Path, storage: Storage) -> Path:
    """Write a bag into a temporary sibling folder, then rename: a killed run leaves no half bag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        write_episode_bag(episode, tmp / "bag", storage=storage)
        (tmp / "bag").rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def generate_demos(config: DemosConfig, progress: bool = True) -> dict[str, Any]:
    """Run the expert on ``episodes`` seeds (``seed``, ``seed+1``, …) of every family and write the results.

    Failed demonstrations are never written; they are listed in ``report.json``
    with the expert's reason. Returns that report.
    """
    from tqdm import tqdm

    c = config
    families, episodes, out, seed, kinds, bags = c.task_family, c.episodes, c.out, c.seed, c.kinds, c.bags
    storage, size, record_hz = c.storage, (c.image_size[0], c.image_size[1]), c.record_hz
    writer = DatasetWriter(out, kinds, seed)
    bag_root = Path(bags) if bags else None
    kin = ArmKinematics()
    report: dict[str, Any] = {"written": [], "already_written": [], "failed": [], "samples": {}, "bags": []}
    jobs = [(f, s) for f in families for s in range(seed, seed + episodes)]
    for family, s in tqdm(jobs, desc="sim-demos", unit="episode", disable=not progress):
        eid = episode_id(family, s)
        bag_path = bag_root / eid if bag_root else None
        if writer.has_episode(eid) and (bag_path is None or bag_path.exists()):
            report["already_written"].append(eid)
            continue
        task = make_task(family, s)
        with TabletopEnv(task.scene, width=size[0], height=size[1], record_hz=record_hz) as env:
            result = run_expert(task, env, kin)
        if not result.success or result.episode is None:
            report["failed"].append({"episode": eid, "reason": result.reason})
            continue
        counts = writer.add_episode(result.episode, source=f"llara_core.sim:{family}:{s}")
        if bag_path is not None and not bag_path.exists():
            write_bag_atomic(result.episode, bag_path, storage)
            report["bags"].append(str(bag_path))
        report["written"].append(eid)
        for k, n in counts.items():
            report["samples"][k] = report["samples"].get(k, 0) + n
    writer.finalize(
        {"report": "report.json", "families": list(families), "image_size": list(size), "record_hz": record_hz}
    )
    atomic_write_json(Path(out) / "report.json", report)
    return report


def scene_boxes(
    families: Sequence[str], scenes: int, seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE, progress: bool = False
) -> list[tuple[Any, list[tuple[str, float, float, float, float]]]]:
    """(camera image, [(name, cx, cy, w, h)]) of ``scenes`` freshly laid-out scenes per family, arm at home.

    No expert runs: ~80 ms a scene. This is what vision pretraining
    (:mod:`llara_core.model.pretrain_vision`) needs besides demonstrations —
    many layouts, each with exact boxes.
    """
    from tqdm import tqdm

    jobs = [(f, s) for f in families for s in range(seed, seed + scenes)]
    out = []
    for family, s in tqdm(jobs, desc="scenes", unit="scene", disable=not progress):
        with TabletopEnv(make_task(family, s).scene, width=size[0], height=size[1]) as env:
            boxes = [(b.name, float(b.cx), float(b.cy), float(b.w), float(b.h)) for b in env.object_boxes()]
            out.append((env.render(), boxes))
    return out
