"""policy_node: camera image + task -> the VLM's answer as action text (LLaRA's closed loop over ROS).

    ros2 run llara_ros policy_node --ros-args --params-file config/policy.yaml

Subscribes ``/camera/color/image_raw`` (Image; CompressedImage on
``/camera/color/image_raw/compressed`` with ``image_transport: compressed``,
sensor-data QoS), ``/camera/color/camera_info``, ``/task`` (String, reliable +
transient local: a late joiner gets the current task), ``step_done`` (from the
action node) and, with ``prompt_mode: d_inbc``, ``/detections``
(vision_msgs/Detection2DArray). Publishes ``action_text`` (the model's answer
verbatim: the action node parses and may refuse it), ``annotated_image`` (the
frame the model saw with its pick and place points) and ``/diagnostics``
(model, latency p50/p95, dropped frames, last error). ``~/reset`` (Trigger)
clears the history.

Inference runs on one worker thread, never on the executor: one query in
flight, the newest frame wins, frames older than ``max_image_age_s`` are
refused. The episode logic is :class:`llara_core.apps.loop.PolicyLoop`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from llara_core import topics
from llara_core.apps.loop import PolicyLoop, PolicyNodeConfig
from llara_core.errors import LlaraError
from llara_core.language.actions import parse_actions
from llara_core.language.annotate import PRED_RGB, draw_steps
from llara_core.model.policy import Policy, PolicyOutput, load_policy
from llara_core.planning import StepDone
from llara_core.timing import StageTimes
from llara_ros.conversions import image_msg_to_rgb, numpy_to_image
from llara_ros.messages import package_available
from llara_ros.params import declare_config, read_config
from llara_ros.spin import DaemonWorker, run_node
from llara_ros.topics import publisher, subscription


class PolicyNode(Node):
    def __init__(self, policy: Policy | None = None, **kwargs: Any) -> None:
        super().__init__("policy_node", **kwargs)
        declare_config(self, PolicyNodeConfig)
        self.cfg = c = read_config(self, PolicyNodeConfig)
        if c.prompt_mode == "d_inbc" and not package_available("vision_msgs"):
            raise LlaraError(
                "prompt_mode d_inbc reads object boxes from vision_msgs/Detection2DArray: install "
                "ros-<distro>-vision-msgs (a ROS workspace), or use prompt_mode inbc"
            )
        # The model is loaded on the thread that will run it: torch's OpenMP pool belongs to the thread that first
        # computes, and a second pool on another thread made every answer ~3x slower here (measured: 139 vs 47 ms).
        self.worker = DaemonWorker("llara_policy")
        self.closing = False
        t0 = time.perf_counter()
        self.policy: Policy = policy if policy is not None else self.worker.submit(load_policy, c).result()
        style = self.policy.style
        self.source = c.remote.base_url if c.backend == "openai" else c.model or "shipped demo model"
        self.get_logger().info(f"model loaded in {time.perf_counter() - t0:.1f} s: {self.source}; prompts: profile "
                               f"{style.profile}, end effector {style.end_effector!r}, answers up to "
                               f"{self.policy.max_new_tokens} tokens")  # fmt: skip
        self.loop = PolicyLoop.from_config(c)
        self.lock = threading.RLock()  # re-entered when a query finishes before add_done_callback returns
        self.future: Future[PolicyOutput] | None = None
        # The newest frame as it arrived: converted only when a query takes it (most frames at camera rate are
        # never used: converting each cost the executor, and the model's thread the GIL, for nothing).
        self.frame_msg: Image | CompressedImage | None = None
        self.frame_time: float | None = None
        self.frame_size: tuple[int, int] | None = None  # of the last converted frame (detections are scaled by it)
        self.frames_received = self.frames_used = 0
        self.stages = StageTimes(c.latency_window)
        self.camera_size: tuple[int, int] | None = None
        self.boxes: list[Any] | None = None
        self.latencies: deque[float] = deque(maxlen=c.latency_window)
        self.queries = self.dropped = self.garbage = 0
        self.last_error = ""
        self.last_answer = self.last_prompt = ""
        self._pending: tuple[int, np.ndarray, Header | None] | None = None
        self._answered_at = 0.0
        image = topics.COMPRESSED_IMAGE if c.image_transport == "compressed" else topics.IMAGE
        subscription(self, image, self._on_image)
        subscription(self, topics.CAMERA_INFO, self._on_info)
        subscription(self, topics.TASK, self._on_task)
        subscription(self, topics.STEP_DONE, self._on_step_done)
        if c.prompt_mode == "d_inbc":
            subscription(self, topics.DETECTIONS, self._on_detections)
        self.action_pub = publisher(self, topics.ACTION_TEXT)
        self.annotated_pub = publisher(self, topics.ANNOTATED_IMAGE)
        self.diag_pub = publisher(self, topics.DIAGNOSTICS)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(0.1, self._poll)  # retries (a refused query); new frames and tasks trigger it at once
        self.create_timer(1.0, self._diagnostics)

    # -- inputs --------------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        with self.lock:
            self.frames_received += 1
            if self.frame_msg is not None and self.future is not None and not self.future.done():
                self.dropped += 1  # a frame that arrived while the model was busy: only the newest is kept
            self.frame_msg, self.frame_time = msg, time.monotonic()
        self._poll()  # a query that waited for this frame starts now, not at the next timer tick

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_size = (int(msg.width), int(msg.height))

    def _on_detections(self, msg: Any) -> None:
        from llara_core.datasets.bags import boxes_from_detections

        size = self.frame_size or self.camera_size
        if size is not None:
            self.boxes = boxes_from_detections(msg, size[0], size[1])

    def _on_task(self, msg: String) -> None:
        with self.lock:
            self.loop.on_task(msg.data, time.monotonic())
        self.get_logger().info(f"task: {msg.data!r}" if msg.data.strip() else "task cleared")
        self._poll()

    def _on_step_done(self, msg: String) -> None:
        try:
            done = StepDone.from_json(msg.data)
        except ValueError as exc:
            self.last_error = str(exc)
            return
        with self.lock:
            self.loop.on_step_done(done, time.monotonic())
            if self.loop.phase == "done":
                self.get_logger().info(f"episode stopped: {self.loop.stopped_because}")

    def _on_reset(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self.lock:
            self.loop.reset()
        res.success, res.message = True, "history cleared; waiting for the next task"
        return res

    # -- queries -------------------------------------------------------------------------------------
    def _refusal(self) -> str:
        """Why no query may run now ('' when one may); the frame's size is checked once it is converted."""
        if self.camera_size is None:
            return "no camera_info received: the action node could not place an answer"
        assert self.frame_time is not None
        age = time.monotonic() - self.frame_time
        if age > self.cfg.max_image_age_s:
            return f"stale image: newest frame is {age:.2f} s old > {self.cfg.max_image_age_s} s"
        if self.cfg.prompt_mode == "d_inbc" and not self.boxes:
            return "prompt_mode d_inbc but no detections received"
        return ""

    def _poll(self) -> None:
        with self.lock:
            timed_out = self.loop.check_timeout(time.monotonic())
            if timed_out is not None:
                self.last_error = timed_out.reason
                then = f"episode stopped ({self.loop.stopped_because})" if self.loop.phase == "done" else "re-querying"
                self.get_logger().warning(f"{timed_out.reason}: {then}")
            if self.future is not None or not self.loop.wants_query(self.frame_time):
                return
            why = self._refusal()
            if why:
                self.last_error = why
                return
            frame = self._take_frame()
            if frame is None:
                return
            assert self.frame_msg is not None and self.frame_time is not None
            gen = self.loop.start_query()
            now = time.monotonic()
            self.stages.add("frame_age", now - self.frame_time)
            args = (frame, self.loop.instruction, self.boxes if self.cfg.prompt_mode == "d_inbc" else None,
                    list(self.loop.history))  # fmt: skip
            self._pending = (gen, frame, self.frame_msg.header)
            self.future = self.worker.submit(self._act, now, args)
            self.future.add_done_callback(self._finish)  # runs on the worker thread: the answer goes out at once

    def _take_frame(self) -> np.ndarray | None:
        """The newest frame as RGB (None, with the reason in last_error, when it is unusable: the query waits for
        the next one)."""
        assert self.frame_msg is not None
        t0 = time.perf_counter()
        try:
            frame = image_msg_to_rgb(self.frame_msg)
        except (LlaraError, ValueError) as exc:
            self.last_error = f"image unusable: {exc}"
            self.frame_msg = self.frame_time = None
            return None
        self.stages.add("convert", time.perf_counter() - t0)
        self.frame_size = (frame.shape[1], frame.shape[0])
        if self.frame_size != self.camera_size:
            self.last_error = f"image {frame.shape[1]}x{frame.shape[0]} does not match camera_info {self.camera_size}"
            self.frame_msg = self.frame_time = None  # refused once; the next frame is checked again
            return None
        self.frames_used += 1
        return frame

    def _act(self, queued: float, args: tuple[Any, ...]) -> PolicyOutput:
        """The query on the model's thread (handoff: how long it waited for that thread to run)."""
        self.stages.add("handoff", time.monotonic() - queued)
        out = self.policy.act(*args)
        self.stages.add("model", out.latency_s)
        self._answered_at = time.perf_counter()
        return out

    def _finish(self, fut: Future[PolicyOutput]) -> None:
        with self.lock:
            self.future = None
            if not self.closing:  # at shutdown the answer is dropped, not published into a closing context
                self._answer(fut)

    def _answer(self, fut: Future[PolicyOutput]) -> None:
        assert self._pending is not None
        gen, frame, header = self._pending
        try:
            out = fut.result()
        except Exception as exc:  # a model or server error must not end the node: report it, publish nothing
            self.last_error = f"model error: {type(exc).__name__}: {exc}"
            self.get_logger().error(f"no action: {self.last_error}", throttle_duration_sec=5.0)
            self.loop.query_failed(gen)
            return
        self.queries += 1
        self.latencies.append(out.latency_s)
        if not self.loop.answered(gen, out.text, time.monotonic()):
            self.get_logger().info("answer dropped: its task was cleared or replaced while the model ran")
            return
        if not out.ok:
            self.garbage += 1
            self.last_error = f"unparseable answer: {out.text[:200]!r}"
        else:
            self.last_error = ""
        self.last_answer, self.last_prompt = out.text, out.prompt
        self.action_pub.publish(String(data=out.text))  # verbatim: the action node decides what it executes
        self.stages.add("publish", time.perf_counter() - self._answered_at)
        if self.annotated_pub.get_subscription_count() > 0:  # drawn only for someone (RViz, the demo's GIFs)
            steps = parse_actions(out.text).steps
            image = draw_steps(frame, steps, PRED_RGB, "P", upscale=2)
            self.annotated_pub.publish(numpy_to_image(image, "rgb8", header))

    def _diagnostics(self) -> None:
        lat = sorted(self.latencies)
        status = DiagnosticStatus(name="llara_ros: policy_node", hardware_id=self.source)
        error = self.last_error
        status.level = DiagnosticStatus.ERROR if error else DiagnosticStatus.OK
        status.message = error or "ok"
        status.values = [
            KeyValue(key="phase", value=self.loop.phase),
            KeyValue(key="instruction", value=self.loop.instruction),
            KeyValue(key="steps_done", value=str(len(self.loop.history))),
            KeyValue(key="queries", value=str(self.queries)),
            KeyValue(key="unparseable_answers", value=str(self.garbage)),
            KeyValue(key="dropped_frames", value=str(self.dropped)),
            KeyValue(key="frames_received", value=str(self.frames_received)),
            KeyValue(key="frames_used", value=str(self.frames_used)),
            KeyValue(key="query_in_flight", value=str(self.future is not None)),
            KeyValue(key="latency_p50_ms", value=f"{1000 * lat[len(lat) // 2]:.1f}" if lat else "n/a"),
            KeyValue(key="latency_p95_ms", value=f"{1000 * lat[int(len(lat) * 0.95)]:.1f}" if lat else "n/a"),
            *(KeyValue(key=k, value=v) for k, v in self.stages.summary().items()),
            KeyValue(key="last_answer", value=self.last_answer[:300]),
            KeyValue(key="last_prompt", value=self.last_prompt[-600:]),
        ]
        self.diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status]))

    def close(self, reason: str = "shutdown") -> None:
        """No answer goes out after this (a query still running is abandoned: its thread never holds up the exit)."""
        with self.lock:
            self.closing = True
        self.worker.shutdown()


def main(args: list[str] | None = None) -> int:
    # One executor thread: the callbacks are short, and every extra Python thread competes with the model's
    # decoding loop for the GIL (measured: the answer took several times longer with two executor threads).
    return run_node(PolicyNode, "policy_node", args)


if __name__ == "__main__":
    sys.exit(main())
