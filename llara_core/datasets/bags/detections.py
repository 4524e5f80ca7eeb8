"""Object boxes: vision_msgs/Detection2DArray <-> ObjectBox, and the ``boxes.json`` sidecar of a bag folder.

:func:`boxes_from_detections` reads any message shaped like Detection2DArray
(rosbags or rclpy, vision_msgs 3.x or 4.x): the bag reader and the policy
node (D-inBC) share it. Pixel centres sit at integers (ROS/OpenCV), so a box
centre at pixel ``u`` is at normalized ``(u + 0.5) / width``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llara_core.datasets.bags.options import BOXES_SIDECAR, BagError
from llara_core.datasets.episodes import CameraFrame
from llara_core.language.objects import ObjectBox


def boxes_from_detections(msg: Any, width: int, height: int) -> list[ObjectBox]:
    """Detection2DArray-like message (boxes in pixels) -> normalized boxes sorted by name.

    The name is the first hypothesis' ``class_id`` (else the detection's ``id``).
    """
    out = []
    for d in msg.detections:
        name = d.results[0].hypothesis.class_id if d.results else d.id
        c = d.bbox.center
        pos = getattr(c, "position", c)  # vision_msgs 4.x has center.position, 3.x center.x/y
        x0, x1 = (pos.x + 0.5 - d.bbox.size_x / 2) / width, (pos.x + 0.5 + d.bbox.size_x / 2) / width
        y0, y1 = (pos.y + 0.5 - d.bbox.size_y / 2) / height, (pos.y + 0.5 + d.bbox.size_y / 2) / height
        out.append(ObjectBox.from_corners(str(name), x0, y0, x1, y1))
    return sorted(out, key=lambda b: b.name)


def detections_msg(T: Any, header: Any, boxes: list[ObjectBox], width: int, height: int) -> Any:
    """Normalized boxes -> a vision_msgs/Detection2DArray of the typestore ``T`` (boxes in pixels)."""
    dets = []
    for b in boxes:
        hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=b.name, score=1.0),
            pose=T["geometry_msgs/msg/PoseWithCovariance"](
                pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                    orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                ),
                covariance=np.zeros(36),
            ),
        )
        bbox = T["vision_msgs/msg/BoundingBox2D"](
            center=T["vision_msgs/msg/Pose2D"](
                position=T["vision_msgs/msg/Point2D"](x=b.cx * width - 0.5, y=b.cy * height - 0.5), theta=0.0
            ),
            size_x=b.w * width,
            size_y=b.h * height,
        )
        dets.append(T["vision_msgs/msg/Detection2D"](header=header, results=[hyp], bbox=bbox, id=b.name))
    return T["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)


def objects_json(boxes: list[ObjectBox], stamp: float, frame_id: str, width: int, height: int) -> str:
    """Object boxes of one camera frame as the JSON of the ``/llara/objects`` stream (normalized boxes)."""
    return json.dumps({"stamp": stamp, "frame_id": frame_id, "width": width, "height": height,
                       "objects": [{"name": b.name, "cx": b.cx, "cy": b.cy, "w": b.w, "h": b.h} for b in boxes]})  # fmt: skip


def detections_cdr(ts: Any, text: str) -> bytes:
    """``/llara/objects`` JSON -> a serialized vision_msgs/msg/Detection2DArray (rosbags' typestore ``ts``).

    Why not rclpy: vision_msgs has no wheel, so a plain venv cannot make the
    message; rosbags carries its definition and serializes it as a workspace's
    recorder would, so the bag holds the same type either way.
    """
    try:
        d = json.loads(text)
        boxes = [ObjectBox(str(o["name"]), float(o["cx"]), float(o["cy"]), float(o["w"]), float(o["h"]))
                 for o in d["objects"]]  # fmt: skip
        stamp, width, height = float(d["stamp"]), int(d["width"]), int(d["height"])
        frame = str(d.get("frame_id", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise BagError(f"not an objects message ({exc}): {text[:80]!r}") from exc
    T = ts.types
    ns = round(stamp * 1e9)
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                      frame_id=frame)  # fmt: skip
    return bytes(ts.serialize_cdr(detections_msg(T, header, boxes, width, height), "vision_msgs/msg/Detection2DArray"))


def boxes_from_sidecar(bag: Path) -> list[tuple[float, list[ObjectBox]]]:
    """(stamp, boxes) of ``boxes.json`` in a bag folder (normalized boxes per time stamp); [] when absent."""
    path = bag / BOXES_SIDECAR
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        return sorted(
            (float(fr["stamp"]), [ObjectBox(o["name"], o["cx"], o["cy"], o["w"], o["h"]) for o in fr["objects"]])
            for fr in data["frames"]
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise BagError(
            f"{path}: not a boxes file ({exc}); expected {{'frames': [{{'stamp', 'objects': [...]}}]}}"
        ) from exc


def assign_boxes(frames: list[CameraFrame], boxes: list[tuple[float, list[ObjectBox]]], tol: float = 0.5) -> None:
    """Give each frame the boxes stamped nearest to it (within ``tol`` s).

    Nearest, not "at or before": on the receive clock a frame's detections
    arrive just after the frame (a detector's latency, or the simulator's boxes
    published beside its image), so the first frame would otherwise get none.
    """
    if not boxes:
        return
    stamps = np.array([b[0] for b in boxes])
    for fr in frames:
        i = int(np.searchsorted(stamps, fr.stamp))
        near = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamps[j] - fr.stamp))
        if abs(stamps[near] - fr.stamp) <= tol:
            fr.objects = boxes[near][1]
