"""When an action may move the arm: the action node's safety logic as a pure state machine, tested without ROS.

The node feeds it events (an answer arrived, approval, rejection, estop, a
clock tick, the executor finished) and does what it returns; nothing here
touches hardware. The rules:

- one action at a time: an answer that arrives while another is pending or
  executing is refused with a reason (LLaRA's loop waits for ``step_done``);
- an answer is planned only while the newest camera image is fresh
  (``max_image_age_s``): a camera that stopped means the scene is unknown;
- with ``require_approval`` a plan waits until approved, rejected, or timed out;
- ``estop`` true stops the current execution and refuses everything until it
  is cleared; the node starts idle, so a restart mid-episode leaves the arm still.

Every outcome that ends a step — done, refused, rejected, approval timed out,
dropped by estop, deactivation or shutdown, failed — produces exactly one ``step_done`` payload
(``{"step": text, "ok": bool, "reason": str}``), the policy node's cue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from llara_core.planning.plan import ActionPlan, Refusal

State = Literal["idle", "pending_approval", "executing"]


@dataclass(frozen=True)
class StepDone:
    """What the action node publishes on ``step_done`` when a step ends (done, refused, failed, stopped)."""

    step: str
    ok: bool
    reason: str = ""

    def to_json(self) -> str:
        return json.dumps({"step": self.step, "ok": self.ok, "reason": self.reason})

    @classmethod
    def from_json(cls, text: str) -> StepDone:
        """Parse a step_done message; ValueError when it is not the documented JSON object."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool) or not isinstance(data.get("step"), str):
            raise ValueError(f"step_done must be {{'step': str, 'ok': bool, 'reason': str}}, got {text[:200]!r}")
        return cls(data["step"], data["ok"], str(data.get("reason") or ""))


@dataclass
class Decision:
    """What the node must do now: ``execute`` the plan, ``wait`` for approval, or nothing (``done`` is set)."""

    execute: ActionPlan | None = None
    wait: ActionPlan | None = None
    done: StepDone | None = None


@dataclass
class Supervisor:
    """The action node's state (see the module docstring). Times are seconds of one monotonic clock."""

    require_approval: bool = False
    approval_timeout_s: float = 60.0
    max_image_age_s: float = 2.0
    state: State = "idle"
    estopped: bool = False
    plan: ActionPlan | None = None
    text: str = ""
    pending_since: float = 0.0
    log: list[str] = field(default_factory=list)

    def submit(
        self, text: str, now: float, image_stamp: float | None, planner: Callable[[str], ActionPlan | Refusal]
    ) -> Decision:
        """An answer arrived at ``now``; ``image_stamp`` is when the image it is about was taken (None: no image)."""
        if self.estopped:
            return Decision(done=StepDone(text, False, "estop is active: clear it before sending actions"))
        if self.state != "idle":
            return Decision(done=StepDone(text, False, f"busy: a step is {self.state.replace('_', ' ')}"))
        if image_stamp is not None:
            age = now - image_stamp
            if age > self.max_image_age_s:
                return Decision(done=StepDone(text, False, f"stale image: {age:.2f} s old > {self.max_image_age_s} s"))
        plan = planner(text)
        if isinstance(plan, Refusal):
            return Decision(done=StepDone(text, False, plan.reason))
        self.text, self.plan = text, plan
        if self.require_approval:
            self.state, self.pending_since = "pending_approval", now
            return Decision(wait=plan)
        self.state = "executing"
        return Decision(execute=plan)

    def approve(self, now: float) -> Decision:
        if self.state != "pending_approval" or self.plan is None:
            return Decision(done=None)
        if self.estopped:
            return self._drop("estop is active")
        if now - self.pending_since > self.approval_timeout_s:
            return self._drop("approval timed out")
        self.state = "executing"
        return Decision(execute=self.plan)

    def reject(self) -> Decision:
        if self.state != "pending_approval":
            return Decision()
        return self._drop("rejected by the operator")

    def tick(self, now: float) -> Decision:
        """Drop a plan whose approval timed out."""
        if self.state == "pending_approval" and now - self.pending_since > self.approval_timeout_s:
            return self._drop(f"approval timed out after {self.approval_timeout_s:g} s")
        return Decision()

    def set_estop(self, on: bool) -> Decision:
        """Estop on or off; a plan waiting for approval is dropped (its step_done is returned).

        An executing step is stopped by the node; its executor then ends the step.
        """
        self.estopped = on
        if on and self.state == "pending_approval":
            return self._drop("estop")
        return Decision()

    def finished(self, ok: bool, reason: str = "") -> StepDone:
        """The executor ended the current step (success, failure, or stopped by estop)."""
        done = StepDone(self.text, ok, reason)
        self.state, self.plan, self.text = "idle", None, ""
        return done

    def drop_pending(self, reason: str) -> Decision:
        """Deactivation or shutdown: a plan waiting for approval is dropped with ``reason``.

        An executing step is not forgotten here: the node stops its executor,
        which ends the step through :meth:`finished`, so it still gets its step_done.
        """
        return self._drop(reason) if self.state == "pending_approval" else Decision()

    def _drop(self, reason: str) -> Decision:
        done = StepDone(self.text, False, reason)
        self.state, self.plan, self.text = "idle", None, ""
        return Decision(done=done)
