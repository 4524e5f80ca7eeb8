"""Latency windows per stage: what the policy node reports in /diagnostics and the benchmarks print.

A stage is a named step of one query (``wait``: newest frame received -> the model starts; ``convert``: message
-> RGB array; ``model``: prompt -> parsed answer; ``publish``: answer -> ``action_text`` out). Each keeps the last
``window`` durations, so the figures describe the node now, not since start-up.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class StageTimes:
    """The last ``window`` durations (seconds) of every stage, and their percentiles (milliseconds)."""

    def __init__(self, window: int = 50) -> None:
        self.window = window
        self.stages: dict[str, deque[float]] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.stages.setdefault(stage, deque(maxlen=self.window)).append(seconds)

    def percentile_ms(self, stage: str, q: float) -> float | None:
        values = self.stages.get(stage)
        return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else None

    def summary(self) -> dict[str, str]:
        """``{stage}_p50_ms`` / ``_p95_ms`` / ``_max_ms`` for every stage seen (diagnostic key-value pairs; the max
        lets a monitor sampling once a second see every frame's age while the window spans more than a second)."""
        out: dict[str, str] = {}
        for stage in self.stages:
            for q, name in ((50, "p50"), (95, "p95"), (100, "max")):
                v = self.percentile_ms(stage, q)
                out[f"{stage}_{name}_ms"] = f"{v:.1f}" if v is not None else "n/a"
        return out
