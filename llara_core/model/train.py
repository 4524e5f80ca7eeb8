"""Supervised finetuning on LLaVA-format conversation datasets with the transformers ``Trainer``.

- the loss is on assistant tokens only (:mod:`llara_core.model.data`);
- task kinds are mixed by ratio; train/validation split by episode;
- LoRA (peft) on the language model's attention for pretrained bases, full
  finetuning for the tiny model (its weights start random: adapters alone
  cannot teach it);
- checkpoints every ``save_steps`` in ``OUT/checkpoints``; ``resume=True``
  continues from the newest one;
- ``--bf16``/``--fp16`` for GPUs; multi-GPU: ``accelerate launch -m llara_core.cli train …``
  (the Trainer picks up the distributed environment; only single-process is tested here).

The result is a model folder (weights or adapter, processor files) plus
``train_metrics.json``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from llara_core.model.data import ConversationDataset, collate, mix_records, split_by_episode

# The language model's attention in every family (LLaVA: language_model, Idefics3: text_model, Qwen2-VL:
# language_model) but not the vision tower's, whose CLIP/SigLIP layers use the same q/k/v/o names.
LORA_TARGET = r"^(?!.*(?:vision|visual)).*\.(?:q_proj|k_proj|v_proj|o_proj)$"
# The image-to-text projector, trained in full next to the adapters (LLaVA, Idefics3, Qwen2-VL names).
PROJECTORS = ("multi_modal_projector", "connector", "merger")
VISION_TOWERS = ("vision_tower", "vision_model", "visual")


@dataclass
class TrainConfig:
    """What ``llara train`` exposes. ``mix`` maps task kind -> ratio to the number of demonstration steps."""

    epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_ratio: float = 0.03
    # "cosine", or "wsd": warmup, constant, then a cosine decay over the last ``decay_ratio`` of the steps.
    # The tiny model finds the named object late; a cosine schedule has already lowered the rate by then.
    schedule: str = "cosine"
    decay_ratio: float = 0.2
    weight_decay: float = 0.0
    mix: dict[str, float] | None = None
    val_fraction: float = 0.05
    lora: bool | None = None  # None: LoRA unless the base is a tiny model built by this project
    lora_r: int = 16
    lora_alpha: int = 32
    freeze_vision: bool = False  # keep a pretrained vision tower as it is (LLaVA's stage 2 does)
    # Batches of similar length (the Trainer's length-grouped sampler): less padding, but each batch is then
    # mostly one task kind. Off by default: the one run with it (also at batch 8) stalled at loss 0.92 where
    # random batches of 16 were at 0.74 after the same samples; which of the two changes did it is untested.
    group_by_length: bool = False
    cache_mb: float = 2048  # encoded examples kept in memory up to this many MB of pixels (ConversationDataset)
    save_steps: int = 200
    eval_steps: int = 200
    logging_steps: int = 10
    seed: int = 0
    bf16: bool = False
    fp16: bool = False
    resume: bool = False
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def bf16_is_fast() -> bool:
    """Whether this machine has bfloat16 matrix units (CUDA, or x86 AMX / AVX512-BF16).

    Where it has, bf16 autocast trains the tiny model ~1.5× faster on the CPU
    (0.33 vs 0.50 s a step of 16 here, AMX); where it has not, bf16 on the CPU
    is emulated and slower than fp32. Linux reads /proc/cpuinfo; elsewhere: no.
    """
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def load_records(datasets: Sequence[str | Path]) -> tuple[list[dict[str, Any]], list[Path]]:
    """Read and validate every dataset folder; each record remembers its folder (``_root``)."""
    from llara_core.conversations import read_dataset

    roots = [Path(d) for d in datasets]
    records = []
    for i, root in enumerate(roots):
        for r in read_dataset(root):
            records.append({**r, "_root": i, "id": f"{i}:{r['id']}" if len(roots) > 1 else r["id"]})
    return records, roots


def _atomic_save(out: Path, save: Any) -> None:
    """Save into a temporary folder beside ``out``'s files, then move each file in (no half-written model)."""
    tmp = out / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save(tmp)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()


def _vision_tower(model: Any) -> Any:
    """The vision tower of a (possibly PEFT-wrapped) image-text-to-text model."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(inner, "model", inner)
    for name in VISION_TOWERS:
        if getattr(body, name, None) is not None:
            return getattr(body, name)
    raise ValueError(f"{type(inner).__name__} has no vision tower ({', '.join(VISION_TOWERS)}) to freeze")


def train(
    datasets: Sequence[str | Path], base_model: str | Path, out: str | Path, config: TrainConfig | None = None
) -> dict[str, Any]:
    """Finetune ``base_model`` on ``datasets``; write the model and ``train_metrics.json`` into ``out``."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, Trainer, TrainingArguments, set_seed

    cfg = config or TrainConfig()
    if cfg.schedule not in ("cosine", "wsd"):
        raise ValueError(f"schedule must be 'cosine' or 'wsd', not {cfg.schedule!r}")
    if not 0 < cfg.decay_ratio <= 1:
        raise ValueError(f"decay_ratio must be in (0, 1], not {cfg.decay_ratio}")
    set_seed(cfg.seed)
    base, out = Path(base_model), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    processor = AutoProcessor.from_pretrained(base, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(
        base, local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    is_tiny = (base / "llara_tiny_spec.json").is_file()
    use_lora = (not is_tiny) if cfg.lora is None else cfg.lora
    if use_lora:
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=0.05,
            target_modules=LORA_TARGET,
            modules_to_save=sorted({n.rsplit(".", 1)[-1] for n, _ in model.named_modules()} & set(PROJECTORS)),
        )
        model = get_peft_model(model, lcfg)

    if cfg.freeze_vision:
        for p in _vision_tower(model).parameters():
            p.requires_grad_(False)

    records, roots = load_records(datasets)
    train_recs, val_recs = split_by_episode(records, cfg.val_fraction, cfg.seed)
    train_recs = mix_records(train_recs, cfg.mix, cfg.seed)
    if cfg.mix:  # validate on the kinds being trained, not on kinds the mixture leaves out
        val_recs = [r for r in val_recs if cfg.mix.get(r.get("task", ""), 0) > 0]
    if not train_recs:
        raise ValueError("no training records after the split and the mixture")
    train_ds = ConversationDataset(train_recs, roots, processor, cfg.cache_mb)
    val_ds = ConversationDataset(val_recs, roots, processor, cfg.cache_mb / 10) if val_recs else None
    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * steps_per_epoch)
    schedule_kwargs = {"num_decay_steps": max(1, round(cfg.decay_ratio * total_steps))} if cfg.schedule == "wsd" else {}
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=max(0, round(cfg.warmup_ratio * total_steps)),
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="warmup_stable_decay" if cfg.schedule == "wsd" else "cosine",
        lr_scheduler_kwargs=schedule_kwargs,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if val_ds else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        seed=cfg.seed,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not cfg.progress,
        use_cpu=not torch.cuda.is_available(),
        label_names=["labels"],
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,  # type: ignore[arg-type]
        eval_dataset=val_ds,  # type: ignore[arg-type]
        data_collator=partial(collate, pad_id=processor.tokenizer.pad_token_id),
    )
    ckpts = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    resume_from = str(ckpts[-1]) if cfg.resume and ckpts else None
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "base_model": str(base),
        "datasets": [str(r) for r in roots],
        "lora": use_lora,
        "train_records": len(train_ds),
        "val_records": len(val_ds) if val_ds else 0,
        "train_counts": train_ds.counts(),
        "steps": result.global_step,
        "resumed_from": resume_from,
        "train_loss": result.training_loss,
        "seconds": seconds,
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "log": [e for e in trainer.state.log_history if "loss" in e or "eval_loss" in e],
    }
    if val_ds:
        metrics["eval_loss"] = trainer.evaluate()["eval_loss"]

    def save(tmp: Path) -> None:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        if is_tiny and not use_lora:
            shutil.copy(base / "llara_tiny_spec.json", tmp / "llara_tiny_spec.json")
        if use_lora:
            (tmp / "llara_base_model.txt").write_text(str(base.resolve()) + "\n")

    _atomic_save(out, save)
    from llara_core.conversations import atomic_write_json

    atomic_write_json(out / "train_metrics.json", metrics)
    return metrics


def metrics_summary(metrics: dict[str, Any]) -> str:
    """One line for the CLI."""
    return json.dumps({k: metrics[k] for k in ("steps", "train_loss", "eval_loss", "seconds") if k in metrics})
