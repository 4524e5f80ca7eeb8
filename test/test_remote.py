"""Remote inference: ``llara serve`` in its own process on 127.0.0.1 and the ``openai`` backend against it.

The backend must give the local model's answer token for token, fail with a
typed error (never an action) when the server is gone, hangs or answers
garbage, and the server must refuse bad requests with a 4xx JSON error.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from serve_helpers import free_port, start_server

from llara_core.model.policy import RemoteConfig
from llara_core.serving.client import OpenAIPolicy, RemoteError, chat_messages

KEY_ENV = "LLARA_TEST_SERVE_KEY"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ[KEY_ENV] = "s3cret-test-key"
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc = start_server(port, "--api-key-env", KEY_ENV, "--max-image-bytes", "300000", "--max-prompt-chars", "4000",
                        log=log)  # fmt: skip
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(10)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def local():
    from llara_core.model.policy import load_policy

    return load_policy()


def sim_images(n: int):
    """n simulator frames of different families and seeds, with their instructions."""
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task

    out = []
    families = ("l1_placement", "l2_combinatorial", "l3_novel", "multi_step")
    for k in range(n):
        task = make_task(families[k % len(families)], 100 + k)
        with TabletopEnv(task.scene) as env:
            out.append((env.render(), task.instruction))
    return out


def test_the_openai_backend_answers_token_for_token_as_the_local_model(server, local):
    from llara_core.language.actions import ActionStep

    remote = OpenAIPolicy(RemoteConfig(base_url=server, api_key_env=KEY_ENV))
    assert remote.model == "llara"  # asked from /v1/models
    history = [ActionStep((0.30, 0.40), (0.55, 0.60))]
    frames = sim_images(20)
    for k, (image, instruction) in enumerate(frames):
        hist = history if k % 5 == 4 else []  # some re-queries carry "You have finished"
        want, got = local.act(image, instruction, history=hist), remote.act(image, instruction, history=hist)
        assert got.prompt == want.prompt
        assert got.text == want.text, (k, instruction)
        assert [s.pick for s in got.steps] == [s.pick for s in want.steps] and got.latency_s > 0


def test_llara_eval_with_the_openai_backend_matches_the_local_results(server, tmp_path):
    from llara_core.apps.evaluate import EvalConfig, evaluate
    from llara_core.model.policy import load_policy

    local = evaluate(load_policy, EvalConfig(task_family=("l1_placement",), episodes=3))
    cmd = [sys.executable, "-m", "llara_core.apps.cli", "eval", "--backend", "openai", "--base-url", server,
           "--api-key-env", KEY_ENV, "--task-family", "l1_placement", "--episodes", "3", "--out",
           str(tmp_path / "eval")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    remote = json.loads((tmp_path / "eval" / "eval.json").read_text())
    keys = ("seed", "success", "steps", "answers")
    assert [{k: e.get(k) for k in keys} for e in remote["episodes"]] == [
        {k: e.get(k) for k in keys} for e in local["episodes"]]  # fmt: skip


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json",
                                                                          **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _png(shape: tuple[int, int, int], noise: bool = False) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, shape, dtype=np.uint8) if noise else np.zeros(shape, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_bad_requests_are_refused_with_a_4xx_json_error(server):
    url = f"{server}/chat/completions"
    auth = {"authorization": f"Bearer {os.environ[KEY_ENV]}"}
    good = {"model": "llara", "temperature": 0, "max_tokens": 8,
            "messages": chat_messages("<image>\nwhat is here?", np.zeros((32, 32, 3), np.uint8))}  # fmt: skip

    def with_content(content) -> dict:
        return {**good, "messages": [{"role": "user", "content": content}]}

    text = {"type": "text", "text": "what is here?"}
    small = {"type": "image_url", "image_url": {"url": _png((32, 32, 3))}}
    cases = {
        "not json": (b"{nope", 400, "not JSON"),
        "no image": (with_content([text]), 400, "exactly one image"),
        "two images": (with_content([small, small, text]), 400, "exactly one image"),
        "string content": (with_content("hello"), 400, "list of content parts"),
        "not an image": (
            with_content([{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}, text]),
            400,
            "not a base64 image",
        ),
        "remote url": (
            with_content([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}, text]),
            400,
            "base64 data URL",
        ),
        "bad base64": (
            with_content([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, text]),
            400,
            "not valid base64",
        ),
        "undecodable": (
            with_content([{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}, text]),
            400,
            "not a PNG image",
        ),
        "image too large": (
            with_content([{"type": "image_url", "image_url": {"url": _png((400, 400, 3), True)}}, text]),
            413,
            "over 300000 bytes",
        ),
        "prompt too long": (with_content([small, {"type": "text", "text": "x" * 5000}]), 413, "over 4000"),
        "sampling": ({**good, "temperature": 0.7}, 400, "greedy"),
        "unknown model": ({**good, "model": "gpt-9"}, 404, "not served here"),
        "max_tokens": ({**good, "max_tokens": 100000}, 400, "max_tokens"),
        "two messages": ({**good, "messages": good["messages"] * 2}, 400, "exactly one user message"),
    }
    for name, (body, status, why) in cases.items():
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        code, got = _post(url, raw, auth)
        assert code == status and why in got["error"]["message"], (name, code, got)
    code, got = _post(url, json.dumps(good).encode())  # no key
    assert code == 401 and got["error"]["type"] == "authentication_error"
    code, got = _post(url, json.dumps(good).encode(), auth)
    assert code == 200 and isinstance(got["choices"][0]["message"]["content"], str)


class _Fake(http.server.BaseHTTPRequestHandler):
    """A server that answers garbage (mode 'garbage') or never answers ('hang')."""

    mode = "garbage"

    def do_POST(self) -> None:
        if self.mode == "hang":
            time.sleep(30)
            return
        body = b"<html>not json</html>" if self.path.endswith("completions") else b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _fake_server(mode: str) -> tuple[str, http.server.ThreadingHTTPServer]:
    handler = type(f"Fake_{mode}", (_Fake,), {"mode": mode})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}/v1", srv


@pytest.mark.parametrize("mode", ["refused", "hang", "garbage"])
def test_a_dead_hanging_or_garbage_server_is_a_typed_error_not_an_answer(mode):
    image = np.zeros((32, 32, 3), np.uint8)
    if mode == "refused":
        url, srv = f"http://127.0.0.1:{free_port()}/v1", None
    else:
        url, srv = _fake_server(mode)
    policy = OpenAIPolicy(RemoteConfig(base_url=url, remote_model="llara", timeout_s=0.5, retries=1))
    t0 = time.monotonic()
    with pytest.raises(RemoteError) as info:
        policy.act(image, "put the block in the bowl")
    assert time.monotonic() - t0 < 10  # bounded: timeout x (1 + retries) plus backoff
    why = {"refused": "APIConnectionError", "hang": "APITimeoutError", "garbage": url}[mode]
    assert why in str(info.value) and "\n" not in str(info.value), str(info.value)
    if srv is not None:
        srv.shutdown()


def test_the_key_is_read_from_the_named_variable_and_never_configured_directly():
    with pytest.raises(ValueError, match="not set in the environment"):
        RemoteConfig(api_key_env="LLARA_NO_SUCH_VARIABLE_SET")
    with pytest.raises(ValueError, match="http"):
        RemoteConfig(base_url="127.0.0.1:8000")
