"""Error records are part of the contract: what a user (and the action node's step_done) reads."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from llara_core.geometry import (
    BehindCameraError,
    CameraModel,
    look_at,
    pose_to_matrix,
)
from llara_core.language.actions import ActionStep, render_step


# -- error records are part of the contract: what a user (and the action node's step_done) reads ------------------
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", [("empty", "model output is empty", 0, "", None)]),
        ("   \n ", [("empty", "model output is empty", 0, "", None)]),
        ("no action here", [("no_action", "no action step found in the output", 0, "no action here", None)]),
        ("Step 2: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3",
         [("truncated", "line ends before the step is complete", 1,
           "Step 2: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3", 2)]),
        ("ok\nPick up the object at <b>(0.1, 0.2)</b>, rotate <r>[0]</r> degrees.",
         [("missing_place", "step has no place point", 2,
           "Pick up the object at <b>(0.1, 0.2)</b>, rotate <r>[0]</r> degrees.", None)]),
        ("Step 1: Pick up <b>(0.1, 0.2)</b> then <b>(0.3, 0.4)</b>",
         [("malformed", "line does not follow the action format", 1,
           "Step 1: Pick up <b>(0.1, 0.2)</b> then <b>(0.3, 0.4)</b>", 1)]),
        ("Pick up the object at <b>(nan, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>.",
         [("not_finite", "coordinates and rotation must be finite numbers", 1,
           "Pick up the object at <b>(nan, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>.", None)]),
        ("Step 3: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3, 1.4)</b>.",
         [("out_of_range", "place point (0.3, 1.4) is outside the normalized image [0, 1]", 1,
           "Step 3: Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3, 1.4)</b>.", 3)]),
        ("Pick up the object at <b>(0.1, 0.2)</b>, rotate <r>[400]</r> degrees, and drop it at <b>(0.3, 0.4)</b>.",
         [("rotation_out_of_range", "rotation 400.0 outside [-359, 359]", 1,
           "Pick up the object at <b>(0.1, 0.2)</b>, rotate <r>[400]</r> degrees, and drop it at <b>(0.3, 0.4)</b>.",
           None)]),
    ],
)  # fmt: skip
def test_every_parse_error_says_what_where_and_why(text, want):
    from llara_core.language.actions import parse_actions

    res = parse_actions(text)
    assert res.steps == [] and not res.ok
    assert [(e.code, e.message, e.line, e.text, e.index) for e in res.errors] == want


def test_the_parser_refuses_what_is_not_text_and_keeps_good_steps_around_bad_ones():
    from llara_core.language.actions import parse_actions

    res = parse_actions(42)  # type: ignore[arg-type]
    assert res.steps == [] and [(e.code, e.message, e.line, e.text) for e in res.errors] == [
        ("malformed", "expected str, got int", 0, "42")]  # fmt: skip
    two = render_step(ActionStep((0.1, 0.2), (0.3, 0.4), -15.0, object="red block"), 1)
    res = parse_actions(two + "\nStep 2: Pick up the object at <b>(2, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>.")
    assert len(res.steps) == 1 and res.steps[0].rotation_deg == -15.0 and res.steps[0].object == "red block"
    assert res.steps[0].index == 1 and [e.line for e in res.errors] == [2] and not res.ok
    assert math.copysign(1.0, parse_actions(two.replace("[-15]", "[-0]")).steps[0].rotation_deg) == 1.0
    for bad, why in ((((0.1,), (0.2, 0.3)), "exactly two"), (((0.1, 0.2), (0.2, float("inf"))), "finite")):
        with pytest.raises(ValueError, match=why):
            ActionStep(*bad)
    with pytest.raises(ValueError, match="unknown action kind 'push'"):
        ActionStep((0.1, 0.2), (0.3, 0.4), kind="push")  # type: ignore[arg-type]
    assert render_step(ActionStep((0.1, 0.2), (0.3, 0.4), 12.5)).split("[")[1].startswith("12.5]")
    assert render_step(ActionStep((0.1, 0.2), (0.3, 0.4), -0.0004)).split("[")[1].startswith("0]")


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (([1, 0, 0, 0, 1, 0, 0, 0], [], 10, 10), "K must have 9 entries, got 8"),
        (([1, 0, 0, 0, 1, 0, 0, 0, 1], [float("nan")] * 5, 10, 10), "K and D must be finite"),
        (([0, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, 10), "focal lengths must be positive, got fx=0.0, fy=1.0"),
        (([1, 0, 5, 0, -1, 5, 0, 0, 1], [], 10, 10), "focal lengths must be positive, got fx=1.0, fy=-1.0"),
        (([1, 0, 5, 1, 1, 5, 0, 0, 1], [], 10, 10), "K is not an upper-triangular pinhole matrix"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 2], [], 10, 10), "K is not an upper-triangular pinhole matrix"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 0, 10), "image size must be positive, got 0x10"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, -1), "image size must be positive, got 10x-1"),
        (([1, 0, 5, 0, 1, 5, 0, 0, 1], [0.1] * 6, 10, 10), "6 distortion coefficients is not an OpenCV layout"),
    ],
)
def test_camera_models_that_cannot_be_real_say_why(args, why):
    from llara_core.geometry import DegenerateCameraError

    with pytest.raises(DegenerateCameraError, match=re.escape(why)):
        CameraModel.from_camera_info(*args)


def test_camera_model_choices_and_projections_are_exact():
    from llara_core.geometry import DegenerateCameraError

    with pytest.raises(DegenerateCameraError, match="distortion model 'fisheye' not supported; use one of"):
        CameraModel.from_camera_info([1, 0, 5, 0, 1, 5, 0, 0, 1], [0.1] * 4, 10, 10, "fisheye")
    with pytest.raises(DegenerateCameraError, match="R is not a rotation matrix"):
        CameraModel.from_camera_info([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, 10, r=[2, 0, 0, 0, 1, 0, 0, 0, 1])
    with pytest.raises(DegenerateCameraError, match="P must be finite with positive focal lengths"):
        CameraModel.from_camera_info([1, 0, 5, 0, 1, 5, 0, 0, 1], [], 10, 10, p=[-1, 0, 5, 0, 0, 1, 5, 0, 0, 0, 1, 0])
    with pytest.raises(DegenerateCameraError, match="fovy must be in"):
        CameraModel.from_fovy(180.0, 10, 10)
    cam = CameraModel.from_fovy(90.0, 200, 100)
    assert np.allclose(cam.K, [[50.0, 0.0, 99.5], [0.0, 50.0, 49.5], [0.0, 0.0, 1.0]]) and cam.D.tolist() == [0.0] * 5
    assert cam.width == 200 and isinstance(cam.width, int) and not cam.has_distortion
    assert np.allclose(cam.project([[0.2, -0.1, 2.0], [0.0, 0.0, 1.0]]), [[104.5, 47.0], [99.5, 49.5]])
    with pytest.raises(BehindCameraError, match="behind the camera"):
        cam.project([0.0, 0.0, -1.0])
    with pytest.raises(ValueError, match=r"expected shape \(3,\) or \(N, 3\)"):
        cam.project([[1.0, 2.0]])
    assert np.allclose(cam.normalized_to_pixel([[0.0, 0.0], [1.0, 1.0]]), [[-0.5, -0.5], [199.5, 99.5]])
    assert np.allclose(cam.pixel_to_normalized([99.5, 49.5]), [0.5, 0.5])
    T = look_at([0.0, 0.0, 1.0], [1.0, 0.0, 1.0])  # looking along x, image up = z
    assert np.allclose(T[:3, 2], [1, 0, 0]) and np.allclose(T[:3, 1], [0, 0, -1]) and np.allclose(T[:3, 3], [0, 0, 1])
    from llara_core.geometry import GeometryError, transform_points, wrap_degrees, yaw_of

    with pytest.raises(GeometryError, match="coincide"):
        look_at([1, 1, 1], [1, 1, 1])
    with pytest.raises(GeometryError, match="parallel"):
        look_at([0, 0, 1], [0, 0, 0])
    assert [wrap_degrees(a) for a in (180.0, -180.0, 190.0, -190.0, 540.0)] == [-180.0, -180.0, -170.0, 170.0, -180.0]
    R = pose_to_matrix([1.0, 2.0, 3.0], [0.0, 0.0, math.sin(0.35), math.cos(0.35)])
    assert math.isclose(yaw_of(R), 0.7) and math.isclose(yaw_of(R[:3, :3]), 0.7)
    assert np.allclose(transform_points(R, [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), [[1, 2, 3], [1 + math.cos(0.7),
                                                                                         2 + math.sin(0.7), 3]])  # fmt: skip
