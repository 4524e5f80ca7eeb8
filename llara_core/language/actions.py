"""The LLaRA action language: typed steps, canonical rendering, and the one strict parser.

LLaRA's released models answer one line per step, e.g.::

    Step 1: Pick up the <p>red block</p> at <b>(0.301,  0.727)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.500, 0.617)</b>.
    Step 2: Sweep the <p>dice</p> at <b>(0.212,  0.480)</b>, rotate <r>[-30]</r> degrees, and stop at <b>(0.640, 0.455)</b>.

The double space after the first comma is what the released generator produced
(a ``{y: .3f}`` format spec); the renderer reproduces it byte for byte so
datasets we write can be mixed with LLaRA's, and the parser accepts any spacing.

Everything downstream (the action node that moves a real arm) trusts this module
to never guess: a value outside its range, a NaN, a missing point or a line cut
off by the token limit becomes a :class:`ParseError` for that step, never a step.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

ActionKind = Literal["pick_place", "sweep"]

#: Rotation accepted by the parser, in degrees (LLaRA/VIMA emit integers in this range).
MAX_ROTATION_DEG = 359.0
#: Decimal places of rendered coordinates (LLaRA's convention).
COORD_DECIMALS = 3

_VERBS: dict[ActionKind, tuple[str, str]] = {
    # kind: (leading verb phrase, phrase before the second point)
    "pick_place": ("Pick up", "drop it"),
    "sweep": ("Sweep", "stop"),
}

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
_POINT = rf"<b>\s*\(\s*(?P<{{n}}x>{_NUM})\s*,\s*(?P<{{n}}y>{_NUM})\s*\)\s*</b>"
_STEP_PREFIX = re.compile(r"^\s*step\s*(?P<index>\d+)\s*[:.)]\s*", re.IGNORECASE)
# Start of a step anywhere in a line: lets us split "Step 1: ... Step 2: ..." run together.
_STEP_SPLIT = re.compile(r"(?=\bstep\s*\d+\s*[:.)])", re.IGNORECASE)
_LINE = re.compile(
    r"^(?P<verb>pick\s+up|sweep)\b(?P<subject>.*?)\bat\s+"
    + _POINT.format(n="p")
    + r"\s*(?:,\s*rotate\s+<r>\s*\[?\s*(?P<rot>"
    + _NUM
    + r")\s*\]?\s*</r>\s*degrees?)?"
    r"\s*,?\s*(?:and\s+)?(?P<verb2>drop\s+it|stop|place\s+it|put\s+it)\s+at\s+" + _POINT.format(n="q") + r"\s*\.?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_OBJECT = re.compile(r"<p>(?P<obj>.*?)</p>", re.DOTALL)
_ACTION_HINT = re.compile(r"<b>|\bpick\s+up\b|\bsweep\b|<r>", re.IGNORECASE)
_POINT_ANY = re.compile(r"<b>\s*\(([^)]*)\)\s*</b>")


@dataclass(frozen=True)
class ActionStep:
    """One pick-and-place (or sweep) step in normalized image coordinates.

    ``pick``/``place`` are (x, y) with origin top-left, x right, y down, in [0, 1].
    ``rotation_deg`` is the end-effector yaw change between pick and place
    (LLaRA's sign convention: the number written inside ``<r>[…]</r>``).
    """

    pick: tuple[float, float]
    place: tuple[float, float]
    rotation_deg: float = 0.0
    kind: ActionKind = "pick_place"
    object: str | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        problem = _validate(self.pick, self.place, self.rotation_deg)
        if problem is not None:
            raise ValueError(problem[1])
        if self.kind not in _VERBS:
            raise ValueError(f"unknown action kind {self.kind!r}; expected one of {sorted(_VERBS)}")

    def rounded(self) -> ActionStep:
        """The step as it survives a render → parse round trip (3-decimal coordinates)."""
        q = _quantize
        return ActionStep(
            pick=(q(self.pick[0]), q(self.pick[1])),
            place=(q(self.place[0]), q(self.place[1])),
            rotation_deg=_quantize(self.rotation_deg),
            kind=self.kind,
            object=self.object,
            index=self.index,
        )


ErrorCode = Literal[
    "empty",
    "no_action",
    "malformed",
    "truncated",
    "missing_place",
    "not_finite",
    "out_of_range",
    "rotation_out_of_range",
]


@dataclass(frozen=True)
class ParseError:
    """Why one step (one line of model output) was rejected.

    ``line`` is the 1-based line number in the input, ``index`` the ``Step N``
    number when the line had one, ``text`` the offending line (stripped).
    """

    code: ErrorCode
    message: str
    line: int
    text: str
    index: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (step {self.index})" if self.index is not None else "")
        return f"{where}: {self.code}: {self.message}: {self.text!r}"


@dataclass(frozen=True)
class ParseResult:
    """Steps that parsed completely, in order, plus one error per rejected step.

    A consumer that moves hardware must act only when :attr:`ok` is true, or
    decide explicitly what to do with a partial answer.
    """

    steps: list[ActionStep] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when at least one step parsed and nothing was rejected."""
        return bool(self.steps) and not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``llara parse`` prints: ok, the steps' fields, the errors' fields."""
        return {"ok": self.ok, "steps": [dataclasses.asdict(s) for s in self.steps],
                "errors": [dataclasses.asdict(e) for e in self.errors]}  # fmt: skip


def _quantize(v: float) -> float:
    return round(float(v), COORD_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _validate(pick: tuple[float, float], place: tuple[float, float], rotation: float) -> tuple[ErrorCode, str] | None:
    values = [*pick, *place, rotation]
    if len(pick) != 2 or len(place) != 2:
        return "malformed", "points need exactly two coordinates"
    if not all(math.isfinite(float(v)) for v in values):
        return "not_finite", "coordinates and rotation must be finite numbers"
    for name, pt in (("pick", pick), ("place", place)):
        if not all(0.0 <= float(c) <= 1.0 for c in pt):
            return "out_of_range", f"{name} point {tuple(pt)} is outside the normalized image [0, 1]"
    if abs(float(rotation)) > MAX_ROTATION_DEG:
        return "rotation_out_of_range", f"rotation {rotation} outside [-{MAX_ROTATION_DEG:g}, {MAX_ROTATION_DEG:g}]"
    return None


def _format_rotation(r: float) -> str:
    text = f"{_quantize(r):.{COORD_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def render_step(step: ActionStep, index: int | None = None) -> str:
    """Render one step as LLaRA's canonical text (``Step N:`` prefix when ``index`` is given)."""
    verb, verb2 = _VERBS[step.kind]
    subject = f"<p>{step.object}</p>" if step.object is not None else "object"
    (px, py), (qx, qy) = step.pick, step.place
    prefix = f"Step {index}: " if index is not None else ""
    return (
        f"{prefix}{verb} the {subject} at <b>({px:.3f}, {py: .3f})</b>, "
        f"rotate <r>[{_format_rotation(step.rotation_deg)}]</r> degrees, "
        f"and {verb2} at <b>({qx:.3f}, {qy:.3f})</b>."
    )


def render_actions(steps: Iterable[ActionStep], start: int = 1) -> str:
    """Render steps one per line, numbered ``Step 1:``, ``Step 2:`` … from ``start``."""
    return "\n".join(render_step(s, i) for i, s in enumerate(steps, start=start))


def _segments(text: str) -> list[tuple[int, str]]:
    """Split model output into (line number, candidate step text) pieces."""
    out: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for piece in _STEP_SPLIT.split(line):
            if piece.strip():
                out.append((lineno, piece.strip()))
    return out


def _parse_segment(lineno: int, seg: str) -> ActionStep | ParseError | None:
    index: int | None = None
    m_prefix = _STEP_PREFIX.match(seg)
    body = seg
    if m_prefix:
        index = int(m_prefix.group("index"))
        body = seg[m_prefix.end() :]
    elif not _ACTION_HINT.search(seg):
        return None  # prose such as "Sure, here is the plan:" is not a step

    m = _LINE.match(body.strip())
    if m is None:
        points = _POINT_ANY.findall(body)
        if len(points) < 2:
            # A second "<b>(" that never closes means the generator stopped mid-point.
            opened = body.lower().count("<b>")
            code: ErrorCode = (
                "truncated" if opened > len(points) or not body.rstrip().endswith(".") else "missing_place"
            )
            msg = "line ends before the step is complete" if code == "truncated" else "step has no place point"
            return ParseError(code, msg, lineno, seg, index)
        return ParseError("malformed", "line does not follow the action format", lineno, seg, index)

    kind: ActionKind = "sweep" if m.group("verb").lower().startswith("sweep") else "pick_place"
    obj_match = _OBJECT.search(m.group("subject"))
    obj = obj_match.group("obj").strip() if obj_match else None
    try:
        pick = (float(m.group("px")), float(m.group("py")))
        place = (float(m.group("qx")), float(m.group("qy")))
        rot = float(m.group("rot")) if m.group("rot") is not None else 0.0
    except (TypeError, ValueError):  # pragma: no cover - the regex only admits numbers
        return ParseError("malformed", "unreadable number", lineno, seg, index)
    problem = _validate(pick, place, rot)
    if problem is not None:
        return ParseError(problem[0], problem[1], lineno, seg, index)
    return ActionStep(pick=pick, place=place, rotation_deg=rot + 0.0, kind=kind, object=obj, index=index)


def first_step(text: str) -> ActionStep | ParseError:
    """The first action-like line of ``text`` as a step, or the error that makes it unusable.

    LLaRA's closed loop executes only the first step of an answer; this is the
    rule that picks it: the first segment that looks like an action decides,
    so a text whose first step is invalid yields that error even when a later
    step parses. Never raises on any ``str``.
    """
    res = parse_actions(text)
    if not isinstance(text, str) or not res.steps:
        return res.errors[0]
    for lineno, seg in _segments(text):
        got = _parse_segment(lineno, seg)
        if got is not None:
            return got
    return res.errors[0]  # pragma: no cover - parse_actions found a step, so a segment parsed


def parse_actions(text: str) -> ParseResult:
    """Parse model output into steps; never raises on any ``str``.

    Lines without any sign of an action (no ``Step N:``, ``<b>``, ``<r>``, pick
    up or sweep) are prose and ignored; every other line is a step that either
    parses completely or becomes one :class:`ParseError`. Complete steps before
    and after a bad one are still returned, so a caller can execute only the
    first step (LLaRA's closed loop) when that one is sound.
    """
    if not isinstance(text, str):
        return ParseResult(
            [], [ParseError("malformed", f"expected str, got {type(text).__name__}", 0, repr(text)[:200])]
        )
    if not text.strip():
        return ParseResult([], [ParseError("empty", "model output is empty", 0, "")])
    steps: list[ActionStep] = []
    errors: list[ParseError] = []
    for lineno, seg in _segments(text):
        got = _parse_segment(lineno, seg)
        if isinstance(got, ActionStep):
            steps.append(got)
        elif isinstance(got, ParseError):
            errors.append(got)
    if not steps and not errors:
        errors.append(ParseError("no_action", "no action step found in the output", 0, text.strip()[:200]))
    return ParseResult(steps, errors)
