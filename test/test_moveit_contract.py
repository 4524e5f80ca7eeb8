"""The moveit backend's contract with moveit_py, which cannot be installed here.

``FakeMoveItPy`` records every call and has exactly the Python signatures of
MoveIt 2's bindings — moveit_py/src/moveit/moveit_ros/moveit_cpp/moveit_cpp.cpp
and planning_component.cpp at release 2.10.0 (Jazzy; Iron 2.7+ and Kilted have
the same ``execute(robot_trajectory, controllers)``) and on the humble branch
(``execute(group_name, robot_trajectory, blocking=True)``). The action node runs
in this process over real DDS with the fake in place of ``moveit.planning``: a
valid step makes exactly the calls a real MoveIt run needs, in order; every
refusal makes none.
"""

from __future__ import annotations

import sys
import time
import types

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from llara_core.language.actions import ActionStep, render_step

pytestmark = pytest.mark.ros
CALLS: list[tuple] = []


class FakeResult:
    trajectory = "robot_trajectory"

    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def __bool__(self) -> bool:  # MotionPlanResponse.__bool__: the plan succeeded
        return self.ok


class FakePlanningComponent:
    def __init__(self, name: str) -> None:
        self.name = name

    def set_start_state_to_current_state(self) -> None:
        CALLS.append((self.name, "set_start_state_to_current_state"))

    def set_goal_state(self, configuration_name=None, robot_state=None, pose_stamped_msg=None, pose_link=None,
                       motion_plan_constraints=None) -> None:  # fmt: skip
        goal = configuration_name if configuration_name is not None else (pose_stamped_msg.header.frame_id, pose_link)
        CALLS.append((self.name, "set_goal_state", goal))

    def plan(self, single_plan_parameters=None, multi_plan_parameters=None, planning_scene=None,
             solution_selection_function=None, stopping_criterion_callback=None) -> FakeResult:  # fmt: skip
        planner = getattr(single_plan_parameters, "planner_id", None)
        CALLS.append((self.name, "plan", planner))
        return FakeResult(True)


class FakePlanRequestParameters:
    def __init__(self, moveit_cpp, ns: str) -> None:
        CALLS.append(("PlanRequestParameters", ns))
        self.planning_pipeline = self.planner_id = None


class FakeMoveItPy:
    def __init__(self, node_name="moveit_py", launch_params_filepath=None, config_dict=None,
                 provide_planning_service=True) -> None:  # fmt: skip
        CALLS.append(("MoveItPy", node_name))

    def get_planning_component(self, planning_component_name: str) -> FakePlanningComponent:
        CALLS.append(("get_planning_component", planning_component_name))
        return FakePlanningComponent(planning_component_name)

    def execute(self, robot_trajectory, controllers) -> None:  # Iron 2.7 and later, Jazzy 2.10, Kilted
        CALLS.append(("execute", robot_trajectory, tuple(controllers)))


class FakeHumbleMoveItPy(FakeMoveItPy):
    def execute(self, group_name, robot_trajectory, blocking=True) -> None:  # type: ignore[override]
        CALLS.append(("execute", group_name, robot_trajectory, blocking))


def _install(moveit_cls) -> None:
    pkg = types.ModuleType("moveit")
    planning = types.ModuleType("moveit.planning")
    planning.MoveItPy, planning.PlanRequestParameters = moveit_cls, FakePlanRequestParameters
    pkg.planning = planning
    sys.modules["moveit"], sys.modules["moveit.planning"] = pkg, planning


@pytest.fixture
def moveit_node(monkeypatch):
    from ros_helpers import Robot

    monkeypatch.setitem(sys.modules, "moveit", None)
    CALLS.clear()
    rclpy.init()
    robot = Robot()
    nodes = []

    def start(moveit_cls, api: str):
        from llara_ros.action_node import ActionNode

        _install(moveit_cls)
        overrides = [Parameter("executor", value="moveit"), Parameter("autostart", value=True),
                     Parameter("moveit.api", value=api), Parameter("tool_frame", value="tcp"),
                     Parameter("partial", value="refuse"),
                     Parameter("camera_pose", value=[1.0, 0.0, 0.7, -0.668266, -0.668266, 0.231129, 0.231129])]  # fmt: skip
        node = ActionNode(parameter_overrides=overrides)
        ex = MultiThreadedExecutor(num_threads=3)
        ex.add_node(node)
        import threading

        threading.Thread(target=ex.spin, daemon=True).start()
        nodes.append((node, ex))
        return robot

    yield start
    for node, ex in nodes:
        ex.shutdown()
        node.destroy_node()
    robot.close()
    rclpy.shutdown()
    sys.modules.pop("moveit.planning", None)


EXPECTED_STEP = [
    ("manipulator", "set_start_state_to_current_state"), ("manipulator", "set_goal_state", ("base_link", "tcp")),
    ("manipulator", "plan", None),  # pre-grasp: any collision-free path
    ("gripper", "set_start_state_to_current_state"), ("gripper", "set_goal_state", "open"), ("gripper", "plan", None),
    ("manipulator", "set_start_state_to_current_state"), ("manipulator", "set_goal_state", ("base_link", "tcp")),
    ("manipulator", "plan", "LIN"),  # grasp: a straight line down
    ("gripper", "set_start_state_to_current_state"), ("gripper", "set_goal_state", "close"), ("gripper", "plan", None),
    *[c for _ in ("lift",) for c in (("manipulator", "set_start_state_to_current_state"),
                                     ("manipulator", "set_goal_state", ("base_link", "tcp")),
                                     ("manipulator", "plan", "LIN"))],
    ("manipulator", "set_start_state_to_current_state"), ("manipulator", "set_goal_state", ("base_link", "tcp")),
    ("manipulator", "plan", None),  # carry to pre-place
    ("manipulator", "set_start_state_to_current_state"), ("manipulator", "set_goal_state", ("base_link", "tcp")),
    ("manipulator", "plan", "LIN"),  # place
    ("gripper", "set_start_state_to_current_state"), ("gripper", "set_goal_state", "open"), ("gripper", "plan", None),
    ("manipulator", "set_start_state_to_current_state"), ("manipulator", "set_goal_state", ("base_link", "tcp")),
    ("manipulator", "plan", "LIN"),  # retreat
]  # fmt: skip


@pytest.mark.parametrize(("api", "cls"), [("jazzy", FakeMoveItPy), ("humble", FakeHumbleMoveItPy)])
def test_a_step_makes_exactly_the_moveit_calls_a_real_run_needs(moveit_node, api, cls):
    from ros_helpers import wait_ready

    robot = moveit_node(cls, api)
    wait_ready(robot)
    setup = [("MoveItPy", "llara_moveit_py"), ("get_planning_component", "manipulator"),
             ("get_planning_component", "gripper"), ("PlanRequestParameters", "pilz_lin")]  # fmt: skip
    assert CALLS == setup
    for refused in ("no action here", render_step(ActionStep((0.45, 0.02), (0.5, 0.6)), 1)):
        done = robot.client.send(refused, timeout=10)
        assert done is not None and not done.ok
    end = time.monotonic() + 20  # on a loaded machine the first camera frame may still be on its way
    while done.reason.startswith("no camera") and time.monotonic() < end:  # image or camera_info
        time.sleep(0.2)
        done = robot.client.send(refused, timeout=10)
    assert "outside the workspace" in done.reason, done
    assert CALLS == setup  # a refusal makes no MoveIt call at all
    done = robot.client.send(render_step(ActionStep((0.45, 0.45), (0.55, 0.6)), 1), timeout=30)
    assert done is not None and done.ok, done
    steps = [c for c in CALLS[len(setup) :] if c[0] != "execute"]
    assert steps == EXPECTED_STEP
    executes = [c for c in CALLS if c[0] == "execute"]
    assert len(executes) == 9  # one per motion and gripper state
    want = (
        ("execute", "robot_trajectory", ()) if api == "jazzy" else ("execute", "manipulator", "robot_trajectory", True)
    )
    assert executes[0] == want
    order = [c[0] for c in CALLS[len(setup) :]]
    assert all(order[i + 3] == "execute" for i in range(0, len(order), 4))  # plan, then execute, every time


def test_without_moveit_the_node_says_what_to_install(monkeypatch):
    from llara_core.errors import ConfigError
    from llara_ros.backends import _import_moveit

    monkeypatch.setitem(sys.modules, "moveit", None)
    monkeypatch.setitem(sys.modules, "moveit.planning", None)
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    with pytest.raises(ConfigError, match="install ros-jazzy-moveit-py"):
        _import_moveit()
    time.sleep(0)
