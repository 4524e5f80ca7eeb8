"""Camera geometry: exact round trips without distortion, sub-pixel with realistic distortion, clear errors."""

import numpy as np
import pytest

from llara_core.geometry import (
    BehindCameraError,
    CameraModel,
    DegenerateCameraError,
    GeometryError,
    ParallelRayError,
    base_to_normalized,
    invert_transform,
    look_at,
    matrix_to_quaternion,
    normalized_to_table,
    pose_to_matrix,
    quaternion_to_matrix,
)

# A RealSense-D435-like colour camera at 640x480 with measured-looking plumb_bob coefficients.
K = [615.3, 0.0, 322.1, 0.0, 615.9, 241.7, 0.0, 0.0, 1.0]
D_REAL = [0.112, -0.231, 0.0011, -0.0007, 0.094]


@pytest.fixture
def ideal():
    return CameraModel.from_camera_info(K, [0.0] * 5, 640, 480)


@pytest.fixture
def distorted():
    return CameraModel.from_camera_info(K, D_REAL, 640, 480)


@pytest.fixture
def pose():
    return look_at([1.0, 0.2, 0.8], [0.5, 0.0, 0.0])


def test_normalized_pixel_round_trip_is_exact(ideal):
    xy = np.random.default_rng(0).uniform(0, 1, (500, 2))
    assert np.abs(ideal.pixel_to_normalized(ideal.normalized_to_pixel(xy)) - xy).max() < 1e-12
    # pixel centers at integers: the top-left corner of the image is pixel (-0.5, -0.5)
    assert ideal.normalized_to_pixel([0.0, 0.0]).tolist() == [-0.5, -0.5]


def test_ray_project_and_depth_round_trip_without_distortion(ideal):
    rng = np.random.default_rng(1)
    px = rng.uniform([0, 0], [639, 479], (500, 2))
    rays = ideal.pixel_to_ray(px)
    assert np.allclose(np.linalg.norm(rays, axis=1), 1.0)
    assert np.abs(ideal.project(rays * 2.5) - px).max() < 1e-9
    depth = rng.uniform(0.2, 3.0, 500)
    pts = ideal.lift_depth(px, depth)
    assert np.abs(pts[:, 2] - depth).max() < 1e-12
    assert np.abs(ideal.project(pts) - px).max() < 1e-9


def test_table_plane_round_trip_without_distortion(ideal, pose):
    rng = np.random.default_rng(2)
    for _ in range(200):
        p = np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.3, 0.3), 0.02])
        xy = base_to_normalized(ideal, pose, p)
        assert np.abs(normalized_to_table(ideal, pose, xy, table_height=0.02) - p).max() < 1e-9


def test_reprojection_with_realistic_distortion_is_sub_half_pixel(distorted):
    rng = np.random.default_rng(3)
    px = rng.uniform([5, 5], [634, 474], (1000, 2))
    back = distorted.project(distorted.pixel_to_ray(px))
    assert np.abs(back - px).max() < 0.5
    # and distortion really changes the answer, so the test exercises the OpenCV path
    ideal = CameraModel.from_camera_info(K, [0.0] * 5, 640, 480)
    assert np.abs(ideal.project(distorted.pixel_to_ray(px)) - px).max() > 1.0


def test_camera_info_fields_round_trip(distorted):
    f = distorted.camera_info_fields()
    again = CameraModel.from_camera_info(f["k"], f["d"], f["width"], f["height"], f["distortion_model"])
    assert np.array_equal(again.K, distorted.K) and np.array_equal(again.D, distorted.D)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": [0, 0, 320, 0, 615, 240, 0, 0, 1]},
        {"k": [615, 0, 320, 0, -615, 240, 0, 0, 1]},
        {"k": [615, 0, 320, 0, 615, 240, 0, 0, 0]},
        {"k": [615, 0, float("nan"), 0, 615, 240, 0, 0, 1]},
        {"k": [615, 0, 320, 0, 615, 240]},
        {"width": 0},
        {"distortion_model": "fisheye_unknown"},
    ],
)
def test_degenerate_camera_is_rejected(kwargs):
    args = {"k": K, "d": [0.0] * 5, "width": 640, "height": 480, "distortion_model": "plumb_bob"} | kwargs
    with pytest.raises(DegenerateCameraError):
        CameraModel.from_camera_info(**args)


def test_ray_parallel_to_table_and_point_behind_camera(ideal):
    level = look_at([0.0, 0.0, 0.5], [1.0, 0.0, 0.5])  # horizontal camera: image-center ray never hits z=0
    with pytest.raises(ParallelRayError):
        normalized_to_table(ideal, level, ideal.pixel_to_normalized([322.1, 241.7]))
    up = look_at([0.0, 0.0, 0.5], [1.0, 0.0, 1.0])  # looking upwards: the table is behind every central ray
    with pytest.raises(BehindCameraError):
        normalized_to_table(ideal, up, [0.5, 0.5])
    with pytest.raises(BehindCameraError):
        ideal.project([0.1, 0.1, -1.0])
    with pytest.raises(BehindCameraError):
        ideal.lift_depth([10, 10], 0.0)
    with pytest.raises(GeometryError):
        look_at([0, 0, 1], [0, 0, 0])  # view direction parallel to 'up'


def test_quaternion_helpers_round_trip():
    rng = np.random.default_rng(4)
    for _ in range(100):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = -q if q[3] < 0 else q
        assert np.allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-12)
    T = pose_to_matrix([1, 2, 3], [0, 0, np.sin(0.3), np.cos(0.3)])
    assert np.allclose(invert_transform(T) @ T, np.eye(4))
