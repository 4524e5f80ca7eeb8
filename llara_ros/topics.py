"""The topic contract on ROS: :mod:`llara_core.topics`' streams as rclpy publishers and subscriptions.

One named QoS per class of stream, defined here once; every node, the loop
client, the DDS demo and the recorder's task subscription go through
:func:`publisher` / :func:`subscription`, so a stream's name, type and QoS
cannot differ between the two ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from llara_core.topics import QosClass, Stream
from llara_ros.messages import message_class

SENSOR = qos_profile_sensor_data
TASK = LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
COMMAND = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
LATEST = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
QOS: dict[QosClass, QoSProfile] = {"sensor": SENSOR, "latched": LATCHED, "command": COMMAND, "latest": LATEST}


# Entities that a lifecycle node destroys while its executor spins are made without rclpy's default QoS-event
# handlers: when one is destroyed between the executor collecting and entering its waitables, rclpy (Kilted) skips
# entering it but still adds it to the wait set, and the spin thread dies with InvalidHandle (seen in the
# configure/cleanup cycle test). They lose only the "incompatible QoS" warning.


def publisher(node: Node, stream: Stream, name: str | None = None, lifecycle: bool = False) -> Any:
    """A publisher of ``stream`` (``name`` overrides the default topic; ``lifecycle``: a lifecycle publisher)."""
    if not lifecycle:
        return node.create_publisher(message_class(stream.msgtype), name or stream.name, QOS[stream.qos])
    return node.create_lifecycle_publisher(  # type: ignore[attr-defined]
        message_class(stream.msgtype), name or stream.name, QOS[stream.qos],
        event_callbacks=PublisherEventCallbacks(use_default_callbacks=False),
    )  # fmt: skip


def subscription(
    node: Node,
    stream: Stream,
    callback: Callable[[Any], None],
    name: str | None = None,
    destroyable: bool = False,
    **kwargs: Any,
) -> Any:
    """A subscription to ``stream`` with its contract QoS (kwargs: callback_group, raw, …).

    ``destroyable``: it will be destroyed while the node spins (a lifecycle cleanup): no QoS-event handlers.
    """
    if destroyable:
        kwargs["event_callbacks"] = SubscriptionEventCallbacks(use_default_callbacks=False)
    return node.create_subscription(
        message_class(stream.msgtype), name or stream.name, callback, QOS[stream.qos], **kwargs
    )
