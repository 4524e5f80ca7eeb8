"""Episodes -> LLaVA-format conversation records, and the dataset folder that holds them.

A dataset folder (DESIGN §3)::

    data.json          list of records, what LLaVA/LLaRA trainers read
    images/<episode>/<frame>.png
    manifest.json      sources, counts per task kind, generator version, seed, skipped kinds
    shards/<episode>.jsonl, shards/<episode>.meta.json   one pair per converted episode

Records are written per episode into a shard (images first, then the shard
with an atomic rename), and ``data.json`` is assembled from the shards by
:meth:`DatasetWriter.finalize`. That makes conversion resumable — a shard that
exists is a finished episode — and a killed run never leaves half a record.

A record is ``{"id", "image", "conversations": [{"from": "human", …}, {"from": "gpt", …}], "task"}``;
``task`` (the task kind) is an extra key LLaVA ignores and our trainer uses for mixing.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llara_core.actions import render_step
from llara_core.episodes import Episode
from llara_core.errors import LlaraError
from llara_core.fileio import atomic_write_bytes, atomic_write_json
from llara_core.images import encode_png
from llara_core.prompts import (
    AUX_TASKS,
    IMAGE_TOKEN,
    PromptStyle,
    action_prediction,
    action_query,
    parse_llara_prompt,
)

GENERATOR = "llara_core.conversations"
GENERATOR_VERSION = "1"
TASK_KINDS: tuple[str, ...] = ("inbc", "d_inbc", *AUX_TASKS)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """The task kinds as a tuple; ValueError naming the unknown ones and the valid choices."""
    unknown = sorted(set(kinds) - set(TASK_KINDS))
    if unknown:
        raise ValueError(f"unknown task kinds {unknown}; choose from {', '.join(TASK_KINDS)}")
    return tuple(kinds)


def record_episode(record_id: str) -> str:
    """The episode id of a record id (``<episode>/<kind>/<n>``): what train/validation splits group by."""
    return record_id.split("/", 1)[0]


@dataclass(frozen=True)
class Sample:
    """One question/answer about one frame of an episode, before it becomes a record."""

    kind: str
    question: str
    answer: str
    frame_index: int


def episode_samples(
    episode: Episode, kinds: Sequence[str], seed: int = 0, style: PromptStyle | None = None
) -> tuple[list[Sample], dict[str, str]]:
    """All samples of the requested task kinds for one episode, plus ``{kind: reason}`` for kinds skipped.

    inBC/D-inBC give one sample per step: the observation before the step, the
    steps already done as history, and the next step as the answer (LLaRA's
    closed loop executes one step, then re-queries). D-inBC and the auxiliary
    tasks need object boxes; without them they are skipped with a reason.
    """
    check_kinds(kinds)
    style = style or PromptStyle()
    rng = random.Random(f"{seed}:{episode.episode_id}")
    actions = episode.action_steps()
    steps = episode.steps()
    samples: list[Sample] = []
    skipped: dict[str, str] = {}
    if not actions:
        return [], {k: "episode has no complete pick/place step (no grasp)" for k in kinds}
    for kind in kinds:
        got: list[Sample] = []
        if kind in ("inbc", "d_inbc"):
            for k, (act, st) in enumerate(zip(actions, steps, strict=True)):
                history = actions[:k]
                objs = episode.objects_at(st.obs_frame) if kind == "d_inbc" else None
                if kind == "d_inbc" and not objs:
                    continue
                q = action_query(episode.instruction, objs, history, episode.kind, style, rng)
                got.append(Sample(kind, q, render_step(act, k + 1), st.obs_frame))
        else:
            qas = (action_prediction(episode, rng, style.end_effector) if kind == "action_prediction"
                   else AUX_TASKS[kind](episode, rng))  # fmt: skip
            got = [Sample(kind, qa.question, qa.answer, qa.frame_index) for qa in qas]
        if got:
            samples.extend(got)
        else:
            skipped[kind] = "no object boxes in the episode" if kind != "inbc" else "no step"
    return samples, skipped


def make_record(record_id: str, image: str, question: str, answer: str, task: str) -> dict[str, Any]:
    """One LLaVA-format record."""
    return {
        "id": record_id,
        "image": image,
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
        "task": task,
    }


class DatasetError(LlaraError, ValueError):
    """A dataset record is invalid; ``position`` is its 0-based index in reading order."""

    def __init__(self, message: str, position: int | None = None, record_id: str | None = None) -> None:
        where = "" if position is None else f"record {position}" + (f" (id={record_id!r})" if record_id else "") + ": "
        super().__init__(where + message)
        self.position = position
        self.record_id = record_id


def validate_record(rec: Any, root: Path | None = None) -> str | None:
    """Why ``rec`` is not a valid record (None when it is). With ``root``, the image must exist."""
    if not isinstance(rec, dict):
        return f"expected an object, got {type(rec).__name__}"
    if not isinstance(rec.get("id"), str) or not rec["id"]:
        return "missing or empty 'id'"
    image = rec.get("image")
    if not isinstance(image, str) or not image:
        return "missing 'image' path"
    if os.path.isabs(image) or ".." in Path(image).parts:
        return f"image path {image!r} must be relative to the dataset folder"
    if root is not None and not (root / image).is_file():
        return f"image {image!r} does not exist"
    conv = rec.get("conversations")
    if not isinstance(conv, list) or len(conv) < 2 or len(conv) % 2:
        return "'conversations' must be a non-empty list of human/gpt pairs"
    for i, turn in enumerate(conv):
        want = "human" if i % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != want or not isinstance(turn.get("value"), str):
            return f"turn {i} must be {{'from': '{want}', 'value': str}}"
        if not turn["value"].strip():
            return f"turn {i} has an empty value"
    if sum(t["value"].count(IMAGE_TOKEN) for t in conv) != 1 or IMAGE_TOKEN not in conv[0]["value"]:
        return f"the first human turn must hold the only {IMAGE_TOKEN} token"
    return None


_N = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)\s*"  # a number (nan/inf caught below)
_BOX = re.compile(rf"<b>\({_N},{_N}\),\s*\{{{_N},{_N}\}}</b>", re.IGNORECASE)
_REL = re.compile(rf"<d>\({_N},{_N}\)</d>,\s*<e>{_N}</e>", re.IGNORECASE)
_ACTION_KINDS = ("inbc", "d_inbc", "action_prediction")
_BOX_ANSWER_KINDS = ("localization", "future_prediction", "detection")


def _numbers(groups: tuple[str, ...]) -> list[float] | None:
    try:
        values = [float(g) for g in groups]
    except ValueError:
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _box_problem(text: str, where: str) -> str | None:
    for m in _BOX.finditer(text):
        v = _numbers(m.groups())
        if v is None or not all(0.0 <= x <= 1.0 for x in v):
            return f"{where} box {m.group(0)!r} is not within the image (values in [0, 1])"
    return None


def validate_content(rec: dict[str, Any], root: Path | None = None) -> str | None:
    """Why a structurally valid record's *content* is wrong for its task kind (None when it is right).

    The task kind must be known (records without one, e.g. LLaRA's released
    data, are checked by their answer's form only); action answers must parse
    strictly; boxes must lie in the image; relations must be finite numbers;
    with ``root``, the image must open.
    """
    from llara_core.actions import parse_actions

    kind = rec.get("task")
    if kind is not None and kind not in TASK_KINDS:
        return f"unknown task kind {kind!r}; known kinds: {', '.join(TASK_KINDS)}"
    question, answer = rec["conversations"][0]["value"], rec["conversations"][1]["value"]
    if kind in _ACTION_KINDS:
        res = parse_actions(answer)
        if not res.ok:
            return f"{kind} answer does not parse: {res.errors[0]}"
    if kind in _BOX_ANSWER_KINDS and not _BOX.search(answer):
        return f"{kind} answer holds no box <b>(x, y), {{w, h}}</b>: {answer[:120]!r}"
    if kind in ("spatial_relationship", "temporal_relationship"):
        m = _REL.search(answer)
        if m is None or _numbers(m.groups()) is None:
            return f"{kind} answer holds no finite <d>(dx, dy)</d>, <e>d</e>: {answer[:120]!r}"
    problem = _box_problem(question, "question") or _box_problem(answer, "answer")
    if problem:
        return problem
    if root is not None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(root / rec["image"]) as im:
                im.verify()
        except (OSError, UnidentifiedImageError) as exc:
            return f"image {rec['image']!r} does not open: {exc}"
    return None


class DatasetWriter:
    """Write episodes into a dataset folder, resumably; see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        kinds: Sequence[str] = TASK_KINDS,
        seed: int = 0,
        style: PromptStyle | None = None,
    ) -> None:
        self.kinds = list(check_kinds(kinds))
        self.root = Path(root)
        self.seed = seed
        self.style = style or PromptStyle()
        (self.root / "shards").mkdir(parents=True, exist_ok=True)

    def _shard(self, episode_id: str) -> Path:
        return self.root / "shards" / f"{episode_id}.jsonl"

    def has_episode(self, episode_id: str) -> bool:
        """True when the episode was fully written before (resume skips it)."""
        return self._shard(episode_id).is_file()

    def add_episode(self, episode: Episode, source: str | None = None) -> dict[str, int]:
        """Write one episode's images and records; returns samples per kind. Idempotent per episode id."""
        eid = episode.episode_id
        if not _SAFE_ID.match(eid):
            raise ValueError(f"episode id {eid!r} must match {_SAFE_ID.pattern} (it names files)")
        if self.has_episode(eid):
            return dict(Counter(r["task"] for r in _read_jsonl(self._shard(eid))))
        samples, skipped = episode_samples(episode, self.kinds, self.seed, self.style)
        images: dict[int, str] = {}
        for fi in sorted({s.frame_index for s in samples}):
            rel = f"images/{eid}/{fi:06d}.png"
            atomic_write_bytes(self.root / rel, encode_png(episode.frames[fi].image))
            images[fi] = rel
        records = [
            make_record(f"{eid}/{s.kind}/{n:04d}", images[s.frame_index], s.question, s.answer, s.kind)
            for n, s in enumerate(samples)
        ]
        counts = dict(Counter(s.kind for s in samples))
        meta = {"id": eid, "source": source, "instruction": episode.instruction, "samples": counts, "skipped": skipped}
        atomic_write_json(self.root / "shards" / f"{eid}.meta.json", meta)
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_bytes(self._shard(eid), body.encode())  # the commit point of this episode
        return counts

    def finalize(self, extra: dict[str, Any] | None = None) -> Path:
        """Assemble ``data.json`` and ``manifest.json`` from every finished shard; returns ``data.json``."""
        records: list[dict[str, Any]] = []
        episodes: list[dict[str, Any]] = []
        for shard in sorted((self.root / "shards").glob("*.jsonl")):
            records.extend(_read_jsonl(shard))
            meta_path = shard.with_suffix(".meta.json")
            episodes.append(json.loads(meta_path.read_text()) if meta_path.is_file() else {"id": shard.stem})
        data = self.root / "data.json"
        atomic_write_json(data, records)
        manifest = {
            "generator": GENERATOR,
            "generator_version": GENERATOR_VERSION,
            "created_unix": time.time(),
            "seed": self.seed,
            **self.style.to_dict(),  # the prompts' wording; training copies it to the model folder
            "task_kinds": self.kinds,
            "counts": dict(sorted(Counter(r.get("task", "unknown") for r in records).items())),
            "total": len(records),
            "sources": sorted({e["source"] for e in episodes if e.get("source")}),
            "episodes": episodes,
            **(extra or {}),
        }
        atomic_write_json(self.root / "manifest.json", manifest)
        return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path.name} line {n}: invalid JSON ({exc.msg})") from exc
    return out


#: Beside a trained model: the prompt settings of the data it was trained on (the policy prompts the same way).
PROMPT_SETTINGS_FILE = "llara_prompt.json"


def dataset_style(path: str | os.PathLike[str], records: Sequence[dict[str, Any]] = ()) -> PromptStyle:
    """The prompt style a dataset was written in: its manifest's, else LLaRA's when its prompts are LLaRA's."""
    manifest = Path(path) / "manifest.json"
    if manifest.is_file():
        try:
            return PromptStyle.from_dict(json.loads(manifest.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{manifest}: unreadable manifest ({exc})") from exc
    if any(r.get("prompt_profile") == "llara" for r in records):
        return PromptStyle("llara")
    return PromptStyle()


def common_style(styles: dict[str, PromptStyle]) -> PromptStyle:
    """The one style of several datasets (by name); DatasetError when they are worded differently."""
    found: dict[PromptStyle, list[str]] = {}
    for name, st in styles.items():
        found.setdefault(st, []).append(name)
    if len(found) > 1:
        listing = "; ".join(f"{st.profile}/{st.end_effector!r}: {', '.join(r)}" for st, r in found.items())
        raise DatasetError(f"the datasets word their prompts differently (different end effectors or profiles: "
                           f"{listing}); convert them with one 'prompt_profile' and 'end_effector'")  # fmt: skip
    return next(iter(found), PromptStyle())


def prompt_settings(roots: Sequence[str | os.PathLike[str]]) -> PromptStyle:
    """The prompt style shared by these dataset folders (profile, end effector), for the model folder.

    A dataset without a manifest, or from before the keys existed, used this
    project's default wording. Datasets worded differently cannot train one
    model that a policy prompts consistently: DatasetError.
    """
    return common_style({str(r): dataset_style(r) for r in roots})


def write_dataset(
    root: str | os.PathLike[str], episodes: Iterable[Episode], kinds: Sequence[str] = TASK_KINDS, seed: int = 0
) -> Path:
    """Convenience: write every episode and finalize. Returns the path of ``data.json``."""
    writer = DatasetWriter(root, kinds, seed)
    for ep in episodes:
        writer.add_episode(ep)
    return writer.finalize()


def split_dataset_spec(spec: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``PATH`` or ``PATH=IMAGE_ROOT`` (a released LLaVA JSON file and the folder its image paths start from)."""
    text = str(spec)
    path, sep, images = text.partition("=")
    return Path(path), (Path(images) if sep and images else None)


def _released_record(rec: Any) -> Any:
    """A record of LLaRA's released data as this package reads it (the file itself is never changed).

    LLaRA's tokenizer reads ``<image0>`` as the observation (the same id as
    ``<image>``); its records carry no task kind, so inBC/D-inBC records are
    recognized by their prompt (:func:`~llara_core.prompts.parse_llara_prompt`).
    """
    if not isinstance(rec, dict) or not isinstance(rec.get("conversations"), list) or not rec["conversations"]:
        return rec
    first = rec["conversations"][0]
    if not isinstance(first, dict) or not isinstance(first.get("value"), str):
        return rec
    value = first["value"]
    if IMAGE_TOKEN not in value and re.match(r"<image\d+>\n", value):
        value = IMAGE_TOKEN + value[value.index(">") + 1 :]
        rec = {**rec, "conversations": [{**first, "value": value}, *rec["conversations"][1:]]}
    if "task" not in rec:
        parsed = parse_llara_prompt(value)
        if parsed is not None:
            rec = {**rec, "task": "d_inbc" if parsed.objects else "inbc", "prompt_profile": "llara"}
    return rec


def read_dataset(
    root: str | os.PathLike[str],
    check_images: bool = True,
    check_content: bool = False,
    image_root: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Read and validate a dataset: a folder (``data.json``, else ``*.jsonl`` shards) or a LLaVA JSON file.

    A JSON file (e.g. LLaRA's released datasets, as downloaded) resolves its
    image paths against ``image_root`` (default: the file's folder). Raises
    :class:`DatasetError` naming the first bad record and its position, or a
    duplicate id — the trainer must not silently drop samples. With
    ``check_content``, each record's content is checked per task kind too
    (:func:`validate_content`; slower: it opens every image).
    """
    given = Path(root)
    is_file = given.is_file()
    base = Path(image_root) if image_root is not None else (given.parent if is_file else given)
    data = given if is_file else given / "data.json"
    if data.is_file():
        try:
            records = json.loads(data.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{data}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc
        if not isinstance(records, list):
            raise DatasetError(f"{data} must hold a JSON list of records")
    else:
        shards = sorted(given.glob("*.jsonl")) or sorted((given / "shards").glob("*.jsonl"))
        if not shards:
            raise DatasetError(f"{given} holds neither data.json nor *.jsonl shards")
        records = [r for s in shards for r in _read_jsonl(s)]
    if not (given / "manifest.json").is_file():  # not written by this package: maybe LLaRA's released data
        records = [_released_record(r) for r in records]
    seen: set[str] = set()
    for i, rec in enumerate(records):
        problem = validate_record(rec, base if check_images else None)
        if problem is None and check_content:
            problem = validate_content(rec, base if check_images else None)
        rid = rec.get("id") if isinstance(rec, dict) else None
        if problem is None and rid in seen:
            problem = "duplicate id"
        if problem is not None:
            raise DatasetError(problem, i, rid if isinstance(rid, str) else None)
        seen.add(str(rid))
    return records
