"""Demonstrations and the training data made from them.

:mod:`~.episodes` (the Episode every producer and consumer shares), :mod:`~.records` (a conversation record and
its validation), :mod:`~.samples` and :mod:`~.auxiliary` (an episode's inBC / D-inBC samples and LLaRA's six
auxiliary tasks), :mod:`~.writer` (episodes -> a dataset folder, resumable), :mod:`~.reader` (datasets,
including LLaRA's released files, read whole), :mod:`~.index` (the lazy training index), :mod:`~.tools`
(``llara dataset stats|mix``), :mod:`~.bags` (rosbag2 <-> episodes), :mod:`~.convert` (bags -> datasets, bag by
bag), :mod:`~.recording` (one bag per demonstration as messages arrive). Builds on :mod:`llara_core.language`; no model, no ROS.
"""
