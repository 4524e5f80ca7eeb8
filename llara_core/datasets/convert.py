"""Bags -> training conversations, bag by bag: a bad bag is reported and skipped, the rest converts.

One function serves ``llara convert-bags`` and the ``convert_bags`` ROS node.
The dataset folder is resumable (see :mod:`llara_core.datasets.conversations`): a bag
whose episode already has a shard is skipped, so re-running after a crash or
with more bags converts only what is new, and a killed run leaves no
half-written record. ``report.json`` records, for every bag, what was produced
or why it was skipped. With ``workers > 1`` bags are converted in parallel
processes (each writes its own shards; the parent assembles ``data.json``).

Configuration (YAML, ``--config``; every key is also a flag and a node parameter)::

    kinds: [inbc, d_inbc, localization]      # default: all eight
    workers: 2
    seed: 0
    bag:                                       # llara_core.datasets.bags.BagOptions
      topics: {image: /camera/color/image_raw, ee_pose: /ee_pose, gripper: /gripper_closed}
      camera_pose: [1.0, 0.0, 0.7, 0.0, 0.0, 0.0, 1.0]
      instruction: "put the block in the bowl" # for bags without a task topic/sidecar
      urdf: ../urdf/llara_arm.urdf             # relative to the YAML file
      gripper_joint: finger_left_joint
      gripper_threshold: 0.026
      gripper_hysteresis: 0.004
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llara_core.config import check_choices, load_yaml, setting, to_dict
from llara_core.datasets.bags import BOXES_SIDECAR, BagError, BagOptions, read_episode_bag
from llara_core.datasets.episodes import Episode
from llara_core.datasets.records import TASK_KINDS, check_kinds
from llara_core.datasets.writer import DatasetWriter
from llara_core.errors import UsageError, one_line
from llara_core.fileio import atomic_write_json
from llara_core.language.prompts import DEFAULT_END_EFFECTOR, PromptProfileName, PromptStyle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionConfig:
    """Everything a conversion run needs besides the bag list and the output folder (``config/conversion.yaml``)."""

    kinds: tuple[str, ...] = setting(TASK_KINDS, "task kinds to generate")
    bag: BagOptions = field(default_factory=BagOptions)
    workers: int = setting(1, "parallel processes over bags (engine ray without ray_address: the CPUs Ray gets)")
    engine: Literal["local", "ray"] = setting(
        "local", "local: processes on this machine; ray: one Ray task per bag (a cluster, storage every node sees)"
    )
    ray_address: str = setting("", "Ray cluster to join (auto, ray://head:10001); empty: start Ray on this machine")
    ray_retries: int = setting(2, "times Ray re-runs a bag whose worker process died, before reporting it skipped")
    seed: int = setting(0, "seed of the prompts' paraphrases")
    prompt_profile: PromptProfileName = setting(
        "llara_ros", "prompt wording: llara_ros (this project's) or llara (LLaRA's released models', byte for byte)"
    )
    end_effector: str = setting(
        DEFAULT_END_EFFECTOR,
        "the end effector the prompts name (LLaRA's 'suction cup' by default; e.g. 'gripper'); the policy must use "
        "the same (it is stored in the manifest and copied into the trained model)",
    )
    include_failed: bool = setting(
        False, "also convert demonstrations the operator marked unsuccessful (behaviour cloning learns from successes)"
    )

    def __post_init__(self) -> None:
        check_kinds(self.kinds)
        PromptStyle(self.prompt_profile, self.end_effector)  # validates the profile and the phrase
        check_choices(self)
        if self.workers < 1 or self.ray_retries < 0:
            raise ValueError(f"workers must be >= 1 and ray_retries >= 0, got {self.workers}, {self.ray_retries}")

    @property
    def style(self) -> PromptStyle:
        """The prompts' wording (stored in the manifest)."""
        return PromptStyle(self.prompt_profile, self.end_effector)

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
    force: bool = setting(False, "discard a dataset converted with other settings and convert again")

    def __post_init__(self) -> None:
        if not self.bags or not self.out:
            raise ValueError("set the bags to convert and 'out', the dataset folder")


def expand_bags(paths: Sequence[str | Path]) -> list[Path]:
    """Bag folders; a folder without metadata.yaml or storage files is taken as a folder of bags."""
    out: list[Path] = []
    for p in map(Path, paths):
        try:
            is_bag = (p / "metadata.yaml").is_file() or any(p.glob("*.mcap")) or any(p.glob("*.db3"))
            out.extend([p] if is_bag or not p.is_dir() else sorted(c for c in p.iterdir() if c.is_dir()))
        except OSError:  # unreadable: taken as one bag, so that its conversion reports why (never a crash here)
            out.append(p)
    return out


def episode_id_for(bag: Path) -> str:
    """A file-name-safe, stable episode id from the bag folder's name."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", bag.name).lstrip("._-") or "episode"


def convert_one(bag: Path, out: Path, config: ConversionConfig) -> dict[str, Any]:
    """Convert one bag into its shard; returns ``{"bag", "status", "samples" | "reason", "notes"}``.

    Whatever one bag raises — opening, recovering, reading, decoding, converting
    — is caught here, at the per-bag boundary, and reported with its type and
    message: one bad bag never stops the others.
    """
    eid = episode_id_for(bag)
    try:
        writer = DatasetWriter(out, config.kinds, config.seed, config.style)
        if writer.has_episode(eid):
            return {"bag": str(bag), "status": "already_converted"}
        ep = read_episode_bag(bag, config.bag, episode_id=eid)
        if ep.metadata.get("operator_success") is False and not config.include_failed:
            why = "the operator marked this demonstration unsuccessful; set include_failed to convert it anyway"
            return {"bag": str(bag), "status": "excluded", "reason": why}
        check_grasps(ep, config.bag)
        counts = writer.add_episode(ep, source=str(bag))
    except Exception as exc:  # the per-bag boundary (see the docstring)
        log.debug("bag %s skipped", bag, exc_info=True)
        reason = one_line(exc).replace(f"{bag}/", "").replace(str(bag), "the bag")  # the report names it once
        return {"bag": str(bag), "status": "skipped", "reason": reason, "error_type": type(exc).__name__}
    notes: dict[str, Any] = {
        k: ep.metadata[k] for k in ("truncated", "recovered_messages", "operator_success") if k in ep.metadata
    }
    missing = [k for k in config.kinds if k not in counts]
    if missing:  # e.g. D-inBC without detections: skipped, never invented
        notes["kinds_without_samples"] = missing
        notes["why"] = missing_kinds_reason(ep, config.bag)
    return {"bag": str(bag), "status": "converted", "samples": counts, "notes": notes}


def check_grasps(ep: Episode, opt: BagOptions) -> None:
    """BagError when the episode has no pick/place step, saying what the gripper signal did and what to set."""
    if ep.steps():
        return
    signal = ep.metadata.get("gripper_signal", "the gripper signal")
    rng = ep.metadata.get("gripper_range")
    closes = sum(1 for a, b in zip(ep.states, ep.states[1:], strict=False) if b.gripper_closed and not a.gripper_closed)
    if rng is not None and opt.gripper_threshold is not None:
        lo, hi = rng
        where = "outside it" if not lo <= opt.gripper_threshold <= hi else "inside it"
        detail = f"{signal} ranged {lo:.4g}–{hi:.4g}; 'bag.gripper_threshold' {opt.gripper_threshold:g} is {where}"
        if where == "inside it":
            detail += f" ({closes} closes; check 'bag.gripper_closed_below' and 'bag.gripper_hysteresis')"
    else:
        detail = (
            f"{signal} closed {closes} times and never opened after a close" if closes else f"{signal} never closed"
        )
    raise BagError(f"no grasp (a gripper close followed by an open): {detail}")


def missing_kinds_reason(ep: Episode, opt: BagOptions) -> str:
    """Why D-inBC / auxiliary kinds produced nothing for this episode (boxes are never invented)."""
    if not any(f.objects for f in ep.frames):
        return (f"no object boxes: the bag has no {opt.topics.detections} messages and no {BOXES_SIDECAR} "
                "(D-inBC and the auxiliary tasks need them)")  # fmt: skip
    return "object boxes present but none at a step's observation frame"


def _convert_star(args: tuple[Path, Path, ConversionConfig]) -> dict[str, Any]:
    return convert_one(*args)


#: Settings that decide how fast, not what: left out of the manifest's record of a dataset's settings.
EXECUTION_SETTINGS = ("workers", "engine", "ray_address", "ray_retries")


def settings_of(config: ConversionConfig) -> dict[str, Any]:
    """What decides a dataset's records (recorded in its manifest): the configuration without how it ran."""
    return {k: v for k, v in to_dict(config).items() if k not in EXECUTION_SETTINGS}


def run_on_ray(fn: Any, jobs: Sequence[Any], address: str = "", cpus: int = 1, retries: int = 2,
               progress: Any = None) -> list[Any]:  # fmt: skip
    """``fn(job)`` for every job as Ray tasks, results in job order; a task whose worker died ``retries`` + 1
    times gives ``{"status": "skipped", ...}`` for its bag instead of ending the run.

    Ray is the scheduler (retries of dead workers, placement on a cluster); this
    function only submits and collects. Joins ``address`` when given, else starts
    Ray on this machine with ``cpus`` CPUs (and stops it again).
    """
    try:
        import ray
    except ImportError as exc:
        raise UsageError("engine ray needs Ray: pip install -r requirements-scale.txt (ray>=2.9)") from exc
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = {"address": address} if address else {"num_cpus": cpus, "include_dashboard": False}
        ray.init(log_to_driver=False, configure_logging=False, **kw)
    try:
        task = ray.remote(num_cpus=1, max_retries=retries)(fn)  # retried only when the worker process dies
        refs = [task.remote(job) for job in jobs]
        out = []
        for job, ref in zip(jobs, refs, strict=True):
            try:
                out.append(ray.get(ref))
            except Exception as exc:  # WorkerCrashedError / RayTaskError after the retries: this bag only
                bag = str(job[0]) if isinstance(job, tuple) else str(job)
                cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps what the task raised
                why = re.sub(r"\x1b\[[0-9;]*m", "", one_line(cause, 200))  # Ray colours its messages
                out.append({"bag": bag, "status": "skipped", "error_type": type(cause).__name__,
                            "reason": f"its Ray task failed ({retries + 1} attempts when the worker died): {why}"})  # fmt: skip
            if progress is not None:
                progress.update()
        return out
    finally:
        if started:
            ray.shutdown()


def check_settings(out: Path, config: ConversionConfig, force: bool) -> None:
    """Refuse to add to a dataset converted with other settings; with ``force``, empty it first."""
    manifest = out / "manifest.json"
    if not manifest.is_file():
        return
    try:
        before = json.loads(manifest.read_text()).get("conversion")
    except (OSError, json.JSONDecodeError):
        before = None
    now = settings_of(config)
    if before is None or before == now:
        return
    if not force:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise UsageError(
            f"{out} was converted with other settings (changed: {', '.join(changed)}); its episodes would not be "
            "converted again. Convert into a new out folder, or pass force to discard the dataset and reconvert."
        )
    for sub in ("shards", "images"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for f in ("data.json", "manifest.json", "report.json"):
        (out / f).unlink(missing_ok=True)


def convert_bags(
    bags: Sequence[str | Path],
    out: str | Path,
    config: ConversionConfig | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Convert every bag; returns (and writes as ``report.json``) the summary.

    ``report["skipped"]`` lists ``{"bag", "reason", "error_type"}`` for every bag
    that produced nothing because of an error (callers exit 2 when it is not
    empty); ``report["excluded"]`` the demonstrations the operator marked
    unsuccessful. The manifest and report are written even when every bag fails.
    A dataset converted earlier with other settings is refused (UsageError)
    unless ``force``, which discards it and converts again.
    """
    from tqdm import tqdm

    cfg = config or ConversionConfig()
    out = Path(out)
    check_settings(out, cfg, force)
    DatasetWriter(out, cfg.kinds, cfg.seed, cfg.style)  # creates the folder; validates kinds
    jobs = [(Path(b).absolute(), out.absolute(), cfg) for b in bags]  # absolute: Ray workers have their own cwd
    report: dict[str, Any] = {"converted": [], "already_converted": [], "skipped": [], "excluded": [],
                              "samples": {}, "notes": {}}  # fmt: skip
    bar = tqdm(total=len(jobs), desc="convert_bags", unit="bag", disable=not progress)
    results = []
    if cfg.engine == "ray":
        results = run_on_ray(_convert_star, jobs, cfg.ray_address, cfg.workers, cfg.ray_retries, bar)
    elif cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(cfg.workers, len(jobs))) as ex:
            for r in ex.map(_convert_star, jobs):
                results.append(r)
                bar.update()
    else:
        for j in jobs:
            results.append(convert_one(*j))
            bar.update()
    bar.close()
    for r in results:
        if r["status"] in ("skipped", "excluded"):
            report[r["status"]].append({k: r[k] for k in ("bag", "reason", "error_type") if k in r})
            continue
        report[r["status"]].append(r["bag"])
        for k, n in r.get("samples", {}).items():
            report["samples"][k] = report["samples"].get(k, 0) + n
        if r.get("notes"):
            report["notes"][r["bag"]] = r["notes"]
    DatasetWriter(out, cfg.kinds, cfg.seed, cfg.style).finalize(
        {"report": "report.json", "conversion": settings_of(cfg)}
    )
    atomic_write_json(out / "report.json", report)
    return report


def print_report(report: dict[str, object]) -> int:
    """One summary line, one line per skipped bag and per warning; the exit code (2 when a bag was skipped)."""
    conv, done, skipped = report["converted"], report["already_converted"], report["skipped"]
    excluded = report.get("excluded") or []
    print(
        f"converted {len(conv)}, already converted {len(done)}, skipped {len(skipped)}, "  # type: ignore[arg-type]
        f"excluded {len(excluded)}; samples {report['samples']}"  # type: ignore[arg-type]
    )
    for s in skipped:  # type: ignore[attr-defined]
        print(f"  SKIPPED {s['bag']}: {s['reason']}", file=sys.stderr)
    for s in excluded:  # type: ignore[attr-defined]
        print(f"  EXCLUDED {s['bag']}: {s['reason']}", file=sys.stderr)
    for bag, notes in report["notes"].items():  # type: ignore[attr-defined]
        if "kinds_without_samples" in notes:
            kinds = ", ".join(notes["kinds_without_samples"])
            print(f"  WARNING {bag}: no {kinds} samples: {notes.get('why', '')}", file=sys.stderr)
        for k in ("truncated", "recovered_messages"):
            if k in notes:
                print(f"  WARNING {bag}: {k.replace('_', ' ')}: {notes[k]}", file=sys.stderr)
    return 2 if skipped else 0


def format_inspection(result: dict[str, Any]) -> str:
    """:func:`inspect_bag`'s result as the text ``llara inspect-bag`` prints: one section per key, then the
    verdict (converts: steps and samples; or the reason)."""
    lines: list[str] = []
    for key, value in result.items():
        if key == "verdict":
            continue
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines += [f"{key}:", *("  " + "  ".join(str(v) for v in row.values()) for row in value)]
        elif isinstance(value, (list, dict)) and value:
            lines.append(f"{key}:")
            for item in value.items() if isinstance(value, dict) else value:
                lines.append(f"  {item[0]}: {item[1]}" if isinstance(item, tuple) else f"  {item}")
        else:
            lines.append(f"{key}: {value}")
    verdict = result["verdict"]
    if verdict["converts"]:
        lines.append(f"converts: {verdict['steps']} steps, samples {verdict['samples']}")
        lines += [f"  no {kind} samples: {why}" for kind, why in verdict.get("kinds_without_samples", {}).items()]
    else:
        lines.append(f"does not convert: {verdict['reason']}")
    return "\n".join(lines)


def inspect_bag(bag: str | Path, config: ConversionConfig | None = None) -> dict[str, Any]:
    """What a user runs first on a new bag: its contents, and whether ``config`` would convert it (if not, why).

    Topics with types and counts, the transforms in /tf_static, the ranges of
    the gripper topic and of every joint (to choose ``gripper_threshold`` /
    ``gripper_joint``), the camera's intrinsics; then the converter's own read
    and checks (:func:`read_episode_bag`, :func:`check_grasps`,
    :func:`episode_samples`), so the verdict is exactly what conversion does.
    An unfinished bag is not touched (conversion would recover it in place).
    """
    from llara_core.datasets.bags import needs_recovery
    from llara_core.datasets.bags.reader import open_bag, value_ranges
    from llara_core.datasets.samples import episode_samples

    cfg = config or ConversionConfig()
    tp, path = cfg.bag.topics, Path(bag)
    out: dict[str, Any] = {"bag": str(path)}
    if needs_recovery(path):
        out["verdict"] = {"converts": None, "reason": "unfinished bag (no metadata.yaml): convert-bags recovers its "
                          "complete messages first (the originals move to unfinished/)"}  # fmt: skip
        return out
    try:
        reader = open_bag(path, cfg.bag.distro)
    except BagError as exc:
        out["verdict"] = {"converts": False, "reason": str(exc)}
        return out
    try:
        out["topics"] = [{"topic": c.topic, "type": c.msgtype, "count": c.msgcount}
                         for c in sorted(reader.connections, key=lambda c: c.topic)]  # fmt: skip
        have = {c.topic for c in reader.connections}
        tf_conns = [c for c in reader.connections if c.topic == tp.tf_static]
        edges = []
        # rosbags reads EVERY message for connections=[]: a bag without /tf_static must not get here
        for c, _, raw in reader.messages(connections=tf_conns) if tf_conns else ():
            edges += [
                f"{t.header.frame_id} -> {t.child_frame_id}" for t in reader.deserialize(raw, c.msgtype).transforms
            ]
        out["tf_static"] = sorted(set(edges))
        for topic in (tp.gripper, tp.joint_states):
            if topic in have:
                out[f"ranges {topic}"] = {
                    k: [round(a, 6), round(b, 6)] for k, (a, b) in value_ranges(reader, topic).items()
                }
        info_conns = [c for c in reader.connections if c.topic == tp.camera_info]
        for c, _, raw in reader.messages(connections=info_conns) if info_conns else ():
            m = reader.deserialize(raw, c.msgtype)
            out["camera"] = {"frame": m.header.frame_id, "size": [int(m.width), int(m.height)],
                             "fx_fy_cx_cy": [float(m.k[0]), float(m.k[4]), float(m.k[2]), float(m.k[5])],
                             "distortion_model": m.distortion_model, "D": [float(v) for v in m.d]}  # fmt: skip
            break
    except Exception as exc:  # a truncated tail: what was listed so far stands
        out["read_error"] = one_line(exc)
    finally:
        reader.close()
    try:
        ep = read_episode_bag(path, cfg.bag, episode_id=episode_id_for(path))
        check_grasps(ep, cfg.bag)
        samples, skipped = episode_samples(ep, cfg.kinds, cfg.seed, cfg.style)
    except Exception as exc:  # the same boundary as convert_one
        out["verdict"] = {"converts": False, "reason": one_line(exc)}
        return out
    counts: dict[str, int] = {}
    for smp in samples:
        counts[smp.kind] = counts.get(smp.kind, 0) + 1
    out["verdict"] = {"converts": True, "steps": len(ep.steps()), "frames": len(ep.frames), "samples": counts}
    if skipped:
        out["verdict"]["kinds_without_samples"] = {k: missing_kinds_reason(ep, cfg.bag) for k in skipped}
    return out
