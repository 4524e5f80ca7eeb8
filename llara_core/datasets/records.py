"""A conversation record (LLaVA's format) and what makes one valid.

A record is ``{"id", "image", "conversations": [{"from": "human", …}, {"from": "gpt", …}], "task"}``;
``task`` (the task kind) is an extra key LLaVA ignores and the trainer uses for mixing. Record ids are
``<episode>/<kind>/<n>``. Shards hold one record per line (JSONL). Validation is structural
(:func:`validate_record`, every read) and by content per task kind (:func:`validate_content`, on request).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llara_core.datasets.auxiliary import AUX_TASKS
from llara_core.errors import LlaraError
from llara_core.language.objects import BOX_RE, NUMBER
from llara_core.language.prompts import IMAGE_TOKEN

GENERATOR = "llara_core.conversations"  # the name datasets carry in their manifest (kept: a format field)
GENERATOR_VERSION = "1"
TASK_KINDS: tuple[str, ...] = ("inbc", "d_inbc", *AUX_TASKS)


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """The task kinds as a tuple; ValueError naming the unknown ones and the valid choices."""
    unknown = sorted(set(kinds) - set(TASK_KINDS))
    if unknown:
        raise ValueError(f"unknown task kinds {unknown}; choose from {', '.join(TASK_KINDS)}")
    return tuple(kinds)


def record_episode(record_id: str) -> str:
    """The episode id of a record id (``<episode>/<kind>/<n>``): what train/validation splits group by."""
    return record_id.split("/", 1)[0]


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


_REL = re.compile(rf"<d>\({NUMBER},{NUMBER}\)</d>,\s*<e>{NUMBER}</e>", re.IGNORECASE)
_ACTION_KINDS = ("inbc", "d_inbc", "action_prediction")
_BOX_ANSWER_KINDS = ("localization", "future_prediction", "detection")


def _numbers(groups: tuple[str, ...]) -> list[float] | None:
    try:
        values = [float(g) for g in groups]
    except ValueError:
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _box_problem(text: str, where: str) -> str | None:
    for m in BOX_RE.finditer(text):
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
    from llara_core.language.actions import parse_actions

    kind = rec.get("task")
    if kind is not None and kind not in TASK_KINDS:
        return f"unknown task kind {kind!r}; known kinds: {', '.join(TASK_KINDS)}"
    question, answer = rec["conversations"][0]["value"], rec["conversations"][1]["value"]
    if kind in _ACTION_KINDS:
        res = parse_actions(answer)
        if not res.ok:
            return f"{kind} answer does not parse: {res.errors[0]}"
    if kind in _BOX_ANSWER_KINDS and not BOX_RE.search(answer):
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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path.name} line {n}: invalid JSON ({exc.msg})") from exc
    return out
