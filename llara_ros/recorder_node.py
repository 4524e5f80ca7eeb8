"""recorder_node: demonstrations -> one rosbag2 per episode (mcap or sqlite3), ready for convert_bags.

Services (std_srvs):
  ~/start_episode  Trigger   open a new bag in ``output_dir`` and record the configured topics
  ~/stop_episode   Trigger   close it (metadata.yaml, llara_episode.yaml sidecar)
  ~/mark_episode   SetBool   the operator's success flag for the open or last episode
Topics: ``task`` (std_msgs/String) sets the instruction; so does the ``task`` parameter.

Each topic is subscribed raw (the exact wire bytes go into the bag) with the
QoS its publishers offer, as ``ros2 bag record`` does: reliable only when every
publisher is reliable, transient-local (e.g. /tf_static) when every publisher
is. Topics that do not exist yet are picked up as they appear.
"""

from __future__ import annotations

import sys
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from llara_core import topics
from llara_core.datasets.bags import BagError
from llara_core.datasets.recording import EpisodeRecorder, RecorderConfig, RecordingError, unrecordable
from llara_ros.messages import message_class, package_available
from llara_ros.params import declare_config, read_config
from llara_ros.spin import run_node
from llara_ros.topics import subscription


class RecorderNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder_node", **kwargs)
        declare_config(self, RecorderConfig)
        cfg = read_config(self, RecorderConfig)  # ConfigError (a ValueError) names a bad parameter
        self.config = cfg
        self._instruction = cfg.task
        self.recorder = EpisodeRecorder(cfg.output_dir, cfg.storage, cfg.episode_prefix, cfg.checkpoint_s)
        self.topics = list(dict.fromkeys(cfg.topics))
        for line in unrecordable(cfg.topics, package_available):
            self.get_logger().warning(line)
        self._subs: dict[str, Any] = {}
        subscription(self, topics.TASK, self._on_task)  # latched: the task published before we started
        self.create_service(Trigger, "~/start_episode", self._start)
        self.create_service(Trigger, "~/stop_episode", self._stop)
        self.create_service(SetBool, "~/mark_episode", self._mark)
        self.create_timer(0.5, self._discover)
        self.get_logger().info(f"recording {self.topics} into {self.recorder.output_dir} ({cfg.storage})")

    # -- services ------------------------------------------------------------------------------
    def _follow_sim_clock(self) -> None:
        """Record on the robot's clock: with a /clock publisher and no use_sim_time given, switch it on.

        A simulated robot stamps its headers with sim time; a recorder on the
        wall clock then stores receive times that match none of them (the
        converter copes, but the bag is misleading). An explicit
        ``use_sim_time`` parameter always wins.
        """
        explicit = "use_sim_time" in self._parameter_overrides
        if explicit or self.get_parameter("use_sim_time").value or not self.count_publishers(topics.CLOCK.name):
            return
        self.set_parameters([Parameter("use_sim_time", value=True)])
        self.get_logger().info(f"{topics.CLOCK.name} is published: recording on sim time (use_sim_time:=true)")

    def _start(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        self._follow_sim_clock()
        try:
            path = self.recorder.start(self._instruction or None)
        except (RecordingError, OSError) as exc:
            res.success, res.message = False, str(exc)
            return res
        self._discover()
        res.success, res.message = True, str(path)
        self.get_logger().info(f"episode started: {path}")
        return res

    def _stop(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        try:
            ep = self.recorder.stop()
        except RecordingError as exc:
            res.success, res.message = False, str(exc)
            return res
        for sub in self._subs.values():
            if sub is not None:
                self.destroy_subscription(sub)
        self._subs.clear()
        missing = [t for t in self.topics if not ep.counts.get(t)]
        res.success, res.message = True, str(ep.path)
        self.get_logger().info(
            f"episode stopped: {ep.path} {ep.counts}" + (f"; nothing on {missing}" if missing else "")
        )
        return res

    def _mark(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        try:
            ep = self.recorder.mark(req.data)
        except RecordingError as exc:
            res.success, res.message = False, str(exc)
            return res
        res.success, res.message = True, f"{ep.path}: success={req.data}"
        return res

    def _on_task(self, msg: String) -> None:
        if not msg.data.strip():  # a cleared task ends the policy's loop; it does not rename the episode
            return
        self._instruction = msg.data
        self.recorder.set_instruction(msg.data)

    # -- subscriptions -------------------------------------------------------------------------
    def _discover(self) -> None:
        """Subscribe to configured topics that now have publishers (only while an episode is open)."""
        if not self.recorder.recording:
            return
        types = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self._subs or topic not in types:
                continue
            msgtype = types[topic][0]
            try:
                cls = message_class(msgtype)
                self.recorder.add_topic(topic, msgtype)
            except (ImportError, AttributeError, RecordingError) as exc:
                self.get_logger().error(f"not recording {topic}: {exc}")
                self._subs[topic] = None  # don't retry every tick
                continue
            self._subs[topic] = self.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), self._qos_for(topic), raw=True
            )
        det, objs = topics.DETECTIONS.name, topics.OBJECTS.name
        if det in self.topics and det not in types and objs in types and objs not in self._subs:
            # nobody publishes Detection2DArray (a venv cannot): the simulator's JSON boxes go in as that type
            self._subs[objs] = subscription(self, topics.OBJECTS, self._on_objects)

    def _qos_for(self, topic: str) -> QoSProfile:
        pubs = self.get_publishers_info_by_topic(topic)
        reliable = bool(pubs) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
        latched = bool(pubs) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
        return QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )

    def _on_message(self, topic: str, data: bytes) -> None:
        t_ns = self.get_clock().now().nanoseconds
        if self.recorder.recording and t_ns:  # 0: sim time before the first /clock, no place in time yet
            self.recorder.write(topic, t_ns, data)

    def _on_objects(self, msg: String) -> None:
        t_ns = self.get_clock().now().nanoseconds
        if not self.recorder.recording or not t_ns:
            return
        try:
            self.recorder.write_objects(topics.DETECTIONS.name, t_ns, msg.data)
        except (BagError, RecordingError) as exc:
            self.get_logger().warning(f"{topics.OBJECTS.name} not recorded: {exc}", throttle_duration_sec=5.0)

    def close(self, reason: str = "shutdown") -> None:
        """Finish an open episode cleanly (on shutdown)."""
        if self.recorder.recording:
            ep = self.recorder.stop()
            self.get_logger().info(f"episode closed on shutdown: {ep.path}")


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, "recorder_node", args)


if __name__ == "__main__":
    sys.exit(main())
