#!/usr/bin/env python3
"""Peak memory of ``llara train`` against the number of records: it must not grow with the dataset.

    python scripts/bench_memory.py [--records 10000 1000000] [--dir /tmp/llara_mem]

For each size, a dataset folder of that many inBC records in JSONL (pointing at
a handful of image files, 10 records per episode) is made once; then a
separate ``llara train`` process runs 3 steps of a tiny model on it with the
example cache off, and its peak resident memory (``/usr/bin/time``'s maximum
RSS) is printed with the index size the trainer holds per record. Nothing is
asserted; CI runs the structural test (test_scale) instead.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--dir", default="/tmp/llara_mem")
    a = ap.parse_args()
    from test_scale import _jsonl_dataset

    from llara_core.datasets.reader import read_dataset
    from llara_core.model.tiny import TinySpec, build_tiny_model

    root = Path(a.dir)
    root.mkdir(parents=True, exist_ok=True)
    model = root / "tiny"
    if not model.is_dir():
        small = _jsonl_dataset(root / "corpus", 50) if not (root / "corpus").is_dir() else root / "corpus"
        corpus = [t["value"] for r in read_dataset(small) for t in r["conversations"]]
        build_tiny_model(model, corpus, TinySpec(image_size=32, patch_size=16, vision_hidden=32, vision_layers=1,
                                                 text_hidden=64, text_layers=1, vocab_size=300))  # fmt: skip
    for n in a.records:
        ds = root / f"records_{n}"
        if not ds.is_dir():
            t = time.perf_counter()
            _jsonl_dataset(ds, n)
            print(f"made {n} records in {time.perf_counter() - t:.0f} s", flush=True)
        size = (ds / "shards" / "all.jsonl").stat().st_size
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "llara_core.apps.cli", "train", "--data", str(ds), "--model",
               str(model), "--out", str(root / f"out_{n}"), "--max-steps", "3", "--batch-size", "2",
               "--val-fraction", "0.01", "--eval-steps", "1000", "--cache-mb", "0", "--no-progress"]  # fmt: skip
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
        if res.returncode != 0 or m is None:
            print(res.stderr[-3000:])
            return 1
        print(f"{n:>9} records ({size / 1e6:.0f} MB of JSONL): peak RSS {int(m.group(1)) / 1024:.0f} MB, "
              f"{wall:.0f} s (indexing + 3 steps)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
