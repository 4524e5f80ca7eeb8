"""Beyond one process: bag conversion on Ray gives the local engine's dataset, survives a killed driver and
dead workers.

Ray runs here as a local instance (2 CPUs, no dashboard) that each run starts and stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llara_core.datasets.bags import write_episode_bag
from llara_core.datasets.reader import read_dataset
from llara_core.sim.synthetic import make_episode

LLARA = [sys.executable, "-m", "llara_core.apps.cli"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    for s in range(6):
        write_episode_bag(make_episode(s, n_steps=1 + s % 2), root / f"ep{s}", storage=("mcap", "sqlite3")[s % 2])
    poisoned = write_episode_bag(make_episode(9), root / "poisoned")
    next(poisoned.glob("*.mcap")).write_bytes(b"not a bag")
    return root


def _dataset(out: Path) -> tuple[list, dict, dict]:
    """Records (by id), image bytes (by path) and the manifest without its time stamp."""
    records = sorted(read_dataset(out), key=lambda r: r["id"])
    images = {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "images").rglob("*.png"))}
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("created_unix")
    return records, images, manifest


def test_ray_and_the_local_engine_give_the_same_dataset(bags, tmp_path):
    runs = {}
    for name, flags in (("local", ["--workers", "2"]), ("ray", ["--engine", "ray", "--workers", "2"])):
        out = tmp_path / name
        res = subprocess.run([*LLARA, "convert-bags", str(bags), "--out", str(out), *flags], capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr  # 2: the poisoned bag
        report = json.loads((out / "report.json").read_text())
        assert [Path(s["bag"]).name for s in report["skipped"]] == ["poisoned"]
        runs[name] = (_dataset(out), report["samples"], [s["reason"] for s in report["skipped"]])
    assert runs["ray"] == runs["local"]
    assert runs["ray"][1]["inbc"] == 9  # 6 episodes of 1 or 2 steps


def test_a_killed_ray_driver_resumes_without_duplicates(bags, tmp_path):
    out = tmp_path / "ds"
    cmd = [*LLARA, "convert-bags", str(bags), "--out", str(out), "--engine", "ray", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    end = time.monotonic() + 120
    while time.monotonic() < end and not list((out / "shards").glob("*.jsonl")) and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started, mid-run (or just after)
    proc.wait()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr
    report = json.loads((out / "report.json").read_text())
    assert len(report["converted"]) + len(report["already_converted"]) == 6
    local = tmp_path / "local"
    subprocess.run([*LLARA, "convert-bags", str(bags), "--out", str(local)], capture_output=True, timeout=300)
    assert _dataset(out)[:2] == _dataset(local)[:2]  # read_dataset refuses duplicate ids: none, and nothing lost


def _die_on_poison(job: tuple[str, str]) -> dict:
    bag, attempts = job
    marker = Path(attempts) / f"{bag}-{time.monotonic_ns()}"
    marker.write_text("")
    if bag == "poison":
        os._exit(1)  # the worker process dies, as on an out-of-memory kill
    return {"bag": bag, "status": "converted"}


def test_a_dead_worker_is_retried_a_bounded_number_of_times_then_reported(tmp_path):
    import ray.cloudpickle

    from llara_core.datasets.convert import run_on_ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import a test module
    jobs = [("a", str(tmp_path)), ("poison", str(tmp_path)), ("b", str(tmp_path))]
    got = run_on_ray(_die_on_poison, jobs, cpus=2, retries=1)
    assert [g["status"] for g in got] == ["converted", "skipped", "converted"]
    assert got[1]["bag"] == "poison" and "2 attempts" in got[1]["reason"] and got[1]["error_type"], got[1]
    assert len(list(tmp_path.glob("poison-*"))) == 2  # first attempt + one retry, no more


def test_llara_train_runs_unchanged_under_torchrun_with_two_processes(tmp_path):
    """DDP on CPU (gloo): 5 steps from the shipped model, one writer, resumable, and the result still acts."""
    import numpy as np

    from llara_core.model.runtime import VLMPolicy
    from llara_core.resources import demo_model_path
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task

    ds, out = tmp_path / "ds", tmp_path / "out"
    made = subprocess.run([*LLARA, "sim-demos", "--task-family", "l1_placement", "--episodes", "2", "--seed", "10000",
                           "--out", str(ds), "--kinds", "inbc"], capture_output=True, text=True)  # fmt: skip
    assert made.returncode == 0, made.stderr
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "llara_core.apps.cli", "train",
           "--data", str(ds), "--model", str(demo_model_path()), "--out", str(out), "--batch-size", "1",
           "--save-steps", "5", "--val-fraction", "0", "--lr", "1e-6", "--no-progress"]  # fmt: skip
    res = subprocess.run([*run, "--max-steps", "5"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert res.stdout.count("model written to") == 1  # rank 0 only
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 5
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-5"]
    again = subprocess.run([*run, "--max-steps", "7", "--resume"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-5") and metrics["steps"] == 7
    task = make_task("l1_placement", 0)
    with TabletopEnv(task.scene) as env:
        image = env.render()
    answer = VLMPolicy.from_pretrained(out).act(np.asarray(image), task.instruction)
    assert answer.ok, answer.text


def _jsonl_dataset(root: Path, n: int, episodes_of: int = 10) -> Path:
    """A dataset folder of n inBC records in one JSONL shard, pointing at 4 images (what a big dataset looks like)."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True)
    for k in range(4):
        Image.fromarray(np.full((32, 32, 3), 50 * k, np.uint8)).save(root / "images" / f"{k}.png")
    (root / "shards").mkdir()
    with (root / "shards" / "all.jsonl").open("w") as f:
        for i in range(n):
            rec = {"id": f"ep{i // episodes_of:07d}/inbc/{i % episodes_of:04d}", "image": f"images/{i % 4}.png",
                   "task": "inbc" if i % 3 else "d_inbc",
                   "conversations": [{"from": "human", "value": f"<image>\n<task>put block {i % 7} in the bowl</task>"},
                                     {"from": "gpt", "value": "Step 1: Pick up the object at <b>(0.100,  0.200)</b>, "
                                      "rotate <r>[0]</r> degrees, and drop it at <b>(0.300, 0.400)</b>."}]}  # fmt: skip
            f.write(json.dumps(rec) + "\n")
    (root / "manifest.json").write_text(json.dumps({"prompt_profile": "llara_ros", "end_effector": "suction cup"}))
    return root


def test_training_indexes_records_instead_of_holding_them(tmp_path):
    from llara_core.datasets.mixing import kinds_of, mix_records, split_by_episode
    from llara_core.datasets.records import DatasetError
    from llara_core.model.train import load_records

    ds = _jsonl_dataset(tmp_path / "big", 20_000)
    records, roots, _ = load_records([ds])
    plain = read_dataset(ds)
    assert len(records) == len(plain) == 20_000 and roots == [ds]
    assert [records[i] for i in (0, 7, 19_999)] == [{**plain[i], "_root": 0} for i in (0, 7, 19_999)]
    per_record = sum(a.nbytes for a in records.arrays.values()) / len(records)
    assert per_record <= 24  # bytes held per record (the records themselves stay on disk)
    train, val = split_by_episode(records, 0.1, seed=0)
    assert len(train) + len(val) == 20_000 and len(val) == 2_000  # whole episodes of 10
    held = {r["id"].split("/")[0] for r in val[:50]}
    assert not held & {train[i]["id"].split("/")[0] for i in range(0, len(train), 97)}
    mixed = mix_records(train, {"inbc": 1.0, "d_inbc": 0.5}, seed=0)
    steps = kinds_of(train).count("inbc")
    counts = {k: kinds_of(mixed).count(k) for k in ("inbc", "d_inbc")}
    assert counts == {"inbc": steps, "d_inbc": round(0.5 * steps)}  # ratios of the number of steps
    # the same split and mixture as a list of the same records
    plain_train, _ = split_by_episode([{**r, "_root": 0} for r in plain], 0.1, seed=0)
    assert len(plain_train) == len(train)
    bad = tmp_path / "bad"
    _jsonl_dataset(bad, 30)
    lines = (bad / "shards" / "all.jsonl").read_text().splitlines()
    (bad / "shards" / "all.jsonl").write_text("\n".join([*lines, lines[3]]) + "\n")
    with pytest.raises(DatasetError, match="duplicate id 'ep0000000/inbc/0003'"):
        load_records([bad])
    (bad / "shards" / "all.jsonl").write_text("\n".join([*lines[:5], "{nope", *lines[5:]]) + "\n")
    with pytest.raises(DatasetError, match=r"all\.jsonl line 6: invalid JSON"):
        load_records([bad])


def test_dataset_stats_and_a_mix_that_links_images_instead_of_copying(tmp_path):
    ds_a = _jsonl_dataset(tmp_path / "a", 60)
    ds_b = _jsonl_dataset(tmp_path / "b", 30)
    stats = subprocess.run([*LLARA, "dataset", "stats", str(ds_a), str(ds_b)], capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    got = json.loads(stats.stdout)
    assert got["records"] == 90 and got["per_kind"] == {"d_inbc": 30, "inbc": 60}
    assert got["images"] == 8 and got["episodes"] == 9 and got["lengths_in_characters"]["answer"]["max"] > 50
    out = tmp_path / "mix"
    res = subprocess.run([*LLARA, "dataset", "mix", str(ds_a), str(ds_b), "--out", str(out), "--mix",
                          "inbc=1,d_inbc=2"], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    mixed = read_dataset(out, check_content=True)  # an ordinary dataset folder: every image resolves
    kinds = [r["task"] for r in mixed]
    assert kinds.count("inbc") == 60 and kinds.count("d_inbc") == 120  # twice the steps: records repeated
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shards", "src0", "src1"]  # no image copied
    assert (out / "src0").is_symlink() and (out / "src1").is_symlink()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["total"] == 180 and manifest["prompt_profile"] == "llara_ros"
    again = subprocess.run([*LLARA, "dataset", "mix", str(ds_a), "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr
