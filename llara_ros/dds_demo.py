"""``make demo``: LLaRA's whole loop over DDS in the embedded simulator — act, record, convert.

    python -m llara_ros.dds_demo [--episodes 5] [--out demo_output] [--real-time-factor 2]

sim_node, policy_node (the shipped model), action_node (joint_trajectory
executor) and recorder_node run as separate processes (llara_ros.bringup,
config/sim_demo.yaml); this process resets the simulator to each held-out
seed, records the episode to a bag, waits for the episode's end, marks the
bag's success, and keeps what the camera saw, what the model said and where the
arm went. Then the recorded bags are converted back into a training dataset
with convert_bags — record -> convert -> act in one command.

Writes ``OUT/``: ``episode_<seed>.gif`` (camera frames beside the model's
annotated answer), ``metrics.json`` (success per family, model latency p50/p95,
time per episode split into model inference and planning + execution),
``bags/`` (one rosbag2 per episode) and ``dataset/`` (converted). Prints
``DEMO COMPLETE`` only when every stage ran; otherwise says which failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from llara_core.errors import LlaraError

ROOT_CONFIG = "sim_demo.yaml"


class Watcher:
    """Collects what the demo shows: camera frames, annotated answers, answers, diagnostics."""

    def __init__(self, node: Any) -> None:
        from llara_core import topics
        from llara_ros.topics import subscription

        self.frames: list[np.ndarray] = []
        self.annotated: np.ndarray | None = None
        self.answers: list[tuple[float, str]] = []
        self.done_times: list[float] = []
        self.latency: dict[str, str] = {}
        self.recording = False
        self._last_frame = 0.0
        subscription(node, topics.IMAGE, self._on_frame)
        subscription(node, topics.ANNOTATED_IMAGE, self._on_annotated)
        subscription(node, topics.ACTION_TEXT, lambda m: self.answers.append((time.monotonic(), m.data)))
        subscription(node, topics.STEP_DONE, lambda m: self.done_times.append(time.monotonic()))
        subscription(node, topics.DIAGNOSTICS, self._on_diag)

    def _on_frame(self, msg: Any) -> None:
        from llara_ros.conversions import image_msg_to_rgb

        now = time.monotonic()
        if self.recording and now - self._last_frame >= 0.25:  # 4 frames a second are enough for a GIF
            self._last_frame = now
            frame = image_msg_to_rgb(msg)
            self.frames.append(self._compose(frame))

    def _on_annotated(self, msg: Any) -> None:
        from llara_ros.conversions import image_msg_to_rgb

        self.annotated = image_msg_to_rgb(msg)

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            if st.name.endswith("policy_node"):
                self.latency = {kv.key: kv.value for kv in st.values}

    def _compose(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        big = cv2.resize(frame, (frame.shape[1] * 2, frame.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
        right = self.annotated if self.annotated is not None else np.zeros_like(big)
        right = cv2.resize(right, (big.shape[1], big.shape[0]), interpolation=cv2.INTER_NEAREST)
        return np.concatenate([big, right], axis=1)


def save_gif(frames: list[np.ndarray], caption: str, path: Path) -> None:
    """An animated GIF of the frames, the caption (instruction, outcome) printed on each."""
    import cv2
    from PIL import Image

    if not frames:
        return
    images = []
    for f in frames:
        f = f.copy()
        cv2.putText(f, caption[:80], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        images.append(Image.fromarray(f))
    tmp = path.with_suffix(".gif.tmp")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=250, loop=0)
    tmp.replace(path)


def _start_model_server(out: Path, params: dict[str, Any]) -> subprocess.Popen:
    """``llara serve`` (the shipped model) on a free loopback port, as on a GPU machine; the policy node's
    parameters are pointed at it."""
    from llara_core.serving.client import wait_until_healthy

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    print(f"0. starting llara serve (shipped model) on 127.0.0.1:{port}: log in {out}/logs/llara_serve.log")
    server = subprocess.Popen([sys.executable, "-m", "llara_core.apps.cli", "serve", "--port", str(port)],
                              stdout=(out / "logs" / "llara_serve.log").open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    wait_until_healthy(f"http://127.0.0.1:{port}/v1", 120, alive=lambda: server.poll() is None)
    params["policy_node"]["ros__parameters"].update(
        backend="openai", remote={"base_url": f"http://127.0.0.1:{port}/v1", "timeout_s": 10.0}
    )
    return server


def _convert_recorded(out: Path) -> str:
    """Convert the recorded bags as a user does (the shipped conversion config: it gives the simulator's camera
    pose, a venv has no tf); the stage's verdict."""
    from llara_core.datasets.convert import ConversionConfig, convert_bags
    from llara_core.resources import resource_path

    bags = sorted(p for p in (out / "bags").glob("episode_*") if p.is_dir())
    try:
        cfg = ConversionConfig.from_yaml(resource_path("config", "conversion.yaml"))
        report = convert_bags(bags, out / "dataset", cfg, progress=False)
    except Exception as exc:  # the demo reports every stage, whatever it raised
        return f"FAILED: {type(exc).__name__}: {exc}"
    print(f"3. {len(bags)} recorded bags in {out / 'bags'} converted into {out / 'dataset'}: "
          f"samples {report['samples']}, excluded (unsuccessful) {len(report['excluded'])}, "
          f"skipped {len(report['skipped'])}")  # fmt: skip
    return "ok" if bags and not report["skipped"] else f"FAILED: {report['skipped']}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llara_ros.dds_demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=5, help="held-out seeds 0..N-1 (default 5)")
    ap.add_argument("--family", default="l1_placement", help="task family (default l1_placement)")
    ap.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    ap.add_argument("--real-time-factor", type=float, default=2.0, help="sim seconds per wall second (default 2)")
    ap.add_argument("--episode-timeout", type=float, default=40.0, help="sim seconds per episode (default 40)")
    ap.add_argument("--backend", choices=("transformers", "openai"), default="transformers",
                    help="openai: the model answers from 'llara serve' started on 127.0.0.1 (the GPU-server split); "
                         "default transformers (inside policy_node)")  # fmt: skip
    ap.add_argument("--domain-id", type=int, default=None,
                    help="ROS_DOMAIN_ID of the demo's private graph (default: a free one, never 0 or $ROS_DOMAIN_ID)")  # fmt: skip
    a = ap.parse_args(argv)

    from llara_ros import bringup

    # First, before anything touches DDS: the demo's nodes command an arm, so they must not share a graph with one.
    try:
        print(bringup.isolate(a.domain_id), flush=True)
    except LlaraError as exc:
        print(f"llara_ros.dds_demo: {exc}", file=sys.stderr)
        return 2

    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from std_srvs.srv import SetBool, Trigger

    from llara_core.fileio import atomic_write_json
    from llara_core.resources import resource_path
    from llara_ros.loop_client import LoopClient

    out = Path(a.out).resolve()
    shutil.rmtree(out / "bags", ignore_errors=True)
    shutil.rmtree(out / "dataset", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load(resource_path("config", ROOT_CONFIG).read_text())
    params["sim_node"]["ros__parameters"].update(
        family=a.family,
        seed=0,
        real_time_factor=a.real_time_factor,
        episode_timeout_s=a.episode_timeout,
    )
    params["recorder_node"] = {"ros__parameters": {"output_dir": str(out / "bags"), "episode_prefix": "episode",
                                                   "checkpoint_s": 0.5, "use_sim_time": True}}  # fmt: skip
    server = _start_model_server(out, params) if a.backend == "openai" else None
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    stages: dict[str, str] = {}
    t0 = time.perf_counter()
    print(f"1. starting sim_node, policy_node ({'openai backend' if server else 'shipped model'}), action_node, "
          f"recorder_node: logs in {out}/logs")  # fmt: skip
    # Four nodes, a software renderer and the model share this machine's cores. The simulator and the recorder stand
    # in for a robot's own computers: they yield the CPU to the policy (nice 10), and Mesa renders the 224 px camera
    # on one thread (as fast here, and no burst on every core). Measured on 2 cores, model p50 inside the demo:
    # 721 ms before, 228 ms with 1 torch thread, 156 ms with the simulator and recorder niced (standalone: 111 ms).
    os.environ.setdefault("LP_NUM_THREADS", "1")
    procs = bringup.start(out / "params.yaml", log_dir=out / "logs", nice={"sim_node": 10, "recorder_node": 10})
    if server is not None:
        procs["llara_serve"] = server  # stopped (SIGINT) with the nodes
    os.environ.update(bringup.dds_environment())  # this process takes camera frames too: the same transport
    rclpy.init()
    node = rclpy.create_node("llara_demo")
    driver = LoopClient(node)
    watcher = Watcher(node)
    rec_start: Any = node.create_client(Trigger, "/recorder_node/start_episode")
    rec_stop: Any = node.create_client(Trigger, "/recorder_node/stop_episode")
    rec_mark: Any = node.create_client(SetBool, "/recorder_node/mark_episode")
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()

    def call(client: Any, request: Any, timeout: float = 30.0) -> Any:
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"{client.srv_name} did not appear")
        fut = client.call_async(request)
        end = time.monotonic() + timeout
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.01)
        return fut.result()

    rows: list[dict[str, Any]] = []
    try:
        ready = driver.wait_for(lambda: watcher.latency or None, 120)  # the policy publishes diagnostics once loaded
        if not ready:
            raise RuntimeError("policy_node did not come up (see logs/policy_node.log)")
        stages["nodes"] = "ok"
        print(f"2. {a.episodes} episodes of {a.family} (held-out seeds 0..{a.episodes - 1}) over DDS:")
        for seed in range(a.episodes):
            watcher.frames, watcher.answers, watcher.done_times, watcher.annotated = [], [], [], None
            watcher.recording = True
            t = time.monotonic()
            info = driver.reset(timeout=120)  # the scene of this seed: its task reaches the policy, the loop starts
            # record from the new scene on: a bag begun before the reset opens on the last episode's final frames,
            # and its first frame (the one its first step is asked on) would show the wrong scene
            call(rec_start, Trigger.Request())
            assert info["seed"] == seed, info
            end = driver.episode_end(info["seed"], timeout=a.episode_timeout / a.real_time_factor + 60)
            # a step the policy sent just before the end must finish before the next scene starts
            driver.wait_for(lambda: len(watcher.done_times) >= len(watcher.answers) or None, 60)
            watcher.recording = False
            wall = time.monotonic() - t
            call(rec_stop, Trigger.Request())
            ok = bool(end and end["event"] == "success")
            call(rec_mark, SetBool.Request(data=ok))
            answers = [text for _, text in watcher.answers]
            exec_s = sum(d - q for (q, _), d in zip(watcher.answers, watcher.done_times, strict=False))
            rows.append({"seed": info["seed"], "instruction": info["instruction"], "event": (end or {}).get("event"),
                         "answers": answers, "wall_s": round(wall, 2), "planning_and_execution_s": round(exec_s, 2)})  # fmt: skip
            caption = f"{info['instruction']} -> {(end or {}).get('event', 'no event')}"
            save_gif(watcher.frames, caption, out / f"episode_{info['seed']:03d}.gif")
            print(f"   seed {info['seed']}: {info['instruction']!r}: {(end or {}).get('event')} in {wall:.1f} s; "
                  f"answers {answers}")  # fmt: skip
        stages["closed loop"] = "ok"
    except (RuntimeError, TimeoutError, AssertionError) as exc:
        stages["closed loop"] = f"FAILED: {exc}"
    finally:
        codes = bringup.stop(procs)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()

    stages["record -> convert"] = _convert_recorded(out)

    successes = sum(r["event"] == "success" for r in rows)
    metrics = {
        "family": a.family,
        "success": {a.family: {"success": successes, "n": len(rows)}},
        "model_latency_ms": {k: watcher.latency.get(f"latency_{k}_ms") for k in ("p50", "p95")},
        "episodes": rows,
        "wall_s_per_episode": round(float(np.mean([r["wall_s"] for r in rows])), 2) if rows else None,
        "real_time_factor": a.real_time_factor,
        "node_exit_codes": codes,
        "stages": stages,
    }
    atomic_write_json(out / "metrics.json", metrics)
    print(f"\n| family | success |\n|---|---|\n| {a.family} | {successes}/{len(rows)} |")
    print(f"model latency p50 {metrics['model_latency_ms']['p50']} ms, p95 {metrics['model_latency_ms']['p95']} ms; "
          f"{metrics['wall_s_per_episode']} s wall per episode; {time.perf_counter() - t0:.0f} s in all; {out}")  # fmt: skip
    failed = {k: v for k, v in stages.items() if v != "ok"}
    if failed or len(stages) < 3:
        print(f"DEMO INCOMPLETE: {failed or 'a stage did not run'}", file=sys.stderr)
        return 1
    print("DEMO COMPLETE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
