"""Motion plans: object outlines, heights from the settings and the table, the gripper's opening."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llara_core.geometry import (
    CameraModel,
    base_to_normalized,
    look_at,
)
from llara_core.language.actions import ActionStep, render_step
from llara_core.planning import (
    ExecutionSettings,
    Motion,
    Outline,
    Workspace,
    motion_plan,
    nearest_yaw,
    object_outline,
    plan_action,
    plan_step,
)


# -- planning ------------------------------------------------------------------------------------------------------
def _top_view():
    cam = CameraModel.from_fovy(60.0, 200, 200)
    T = look_at([0.5, 0.0, 0.8], [0.5, 0.0, 0.0], up=[-1.0, 0.0, 0.0])
    return cam, T


def _draw_bar(cam, T, center, yaw, size=(0.12, 0.03), color=(200, 30, 30)):
    """A flat coloured bar on the table, drawn by projecting its corners (ground truth for the outline)."""
    import cv2

    img = np.full((cam.height, cam.width, 3), 180, np.uint8)
    c, s = math.cos(yaw), math.sin(yaw)
    corners = [[center[0] + c * a * size[0] / 2 - s * b * size[1] / 2, center[1] + s * a * size[0] / 2 +
                c * b * size[1] / 2, 0.0] for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1))]  # fmt: skip
    px = cam.normalized_to_pixel(base_to_normalized(cam, T, np.array(corners)))
    cv2.fillPoly(img, [np.round(px).astype(np.int32)], color)
    return img


def test_the_outline_of_an_elongated_object_gives_its_centre_and_axis():
    cam, T = _top_view()
    img = _draw_bar(cam, T, (0.52, 0.03), 0.4)
    xy = tuple(base_to_normalized(cam, T, [0.53, 0.034, 0.0]))
    out = object_outline(img, cam, T, xy, 0.0)
    assert isinstance(out, Outline) and out.whole
    assert np.linalg.norm(out.center - [0.52, 0.03]) < 0.004
    assert abs(math.remainder(out.yaw - 0.4, math.pi)) < 0.05 and out.ratio > 3
    grey = np.full((cam.height, cam.width, 3), 180, np.uint8)
    assert object_outline(grey, cam, T, (0.5, 0.5), 0.0).ratio < 1.2  # a plain table: one round blob, not a bar
    assert object_outline(img, cam, T, (1.2, 0.5), 0.0) is None  # outside the image
    s = ExecutionSettings(grasp_height=0.0, place_plane=0.0)
    step = ActionStep(xy, (0.3, 0.3))
    refined = plan_step(step, cam, T, s, img)
    assert np.linalg.norm(refined.pick[:2] - [0.52, 0.03]) < 0.004
    assert abs(math.remainder(refined.grasp_yaw - 0.4, math.pi)) < 0.05  # the fingers close across the bar
    raw = plan_step(step, cam, T, s)
    assert np.linalg.norm(raw.pick[:2] - [0.53, 0.034]) < 1e-6 and math.isclose(
        raw.grasp_yaw, math.atan2(raw.pick[1], raw.pick[0]) + math.pi)  # fmt: skip
    no_centring = plan_step(step, cam, T, ExecutionSettings(grasp_height=0.0, place_plane=0.0, refine_grasp=False),
                            img)  # fmt: skip
    assert np.allclose(no_centring.pick, raw.pick) and abs(math.remainder(no_centring.grasp_yaw - 0.4, math.pi)) < 0.05


def test_plan_heights_follow_the_settings_and_the_table():
    cam, T = _top_view()
    s = ExecutionSettings(table_height=0.1, grasp_height=0.02, place_plane=0.05, release_height=0.06,
                          carry_height=0.3, approach=0.08, refine_grasp=False)  # fmt: skip
    plan = plan_action(render_step(ActionStep((0.5, 0.5), (0.3, 0.6), 90.0), 1), cam, T, s, workspace=Workspace())
    assert plan.ok and math.isclose(plan.lifted.pick[2], 0.12) and math.isclose(plan.lifted.place[2], 0.15)
    z = {it.label: it.pose[2, 3] for it in plan.items if isinstance(it, Motion)}
    assert z == pytest.approx({"pre_grasp": 0.4, "grasp": 0.12, "lift": 0.4, "pre_place": 0.4, "place": 0.16,
                               "retreat": 0.24})  # fmt: skip
    assert math.isclose(plan.lifted.rotation, -math.pi / 2)
    with pytest.raises(ValueError, match="carry_height"):
        ExecutionSettings(carry_height=0.01)
    for bad in ({"grasp_height": -0.01}, {"lin_speed": 0.0}, {"control_dt": -1.0}, {"approach": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ExecutionSettings(**bad)
    assert math.isclose(ExecutionSettings().yaw_offset, math.pi) and ExecutionSettings().z(0.2) == 0.2
    tight = Workspace.from_bounds((0.0, 1.0, -1.0, 1.0, 0.0, 0.35))
    out = plan_action(render_step(ActionStep((0.5, 0.5), (0.3, 0.6)), 1), cam, T, s, workspace=tight)
    assert out.code == "workspace" and "pre_grasp at [" in out.reason
    for bounds in ((1.0, 0.0, 0, 1, 0, 1), (0, 1, 0, 1, 0)):
        with pytest.raises(ValueError, match="workspace"):
            Workspace.from_bounds(bounds)


def test_motion_plan_never_goes_below_the_grasp_height_and_opens_wide_enough():
    items = motion_plan([0.4, 0.0, -0.5], [0.5, 0.1, -0.5], 0.0, 0.0, ExecutionSettings(), half_width=0.03)
    poses = [it.pose for it in items if isinstance(it, Motion)]
    assert min(p[2, 3] for p in poses) == 0.025
    assert [it.opening for it in items if not isinstance(it, Motion) and not it.closed] == [0.045, 0.045]
    assert math.isclose(nearest_yaw(0.1, math.pi / 2, 3.0), 0.1 + 2 * math.pi / 2)
    assert math.isclose(nearest_yaw(0.1, math.pi, -3.0), 0.1 - math.pi)
