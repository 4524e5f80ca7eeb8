"""Message conversion over real DDS: a synthetic frame published by one rclpy node arrives intact at another."""

import threading
import time

import numpy as np
import pytest
import rclpy  # a hard import: missing rclpy means the setup is broken, not a reason to skip
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from llara_core.geometry import DegenerateCameraError, look_at
from llara_core.sim.synthetic import make_episode
from llara_ros.conversions import (
    ConversionError,
    camera_info_to_model,
    image_to_numpy,
    image_to_rgb,
    matrix_to_pose_msg,
    model_to_camera_info,
    numpy_to_image,
    pose_to_matrix_msg,
)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


def test_image_and_camera_info_round_trip_over_dds(ros):
    ep = make_episode(4)
    rgb = ep.frames[0].image
    pub_node, sub_node = rclpy.create_node("llara_test_pub"), rclpy.create_node("llara_test_sub")
    got: dict[str, object] = {}
    sub_node.create_subscription(Image, "image", lambda m: got.setdefault("image", m), qos_profile_sensor_data)
    sub_node.create_subscription(CameraInfo, "camera_info", lambda m: got.setdefault("info", m), 10)
    img_pub = pub_node.create_publisher(Image, "image", qos_profile_sensor_data)
    info_pub = pub_node.create_publisher(CameraInfo, "camera_info", 10)
    ex = SingleThreadedExecutor()
    ex.add_node(sub_node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            # bgr8 on the wire, as many drivers send it: the receiver must still get RGB back
            img_pub.publish(numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), "bgr8"))
            info_pub.publish(model_to_camera_info(ep.camera))
            time.sleep(0.1)
    finally:
        ex.shutdown()
        spin.join(timeout=5)
        pub_node.destroy_node()
        sub_node.destroy_node()
    assert len(got) == 2, f"nothing received over DDS: {sorted(got)}"
    assert np.array_equal(image_to_rgb(got["image"]), rgb)
    cam = camera_info_to_model(got["info"])
    assert np.array_equal(cam.K, ep.camera.K) and (cam.width, cam.height) == (ep.camera.width, ep.camera.height)


def test_encodings_and_padding():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(image_to_numpy(numpy_to_image(depth, "32FC1")), depth)
    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert image_to_rgb(numpy_to_image(mono, "mono8")).shape == (3, 4, 3)
    msg = numpy_to_image(np.zeros((2, 3, 3), np.uint8), "rgb8")
    msg.step, msg.data = 12, bytes(range(24))  # rows padded to 12 bytes
    assert image_to_numpy(msg)[1, 0].tolist() == [12, 13, 14]
    with pytest.raises(ConversionError):
        numpy_to_image(mono, "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(ConversionError, match="unsupported"):
        image_to_numpy(msg)
    with pytest.raises(DegenerateCameraError):
        camera_info_to_model(CameraInfo())  # an uncalibrated camera publishes K = 0


def test_pose_round_trip():
    T = look_at([1.0, 0.2, 0.8], [0.5, 0.0, 0.0])
    assert np.allclose(pose_to_matrix_msg(matrix_to_pose_msg(T)), T)


def test_cv_bridge_and_the_numpy_converter_agree_where_both_exist():
    """Runs in a ROS 2 workspace (cv_bridge installed); a plain venv has no ROS 2 cv_bridge, so it skips there."""
    pytest.importorskip("cv_bridge", reason="ROS 2 cv_bridge is not installed (plain venv)")
    from llara_ros.conversions import image_to_rgb, numpy_to_image

    rng = np.random.default_rng(0)
    for enc, ch in (("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("mono8", 1)):
        arr = rng.integers(0, 255, (5, 7, ch) if ch > 1 else (5, 7), dtype=np.uint8)
        msg = numpy_to_image(arr, enc)
        assert np.array_equal(image_to_rgb(msg), image_to_rgb(msg, use_cv_bridge=False)), enc
