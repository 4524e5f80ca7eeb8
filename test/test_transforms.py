"""Rotations, transforms and ray-plane geometry: round trips and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llara_core.geometry import (
    BehindCameraError,
    CameraModel,
    ParallelRayError,
    base_to_normalized,
    chain_transform,
    intersect_plane,
    invert_transform,
    look_at,
    matrix_to_quaternion,
    normalized_to_table,
    pose_to_matrix,
    quaternion_pose,
    quaternion_to_matrix,
)

# -- rotations and transforms ----------------------------------------------------------------------------
HALF_TURNS = [np.diag(d) for d in ([1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0])]  # trace -1: every branch


@pytest.mark.parametrize("R", [*HALF_TURNS, np.eye(3)])
def test_quaternions_of_half_turns_and_identity(R):
    q = matrix_to_quaternion(R)
    assert np.isclose(np.linalg.norm(q), 1.0) and q[3] >= 0
    assert np.allclose(quaternion_to_matrix(q), R, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1))
def test_matrix_quaternion_round_trip(v):
    q = np.asarray(v) / np.linalg.norm(v)
    R = quaternion_to_matrix(q)
    back = matrix_to_quaternion(R)
    assert back[3] >= 0 and (np.allclose(back, q, atol=1e-9) or np.allclose(back, -q, atol=1e-9))
    assert np.allclose(quaternion_to_matrix(back), R, atol=1e-9)
    T = pose_to_matrix([0.1, -0.2, 0.3], q)
    assert np.allclose(quaternion_pose(T), [0.1, -0.2, 0.3, *back], atol=1e-9)
    assert np.allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)


def test_chain_transform_walks_any_path_and_ignores_leading_slashes():
    A = pose_to_matrix([1.0, 0.0, 0.0], [0.0, 0.0, math.sin(0.3), math.cos(0.3)])
    B = pose_to_matrix([0.0, 2.0, 0.5], [math.sin(0.2), 0.0, 0.0, math.cos(0.2)])
    C = pose_to_matrix([0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0])
    edges = [("/world", "base", A), ("base", "mount", B), ("cam", "mount", C), ("other", "x", np.eye(4))]
    assert np.allclose(chain_transform(edges, "world", "cam"), A @ B @ invert_transform(C))
    assert np.allclose(chain_transform(edges, "/cam", "world"), invert_transform(A @ B @ invert_transform(C)))
    assert np.allclose(chain_transform(edges, "mount", "mount"), np.eye(4))
    assert chain_transform(edges, "world", "x") is None and chain_transform([], "a", "b") is None


def test_ray_plane_intersections_and_their_refusals():
    p = intersect_plane([0, 0, 2.0], [0, 0.6, -0.8], [5.0, 5.0, 0.5], [0, 0, 3.0])  # any point, unnormalized normal
    assert np.allclose(p, [0, 1.125, 0.5])
    with pytest.raises(ParallelRayError):
        intersect_plane([0, 0, 1.0], [1.0, 0, 0], [0, 0, 0], [0, 0, 1.0])
    with pytest.raises(BehindCameraError):
        intersect_plane([0, 0, 1.0], [0, 0, 1.0], [0, 0, 0], [0, 0, 1.0])
    cam = CameraModel.from_fovy(60.0, 320, 240)
    T = look_at([0.5, 0.0, 1.0], [0.5, 0.0, 0.0], up=[1.0, 0.0, 0.0])
    for xy in ((0.5, 0.5), (0.1, 0.9), (0.8, 0.3)):
        pt = normalized_to_table(cam, T, xy, table_height=0.05)
        assert math.isclose(pt[2], 0.05) and np.allclose(base_to_normalized(cam, T, pt), xy, atol=1e-9)


def test_undistortion_inverts_the_distortion_and_keeps_inputs_untouched():
    cam = CameraModel.from_camera_info([400, 0, 320, 0, 410, 240, 0, 0, 1], [-0.2, 0.05, 0.001, -0.002, 0.01], 640, 480)
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-0.5, 0.5, 50), rng.uniform(-0.4, 0.4, 50), np.ones(50)]
    seen = cam.project(pts)
    ideal = cam.undistort_pixels(seen)
    expect = pts[:, :2] / pts[:, 2:] * [400, 410] + [320, 240]
    assert np.allclose(ideal, expect, atol=1e-6)
    assert np.allclose(cam.pixel_to_ray(seen), pts / np.linalg.norm(pts, axis=1, keepdims=True), atol=1e-8)
    single = cam.undistort_pixels(seen[0])
    assert single.shape == (2,) and np.allclose(single, expect[0], atol=1e-6)
    plain = CameraModel.from_fovy(50.0, 100, 80)
    uv = np.array([[3.0, 4.0]])
    out = plain.undistort_pixels(uv)
    assert np.array_equal(out, uv) and out is not uv  # a copy: the caller's array is never aliased
    fields = CameraModel.from_camera_info(cam.K.ravel(), cam.D, 640, 480, "plumb_bob", np.eye(3).ravel(),
                                          [390, 0, 321, 0, 0, 392, 241, 0, 0, 0, 1, 0], True).camera_info_fields()  # fmt: skip
    assert fields["p"][:3] == [390, 0, 321] and fields["r"] == np.eye(3).ravel().tolist()
    assert fields["distortion_model"] == "plumb_bob" and fields["d"] == cam.D.tolist()
    assert (fields["width"], fields["height"]) == (640, 480) and fields["k"] == cam.K.ravel().tolist()
