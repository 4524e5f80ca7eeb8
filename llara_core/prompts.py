"""Prompt templates: inBC, D-inBC, and LLaRA's six self-supervised auxiliary tasks.

Every prompt starts with ``<image>`` (LLaVA's image placeholder). Notation shared
with LLaRA's released data, so both datasets can be mixed:

- action points ``<b>(x, y)</b>``, rotations ``<r>[r]</r>`` (see :mod:`llara_core.actions`);
- objects ``<p>name</p> at <b>(cx, cy), {w, h}</b>`` — box center and size;
- 2-D offsets ``<d>(dx, dy)</d>`` and Euclidean distances ``<e>d</e>``;
- all numbers normalized to the image and written with 3 decimals.

Paraphrases are chosen by a seeded ``random.Random`` (or a fixed index) so a
dataset is reproducible from its seed. Auxiliary-task functions return
``(question, answer, frame_index)`` triples; they return nothing — never an
invented box — when the episode has no object boxes for the frames they need.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llara_core.actions import ActionKind, ActionStep, render_actions, render_step
from llara_core.episodes import Episode, ObjectBox

IMAGE_TOKEN = "<image>"

#: Requests for the next action (inBC / D-inBC). Written for this project; same intent as LLaRA's pool.
ACTION_REQUESTS: tuple[str, ...] = (
    "List out the actions needed to accomplish the task in this scene.",
    "What actions should the robot take in this scene to complete the task?",
    "Which steps does the robot need to perform the task shown here?",
    "Write down the actions that solve the task in this scene.",
    "Describe the actions required to carry out the task in this scene.",
    "What must be done in this scene to finish the task?",
    "Give the sequence of actions that completes the task in this scene.",
    "Plan the actions the robot needs for the task in this scene.",
    "How should the robot act in this scene to accomplish the task?",
    "Tell me the actions needed to perform the task in this scene.",
    "Provide the robot actions that achieve the task in this scene.",
    "Looking at this scene, what actions complete the task?",
)

#: LLaRA's end-effector wording (VIMA's suction cup): the released models were trained on it, so it stays
#: the default; a robot with fingers sets ``end_effector`` ("gripper") for conversion and policy alike.
DEFAULT_END_EFFECTOR = "suction cup"

#: The sentence that defines the action format, per action kind (``{end_effector}`` filled in by action_format).
ACTION_FORMAT: dict[ActionKind, str] = {
    "pick_place": (
        "Every action has two locations written as <b>(x, y)</b> and one rotation written as <r>[r]</r>. "
        "The first location is the image coordinate where the {end_effector} picks up the object, "
        "the second is where the object is placed. Image coordinates start at the top left corner "
        "and are normalized to the range 0 to 1. The rotation is how many degrees the object is "
        "turned clockwise, from -359 to 359."
    ),
    "sweep": (
        "Every action has two locations written as <b>(x, y)</b> and one rotation written as <r>[r]</r>. "
        "The first location is the image coordinate where the spatula starts sweeping, the second "
        "is where it stops. Image coordinates start at the top left corner and are normalized to "
        "the range 0 to 1. The rotation is how many degrees the spatula is turned clockwise, "
        "from -359 to 359."
    ),
}


def action_format(kind: ActionKind, end_effector: str = DEFAULT_END_EFFECTOR) -> str:
    """The action-format sentence of ``kind`` for this end effector (a sweep always names the spatula)."""
    if not end_effector.strip() or "\n" in end_effector:
        raise ValueError(f"end_effector must be a non-empty one-line phrase, got {end_effector!r}")
    return ACTION_FORMAT[kind].format(end_effector=end_effector.strip())


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


def _pick(pool: Sequence[str], rng: random.Random | None, index: int | None) -> str:
    if index is not None:
        return pool[index % len(pool)]
    return (rng or random.Random(0)).choice(pool)


def _num(v: float) -> str:
    return f"{round(v, 3) + 0.0:.3f}"


def format_box(box: ObjectBox) -> str:
    """``<b>(cx, cy), {w, h}</b>`` with 3 decimals."""
    return f"<b>({_num(box.cx)}, {_num(box.cy)}), {{{_num(box.w)}, {_num(box.h)}}}</b>"


def describe_object(box: ObjectBox) -> str:
    """``<p>name</p> at <b>(cx, cy), {w, h}</b>`` — how D-inBC and detection answers name an object."""
    return f"<p>{box.name}</p> at {format_box(box)}"


def ground_instruction(instruction: str, objects: Sequence[ObjectBox]) -> str:
    """D-inBC: rewrite each object the instruction mentions as ``<p>name</p> at <b>…</b>``.

    Names are matched case-insensitively on word boundaries, longest first, so
    "red block" wins over "block"; each object is described once (its first
    mention). Objects the instruction does not mention are left out, as in LLaRA.
    """
    spans: list[tuple[int, int, ObjectBox]] = []
    for box in sorted(objects, key=lambda b: -len(b.name)):
        for m in re.finditer(rf"(?<!\w){re.escape(box.name)}(?!\w)", instruction, re.IGNORECASE):
            if all(m.end() <= s or m.start() >= e for s, e, _ in spans):
                spans.append((m.start(), m.end(), box))
                break
    out, pos = [], 0
    for s, e, box in sorted(spans, key=lambda t: t[0]):
        out += [instruction[pos:s], describe_object(box)]
        pos = e
    out.append(instruction[pos:])
    return "".join(out)


def inbc_prompt(
    instruction: str,
    *,
    kind: ActionKind = "pick_place",
    history: Sequence[ActionStep] = (),
    rng: random.Random | None = None,
    request_index: int | None = None,
    end_effector: str = DEFAULT_END_EFFECTOR,
) -> str:
    """Instruction-BC prompt (also D-inBC when ``instruction`` was grounded first).

    Example::

        <image>
        <task>put the red block into the bowl</task>
        List out the actions needed to accomplish the task in this scene. Every action has two locations …
        You have finished: Step 1: Pick up the object at <b>(0.301,  0.727)</b>, rotate <r>[0]</r> degrees, …

    ``history`` (the steps already executed) re-queries the model in LLaRA's
    closed loop; it is rendered one step per line after "You have finished:".
    """
    lines = [
        IMAGE_TOKEN,
        f"<task>{instruction}</task>",
        f"{_pick(ACTION_REQUESTS, rng, request_index)} {action_format(kind, end_effector)}",
    ]
    if history:
        lines.append(f"You have finished: {render_actions(history)}")
    return "\n".join(lines)


def dinbc_prompt(
    instruction: str,
    objects: Sequence[ObjectBox],
    **kwargs: object,
) -> str:
    """D-inBC prompt: :func:`inbc_prompt` with the mentioned objects grounded by their boxes."""
    return inbc_prompt(ground_instruction(instruction, objects), **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PromptStyle:
    """How prompts are worded: the profile (this project's or LLaRA's exact one) and the end effector named.

    What a dataset was converted with is what its model must be queried with:
    stored in the dataset manifest, copied into the model folder
    (``llara_prompt.json``), read back by the policy.
    """

    profile: PromptProfile | str = "llara_ros"  # checked against PROMPT_PROFILES below (configs hand in str)
    end_effector: str = DEFAULT_END_EFFECTOR

    def __post_init__(self) -> None:
        if self.profile not in PROMPT_PROFILES:
            raise ValueError(f"prompt profile must be one of {PROMPT_PROFILES}, got {self.profile!r}")
        action_format("pick_place", self.end_effector)  # validates the phrase

    def to_dict(self) -> dict[str, str]:
        return {"prompt_profile": self.profile, "end_effector": self.end_effector}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptStyle:
        """From a manifest or ``llara_prompt.json`` (missing keys: the defaults, i.e. data from before the keys)."""
        return cls(data.get("prompt_profile") or "llara_ros", data.get("end_effector") or DEFAULT_END_EFFECTOR)


def query_prompt(
    instruction: str,
    objects: Sequence[ObjectBox] | None = None,
    history: Sequence[ActionStep] = (),
    kind: ActionKind = "pick_place",
    style: PromptStyle | None = None,
) -> str:
    """The prompt of one policy query: inBC, or D-inBC when ``objects`` are given; fixed phrasing at inference.

    Every backend (local, remote) builds its prompt here, so they ask the same
    question. The ``llara`` profile gives the exact wording LLaRA's released
    models were trained and evaluated on (request sentence 0 of their pool;
    the end effector does not apply: their sentence names the suction cup).
    """
    st = style or PromptStyle()
    if st.profile == "llara":
        task = ground_instruction(instruction, objects) if objects else instruction
        return render_llara_prompt(LlaraPrompt(task, 0, kind, tuple(history)))
    ee = st.end_effector
    if objects:
        return dinbc_prompt(instruction, objects, kind=kind, history=history, request_index=0, end_effector=ee)
    return inbc_prompt(instruction, kind=kind, history=history, request_index=0, end_effector=ee)


def action_query(
    instruction: str,
    objects: Sequence[ObjectBox] | None,
    history: Sequence[ActionStep],
    kind: ActionKind,
    style: PromptStyle,
    rng: random.Random,
) -> str:
    """A training prompt (inBC, or D-inBC with ``objects``): the request sentence drawn from the profile's pool."""
    if style.profile == "llara":
        task = ground_instruction(instruction, objects) if objects else instruction
        return render_llara_prompt(LlaraPrompt(task, rng.randrange(len(LLARA_ACTION_REQUESTS)), kind, tuple(history)))
    if objects:
        return dinbc_prompt(instruction, objects, kind=kind, history=history, rng=rng, end_effector=style.end_effector)
    return inbc_prompt(instruction, kind=kind, history=history, rng=rng, end_effector=style.end_effector)


# -- auxiliary tasks ---------------------------------------------------------------------------
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
            _q(f"{_pick(LOCALIZATION_REQUESTS, rng, None).format(object=f'<p>{b.name}</p>')} {BOX_FORMAT}"),
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
    return [QA(_q(f"{_pick(DETECTION_REQUESTS, rng, None)} {BOX_FORMAT}"), answer, 0)]


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
        q = _pick(ACTION_PREDICTION_REQUESTS, rng, None).format(after=desc)
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
            q = _pick(FUTURE_PREDICTION_REQUESTS, rng, None).format(action=render_step(act), object=f"<p>{b.name}</p>")
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
        q = _pick(SPATIAL_REQUESTS, rng, None).format(a=f"<p>{a.name}</p>", b=f"<p>{b.name}</p>")
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
            q = _pick(TEMPORAL_REQUESTS, rng, None).format(
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


# -- the ``llara`` prompt profile: LLaRA's released models, byte for byte ------------------------------------------
#: Which wording prompts use: this project's (``llara_ros``, the default for its own models) or LLaRA's (``llara``).
PromptProfile = Literal["llara_ros", "llara"]
PROMPT_PROFILES: tuple[str, ...] = ("llara_ros", "llara")

# The strings below are an interface, like a file format: they are what LLaRA's released policies saw in training
# and evaluation. Transcribed from LLaRA's public repository (github.com/LostXine/LLaRA): the request pool
# ``action_prompts`` and the format sentence of ``prepare_prompt`` in eval/vima_utils.py, the history rendering of
# ``query_bc``/``action_to_text`` in eval/eval-llara.py, and LLaVA's ``conv_vicuna_v1`` (llava/conversation.py).
# The missing space in "place the object.The image" is theirs and is kept. Pinned by tests built from the
# prompts recorded in that repository's results/*.json.
LLARA_ACTION_REQUESTS: tuple[str, ...] = (
    "Could you write down what needs to be done to complete the task on this scene?",
    "List out the actions needed to accomplish the task in this scene.",
    "What actions are necessary to perform the task on this scene?",
    "Can you describe what needs to be done on this scene to complete the task?",
    "What steps are required to perform the task shown in this scene?",
    "List the actions needed to perform the task given below.",
    "On the following scene, could you list what actions are required to perform the task?",
    "Describe what actions are needed on this scene to complete the task.",
    "What do you need to do on this scene to accomplish the task?",
    "List the actions required to perform the task given on this scene.",
    "Could you please describe the steps needed to perform the task on this scene?",
    "Write down the actions required to perform the task on this scene.",
    "Please write down the actions required to perform the task shown below.",
    "Can you explain what needs to be done to perform the task in this scene?",
    "Describe the actions required to complete the task on this scene.",
)
_LLARA_FORMAT_HEAD = (
    "Every action you take must include two locations in the format of <b>(x, y)</b> and one clockwise rotation "
    "angle in the format of <r>[r]</r>. "
)
LLARA_FORMAT: dict[ActionKind, str] = {
    "pick_place": _LLARA_FORMAT_HEAD
    + "The first location is the image coordinate where you use a suction cup to pick up the object, and the "
    "second location is where you place the object."
    "The image coordinate ranges from 0 to 1. The rotation angle indicates how many degrees you rotate the object "
    "clockwise, and it ranges from -359 to 359.",
    "sweep": _LLARA_FORMAT_HEAD
    + "The first location is the image coordinate where you start to sweep the object using a spatula, and the "
    "second location is where you stop sweeping. "
    "The image coordinate ranges from 0 to 1. The rotation angle indicates how many degrees you rotate the spatula "
    "clockwise, and it ranges from -359 to 359.",
}
#: LLaVA's ``conv_vicuna_v1`` system sentence (LLaRA trained on it: "user's", not llava_v1's "human's").
VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
#: LLaRA decodes greedily with up to this many new tokens.
LLARA_MAX_NEW_TOKENS = 256
_LLARA_HISTORY = "\nYou have finished: "
_LLARA_OBJECT = re.compile(r"<p>(.*?)</p> at <b>\((-?[\d.]+), (-?[\d.]+)\), \{(-?[\d.]+), (-?[\d.]+)\}</b>")


@dataclass(frozen=True)
class LlaraPrompt:
    """The fields of one LLaRA action query (inBC, or D-inBC when the task text holds objects).

    ``task`` is the text inside ``<task>…</task>`` (objects and ``<scene>`` blocks
    included, as LLaRA writes them); ``request_index`` indexes
    :data:`LLARA_ACTION_REQUESTS` (None: no request sentence, LLaRA's ``_no``
    prompt mode); ``history`` the executed steps ("You have finished:");
    ``image_tag`` ``<image>`` (LLaVA, this package's datasets) or ``<image0>``
    (what LLaRA's evaluation wrote; its tokenizer maps both to the observation).
    """

    task: str
    request_index: int | None = 0
    kind: ActionKind = "pick_place"
    history: tuple[ActionStep, ...] = ()
    image_tag: str = IMAGE_TOKEN

    @property
    def objects(self) -> list[ObjectBox]:
        """The ``<p>name</p> at <b>(cx, cy), {w, h}</b>`` objects of the task text, in order."""
        return [ObjectBox(m[1], float(m[2]), float(m[3]), float(m[4]), float(m[5]))
                for m in _LLARA_OBJECT.finditer(self.task)]  # fmt: skip


def render_llara_prompt(prompt: LlaraPrompt) -> str:
    """The human turn LLaRA's released models were trained and evaluated on, byte for byte."""
    lines = [prompt.image_tag, f"<task>{prompt.task}</task>"]
    if prompt.request_index is not None:
        lines.append(LLARA_ACTION_REQUESTS[prompt.request_index])
    lines.append(LLARA_FORMAT[prompt.kind])
    text = "\n".join(lines)
    if prompt.history:  # LLaRA renders executed steps without object names ("Pick up the object at …")
        text += _LLARA_HISTORY + render_actions(dataclasses.replace(s, object=None) for s in prompt.history)
    return text


def parse_llara_prompt(text: str) -> LlaraPrompt | None:
    """The fields of a LLaRA action prompt, or None when ``text`` is not one (e.g. this project's wording).

    ``render_llara_prompt(parse_llara_prompt(t)) == t`` for LLaRA's prompts (tested on its published ones).
    """
    from llara_core.actions import parse_actions

    m = re.fullmatch(r"(<image\d*>)\n<task>(.*?)</task>\n(.*)", text, flags=re.DOTALL)
    if m is None:
        return None
    tag, task, rest = m.groups()
    request: int | None = None
    for i, sentence in enumerate(LLARA_ACTION_REQUESTS):
        if rest.startswith(sentence + "\n"):
            request, rest = i, rest[len(sentence) + 1 :]
            break
    kind = next((k for k, f in LLARA_FORMAT.items() if rest.startswith(f)), None)
    if kind is None:
        return None
    rest = rest[len(LLARA_FORMAT[kind]) :]
    history: tuple[ActionStep, ...] = ()
    if rest:
        if not rest.startswith(_LLARA_HISTORY):
            return None
        parsed = parse_actions(rest[len(_LLARA_HISTORY) :])
        if not parsed.ok:
            return None
        history = tuple(parsed.steps)
    out = LlaraPrompt(task, request, kind, history, tag)
    return out if render_llara_prompt(out) == text else None
