"""``llara serve``: an OpenAI-compatible server for any model ``VLMPolicy.from_pretrained`` loads.

``POST /v1/chat/completions`` (one user message: one image part as a base64
data URL + text), ``GET /v1/models``, ``GET /health`` — what the ``openai``
backend (:mod:`llara_core.serving.client`) and any OpenAI client send. FastAPI +
uvicorn; binds to 127.0.0.1 unless told otherwise; a bearer key read from an
environment variable, required for any other bind unless
``--allow-unauthenticated`` says otherwise.

Why a server of our own beside vLLM: it serves exactly the local backend's
model path (LoRA folders, the tiny demo model, CPU), so an answer through HTTP
is token-for-token the local one (tested) — the reference a vLLM deployment is
checked against with ``llara predict --backend openai``.

What one request may cost is bounded before any decoding, and every refusal is a
4xx JSON error in OpenAI's ``{"error": {...}}`` shape with one log line, never a
traceback: the body (``max_body_bytes``, counted while it is read), JSON nesting,
the image (file bytes, pixels, longest side and aspect ratio — the processor
scales the shortest side up, so a 1×30000 PNG of 204 bytes would become
gigabytes — and only PNG, JPEG or WebP, the one the data URL names), the prompt
in tokens against the model's context, sampling (greedy only). JSON parsing,
image decoding and token counting run on their own threads, off the event loop.

One worker thread owns the model (torch's thread pool belongs to the thread
that loaded it). Requests wait in a bounded queue (503 when full); what waits
when the model frees up runs as one ``generate()`` batch up to ``max_batch``.
A request whose client disconnected, or that passed ``request_timeout_s``, is
dropped from the queue and stopped between decoding steps. A batch that fails
is answered one request at a time, so one bad input fails alone; an
out-of-memory error marks the server unhealthy (``/health`` 503, and every
request 503 saying why) instead of answering 500 forever.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations at runtime
# (``request: Request`` must be the class, not a string naming a class imported inside create_app).
import asyncio
import base64
import binascii
import io
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from llara_core.config import setting
from llara_core.errors import LlaraError
from llara_core.language.prompts import IMAGE_TOKEN

log = logging.getLogger(__name__)
#: the image types the API accepts, and the Pillow decoder each must be decoded with (no other format is tried)
IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
IMAGE_TYPES = tuple(IMAGE_FORMATS)


@dataclass(frozen=True)
class ServeConfig:
    """``llara serve`` settings (flags)."""

    model: str = setting("", "model folder or LoRA folder (empty: the shipped demo model)", path=True)
    adapter: str | None = setting(None, "LoRA adapter folder applied on the model", path=True)
    device: str = setting("cpu", "torch device (cpu, cuda, cuda:1)")
    dtype: str | None = setting(None, "torch dtype (float16, bfloat16; unset: the checkpoint's)")
    host: str = setting("127.0.0.1", "address to bind; any other than loopback needs --api-key-env")
    port: int = setting(8000, "TCP port")
    served_model_name: str = setting("llara", "the model's name in /v1/models and in requests")
    api_key_env: str = setting("", "environment variable holding the bearer key clients must send (unset: none)")
    allow_unauthenticated: bool = setting(False, "bind a non-loopback --host without a key (a warning is printed)")
    # measured on 2 CPU cores (scripts/bench_remote.py): 16 clients 19.0 answers/s batched vs 6.9 one at a time
    max_batch: int = setting(8, "most requests answered in one generate() call (1: one at a time, speculative)")
    max_queue: int = setting(64, "requests waiting beyond this get 503")
    max_tokens: int = setting(256, "upper bound of a request's max_tokens")
    max_body_bytes: int = setting(8_000_000, "largest request body, counted while it is read (413 beyond)")
    max_image_bytes: int = setting(4_000_000, "largest decoded image file accepted (413 beyond)")
    max_image_pixels: int = setting(4096 * 4096, "largest image (width x height) accepted (413 beyond)")
    max_image_side: int = setting(4096, "longest image side in pixels accepted (413 beyond)")
    max_aspect_ratio: float = setting(8.0, "largest long side / short side accepted (413 beyond)")
    max_prompt_chars: int = setting(16_000, "longest prompt text accepted (413 beyond), checked before tokenizing")
    max_prompt_tokens: int = setting(0, "most prompt tokens (image included); 0: the model's context - max_tokens")
    request_timeout_s: float = setting(60.0, "a request not answered within this gets 504 and is stopped")
    parse_threads: int = setting(2, "threads that parse JSON, decode images and count tokens (off the event loop)")

    def __post_init__(self) -> None:
        counts = (self.max_batch, self.max_queue, self.max_tokens, self.max_body_bytes, self.max_image_bytes,
                  self.max_image_pixels, self.max_image_side, self.max_prompt_chars, self.parse_threads)  # fmt: skip
        if min(counts) < 1 or self.max_prompt_tokens < 0:
            raise ValueError("the max_* limits and parse_threads must be >= 1 (max_prompt_tokens >= 0)")
        if self.max_aspect_ratio < 1 or self.request_timeout_s <= 0:
            raise ValueError("max_aspect_ratio must be >= 1 and request_timeout_s > 0")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise ValueError(f"api_key_env names {self.api_key_env!r}, which is not set (or empty)")
        if not self.api_key_env and not is_loopback(self.host) and not self.allow_unauthenticated:
            raise ValueError(
                f"--host {self.host} lets anyone on the network use the model: set --api-key-env VAR (clients then "
                "send the key in $VAR as a bearer token), or pass --allow-unauthenticated"
            )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class ApiError(LlaraError):
    """A refused request: HTTP status + OpenAI-style error type and message."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", close: bool = False) -> None:
        super().__init__(message)
        self.status, self.kind, self.close = status, kind, close  # close: end the connection (an unread body)


@dataclass
class Query:
    """One request waiting for the model; ``gone`` is set when its client left (its answer is then not wanted)."""

    image: Any
    question: str
    max_tokens: int
    deadline: float
    future: asyncio.Future[str] = field(repr=False)
    gone: threading.Event = field(default_factory=threading.Event, repr=False)

    def unwanted(self) -> bool:
        """Asked between decoding steps, on the model's thread."""
        return self.gone.is_set() or time.monotonic() > self.deadline


def decode_image(url: str, cfg: ServeConfig) -> Any:
    """A PIL RGB image from a ``data:image/…;base64,`` URL, or ApiError saying what is wrong with it.

    Everything that bounds the cost is checked on the header, before the pixels
    are decoded: the format is the one the data URL names, and the size is within
    the pixel, side and aspect-ratio limits.
    """
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:"):
        raise ApiError(
            400, "image_url must be a base64 data URL (data:image/png;base64,…); remote URLs are not fetched"
        )
    head, _, payload = url.partition(",")
    mime = head[5:].split(";")[0].lower()
    if mime not in IMAGE_FORMATS or not head.endswith(";base64"):
        raise ApiError(400, f"data URL of type {mime or '?'!r} is not a base64 image; use one of {IMAGE_TYPES}")
    if len(payload) * 3 // 4 > cfg.max_image_bytes:
        raise ApiError(413, f"image over {cfg.max_image_bytes} bytes")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"image data is not valid base64 ({exc})") from exc
    fmt = IMAGE_FORMATS[mime]
    try:
        img = Image.open(io.BytesIO(raw), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ApiError(413, f"image over {cfg.max_image_pixels} pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ApiError(400, f"image data is not a {fmt} image (the data URL says {mime})") from exc
    w, h = img.size
    if w * h > cfg.max_image_pixels or max(w, h) > cfg.max_image_side:
        raise ApiError(413, f"image {w}x{h} over {cfg.max_image_pixels} pixels or {cfg.max_image_side} per side")
    if max(w, h) > cfg.max_aspect_ratio * max(min(w, h), 1):
        raise ApiError(413, f"image {w}x{h}: aspect ratio over {cfg.max_aspect_ratio:g} (the model would scale "
                       "its short side up to its input size)")  # fmt: skip
    try:
        return img.convert("RGB")
    except MemoryError:
        raise
    except Exception as exc:  # truncated or corrupt pixel data: decoders raise OSError, SyntaxError, EOFError, …
        raise ApiError(400, f"image data cannot be decoded ({type(exc).__name__}: {exc})") from exc


def parse_request(body: Any, cfg: ServeConfig) -> tuple[str, str, int]:
    """(image data URL, LLaVA question ``<image>\\n…``, max_tokens) of a chat-completions body, or ApiError."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if body.get("model") not in (None, "", cfg.served_model_name):
        raise ApiError(404, f"model {body.get('model')!r} is not served here; this server has "
                       f"{cfg.served_model_name!r}", "not_found_error")  # fmt: skip
    if body.get("stream"):
        raise ApiError(400, "stream is not supported")
    temperature, n = body.get("temperature"), body.get("n", 1)
    greedy = temperature is None or (isinstance(temperature, int | float) and not isinstance(temperature, bool)
                                     and temperature == 0)  # fmt: skip
    if not greedy or isinstance(n, bool) or n != 1:
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
    if IMAGE_TOKEN in text:
        raise ApiError(400, f"the text must not contain {IMAGE_TOKEN!r}: the image part places the image")
    if len(text) > cfg.max_prompt_chars:
        raise ApiError(413, f"prompt over {cfg.max_prompt_chars} characters")
    return url, f"{IMAGE_TOKEN}\n{text}", limit


def prepare(
    raw: bytes, cfg: ServeConfig, count_tokens: Callable[[str], int] | None, context: int | None
) -> tuple[Any, str, int]:
    """A request body -> (image, question, max_tokens), or ApiError: the CPU-heavy part of a request (JSON, base64,
    image header and pixels, tokens), run on a parse thread."""
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise ApiError(400, "the body is JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, f"the body is not JSON ({exc})") from exc
    url, question, limit = parse_request(body, cfg)
    if count_tokens is not None:
        budget = cfg.max_prompt_tokens or (context - limit if context else 0)
        if budget:
            n = count_tokens(question)
            if n > budget:
                raise ApiError(413, f"prompt of {n} tokens (image included) over the {budget} this model takes "
                               f"with max_tokens {limit}")  # fmt: skip
    return decode_image(url, cfg), question, limit


def _error(status: int, message: str, kind: str, close: bool = False) -> Any:
    from fastapi.responses import JSONResponse

    headers = {"connection": "close"} if close else None  # else uvicorn reads (and drops) the rest of a 50 MB body
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers)  # fmt: skip


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is over ``limit`` bytes (declared or received)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ApiError(413, f"body over {limit} bytes", close=True)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body over {limit} bytes", close=True)
        chunks.append(chunk)
    return b"".join(chunks)


def bearer_ok(header: str, key: str) -> bool:
    """``Authorization: Bearer <key>`` (the scheme is case-insensitive, RFC 7235 §2.1), compared in constant time."""
    scheme, _, token = header.strip().partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), key.encode())


def is_out_of_memory(exc: BaseException) -> bool:
    """Host (MemoryError) or device (torch.OutOfMemoryError) memory ran out."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch
    except ImportError:
        return False
    return isinstance(exc, torch.OutOfMemoryError)


def create_app(policy: Any, cfg: ServeConfig, worker: ThreadPoolExecutor) -> Any:
    """The FastAPI app around a loaded policy (``generate(images, questions, stop)``, ``max_new_tokens``,
    and optionally ``prompt_counter()`` / ``context_length`` for the token limit)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from starlette.exceptions import HTTPException

    queue: asyncio.Queue[Query] = asyncio.Queue(maxsize=cfg.max_queue)
    parsers = ThreadPoolExecutor(cfg.parse_threads, thread_name_prefix="llara_parse")
    key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
    counter = getattr(policy, "prompt_counter", None)
    count_tokens = counter() if callable(counter) else None
    context = getattr(policy, "context_length", None)
    stats = {"requests": 0, "batches": 0, "abandoned": 0, "timed_out": 0, "failed": 0}
    health = {"unhealthy": ""}  # why the server can no longer answer (set once, by an out-of-memory error)

    def generate(group: list[Query]) -> list[str]:
        policy.max_new_tokens = group[0].max_tokens
        out: list[str] = policy.generate([q.image for q in group], [q.question for q in group],
                                         stop=lambda i: group[i].unwanted())  # fmt: skip
        return out

    def run_group(group: list[Query]) -> list[str | BaseException]:
        """On the model's thread: the answers, or per request the exception that request alone fails with."""
        if health["unhealthy"]:
            return [ApiError(503, f"the server is unhealthy: {health['unhealthy']}", "server_error")] * len(group)
        try:
            return list(generate(group))
        except Exception as exc:
            if is_out_of_memory(exc):
                health["unhealthy"] = f"out of memory in generate() ({type(exc).__name__}); restart the server"
                log.error("out of memory in generate(): /health now answers 503")
                return run_group(group)
            if len(group) == 1:
                log.error("generate failed for one request: %s: %s", type(exc).__name__, exc)
                return [exc]
            log.warning("a batch of %d failed (%s: %s): answering them one at a time", len(group),
                        type(exc).__name__, exc)  # fmt: skip
            return [run_group([q])[0] for q in group]

    async def batcher() -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await queue.get()]
            while len(waiting) < cfg.max_batch and not queue.empty():  # what queued while the model was busy
                waiting.append(queue.get_nowait())
            groups: dict[int, list[Query]] = {}
            for q in waiting:
                if q.gone.is_set() or q.future.done():
                    continue  # its client went away: no work for it
                if time.monotonic() > q.deadline:
                    q.future.set_exception(ApiError(504, f"not answered within {cfg.request_timeout_s:g} s",
                                                    "timeout"))  # fmt: skip
                    continue
                groups.setdefault(q.max_tokens, []).append(q)
            for group in groups.values():
                stats["batches"] += 1
                results = await loop.run_in_executor(worker, run_group, group)
                for q, r in zip(group, results, strict=True):
                    if q.future.done():
                        continue
                    if q.gone.is_set():
                        continue
                    if time.monotonic() > q.deadline:
                        r = ApiError(504, f"not answered within {cfg.request_timeout_s:g} s", "timeout")
                    if isinstance(r, BaseException):
                        q.future.set_exception(r)
                    else:
                        q.future.set_result(r)

    async def watch(request: Request, q: Query) -> None:
        """Mark the query gone when its client disconnects (uvicorn keeps running a handler whose client left)."""
        while not q.future.done():
            if await request.is_disconnected():
                q.gone.set()
                stats["abandoned"] += 1
                if not q.future.done():
                    q.future.cancel()
                return
            await asyncio.sleep(0.05)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        task = asyncio.create_task(batcher())
        yield
        task.cancel()
        parsers.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="llara serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Any:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, str(exc)[:200])
        return _error(exc.status, str(exc), exc.kind, exc.close)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Any:  # 404, 405: the OpenAI shape too
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Any:
        stats["failed"] += 1
        log.error("request failed: %s: %s", type(exc).__name__, exc)
        return _error(500, f"internal error: {type(exc).__name__}", "server_error")

    def authorize(request: Request) -> None:
        if key and not bearer_ok(request.headers.get("authorization", ""), key):
            raise ApiError(401, "missing or wrong bearer key", "authentication_error")

    @app.get("/health")
    async def health_check() -> Any:
        from fastapi.responses import JSONResponse

        body = {"status": "unhealthy" if health["unhealthy"] else "ok", "model": cfg.served_model_name,
                "queued": queue.qsize(), **stats}  # fmt: skip
        if health["unhealthy"]:
            body["reason"] = health["unhealthy"]
        return JSONResponse(body, status_code=503 if health["unhealthy"] else 200)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [{"id": cfg.served_model_name, "object": "model", "created": 0,
                                            "owned_by": "llara"}]}  # fmt: skip

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        authorize(request)
        if health["unhealthy"]:
            raise ApiError(503, f"the server is unhealthy: {health['unhealthy']}", "server_error")
        loop = asyncio.get_running_loop()
        raw = await read_body(request, cfg.max_body_bytes)
        image, question, limit = await loop.run_in_executor(parsers, prepare, raw, cfg, count_tokens, context)
        q = Query(image, question, limit, time.monotonic() + cfg.request_timeout_s, loop.create_future())
        try:
            queue.put_nowait(q)
        except asyncio.QueueFull as exc:
            raise ApiError(503, f"the model is busy ({cfg.max_queue} requests waiting); retry later",
                           "server_overloaded") from exc  # fmt: skip
        stats["requests"] += 1
        watcher = asyncio.create_task(watch(request, q))
        try:
            text = await asyncio.wait_for(asyncio.shield(q.future), cfg.request_timeout_s + 1.0)
        except asyncio.CancelledError:
            if q.gone.is_set():  # the client left: nobody reads this answer
                return _error(499, "client closed the request", "client_closed")
            raise
        except TimeoutError as exc:
            q.gone.set()
            stats["timed_out"] += 1
            raise ApiError(504, f"not answered within {cfg.request_timeout_s:g} s", "timeout") from exc
        except ApiError:
            raise
        except Exception as exc:  # the model failed on this request alone (run_group isolated it): a 500, one line
            stats["failed"] += 1
            raise ApiError(500, f"generate failed: {type(exc).__name__}: {exc}"[:500], "server_error") from exc
        finally:
            watcher.cancel()
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
    import sys

    import uvicorn

    from llara_core.model.runtime import VLMPolicy
    from llara_core.resources import demo_model_path

    if not cfg.api_key_env and not is_loopback(cfg.host):
        print(f"llara serve: WARNING: --host {cfg.host} without a key: anyone who reaches this port can use the "
              "model (--allow-unauthenticated)", file=sys.stderr, flush=True)  # fmt: skip
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llara_serve")
    policy = worker.submit(VLMPolicy.from_pretrained, cfg.model or demo_model_path(), adapter=cfg.adapter,
                           device=cfg.device, dtype=cfg.dtype).result()  # fmt: skip
    app = create_app(policy, cfg, worker)
    print(f"llara serve: {cfg.model or 'shipped demo model'} as {cfg.served_model_name!r} at "
          f"http://{cfg.host}:{cfg.port}/v1", flush=True)  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="llara serve: %(message)s")
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    finally:
        worker.shutdown(wait=False, cancel_futures=True)
