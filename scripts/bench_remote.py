#!/usr/bin/env python3
"""Local model vs the same model through ``llara serve`` on loopback: latency p50/p95 and throughput.

    python scripts/bench_remote.py [--size 224] [--queries 30] [--clients 1 4 16]

1. The same simulator frames answered by the local ``VLMPolicy`` (in this
   process) and by the ``openai`` backend against ``llara serve`` (a separate
   process on 127.0.0.1): the difference of the p50s is the HTTP + PNG/base64
   encoding overhead (the server's generate() is the same code).
2. Throughput and per-request latency p50/p95 with 1, 4 and 16 concurrent
   clients (threads, one client each), once per ``--max-batch`` value: 1 answers
   one request at a time with speculative decoding, N > 1 batches what queued
   up into one plain ``generate()``.

Prints numbers; nothing is asserted (CI never runs this).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=224, help="square frame size in pixels (default 224)")
    ap.add_argument("--queries", type=int, default=30, help="queries per latency series (default 30)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels (default 1 4 16)")
    ap.add_argument("--max-batch", type=int, nargs="+", default=[1, 8], help="server settings to compare (default 1 8)")
    ap.add_argument("--port", type=int, default=8791)
    a = ap.parse_args()

    from llara_core.model.policy import RemoteConfig, load_policy
    from llara_core.serving.client import OpenAIPolicy, image_data_url, wait_until_healthy
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task

    frames = []
    for k in range(a.queries):
        task = make_task("l1_placement", 500 + k)
        with TabletopEnv(task.scene, width=a.size, height=a.size) as env:
            frames.append((env.render(), task.instruction))
    url = f"http://127.0.0.1:{a.port}/v1"

    def start(max_batch: int) -> subprocess.Popen:
        cmd = [
            sys.executable,
            "-m",
            "llara_core.apps.cli",
            "serve",
            "--port",
            str(a.port),
            "--max-batch",
            str(max_batch),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_healthy(url, 120, alive=lambda: proc.poll() is None)
        return proc

    local = load_policy()
    for image, instr in frames[:3]:  # warm-up
        local.act(image, instr)
    loc = []
    for image, instr in frames:
        t0 = time.perf_counter()
        local.act(image, instr)
        loc.append(time.perf_counter() - t0)
    del local  # the server gets the cores to itself for the remote series
    ms = 1000.0
    for max_batch in a.max_batch:
        server = start(max_batch)
        try:
            remote = OpenAIPolicy(RemoteConfig(base_url=url, timeout_s=120))
            for image, instr in frames[:3]:
                remote.act(image, instr)
            rem, enc = [], []
            for image, instr in frames:
                t0 = time.perf_counter()
                image_data_url(image)
                enc.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                remote.act(image, instr)
                rem.append(time.perf_counter() - t0)
            print(f"--max-batch {max_batch}: frames {a.size}x{a.size}, {a.queries} queries each")
            print(f"  local   p50 {ms * statistics.median(loc):7.1f} ms  p95 {ms * pct(loc, 0.95):7.1f} ms")
            print(f"  remote  p50 {ms * statistics.median(rem):7.1f} ms  p95 {ms * pct(rem, 0.95):7.1f} ms "
                  f"(overhead p50 {ms * (statistics.median(rem) - statistics.median(loc)):+.1f} ms, of which "
                  f"PNG+base64 {ms * statistics.median(enc):.1f} ms)")  # fmt: skip
            for n in a.clients:
                clients = [OpenAIPolicy(RemoteConfig(base_url=url, timeout_s=120)) for _ in range(n)]
                jobs = [(clients[k % n], frames[k % len(frames)]) for k in range(max(4 * n, a.queries))]

                def timed(job: tuple) -> float:
                    t0 = time.perf_counter()
                    job[0].act(*job[1])
                    return time.perf_counter() - t0

                t0 = time.perf_counter()
                with ThreadPoolExecutor(n) as ex:
                    lat = list(ex.map(timed, jobs))
                wall = time.perf_counter() - t0
                print(f"  {n:2d} concurrent clients: {len(jobs) / wall:6.2f} answers/s, latency p50 "
                      f"{ms * statistics.median(lat):7.1f} ms p95 {ms * pct(lat, 0.95):7.1f} ms ({len(jobs)} answers)",
                      flush=True)  # fmt: skip
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
