"""The operator console: one web page to watch the policy, approve or stop every motion, and teach by clicking.

ROS-free: :class:`ConsoleState` holds what the page shows (the newest view as
JPEG, the task, the model's answer and its parse, both nodes' states, the step
history) and :func:`create_console_app` serves it (FastAPI) and turns the
operator's requests into calls on a :class:`Bridge` — ``llara_ros.console_node``
implements the bridge with topics and services, so the page goes through the
same contract as every other client: the task on ``/task``, ``~/approve`` and
``~/reject`` of the action node, ``/estop``, and a taught step as an
``/action_text`` through the same planning, approval and safety path as the
model's answers.

The page polls ``/api/state`` (5 Hz) and reloads ``/frame.jpg`` when its frame
number changes: the node encodes at most ``max_fps`` frames a second whatever
the camera rate and however many pages are open, and a slow browser only skips
frames. Polling instead of a WebSocket keeps the server free of per-client
state: a page that loses the connection says so at once, and it never holds
anything (an approval is one request, answered or not).

Security: loopback by default; with ``token_env`` set every request that
changes something — task, approve, reject, teach, release, recording — must
carry ``Authorization: Bearer <token>`` (the page takes it from ``?token=`` in
its URL), and a non-loopback bind without a token refuses to start. The e-stop
needs no token: anyone who can see the page can stop the arm.
"""

# No ``from __future__ import annotations``: FastAPI reads the route functions' annotations at runtime
# (``request: Request`` must be the class, not a string naming a class imported inside create_app).
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from llara_core.config import setting
from llara_core.errors import LlaraError
from llara_core.language.actions import ActionStep, parse_actions, render_step
from llara_core.language.annotate import PRED_RGB, draw_steps
from llara_core.serving.server import bearer_ok, is_loopback

PENDING_RGB = (255, 176, 0)  # amber: a plan waiting for the operator (as in RViz's markers)
TEACH_RGB = (0, 190, 255)


@dataclass(frozen=True)
class ConsoleConfig:
    """``console_node`` parameters."""

    host: str = setting("127.0.0.1", "address the page is served on; any other than loopback needs token_env")
    port: int = setting(8088, "TCP port of the page")
    token_env: str = setting("", "environment variable holding the token every changing request must carry")
    max_fps: float = setting(10.0, "most view frames encoded per second (newest frame wins)")
    jpeg_quality: int = setting(80, "JPEG quality of the view (1-100)")
    max_task_chars: int = setting(2000, "longest task text accepted (413 beyond)")
    history: int = setting(50, "step_done reports kept for the page")
    action_node: str = setting("/action_node", "the action node whose ~/approve and ~/reject the page calls")
    policy_node: str = setting("/policy_node", "the policy whose ~/reset holds it while the operator teaches")
    recorder_node: str = setting("/recorder_node", "the recorder whose episodes the page starts, stops and marks")

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536 or self.max_fps <= 0 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("port must be 1..65535, max_fps > 0 and jpeg_quality 1..100")
        if self.max_task_chars < 1 or self.history < 1:
            raise ValueError("max_task_chars and history must be >= 1")
        if self.token_env and not os.environ.get(self.token_env):
            raise ValueError(f"token_env names {self.token_env!r}, which is not set (or empty)")
        if not self.token_env and not is_loopback(self.host):
            raise ValueError(f"host {self.host} exposes the arm's controls: set token_env (the name of a variable "
                             "holding a token) or serve on 127.0.0.1")  # fmt: skip


class Bridge(Protocol):
    """What the page may do to the robot (``llara_ros.console_node`` implements it over ROS)."""

    def set_task(self, text: str) -> None: ...
    def estop(self, on: bool) -> None: ...
    def send_action(self, text: str) -> None: ...
    def call(self, service: str) -> tuple[bool, str]: ...  # approve reject start_episode stop_episode policy_reset
    def mark(self, success: bool) -> tuple[bool, str]: ...


class ConsoleState:
    """What the page shows; written by the node's callbacks, read by the web server's threads."""

    def __init__(self, history: int = 50) -> None:
        self.lock = threading.Lock()
        self.frame_jpeg: bytes | None = None
        self.frame_seq = 0
        self.frame_size: tuple[int, int] | None = None
        self.task = ""
        self.answer = ""
        self.answer_time = 0.0
        self.policy: dict[str, str] = {}
        self.action: dict[str, str] = {}
        self.steps: deque[dict[str, Any]] = deque(maxlen=history)
        self.taught = ""
        self.taught_at = 0.0
        self.estop = False
        self.teaching = False  # the operator demonstrates: the policy is held (its ~/reset after every task)
        self.notice = ""

    def set_frame(self, jpeg: bytes, size: tuple[int, int]) -> None:
        with self.lock:
            self.frame_jpeg, self.frame_size = jpeg, size
            self.frame_seq += 1

    def pending_steps(self) -> list[ActionStep]:
        """The steps of the answer the action node holds for approval (none when it holds nothing)."""
        with self.lock:
            if self.action.get("state") != "pending_approval":
                return []
            text = self.taught if self.taught and self.taught_at >= self.answer_time else self.answer
        return list(parse_actions(text).steps[:1])

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            parsed = parse_actions(self.answer) if self.answer else None
            parse: dict[str, Any] | None = None
            if parsed is not None:
                errors = [e.message for e in parsed.errors][:3]
                parse = {"ok": parsed.ok, "steps": len(parsed.steps), "errors": errors}
            return {
                "frame_seq": self.frame_seq,
                "frame_size": list(self.frame_size) if self.frame_size else None,
                "task": self.task,
                "answer": self.answer,
                "parse": parse,
                "policy": dict(self.policy),
                "action": dict(self.action),
                "steps": list(self.steps),
                "taught": self.taught,
                "estop": self.estop,
                "teaching": self.teaching,
                "notice": self.notice,
            }


def render_view(rgb: npt.NDArray[np.uint8], answer: Sequence[ActionStep], pending: Sequence[ActionStep],
                quality: int = 80) -> bytes:  # fmt: skip
    """The camera frame with the latest answer (magenta) and a plan waiting for approval (amber), as JPEG — the
    drawing of ``annotated_image``."""
    import cv2

    img = draw_steps(rgb, answer, PRED_RGB, "P") if answer else rgb
    if pending:
        img = draw_steps(rgb, pending, PENDING_RGB, "?", canvas=img)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise LlaraError(f"cannot encode a view of shape {img.shape} as JPEG")
    return buf.tobytes()


def teach_step(pick_px: Sequence[float], place_px: Sequence[float], size: tuple[int, int], rotation_deg: float = 0.0,
               index: int = 1) -> str:  # fmt: skip
    """Two clicks (pixel coordinates of the camera frame) -> the LLaRA action text they make.

    The project's pixel convention (pixel centres at integers, ``x = (u + 0.5) / W``,
    as ``CameraModel.pixel_to_normalized``), three decimals as the model writes
    them; ValueError for a click outside the frame or a rotation out of range.
    """
    w, h = size
    pts = []
    for name, (u, v) in (("pick", pick_px), ("place", place_px)):
        if not (-0.5 <= u <= w - 0.5 and -0.5 <= v <= h - 0.5):
            raise ValueError(f"{name} ({u:g}, {v:g}) is outside the {w}x{h} image")
        pts.append((round((u + 0.5) / w, 3), round((v + 0.5) / h, 3)))
    return render_step(ActionStep(pts[0], pts[1], float(rotation_deg)), index)


def create_console_app(state: ConsoleState, bridge: Bridge, cfg: ConsoleConfig) -> Any:
    """The FastAPI app of the console page."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException

    token = os.environ.get(cfg.token_env, "") if cfg.token_env else ""
    app = FastAPI(title="llara console", docs_url=None, redoc_url=None, openapi_url=None)

    class Refused(LlaraError):
        def __init__(self, status: int, message: str) -> None:
            super().__init__(message)
            self.status = status

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Any:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Any:
        return JSONResponse({"ok": False, "error": f"{request.method} {request.url.path}: {exc.detail}"},
                            status_code=exc.status_code)  # fmt: skip

    async def body(request: Request, limit: int = 16_384) -> dict[str, Any]:
        import json

        raw = await request.body()
        if len(raw) > limit:
            raise Refused(413, f"body over {limit} bytes")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError) as exc:
            raise Refused(400, f"the body is not JSON ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise Refused(400, "the body must be a JSON object")
        return data

    def authorize(request: Request) -> None:
        if token and not bearer_ok(request.headers.get("authorization", ""), token):
            raise Refused(401, "this console needs its token for that (open the page with ?token=…)")

    def answered(ok: bool, message: str) -> dict[str, Any]:
        with state.lock:
            state.notice = message
        return {"ok": ok, "message": message}

    @app.get("/")
    async def page() -> Any:
        return HTMLResponse(PAGE)

    @app.get("/api/state")
    async def get_state() -> Any:
        return JSONResponse(state.snapshot(), headers={"cache-control": "no-store"})

    @app.get("/frame.jpg")
    async def frame() -> Any:
        with state.lock:
            jpeg = state.frame_jpeg
        if jpeg is None:
            raise Refused(404, "no camera frame received yet")
        return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "no-store"})

    @app.post("/api/task")
    async def set_task(request: Request) -> Any:
        authorize(request)
        text = (await body(request)).get("task")
        if not isinstance(text, str):
            raise Refused(400, "task must be a string ('' clears it)")
        if len(text) > cfg.max_task_chars:
            raise Refused(413, f"task over {cfg.max_task_chars} characters")
        bridge.set_task(text.strip())
        with state.lock:
            teaching = state.teaching
        if teaching and text.strip():  # the task is recorded as the demonstration's instruction; the model stays out
            ok, why = bridge.call("policy_reset")
            if not ok:
                return answered(False, f"task set, but the policy could not be held for teaching: {why}")
        return answered(True, f"task set: {text.strip()!r}" if text.strip() else "task cleared")

    @app.post("/api/teach_mode")
    async def teach_mode(request: Request) -> Any:
        authorize(request)
        on = (await body(request)).get("on")
        if not isinstance(on, bool):
            raise Refused(400, "on must be true or false")
        with state.lock:
            state.teaching = on
        if on:
            ok, why = bridge.call("policy_reset")  # the model stops querying until the next task
            if not ok:
                return answered(False, f"teach mode on, but the policy could not be held: {why}")
        return answered(True, "teach mode: the model is held; click pick, then place" if on else "teach mode off")

    @app.post("/api/approve")
    def approve(request: Request) -> Any:
        authorize(request)
        return answered(*bridge.call("approve"))

    @app.post("/api/reject")
    def reject(request: Request) -> Any:
        authorize(request)
        return answered(*bridge.call("reject"))

    @app.post("/api/estop")
    async def estop() -> Any:  # no token: anyone who can reach the page may stop the arm
        bridge.estop(True)
        with state.lock:
            state.estop = True
        return answered(True, "E-STOP: motion stopped; every action is refused until released")

    @app.post("/api/release")
    async def release(request: Request) -> Any:
        authorize(request)
        if (await body(request)).get("confirm") is not True:
            raise Refused(400, "releasing the e-stop needs {'confirm': true}")
        bridge.estop(False)
        with state.lock:
            state.estop = False
        return answered(True, "e-stop released")

    @app.post("/api/teach")
    async def teach(request: Request) -> Any:
        authorize(request)
        data = await body(request)
        with state.lock:
            size = state.frame_size
        if size is None:
            raise Refused(409, "no camera frame yet: nothing to click on")
        try:
            pick, place = _point(data.get("pick")), _point(data.get("place"))
            rotation = data.get("rotation", 0.0)
            if isinstance(rotation, bool) or not isinstance(rotation, int | float):
                raise ValueError("rotation must be a number of degrees")
            text = teach_step(pick, place, size, float(rotation))
        except ValueError as exc:
            raise Refused(400, str(exc)) from exc
        if data.get("send") is True:
            with state.lock:
                state.taught, state.taught_at = text, time.monotonic()
            bridge.send_action(text)
            return {**answered(True, "taught step sent to the action node"), "text": text}
        return {"ok": True, "text": text, "message": "preview"}

    @app.post("/api/record/{what}")
    def record(what: str, request: Request) -> Any:
        authorize(request)
        if what not in ("start", "stop"):
            raise Refused(404, f"no recording action {what!r} (start, stop)")
        return answered(*bridge.call(f"{what}_episode"))

    @app.post("/api/mark")
    async def mark(request: Request) -> Any:
        authorize(request)
        success = (await body(request)).get("success")
        if not isinstance(success, bool):
            raise Refused(400, "success must be true or false")
        return answered(*bridge.mark(success))

    return app


def _point(value: Any) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):  # fmt: skip
        raise ValueError("pick and place must be [u, v] pixel coordinates")
    return float(value[0]), float(value[1])


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llara console</title>
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#14161a;color:#e8e8e8}
 header{display:flex;gap:1em;align-items:center;padding:.5em 1em;background:#22252b}
 #lost{display:none;background:#b00020;color:#fff;padding:.4em 1em;font-weight:bold}
 main{display:flex;gap:1em;padding:1em;flex-wrap:wrap}
 #view{position:relative} #frame{width:640px;image-rendering:pixelated;cursor:crosshair;border:2px solid #444}
 .panel{min-width:360px;max-width:520px} .row{margin:.4em 0}
 button{font-size:1em;padding:.4em .9em;margin-right:.3em} #estop{background:#d00;color:#fff;font-size:1.6em;
 font-weight:bold;padding:.5em 1.2em;border:3px solid #fff} #estop.on{background:#700}
 pre{white-space:pre-wrap;background:#0c0d10;padding:.5em;max-height:9em;overflow:auto}
 .ok{color:#6f6} .bad{color:#f66} .warn{color:#fb0} td{padding:0 .5em}
</style></head><body>
<div id="lost">connection to the console lost — the robot keeps its last state; nothing is approved from here</div>
<header><b>llara console</b><span id="policy">policy: ?</span><span id="action">action: ?</span>
<span id="mode"></span><span id="estopstate"></span>
<button id="estop" title="keyboard: Escape or Space">E-STOP</button>
<button id="release">release e-stop…</button></header>
<main>
<div id="view"><img id="frame" alt="camera"><div>frame <span id="seq">0</span>
 <span id="size"></span> · <label><input type="checkbox" id="teach"> teach by clicking</label>
 rotation <input id="rotation" type="number" value="0" step="5" style="width:4em">°</div>
 <div id="teachtext" class="row"></div>
 <button id="teachsend" disabled>send taught step</button></div>
<div class="panel">
 <div class="row"><input id="task" size="40" placeholder="task, e.g. put the red block into the bowl">
  <button id="settask">set task</button><button id="cleartask">clear</button></div>
 <div class="row">task: <span id="curtask"></span></div>
 <div class="row">answer (<span id="latency"></span>): <span id="parse"></span><pre id="answer"></pre></div>
 <div class="row"><button id="approve" disabled>Approve</button><button id="reject" disabled>Reject</button>
  <span id="pending"></span></div>
 <div class="row">recording: <button id="recstart">start episode</button><button id="recstop">stop</button>
  <button id="marksuccess">success</button><button id="markfail">failure</button></div>
 <div class="row" id="notice"></div>
 <table id="steps"><thead><tr><th>step</th><th>result</th></tr></thead><tbody></tbody></table>
</div></main>
<script>
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
let seq = -1, size = null, clicks = [], preview = "";
async function post(path, body) {
  const headers = {"content-type": "application/json"};
  if (token) headers["authorization"] = "Bearer " + token;
  try {
    const r = await fetch(path, {method: "POST", headers, body: JSON.stringify(body || {})});
    const j = await r.json();
    $("notice").textContent = j.message || j.error || "";
    $("notice").className = r.ok && j.ok !== false ? "row ok" : "row bad";
    return j;
  } catch (e) { $("notice").textContent = "request failed: " + e; $("notice").className = "row bad"; return {}; }
}
async function poll() {
  try {
    const r = await fetch("/api/state", {cache: "no-store"});
    const s = await r.json();
    $("lost").style.display = "none";
    if (s.frame_seq !== seq && s.frame_seq > 0) { seq = s.frame_seq; $("frame").src = "/frame.jpg?seq=" + seq; }
    $("seq").textContent = s.frame_seq; size = s.frame_size;
    $("size").textContent = size ? size[0] + "x" + size[1] : "";
    const p = s.policy, a = s.action;
    $("policy").textContent = "policy: " + (p.phase || "?") + (p.message && p.message !== "ok" ? " (" + p.message + ")" : "");
    $("action").textContent = "action: " + (a.lifecycle || "?") + " / " + (a.state || "?");
    $("mode").textContent = a.executor ? (a.executor === "dry_run" ? "DRY RUN" : "LIVE: " + a.executor) : "";
    $("estopstate").textContent = (s.estop || a.message === "ESTOP") ? "E-STOPPED" : "";
    $("estopstate").className = "bad"; $("estop").className = s.estop ? "on" : "";
    $("curtask").textContent = s.task || "(none)";
    $("answer").textContent = s.answer;
    $("latency").textContent = p.latency_p50_ms ? "model p50 " + p.latency_p50_ms + " ms" : "";
    $("parse").textContent = s.parse ? (s.parse.ok ? s.parse.steps + " step(s), parses" : "does not parse: " + s.parse.errors.join("; ")) : "";
    $("parse").className = s.parse && s.parse.ok ? "ok" : "bad";
    const pending = a.state === "pending_approval";
    $("approve").disabled = !pending; $("reject").disabled = !pending;
    $("pending").textContent = pending ? "a plan waits for approval (amber on the image)" : "";
    $("pending").className = "warn";
    $("steps").tBodies[0].innerHTML = s.steps.slice().reverse().map(d =>
      "<tr><td>" + esc(d.step) + "</td><td class=" + (d.ok ? "ok>done" : "bad>" + esc(d.reason)) + "</td></tr>").join("");
  } catch (e) { $("lost").style.display = "block"; }
}
function esc(t) { const d = document.createElement("div"); d.textContent = t || ""; return d.innerHTML; }
$("frame").addEventListener("click", async (ev) => {
  if (!$("teach").checked || !size) return;
  const img = $("frame"), r = img.getBoundingClientRect();
  const u = Math.floor((ev.clientX - r.left - img.clientLeft) * size[0] / img.clientWidth);
  const v = Math.floor((ev.clientY - r.top - img.clientTop) * size[1] / img.clientHeight);
  clicks = clicks.length >= 2 ? [[u, v]] : clicks.concat([[u, v]]);
  if (clicks.length === 2) {
    const j = await post("/api/teach", {pick: clicks[0], place: clicks[1], rotation: Number($("rotation").value), send: false});
    preview = j.text || ""; $("teachtext").textContent = preview; $("teachsend").disabled = !preview;
  } else { $("teachtext").textContent = "pick at (" + u + ", " + v + "): now click the place point"; $("teachsend").disabled = true; }
});
$("teach").onchange = () => { clicks = []; post("/api/teach_mode", {on: $("teach").checked}); };
$("teachsend").onclick = async () => {
  if (clicks.length !== 2) return;
  await post("/api/teach", {pick: clicks[0], place: clicks[1], rotation: Number($("rotation").value), send: true});
  clicks = []; $("teachsend").disabled = true;
};
$("settask").onclick = () => post("/api/task", {task: $("task").value});
$("cleartask").onclick = () => post("/api/task", {task: ""});
$("approve").onclick = () => post("/api/approve");
$("reject").onclick = () => post("/api/reject");
$("estop").onclick = () => post("/api/estop");
$("release").onclick = () => { if (confirm("Release the e-stop? The arm may move again.")) post("/api/release", {confirm: true}); };
$("recstart").onclick = () => post("/api/record/start");
$("recstop").onclick = () => post("/api/record/stop");
$("marksuccess").onclick = () => post("/api/mark", {success: true});
$("markfail").onclick = () => post("/api/mark", {success: false});
document.addEventListener("keydown", (ev) => {
  if ((ev.key === "Escape" || ev.key === " ") && document.activeElement.tagName !== "INPUT") { ev.preventDefault(); post("/api/estop"); }
});
setInterval(poll, 200); poll();
</script></body></html>
"""
