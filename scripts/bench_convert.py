#!/usr/bin/env python3
"""Conversion benchmark: bags -> conversations vs only reading + deserializing the same bags with rosbags.

    python scripts/bench_convert.py [--gb 1.0] [--dir /tmp/llara_bench] [--storage mcap] [--engine local ray]

Makes (once, reused afterwards) expert demonstrations in the MuJoCo tabletop at
640×480 as rosbag2 episodes until they hold --gb gigabytes, then times, with a
warm page cache: (a) reading and deserializing every message of every bag,
(b) `convert_bags` with all eight task kinds and --workers 1, (c) with
--workers 2, (d) with ``--engine ray`` (a local Ray with 2 CPUs, its start-up
included). Prints the times and each one's ratio to (a).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def make_bags(root: Path, gb: float, storage: str) -> list[Path]:
    from llara_core.sim.arm import ArmKinematics
    from llara_core.sim.demonstrations import write_bag_atomic
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.expert import run_expert
    from llara_core.sim.tasks import make_task

    root.mkdir(parents=True, exist_ok=True)
    kin = ArmKinematics()
    seed = 0
    while (size := sum(f.stat().st_size for f in root.rglob("*") if f.is_file())) < gb * 1e9:
        family = ("l1_placement", "multi_step")[seed % 2]
        path = root / f"{family}-{seed:06d}"
        seed += 1
        if path.exists():
            continue
        task = make_task(family, seed)
        with TabletopEnv(task.scene, width=640, height=480) as env:
            res = run_expert(task, env, kin)
        if res.episode is not None:
            write_bag_atomic(res.episode, path, storage)  # type: ignore[arg-type]
            print(f"  {path.name}: {len(res.episode.frames)} frames, total {size / 1e9:.2f} GB", flush=True)
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_all(bags: list[Path]) -> tuple[float, int]:
    """Seconds to read and deserialize every message of every bag; and the message count."""
    from rosbags.highlevel import AnyReader

    from llara_core.datasets.bags import typestore

    ts = typestore()
    n = 0
    t = time.perf_counter()
    for b in bags:
        with AnyReader([b], default_typestore=ts) as r:
            for conn, _, raw in r.messages():
                r.deserialize(raw, conn.msgtype)
                n += 1
    return time.perf_counter() - t, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0, help="bag volume to convert (default 1.0 GB)")
    ap.add_argument("--dir", default="/tmp/llara_bench", help="where the bags are made/reused")
    ap.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    ap.add_argument("--engine", nargs="+", choices=["local", "ray"], default=["local", "ray"])
    a = ap.parse_args()
    from llara_core.datasets.convert import ConversionConfig, convert_bags

    root = Path(a.dir)
    print(f"bags in {root / 'bags'} (made once)")
    bags = make_bags(root / "bags", a.gb, a.storage)
    size = sum(f.stat().st_size for b in bags for f in b.rglob("*") if f.is_file())
    read_all(bags)  # warm the page cache for every measurement alike
    t_read, n = read_all(bags)
    print(f"\n{len(bags)} bags, {size / 1e9:.2f} GB, {n} messages")
    print(f"read + deserialize every message: {t_read:.2f} s ({size / 1e6 / t_read:.0f} MB/s)")
    rows = []
    runs = [("local", w) for w in (1, 2) if "local" in a.engine] + [("ray", 2) for _ in ("ray",) if "ray" in a.engine]
    for engine, workers in runs:
        out = root / f"dataset_{engine}_w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        report = convert_bags(bags, out, ConversionConfig(workers=workers, engine=engine), progress=False)  # type: ignore[arg-type]
        dt = time.perf_counter() - t
        assert not report["skipped"], report["skipped"]
        rows.append((engine, workers, dt, sum(report["samples"].values())))
    for engine, workers, dt, samples in rows:
        print(f"convert_bags --engine {engine} --workers {workers}: {dt:.2f} s, {samples} samples, "
              f"{dt / t_read:.2f}x the read time")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
