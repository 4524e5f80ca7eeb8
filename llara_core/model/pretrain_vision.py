"""Pretraining the tiny model's vision tower as a dense object reader: this project's stand-in for CLIP.

LLaVA starts from a CLIP tower that already sees objects; our tiny tower starts
from random weights, and learning to see *and* to talk in one finetuning run is
slow on a CPU. So, before finetuning, the tower learns a dense task: every patch
covered by an object's box predicts that object's colour and shape (two heads,
so that unseen colour–shape pairs still get the right features) and the digits
of its box — centre x and y to three decimals, width and height to two — as
ten-way classes, exactly the digits the action and box text is written with.
Every patch also predicts its own position in the image.

Why digits: the language model then only has to find the patch of the object
the text names (attention by content) and copy digits out of its features —
a lookup, which a small model learns in minutes — instead of also learning to
turn a position into decimal text. Why every covered patch: whichever patch of
the object the attention lands on carries the same answer.

Labels are object boxes only: the detection records of LLaVA-format datasets
(sim or converted bags), or boxes of freshly rendered sim scenes
(:func:`llara_core.sim.demonstrations.scene_boxes`) — no demonstration needed for them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llara_core.config import setting
from llara_core.language.objects import parse_objects
from llara_core.model.folder import has_pretrained_tower, read_vision_figures, write_vision_figures

if TYPE_CHECKING:
    from llara_core.model.tiny import TinySpec

# (value index in (cx, cy, w, h), decimal place 1..3) of every digit head
DIGITS = ((0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2))

MIN_STEPS = 3  # OneCycleLR needs a warm-up and a decay phase of a step or more
Box = tuple[str, float, float, float, float]  # name, cx, cy, w, h (normalized)
BoxSample = tuple[Any, list[Box]]  # image (path or HxWx3 uint8 array), its boxes


def box_samples(datasets: Sequence[str | Path]) -> list[BoxSample]:
    """(image path, boxes) of every detection record of the datasets."""
    from llara_core.datasets.reader import read_dataset

    out: list[BoxSample] = []
    for d in map(Path, datasets):
        for r in read_dataset(d, check_images=False):
            if r.get("task") != "detection":
                continue
            objs = [(b.name, b.cx, b.cy, b.w, b.h) for b in parse_objects(r["conversations"][1]["value"])]
            if objs:
                out.append((d / r["image"], objs))
    return out


def digit(value: float, place: int) -> int:
    """The ``place``-th decimal digit of ``value`` as written with three decimals (0.999 at most)."""
    text = f"{min(max(value, 0.0), 0.999):.3f}"
    return int(text[1 + place])


def dense_targets(
    objs: Sequence[Box], grid: int, colors: Sequence[str], shapes: Sequence[str], margin: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per patch: (colour class, shape class) with 0 = no object, and the box digits (-100 where no object).

    A patch belongs to the object whose box, grown by ``margin`` patches on every
    side, covers its centre (the nearest centre wins where they overlap); the
    patch holding an object's centre always belongs to it. The margin matters:
    a small object covers one or two patches, and a language model learning to
    find it does so much sooner when several patches carry its answer (the large
    targets, covering many patches, were found long before the small objects).
    """
    cls = np.zeros((grid * grid, 2), dtype=np.int64)
    dig = np.full((grid * grid, len(DIGITS)), -100, dtype=np.int64)
    best = np.full(grid * grid, np.inf)
    centers = (np.arange(grid) + 0.5) / grid
    px, py = (a.ravel() for a in np.meshgrid(centers, centers, indexing="xy"))
    for name, cx, cy, w, h in objs:
        words = name.split()
        color = colors.index(words[0]) + 1 if len(words) > 1 and words[0] in colors else 0
        shape = shapes.index(words[-1]) + 1 if words[-1] in shapes else 0
        dist = np.hypot(px - cx, py - cy)
        inside = (np.abs(px - cx) <= w / 2 + margin / grid) & (np.abs(py - cy) <= h / 2 + margin / grid)
        inside[min(int(cy * grid), grid - 1) * grid + min(int(cx * grid), grid - 1)] = True
        take = inside & (dist < best)
        best[take] = dist[take]
        cls[take] = (color, shape)
        vals = (cx, cy, w, h)
        dig[take] = [digit(vals[i], p) for i, p in DIGITS]
    return cls, dig


def _pixels(processor: Any, image: Any) -> Any:
    from PIL import Image

    if isinstance(image, np.ndarray):
        return processor.image_processor(Image.fromarray(image), return_tensors="pt")["pixel_values"][0]
    with Image.open(image) as im:
        return processor.image_processor(im.convert("RGB"), return_tensors="pt")["pixel_values"][0]


@dataclass(frozen=True)
class PretrainVisionConfig:
    """``llara pretrain-vision``'s settings."""

    steps: int = setting(1500, "optimizer steps")
    batch_size: int = setting(32, "images per step")
    lr: float = setting(2e-3, "peak learning rate (one-cycle schedule)")
    seed: int = setting(0, "seed of the weights of the heads and of the sampling")
    scenes: int = setting(0, "also render this many fresh sim layouts per training family (no expert needed)")
    scene_seed: int = setting(200000, "first layout seed (keep away from evaluation seeds)")

    def __post_init__(self) -> None:
        if self.steps < MIN_STEPS:
            raise ValueError(f"steps must be at least {MIN_STEPS} (the schedule warms up first), got {self.steps}")
        if self.batch_size < 1 or self.lr <= 0 or self.scenes < 0:
            raise ValueError("batch_size must be >= 1, lr > 0 and scenes >= 0")


def pretrain_vision_tower(
    model_dir: str | Path,
    datasets: Sequence[str | Path] = (),
    config: PretrainVisionConfig = PretrainVisionConfig(),
    extra_samples: Sequence[BoxSample] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Train the vision tower of the LLaVA in ``model_dir`` in place; returns loss and accuracy figures.

    Samples are the detection records of ``datasets`` plus ``extra_samples``;
    the last 5 % (at most 200) are held out to report the accuracies.
    """
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText, AutoProcessor

    steps, batch_size, lr, seed = config.steps, config.batch_size, config.lr, config.seed
    torch.manual_seed(seed)
    model_dir = Path(model_dir)
    samples = box_samples(datasets) + list(extra_samples)
    if len(samples) < 2:
        raise ValueError(
            f"{len(samples)} images with object boxes: need at least 2 (one is held out); give datasets with "
            "'detection' records, or rendered scenes"
        )
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    tower = model.model.vision_tower
    vcfg = tower.config
    g = vcfg.image_size // vcfg.patch_size
    words = [name.split() for _, objs in samples for name, *_ in objs]
    colors = sorted({w[0] for w in words if len(w) > 1})
    shapes = sorted({w[-1] for w in words})
    nc, ns, nd = len(colors) + 1, len(shapes) + 1, len(DIGITS)
    head = torch.nn.Linear(vcfg.hidden_size, nc + ns + 10 * nd + 2)
    grid = torch.stack(torch.meshgrid(torch.arange(g), torch.arange(g), indexing="xy"), -1).reshape(-1, 2)
    patch_xy = (grid.float() + 0.5) / g  # (g*g, 2): each patch's own centre, normalized
    X = torch.stack([_pixels(processor, im) for im, _ in samples])
    labels = [dense_targets(objs, g, colors, shapes) for _, objs in samples]
    C = torch.from_numpy(np.stack([c for c, _ in labels]))
    D = torch.from_numpy(np.stack([d for _, d in labels]))
    n_val = max(1, min(200, len(samples) // 20))  # held out: never scored on images it trained on
    n_train = len(samples) - n_val
    params = list(tower.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    # OneCycleLR divides by (pct_start * steps - 1) and by the decay phase's length: keep both >= half a step
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps, pct_start=max(0.05 * steps, 1.5) / steps
    )
    wc, ws = torch.ones(nc), torch.ones(ns)
    wc[0] = ws[0] = 0.2  # most patches hold no object
    ce = torch.nn.functional.cross_entropy

    def heads(idx: Any) -> tuple[Any, Any, Any, Any]:
        """Colour logits, shape logits, digit logits (…, digits, 10) and patch position of images ``idx``."""
        out = head(tower(pixel_values=X[idx]).last_hidden_state[:, 1:])  # the patch tokens LLaVA projects
        digits = out[..., nc + ns : nc + ns + 10 * nd].reshape(*out.shape[:-1], nd, 10)
        return out[..., :nc], out[..., nc : nc + ns], digits, out[..., -2:]

    def loss_of(idx: Any) -> Any:
        color, shape, digits, xy = heads(idx)
        c, d = C[idx], D[idx]
        loss = ce(color.reshape(-1, nc), c[..., 0].reshape(-1), weight=wc)
        loss = loss + ce(shape.reshape(-1, ns), c[..., 1].reshape(-1), weight=ws)
        loss = loss + ce(digits.reshape(-1, 10), d.reshape(-1), ignore_index=-100)
        return loss + 4 * torch.nn.functional.l1_loss(xy, patch_xy.expand(len(idx), -1, -1))

    tower.train()
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    history = []
    for _ in tqdm(range(steps), desc="vision pretraining", disable=not progress):
        loss = loss_of(torch.randint(0, n_train, (batch_size,), generator=gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(float(loss.detach()))
    tower.eval()
    with torch.no_grad():
        idx = torch.arange(n_train, len(samples))
        color, shape, digits, _ = heads(idx)
        c, d = C[idx], D[idx]
        on = c[..., 1] > 0
        hit = (color.argmax(-1) == c[..., 0]) & (shape.argmax(-1) == c[..., 1])
        pred = digits.argmax(-1)
        digit_acc = [float((pred[..., k] == d[..., k])[on].float().mean()) for k in range(nd)]
    model.save_pretrained(model_dir, safe_serialization=True)
    return {
        "steps": steps,
        "images": len(samples),
        "held_out_images": len(idx),
        "colors": colors,
        "shapes": shapes,
        "first_loss": float(np.mean(history[:5])),
        "final_loss": float(np.mean(history[-20:])),
        "object_patch_accuracy": float(hit[on].float().mean()),
        "digit_accuracy": {f"{'xywh'[i]}{p}": round(a, 3) for (i, p), a in zip(DIGITS, digit_acc, strict=True)},
        "seconds": time.perf_counter() - t0,
    }


def tiny_with_pretrained_tower(
    path: str | Path,
    datasets: Sequence[str | Path],
    corpus: Sequence[str],
    steps: int = 1500,
    seed: int = 0,
    extra_samples: Sequence[BoxSample] = (),
    progress: bool = True,
    spec: TinySpec | None = None,
) -> dict[str, Any]:
    """Build a tiny LLaVA at ``path`` (``spec``, default size) and pretrain its tower, unless a run already did.

    The scripts that train from nothing (``make_demo_model.py``, ``ablation.py``)
    start here; ``vision_pretrained.json`` is written last, so its presence means
    a finished tower and a re-run resumes instead of starting over. Returns the
    pretraining figures.
    """
    from llara_core.model.tiny import TinySpec, build_tiny_model

    path = Path(path)
    if not has_pretrained_tower(path):
        build_tiny_model(path, corpus, spec or TinySpec(), seed=seed)
        figures = pretrain_vision_tower(path, datasets, PretrainVisionConfig(steps=steps, seed=seed), extra_samples,
                                        progress)  # fmt: skip
        write_vision_figures(path, figures)
    return read_vision_figures(path)
