"""From a parsed step to gripper poses: the grasp is centred on the object the pick point lies on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llara_core.geometry import base_to_normalized
from llara_core.language.actions import ActionStep
from llara_core.planning import ExecutionSettings, object_outline, plan_step
from llara_core.sim.env import TabletopEnv
from llara_core.sim.tasks import make_task

pytestmark = pytest.mark.sim  # MuJoCo scenes: seconds per test (left out of mutation runs)

SETTINGS = ExecutionSettings()
RAW = ExecutionSettings(refine_grasp=False)
GRASP_Z = SETTINGS.grasp_height


def _scene(seed: int = 3):
    task = make_task("l1_placement", seed)
    env = TabletopEnv(task.scene)
    return task, env


def test_refined_grasp_lands_on_the_object_centre_from_an_off_centre_point():
    task, env = _scene()
    with env:
        image = env.render()
        obj = task.scene.graspables[0]
        center = env.object_pose(obj.name)[:3, 3]
        top = base_to_normalized(env.camera, env.camera_pose, [[center[0], center[1], GRASP_Z]])[0]
        step = ActionStep((float(top[0]), float(top[1])), (0.5, 0.6), 0.0, object=obj.name)
        for dx, dy in ((0.012, 0.0), (-0.012, 0.008), (0.0, -0.01)):  # still on the object, ~1-2 cm off its centre
            off = dataclasses.replace(step, pick=(step.pick[0] + dx, step.pick[1] + dy))
            raw = plan_step(off, env.camera, env.camera_pose, RAW, image)
            ref = plan_step(off, env.camera, env.camera_pose, SETTINGS, image)
            assert np.linalg.norm(ref.pick[:2] - center[:2]) < 0.006, (dx, dy)
            assert np.linalg.norm(raw.pick[:2] - center[:2]) > np.linalg.norm(ref.pick[:2] - center[:2])
            assert ref.pick[2] == GRASP_Z and np.allclose(ref.place, raw.place)


def test_a_point_off_every_object_is_executed_as_it_is():
    _task, env = _scene()
    with env:
        image = env.render()
        step = ActionStep((0.5, 0.02), (0.5, 0.6), 0.0, object="nothing")  # the far table edge / background
        ref = plan_step(step, env.camera, env.camera_pose, SETTINGS, image)
        raw = plan_step(step, env.camera, env.camera_pose, RAW, image)
        assert np.allclose(ref.pick, raw.pick)
        outline = object_outline(image, env.camera, env.camera_pose, (0.5, 0.02), GRASP_Z)
        assert outline is None or not outline.whole
