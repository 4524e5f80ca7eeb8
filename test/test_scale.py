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

from llara_core.bags import write_episode_bag
from llara_core.conversations import read_dataset
from llara_core.synthetic import make_episode

LLARA = [sys.executable, "-m", "llara_core.cli"]


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

    from llara_core.convert import run_on_ray

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
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "llara_core.cli", "train",
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
