"""LLaRA's closed loop on the policy side, as a pure state machine (what policy_node runs; testable without ROS).

A task arrives -> query the model with the newest image -> publish its answer
-> wait for ``step_done`` (at most ``step_timeout_s``: then the step counts as
failed) -> on success, append the executed step to the
history ("You have finished: …") and query again; on failure, query again or
stop (``on_failure``); stop after ``max_steps`` executed steps, when the task is
cleared (an empty task) or on reset. Every task message starts a new episode.

Queries are numbered (``generation``): an answer that comes back after its task
was cleared or replaced is dropped, never published.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from llara_core.config import setting
from llara_core.language.actions import ActionStep
from llara_core.model.policy import PolicyConfig
from llara_core.planning import StepDone, select_step

Phase = Literal["idle", "want_query", "querying", "waiting_step", "done"]


@dataclass(frozen=True)
class PolicyNodeConfig(PolicyConfig):
    """policy_node's parameters (``config/policy.yaml``): the backend's (:class:`PolicyConfig`) and the loop's."""

    prompt_mode: Literal["inbc", "d_inbc"] = setting(
        "inbc", "inbc, or d_inbc with object boxes from the detections topic in the prompt"
    )
    max_steps: int = setting(4, "executed steps after which the episode stops querying")
    on_failure: Literal["requery", "stop"] = setting("requery", "after a failed step: query again, or stop")
    max_failures: int = setting(3, "failed steps in a row after which the episode stops")
    step_timeout_s: float = setting(
        180.0, "give up waiting for the action node's step_done after this; counts as a failed step (on_failure)"
    )
    max_image_age_s: float = setting(1.0, "a frame older than this is refused for a query")
    settle_s: float = setting(0.3, "after step_done, wait this long for a frame of the settled scene")
    image_transport: Literal["raw", "compressed"] = setting("raw", "camera topic type: Image or CompressedImage")
    latency_window: int = setting(50, "queries the latency percentiles are computed over")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_steps < 1 or self.max_failures < 1 or self.latency_window < 1:
            raise ValueError("max_steps, max_failures and latency_window must be >= 1")
        if self.max_image_age_s <= 0 or self.settle_s < 0 or self.step_timeout_s <= 0:
            raise ValueError("max_image_age_s and step_timeout_s must be > 0 and settle_s >= 0")


@dataclass
class PolicyLoop:
    """The episode state of the policy node (see the module docstring). Times: one monotonic clock, seconds."""

    max_steps: int = 4
    on_failure: str = "requery"
    max_failures: int = 3
    settle_s: float = 0.3
    step_timeout_s: float = 180.0
    phase: Phase = "idle"
    instruction: str = ""
    history: list[ActionStep] = field(default_factory=list)
    failures: int = 0
    generation: int = 0
    not_before: float = 0.0  # a query needs a frame taken after this time
    waiting_since: float = 0.0  # when the answer whose step_done we wait for went out
    stopped_because: str = ""

    @classmethod
    def from_config(cls, cfg: PolicyNodeConfig) -> PolicyLoop:
        return cls(cfg.max_steps, cfg.on_failure, cfg.max_failures, cfg.settle_s, cfg.step_timeout_s)

    def on_task(self, text: str, now: float) -> None:
        """A task message: a new episode (an empty text clears the task and stops the loop)."""
        self.generation += 1
        self.history, self.failures, self.stopped_because = [], 0, ""
        self.instruction = text.strip()
        self.phase = "want_query" if self.instruction else "idle"
        self.not_before = now

    def reset(self) -> None:
        """~/reset: forget the history and stop until the next task."""
        self.generation += 1
        self.phase, self.history, self.failures, self.instruction = "idle", [], 0, ""

    def wants_query(self, frame_time: float | None) -> bool:
        """A query is due and a frame of the current scene exists."""
        return self.phase == "want_query" and frame_time is not None and frame_time >= self.not_before

    def start_query(self) -> int:
        self.phase = "querying"
        return self.generation

    def answered(self, generation: int, answer: str, now: float) -> bool:
        """The model answered query ``generation`` at ``now``; False when that query is stale (drop the answer)."""
        if generation != self.generation or self.phase != "querying":
            return False
        self.phase, self.waiting_since = "waiting_step", now
        return True

    def check_timeout(self, now: float) -> StepDone | None:
        """No step_done within ``step_timeout_s``: the step counts as failed (re-query or stop); returns it."""
        if self.phase != "waiting_step" or now - self.waiting_since <= self.step_timeout_s:
            return None
        done = StepDone("", False, f"no step_done from the action node within {self.step_timeout_s:g} s")
        self.on_step_done(done, now)
        return done

    def query_failed(self, generation: int) -> None:
        """The query raised (model error): try again with the next frame."""
        if generation == self.generation and self.phase == "querying":
            self.phase = "want_query"

    def on_step_done(self, done: StepDone, now: float) -> None:
        """The action node finished (or refused) the step of our last answer."""
        if self.phase != "waiting_step":
            return
        self.not_before = now + self.settle_s
        if done.ok:
            step = select_step(done.step, "first_step")
            if isinstance(step, ActionStep):
                self.history.append(dataclasses.replace(step, index=len(self.history) + 1))
            self.failures = 0
            if len(self.history) >= self.max_steps:
                self._stop(f"max_steps ({self.max_steps}) executed")
                return
        else:
            self.failures += 1
            if self.on_failure == "stop" or self.failures >= self.max_failures:
                self._stop(f"step failed: {done.reason}")
                return
        self.phase = "want_query"

    def _stop(self, why: str) -> None:
        self.phase, self.stopped_because = "done", why
