"""A client of the running loop: publish action text, wait for ``step_done`` and ``episode`` events, reset scenes.

What the oracle benchmark (``scripts/closed_loop_dds.py``), the ROS tests and
the demo use to drive ``sim_node`` + ``action_node`` (+ ``policy_node``) over
DDS from another process: it never touches their internals, only their topics
and services.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from llara_core import topics
from llara_core.planning import StepDone
from llara_ros.topics import publisher, subscription


class LoopClient:
    """Publishes on ``action_text``/``estop``/``task``; collects ``step_done`` and ``episode`` messages."""

    def __init__(self, node: Node, sim_reset: str = "/sim_node/reset") -> None:
        self.node = node
        self.cond = threading.Condition()
        self.done: list[StepDone] = []
        self.events: list[dict[str, Any]] = []
        self.action_pub = publisher(node, topics.ACTION_TEXT)
        self.estop_pub = publisher(node, topics.ESTOP)
        self.task_pub = publisher(node, topics.TASK)
        subscription(node, topics.STEP_DONE, self._on_done)
        subscription(node, topics.EPISODE, self._on_event)
        self.reset_client: Any = node.create_client(Trigger, sim_reset)

    def _on_done(self, msg: String) -> None:
        with self.cond:
            self.done.append(StepDone.from_json(msg.data))
            self.cond.notify_all()

    def _on_event(self, msg: String) -> None:
        with self.cond:
            self.events.append(json.loads(msg.data))
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float) -> Any:
        """Wait (the node spins elsewhere) until ``predicate()`` returns something truthy; None on timeout."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                got = predicate()
                if got:
                    return got
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.1))

    def send(self, text: str, timeout: float = 60.0) -> StepDone | None:
        """Publish one action text and wait for the step_done that answers it.

        Matched on the echoed text, not on arrival order: answers to earlier
        sends that timed out on this side (e.g. discovery probes) may still
        arrive and must not be taken for this one's.
        """
        with self.cond:
            n = len(self.done)
        self.action_pub.publish(String(data=text))
        got: StepDone | None = self.wait_for(lambda: next((d for d in self.done[n:] if d.step == text), None), timeout)
        return got

    def episode_end(self, seed: int, timeout: float) -> dict[str, Any] | None:
        """The success/failure/timeout event of the episode at ``seed``."""
        got: dict[str, Any] | None = self.wait_for(
            lambda: next((e for e in self.events if e["seed"] == seed and e["event"] != "start"), None), timeout
        )
        return got

    def run_answers(self, answers: list[str], seed: int, timeout: float = 120.0) -> dict[str, Any]:
        """Send each answer after the previous step's step_done; the episode's end event (or why it stopped)."""
        for k, text in enumerate(answers, start=1):
            done = self.send(text, timeout=timeout)
            if done is None or not done.ok:
                return {"event": "step_failed", "seed": seed, "step": k, "reason": done.reason if done else "timeout"}
        return self.episode_end(seed, timeout) or {"event": "no_event", "seed": seed}

    def reset(self, timeout: float = 30.0) -> dict[str, Any]:
        """Ask the simulator for the next scene; returns ``{"seed", "instruction"}``."""
        if not self.reset_client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError("sim_node's ~/reset service did not appear")
        fut = self.reset_client.call_async(Trigger.Request())
        end = time.monotonic() + timeout
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.01)
        if not fut.done():
            raise TimeoutError("sim_node did not answer ~/reset")
        result: Any = fut.result()
        answer: dict[str, Any] = json.loads(result.message)
        return answer
