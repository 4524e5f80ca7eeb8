"""The applications on top of the library: the ``llara`` command (:mod:`~.cli`, argument handling only), the
closed-loop evaluation in the simulator (:mod:`~.evaluate`), the offline pipeline check ``llara demo``
(:mod:`~.pipeline_check`), and the policy side of LLaRA's closed loop as a state machine (:mod:`~.loop`, what
the policy node runs)."""
