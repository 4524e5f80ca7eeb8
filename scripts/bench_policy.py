#!/usr/bin/env python3
"""Policy latency: image -> parsed action with the demo model (or --model), on this CPU.

    python scripts/bench_policy.py [--model models/llara-tiny-sim] [--n 50] [--threads N] [--no-speculative]

Renders --n held-out simulator scenes, then times ``VLMPolicy.act`` (prompt,
processor, greedy generation, decoding, strict parsing) on each, after two
warm-up calls. Prints p50 / p90 / mean in milliseconds and the tokens generated.
``--no-speculative`` times plain ``generate()`` instead of the format-drafted
greedy decoding the policy uses by default (both give the same answers).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: the shipped demo model)")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-speculative", action="store_true", help="decode with plain generate()")
    a = ap.parse_args()
    import torch

    from llara_core.model.runtime import VLMPolicy
    from llara_core.resources import demo_model_path
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task

    if a.threads:
        torch.set_num_threads(a.threads)
    policy = VLMPolicy.from_pretrained(a.model or demo_model_path(), speculative=not a.no_speculative)
    scenes = []
    for seed in range(a.n):
        task = make_task("l1_placement", seed)
        with TabletopEnv(task.scene) as env:
            scenes.append((env.render(), task.instruction))
    for img, text in scenes[:2]:
        policy.act(img, text)
    times, ok, tokens = [], 0, []
    for img, text in scenes:
        t = time.perf_counter()
        out = policy.act(img, text)
        times.append(time.perf_counter() - t)
        ok += out.ok
        tokens.append(len(policy.processor.tokenizer(out.text)["input_ids"]))
    times.sort()
    ms = [1000 * t for t in times]
    print(
        f"image -> parsed action ({'generate()' if a.no_speculative else 'speculative'}), {a.n} calls, "
        f"{torch.get_num_threads()} threads: p50 {ms[len(ms) // 2]:.1f} ms, "
        f"p90 {ms[int(len(ms) * 0.9)]:.1f} ms, mean {statistics.mean(ms):.1f} ms; "
        f"{statistics.mean(tokens):.0f} tokens per answer; {ok}/{a.n} answers parsed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
