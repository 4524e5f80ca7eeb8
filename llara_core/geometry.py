"""Camera geometry: normalized image coordinates <-> pixels <-> rays <-> table plane <-> robot base.

Conventions (DESIGN §3, REP 103):
- Normalized coordinates: origin at the top-left *corner* of the image, x right,
  y down, (1, 1) at the bottom-right corner. Pixel coordinates follow ROS/OpenCV:
  pixel (0, 0) is the *center* of the top-left pixel, so ``u = x * width - 0.5``.
- The optical frame has z forward, x right, y down. ``base_T_cam`` is the 4×4
  pose of the optical frame in the robot base frame (maps camera points to base).

Distortion uses OpenCV (``projectPoints`` / ``undistortPoints``) — the same
models and coefficient order as sensor_msgs/CameraInfo (plumb_bob,
rational_polynomial); an all-zero D takes an exact numpy path so that round
trips are exact to floating point.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

#: REP 105 robot base frame and the camera's optical frame (REP 103: z forward, x right, y down): the
#: defaults of every configuration that names a frame (bags, action node, simulator).
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_color_optical_frame"

SUPPORTED_DISTORTION = frozenset({"plumb_bob", "rational_polynomial", "", "none"})  # OpenCV coefficient order


class GeometryError(LlaraError, ValueError):
    """Base class: a geometric question that has no valid answer for these inputs."""


class DegenerateCameraError(GeometryError):
    """The intrinsics cannot describe a real pinhole camera (zero focal length, NaN, bad size…)."""


class ParallelRayError(GeometryError):
    """The viewing ray never meets the plane (it runs parallel to it)."""


class BehindCameraError(GeometryError):
    """The point (or the ray/plane intersection) lies behind the camera."""


class UndistortionError(GeometryError):
    """A pixel whose undistortion does not converge (strong distortion near the image corners): no ray for it."""


def _points(a: ArrayLike, dim: int) -> tuple[FloatArray, bool]:
    """Return an (N, dim) float array and whether the input was a single point."""
    arr = np.asarray(a, dtype=np.float64)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"expected shape ({dim},) or (N, {dim}), got {np.shape(a)}")
    return arr, single


def _out(arr: FloatArray, single: bool) -> FloatArray:
    return arr[0] if single else arr


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A calibrated pinhole camera, built from the fields of sensor_msgs/CameraInfo.

    ``R`` (rectification rotation) and ``P`` (projection of the rectified
    image) are kept as given (default: identity and ``[K | 0]``). With
    ``rectified=True`` the images are already rectified (``image_rect*``
    topics): pixels are projected with ``P`` and ``R`` and no distortion, as
    ROS's image_geometry does; otherwise with ``K`` and ``D``.
    """

    K: FloatArray
    D: FloatArray
    width: int
    height: int
    distortion_model: str = "plumb_bob"
    R: FloatArray | None = None
    P: FloatArray | None = None
    rectified: bool = False
    #: Largest re-projection error (px) of an undistorted pixel; beyond it the pixel is refused.
    undistort_tol_px: float = 0.25

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64).reshape(3, 3) if np.size(self.K) == 9 else None
        if K is None:
            raise DegenerateCameraError(f"K must have 9 entries, got {np.size(self.K)}")
        D = np.asarray(self.D, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        if not np.all(np.isfinite(K)) or not np.all(np.isfinite(D)):
            raise DegenerateCameraError("K and D must be finite")
        fx, fy = K[0, 0], K[1, 1]
        if fx <= 0 or fy <= 0:
            raise DegenerateCameraError(f"focal lengths must be positive, got fx={fx}, fy={fy}")
        if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
            raise DegenerateCameraError(f"K is not an upper-triangular pinhole matrix with K[2,2]=1: {K.tolist()}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise DegenerateCameraError(f"image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        model = self.distortion_model
        if model not in SUPPORTED_DISTORTION:
            raise DegenerateCameraError(
                f"distortion model {model!r} not supported; use one of {sorted(k for k in SUPPORTED_DISTORTION if k)}"
            )
        if D.size and D.size not in (4, 5, 8, 12, 14):
            raise DegenerateCameraError(f"{D.size} distortion coefficients is not an OpenCV layout")
        R = np.eye(3) if self.R is None or not np.any(self.R) else np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6):
            raise DegenerateCameraError(f"R is not a rotation matrix: {R.tolist()}")
        P = np.c_[K, np.zeros(3)] if self.P is None or not np.any(self.P) else np.asarray(self.P, dtype=np.float64)
        P = P.reshape(3, 4)
        if not np.all(np.isfinite(P)) or P[0, 0] <= 0 or P[1, 1] <= 0:
            raise DegenerateCameraError(f"P must be finite with positive focal lengths, got {P.tolist()}")
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "P", P)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_camera_info(
        cls,
        k: Sequence[float],
        d: Sequence[float],
        width: int,
        height: int,
        distortion_model: str = "plumb_bob",
        r: Sequence[float] | None = None,
        p: Sequence[float] | None = None,
        rectified: bool = False,
    ) -> CameraModel:
        """Build from CameraInfo's ``k`` (row-major 9), ``d``, size, ``distortion_model``, ``r`` (9), ``p`` (12)."""
        return cls(
            np.asarray(k, dtype=np.float64),
            np.asarray(d, dtype=np.float64),
            width,
            height,
            distortion_model,
            None if r is None else np.asarray(r, dtype=np.float64),
            None if p is None else np.asarray(p, dtype=np.float64),
            rectified,
        )

    @classmethod
    def from_calibration_file(cls, path: str, rectified: bool = False) -> CameraModel:
        """The YAML that ROS's ``camera_calibration`` / ``camera_calibration_parsers`` write.

        Keys: image_width, image_height, camera_name, camera_matrix, distortion_model,
        distortion_coefficients, rectification_matrix, projection_matrix (each matrix
        as ``{rows, cols, data}``). A file it cannot use is a DegenerateCameraError
        naming the field.
        """
        import yaml

        try:
            with open(path) as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as exc:
            raise DegenerateCameraError(f"calibration file {path}: cannot read it ({exc})") from exc
        if not isinstance(data, dict):
            raise DegenerateCameraError(f"calibration file {path}: expected a mapping")

        def matrix(key: str, rows: int, cols: int | None, required: bool = True) -> list[float] | None:
            m = data.get(key)
            if m is None:
                if required:
                    raise DegenerateCameraError(f"calibration file {path}: missing field {key!r}")
                return None
            try:
                values = [float(v) for v in m["data"]]
                if int(m["rows"]) * int(m["cols"]) != len(values) or (cols and len(values) != rows * cols):
                    raise ValueError(f"{m['rows']}x{m['cols']} with {len(values)} values")
            except (KeyError, TypeError, ValueError) as exc:
                raise DegenerateCameraError(
                    f"calibration file {path}: field {key!r} must be {{rows, cols, data}} ({exc})"
                ) from exc
            return values

        try:
            width, height = int(data["image_width"]), int(data["image_height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DegenerateCameraError(f"calibration file {path}: image_width and image_height are required") from exc
        k = matrix("camera_matrix", 3, 3)
        d = matrix("distortion_coefficients", 1, None, required=False) or []
        r = matrix("rectification_matrix", 3, 3, required=False)
        p = matrix("projection_matrix", 3, 4, required=False)
        model = str(data.get("distortion_model") or ("plumb_bob" if d else ""))
        assert k is not None
        return cls.from_camera_info(k, d, width, height, model, r, p, rectified)

    @classmethod
    def from_fovy(cls, fovy_deg: float, width: int, height: int) -> CameraModel:
        """An ideal camera with square pixels and the given vertical field of view (MuJoCo's convention)."""
        if not 0 < fovy_deg < 180:
            raise DegenerateCameraError(f"fovy must be in (0, 180) degrees, got {fovy_deg}")
        f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
        K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)
        return cls(K, np.zeros(5), width, height, "plumb_bob")

    def camera_info_fields(self) -> dict[str, object]:
        """The CameraInfo fields (``k``, ``d``, ``p``, ``r``, size, model) as plain lists."""
        assert self.R is not None and self.P is not None
        return {
            "width": self.width,
            "height": self.height,
            "distortion_model": self.distortion_model or "plumb_bob",
            "d": self.D.tolist(),
            "k": self.K.reshape(-1).tolist(),
            "r": self.R.reshape(-1).tolist(),
            "p": self.P.reshape(-1).tolist(),
        }

    @property
    def has_distortion(self) -> bool:
        return not self.rectified and bool(np.any(self.D != 0))

    # -- normalized <-> pixel ----------------------------------------------------------------
    def normalized_to_pixel(self, xy: ArrayLike) -> FloatArray:
        """Normalized [0, 1] image coordinates -> pixel coordinates (pixel centers at integers)."""
        p, single = _points(xy, 2)
        return _out(p * [self.width, self.height] - 0.5, single)

    def pixel_to_normalized(self, uv: ArrayLike) -> FloatArray:
        """Pixel coordinates -> normalized image coordinates (inverse of :meth:`normalized_to_pixel`)."""
        p, single = _points(uv, 2)
        return _out((p + 0.5) / [self.width, self.height], single)

    # -- distortion ----------------------------------------------------------------------------
    def undistort_pixels(self, uv: ArrayLike) -> FloatArray:
        """Observed (distorted) pixels -> ideal pinhole pixels of the same K.

        OpenCV's iterative undistortion does not converge where strong
        distortion (fisheye-like plumb_bob, 8-coefficient rational) folds back
        near the image corners; it then returns a wrong point silently. Each
        result is therefore projected again, and a pixel whose re-projection
        misses it by more than ``undistort_tol_px`` raises UndistortionError.
        """
        p, single = _points(uv, 2)
        if not self.has_distortion:
            return _out(p.copy(), single)
        import cv2

        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        out = cv2.undistortPoints(p.reshape(-1, 1, 2), self.K, self.D, R=np.eye(3), P=self.K, criteria=criteria)
        ideal = out.reshape(-1, 2).astype(np.float64)
        rays = np.c_[(ideal - self.K[:2, 2]) / np.diag(self.K)[:2], np.ones(len(ideal))]
        back, _ = cv2.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.K, self.D)
        err = np.linalg.norm(back.reshape(-1, 2) - p, axis=1)
        if not np.all(err <= self.undistort_tol_px):
            i = int(np.argmax(err))
            raise UndistortionError(
                f"pixel {p[i].round(1).tolist()} cannot be undistorted reliably (re-projection error "
                f"{err[i]:.1f} px > {self.undistort_tol_px} px): strong distortion near the image border"
            )
        return _out(ideal, single)

    # -- rays and projection -------------------------------------------------------------------
    def pixel_to_ray(self, uv: ArrayLike, undistort: bool = True) -> FloatArray:
        """Pixel(s) -> unit direction(s) in the optical frame (z forward)."""
        p, single = _points(uv, 2)
        if self.rectified:  # image_geometry's projectPixelTo3dRay: P, then back from the rectified frame by R
            assert self.P is not None and self.R is not None
            fx, fy, cx, cy, skew = self.P[0, 0], self.P[1, 1], self.P[0, 2], self.P[1, 2], self.P[0, 1]
        else:
            if undistort:
                p = np.atleast_2d(self.undistort_pixels(p))
            fx, fy, cx, cy, skew = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2], self.K[0, 1]
        y = (p[:, 1] - cy) / fy
        x = (p[:, 0] - cx - skew * y) / fx
        rays = np.stack([x, y, np.ones_like(x)], axis=1)
        if self.rectified:
            assert self.R is not None
            rays = rays @ self.R  # R maps the camera frame to the rectified one: R^T applied row-wise
        return _out(rays / np.linalg.norm(rays, axis=1, keepdims=True), single)

    def normalized_to_ray(self, xy: ArrayLike) -> FloatArray:
        """Normalized image coordinates -> unit ray(s) in the optical frame."""
        return self.pixel_to_ray(self.normalized_to_pixel(xy))

    def project(self, points_cam: ArrayLike) -> FloatArray:
        """3-D point(s) in the optical frame -> observed pixel(s), distortion applied.

        Raises :class:`BehindCameraError` for a point with z <= 0: projecting it
        would produce a mirrored pixel that looks valid but is not.
        """
        P, single = _points(points_cam, 3)
        if not np.all(np.isfinite(P)):
            raise GeometryError("points must be finite")
        if np.any(P[:, 2] <= 0):
            bad = P[P[:, 2] <= 0][0]
            raise BehindCameraError(f"point {bad.tolist()} is behind the camera (z <= 0 in the optical frame)")
        if self.rectified:
            assert self.R is not None and self.P is not None
            h = (self.P[:, :3] @ (self.R @ P.T)).T
            return _out(h[:, :2] / h[:, 2:3], single)
        if self.has_distortion:
            import cv2

            px, _ = cv2.projectPoints(P.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.K, self.D)
            return _out(px.reshape(-1, 2).astype(np.float64), single)
        h = (self.K @ P.T).T
        return _out(h[:, :2] / h[:, 2:3], single)

    def project_normalized(self, points_cam: ArrayLike) -> FloatArray:
        """3-D point(s) in the optical frame -> normalized image coordinates (may fall outside [0, 1])."""
        return self.pixel_to_normalized(self.project(points_cam))

    def lift_depth(self, uv: ArrayLike, depth: ArrayLike) -> FloatArray:
        """Pixel(s) plus metric depth (distance along the optical z axis) -> 3-D point(s), optical frame."""
        p, single = _points(uv, 2)
        d = np.atleast_1d(np.asarray(depth, dtype=np.float64))
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise BehindCameraError(f"depth must be finite and positive, got {d.tolist()}")
        rays = np.atleast_2d(self.pixel_to_ray(p))
        pts = rays / rays[:, 2:3] * d.reshape(-1, 1)
        return _out(pts, single)


# -- rigid transforms ------------------------------------------------------------------------
def transform_points(T: ArrayLike, points: ArrayLike) -> FloatArray:
    """Apply a 4×4 homogeneous transform to point(s) of shape (3,) or (N, 3)."""
    M = np.asarray(T, dtype=np.float64)
    P, single = _points(points, 3)
    return _out(P @ M[:3, :3].T + M[:3, 3], single)


def invert_transform(T: ArrayLike) -> FloatArray:
    """Inverse of a rigid 4×4 transform (uses Rᵀ, not a general matrix inverse)."""
    M = np.asarray(T, dtype=np.float64)
    R, t = M[:3, :3], M[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


def quaternion_to_matrix(q_xyzw: ArrayLike) -> FloatArray:
    """Unit quaternion (x, y, z, w) — ROS order — to a 3×3 rotation matrix."""
    x, y, z, w = np.asarray(q_xyzw, dtype=np.float64) / np.linalg.norm(q_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R: ArrayLike) -> FloatArray:
    """3×3 rotation matrix to a unit quaternion (x, y, z, w) with w >= 0."""
    m = np.asarray(R, dtype=np.float64)[:3, :3]
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    qa = np.asarray(q)
    qa /= np.linalg.norm(qa)
    return -qa if qa[3] < 0 else qa


def pose_to_matrix(position: ArrayLike, q_xyzw: ArrayLike) -> FloatArray:
    """geometry_msgs/Pose fields (position, orientation x y z w) -> 4×4 transform."""
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(q_xyzw)
    T[:3, 3] = np.asarray(position, dtype=np.float64)
    return T


def pose_msg_to_matrix(pose: object) -> FloatArray:
    """Any object shaped like geometry_msgs/Pose (rclpy or rosbags message) -> 4×4 transform."""
    p, q = pose.position, pose.orientation  # type: ignore[attr-defined]
    return pose_to_matrix([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])


def quaternion_pose(T: ArrayLike) -> tuple[float, ...]:
    """4×4 -> (x, y, z, qx, qy, qz, qw): the form of ``camera_pose`` settings and of ``llara plan`` waypoints."""
    M = np.asarray(T, dtype=np.float64)
    q = matrix_to_quaternion(M[:3, :3])
    return (*(float(v) for v in M[:3, 3]), *(float(v) for v in q))


def chain_transform(edges: Sequence[tuple[str, str, FloatArray]], parent: str, child: str) -> FloatArray | None:
    """parent_T_child through a tree of (parent, child, parent_T_child) transforms (tf), walked in either direction.

    Leading slashes of frame names are ignored (tf2 does the same). None when
    the two frames are not connected.
    """
    graph: dict[str, list[tuple[str, FloatArray]]] = {}
    for p, c, T in edges:
        graph.setdefault(p.lstrip("/"), []).append((c.lstrip("/"), T))
        graph.setdefault(c.lstrip("/"), []).append((p.lstrip("/"), invert_transform(T)))
    parent, child = parent.lstrip("/"), child.lstrip("/")
    todo: deque[tuple[str, FloatArray]] = deque([(parent, np.eye(4))])
    seen = {parent}
    while todo:
        frame, T = todo.popleft()
        if frame == child:
            return T
        for nxt, E in graph.get(frame, []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append((nxt, T @ E))
    return None


def yaw_of(T: ArrayLike) -> float:
    """Rotation about the base z axis (radians) of a 4×4 pose or 3×3 rotation."""
    m = np.asarray(T, dtype=np.float64)
    return math.atan2(m[1, 0], m[0, 0])


def wrap_degrees(angle: float) -> float:
    """Wrap an angle in degrees to [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


# -- camera <-> base frame ---------------------------------------------------------------------
def intersect_plane(
    origin: ArrayLike, direction: ArrayLike, plane_point: ArrayLike, plane_normal: ArrayLike, eps: float = 1e-9
) -> FloatArray:
    """Point where the ray ``origin + t·direction`` (t > 0) meets a plane.

    Raises :class:`ParallelRayError` when the ray runs parallel to the plane and
    :class:`BehindCameraError` when the plane lies behind the ray origin.
    """
    o = np.asarray(origin, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    n = np.asarray(plane_normal, dtype=np.float64)
    denom = float(n @ d)
    if abs(denom) < eps * np.linalg.norm(n) * np.linalg.norm(d):
        raise ParallelRayError(f"ray direction {d.tolist()} is parallel to the plane with normal {n.tolist()}")
    t = float(n @ (np.asarray(plane_point, dtype=np.float64) - o)) / denom
    if t <= 0:
        raise BehindCameraError(f"the plane is behind the ray origin (t = {t:.4g})")
    return o + t * d


def normalized_to_table(
    camera: CameraModel, base_T_cam: ArrayLike, xy: ArrayLike, table_height: float = 0.0
) -> FloatArray:
    """Normalized image point -> base-frame 3-D point on the horizontal plane z = ``table_height``."""
    T = np.asarray(base_T_cam, dtype=np.float64)
    ray_cam = camera.normalized_to_ray(xy)
    ray_base = T[:3, :3] @ ray_cam
    return intersect_plane(T[:3, 3], ray_base, [0.0, 0.0, table_height], [0.0, 0.0, 1.0])


def base_to_normalized(camera: CameraModel, base_T_cam: ArrayLike, points_base: ArrayLike) -> FloatArray:
    """Base-frame 3-D point(s) -> normalized image coordinates through the camera at ``base_T_cam``."""
    cam_T_base = invert_transform(base_T_cam)
    return camera.project_normalized(transform_points(cam_T_base, points_base))


def look_at(eye: ArrayLike, target: ArrayLike, up: ArrayLike = (0.0, 0.0, 1.0)) -> FloatArray:
    """Pose (base_T_optical) of a camera at ``eye`` looking at ``target``, image 'up' towards ``up``."""
    e = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - e
    if np.linalg.norm(z) == 0:
        raise GeometryError("eye and target coincide")
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-9:
        raise GeometryError("viewing direction is parallel to 'up'")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, e
    return T
