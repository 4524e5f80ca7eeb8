"""``llara serve``: an OpenAI-compatible server for any model ``VLMPolicy.from_pretrained`` loads.

``POST /v1/chat/completions`` (one user message: one image part as a base64
data URL + text), ``GET /v1/models``, ``GET /health`` — what the ``openai``
backend (:mod:`llara_core.serving.client`) and any OpenAI client send. FastAPI +
uvicorn; binds to 127.0.0.1 unless told otherwise; an optional bearer key
read from an environment variable.

Why a server of our own beside vLLM: it serves exactly the local backend's
model path (LoRA folders, the tiny demo model, CPU), so an answer through HTTP
is token-for-token the local one (tested) — the reference a vLLM deployment is
checked against with ``llara predict --backend openai``.

Requests are refused with a 4xx JSON error (OpenAI's ``{"error": {...}}``
shape), never a traceback: malformed JSON or messages, no image or more than
one, a data URL that is not an image, an image over ``max_image_bytes``, a
prompt over ``max_prompt_chars``, sampling (only greedy decoding is served).
One worker thread owns the model (torch's thread pool belongs to the thread
that loaded it); requests wait in a bounded queue (503 when it is full) and
whatever is waiting when the model frees up runs as one batch (``act_batch``'s
``generate``), up to ``max_batch``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations at runtime
# (``request: Request`` must be the class, not a string naming a class imported inside create_app).
import asyncio
import base64
import binascii
import io
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from llara_core.config import setting
from llara_core.errors import LlaraError
from llara_core.language.prompts import IMAGE_TOKEN

log = logging.getLogger(__name__)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")


@dataclass(frozen=True)
class ServeConfig:
    """``llara serve`` settings (flags)."""

    model: str = setting("", "model folder or LoRA folder (empty: the shipped demo model)", path=True)
    adapter: str | None = setting(None, "LoRA adapter folder applied on the model", path=True)
    device: str = setting("cpu", "torch device (cpu, cuda, cuda:1)")
    dtype: str | None = setting(None, "torch dtype (float16, bfloat16; unset: the checkpoint's)")
    host: str = setting("127.0.0.1", "address to bind; 0.0.0.0 exposes the server to the network")
    port: int = setting(8000, "TCP port")
    served_model_name: str = setting("llara", "the model's name in /v1/models and in requests")
    api_key_env: str = setting("", "environment variable holding the bearer key clients must send (unset: none)")
    max_batch: int = setting(8, "most requests answered in one generate() call")
    max_queue: int = setting(64, "requests waiting beyond this get 503")
    max_tokens: int = setting(256, "upper bound of a request's max_tokens")
    max_image_bytes: int = setting(4_000_000, "largest decoded image file accepted (413 beyond)")
    max_image_pixels: int = setting(4096 * 4096, "largest image (width x height) accepted (413 beyond)")
    max_prompt_chars: int = setting(16_000, "longest prompt text accepted (413 beyond)")

    def __post_init__(self) -> None:
        if min(self.max_batch, self.max_queue, self.max_tokens, self.max_image_bytes, self.max_prompt_chars) < 1:
            raise ValueError("max_batch, max_queue, max_tokens, max_image_bytes and max_prompt_chars must be >= 1")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise ValueError(f"api_key_env names {self.api_key_env!r}, which is not set (or empty)")


class ApiError(LlaraError):
    """A refused request: HTTP status + OpenAI-style error type and message."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


@dataclass
class Query:
    """One request waiting for the model."""

    image: Any
    question: str
    max_tokens: int
    future: asyncio.Future[str] = field(repr=False)


def decode_image(url: str, cfg: ServeConfig) -> Any:
    """A PIL RGB image from a ``data:image/…;base64,`` URL, or ApiError saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:"):
        raise ApiError(
            400, "image_url must be a base64 data URL (data:image/png;base64,…); remote URLs are not fetched"
        )
    head, _, payload = url.partition(",")
    mime = head[5:].split(";")[0].lower()
    if mime not in IMAGE_TYPES or not head.endswith(";base64"):
        raise ApiError(400, f"data URL of type {mime or '?'!r} is not a base64 image; use one of {IMAGE_TYPES}")
    if len(payload) * 3 // 4 > cfg.max_image_bytes:
        raise ApiError(413, f"image over {cfg.max_image_bytes} bytes")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"image data is not valid base64 ({exc})") from exc
    try:
        img = Image.open(io.BytesIO(raw))
        if img.width * img.height > cfg.max_image_pixels:
            raise ApiError(413, f"image {img.width}x{img.height} over {cfg.max_image_pixels} pixels")
        return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ApiError(400, f"image data cannot be decoded ({type(exc).__name__})") from exc


def parse_request(body: Any, cfg: ServeConfig) -> tuple[Any, str, int]:
    """(image, LLaVA question ``<image>\\n…``, max_tokens) of a chat-completions body, or ApiError."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if body.get("model") not in (None, "", cfg.served_model_name):
        raise ApiError(404, f"model {body.get('model')!r} is not served here; this server has "
                       f"{cfg.served_model_name!r}", "not_found_error")  # fmt: skip
    if body.get("stream"):
        raise ApiError(400, "stream is not supported")
    temperature = body.get("temperature")
    if temperature not in (None, 0, 0.0) or body.get("n", 1) != 1:
        raise ApiError(400, "only greedy decoding is served: temperature 0 (or unset) and n 1")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is None:
        limit = cfg.max_tokens
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= cfg.max_tokens:
        raise ApiError(400, f"max_tokens must be an integer in 1..{cfg.max_tokens}")
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict):
        raise ApiError(400, "messages must hold exactly one user message (LLaRA queries are single-turn)")
    msg = messages[0]
    content = msg.get("content")
    if msg.get("role") != "user" or not isinstance(content, list):
        raise ApiError(400, "the message must have role 'user' and a list of content parts (image + text)")
    images = [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    if len(images) + len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "content parts must be {'type': 'image_url', ...} or {'type': 'text', 'text': str}")
    if len(images) != 1:
        raise ApiError(400, f"exactly one image part is required, got {len(images)}")
    url = (images[0].get("image_url") or {}).get("url") if isinstance(images[0].get("image_url"), dict) else None
    if not isinstance(url, str):
        raise ApiError(400, "image_url must be {'url': 'data:image/png;base64,…'}")
    text = "\n".join(str(t) for t in texts).strip()
    if not text:
        raise ApiError(400, "a text part with the prompt is required")
    if len(text) > cfg.max_prompt_chars:
        raise ApiError(413, f"prompt over {cfg.max_prompt_chars} characters")
    return decode_image(url, cfg), f"{IMAGE_TOKEN}\n{text}", limit


def _error(status: int, message: str, kind: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def create_app(policy: Any, cfg: ServeConfig, worker: ThreadPoolExecutor) -> Any:
    """The FastAPI app around a loaded policy (``VLMPolicy``: ``generate`` and ``max_new_tokens``)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request

    queue: asyncio.Queue[Query] = asyncio.Queue(maxsize=cfg.max_queue)
    key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
    stats = {"requests": 0, "batches": 0}

    def run_batch(batch: list[Query]) -> list[str]:
        policy.max_new_tokens = batch[0].max_tokens
        out: list[str] = policy.generate([q.image for q in batch], [q.question for q in batch])
        return out

    async def batcher() -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await queue.get()]
            while len(waiting) < cfg.max_batch and not queue.empty():  # what queued while the model was busy
                waiting.append(queue.get_nowait())
            groups: dict[int, list[Query]] = {}
            for q in waiting:
                if not q.future.done():  # else its client went away
                    groups.setdefault(q.max_tokens, []).append(q)
            for group in groups.values():
                stats["batches"] += 1
                try:
                    answers = await loop.run_in_executor(worker, run_batch, group)
                except Exception as exc:  # the model failed: these requests get a 500 JSON, the server lives
                    log.exception("generate failed")
                    for q in group:
                        if not q.future.done():
                            q.future.set_exception(exc)
                    continue
                for q, a in zip(group, answers, strict=True):
                    if not q.future.done():
                        q.future.set_result(a)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        task = asyncio.create_task(batcher())
        yield
        task.cancel()

    app = FastAPI(title="llara serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Any:
        return _error(exc.status, str(exc), exc.kind)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Any:
        log.exception("request failed")
        return _error(500, f"internal error: {type(exc).__name__}", "server_error")

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        if key and request.url.path != "/health":
            sent = request.headers.get("authorization", "")
            if not secrets.compare_digest(sent.encode(), f"Bearer {key}".encode()):
                return _error(401, "missing or wrong bearer key", "authentication_error")
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": cfg.served_model_name, "queued": queue.qsize(), **stats}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": cfg.served_model_name, "object": "model", "created": 0,
                                            "owned_by": "llara"}]}  # fmt: skip

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError as exc:
            raise ApiError(400, f"the body is not JSON ({exc})") from exc
        image, question, limit = parse_request(body, cfg)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(Query(image, question, limit, fut))
        except asyncio.QueueFull as exc:
            raise ApiError(503, f"the model is busy ({cfg.max_queue} requests waiting); retry later",
                           "server_overloaded") from exc  # fmt: skip
        stats["requests"] += 1
        text = await fut
        return {
            "id": f"chatcmpl-{secrets.token_hex(8)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": cfg.served_model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    return app


def serve(cfg: ServeConfig) -> None:
    """Load the model on its worker thread, then serve until interrupted."""
    import uvicorn

    from llara_core.model.runtime import VLMPolicy
    from llara_core.resources import demo_model_path

    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llara_serve")
    policy = worker.submit(VLMPolicy.from_pretrained, cfg.model or demo_model_path(), adapter=cfg.adapter,
                           device=cfg.device, dtype=cfg.dtype).result()  # fmt: skip
    app = create_app(policy, cfg, worker)
    print(f"llara serve: {cfg.model or 'shipped demo model'} as {cfg.served_model_name!r} at "
          f"http://{cfg.host}:{cfg.port}/v1", flush=True)  # fmt: skip
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    finally:
        worker.shutdown(wait=False, cancel_futures=True)
