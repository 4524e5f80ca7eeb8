"""Objects in the action language: a named box in image coordinates, and how prompts and answers write it.

``<p>name</p> at <b>(cx, cy), {w, h}</b>`` — box center and size, "image coordinates" meaning fractions of the
image's width and height in [0, 1] from its top-left corner (not OpenCV's normalized camera coordinates x/z, y/z).
D-inBC prompts, detection and localization answers and LLaRA's released data all use this form; the patterns
here are the one definition of it (the record validator, the vision pretraining and LLaRA's prompt parser use them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: A number as it may appear in a box, leniently (signs, exponents; nan/inf too, so a validator can name them).
NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)\s*"
#: ``<b>(cx, cy), {w, h}</b>``; groups: cx, cy, w, h.
BOX_RE = re.compile(rf"<b>\({NUMBER},{NUMBER}\),\s*\{{{NUMBER},{NUMBER}\}}</b>", re.IGNORECASE)
#: ``<p>name</p> at <b>(cx, cy), {w, h}</b>``; groups: name, cx, cy, w, h.
OBJECT_RE = re.compile(rf"<p>([^<]+)</p> at {BOX_RE.pattern}", re.IGNORECASE)
#: ``<p>name</p>`` anywhere (a named object, with or without its box); group: name.
OBJECT_NAME_RE = re.compile(r"<p>([^<]+)</p>")


@dataclass(frozen=True)
class ObjectBox:
    """An object's axis-aligned box in image coordinates (fractions of width and height in [0, 1]): center + size."""

    name: str
    cx: float
    cy: float
    w: float
    h: float

    def __post_init__(self) -> None:
        vals = (self.cx, self.cy, self.w, self.h)
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"box of {self.name!r} has non-finite values {vals}")
        if self.w < 0 or self.h < 0:
            raise ValueError(f"box of {self.name!r} has negative size {self.w}x{self.h}")
        if not self.name or any(c in self.name for c in "<>\n"):
            raise ValueError(f"object name {self.name!r} must be non-empty and free of '<', '>' and newlines")

    @property
    def center(self) -> tuple[float, float]:
        return (self.cx, self.cy)

    def contains(self, xy: tuple[float, float]) -> bool:
        return abs(xy[0] - self.cx) <= self.w / 2 and abs(xy[1] - self.cy) <= self.h / 2

    @classmethod
    def from_corners(cls, name: str, x0: float, y0: float, x1: float, y1: float) -> ObjectBox:
        """Box from corner image coordinates (min, max; fractions in [0, 1]), clipped to the image."""
        x0, x1 = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
        y0, y1 = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
        return cls(name, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def object_at(boxes: Sequence[ObjectBox], xy: tuple[float, float]) -> str | None:
    """The name of the object under an image point: the smallest box holding it (a block on a pad is the block)."""
    inside = [b for b in boxes if b.contains(xy)]
    return min(inside, key=lambda b: (b.w * b.h, b.name)).name if inside else None


def number3(v: float) -> str:
    """A coordinate as every prompt and answer writes it: 3 decimals, no negative zero."""
    return f"{round(v, 3) + 0.0:.3f}"


def format_box(box: ObjectBox) -> str:
    """``<b>(cx, cy), {w, h}</b>`` with 3 decimals."""
    return f"<b>({number3(box.cx)}, {number3(box.cy)}), {{{number3(box.w)}, {number3(box.h)}}}</b>"


def describe_object(box: ObjectBox) -> str:
    """``<p>name</p> at <b>(cx, cy), {w, h}</b>`` — how D-inBC and detection answers name an object."""
    return f"<p>{box.name}</p> at {format_box(box)}"


def parse_objects(text: str) -> list[ObjectBox]:
    """The valid ``<p>name</p> at <b>…</b>`` objects of a text, in order (a box with non-finite or negative
    values, or a bad name, is left out: it names no object)."""
    out = []
    for m in OBJECT_RE.finditer(text):
        try:
            out.append(ObjectBox(m[1], *(float(m[k]) for k in range(2, 6))))
        except ValueError:
            continue
    return out
