"""llara_core: the ROS-free LLaRA library. One folder, one layer:

- foundations: :mod:`~.errors`, :mod:`~.config`, :mod:`~.fileio`, :mod:`~.resources`, :mod:`~.topics` (stream
  names and types), :mod:`~.geometry` (camera model, image coordinates <-> rays <-> base frame), :mod:`~.images`
  (sensor buffers <-> numpy);
- :mod:`~.language` (the action language and prompts), :mod:`~.datasets` (episodes, records, bags, conversion),
  :mod:`~.planning` (action text -> checked motions), :mod:`~.model` (the policy seam, runtime, training),
  :mod:`~.serving` (the policy over HTTP), :mod:`~.sim` (the MuJoCo tabletop);
- :mod:`~.apps`: the ``llara`` command, evaluation, the pipeline check, the policy loop.

Importing this package must never import rclpy: everything here is usable and testable in plain Python; ROS
nodes in ``llara_ros`` are thin wrappers.
"""

__version__ = "0.1.0"
