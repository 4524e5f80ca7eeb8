"""Which records train: task-kind mixtures (LLaRA's ratios to the demonstration steps) and the train/validation
split by episode. Works on record lists and on the lazy index alike (by their kind and episode codes), so it
serves ``llara train`` and ``llara dataset mix``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any


def parse_mix(text: str | None) -> dict[str, float] | None:
    """``"inbc=1,localization=0.5"`` -> ``{"inbc": 1.0, "localization": 0.5}`` (a bare kind means 1); None if empty.

    Raises ValueError for a kind that is not a task kind.
    """
    from llara_core.config import parse_mapping
    from llara_core.datasets.records import check_kinds

    if not text:
        return None
    out = parse_mapping(text)
    check_kinds(list(out))
    return out


def record_meta(records: Sequence[dict[str, Any]]) -> tuple[Any, Any, list[str]]:
    """(episode key, task-kind code per record, kind names by code) without reading lazy records from disk."""
    from llara_core.datasets.index import LazyRecords
    from llara_core.datasets.records import record_episode

    if isinstance(records, LazyRecords):  # numpy arrays: a few bytes a record
        return records.episode_codes(), records.task_codes(), list(records.kinds)
    kinds: dict[str, int] = {}
    codes = [kinds.setdefault(r.get("task", "unknown"), len(kinds)) for r in records]
    return [record_episode(r["id"]) for r in records], codes, list(kinds)


def take(records: Sequence[dict[str, Any]], positions: Any) -> Any:
    """The records at these positions: a lazy view of lazy records, a list of a list."""
    from llara_core.datasets.index import LazyRecords

    if isinstance(records, LazyRecords):
        return records.subset(positions)
    return [records[int(i)] for i in positions]


def kinds_of(records: Sequence[dict[str, Any]]) -> list[str]:
    """The task kind of every record (lazy records: from the index, nothing read)."""
    _, codes, names = record_meta(records)
    return [names[c] for c in (codes.tolist() if hasattr(codes, "tolist") else codes)]


def mix_records(records: Sequence[dict[str, Any]], ratios: dict[str, float] | None, seed: int = 0) -> Any:
    """Subsample or repeat records per task kind: kind k gets ``ratios[k] × (number of demonstration steps)``.

    The number of steps is the count of inbc (or d_inbc) records: both have one per step.

    ``None`` keeps the dataset as it is. Kinds missing from ``ratios`` are dropped.
    """
    if not ratios:
        return list(records) if isinstance(records, list) else records
    _, codes, names = record_meta(records)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(codes.tolist() if hasattr(codes, "tolist") else codes):
        by_kind[names[c]].append(i)
    base = max(len(by_kind.get("inbc", [])), len(by_kind.get("d_inbc", []))) or len(records)
    rng = random.Random(seed)
    out: list[int] = []
    for kind, ratio in ratios.items():
        pool = by_kind.get(kind, [])
        if not pool or ratio <= 0:
            continue
        n = round(ratio * base)
        reps, rest = divmod(n, len(pool))
        out.extend(pool * reps + rng.sample(pool, rest))
    rng.shuffle(out)
    return take(records, out)


def split_by_episode(records: Sequence[dict[str, Any]], val_fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """Train/validation split by episode (the id prefix before '/'), so no episode leaks into both."""
    import numpy as np

    keys, _, _ = record_meta(records)
    episodes = sorted(np.unique(keys).tolist() if isinstance(keys, np.ndarray) else set(keys), key=str)
    rng = random.Random(seed)
    rng.shuffle(episodes)
    n_val = round(len(episodes) * val_fraction) if val_fraction > 0 else 0
    if val_fraction > 0 and len(episodes) > 1:
        n_val = max(1, min(n_val, len(episodes) - 1))
    val_eps = set(episodes[:n_val])
    if isinstance(keys, np.ndarray):  # lazy records: index arrays, no per-record Python objects
        held = np.isin(keys, np.asarray(sorted(val_eps), dtype=keys.dtype))
        return take(records, np.flatnonzero(~held)), take(records, np.flatnonzero(held))
    train = [i for i, k in enumerate(keys) if k not in val_eps]
    val = [i for i, k in enumerate(keys) if k in val_eps]
    return take(records, train), take(records, val)
