"""LLaRA's action prompts: inBC, D-inBC, and the prompt profiles that word them.

Every prompt starts with ``<image>`` (LLaVA's image placeholder). Notation shared with LLaRA's released data,
so both datasets can be mixed: action points ``<b>(x, y)</b>`` and rotations ``<r>[r]</r>``
(:mod:`~llara_core.language.actions`), objects ``<p>name</p> at <b>(cx, cy), {w, h}</b>``
(:mod:`~llara_core.language.objects`); every coordinate is an image coordinate in [0, 1] (a fraction of the
image's width or height from the top-left corner), written with 3 decimals.

A :class:`PromptProfile` is one wording of these prompts: ``llara_ros`` (this project's, the default for its
models) or ``llara`` (LLaRA's released models, byte for byte). A profile also says how long an answer may be
(``max_new_tokens``): LLaRA's multi-step answers need 256 tokens, this project's one-step answers 96. A
:class:`PromptStyle` (profile + end effector) is what a dataset was written with and its model is queried with.
Training draws the request sentence from the profile's pool with a seeded ``random.Random`` (reproducible from
the seed); inference uses its first sentence. The auxiliary tasks' questions are dataset generation and live in
:mod:`llara_core.datasets.auxiliary`.
"""

from __future__ import annotations

import abc
import dataclasses
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llara_core.language.actions import ActionKind, ActionStep, parse_actions, render_actions
from llara_core.language.objects import ObjectBox, describe_object, parse_objects

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


def pick_phrase(pool: Sequence[str], rng: random.Random | None, index: int | None) -> str:
    if index is not None:
        return pool[index % len(pool)]
    return (rng or random.Random(0)).choice(pool)


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
        f"{pick_phrase(ACTION_REQUESTS, rng, request_index)} {action_format(kind, end_effector)}",
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


# -- the ``llara`` profile's strings: LLaRA's released models, byte for byte ------------------------------------
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
_LLARA_HISTORY = "\nYou have finished: "


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
        return parse_objects(self.task)


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


# -- profiles ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptProfile(abc.ABC):
    """One wording of the action prompts, and the answer length its models need.

    ``requests`` is the pool of request sentences (training draws one per sample, inference uses the first);
    :meth:`action_prompt` words one query. Subclasses are the two profiles; a new wording is a new subclass
    registered in :data:`PROFILES`, not an ``if`` in the callers.
    """

    name: str
    max_new_tokens: int
    requests: tuple[str, ...]

    @abc.abstractmethod
    def action_prompt(self, instruction: str, objects: Sequence[ObjectBox] | None, history: Sequence[ActionStep],
                      kind: ActionKind, end_effector: str, request_index: int) -> str:  # fmt: skip
        """The human turn of one query (``<image>`` first) in this profile's wording."""


@dataclass(frozen=True)
class ProjectProfile(PromptProfile):
    """``llara_ros``: this project's wording; names the robot's end effector; one step per answer (96 tokens)."""

    def action_prompt(self, instruction: str, objects: Sequence[ObjectBox] | None, history: Sequence[ActionStep],
                      kind: ActionKind, end_effector: str, request_index: int) -> str:  # fmt: skip
        task = ground_instruction(instruction, objects) if objects else instruction
        return inbc_prompt(task, kind=kind, history=history, request_index=request_index, end_effector=end_effector)


@dataclass(frozen=True)
class LlaraProfile(PromptProfile):
    """``llara``: LLaRA's released prompts byte for byte (the end effector does not apply: their sentence names
    the suction cup); LLaRA decodes greedily with up to 256 new tokens (multi-step answers)."""

    def action_prompt(self, instruction: str, objects: Sequence[ObjectBox] | None, history: Sequence[ActionStep],
                      kind: ActionKind, end_effector: str, request_index: int) -> str:  # fmt: skip
        task = ground_instruction(instruction, objects) if objects else instruction
        return render_llara_prompt(LlaraPrompt(task, request_index, kind, tuple(history)))


#: Every profile by name (the ``prompt_profile`` setting of conversion, training, the policy node).
PROFILES: dict[str, PromptProfile] = {
    p.name: p
    for p in (ProjectProfile("llara_ros", 96, ACTION_REQUESTS), LlaraProfile("llara", 256, LLARA_ACTION_REQUESTS))
}
PROMPT_PROFILES: tuple[str, ...] = tuple(PROFILES)
#: The profile names as a type, for configuration fields.
PromptProfileName = Literal["llara_ros", "llara"]


@dataclass(frozen=True)
class PromptStyle:
    """How prompts are worded: the profile (this project's or LLaRA's exact one) and the end effector named.

    What a dataset was converted with is what its model must be queried with:
    stored in the dataset manifest, copied into the model folder
    (``llara_prompt.json``, :mod:`llara_core.model.folder`), read back by the policy.
    """

    profile: str = "llara_ros"  # a PROFILES name (configs hand in str)
    end_effector: str = DEFAULT_END_EFFECTOR

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"prompt profile must be one of {PROMPT_PROFILES}, got {self.profile!r}")
        action_format("pick_place", self.end_effector)  # validates the phrase

    @property
    def wording(self) -> PromptProfile:
        return PROFILES[self.profile]

    @property
    def max_new_tokens(self) -> int:
        """The answer length this profile's models need (the default of every backend)."""
        return self.wording.max_new_tokens

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
    """The prompt of one policy query: inBC, or D-inBC when ``objects`` are given; the profile's first request.

    Every backend (local, remote) builds its prompt here, so they ask the same question.
    """
    st = style or PromptStyle()
    return st.wording.action_prompt(instruction, objects, history, kind, st.end_effector, 0)


def action_query(
    instruction: str,
    objects: Sequence[ObjectBox] | None,
    history: Sequence[ActionStep],
    kind: ActionKind,
    style: PromptStyle,
    rng: random.Random,
) -> str:
    """A training prompt (inBC, or D-inBC with ``objects``): the request sentence drawn from the profile's pool."""
    pool = style.wording.requests
    return style.wording.action_prompt(
        instruction, objects, history, kind, style.end_effector, rng.randrange(len(pool))
    )
