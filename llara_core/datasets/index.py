"""The training index: records of several datasets addressed on disk, a few bytes each in memory."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llara_core.datasets.reader import dataset_style, read_dataset, record_files, released_record, split_dataset_spec
from llara_core.datasets.records import DatasetError, record_episode, validate_record
from llara_core.language.prompts import PromptStyle


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
        return released_record(rec) if released else rec

    def _index_records(self, given: Path, image_root: Path | None, base: Path, released: bool, root: int) -> None:
        import array

        where = record_files(given, addressable=True)
        if isinstance(where, Path):  # a JSON list: parsed whole
            records = read_dataset(given, image_root=image_root)
            self.lists.append(records)
            src = -len(self.lists)  # negative: an in-memory list
            for i, rec in enumerate(records):
                self._add(src, i, rec, root)
            return
        files = where
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
                    rec = released_record(rec) if released else rec
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
