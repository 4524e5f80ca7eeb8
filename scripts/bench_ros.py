"""ROS overhead of the policy node: image publish -> action_text received, against VLMPolicy.act on the same image.

    python scripts/bench_ros.py [--n 200] [--sizes 640x480,224x224]

policy_node runs in its own process (the shipped model, config/sim_demo.yaml's settings, the Fast DDS profile
of config/fastdds.xml); this process publishes a simulator frame at each size (resized), its camera_info and a
new task per iteration, and times until the answer arrives. The same frame goes through ``VLMPolicy.act`` here
for the direct figure, interleaved with the node's queries (one direct call, then one through the node), so
both series see the same machine: on a shared 2-core box the model's speed drifts by 30 % within minutes. Prints p50/p95 of both, their difference (the ROS overhead: image transport,
decoding, scheduling, answer transport) and their ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="queries per size (default 200)")
    ap.add_argument("--sizes", default="640x480,224x224", help="image sizes (default 640x480,224x224)")
    a = ap.parse_args()

    import cv2
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String

    from llara_core.geometry import CameraModel
    from llara_core.model.policy import load_policy
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task
    from llara_ros import bringup
    from llara_ros.conversions import model_to_camera_info, numpy_to_image
    from llara_ros.topics import COMMAND, SENSOR, TASK

    task = make_task("l1_placement", 0)
    with TabletopEnv(task.scene) as env:
        base = env.render()
    params = yaml.safe_load((ROOT / "config" / "sim_demo.yaml").read_text())
    params = {"policy_node": params["policy_node"]}
    params["policy_node"]["ros__parameters"].update(max_image_age_s=5.0, settle_s=0.0, threads=0)  # as `policy` here
    work = Path(tempfile.mkdtemp(prefix="llara-bench-ros-"))
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    procs = bringup.start(work / "params.yaml", log_dir=work)
    policy = load_policy()
    os.environ.update(bringup.dds_environment())  # this process publishes the images: same transport profile
    rclpy.init()
    node = rclpy.create_node("bench_ros")
    answers: list[float] = []
    answered = threading.Event()  # waited on, not polled: a busy-waiting benchmark takes CPU from the node it times
    node_latency: dict[str, str] = {}

    def on_answer(msg: String) -> None:
        answers.append(time.perf_counter())
        answered.set()

    node.create_subscription(String, "action_text", on_answer, COMMAND)

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith("policy_node"):
                node_latency.update({kv.key: kv.value for kv in st.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, COMMAND)
    img_pub = node.create_publisher(Image, "/camera/color/image_raw", SENSOR)
    info_pub = node.create_publisher(CameraInfo, "/camera/color/camera_info", SENSOR)
    task_pub = node.create_publisher(String, "/task", TASK)
    ex = MultiThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        time.sleep(3.0)
        for size in a.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            frame = np.ascontiguousarray(cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA))
            info = model_to_camera_info(CameraModel.from_fovy(50.0, w, h))
            direct, ros = [], []
            for i in range(a.n + 5):  # interleaved: the direct call and the node's answer see the same machine
                t = time.perf_counter()
                policy.act(frame, task.instruction)
                d = time.perf_counter() - t
                task_pub.publish(String(data=""))
                info_pub.publish(info)
                time.sleep(0.05)
                k = len(answers)
                task_pub.publish(String(data=task.instruction))
                time.sleep(0.02)  # the task is in before the frame, as on a robot streaming its camera
                msg = numpy_to_image(frame, "rgb8")
                answered.clear()
                t = time.perf_counter()
                img_pub.publish(msg)
                answered.wait(30)
                if len(answers) > k and i >= 5:  # the first few warm the node up
                    ros.append(answers[k] - t)
                    direct.append(d)
            d50, r50 = pct(direct, 50), pct(ros, 50)
            print(f"{size}: direct act p50 {d50:.1f} ms p95 {pct(direct, 95):.1f} ms | image publish -> action_text "
                  f"p50 {r50:.1f} ms p95 {pct(ros, 95):.1f} ms | ROS overhead p50 {r50 - d50:.1f} ms "
                  f"(x{r50 / d50:.2f}), {len(ros)} answers; the model inside the node (last 50): p50 "
                  f"{node_latency.get('latency_p50_ms')} ms p95 {node_latency.get('latency_p95_ms')} ms",
                  flush=True)  # fmt: skip
            stages = ("frame_age", "convert", "handoff", "model", "publish")
            print(
                "  stages in the node p50/p95 ms: "
                + ", ".join(f"{s} {node_latency.get(s + '_p50_ms')}/{node_latency.get(s + '_p95_ms')}" for s in stages),
                flush=True,
            )
            time.sleep(1.2)  # the next size's diagnostics start fresh
    finally:
        bringup.stop(procs)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
