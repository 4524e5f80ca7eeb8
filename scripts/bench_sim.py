#!/usr/bin/env python3
"""Simulator benchmark: scripted-expert success per task family, and rendering + stepping speed.

    python scripts/bench_sim.py [--seeds 200] [--workers 2] [--json out.json]

Prints a markdown table (success %, failures with reasons, collisions) and the
frame rate of render + physics at 224×224. Numbers, not assertions: the slow
test `test_expert_success_rate` holds the ≥ 98 % bar.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from llara_core.sim import select_gl

select_gl()


def _chunk(args: tuple[str, list[int]]) -> list[dict[str, object]]:
    from llara_core.sim.expert import expert_success

    return expert_success(*args)


def frame_rate(size: tuple[int, int] = (224, 224), frames: int = 200, physics_s: float = 0.1) -> dict[str, float]:
    """Frames/s of render alone, and of render + ``physics_s`` of physics (one 10 Hz recording period)."""
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task

    with TabletopEnv(make_task("multi_step", 0).scene, width=size[0], height=size[1]) as env:
        env.render()
        t = time.perf_counter()
        for _ in range(frames):
            env.render()
        render_only = frames / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(frames):
            env.run_for(physics_s)
            env.render()
        both = frames / (time.perf_counter() - t)
        t = time.perf_counter()
        env.run_for(10.0)
        realtime = 10.0 / (time.perf_counter() - t)
    return {"render_fps": render_only, "render_plus_physics_fps": both, "physics_x_realtime": realtime}


def main() -> int:
    from llara_core.sim.tasks import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=200, help="seeds per family (default 200)")
    ap.add_argument("--first-seed", type=int, default=1000, help="first seed (default 1000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    fams = a.families.split(",")
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    chunks = [(f, seeds[i :: a.workers * 2]) for f in fams for i in range(a.workers * 2)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as ex:
        rows = [r for part in ex.map(_chunk, chunks) for r in part]
    wall = time.perf_counter() - t0
    print(f"## Expert success ({a.seeds} seeds per family, seeds {seeds[0]}..{seeds[-1]}, {wall:.0f} s wall)\n")
    print("| family | level | success | rate | episodes with collisions |")
    print("|---|---|---|---|---|")
    table = {}
    for f in fams:
        rs = [r for r in rows if r["family"] == f]
        ok = sum(bool(r["success"]) for r in rs)
        col = sum(1 for r in rs if r["collisions"])
        table[f] = {"success": ok, "n": len(rs), "rate": ok / len(rs), "with_collisions": col}
        print(f"| {f} | {FAMILIES[f]} | {ok}/{len(rs)} | {100 * ok / len(rs):.1f} % | {col} |")
    fails = [r for r in rows if not r["success"]]
    for r in fails:
        print(f"  FAIL {r['family']} seed {r['seed']}: {r['reason']}")
    fr = frame_rate()
    print(
        f"\n## Speed at 224x224\nrender only: {fr['render_fps']:.0f} frames/s; render + 0.1 s physics (one 10 Hz "
        f"recording period): {fr['render_plus_physics_fps']:.0f} frames/s; physics alone: "
        f"{fr['physics_x_realtime']:.0f}x real time"
    )
    if a.json:
        Path(a.json).write_text(json.dumps({"success": table, "failures": fails, "speed": fr}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
