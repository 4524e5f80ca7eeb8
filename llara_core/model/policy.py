"""The policy seam: what every model backend is (``Policy``), what it answers (``PolicyOutput``), and how a
configuration becomes one (``load_policy(PolicyConfig)``).

The closed loop, the evaluation, ``llara predict``/``serve`` and the policy node call only this module's
types, so a backend plugs in without touching them. Backends register by name in :data:`BACKENDS` (module and
class, imported when chosen), so this module imports neither the local runtime (torch, transformers) nor the
remote client (openai); both import it. A backend never raises on a bad answer: the text is returned and the
parse errors are in the output — only :func:`~llara_core.language.actions.parse_actions` decides what is an
action.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from llara_core.config import check_choices, setting
from llara_core.language.actions import ActionStep, ParseError, parse_actions
from llara_core.language.objects import ObjectBox
from llara_core.language.prompts import PROMPT_PROFILES, PromptStyle

#: Backend name -> "module:Class"; the class has ``from_config(PolicyConfig)``.
BACKENDS: dict[str, str] = {
    "transformers": "llara_core.model.runtime:VLMPolicy",
    "openai": "llara_core.serving.client:OpenAIPolicy",
}


@dataclass
class PolicyOutput:
    """The raw answer, what parsed, what did not, and how long image -> parsed action took."""

    text: str
    steps: list[ActionStep]
    errors: list[ParseError] = field(default_factory=list)
    latency_s: float = 0.0
    prompt: str = ""

    @classmethod
    def from_text(cls, text: str, prompt: str = "", latency_s: float = 0.0) -> PolicyOutput:
        """An answer through the one strict parser (every backend and ``llara predict --question`` use this)."""
        res = parse_actions(text)
        return cls(text, res.steps, res.errors, latency_s, prompt)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``llara predict`` prints: ok, the steps, the parse errors' messages, the latency."""
        steps = [dataclasses.asdict(s) for s in self.steps]
        return {"ok": self.ok, "steps": steps, "errors": [e.message for e in self.errors],
                "latency_s": round(self.latency_s, 4)}  # fmt: skip


class Policy(Protocol):
    """What the closed loop needs of a model backend (local :class:`~llara_core.model.runtime.VLMPolicy`, or the
    remote :class:`~llara_core.serving.client.OpenAIPolicy`).

    ``act`` is one query of LLaRA's loop: ``objects`` switches to the D-inBC prompt; ``history`` holds the steps
    already executed (LLaRA's "You have finished"). ``generate`` answers raw LLaVA questions (``<image>\\n…``;
    auxiliary tasks, ``llara predict --question``). ``style`` is the wording the backend prompts with and
    ``max_new_tokens`` its answer-length limit (the profile's by default).
    """

    style: PromptStyle
    max_new_tokens: int

    def act(
        self,
        image: npt.NDArray[np.uint8],
        instruction: str,
        objects: Sequence[ObjectBox] | None = None,
        history: Sequence[ActionStep] = (),
    ) -> PolicyOutput: ...

    def generate(self, images: Sequence[Any], questions: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class RemoteConfig:
    """Where the model is served (``policy_node`` ``remote.*`` parameters, ``--backend openai`` flags)."""

    base_url: str = setting("http://127.0.0.1:8000/v1", "OpenAI-compatible endpoint (llara serve, vllm serve, …)")
    remote_model: str = setting("", "model name on the server (empty: the first one /v1/models lists)")
    api_key_env: str = setting("", "name of the environment variable holding the API key (never the key itself)")
    timeout_s: float = setting(10.0, "seconds per request before it counts as failed")
    retries: int = setting(1, "retries after a connection error, timeout, 429 or 5xx (then the query fails)")

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.timeout_s <= 0 or self.retries < 0:
            raise ValueError("timeout_s must be > 0 and retries >= 0")
        if self.api_key_env and self.api_key_env not in os.environ:
            raise ValueError(f"api_key_env names {self.api_key_env!r}, which is not set in the environment")


@dataclass(frozen=True)
class PolicyConfig:
    """Which backend answers, with which model and wording (policy node parameters, predict/eval flags)."""

    backend: Literal["transformers", "openai"] = setting(
        "transformers", "transformers: the model runs in this process; openai: it answers from a server (remote.*)"
    )
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    model: str = setting("", "model folder or LoRA folder (empty: the shipped demo model)", path=True)
    adapter: str | None = setting(None, "LoRA adapter folder applied on the model", path=True)
    device: str = setting("cpu", "torch device (cpu, cuda, cuda:1)")
    dtype: str | None = setting(None, "torch dtype (float16, bfloat16; unset: the checkpoint's)")
    threads: int = setting(
        0, "CPU threads of the model's math (0: torch's default, one per core; 1 beside other busy processes)"
    )
    max_new_tokens: int = setting(0, "answer length limit in tokens (0: the prompt profile's, llara_ros 96, llara 256)")
    prompt_profile: str | None = setting(
        None, "prompt wording: llara_ros or llara (LLaRA's released models); unset: the model's (llara_prompt.json)"
    )
    end_effector: str | None = setting(
        None, "end effector named in the prompt (unset: the wording the model was trained with; see convert-bags)"
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.prompt_profile is not None and self.prompt_profile not in PROMPT_PROFILES:
            raise ValueError(f"prompt_profile must be one of {PROMPT_PROFILES}, got {self.prompt_profile!r}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: torch's default), got {self.threads}")
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0 (0: the profile's), got {self.max_new_tokens}")


def load_policy(config: PolicyConfig | None = None) -> Policy:
    """The backend a configuration names, loaded (the shipped demo model when ``model`` is empty).

    One place where nodes and commands turn configuration into a backend.
    """
    cfg = config or PolicyConfig()
    module, _, name = BACKENDS[cfg.backend].partition(":")
    backend: Any = getattr(importlib.import_module(module), name)
    policy: Policy = backend.from_config(cfg)
    return policy
