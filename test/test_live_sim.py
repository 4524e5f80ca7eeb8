"""The simulator as a live robot (what sim_node runs): trajectories by joint name, non-blocking steps, one event."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import expert_episode

from llara_core.language.actions import render_step
from llara_core.planning import Gripper, plan_action
from llara_core.sim.arm import ARM_JOINTS, HOME_Q, ArmKinematics
from llara_core.sim.live import LiveSim, SimConfig
from llara_core.sim.tasks import make_task


def test_trajectories_play_by_joint_name_and_bad_ones_are_rejected():
    sim = LiveSim(SimConfig(seed=2, episode_timeout_s=1000))
    names = list(reversed(ARM_JOINTS))
    target = HOME_Q + np.array([0.2, 0.0, 0.0, 0.0, 0.0, -0.3])
    sim.command_trajectory(names, [1.0], [list(reversed(target))])
    assert sim.env.moving
    sim.advance(0.5)
    assert sim.env.moving  # non-blocking: half-way after half the time
    sim.advance(0.8)
    assert not sim.env.moving and np.allclose(sim.env.q, target, atol=0.02)
    with pytest.raises(ValueError, match="lacks joints"):
        sim.command_trajectory(names[:5], [1.0], [list(target[:5])])
    with pytest.raises(ValueError, match="joint limits"):
        sim.command_trajectory(list(ARM_JOINTS), [1.0], [[9.0] * 6])
    with pytest.raises(ValueError, match="increase strictly"):
        sim.command_trajectory(list(ARM_JOINTS), [1.0, 0.5], [list(target), list(target)])
    with pytest.raises(ValueError, match="finite"):
        sim.command_gripper(float("nan"))
    sim.close()


def test_an_episode_ends_with_one_success_event_or_a_timeout():
    task = make_task("l1_placement", 5)
    step = expert_episode("l1_placement", 5, 224, 224).action_steps()[0]
    sim = LiveSim(SimConfig(family="l1_placement", seed=5, episode_timeout_s=100))
    events = sim.advance(0.0)
    assert [e["event"] for e in events] == ["start"] and events[0]["instruction"] == task.instruction
    kin = ArmKinematics()
    plan = plan_action(render_step(step, 1), sim.env.camera, sim.env.camera_pose, image=sim.env.render(),
                       kinematics=kin, q0=sim.env.q, partial="first_step")  # fmt: skip
    assert plan.ok
    seen = []
    for item in plan.joints:
        if isinstance(item, Gripper):
            sim.command_gripper(0.0 if item.closed else item.opening)
            seen += sim.advance(0.4)
        else:
            sim.command_trajectory(list(kin.joint_names), item.times, item.positions)
            seen += sim.advance(float(item.times[-1]) + 0.2)
    seen += sim.advance(0.5)
    assert [e["event"] for e in seen] == ["success"] and seen[0]["seed"] == 5
    assert sim.advance(1.0) == []  # one event per episode
    sim.reset()
    assert sim.seed == 6
    late = LiveSim(SimConfig(seed=1, episode_timeout_s=0.5))
    assert [e["event"] for e in late.advance(0.0) + late.advance(1.0)] == ["start", "timeout"]
    sim.close()
    late.close()
