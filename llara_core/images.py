"""Raw sensor_msgs/Image buffers -> numpy, for the standard encodings; one implementation for all readers.

Both the live path (rclpy messages in ``llara_ros.conversions``) and the bag
path (``rosbags`` messages in ``llara_core.datasets.bags``) hand the Image fields here.
cv_bridge is not used: the ROS 2 one has no PyPI wheel and the PyPI
``cv-bridge`` is the ROS 1 package, broken with OpenCV 5 / numpy 2.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError

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


class ImageEncodingError(LlaraError, ValueError):
    """The buffer cannot be read as an image (unsupported encoding, size mismatch, …)."""


def decode(
    data: bytes | npt.NDArray[np.uint8], height: int, width: int, step: int, encoding: str, is_bigendian: bool = False
) -> npt.NDArray[np.generic]:
    """Image fields -> H×W×C array (H×W for one channel) in the buffer's own encoding; row padding dropped."""
    if encoding not in ENCODINGS:
        raise ImageEncodingError(f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    dtype_name, ch = ENCODINGS[encoding]
    dtype = np.dtype(dtype_name).newbyteorder(">" if is_bigendian else "<")
    row = width * ch * dtype.itemsize
    buf = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if step < row or buf.size < step * height:
        raise ImageEncodingError(f"image {width}x{height} {encoding}: step {step} / {buf.size} bytes too small")
    arr = buf[: step * height].reshape(height, step)[:, :row].copy().view(dtype).reshape(height, width, ch)
    return arr[..., 0] if ch == 1 else arr


def to_rgb(arr: npt.NDArray[np.generic], encoding: str) -> npt.NDArray[np.uint8]:
    """A decoded colour or mono8 image -> H×W×3 RGB uint8 (what the policy and the dataset writer use)."""
    if encoding in ("rgb8", "8UC3"):
        return np.ascontiguousarray(arr)
    if encoding == "bgr8":
        return np.ascontiguousarray(arr[..., ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(arr[..., :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(arr[..., 2::-1])
    if encoding in ("mono8", "8UC1"):
        return np.repeat(np.asarray(arr)[..., None], 3, axis=2)
    raise ImageEncodingError(f"encoding {encoding!r} is not a colour image")


def decode_compressed(data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """sensor_msgs/CompressedImage data (JPEG, PNG, … — whatever OpenCV reads) -> H×W×3 RGB uint8."""
    import cv2

    buf = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageEncodingError(f"compressed image of {buf.size} bytes cannot be decoded")
    return np.ascontiguousarray(img[..., ::-1])


def encode_compressed(rgb: npt.NDArray[np.uint8], fmt: str = "png") -> bytes:
    """H×W×3 RGB uint8 -> the bytes of a CompressedImage in ``fmt`` ("png" is lossless, "jpeg" is not)."""
    import cv2

    ok, buf = cv2.imencode(f".{fmt}", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ImageEncodingError(f"cannot encode an image of shape {rgb.shape} as {fmt}")
    return buf.tobytes()


def encode_png(image: npt.NDArray[np.uint8]) -> bytes:
    """RGB uint8 image -> PNG bytes (lossless; ImageEncodingError if OpenCV cannot encode it)."""
    return encode_compressed(image, "png")
