"""Pretraining the tiny model's vision tower on object boxes: this project's stand-in for CLIP pretraining.

LLaVA starts from a CLIP tower that already sees objects; our tiny tower starts
from random weights, and learning to see *and* to talk in one finetuning run
is slow on a CPU. So, before finetuning, the tower learns a dense task on the
same demonstrations: for every patch, the colour and the shape of the object
whose center lies there (if any; two heads, so that unseen colour–shape pairs
still get the right features), where inside the patch, and where the patch
itself is in the image. The last target matters: the language model reads the
image tokens through rotary positions *relative* to the answer, and the
instruction between them has a variable length, so the absolute position of a
patch must be in its features for the coordinates to be read out as text. Labels come from the datasets' detection
records (every object's box in normalized coordinates), nothing else. The
language model then only has to learn to read those features out as text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OBJECT_RE = re.compile(r"<p>(?P<name>[^<]+)</p> at <b>\((?P<cx>[-\d.]+),\s*(?P<cy>[-\d.]+)\)")


def box_samples(datasets: Sequence[str | Path]) -> list[tuple[Path, list[tuple[str, float, float]]]]:
    """(image path, [(object name, cx, cy)]) from the detection records of the datasets."""
    from llara_core.conversations import read_dataset

    out = []
    for d in map(Path, datasets):
        for r in read_dataset(d, check_images=False):
            if r.get("task") != "detection":
                continue
            objs = [
                (m["name"], float(m["cx"]), float(m["cy"])) for m in OBJECT_RE.finditer(r["conversations"][1]["value"])
            ]
            if objs:
                out.append((d / r["image"], objs))
    return out


def pretrain_vision_tower(
    model_dir: str | Path,
    datasets: Sequence[str | Path],
    steps: int = 600,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the vision tower of the LLaVA in ``model_dir`` in place; returns loss and accuracy figures."""
    import numpy as np
    import torch
    from PIL import Image
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch.manual_seed(seed)
    model_dir = Path(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    tower = model.model.vision_tower
    vcfg = tower.config
    g = vcfg.image_size // vcfg.patch_size
    samples = box_samples(datasets)
    if not samples:
        raise ValueError("no detection records in the datasets: generate them with the 'detection' task kind")
    names = sorted({n for _, objs in samples for n, _, _ in objs})
    words = [n.split() for n in names]
    colors = sorted({w[0] for w in words if len(w) > 1})
    shapes = sorted({w[-1] for w in words})
    nc, ns = len(colors) + 1, len(shapes) + 1  # class 0: no object center in this patch / no colour
    head = torch.nn.Linear(vcfg.hidden_size, nc + ns + 4)
    grid = torch.stack(torch.meshgrid(torch.arange(g), torch.arange(g), indexing="xy"), -1).reshape(-1, 2)
    patch_xy = (grid.float() + 0.5) / g  # (g*g, 2): each patch's own center, normalized
    pixels = []
    targets = np.zeros((len(samples), g * g, 2), dtype=np.int64)
    offsets = np.zeros((len(samples), g * g, 2), dtype=np.float32)
    for i, (path, objs) in enumerate(samples):
        with Image.open(path) as im:
            pixels.append(processor.image_processor(im.convert("RGB"), return_tensors="pt")["pixel_values"][0])
        for name, cx, cy in objs:
            ix, iy = min(int(cx * g), g - 1), min(int(cy * g), g - 1)
            w = name.split()
            targets[i, iy * g + ix] = (colors.index(w[0]) + 1 if len(w) > 1 else 0, shapes.index(w[-1]) + 1)
            offsets[i, iy * g + ix] = (cx * g - ix - 0.5, cy * g - iy - 0.5)
    X = torch.stack(pixels)
    T, Off = torch.from_numpy(targets), torch.from_numpy(offsets)
    params = list(tower.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    wc, ws = torch.ones(nc), torch.ones(ns)
    wc[0] = ws[0] = 0.1  # most patches hold no object center
    tower.train()
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    losses = []
    for _ in tqdm(range(steps), desc="vision pretraining", disable=not progress):
        idx = torch.randint(0, len(X), (batch_size,), generator=gen)
        feats = tower(pixel_values=X[idx]).last_hidden_state[:, 1:]  # the patch tokens LLaVA projects
        out = head(feats)
        t = T[idx]
        ce = torch.nn.functional.cross_entropy
        loss = ce(out[..., :nc].reshape(-1, nc), t[..., 0].reshape(-1), weight=wc)
        loss = loss + ce(out[..., nc : nc + ns].reshape(-1, ns), t[..., 1].reshape(-1), weight=ws)
        m = t[..., 1] > 0
        loss = loss + 4 * torch.nn.functional.l1_loss(out[..., nc + ns : nc + ns + 2][m], Off[idx][m])
        loss = loss + 4 * torch.nn.functional.l1_loss(out[..., nc + ns + 2 :], patch_xy.expand(len(idx), -1, -1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss))
    tower.eval()
    with torch.no_grad():
        idx = torch.arange(min(len(X), 256))
        out = head(tower(pixel_values=X[idx]).last_hidden_state[:, 1:])
        t = T[idx]
        m = t[..., 1] > 0
        hit = (out[..., :nc].argmax(-1) == t[..., 0]) & (out[..., nc : nc + ns].argmax(-1) == t[..., 1])
        acc = float(hit[m].float().mean())
        off_err = float((out[..., nc + ns : nc + ns + 2][m] - Off[idx][m]).abs().mean()) / g
        pos_err = float((out[..., nc + ns + 2 :] - patch_xy).abs().mean())
    model.save_pretrained(model_dir, safe_serialization=True)
    return {
        "steps": steps,
        "images": len(samples),
        "colors": colors,
        "shapes": shapes,
        "final_loss": float(np.mean(losses[-20:])),
        "center_patch_accuracy": acc,
        "center_offset_error": off_err,
        "patch_position_error": pos_err,
        "seconds": time.perf_counter() - t0,
    }
