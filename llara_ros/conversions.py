"""sensor_msgs/geometry_msgs <-> numpy and llara_core types.

Why not cv_bridge: the ROS 2 cv_bridge has no PyPI wheel and the PyPI
``cv-bridge`` is the ROS 1 package (broken with OpenCV 5 / numpy 2), so the
standard encodings are converted here with numpy — one small function each way.
All conversions produce RGB uint8 images for the policy, whatever the camera sends.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from geometry_msgs.msg import Pose, PoseStamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from llara_core.geometry import CameraModel, matrix_to_quaternion, pose_to_matrix

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("uint8", 3),
    "bgr8": ("uint8", 3),
    "rgba8": ("uint8", 4),
    "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1),
    "8UC1": ("uint8", 1),
    "8UC3": ("uint8", 3),
    "mono16": ("uint16", 1),
    "16UC1": ("uint16", 1),
    "32FC1": ("float32", 1),
}


class ConversionError(ValueError):
    """A message cannot be converted (unsupported encoding, size mismatch, …)."""


def image_to_numpy(msg: Image) -> npt.NDArray[np.generic]:
    """Image message -> H×W×C (or H×W for one channel) array in the message's own encoding."""
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}")
    dtype_name, ch = ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype_name).newbyteorder(">" if msg.is_bigendian else "<")
    row = msg.width * ch * dtype.itemsize
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise ConversionError(
            f"image {msg.width}x{msg.height} {msg.encoding}: step {msg.step} / {len(msg.data)} bytes too small"
        )
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, :row]
    arr = buf.copy().view(dtype).reshape(msg.height, msg.width, ch)
    return arr[..., 0] if ch == 1 else arr


def image_to_rgb(msg: Image) -> npt.NDArray[np.uint8]:
    """Image message -> H×W×3 RGB uint8 (what the policy and the dataset writer consume)."""
    arr = image_to_numpy(msg)
    enc = msg.encoding
    if enc in ("rgb8", "8UC3"):
        return arr
    if enc == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    if enc == "bgra8":
        return np.ascontiguousarray(arr[..., 2::-1])
    if enc in ("mono8", "8UC1"):
        return np.repeat(arr[..., None], 3, axis=2)
    raise ConversionError(f"encoding {enc!r} is not a colour image")


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


def camera_info_to_model(msg: CameraInfo) -> CameraModel:
    """CameraInfo -> CameraModel (raises DegenerateCameraError for an uncalibrated, all-zero K)."""
    return CameraModel.from_camera_info(list(msg.k), list(msg.d), msg.width, msg.height, msg.distortion_model)


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
    p = pose.pose if isinstance(pose, PoseStamped) else pose
    return pose_to_matrix(
        [p.position.x, p.position.y, p.position.z],
        [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w],
    )


def matrix_to_pose_msg(T: npt.ArrayLike) -> Pose:
    """4×4 transform -> Pose."""
    M = np.asarray(T, dtype=np.float64)
    q = matrix_to_quaternion(M[:3, :3])
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in M[:3, 3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
    return pose
