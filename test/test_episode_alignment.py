"""Keyframes and the alignment of recorded streams: which state a pick or place is taken from."""

from __future__ import annotations

import numpy as np

from llara_core.datasets.episodes import Episode, RobotState, align_states
from llara_core.geometry import (
    base_to_normalized,
)
from llara_core.language.objects import ObjectBox, object_at
from llara_core.sim.synthetic import make_episode


# -- keyframes and alignment ---------------------------------------------------------------------------
def _poses(n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        T = np.eye(4)
        T[:3, 3] = (0.4 + 0.01 * i, 0.02 * i, 0.02)
        out.append(T)
    return out


def test_a_keyframe_takes_the_state_at_the_gripper_change_not_the_one_before():
    ep = make_episode(3)
    closed = [False, False, True, True, True, False, False]
    poses = _poses(len(closed))
    states = [RobotState(0.1 * i, P, c) for i, (P, c) in enumerate(zip(poses, closed, strict=True))]
    ep2 = Episode("k", ep.instruction, ep.camera, ep.camera_pose, ep.frames, states)
    (st,) = ep2.steps()
    assert (st.pick_state, st.place_state) == (2, 5)

    want = np.round(base_to_normalized(ep.camera, ep.camera_pose, np.stack([poses[2][:3, 3], poses[5][:3, 3]])), 3)
    step = ep2.action_steps()[0]
    assert step.pick == tuple(want[0]) and step.place == tuple(want[1])


def test_a_bag_aligns_each_pose_with_the_gripper_message_current_then_not_the_next():
    poses = [(t, P) for t, P in zip((0.0, 1.0, 2.0, 3.0), _poses(4), strict=True)]
    grips = [(0.0, False), (1.0, True), (2.5, False)]  # closed exactly at 1.0; opened between 2.0 and 3.0
    states = align_states(poses, grips)
    assert [s.gripper_closed for s in states] == [False, True, True, False]


# -- boxes and the alignment of recorded streams -------------------------------------------------------------
def test_the_object_under_a_point_is_the_smallest_box_holding_it():
    bowl, block = ObjectBox("bowl", 0.5, 0.5, 0.4, 0.4), ObjectBox("red block", 0.55, 0.5, 0.1, 0.1)
    assert block.contains((0.599, 0.549)) and block.contains((0.501, 0.451)) and not block.contains((0.601, 0.5))
    assert not block.contains((0.55, 0.551)) and not block.contains((0.499, 0.5)) and bowl.contains((0.301, 0.301))
    assert object_at([bowl, block], (0.56, 0.52)) == "red block"
    assert object_at([bowl, block], (0.35, 0.5)) == "bowl" and object_at([bowl, block], (0.9, 0.9)) is None
    twin = ObjectBox("blue block", 0.55, 0.5, 0.1, 0.1)
    assert object_at([block, twin], (0.55, 0.5)) == "blue block"  # equal sizes: the name decides, deterministically


def test_alignment_sorts_the_streams_and_holds_the_first_value_before_any_message():
    P = [np.eye(4) * (i + 1) for i in range(4)]
    poses = [(3.0, P[3]), (0.5, P[0]), (2.0, P[2]), (1.0, P[1])]
    grips = [(2.5, False), (1.0, True)]
    states = align_states(poses, grips)
    assert [s.stamp for s in states] == [0.5, 1.0, 2.0, 3.0]
    assert [s.gripper_closed for s in states] == [True, True, True, False]  # before 1.0: the first value
    assert all(np.array_equal(s.ee_pose, P[i]) for i, s in enumerate(states))
    assert isinstance(states[0], RobotState)
