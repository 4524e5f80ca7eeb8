"""Read a dataset — this package's folders, LLaVA JSON files, LLaRA's released data — validated, whole.

:func:`record_files` says where a dataset's records live (one answer for the reader and the lazy index);
:func:`read_dataset` reads them into memory; LLaRA's released files are read as they are downloaded (their
``<image0>`` tag and missing task kinds are normalized in memory, the file is never changed).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llara_core.datasets.records import DatasetError, read_jsonl, validate_content, validate_record
from llara_core.language.prompts import IMAGE_TOKEN, PromptStyle, parse_llara_prompt


def record_files(given: Path, addressable: bool = False) -> Path | list[Path]:
    """Where a dataset's records are — the one answer for :func:`read_dataset` and the training index.

    A file given: itself (a ``.jsonl`` file as a one-shard list). A folder: its ``data.json`` (a JSON list, what
    LLaVA trainers read), else its JSONL shards (``*.jsonl``, else ``shards/*.jsonl``). ``addressable`` (the
    lazy index) prefers the shards when there are any: ``data.json`` is assembled from them by the writer, and
    only JSONL lines can be read one by one. DatasetError when the folder holds neither.
    """
    if given.is_file():
        return [given] if given.suffix == ".jsonl" else given
    shards = sorted(given.glob("*.jsonl")) or sorted((given / "shards").glob("*.jsonl"))
    data = given / "data.json"
    if data.is_file() and not (addressable and shards):
        return data
    if shards:
        return shards
    raise DatasetError(f"{given} holds neither data.json nor *.jsonl shards")


def read_json_list(data: Path) -> list[Any]:
    """A JSON file holding a list of records (DatasetError naming the line of a syntax error)."""
    try:
        records = json.loads(data.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{data}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc
    if not isinstance(records, list):
        raise DatasetError(f"{data} must hold a JSON list of records")
    return records


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


def split_dataset_spec(spec: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """``PATH`` or ``PATH=IMAGE_ROOT`` (a released LLaVA JSON file and the folder its image paths start from)."""
    text = str(spec)
    path, sep, images = text.partition("=")
    return Path(path), (Path(images) if sep and images else None)


def existing_specs(specs: Sequence[str]) -> list[str]:
    """Dataset specs (``PATH`` or ``FILE.json=IMAGE_ROOT``) with ``~`` and ``$VARS`` expanded in both parts;
    UsageError naming the first part that does not exist (before any training starts)."""
    from llara_core.fileio import existing_path

    out = []
    for spec in specs:
        path, images = split_dataset_spec(spec)
        parts = [
            existing_path(str(p), what) for p, what in ((path, "dataset"), (images, "image root")) if p is not None
        ]
        out.append("=".join(map(str, parts)))
    return out


def released_record(rec: Any) -> Any:
    """A record of LLaRA's released data as this package reads it (the file itself is never changed).

    LLaRA's tokenizer reads ``<image0>`` as the observation (the same id as
    ``<image>``); its records carry no task kind, so inBC/D-inBC records are
    recognized by their prompt (:func:`~llara_core.language.prompts.parse_llara_prompt`).
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
    base = Path(image_root) if image_root is not None else (given.parent if given.is_file() else given)
    where = record_files(given)
    records = read_json_list(where) if isinstance(where, Path) else [r for s in where for r in read_jsonl(s)]
    if not (given / "manifest.json").is_file():  # not written by this package: maybe LLaRA's released data
        records = [released_record(r) for r in records]
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
