"""The action language LLaRA's models speak, and the prompts that ask for it.

:mod:`~.actions` (typed steps, canonical rendering, the one strict parser), :mod:`~.objects` (named boxes and
their text form), :mod:`~.prompts` (inBC / D-inBC prompts; the ``llara_ros`` and ``llara`` prompt profiles as
objects, each with its answer length), :mod:`~.annotate` (actions drawn on a camera image). Every coordinate in this package is an *image coordinate*: a fraction of
the image's width or height in [0, 1] from its top-left corner — not OpenCV's normalized camera coordinates
(x/z, y/z), which :mod:`llara_core.geometry` computes from them. Depends on nothing but the foundations.
"""
