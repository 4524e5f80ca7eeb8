"""Task families with instructions and success predicates, in LLaRA/VIMA-style generalization levels.

=================  =====  ===============================================================
family             level  what changes w.r.t. training data
=================  =====  ===============================================================
l1_placement       L1     seen color–shape objects, new poses ("put the red block into the bowl")
l2_combinatorial   L2     the object to move is a color–shape pair never seen in training
l3_novel           L3     the object to move has a shape held out of training (hexagon)
multi_step         L1     "put all the <color> objects into the bowl": two steps, needs re-querying
=================  =====  ===============================================================

Training data comes from ``l1_placement`` and ``multi_step`` only; they never
contain :data:`HELD_OUT_COMBOS` or :data:`NOVEL_SHAPES`. Every task is a
function of (family, seed): the same seed gives the same scene and instruction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llara_core.sim.scene import (
    COLORS,
    GRASPABLE_SHAPES,
    OBJECT_HEIGHT,
    TARGET_INNER,
    TARGET_SHAPES,
    TARGET_TOP,
    LayoutError,
    Scene,
    sample_layout,
)

NOVEL_SHAPES: tuple[str, ...] = ("hexagon",)
TRAIN_SHAPES: tuple[str, ...] = tuple(s for s in GRASPABLE_SHAPES if s not in NOVEL_SHAPES)
HELD_OUT_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "cylinder"),
        ("green", "bar"),
        ("blue", "block"),
        ("yellow", "cylinder"),
        ("purple", "block"),
        ("orange", "bar"),
    }
)
SEEN_COMBOS: tuple[tuple[str, str], ...] = tuple(
    (c, s) for c in COLORS for s in TRAIN_SHAPES if (c, s) not in HELD_OUT_COMBOS
)
FAMILIES: dict[str, str] = {
    "l1_placement": "L1",
    "l2_combinatorial": "L2",
    "l3_novel": "L3",
    "multi_step": "L1",
}
TRAIN_FAMILIES: tuple[str, ...] = ("l1_placement", "multi_step")


def episode_id(family: str, seed: int) -> str:
    """The id of the demonstration of ``family`` at ``seed`` (names its dataset shard and its bag)."""
    return f"{family}-{seed:06d}"


def check_families(families: str | Sequence[str]) -> tuple[str, ...]:
    """Task families from a list or a comma-separated string, ``all`` for every family; ValueError for unknown ones."""
    names = [f.strip() for f in (families.split(",") if isinstance(families, str) else families) if f.strip()]
    if names == ["all"]:
        return tuple(FAMILIES)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown or not names:
        raise ValueError(f"unknown task families {unknown or names}; choose from {', '.join(FAMILIES)} or all")
    return tuple(names)


_VERBS = {
    "bowl": ("put {o} into the bowl", "place {o} in the bowl"),
    "pad": ("put {o} onto the pad", "place {o} on the pad"),
}


@dataclass
class Task:
    """A scene, an instruction and the goal: which object must end up in which target, in order."""

    family: str
    seed: int
    scene: Scene
    instruction: str
    goals: list[tuple[str, str]]

    @property
    def level(self) -> str:
        return FAMILIES[self.family]


def make_task(family: str, seed: int) -> Task:
    """The task of ``family`` for ``seed`` (deterministic)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; choose from {', '.join(FAMILIES)}")
    rng = random.Random(f"{family}:{seed}")
    for _ in range(50):
        try:
            return _sample(family, seed, rng)
        except LayoutError:
            continue
    raise LayoutError(f"no layout for {family} seed {seed}")


def _sample(family: str, seed: int, rng: random.Random) -> Task:
    targets = rng.sample(TARGET_SHAPES, rng.choice((1, 2)))
    target = rng.choice(targets)
    if family == "multi_step":
        color = rng.choice(sorted(COLORS))
        movers = [(color, s) for s in TRAIN_SHAPES if (color, s) in SEEN_COMBOS]
        others = [c for c in SEEN_COMBOS if c[0] != color]
        distractors = rng.sample(others, rng.randint(1, 4 - len(targets)))
        instruction = (
            f"put all the {color} objects into the {target}"
            if target == "bowl"
            else (f"put all the {color} objects onto the {target}")
        )
    else:
        if family == "l1_placement":
            pool = list(SEEN_COMBOS)
        elif family == "l2_combinatorial":
            pool = sorted(HELD_OUT_COMBOS)
        else:
            pool = [(c, s) for c in COLORS for s in NOVEL_SHAPES]
        movers = [rng.choice(pool)]
        others = [c for c in SEEN_COMBOS if c != movers[0]]
        distractors = rng.sample(others, rng.randint(0, 4 - len(targets)))
        instruction = rng.choice(_VERBS[target]).format(o=f"the {movers[0][0]} {movers[0][1]}")
    items: list[tuple[str, str | None]] = [(t, None) for t in targets] + [(s, c) for c, s in movers + distractors]
    objects = sample_layout(rng, items)
    goals = [(f"{c} {s}", target) for c, s in movers]
    return Task(family, seed, Scene(objects, seed, {"family": family}), instruction, goals)


def in_target(obj_pose: np.ndarray, target_pose: np.ndarray, target_shape: str) -> bool:
    """Whether an object (4×4 pose of its center) rests inside a target's region."""
    local = np.linalg.inv(target_pose) @ obj_pose[:, 3]
    x, y, z = local[:3]
    inner = TARGET_INNER[target_shape]
    inside = math.hypot(x, y) <= inner if target_shape == "bowl" else max(abs(x), abs(y)) <= inner
    resting = z <= TARGET_TOP[target_shape] + OBJECT_HEIGHT / 2 + 0.015
    return bool(inside and resting)


def goal_status(task: Task, poses: dict[str, np.ndarray]) -> list[bool]:
    """For each goal of the task, whether it holds given object poses (name -> 4×4)."""
    return [in_target(poses[o], poses[t], t) for o, t in task.goals]
