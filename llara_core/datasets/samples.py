"""An episode's training samples: inBC / D-inBC per step, and the auxiliary tasks, before they become records.

inBC/D-inBC give one sample per step: the observation before the step, the steps already done as history, and
the next step as the answer (LLaRA's closed loop executes one step, then re-queries). D-inBC and the auxiliary
tasks need object boxes; without them they are skipped with a reason.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from llara_core.datasets.auxiliary import AUX_TASKS, action_prediction
from llara_core.datasets.episodes import Episode
from llara_core.datasets.records import check_kinds
from llara_core.language.actions import render_step
from llara_core.language.prompts import PromptStyle, action_query


@dataclass(frozen=True)
class Sample:
    """One question/answer about one frame of an episode, before it becomes a record."""

    kind: str
    question: str
    answer: str
    frame_index: int


def episode_samples(
    episode: Episode, kinds: Sequence[str], seed: int = 0, style: PromptStyle | None = None
) -> tuple[list[Sample], dict[str, str]]:
    """All samples of the requested task kinds for one episode, plus ``{kind: reason}`` for kinds skipped.

    inBC/D-inBC give one sample per step: the observation before the step, the
    steps already done as history, and the next step as the answer (LLaRA's
    closed loop executes one step, then re-queries). D-inBC and the auxiliary
    tasks need object boxes; without them they are skipped with a reason.
    """
    check_kinds(kinds)
    style = style or PromptStyle()
    rng = random.Random(f"{seed}:{episode.episode_id}")
    actions = episode.action_steps()
    steps = episode.steps()
    samples: list[Sample] = []
    skipped: dict[str, str] = {}
    if not actions:
        return [], {k: "episode has no complete pick/place step (no grasp)" for k in kinds}
    for kind in kinds:
        got: list[Sample] = []
        if kind in ("inbc", "d_inbc"):
            for k, (act, st) in enumerate(zip(actions, steps, strict=True)):
                history = actions[:k]
                objs = episode.objects_at(st.obs_frame) if kind == "d_inbc" else None
                if kind == "d_inbc" and not objs:
                    continue
                q = action_query(episode.instruction, objs, history, episode.kind, style, rng)
                got.append(Sample(kind, q, render_step(act, k + 1), st.obs_frame))
        else:
            qas = (action_prediction(episode, rng, style.end_effector) if kind == "action_prediction"
                   else AUX_TASKS[kind](episode, rng))  # fmt: skip
            got = [Sample(kind, qa.question, qa.answer, qa.frame_index) for qa in qas]
        if got:
            samples.extend(got)
        else:
            skipped[kind] = "no object boxes in the episode" if kind != "inbc" else "no step"
    return samples, skipped
