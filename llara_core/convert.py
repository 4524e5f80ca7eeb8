"""Bags -> training conversations, bag by bag: a bad bag is reported and skipped, the rest converts.

The dataset folder is resumable (see :mod:`llara_core.conversations`): a bag
whose episode already has a shard is skipped, so re-running after a crash or
with more bags converts only what is new. ``report.json`` records, for every
bag, what was produced or why it was skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llara_core.bags import BagError, BagTopics, read_episode_bag
from llara_core.conversations import TASK_KINDS, DatasetWriter, atomic_write_json


def episode_id_for(bag: Path) -> str:
    """A file-name-safe, stable episode id from the bag folder's name."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", bag.name).lstrip("._-") or "episode"


def convert_bags(
    bags: Sequence[str | Path],
    out: str | Path,
    kinds: Sequence[str] = TASK_KINDS,
    topics: BagTopics = BagTopics(),
    camera_pose: Any = None,
    instruction: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert every bag; returns (and writes as ``report.json``) the summary.

    ``report["skipped"]`` lists ``{"bag", "reason"}`` for every bag that produced
    nothing; callers exit non-zero when it is not empty.
    """
    from tqdm import tqdm

    writer = DatasetWriter(out, kinds, seed)
    report: dict[str, Any] = {"converted": [], "already_converted": [], "skipped": [], "samples": {}}
    for bag in tqdm([Path(b) for b in bags], desc="convert_bags", unit="bag", disable=not progress):
        eid = episode_id_for(bag)
        if writer.has_episode(eid):
            report["already_converted"].append(str(bag))
            continue
        try:
            ep = read_episode_bag(bag, topics, camera_pose=camera_pose, instruction=instruction, episode_id=eid)
            if not ep.steps():
                raise BagError(f"{bag}: no grasp (no gripper close followed by an open)")
            counts = writer.add_episode(ep, source=str(bag))
        except (BagError, ValueError) as exc:  # ValueError covers GeometryError and EpisodeError
            report["skipped"].append({"bag": str(bag), "reason": str(exc)})
            continue
        report["converted"].append(str(bag))
        for k, n in counts.items():
            report["samples"][k] = report["samples"].get(k, 0) + n
    writer.finalize({"report": "report.json"})
    atomic_write_json(Path(out) / "report.json", report)
    return report
