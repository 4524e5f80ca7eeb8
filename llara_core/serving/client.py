"""The policy as a service: an OpenAI chat-completions client backend (``backend: openai``).

A real LLaRA policy is a 7B VLM on a GPU server; the robot computer sends the
camera frame and the prompt and gets action text back. :class:`OpenAIPolicy`
implements the same :class:`~llara_core.model.policy.Policy` interface as the
local ``VLMPolicy``: the same LLaRA prompt (built by the same function), greedy
decoding, and the answer through the same strict parser — the node, the
evaluation and ``llara predict`` do not know which backend answers.

The request is what vLLM's OpenAI-compatible server accepts for a vision model
(https://docs.vllm.ai/en/stable/serving/openai_compatible_server/ and its
multimodal client example): one user message whose content is an
``image_url`` part holding a base64 ``data:image/png`` URL, then a ``text``
part — the order of the LLaVA human turn (``<image>\\n`` then the question).
PNG, not JPEG: the server must see the exact pixels the local model would, or
answers differ. ``llara serve`` (:mod:`llara_core.serving.server`) is the server side.

The maintained ``openai`` client does the HTTP (timeouts, bounded retries with
backoff on connection errors, 408/429/5xx); every failure becomes a
:class:`RemoteError` and never an action.
"""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError
from llara_core.language.actions import ActionStep
from llara_core.language.objects import ObjectBox
from llara_core.language.prompts import DEFAULT_END_EFFECTOR, IMAGE_TOKEN, PromptStyle, query_prompt
from llara_core.model.policy import PolicyConfig, PolicyOutput, RemoteConfig


class RemoteError(LlaraError, RuntimeError):
    """The server did not give a usable answer: unreachable, timed out, an HTTP error, or no text."""


def image_data_url(image: npt.NDArray[np.uint8] | Any) -> str:
    """A lossless ``data:image/png;base64,…`` URL of an RGB image (numpy array or PIL image)."""
    from PIL import Image

    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="PNG", compress_level=1)  # fast; size matters less than time on a LAN
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_messages(question: str, image: Any) -> list[dict[str, Any]]:
    """The LLaVA human turn ``<image>\\n…`` as one OpenAI user message: the image part, then the text."""
    text = question.replace(IMAGE_TOKEN, "").lstrip("\n")
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_data_url(image)}},
                                         {"type": "text", "text": text}]}]  # fmt: skip


class OpenAIPolicy:
    """:class:`~llara_core.model.policy.Policy` over an OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self, config: RemoteConfig, max_new_tokens: int | None = None, style: PromptStyle | None = None
    ) -> None:
        from openai import OpenAI

        self.config = config
        self.style = style or PromptStyle()
        self.max_new_tokens = max_new_tokens or self.style.max_new_tokens
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        # The client refuses an empty key; servers without auth ignore the header.
        self.client = OpenAI(base_url=config.base_url, api_key=key or "none", timeout=config.timeout_s,
                             max_retries=config.retries)  # fmt: skip
        self._model = config.remote_model

    @classmethod
    def from_config(cls, config: PolicyConfig) -> OpenAIPolicy:
        """The ``openai`` backend of :func:`~llara_core.model.policy.load_policy` (the server holds the model, so
        the wording is the configured one: this project's unless ``prompt_profile`` says otherwise)."""
        style = PromptStyle(config.prompt_profile or "llara_ros", config.end_effector or DEFAULT_END_EFFECTOR)
        return cls(config.remote, config.max_new_tokens or None, style)

    @property
    def model(self) -> str:
        """The served model's name (asked once from /v1/models when not configured)."""
        if not self._model:
            try:
                listed = self.client.models.list().data
            except Exception as exc:
                raise RemoteError(f"{self.config.base_url}: cannot list models: {_why(exc)}") from exc
            if not listed:
                raise RemoteError(f"{self.config.base_url}: the server lists no model")
            self._model = listed[0].id
        return self._model

    def build_prompt(self, instruction: str, objects: Sequence[ObjectBox] | None = None,
                     history: Sequence[ActionStep] = ()) -> str:  # fmt: skip
        """The same prompt the local backend builds."""
        return query_prompt(instruction, objects, history, style=self.style)

    def generate(self, images: Sequence[Any], questions: Sequence[str]) -> list[str]:
        """Greedy answers to LLaVA-format questions (``<image>\n…``), one request each (as ``VLMPolicy.generate``)."""
        return [self._ask(im, q) for im, q in zip(images, questions, strict=True)]

    def _ask(self, image: Any, question: str) -> str:
        """The server's greedy answer to one question; RemoteError when there is none."""
        try:
            res = self.client.chat.completions.create(
                model=self.model, messages=chat_messages(question, image),  # type: ignore[arg-type]
                temperature=0.0, max_tokens=self.max_new_tokens,
            )  # fmt: skip
        except RemoteError:
            raise
        except Exception as exc:  # openai's APIConnectionError, APITimeoutError, APIStatusError, bad JSON, …
            raise RemoteError(f"{self.config.base_url}: {_why(exc)}") from exc
        choices = getattr(res, "choices", None)
        text = choices[0].message.content if choices and choices[0].message is not None else None
        if not isinstance(text, str) or not text.strip():
            raise RemoteError(f"{self.config.base_url}: the answer has no text ({str(res)[:200]})")
        return text.strip()

    def act(self, image: Any, instruction: str, objects: Sequence[ObjectBox] | None = None,
            history: Sequence[ActionStep] = ()) -> PolicyOutput:  # fmt: skip
        """One query; the latency includes encoding and the network (reported as such)."""
        prompt = self.build_prompt(instruction, objects, history)
        t0 = time.perf_counter()
        text = self._ask(image, prompt)
        return PolicyOutput.from_text(text, prompt, time.perf_counter() - t0)


def _why(exc: BaseException) -> str:
    """One line: the HTTP status and the server's error message, or the connection problem."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    detail = body.get("message") if isinstance(body, dict) else None
    text = detail or (str(exc).splitlines() or [""])[0]
    kind = type(exc).__name__
    return f"{kind} (HTTP {status}): {text[:200]}" if status else f"{kind}: {text[:200]}"


def wait_until_healthy(base_url: str, timeout_s: float = 60.0, alive: Any = None) -> None:
    """Wait for a server's ``GET /health`` (llara serve, vLLM) to answer 200; RemoteError after ``timeout_s``.

    ``alive`` (optional, e.g. ``proc.poll``-based) stops the wait early when the
    server process has already exited.
    """
    import urllib.request

    url = base_url.rstrip("/").removesuffix("/v1") + "/health"
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
        if alive is not None and not alive():
            raise RemoteError(f"{url}: the server process exited before it answered")
    raise RemoteError(f"{url}: no answer within {timeout_s:.0f} s")
