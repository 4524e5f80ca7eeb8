"""One expert demonstration per (family, seed, image size) for the whole test session.

The scripted expert in the MuJoCo tabletop is the suite's ground truth and its slowest fixture (a second or two
per episode); every module that needs a demonstration asks here, so each one runs once per session.
"""

from __future__ import annotations

import functools

from llara_core.datasets.episodes import Episode


@functools.cache
def expert_episode(family: str, seed: int, width: int = 160, height: int = 120) -> Episode:
    """The expert's demonstration of ``family`` seed ``seed`` (asserted successful). Treat it as read-only."""
    from llara_core.sim.expert import expert_scene

    _, result = expert_scene(family, seed, width, height)
    assert result.success and result.episode is not None, result.reason
    return result.episode
