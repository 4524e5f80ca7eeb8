"""Draw action steps on a camera image: pick (circle), place (cross), an arrow between them, a step label.

One drawing routine for the docs/debug PNGs (``llara sim-render``), the
closed-loop evaluation and the policy node's ``annotated_image`` topic.
Coordinates are the action language's normalized ones (pixel centers at
integers: ``u = x·W − 0.5``), drawn with OpenCV on an RGB image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from llara_core.language.actions import ActionStep

TRUE_RGB = (40, 220, 60)
PRED_RGB = (240, 40, 200)


def draw_comparison(
    image: npt.NDArray[np.uint8],
    truth: Sequence[ActionStep],
    predicted: Sequence[ActionStep] = (),
    upscale: int = 3,
) -> npt.NDArray[np.uint8]:
    """The expert's steps (green, "T") and a model's (magenta, "P") on one upscaled picture (sim-render, demo)."""
    img = draw_steps(image, truth, TRUE_RGB, "T", upscale=upscale)
    return draw_steps(image, predicted, PRED_RGB, "P", canvas=img) if predicted else img


def _px(xy: tuple[float, float], w: int, h: int, scale: float) -> tuple[int, int]:
    return (round((xy[0] * w - 0.5) * scale), round((xy[1] * h - 0.5) * scale))


def draw_steps(
    image: npt.NDArray[np.uint8],
    steps: Sequence[ActionStep],
    rgb: tuple[int, int, int] = PRED_RGB,
    label: str = "",
    upscale: int = 1,
    canvas: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8]:
    """Return a copy of ``image`` (upscaled by ``upscale`` for legibility) with ``steps`` drawn in ``rgb``.

    Pass the result of a previous call as ``canvas`` to draw several sets (e.g.
    ground truth and prediction) on one picture.
    """
    import cv2

    h, w = image.shape[:2]
    out = (
        canvas.copy()
        if canvas is not None
        else cv2.resize(image, (w * upscale, h * upscale), interpolation=cv2.INTER_NEAREST)
        if upscale > 1
        else image.copy()
    )
    scale = out.shape[1] / w
    r = max(3, round(4 * scale))
    for st in steps:
        p, q = _px(st.pick, w, h, scale), _px(st.place, w, h, scale)
        cv2.arrowedLine(out, p, q, rgb, 1, cv2.LINE_AA, tipLength=0.08)
        cv2.circle(out, p, r, rgb, 2, cv2.LINE_AA)
        cv2.drawMarker(out, q, rgb, cv2.MARKER_CROSS, 2 * r + 2, 2, cv2.LINE_AA)
        text = f"{label}{st.index}" if label else str(st.index)
        cv2.putText(
            out, text, (p[0] + r + 2, p[1] - r), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale / 2 + 0.2, rgb, 1, cv2.LINE_AA
        )
    return np.asarray(out, dtype=np.uint8)
