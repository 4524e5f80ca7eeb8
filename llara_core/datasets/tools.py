"""What a lab runs when pooling data from several robots: ``llara dataset stats`` and ``llara dataset mix``.

Both read datasets through :class:`~llara_core.datasets.conversations.LazyRecords` (one
record in memory at a time), so they work on datasets of millions of records.
``mix`` writes a new dataset folder whose records point at the source images
through one symbolic link per source (``src0/``, ``src1/`` …): nothing is
copied, and the result is an ordinary dataset folder (JSONL shard + manifest)
that ``validate-dataset`` and ``train`` read like any other.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llara_core.datasets.index import index_datasets
from llara_core.datasets.reader import common_style
from llara_core.datasets.records import DatasetError
from llara_core.fileio import atomic_write_bytes, atomic_write_json


def dataset_stats(specs: Sequence[str | Path], tokenizer: Any = None) -> dict[str, Any]:
    """Records per kind, images, episodes, and prompt/answer lengths (tokens with ``tokenizer``, else characters)."""
    from llara_core.datasets.records import record_episode

    records, _ = index_datasets(specs)
    kinds: Counter[str] = Counter()
    images: set[tuple[int, str]] = set()
    episodes: set[str] = set()
    lengths: dict[str, list[int]] = {"question": [], "answer": []}
    for i in range(len(records)):
        rec = records[i]
        kinds[str(rec.get("task", "unknown"))] += 1
        images.add((rec["_root"], rec["image"]))
        episodes.add(record_episode(rec["id"]))
        for key, turn in (("question", 0), ("answer", 1)):
            text = rec["conversations"][turn]["value"]
            lengths[key].append(len(tokenizer(text)["input_ids"]) if tokenizer is not None else len(text))

    def pct(values: list[int], q: float) -> int:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0

    unit = "tokens" if tokenizer is not None else "characters"
    return {
        "records": len(records),
        "per_kind": dict(sorted(kinds.items())),
        "images": len(images),
        "episodes": len(episodes),
        f"lengths_in_{unit}": {
            k: {"p50": pct(v, 0.5), "p95": pct(v, 0.95), "max": max(v, default=0)} for k, v in lengths.items()
        },
    }


def mix_datasets(specs: Sequence[str | Path], out: str | Path, ratios: dict[str, float] | None = None,
                 seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """A dataset folder combining several (re-weighted per kind with ``ratios``), images linked, not copied.

    The sources must word their prompts alike (one prompt profile and end
    effector); the mix's manifest records its sources and that style.
    """
    from llara_core.datasets.mixing import mix_records

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} exists and is not empty: mix into a new folder")
    records, roots = index_datasets(specs)
    style = common_style({str(s): st for s, st in zip(specs, records.styles, strict=True)})
    chosen = mix_records(records, ratios, seed)
    out.mkdir(parents=True, exist_ok=True)
    for i, root in enumerate(roots):
        os.symlink(Path(root).resolve(), out / f"src{i}", target_is_directory=True)
    lines = []
    counts: Counter[str] = Counter()
    for k in range(len(chosen)):
        rec = dict(chosen[k])
        i = rec.pop("_root")
        rec["image"] = f"src{i}/{rec['image']}"
        rec["id"] = f"src{i}-{rec['id'].split(':', 1)[-1]}-{k:07d}"  # unique even where a ratio repeats a record
        counts[str(rec.get("task", "unknown"))] += 1
        lines.append(json.dumps(rec, ensure_ascii=False))
    atomic_write_bytes(out / "shards" / "mix.jsonl", ("\n".join(lines) + "\n").encode())
    manifest = {"generator": "llara dataset mix", "sources": [str(s) for s in specs], "ratios": ratios,
                "seed": seed, "counts": dict(sorted(counts.items())), "total": len(lines), **style.to_dict()}  # fmt: skip
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
