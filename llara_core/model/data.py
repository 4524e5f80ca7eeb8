"""LLaVA-format records -> model inputs with the loss on the assistant's tokens only.

A record's human turn is rendered with the *processor's* chat template (the
same call the runtime makes at inference), so training and inference see the
same token sequence up to ``ASSISTANT:``; the answer is tokenized on its own
and appended with ``</s>``. Labels are ``-100`` over the prompt (image tokens
included), so only the answer is learned.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llara_core.prompts import IMAGE_TOKEN

IGNORE_INDEX = -100


def user_messages(question: str, image_token: str = IMAGE_TOKEN) -> list[dict[str, Any]]:
    """A LLaVA human turn (``<image>\\n…``) as a chat message with an image part and a text part."""
    text = question.replace(image_token, "").lstrip("\n")
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def prompt_text(processor: Any, question: str) -> str:
    return processor.apply_chat_template(user_messages(question), add_generation_prompt=True, tokenize=False)


def encode_example(processor: Any, image: Any, question: str, answer: str) -> dict[str, Any]:
    """One training example: input_ids, attention_mask, pixel_values, labels (prompt masked)."""
    enc = processor(images=image, text=prompt_text(processor, question), return_tensors="pt")
    prompt_ids = enc["input_ids"][0].tolist()
    tok = processor.tokenizer
    answer_ids = tok(" " + answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return {
        "input_ids": prompt_ids + answer_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
        "pixel_values": enc["pixel_values"][0],
    }


def parse_mix(text: str | None) -> dict[str, float] | None:
    """``"inbc=1,localization=0.5"`` -> ``{"inbc": 1.0, "localization": 0.5}`` (a bare kind means 1); None if empty.

    Raises ValueError for a kind that is not a task kind.
    """
    from llara_core.config import parse_mapping
    from llara_core.conversations import check_kinds

    if not text:
        return None
    out = parse_mapping(text)
    check_kinds(list(out))
    return out


def record_meta(records: Sequence[dict[str, Any]]) -> tuple[Any, Any, list[str]]:
    """(episode key, task-kind code per record, kind names by code) without reading lazy records from disk."""
    from llara_core.conversations import LazyRecords, record_episode

    if isinstance(records, LazyRecords):  # numpy arrays: a few bytes a record
        return records.episode_codes(), records.task_codes(), list(records.kinds)
    kinds: dict[str, int] = {}
    codes = [kinds.setdefault(r.get("task", "unknown"), len(kinds)) for r in records]
    return [record_episode(r["id"]) for r in records], codes, list(kinds)


def take(records: Sequence[dict[str, Any]], positions: Any) -> Any:
    """The records at these positions: a lazy view of lazy records, a list of a list."""
    from llara_core.conversations import LazyRecords

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


class ConversationDataset:
    """A torch-style dataset over records of one or more dataset folders; images load lazily.

    With ``cache_mb`` > 0, encoded examples are kept in memory until that many
    MB of pixels are held, one pixel tensor per image file (the inBC, D-inBC and
    localization records of a frame share it): a small model trained for many
    epochs otherwise spends ~15 % of every step decoding and resizing the same
    PNGs again. Large datasets simply outgrow the budget and load lazily.
    """

    def __init__(
        self, records: Sequence[dict[str, Any]], roots: Sequence[Path], processor: Any, cache_mb: float = 0
    ) -> None:
        self.records = records if not isinstance(records, list) else list(records)  # lazy records stay lazy
        self.roots = list(roots)
        self.processor = processor
        self.cache_bytes = cache_mb * 1e6
        self._examples: dict[int, dict[str, Any]] = {}
        self._pixels: dict[Path, Any] = {}
        self._held = 0

    def __len__(self) -> int:
        return len(self.records)

    def counts(self) -> dict[str, int]:
        import numpy as np

        _, codes, names = record_meta(self.records)
        if isinstance(codes, np.ndarray):  # lazy records: counted from the index
            return {names[c]: int(n) for c, n in enumerate(np.bincount(codes, minlength=len(names))) if n}
        return dict(Counter(kinds_of(self.records)))

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        if i in self._examples:
            return self._examples[i]
        rec = self.records[i]
        root = self.roots[rec["_root"]] if "_root" in rec else self.roots[0]
        path = root / rec["image"]
        with Image.open(path) as im:
            image = im.convert("RGB")
        conv = rec["conversations"]
        example = encode_example(self.processor, image, conv[0]["value"], conv[1]["value"])
        if path in self._pixels:
            example["pixel_values"] = self._pixels[path]
            self._examples[i] = example
        elif self._held + example["pixel_values"].nbytes <= self.cache_bytes:
            self._pixels[path] = example["pixel_values"]
            self._held += example["pixel_values"].nbytes
            self._examples[i] = example
        return example


def collate(batch: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch (training; generation pads on the left in the runtime)."""
    import torch

    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[i, :k] = torch.tensor(b["input_ids"])
        labels[i, :k] = torch.tensor(b["labels"])
        mask[i, :k] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "pixel_values": torch.stack([b["pixel_values"] for b in batch]),
    }
