"""sensor_msgs/geometry_msgs (rclpy) <-> numpy and llara_core types.

Decoding lives in :mod:`llara_core.images` (shared with the bag reader); this
module only unpacks and packs the rclpy message fields.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt
from geometry_msgs.msg import Pose, PoseStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from llara_core.geometry import CameraModel, matrix_to_quaternion, pose_msg_to_matrix
from llara_core.images import ENCODINGS, ImageEncodingError, decode, decode_compressed, to_rgb

ConversionError = ImageEncodingError  # one error type for every image conversion


def image_to_numpy(msg: Image) -> npt.NDArray[np.generic]:
    """Image message -> H×W×C (or H×W for one channel) array in the message's own encoding."""
    return decode(msg.data, msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian))


@functools.cache
def _cv_bridge() -> Any:
    """ROS 2's cv_bridge where a workspace provides it (None in a plain venv: the PyPI cv-bridge is ROS 1's)."""
    try:
        from cv_bridge import CvBridge  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return CvBridge()


def image_to_rgb(msg: Image, use_cv_bridge: bool = True) -> npt.NDArray[np.uint8]:
    """Image message -> H×W×3 RGB uint8 (what the policy and the dataset writer consume).

    cv_bridge when it is importable and knows the encoding, else the numpy
    converter of :mod:`llara_core.images` (the same result; a test compares them
    where both exist).
    """
    bridge = _cv_bridge() if use_cv_bridge else None
    if bridge is not None and msg.encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8"):
        try:
            return np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception:  # cv_bridge's own error types: fall back to the numpy converter below
            pass
    return to_rgb(image_to_numpy(msg), msg.encoding)


def image_msg_to_rgb(msg: Image | CompressedImage) -> npt.NDArray[np.uint8]:
    """Image or CompressedImage (JPEG, PNG) -> H×W×3 RGB uint8; ImageEncodingError when it cannot be read."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(bytes(msg.data))
    return image_to_rgb(msg)


def image_msg_to_array(msg: Image) -> npt.NDArray[np.generic]:
    """A depth (16UC1, 32FC1) or mono image in its own encoding."""
    return image_to_numpy(msg)


def numpy_to_image(arr: npt.NDArray[np.generic], encoding: str = "rgb8", header: Header | None = None) -> Image:
    """Array -> Image message (row-major, little endian, no padding)."""
    if encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    dtype_name, ch = ENCODINGS[encoding]
    a = np.ascontiguousarray(arr, dtype=np.dtype(dtype_name).newbyteorder("<"))
    if (a.ndim == 2 and ch != 1) or (a.ndim == 3 and a.shape[2] != ch) or a.ndim not in (2, 3):
        raise ConversionError(f"array of shape {arr.shape} does not match encoding {encoding!r} ({ch} channels)")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * ch * a.dtype.itemsize
    msg.data = a.tobytes()
    return msg


def camera_info_to_model(msg: CameraInfo, rectified: bool = False) -> CameraModel:
    """CameraInfo -> CameraModel with its R and P (DegenerateCameraError for an uncalibrated, all-zero K)."""
    return CameraModel.from_camera_info(
        list(msg.k), list(msg.d), msg.width, msg.height, msg.distortion_model, list(msg.r), list(msg.p), rectified
    )


def model_to_camera_info(model: CameraModel, header: Header | None = None) -> CameraInfo:
    """CameraModel -> CameraInfo with P = [K | 0] and R = I (a monocular, unrectified camera)."""
    f = model.camera_info_fields()
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = f["width"], f["height"]
    msg.distortion_model = f["distortion_model"]
    msg.d, msg.k, msg.r, msg.p = f["d"], f["k"], f["r"], f["p"]
    return msg


def pose_to_matrix_msg(pose: Pose | PoseStamped) -> npt.NDArray[np.float64]:
    """Pose or PoseStamped -> 4×4 transform."""
    return pose_msg_to_matrix(pose.pose if isinstance(pose, PoseStamped) else pose)


def matrix_to_pose_msg(T: npt.ArrayLike) -> Pose:
    """4×4 transform -> Pose."""
    M = np.asarray(T, dtype=np.float64)
    q = matrix_to_quaternion(M[:3, :3])
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in M[:3, 3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
    return pose
