"""``llara serve`` under hostile input and abandoned load: bounded cost, isolated failures, no work for clients gone.

The server runs as a real process on 127.0.0.1 under an address-space limit
(``RLIMIT_AS``, what ``prlimit --as`` sets): an image that would make the
processor allocate gigabytes fails with a MemoryError inside the server (and this
test) rather than exhausting the machine. Batch isolation and the unhealthy
state are tested on the app in this process, with the real shipped model and a
failure injected into one request.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import free_port, start_server

KEY_ENV = "LLARA_TEST_LIMITS_KEY"
HEADROOM = 3 * 1024**3  # address space the server may map beyond what it holds once the model is loaded


def _vm_size(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server measured once without a limit, then started under its loaded size + 3 GB of address space."""
    os.environ[KEY_ENV] = "limits-key"
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    port = free_port()
    probe = start_server(port, log=log)
    size = _vm_size(probe.pid)
    probe.terminate()
    probe.wait(10)
    port = free_port()
    proc = start_server(port, "--api-key-env", KEY_ENV, "--max-body-bytes", "2000000", "--max-batch", "4",
                        log=log, address_space=size + HEADROOM)  # fmt: skip
    yield f"http://127.0.0.1:{port}", proc, log
    proc.terminate()
    proc.wait(10)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


def _request(base: str, method: str, path: str, body: bytes | None = None, auth: str | None = "Bearer limits-key",
             headers: dict | None = None) -> tuple[int, dict]:  # fmt: skip
    h = {"content-type": "application/json", **({"authorization": auth} if auth else {}), **(headers or {})}
    req = urllib.request.Request(base + path, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _body(url: str, text: str = "what is here?", **extra) -> bytes:
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]
    return json.dumps({"model": "llara", "max_tokens": 16, "messages": [{"role": "user", "content": content}],
                       **extra}).encode()  # fmt: skip


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _saved(shape: tuple[int, int], fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((*shape, 3), np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height over a few hundred bytes of zlib-compressed zero rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = zlib.compress(b"\0" * min(height * (width + 1), 200_000), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _healthy(base: str) -> dict:
    code, got = _request(base, "GET", "/health", auth=None)
    assert code == 200 and got["status"] == "ok", got
    return got


def test_images_that_would_cost_gigabytes_are_refused_from_their_header(server):
    base, proc, _ = server
    cases = {
        "1x30000 PNG (204 bytes)": (_data_url(_png_declaring(1, 30000)), 413, "per side"),
        "1x200000 PNG": (_data_url(_png_declaring(1, 200000)), 413, "per side"),
        "1x3000 PNG (aspect ratio)": (_data_url(_png_declaring(1, 3000)), 413, "aspect ratio"),
        "50000x50000 PNG (661 bytes, a decompression bomb)": (_data_url(_png_declaring(50000, 50000)), 413, "pixels"),
        "truncated PNG": (_data_url(_saved((64, 64), "PNG")[:60]), 400, "cannot be decoded"),
        "GIF sent as image/png": (_data_url(_saved((32, 32), "GIF")), 400, "not a PNG image"),
        "TIFF sent as image/png": (_data_url(_saved((32, 32), "TIFF")), 400, "not a PNG image"),
        "BMP sent as image/jpeg": (_data_url(_saved((32, 32), "BMP"), "image/jpeg"), 400, "not a JPEG image"),
        "PNG sent as image/webp": (_data_url(_saved((32, 32), "PNG"), "image/webp"), 400, "not a WEBP image"),
    }
    for name, (url, status, why) in cases.items():
        code, got = _request(base, "POST", "/v1/chat/completions", _body(url))
        assert code == status and why in got["error"]["message"], (name, code, got)
        assert set(got["error"]) == {"message", "type", "code"}
    assert proc.poll() is None
    _healthy(base)
    code, got = _request(base, "POST", "/v1/chat/completions", _body(_data_url(_saved((48, 64), "JPEG"), "image/jpeg")))
    assert code == 200, got  # a JPEG labelled as one is served


def test_bodies_prompts_and_json_that_would_cost_too_much_are_4xx(server):
    base, _, log = server
    png = _data_url(_saved((32, 32), "PNG"))
    before = len(log.read_text().splitlines())
    code, got = _request(base, "POST", "/v1/chat/completions", _body(png, "机" * 3000))  # 3000 chars, ~9000 tokens
    assert code == 413 and "tokens" in got["error"]["message"], got
    code, got = _request(base, "POST", "/v1/chat/completions", b"[" * 100_000)
    assert code == 400 and "nested too deeply" in got["error"]["message"], got
    code, got = _request(base, "POST", "/v1/chat/completions", _body(png, temperature=False))
    assert code == 400 and "greedy" in got["error"]["message"]
    code, got = _request(base, "POST", "/v1/chat/completions", _body(png, "<image> twice"))
    assert code == 400 and "must not contain" in got["error"]["message"]
    # over the body limit: declared (refused before the body is read), and streamed without a length
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/v1/chat/completions")  # declares 50 MB and sends none: answered from the headers
    for name, value in (("authorization", "Bearer limits-key"), ("content-length", "50000000")):
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "body over 2000000 bytes" in json.loads(resp.read())["error"]["message"]
    conn.close()
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    sent = []

    def chunks():
        for _ in range(50):  # 50 MB offered; the server must stop reading past 2 MB
            sent.append(1)
            yield b" " * 1_000_000

    try:
        conn.request("POST", "/v1/chat/completions", body=chunks(), encode_chunked=True,
                     headers={"authorization": "Bearer limits-key", "content-type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        assert resp.status == 413 and "body over" in json.loads(resp.read())["error"]["message"]
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered 413 and closed while we were still sending: also a refusal
    finally:
        conn.close()
    assert len(sent) < 50
    lines = log.read_text().splitlines()[before:]
    assert len(lines) <= 8 and not any("Traceback" in ln for ln in lines), lines  # one line per refusal
    _healthy(base)


def test_errors_use_the_openai_shape_and_the_bearer_scheme_is_case_insensitive(server):
    base, _, _ = server
    for method, path, status in (("GET", "/v1/nothing", 404), ("GET", "/v1/chat/completions", 405)):
        code, got = _request(base, method, path)
        assert code == status and got["error"]["code"] == status and "detail" not in got, got
    for auth, status in (("bearer limits-key", 200), ("BEARER  limits-key", 200), ("Bearer wrong", 401), (None, 401)):
        code, got = _request(base, "GET", "/v1/models", auth=auth)
        assert code == status, (auth, got)


def test_abandoned_requests_are_dropped_and_the_next_client_is_served(server):
    base, _, _ = server
    host, port = base.removeprefix("http://").split(":")
    body = _body(_data_url(_saved((224, 224), "PNG")), max_tokens=256)
    start = _healthy(base)
    socks = []
    for _ in range(16):  # sixteen requests sent, then their clients go away
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer limits-key\r\n"
                  b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        s.close()
    time.sleep(1.5)
    after = _healthy(base)
    assert after["abandoned"] - start["abandoned"] >= 12, after  # noticed and dropped, not run
    assert after["batches"] - start["batches"] <= 4, after
    t0 = time.monotonic()
    code, got = _request(base, "POST", "/v1/chat/completions", body)
    assert code == 200 and time.monotonic() - t0 < 30, got


def test_a_public_bind_without_a_key_refuses_to_start():
    from llara_core.serving.server import ServeConfig, is_loopback

    run = subprocess.run([sys.executable, "-m", "llara_core.apps.cli", "serve", "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2 and "--api-key-env" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert ServeConfig(host="0.0.0.0", allow_unauthenticated=True).allow_unauthenticated
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("robot-pc.local") and not is_loopback("192.168.1.5")


class _Failing:
    """The shipped model, with one kind of failure injected into generate() for a marked question."""

    def __init__(self, policy, fail: type[BaseException]) -> None:
        self.policy, self.fail, self.calls = policy, fail, []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def __setattr__(self, name, value):
        if name == "max_new_tokens":
            self.policy.max_new_tokens = value
        else:
            object.__setattr__(self, name, value)

    def generate(self, images, questions, stop=None):
        self.calls.append(len(questions))
        if any("FAIL" in q for q in questions):
            raise self.fail("injected")
        return self.policy.generate(images, questions, stop)


@pytest.fixture(scope="module")
def shipped():
    from llara_core.model.policy import load_policy

    return load_policy()


def _app_client(policy, **cfg):
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from llara_core.serving.server import ServeConfig, create_app

    worker = ThreadPoolExecutor(1)
    return TestClient(create_app(policy, ServeConfig(**cfg), worker)), worker


def test_a_request_that_fails_in_the_model_fails_alone_and_its_batch_is_answered(shipped):
    policy = _Failing(shipped, ValueError)
    client, worker = _app_client(policy, max_batch=4)
    png = _data_url(_saved((64, 64), "PNG"))
    gate = threading.Event()
    worker.submit(gate.wait)  # the model is busy: the first request waits for it alone, the next four queue up
    results = {}

    def send(k: int) -> None:
        text = "FAIL" if k == 3 else f"what is here {k}?"
        results[k] = client.post("/v1/chat/completions", content=_body(png, text))

    def wait_for(key: str, n: int) -> None:
        end = time.monotonic() + 30
        while client.get("/health").json()[key] < n and time.monotonic() < end:
            time.sleep(0.02)

    with client:
        threads = [threading.Thread(target=send, args=(k,)) for k in range(5)]
        threads[0].start()
        wait_for("batches", 1)  # taken by the batcher, handed to the busy model
        for t in threads[1:]:
            t.start()
        wait_for("queued", 4)
        gate.set()
        for t in threads:
            t.join(60)
        assert policy.calls == [1, 4, 1, 1, 1, 1], policy.calls  # the batch failed, then each alone
        codes = {k: r.status_code for k, r in results.items()}
        assert codes == {0: 200, 1: 200, 2: 200, 3: 500, 4: 200}, codes
        assert "generate failed: ValueError" in results[3].json()["error"]["message"]
        assert client.get("/health").json()["status"] == "ok"  # an input error is not the server's health
    worker.shutdown()


def test_out_of_memory_in_the_model_makes_the_server_unhealthy_not_a_500_forever(shipped):
    policy = _Failing(shipped, MemoryError)
    client, worker = _app_client(policy)
    png = _data_url(_saved((64, 64), "PNG"))
    with client:
        assert client.post("/v1/chat/completions", content=_body(png)).status_code == 200
        r = client.post("/v1/chat/completions", content=_body(png, "FAIL"))
        assert r.status_code == 503 and "out of memory" in r.json()["error"]["message"], r.json()
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy" and health.json()["reason"]
        r = client.post("/v1/chat/completions", content=_body(png))  # a good request now: refused, saying why
        assert r.status_code == 503 and "unhealthy" in r.json()["error"]["message"]
    worker.shutdown()


def test_stop_ends_an_answer_between_decoding_steps(shipped):
    from PIL import Image

    im = Image.new("RGB", (64, 64))
    q = "<image>\nPick up the red block."
    full = shipped.generate([im, im], [q, q])
    assert full[0] and full[1]
    kept, stopped = shipped.generate([im, im], [q, q], stop=lambda i: i == 1)
    assert kept == full[0] and full[1].startswith(stopped) and len(stopped) < len(full[1]) // 4  # one step in
    (alone,) = shipped.generate([im], [q], stop=lambda i: True)  # the speculative single path too
    assert full[0].startswith(alone) and len(alone) < len(full[0]) // 4
