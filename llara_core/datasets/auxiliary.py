"""LLaRA's six self-supervised auxiliary tasks: questions and answers generated from an episode's object boxes.

Localization, detection, action prediction, future prediction, spatial and temporal relationships (LLaRA §3.3).
They are dataset generation, not prompting: each function turns an :class:`~llara_core.datasets.episodes.Episode`
into ``QA`` triples (question, answer, frame index), with the notation of :mod:`llara_core.language.objects`
(2-D offsets ``<d>(dx, dy)</d>`` and distances ``<e>d</e>`` besides boxes). They return nothing — never an
invented box — when the episode has no object boxes for the frames they need. Paraphrases are drawn from a seeded
``random.Random`` so a dataset is reproducible from its seed.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Literal

from llara_core.datasets.episodes import Episode
from llara_core.language.actions import ActionStep, render_step
from llara_core.language.objects import ObjectBox, describe_object, format_box
from llara_core.language.objects import number3 as _num
from llara_core.language.prompts import DEFAULT_END_EFFECTOR, IMAGE_TOKEN, action_format, pick_phrase

BOX_FORMAT = (
    "Use the format <b>(x, y), {w, h}</b>, where x and y are the center of the bounding box and "
    "w and h its width and height, normalized to 0 to 1 from the top left corner."
)

LOCALIZATION_REQUESTS: tuple[str, ...] = (
    "Where is {object} in the image?",
    "Locate {object} in the image.",
    "What is the bounding box of {object}?",
    "Give the position of {object} in this image.",
    "Find {object} in the image and report its box.",
)

DETECTION_REQUESTS: tuple[str, ...] = (
    "List every object in the image with its bounding box.",
    "Detect all objects in this image and give their boxes.",
    "Enumerate the objects you see, each with its bounding box.",
    "Which objects are in the image, and where are they?",
    "Catalog each object in the image together with its box.",
)

ACTION_PREDICTION_REQUESTS: tuple[str, ...] = (
    "After one action the objects are at: {after}. Which action was performed?",
    "One action changed this scene so that: {after}. What was the action?",
    "The scene after a single action: {after}. Describe the action that was taken.",
)

FUTURE_PREDICTION_REQUESTS: tuple[str, ...] = (
    "The robot performs this action: {action} Where will {object} be afterwards?",
    "If the robot executes: {action} Where does {object} end up?",
    "Predict the location of {object} after this action: {action}",
)

SPATIAL_REQUESTS: tuple[str, ...] = (
    "What is the spatial relationship between {a} and {b}?",
    "Where is {a} relative to {b}?",
    "Describe the position of {a} with respect to {b}.",
)

TEMPORAL_REQUESTS: tuple[str, ...] = (
    "The robot performs this action: {action} Do {a} and {b} move closer, move apart, or keep their distance?",
    "After this action: {action} How does the distance between {a} and {b} change?",
    "Consider the action: {action} Do {a} and {b} get closer or farther apart?",
)

RELATION_FORMAT = (
    "Give the center offset of the first object from the second as <d>(dx, dy)</d> and their center "
    "distance as <e>d</e>, normalized to the image."
)
TEMPORAL_FORMAT = (
    "Give the change of the center offset as <d>(dx, dy)</d> and the change of the center distance "
    "as <e>d</e>, normalized to the image."
)

#: Distance changes below this (normalized units) count as "kept their distance".
SAME_DISTANCE_TOL = 0.01


AuxTask = Literal[
    "localization",
    "detection",
    "action_prediction",
    "future_prediction",
    "spatial_relationship",
    "temporal_relationship",
]


@dataclass(frozen=True)
class QA:
    """One generated question/answer about ``frame_index`` of an episode."""

    question: str
    answer: str
    frame_index: int


def _q(text: str) -> str:
    return f"{IMAGE_TOKEN}\n{text}"


def localization(episode: Episode, rng: random.Random) -> list[QA]:
    """Where is X → its box, for every object in the first frame.

    Example: Q ``<image>\\nWhere is <p>red block</p> in the image? Use the format …``
    A ``<b>(0.412, 0.633), {0.080, 0.065}</b>``
    """
    objs = episode.objects_at(0) or []
    return [
        QA(
            _q(f"{pick_phrase(LOCALIZATION_REQUESTS, rng, None).format(object=f'<p>{b.name}</p>')} {BOX_FORMAT}"),
            format_box(b),
            0,
        )
        for b in objs
    ]


def detection(episode: Episode, rng: random.Random) -> list[QA]:
    """List all objects with boxes, in the first frame.

    Example: A ``<p>red block</p> at <b>(0.412, 0.633), {0.080, 0.065}</b>\\n<p>bowl</p> at <b>…</b>``
    (one object per line, sorted left to right).
    """
    objs = episode.objects_at(0)
    if not objs:
        return []
    answer = "\n".join(describe_object(b) for b in sorted(objs, key=lambda b: (b.cx, b.cy, b.name)))
    return [QA(_q(f"{pick_phrase(DETECTION_REQUESTS, rng, None)} {BOX_FORMAT}"), answer, 0)]


def _step_context(episode: Episode) -> list[tuple[ActionStep, list[ObjectBox], list[ObjectBox], int]]:
    """(action, boxes before, boxes after, obs frame) for steps whose frames have boxes."""
    out = []
    for act, st in zip(episode.action_steps(), episode.steps(), strict=True):
        before, after = episode.objects_at(st.obs_frame), episode.objects_at(st.end_frame)
        if before and after:
            out.append((act, before, after, st.obs_frame))
    return out


def action_prediction(episode: Episode, rng: random.Random, end_effector: str = DEFAULT_END_EFFECTOR) -> list[QA]:
    """Given the frame before a step (image) and the object boxes after it (text), which action happened?

    The second frame is given as text because LLaVA-format records carry one image.
    Example: Q ``<image>\\nAfter one action the objects are at: <p>red block</p> at <b>…</b>. Which action …``
    A ``Pick up the object at <b>(0.301,  0.727)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.500, 0.617)</b>.``
    """
    out = []
    for act, _before, after, frame in _step_context(episode):
        desc = "; ".join(describe_object(b) for b in after)
        q = pick_phrase(ACTION_PREDICTION_REQUESTS, rng, None).format(after=desc)
        out.append(QA(_q(f"{q} {action_format(act.kind, end_effector)}"), render_step(act), frame))
    return out


def future_prediction(episode: Episode, rng: random.Random) -> list[QA]:
    """Given the frame before a step and the action, where will each moved object be?

    An object "moved" when its center shifts by more than ``SAME_DISTANCE_TOL``.
    Example: Q ``<image>\\nThe robot performs this action: Pick up … Where will <p>red block</p> be afterwards? Use the format …``
    A ``<b>(0.500, 0.617), {0.080, 0.065}</b>``
    """
    out = []
    for act, before, after, frame in _step_context(episode):
        prev = {b.name: b for b in before}
        for b in after:
            p = prev.get(b.name)
            if p is None or math.dist(p.center, b.center) <= SAME_DISTANCE_TOL:
                continue
            q = pick_phrase(FUTURE_PREDICTION_REQUESTS, rng, None).format(
                action=render_step(act), object=f"<p>{b.name}</p>"
            )
            out.append(QA(_q(f"{q} {BOX_FORMAT}"), format_box(b), frame))
    return out


def relation_answer(a: ObjectBox, b: ObjectBox) -> str:
    """``<p>a</p> is left of and above <p>b</p>, <d>(dx, dy)</d>, <e>d</e>.`` with d = a − b.

    Offsets within ``SAME_DISTANCE_TOL`` on an axis are called "level with"/"aligned with".
    """
    dx, dy = a.cx - b.cx, a.cy - b.cy
    horiz = "left of" if dx < -SAME_DISTANCE_TOL else "right of" if dx > SAME_DISTANCE_TOL else "aligned with"
    vert = "above" if dy < -SAME_DISTANCE_TOL else "below" if dy > SAME_DISTANCE_TOL else "level with"
    return (
        f"<p>{a.name}</p> is {horiz} and {vert} <p>{b.name}</p>, "
        f"<d>({_num(dx)}, {_num(dy)})</d>, <e>{_num(math.hypot(dx, dy))}</e>."
    )


def spatial_relationship(episode: Episode, rng: random.Random, max_pairs: int = 6) -> list[QA]:
    """Relative position of two objects in the first frame: left/right, above/below, offset, distance.

    Example: Q ``<image>\\nWhere is <p>red block</p> relative to <p>bowl</p>? Give the center offset …``
    A ``<p>red block</p> is left of and above <p>bowl</p>, <d>(-0.120, -0.050)</d>, <e>0.130</e>.``
    """
    objs = episode.objects_at(0) or []
    pairs = list(itertools.permutations(objs, 2))
    rng.shuffle(pairs)
    out = []
    for a, b in pairs[:max_pairs]:
        q = pick_phrase(SPATIAL_REQUESTS, rng, None).format(a=f"<p>{a.name}</p>", b=f"<p>{b.name}</p>")
        out.append(QA(_q(f"{q} {RELATION_FORMAT}"), relation_answer(a, b), 0))
    return out


def temporal_relationship(episode: Episode, rng: random.Random, max_pairs: int = 3) -> list[QA]:
    """Between the frames before and after a step: did two objects move closer, apart, or keep their distance?

    Example: Q ``<image>\\nThe robot performs this action: Pick up … Do <p>red block</p> and <p>bowl</p> move closer, …``
    A ``<p>red block</p> and <p>bowl</p> move closer, <d>(0.200, 0.110)</d>, <e>-0.228</e>.``
    (``<d>`` is the change of the offset a − b, ``<e>`` the change of the center distance.)
    """
    out = []
    for act, before, after, frame in _step_context(episode):
        now = {b.name: b for b in after}
        prev = {b.name: b for b in before}
        moved = {n for n, b in now.items() if n in prev and math.dist(prev[n].center, b.center) > SAME_DISTANCE_TOL}
        pairs = [(a, b) for a, b in itertools.combinations(before, 2) if a.name in now and b.name in now]
        rng.shuffle(pairs)
        pairs.sort(key=lambda ab: not ({ab[0].name, ab[1].name} & moved))  # pairs with a moved object first
        for a0, b0 in pairs[:max_pairs]:
            a1, b1 = now[a0.name], now[b0.name]
            d0, d1 = math.dist(a0.center, b0.center), math.dist(a1.center, b1.center)
            change = d1 - d0
            verdict = (
                "move closer"
                if change < -SAME_DISTANCE_TOL
                else "move apart"
                if change > SAME_DISTANCE_TOL
                else "keep their distance"
            )
            ddx = (a1.cx - b1.cx) - (a0.cx - b0.cx)
            ddy = (a1.cy - b1.cy) - (a0.cy - b0.cy)
            q = pick_phrase(TEMPORAL_REQUESTS, rng, None).format(
                action=render_step(act), a=f"<p>{a0.name}</p>", b=f"<p>{b0.name}</p>"
            )
            ans = f"<p>{a0.name}</p> and <p>{b0.name}</p> {verdict}, <d>({_num(ddx)}, {_num(ddy)})</d>, <e>{_num(change)}</e>."
            out.append(QA(_q(f"{q} {TEMPORAL_FORMAT}"), ans, frame))
    return out


AUX_TASKS = {
    "localization": localization,
    "detection": detection,
    "action_prediction": action_prediction,
    "future_prediction": future_prediction,
    "spatial_relationship": spatial_relationship,
    "temporal_relationship": temporal_relationship,
}
