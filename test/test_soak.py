"""The soak script's short version: the policy and action nodes under a 640×480 camera at 30 Hz for 20 s.

``scripts/soak_ros.py`` (``make soak``: 10 minutes) runs the shipped model in
policy_node and a dry-run action_node as processes on a private graph; here its
checks must hold over a short run: every action got its step_done, no frame the
model was given was older than ``max_image_age_s``, and both nodes' RSS is
reported per interval.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]


def test_twenty_seconds_at_camera_rate_answer_every_action_with_fresh_frames(tmp_path):
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "soak_ros.py"), "--minutes", "0.34", "--report-s", "5",
           "--warmup-s", "5", "--json", str(out)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0 and out.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["ok"] and figures["actions"] >= 10, figures
    assert figures["actions_without_step_done"] == 0 and figures["step_done"] == figures["actions"]
    assert 0 < figures["frame_age_max_ms"] <= figures["max_image_age_ms"]
    rows = figures["intervals"]
    assert len(rows) >= 3 and all(set(r["rss_mb"]) == {"policy_node", "action_node"} for r in rows)
    assert rows[-1]["frames_received"] > 5 * rows[-1]["frames_used"] > 0  # 30 Hz in, one frame per query used
    assert "summary:" in run.stdout and "-> OK" in run.stdout
