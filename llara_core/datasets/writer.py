"""Episodes -> a dataset folder, resumably and atomically.

A dataset folder (DESIGN §3)::

    data.json          list of records, what LLaVA/LLaRA trainers read
    images/<episode>/<frame>.png
    manifest.json      sources, counts per task kind, generator version, seed, prompt style, skipped kinds
    shards/<episode>.jsonl, shards/<episode>.meta.json   one pair per converted episode

Records are written per episode into a shard (images first, then the shard with an atomic rename), and
``data.json`` is assembled from the shards by :meth:`DatasetWriter.finalize`. That makes conversion resumable —
a shard that exists is a finished episode — and a killed run never leaves half a record.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from llara_core.datasets.episodes import Episode
from llara_core.datasets.records import GENERATOR, GENERATOR_VERSION, TASK_KINDS, check_kinds, make_record, read_jsonl
from llara_core.datasets.samples import episode_samples
from llara_core.fileio import atomic_write_bytes, atomic_write_json
from llara_core.images import encode_png
from llara_core.language.prompts import PromptStyle

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


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
            return dict(Counter(r["task"] for r in read_jsonl(self._shard(eid))))
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
            records.extend(read_jsonl(shard))
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


def write_dataset(
    root: str | os.PathLike[str], episodes: Iterable[Episode], kinds: Sequence[str] = TASK_KINDS, seed: int = 0
) -> Path:
    """Convenience: write every episode and finalize. Returns the path of ``data.json``."""
    writer = DatasetWriter(root, kinds, seed)
    for ep in episodes:
        writer.add_episode(ep)
    return writer.finalize()
