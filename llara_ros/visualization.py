"""RViz markers of a planned step: pick and place spheres, an arrow between them, the turn, a label.

Colours say the state: green while executing (or planned in dry run), amber
while waiting for approval. Each new set first deletes the previous one
(DELETEALL), so RViz never shows a superseded plan.
"""

from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseArray
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from llara_core.planning import ActionPlan, Motion
from llara_ros.conversions import matrix_to_pose_msg

COLORS = {
    "active": ColorRGBA(r=0.2, g=0.85, b=0.3, a=0.9),
    "pending": ColorRGBA(r=1.0, g=0.7, b=0.1, a=0.9),
}
NAMESPACE = "llara_plan"


def _point(xyz: object) -> Point:
    x, y, z = (float(v) for v in xyz)  # type: ignore[attr-defined]
    return Point(x=x, y=y, z=z)


def plan_markers(plan: ActionPlan, frame: str, stamp: Time, state: str = "active") -> MarkerArray:
    """Markers of ``plan`` in ``frame`` (``state``: active or pending), preceded by a DELETEALL."""
    color = COLORS[state]
    out = MarkerArray()
    clear = Marker()
    clear.action = Marker.DELETEALL
    clear.ns = NAMESPACE
    out.markers.append(clear)

    def marker(mid: int, kind: int) -> Marker:
        m = Marker()
        m.header.frame_id, m.header.stamp = frame, stamp
        m.ns, m.id, m.type, m.action = NAMESPACE, mid, kind, Marker.ADD
        m.pose.orientation.w = 1.0
        m.color = color
        return m

    pick, place = plan.lifted.pick, [*plan.lifted.place[:2], plan.lifted.place[2]]
    for mid, xyz in ((1, pick), (2, place)):
        s = marker(mid, Marker.SPHERE)
        s.pose.position = _point(xyz)
        s.scale.x = s.scale.y = s.scale.z = 0.03
        out.markers.append(s)
    arrow = marker(3, Marker.ARROW)
    arrow.points = [_point([*pick[:2], pick[2] + 0.02]), _point([*place[:2], place[2] + 0.02])]
    arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.008, 0.016, 0.02
    out.markers.append(arrow)
    turn = marker(4, Marker.LINE_STRIP)  # the step's rotation as an arc around the place point
    turn.scale.x = 0.004
    r, a0 = 0.05, plan.lifted.grasp_yaw
    n = max(2, int(abs(math.degrees(plan.lifted.rotation)) / 10) + 2)
    turn.points = [
        _point([place[0] + r * math.cos(a0 + plan.lifted.rotation * k / (n - 1)),
                place[1] + r * math.sin(a0 + plan.lifted.rotation * k / (n - 1)), place[2] + 0.01])
        for k in range(n)
    ]  # fmt: skip
    out.markers.append(turn)
    label = marker(5, Marker.TEXT_VIEW_FACING)
    label.pose.position = _point([*pick[:2], pick[2] + 0.12])
    label.scale.z = 0.03
    step = plan.step
    label.text = (f"{'PENDING ' if state == 'pending' else ''}step {step.index or 1}: "
                  f"{step.object or 'object'} rot {step.rotation_deg:g} deg")  # fmt: skip
    out.markers.append(label)
    return out


def plan_goals(plan: ActionPlan, frame: str, stamp: Time) -> PoseArray:
    """Every waypoint of the plan as a PoseArray in the base frame."""
    msg = PoseArray()
    msg.header.frame_id, msg.header.stamp = frame, stamp
    msg.poses = [matrix_to_pose_msg(it.pose) for it in plan.items if isinstance(it, Motion)]
    return msg
