"""console_node: the operator console — one web page bridged to the loop's topics and services.

    ros2 run llara_ros console_node [--ros-args -p port:=8088 -p host:=127.0.0.1 -p token_env:=LLARA_CONSOLE_TOKEN]

Subscribes the camera image, ``/action_text`` (the model's answers), ``/step_done``,
``/task`` and ``/diagnostics`` (the policy and action nodes' states); publishes
``/task`` (latched), ``/estop`` and, for a taught step, ``/action_text``; calls
the action node's ``~/approve`` / ``~/reject`` and the recorder's
``~/start_episode`` / ``~/stop_episode`` / ``~/mark_episode``. The page and its
rules are :mod:`llara_core.apps.console`; this node only moves messages. The
view is drawn and JPEG-encoded on a timer at ``max_fps`` from the newest frame
(frames in between are never converted). The web server (uvicorn) runs on its
own thread; its blocking handlers wait on service futures that this node's
executor completes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from llara_core import topics
from llara_core.apps.console import ConsoleConfig, ConsoleState, create_console_app, render_view
from llara_core.errors import LlaraError
from llara_core.language.actions import parse_actions
from llara_ros.conversions import image_msg_to_rgb
from llara_ros.params import declare_config, read_config
from llara_ros.spin import run_node
from llara_ros.topics import publisher, subscription

SERVICE_TIMEOUT_S = 3.0


class ConsoleNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("console_node", **kwargs)
        declare_config(self, ConsoleConfig)
        self.cfg = c = read_config(self, ConsoleConfig)
        self.state = ConsoleState(c.history)
        self.frame_msg: Any = None
        self.frame_new = False
        self.task_pub = publisher(self, topics.TASK)
        self.estop_pub = publisher(self, topics.ESTOP)
        self.action_pub = publisher(self, topics.ACTION_TEXT)
        subscription(self, topics.IMAGE, self._on_image)
        subscription(self, topics.ACTION_TEXT, self._on_answer)
        subscription(self, topics.STEP_DONE, self._on_done)
        subscription(self, topics.TASK, self._on_task)
        subscription(self, topics.DIAGNOSTICS, self._on_diag)
        self.triggers: dict[str, Any] = {
            "approve": self.create_client(Trigger, f"{c.action_node}/approve"),
            "reject": self.create_client(Trigger, f"{c.action_node}/reject"),
            "start_episode": self.create_client(Trigger, f"{c.recorder_node}/start_episode"),
            "stop_episode": self.create_client(Trigger, f"{c.recorder_node}/stop_episode"),
            "policy_reset": self.create_client(Trigger, f"{c.policy_node}/reset"),
        }
        self.mark_client: Any = self.create_client(SetBool, f"{c.recorder_node}/mark_episode")
        self.create_timer(1.0 / c.max_fps, self._render)
        self.server = self._serve(create_console_app(self.state, self, c))
        self.get_logger().info(f"operator console at http://{c.host}:{c.port}/"
                               + (f" (token from ${c.token_env})" if c.token_env else ""))  # fmt: skip

    def _serve(self, app: Any) -> Any:
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(app, host=self.cfg.host, port=self.cfg.port, log_level="warning"))
        threading.Thread(target=server.run, name="console_http", daemon=True).start()
        end = time.monotonic() + 10.0
        while not server.started and time.monotonic() < end:
            if not any(t.name == "console_http" for t in threading.enumerate()):
                raise LlaraError(f"cannot serve on {self.cfg.host}:{self.cfg.port} (is the port taken?)")
            time.sleep(0.02)
        return server

    # -- what the page shows ---------------------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        self.frame_msg, self.frame_new = msg, True

    def _render(self) -> None:
        if not self.frame_new or self.frame_msg is None:
            return
        self.frame_new = False
        try:
            rgb = image_msg_to_rgb(self.frame_msg)
        except (LlaraError, ValueError) as exc:
            self.get_logger().warning(f"camera frame unusable: {exc}", throttle_duration_sec=5.0)
            return
        with self.state.lock:
            answer = parse_actions(self.state.answer).steps[:1] if self.state.answer else []
        jpeg = render_view(rgb, answer, self.state.pending_steps(), self.cfg.jpeg_quality)
        self.state.set_frame(jpeg, (rgb.shape[1], rgb.shape[0]))

    def _on_answer(self, msg: String) -> None:
        with self.state.lock:
            if msg.data != self.state.taught:  # the taught step comes back on the same topic
                self.state.answer, self.state.answer_time = msg.data, time.monotonic()

    def _on_done(self, msg: String) -> None:
        try:
            done = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(done, dict):
            with self.state.lock:
                self.state.steps.append({k: done.get(k) for k in ("step", "ok", "reason")} | {"t": time.time()})

    def _on_task(self, msg: String) -> None:
        with self.state.lock:
            if msg.data != self.state.task:  # the last answer belonged to the previous task
                self.state.answer = ""
            self.state.task = msg.data

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            values = {kv.key: kv.value for kv in st.values} | {"message": st.message}
            with self.state.lock:
                if st.name.endswith("policy_node"):
                    self.state.policy = values
                elif st.name.endswith("action_node"):
                    self.state.action = values
                    self.state.estop = st.message == "ESTOP"

    # -- the Bridge: what the page may do ---------------------------------------------------------
    def set_task(self, text: str) -> None:
        self.task_pub.publish(String(data=text))

    def estop(self, on: bool) -> None:
        self.estop_pub.publish(Bool(data=on))

    def send_action(self, text: str) -> None:
        self.action_pub.publish(String(data=text))

    def call(self, service: str) -> tuple[bool, str]:
        return self._call(self.triggers[service], Trigger.Request())

    def mark(self, success: bool) -> tuple[bool, str]:
        return self._call(self.mark_client, SetBool.Request(data=success))

    def _call(self, client: Any, request: Any) -> tuple[bool, str]:
        """A service call from a web handler thread (the executor completes the future)."""
        if not client.wait_for_service(timeout_sec=1.0):
            return False, f"{client.srv_name} is not available (is that node running?)"
        fut = client.call_async(request)
        done = threading.Event()
        fut.add_done_callback(lambda _f: done.set())
        if not done.wait(SERVICE_TIMEOUT_S):
            return False, f"{client.srv_name} did not answer within {SERVICE_TIMEOUT_S:g} s"
        res = fut.result()
        return bool(res.success), str(res.message)

    def close(self, reason: str = "shutdown") -> None:
        self.server.should_exit = True


def main(args: list[str] | None = None) -> int:
    # two executor threads: a web handler waiting on a service answer must not stop the callbacks that deliver it
    return run_node(ConsoleNode, "console_node", args, threads=2)


if __name__ == "__main__":
    sys.exit(main())
