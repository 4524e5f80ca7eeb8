"""LLaVA-format records -> model inputs with the loss on the assistant's tokens only.

A record's human turn is rendered with the *processor's* chat template (the
same call the runtime makes at inference), so training and inference see the
same token sequence up to ``ASSISTANT:``; the answer is tokenized on its own
and appended with ``</s>``. Labels are ``-100`` over the prompt (image tokens
included), so only the answer is learned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llara_core.datasets.mixing import kinds_of, record_meta
from llara_core.language.prompts import IMAGE_TOKEN

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
