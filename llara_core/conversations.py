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

import hashlib
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


def _stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process (Python's hash() is salted per process; the split of
    records into training and validation, done by every DDP rank, must agree)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


class LazyRecords(Sequence[dict[str, Any]]):
    """Records of several datasets, read from disk when asked for: what training holds per record is 24 bytes.

    A JSONL record is addressed by its file and byte offset; per record only
    the offset, the source, the task-kind code and the episode code stay in
    memory (numpy arrays), so memory does not grow with the record count the
    way a list of dicts does (~1.5 KB each). JSON *list* files (a released
    dataset as downloaded) cannot be addressed by offset and are held as a
    list; convert large ones to JSONL. Why not Hugging Face ``datasets``: it
    would copy every dataset into an Arrow cache and add pyarrow, while the
    JSONL shards this package writes are already line-addressable.
    ``records[i]`` is the record as :func:`read_dataset` returns it, plus
    ``_root`` (its dataset's index) and an id made unique across datasets.
    """

    def __init__(self) -> None:
        import numpy as np

        self.files: list[Path] = []
        self.lists: list[list[dict[str, Any]]] = []
        self.kinds: list[str] = []
        self._kind_code: dict[str, int] = {}
        self._cols: dict[str, Any] = self._empty_columns()
        self.arrays: dict[str, Any] = {}
        self.prefixes: list[str] = []
        self.released: list[bool] = []
        self.styles: list[PromptStyle] = []  # per dataset: its manifest's, or LLaRA's when its prompts are LLaRA's
        self.positions: Any = np.zeros(0, np.int64)

    # -- building --------------------------------------------------------------------------------
    @staticmethod
    def _empty_columns() -> dict[str, Any]:
        """Typed arrays while indexing: 8 bytes or less per entry, no Python int objects (1M records: ~27 MB)."""
        import array

        return {k: array.array(t) for k, t in (("src", "i"), ("key", "q"), ("kind", "h"), ("episode", "q"),
                                                ("root", "h"))}  # fmt: skip

    def _add(self, src: int, key: int, rec: dict[str, Any], root: int) -> None:
        kind = str(rec.get("task", "unknown"))
        c = self._cols
        c["src"].append(src)
        c["key"].append(key)
        c["kind"].append(self._kind_code.setdefault(kind, len(self._kind_code)))
        # an episode is known by a 64-bit hash of (dataset, episode id): no table that grows with the episodes;
        # a collision would only put two episodes on the same side of the train/validation split
        c["episode"].append(_stable_hash(f"{root}:{record_episode(rec['id'])}"))
        c["root"].append(root)

    def add_dataset(self, path: Path, image_root: Path | None, root: int, prefix: str) -> None:
        """Index one dataset (folder or JSON/JSONL file), validating every record as :func:`read_dataset` does."""
        given = Path(path)
        base = image_root if image_root is not None else (given.parent if given.is_file() else given)
        released = not (given / "manifest.json").is_file()
        self.prefixes.append(prefix)
        self.released.append(released)
        first = len(self._cols["src"])
        self._index_records(given, image_root, base, released, root)
        cols = self._cols
        probe = [self._stored(cols["src"][first], cols["key"][first], True)] if released and len(cols["src"]) > first \
            else []  # fmt: skip
        self.styles.append(dataset_style(given, probe))

    def _stored(self, src: int, key: int, released: bool) -> dict[str, Any]:
        """The record at (source, key) as :func:`read_dataset` gives it: an in-memory list's item (normalized
        when it was read), or the JSONL line at that byte offset (normalized here for released data)."""
        if src < 0:
            return self.lists[-src - 1][key]
        with self.files[src].open("rb") as fh:
            fh.seek(key)
            rec: dict[str, Any] = json.loads(fh.readline())
        return _released_record(rec) if released else rec

    def _index_records(self, given: Path, image_root: Path | None, base: Path, released: bool, root: int) -> None:
        import array

        if given.is_file() and given.suffix == ".jsonl":
            files = [given]
        elif given.is_file() or ((given / "data.json").is_file() and not list((given / "shards").glob("*.jsonl"))):
            records = read_dataset(given, image_root=image_root)  # a JSON list: parsed whole
            self.lists.append(records)
            src = -len(self.lists)  # negative: an in-memory list
            for i, rec in enumerate(records):
                self._add(src, i, rec, root)
            return
        else:
            files = sorted(given.glob("*.jsonl")) or sorted((given / "shards").glob("*.jsonl"))
            if not files:
                raise DatasetError(f"{given} holds neither data.json nor *.jsonl shards")
        hashes = array.array("q")
        start = len(self._cols["src"])
        for f in files:
            self.files.append(f)
            src = len(self.files) - 1
            with f.open("rb") as fh:
                offset, n = 0, 0
                for line in fh:
                    here, offset = offset, offset + len(line)
                    if not line.strip():
                        continue
                    n += 1
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{f.name} line {n}: invalid JSON ({exc.msg})") from exc
                    rec = _released_record(rec) if released else rec
                    problem = validate_record(rec, base)
                    if problem is not None:
                        rid = rec.get("id") if isinstance(rec, dict) else None
                        raise DatasetError(f"{f.name} line {n} (id={rid!r}): {problem}")
                    hashes.append(hash(rec["id"]))
                    self._add(src, here, rec, root)
        self._check_unique(hashes, start, given)

    def _check_unique(self, hashes: Any, first: int, given: Path) -> None:
        """Duplicate ids by their hashes (8 bytes a record); only records whose hash repeats are read again."""
        import numpy as np

        h = np.frombuffer(hashes, dtype=np.int64)
        ordered = np.sort(h)  # one copy; equal neighbours are the repeated hashes
        repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
        del ordered
        if not repeated:
            return
        seen: set[str] = set()
        for k in np.flatnonzero(np.isin(h, list(repeated))).tolist():
            rid = self._stored(self._cols["src"][first + k], self._cols["key"][first + k], False)["id"]
            if rid in seen:
                raise DatasetError(f"{given}: duplicate id {rid!r}")
            seen.add(rid)

    def freeze(self) -> LazyRecords:
        """Turn the columns into compact arrays (call once, after the last add_dataset)."""
        import numpy as np

        # the typed arrays' own buffers, not copies (they stay referenced by the numpy views)
        self.arrays = {k: np.frombuffer(v, dtype=np.dtype(v.typecode)) for k, v in self._cols.items()}
        self._buffers, self._cols = self._cols, self._empty_columns()
        self.kinds = [k for k, _ in sorted(self._kind_code.items(), key=lambda kv: kv[1])]
        self.positions = np.arange(len(self.arrays["src"]), dtype=np.int64)
        return self

    # -- reading ---------------------------------------------------------------------------------
    def subset(self, positions: Any) -> LazyRecords:
        """A view of the records at these positions (of this view), repeats allowed."""
        import numpy as np

        view = object.__new__(LazyRecords)
        view.__dict__.update(self.__dict__)
        view.positions = self.positions[np.asarray(positions, dtype=np.int64)]
        return view

    def task_codes(self) -> Any:
        return self.arrays["kind"][self.positions]

    def episode_codes(self) -> Any:
        return self.arrays["episode"][self.positions]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        p = int(self.positions[i])
        root = int(self.arrays["root"][p])
        rec = self._stored(int(self.arrays["src"][p]), int(self.arrays["key"][p]), self.released[root])
        return {**rec, "_root": root, "id": f"{self.prefixes[root]}{rec['id']}"}


def index_datasets(specs: Sequence[str | os.PathLike[str]]) -> tuple[LazyRecords, list[Path]]:
    """Index several datasets (``PATH`` or ``FILE.json[=IMAGE_ROOT]``, see :func:`split_dataset_spec`); returns
    the records and each dataset's image root. Ids get a ``<n>:`` prefix when there is more than one dataset."""
    index = LazyRecords()
    roots: list[Path] = []
    for i, spec in enumerate(specs):
        path, images = split_dataset_spec(spec)
        index.add_dataset(path, images, i, f"{i}:" if len(specs) > 1 else "")
        roots.append(images or (path.parent if path.is_file() else path))
    return index.freeze(), roots
