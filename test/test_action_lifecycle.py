"""action_node's lifecycle over real DDS: configure/cleanup leaves exactly one set of entities, and every action
text gets exactly one step_done in every state and on every path (refused, rejected, timed out, dropped by estop or
deactivation, stopped, done)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from ros_helpers import Robot, params_file, start_node, stop_nodes
from std_msgs.msg import Bool, String

from llara_core.language.actions import ActionStep, render_step

pytestmark = pytest.mark.ros
CAMERA_POSE = [1.0, 0.0, 0.7, -0.668266, -0.668266, 0.231129, 0.231129]


def _text(k: int) -> str:
    """A valid, reachable step; ``k`` makes each text unique so its step_done can be told apart."""
    return render_step(ActionStep((0.45, 0.45), (0.55, 0.6), float(k)), 1)


def _graph(observer, name: str = "action_node") -> Counter[str]:
    """This node's endpoints as the DDS graph shows them: 'pub /topic', 'sub /topic', 'srv /name' with counts."""
    out: Counter[str] = Counter()
    for topic, _ in observer.get_topic_names_and_types():
        out.update(f"pub {topic}" for i in observer.get_publishers_info_by_topic(topic) if i.node_name == name)
        out.update(f"sub {topic}" for i in observer.get_subscriptions_info_by_topic(topic) if i.node_name == name)
    for srv, _ in observer.get_service_names_and_types_by_node(name, "/"):
        out[f"srv {srv}"] += 1
    return out


def _settled(observer, want: dict[str, int] | None = None, timeout: float = 10.0) -> Counter[str]:
    """The graph once discovery has caught up (two equal reads in a row, and ``want``'s counts where given)."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        now = _graph(observer)
        if now == last and all(now[k] == v for k, v in (want or {}).items()):
            return now
        last = now
        time.sleep(0.3)
    return last or Counter()


def test_configure_cleanup_twenty_times_leaves_exactly_one_set_of_entities(robot):
    from llara_ros.action_node import ActionNode

    node = ActionNode(parameter_overrides=[
        Parameter("executor", value="joint_trajectory"), Parameter("urdf", value="package://llara_ros/urdf/llara_arm.urdf"),
        Parameter("camera_pose", value=CAMERA_POSE), Parameter("tool_frame", value="tcp"),
    ])  # fmt: skip
    ex = MultiThreadedExecutor(num_threads=3)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    observer = robot.node
    try:
        base = _settled(observer, {"sub /action_text": 1, "pub /step_done": 1})
        assert base["sub /action_text"] == 1 and base["pub /step_done"] == 1 and base["sub /estop"] == 1
        assert base["srv /action_node/approve"] == 0 and base["pub /goals"] == 0  # made by configure only
        local = (len(list(node.publishers)), len(list(node.subscriptions)), len(list(node.services)),
                 len(list(node.timers)))  # fmt: skip
        configured = None
        for i in range(20):
            assert node.trigger_configure() == rclpy.lifecycle.TransitionCallbackReturn.SUCCESS, i
            if i in (0, 19):
                configured = _settled(observer, {"srv /action_node/approve": 1, "pub /goals": 1})
                one_set = {"srv /action_node/approve": 1, "srv /action_node/reject": 1, "pub /goals": 1,
                           "pub /markers": 1, "pub /joint_trajectory_controller/joint_trajectory": 1,
                           "pub /gripper_controller/commands": 1, "sub /camera/color/image_raw": 1,
                           "sub /camera/color/camera_info": 1, "sub /joint_states": 1, "sub /action_text": 1,
                           "pub /step_done": 1}  # fmt: skip
                assert {k: configured[k] for k in one_set} == one_set, (i, configured)
            assert node.trigger_cleanup() == rclpy.lifecycle.TransitionCallbackReturn.SUCCESS, i
        after = _settled(observer, {"srv /action_node/approve": 0, "pub /goals": 0})
        assert after == base, (after - base, base - after)  # nothing left behind by twenty cycles
        assert (len(list(node.publishers)), len(list(node.subscriptions)), len(list(node.services)),
                len(list(node.timers))) == local  # fmt: skip
    finally:
        ex.shutdown()
        node.destroy_node()


def _change(robot: Robot, transition: int) -> bool:
    cli = robot.node.create_client(ChangeState, "/action_node/change_state")
    assert cli.wait_for_service(timeout_sec=20)
    fut = cli.call_async(ChangeState.Request(transition=Transition(id=transition)))
    end = time.monotonic() + 20
    while not fut.done() and time.monotonic() < end:
        time.sleep(0.01)
    return bool(fut.result() and fut.result().success)


def test_every_action_text_gets_exactly_one_step_done_in_every_state(robot, tmp_path):
    params = params_file(tmp_path, "gate", autostart=False, require_approval=True, approval_timeout_s=1.5,
                         max_image_age_s=5.0, joint_trajectory={"arrival_timeout_s": 60.0})  # fmt: skip
    proc = start_node("action_node", params, tmp_path / "action.log")
    d = robot.client
    sent: list[str] = []

    def send(k: int, timeout: float = 15.0):
        sent.append(_text(k))
        return d.send(_text(k), timeout=timeout)

    def done_of(k: int, timeout: float = 15.0):
        return d.wait_for(lambda: next((x for x in d.done if x.step == _text(k)), None), timeout)

    try:
        probe, end = None, time.monotonic() + 30
        while probe is None and time.monotonic() < end:  # the node answers even unconfigured, once it is up
            probe = d.send("", timeout=1.0)
        assert probe is not None and "unconfigured" in probe.reason
        unconfigured = send(0)
        assert unconfigured is not None and not unconfigured.ok and "unconfigured" in unconfigured.reason
        assert _change(robot, Transition.TRANSITION_CONFIGURE)
        inactive = send(1)
        assert inactive is not None and not inactive.ok and "inactive" in inactive.reason
        assert _change(robot, Transition.TRANSITION_ACTIVATE)
        time.sleep(0.5)
        # waiting for approval, then: estop drops it
        sent.append(_text(2))
        d.action_pub.publish(String(data=_text(2)))
        time.sleep(1.0)
        assert not any(x.step == _text(2) for x in d.done)  # it waits, nothing answered yet
        d.estop_pub.publish(Bool(data=True))
        by_estop = done_of(2)
        assert by_estop is not None and not by_estop.ok and "estop" in by_estop.reason
        refused = send(3)
        assert refused is not None and "estop is active" in refused.reason
        d.estop_pub.publish(Bool(data=False))
        time.sleep(0.5)
        # rejected by the operator
        sent.append(_text(4))
        d.action_pub.publish(String(data=_text(4)))
        time.sleep(1.0)
        assert robot.call("/action_node/reject").success
        assert "rejected" in done_of(4).reason
        # the approval times out
        timed_out = send(5, timeout=10)
        assert timed_out is not None and "approval timed out" in timed_out.reason
        # waiting for approval when the node is deactivated
        sent.append(_text(6))
        d.action_pub.publish(String(data=_text(6)))
        time.sleep(1.0)
        assert _change(robot, Transition.TRANSITION_DEACTIVATE)
        dropped = done_of(6)
        assert dropped is not None and "dropped by deactivation" in dropped.reason
        assert _change(robot, Transition.TRANSITION_ACTIVATE)
        time.sleep(0.5)
        # approved: it executes (the fake arm never arrives), then an estop stops it
        sent.append(_text(7))
        d.action_pub.publish(String(data=_text(7)))
        time.sleep(1.0)
        assert robot.call("/action_node/approve").success
        assert d.wait_for(lambda: robot.commands, 15), "the approved step commanded nothing"
        d.estop_pub.publish(Bool(data=True))
        stopped = done_of(7)
        assert stopped is not None and stopped.reason == "stopped by estop"
        d.estop_pub.publish(Bool(data=False))
        time.sleep(1.0)
        counts = Counter(x.step for x in d.done)
        assert all(counts[t] == 1 for t in sent), {t[-40:]: counts[t] for t in sent}  # one step_done, never two
        assert proc.poll() is None
    finally:
        stop_nodes(proc)
