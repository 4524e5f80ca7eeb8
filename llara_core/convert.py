"""Bags -> training conversations, bag by bag: a bad bag is reported and skipped, the rest converts.

One function serves ``llara convert-bags`` and the ``convert_bags`` ROS node.
The dataset folder is resumable (see :mod:`llara_core.conversations`): a bag
whose episode already has a shard is skipped, so re-running after a crash or
with more bags converts only what is new, and a killed run leaves no
half-written record. ``report.json`` records, for every bag, what was produced
or why it was skipped. With ``workers > 1`` bags are converted in parallel
processes (each writes its own shards; the parent assembles ``data.json``).

Configuration (YAML, ``--config``; every key is also a flag and a node parameter)::

    kinds: [inbc, d_inbc, localization]      # default: all eight
    workers: 2
    seed: 0
    bag:                                       # llara_core.bags.BagOptions
      topics: {image: /camera/color/image_raw, ee_pose: /ee_pose, gripper: /gripper_closed}
      camera_pose: [1.0, 0.0, 0.7, 0.0, 0.0, 0.0, 1.0]
      instruction: "put the block in the bowl" # for bags without a task topic/sidecar
      urdf: ../urdf/llara_arm.urdf             # relative to the YAML file
      gripper_joint: finger_left_joint
      gripper_threshold: 0.026
      gripper_hysteresis: 0.004
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llara_core.bags import BagError, BagOptions, read_episode_bag
from llara_core.config import load_yaml, setting
from llara_core.conversations import TASK_KINDS, DatasetWriter, check_kinds
from llara_core.fileio import atomic_write_json


@dataclass(frozen=True)
class ConversionConfig:
    """Everything a conversion run needs besides the bag list and the output folder (``config/conversion.yaml``)."""

    kinds: tuple[str, ...] = setting(TASK_KINDS, "task kinds to generate")
    bag: BagOptions = field(default_factory=BagOptions)
    workers: int = setting(1, "parallel processes over bags")
    seed: int = setting(0, "seed of the prompts' paraphrases")

    def __post_init__(self) -> None:
        check_kinds(self.kinds)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> ConversionConfig:
        """The configuration of a YAML file (unknown keys refused; paths relative to the file)."""
        return load_yaml(cls, path)


@dataclass(frozen=True)
class ConvertJob:
    """What to convert and where (``llara convert-bags`` arguments, ``convert_bags`` node parameters)."""

    bags: tuple[str, ...] = setting((), "bag folders, or folders holding bag folders", path=True)
    out: str = setting("", "dataset folder (created, or resumed when it exists)", path=True)
    config: str | None = setting(None, "YAML conversion config; flags and parameters override it", path=True)

    def __post_init__(self) -> None:
        if not self.bags or not self.out:
            raise ValueError("set the bags to convert and 'out', the dataset folder")


def expand_bags(paths: Sequence[str | Path]) -> list[Path]:
    """Bag folders; a folder without metadata.yaml or storage files is taken as a folder of bags."""
    out: list[Path] = []
    for p in map(Path, paths):
        is_bag = (p / "metadata.yaml").is_file() or any(p.glob("*.mcap")) or any(p.glob("*.db3"))
        out.extend([p] if is_bag or not p.is_dir() else sorted(c for c in p.iterdir() if c.is_dir()))
    return out


def episode_id_for(bag: Path) -> str:
    """A file-name-safe, stable episode id from the bag folder's name."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", bag.name).lstrip("._-") or "episode"


def convert_one(bag: Path, out: Path, config: ConversionConfig) -> dict[str, Any]:
    """Convert one bag into its shard; returns ``{"bag", "status", "samples" | "reason", "metadata"}``."""
    writer = DatasetWriter(out, config.kinds, config.seed)
    eid = episode_id_for(bag)
    if writer.has_episode(eid):
        return {"bag": str(bag), "status": "already_converted"}
    try:
        ep = read_episode_bag(bag, config.bag, episode_id=eid)
        if not ep.steps():
            raise BagError(f"{bag}: no grasp (no gripper close followed by an open)")
        counts = writer.add_episode(ep, source=str(bag))
    except (BagError, ValueError) as exc:  # ValueError covers GeometryError and EpisodeError
        return {"bag": str(bag), "status": "skipped", "reason": str(exc)}
    notes: dict[str, Any] = {
        k: ep.metadata[k] for k in ("truncated", "recovered_messages", "operator_success") if k in ep.metadata
    }
    missing = [k for k in config.kinds if k not in counts]
    if missing:  # e.g. D-inBC without detections: skipped, never invented
        notes["kinds_without_samples"] = missing
    return {"bag": str(bag), "status": "converted", "samples": counts, "notes": notes}


def _convert_star(args: tuple[Path, Path, ConversionConfig]) -> dict[str, Any]:
    return convert_one(*args)


def convert_bags(
    bags: Sequence[str | Path],
    out: str | Path,
    config: ConversionConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert every bag; returns (and writes as ``report.json``) the summary.

    ``report["skipped"]`` lists ``{"bag", "reason"}`` for every bag that produced
    nothing; callers exit non-zero when it is not empty.
    """
    from tqdm import tqdm

    cfg = config or ConversionConfig()
    out = Path(out)
    DatasetWriter(out, cfg.kinds, cfg.seed)  # creates the folder; validates kinds
    jobs = [(Path(b), out, cfg) for b in bags]
    report: dict[str, Any] = {"converted": [], "already_converted": [], "skipped": [], "samples": {}, "notes": {}}
    bar = tqdm(total=len(jobs), desc="convert_bags", unit="bag", disable=not progress)
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(cfg.workers, len(jobs))) as ex:
            results = []
            for r in ex.map(_convert_star, jobs):
                results.append(r)
                bar.update()
    else:
        results = []
        for j in jobs:
            results.append(convert_one(*j))
            bar.update()
    bar.close()
    for r in results:
        if r["status"] == "skipped":
            report["skipped"].append({"bag": r["bag"], "reason": r["reason"]})
            continue
        report[r["status"]].append(r["bag"])
        for k, n in r.get("samples", {}).items():
            report["samples"][k] = report["samples"].get(k, 0) + n
        if r.get("notes"):
            report["notes"][r["bag"]] = r["notes"]
    DatasetWriter(out, cfg.kinds, cfg.seed).finalize({"report": "report.json"})
    atomic_write_json(out / "report.json", report)
    return report


def print_report(report: dict[str, object]) -> int:
    """One summary line, one line per skipped bag and per warning; the exit code (2 when a bag was skipped)."""
    conv, done, skipped = report["converted"], report["already_converted"], report["skipped"]
    print(f"converted {len(conv)}, already converted {len(done)}, skipped {len(skipped)}; samples {report['samples']}")  # type: ignore[arg-type]
    for s in skipped:  # type: ignore[attr-defined]
        print(f"  SKIPPED {s['bag']}: {s['reason']}", file=sys.stderr)
    for bag, notes in report["notes"].items():  # type: ignore[attr-defined]
        for k, v in notes.items():
            if k != "operator_success":
                print(f"  WARNING {bag}: {k}: {v}", file=sys.stderr)
    return 2 if skipped else 0
