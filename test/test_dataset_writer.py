"""The dataset writer under a crash: only whole episodes, images before the shard that commits them."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from llara_core.datasets.reader import read_dataset
from llara_core.datasets.writer import DatasetWriter
from llara_core.sim.synthetic import make_episode

# -- the dataset writer under a crash ----------------------------------------------------------------
_WRITER = """
import sys
from llara_core.datasets.writer import DatasetWriter
from llara_core.sim.synthetic import make_episode
w = DatasetWriter(sys.argv[1])
for seed in range(40):
    w.add_episode(make_episode(seed, n_blocks=3, n_steps=2))
w.finalize()
"""


def _visible_records_are_whole(root: Path) -> None:
    shards = sorted((root / "shards").glob("*.jsonl"))
    for shard in shards:
        for line in shard.read_text().splitlines():
            rec = json.loads(line)  # a committed shard is never half written
            assert (root / rec["image"]).is_file(), f"{rec['id']} names an image that is not there"
    committed = {s.stem for s in shards}
    for folder in (root / "images").glob("*"):
        if folder.name not in committed:  # images of an episode whose shard is not written yet
            continue
        assert all(p.suffix == ".png" for p in folder.iterdir())
    assert not list(root.rglob("*.tmp")) or True  # temporary files may remain; they are never read


def test_a_killed_writer_leaves_only_whole_episodes_and_a_rerun_completes_without_duplicates(tmp_path):
    rng = random.Random(0)
    root = tmp_path / "ds"
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)])
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (root / "shards").is_dir():
            _visible_records_are_whole(root)
    subprocess.run([sys.executable, "-c", _WRITER, str(root)], check=True)
    records = read_dataset(root, check_content=True)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert {i.split("/")[0] for i in ids} == {make_episode(s, n_blocks=3, n_steps=2).episode_id for s in range(40)}
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    for p in leftovers:  # temp files of killed writes are never referenced by any record
        assert not any(p.name in json.dumps(r) for r in records)


def test_the_shard_that_commits_an_episode_is_written_after_its_images(tmp_path, monkeypatch):
    import llara_core.datasets.writer as conv

    order: list[str] = []
    real = conv.atomic_write_bytes

    def spy(path, data):
        order.append(Path(path).suffix)
        real(path, data)

    monkeypatch.setattr(conv, "atomic_write_bytes", spy)
    DatasetWriter(tmp_path).add_episode(make_episode(1, n_blocks=3, n_steps=2))
    assert (
        order[-1] == ".jsonl"
        and ".png" in order
        and order.index(".jsonl") > max(i for i, s in enumerate(order) if s == ".png")
    )
