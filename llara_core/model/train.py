"""Supervised finetuning on LLaVA-format conversation datasets with the transformers ``Trainer``.

- the loss is on assistant tokens only (:mod:`llara_core.model.data`);
- task kinds are mixed by ratio; train/validation split by episode;
- LoRA (peft) on the language model's attention for pretrained bases, full
  finetuning for the tiny model (its weights start random: adapters alone
  cannot teach it);
- checkpoints every ``save_steps`` in ``OUT/checkpoints``; ``resume=True``
  continues from the newest one;
- ``--bf16``/``--fp16`` for GPUs; multi-GPU: ``accelerate launch -m llara_core.apps.cli train …``
  (the Trainer picks up the distributed environment; only single-process is tested here).

The result is a model folder (weights or adapter, processor files) plus
``train_metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from llara_core.config import check_choices, setting, to_dict
from llara_core.datasets.mixing import kinds_of, mix_records, split_by_episode, take
from llara_core.datasets.records import record_episode
from llara_core.language.prompts import PromptStyle
from llara_core.model.data import ConversationDataset, collate
from llara_core.model.folder import copy_training_sidecars, read_finetune, write_style

# The language model's attention in every family (LLaVA: language_model, Idefics3: text_model, Qwen2-VL:
# language_model) but not the vision tower's, whose CLIP/SigLIP layers use the same q/k/v/o names.
LORA_TARGET = r"^(?!.*(?:vision|visual)).*\.(?:q_proj|k_proj|v_proj|o_proj)$"
# The image-to-text projector, trained in full next to the adapters (LLaVA, Idefics3, Qwen2-VL names).
PROJECTORS = ("multi_modal_projector", "connector", "merger")
VISION_TOWERS = ("vision_tower", "vision_model", "visual")


@dataclass(frozen=True)
class TrainConfig:
    """What ``llara train`` exposes (flags, YAML keys): schedule, mixture, adapters, precision, checkpoints."""

    epochs: float = setting(3.0, "passes over the (mixed) training records")
    max_steps: int = setting(-1, "optimizer steps; overrides epochs when > 0")
    batch_size: int = setting(8, "examples per device and step")
    grad_accum: int = setting(1, "steps whose gradients are accumulated before an update")
    lr: float = setting(1e-3, "peak learning rate")
    warmup_ratio: float = setting(0.03, "share of the steps spent warming the rate up")
    # The tiny model finds the named object late; a cosine schedule has already lowered the rate by then.
    schedule: Literal["cosine", "wsd", "plateau"] = setting(
        "cosine",
        "learning rate: cosine decay, wsd (warmup, constant, cosine decay over the last decay_ratio), or plateau "
        "(constant, halved after two validations without improvement: for early stopping, where the end is unknown)",
    )
    decay_ratio: float = setting(0.2, "wsd: share of the steps spent decaying")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    mix: dict[str, float] | None = setting(
        None,
        "task kinds and their ratio to the number of demonstration steps, e.g. inbc=1,localization=0.5 "
        "(kinds not named are dropped; unset: the dataset as it is)",
    )
    val_fraction: float = setting(0.05, "share of the episodes held out for validation")
    val_kinds: tuple[str, ...] = setting(
        (),
        "task kinds the validation loss is computed on (empty: every kind trained), e.g. d_inbc alone to judge "
        "the main task while auxiliary kinds are trained beside it",
    )
    early_stopping_patience: int = setting(
        0, "stop after this many validations without improvement and keep the best checkpoint (0: off)"
    )
    early_stopping_threshold: float = setting(
        0.0,
        "a validation counts as an improvement only when it beats the best by more than this (e.g. 0.005 of token "
        "accuracy: on a small validation set a few tokens' noise would otherwise reset the patience)",
    )
    # The loss on a small validation set bottoms out while the policy is still useless: once the answers are mostly
    # right, a few confident wrong digits raise it (the first ablation model stopped there at 0-2 % success). The
    # share of answer tokens predicted right (TRL's mean_token_accuracy) keeps rising as long as the answers improve.
    val_metric: Literal["loss", "token_accuracy"] = setting(
        "loss",
        "what early stopping and the plateau schedule judge: the validation loss, or token_accuracy (share of answer "
        "tokens the model predicts right given the tokens before, higher is better)",
    )
    lora: bool | None = setting(
        None,
        "LoRA adapters on the language model's attention (unset: what the model folder records in "
        "llara_model.json — full finetuning for tiny models built by this project, whose random weights adapters "
        "cannot teach —, LoRA when it records nothing)",
    )
    lora_r: int = setting(16, "LoRA rank")
    lora_alpha: int = setting(32, "LoRA scaling")
    freeze_vision: bool = setting(False, "keep the vision tower as it is (e.g. after pretrain-vision; LLaVA stage 2)")
    # Off by default: the one run with it (also at batch 8) stalled at loss 0.92 where random batches of 16 were at
    # 0.74 after the same samples; which of the two changes did it is untested.
    group_by_length: bool = setting(False, "batches of similar length (less padding, but each batch mostly one kind)")
    cache_mb: float = setting(2048.0, "encoded examples kept in memory up to this many MB of pixels")
    save_steps: int = setting(200, "steps between checkpoints in OUT/checkpoints")
    eval_steps: int = setting(200, "steps between validation losses")
    logging_steps: int = setting(10, "steps between log lines")
    seed: int = setting(0, "seed of the split, the mixture, the shuffling and the weights")
    gradient_checkpointing: bool = setting(
        False, "recompute activations in the backward pass: less memory for ~30 % more time (7B bases on one GPU)"
    )
    bf16: bool = setting(False, "bfloat16 autocast (GPUs; CPUs with AMX or AVX512-BF16)")
    fp16: bool = setting(False, "float16 autocast (GPUs)")
    resume: bool = setting(False, "continue from the newest checkpoint in OUT/checkpoints")
    progress: bool = setting(True, "progress bars")

    def __post_init__(self) -> None:
        check_choices(self)
        if not 0 < self.decay_ratio <= 1:
            raise ValueError(f"decay_ratio must be in (0, 1], not {self.decay_ratio}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.save_steps < 1 or self.eval_steps < 1:
            raise ValueError("batch_size, grad_accum, save_steps and eval_steps must be >= 1")
        if self.lr <= 0 or self.epochs <= 0:
            raise ValueError("lr and epochs must be > 0")
        if self.bf16 and self.fp16:
            raise ValueError("choose bf16 or fp16, not both")
        if self.mix is not None:
            from llara_core.datasets.records import check_kinds

            check_kinds(list(self.mix))
        if self.val_kinds:
            from llara_core.datasets.records import check_kinds

            check_kinds(list(self.val_kinds))
        if self.early_stopping_patience < 0 or self.early_stopping_threshold < 0:
            raise ValueError("early_stopping_patience and early_stopping_threshold must be >= 0")
        if (self.early_stopping_patience or self.schedule == "plateau") and self.val_fraction == 0:
            raise ValueError("early_stopping_patience and schedule plateau need validation episodes (val_fraction > 0)")

    def train_config(self) -> TrainConfig:
        """The configuration :func:`train` runs (a :class:`FinetuneConfig` fills in its recipe)."""
        return self


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """``llara finetune``: adapt a trained model (the shipped one, your own) to new demonstrations.

    The defaults are the model card's finetuning recipe scaled to a lab's
    handful of recordings: the tower frozen (it already reads objects; a few
    episodes would only unteach it), the kinds the model learned to act from
    (inBC, D-inBC, localization — with all eight kinds a trained model's loss
    jumps to ~10 on the first step), a learning rate 50× below training's so a
    short run adapts instead of overwriting (measured, 50 steps on ten recorded
    episodes, 100 held-out seeds: 2e-5 kept 91/100, 5e-5 gave 89, 2e-4 gave 84), and a step count that fits ten
    episodes on a CPU in minutes.
    """

    max_steps: int = setting(100, "optimizer steps (about 10 passes over ten recorded episodes)")
    lr: float = setting(2e-5, "peak learning rate (training from scratch used 1e-3)")
    warmup_ratio: float = setting(0.1, "share of the steps spent warming the rate up")
    mix: dict[str, float] | None = setting(
        None,
        "task kinds and their ratio to the number of demonstration steps (unset: inbc=1,d_inbc=1,"
        "localization=1, the kinds the model acts from; kinds the data lacks are left out)",
    )
    val_fraction: float = setting(0.1, "share of the episodes held out for validation")
    freeze_vision: bool = setting(True, "keep the vision tower as it is (it already reads the objects)")
    save_steps: int = setting(50, "steps between checkpoints in OUT/checkpoints")
    eval_steps: int = setting(50, "steps between validation losses")

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` that :func:`train` runs, with the recipe's mix where none was given."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        if self.mix is None:
            fields["mix"] = {"inbc": 1.0, "d_inbc": 1.0, "localization": 1.0}
        return TrainConfig(**fields)


def check_output(base_model: str | Path, out: str | Path, overwrite: bool = False) -> None:
    """Refuse an ``out`` that would overwrite a model in place, unless ``overwrite``.

    ``--out`` equal to ``--model`` (or inside it, or holding it) replaces the
    weights being trained from, and the shipped models under the package's
    ``models/`` are what the demo and the tests run: both only on purpose.
    """
    from llara_core.errors import UsageError
    from llara_core.resources import resource_path

    if overwrite:
        return
    base, dest = Path(base_model).resolve(), Path(out).resolve()
    if dest == base or base in dest.parents or dest in base.parents:
        raise UsageError(f"--out {out} would overwrite the model being trained from ({base_model}): "
                         "choose a new folder, or pass --overwrite")  # fmt: skip
    try:
        shipped = resource_path("models").resolve()
    except FileNotFoundError:  # an install without the demo model
        return
    if dest == shipped or shipped in dest.parents:
        raise UsageError(f"--out {out} is inside this package's shipped models ({shipped}): "
                         "choose another folder, or pass --overwrite")  # fmt: skip


def load_checkpoint_weights(model: Any, checkpoint: str | Path) -> None:
    """Put a checkpoint's weights into ``model`` through the model class's own key mapping, strictly.

    Why not the Trainer's loader: ``save_pretrained`` writes LLaVA checkpoints in
    the legacy key layout (``language_model.model.*``) that transformers 5
    converts back only inside ``from_pretrained``; the Trainer's resume path
    loads the raw state dict non-strictly, so no key matched and training went
    on from the untrained weights with only a warning. Here the checkpoint is
    loaded by ``from_pretrained`` and any missing or unexpected key is an error.
    LoRA checkpoints (adapter files) keep the Trainer's peft path.
    """
    ckpt = Path(checkpoint)
    loaded, info = type(model).from_pretrained(
        ckpt, local_files_only=True, use_safetensors=True, output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise ValueError(f"checkpoint {ckpt} does not fit the model: {bad}")
    model.load_state_dict(loaded.state_dict(), strict=True)


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


def load_records(datasets: Sequence[str | Path]) -> tuple[Any, list[Path], PromptStyle]:
    """Index and validate every dataset; records are read from disk when training asks for them.

    A dataset is a folder this package wrote (its JSONL shards are indexed by
    byte offset: memory does not grow with the record count), or
    ``FILE.json[=IMAGE_ROOT]`` / ``FILE.jsonl[=IMAGE_ROOT]`` (a released
    LLaVA-format file such as LLaRA's, read as it is). Each record carries
    ``_root`` (its image root's index). The datasets must share one prompt
    style, which is returned for the model folder.
    """
    from llara_core.datasets.index import index_datasets
    from llara_core.datasets.reader import common_style

    records, roots = index_datasets(datasets)
    return records, roots, common_style({str(spec): st for spec, st in zip(datasets, records.styles, strict=True)})


def _atomic_save(out: Path, save: Any) -> None:
    """Save into a temporary folder beside ``out``'s files, then move each file in (no half-written model)."""
    tmp = out / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save(tmp)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()


def merge_lora(lora: str | Path, out: str | Path) -> Path:
    """A full model folder from a LoRA folder of ``llara train``: the adapter merged into its base.

    What servers without PEFT's ``modules_to_save`` need (vLLM's ``--lora-modules``
    loads only the attention adapters, not the projector trained in full beside
    them). The prompt settings travel along; writes are atomic per file.
    """
    from llara_core.errors import UsageError
    from llara_core.model.runtime import VLMPolicy

    src, out = Path(lora), Path(out)
    if not (src / "adapter_config.json").is_file():
        raise UsageError(f"{src} is not a LoRA folder (no adapter_config.json)")
    policy = VLMPolicy.from_pretrained(src)
    out.mkdir(parents=True, exist_ok=True)

    def save(tmp: Path) -> None:
        policy.model.save_pretrained(tmp, safe_serialization=True)
        policy.processor.save_pretrained(tmp)
        write_style(tmp, policy.style)

    _atomic_save(out, save)
    return out


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
    from transformers import (
        AutoModelForImageTextToText,
        AutoProcessor,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    cfg = config or TrainConfig()
    set_seed(cfg.seed)
    base, out = Path(base_model), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    processor = AutoProcessor.from_pretrained(base, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(
        base, local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    use_lora = read_finetune(base) == "lora" if cfg.lora is None else cfg.lora
    if use_lora:
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=0.05,
            target_modules=LORA_TARGET,
            modules_to_save=sorted({n.rsplit(".", 1)[-1] for n, _ in model.named_modules()} & set(PROJECTORS)),
        )
        if cfg.gradient_checkpointing:  # frozen embeddings: the checkpointed blocks need inputs that carry grad
            model.enable_input_require_grads()
        model = get_peft_model(model, lcfg)  # type: ignore[assignment]  # a PeftModel wraps the same forward

    if cfg.freeze_vision:
        for p in _vision_tower(model).parameters():
            p.requires_grad_(False)

    records, roots, prompting = load_records(datasets)  # refused before training when their wording differs
    train_recs, val_recs = split_by_episode(records, cfg.val_fraction, cfg.seed)
    train_recs = mix_records(train_recs, cfg.mix, cfg.seed)
    if cfg.val_kinds:  # e.g. the main task alone, while auxiliary kinds train beside it
        val_recs = take(val_recs, [i for i, k in enumerate(kinds_of(val_recs)) if k in cfg.val_kinds])
    elif cfg.mix:  # validate on the kinds being trained, not on kinds the mixture leaves out
        val_recs = take(val_recs, [i for i, k in enumerate(kinds_of(val_recs)) if cfg.mix.get(k, 0) > 0])
    if cfg.early_stopping_patience and not val_recs:
        raise ValueError("early_stopping_patience: no validation records of the validated kinds after the split")
    if not train_recs:
        raise ValueError("no training records after the split and the mixture")
    train_ds = ConversationDataset(train_recs, roots, processor, cfg.cache_mb)
    val_ds = ConversationDataset(val_recs, roots, processor, cfg.cache_mb / 10) if val_recs else None
    steps_per_epoch = math.ceil(len(train_ds) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * steps_per_epoch)
    schedule_kwargs: dict[str, Any] = {}
    if cfg.schedule == "wsd":
        schedule_kwargs = {"num_decay_steps": max(1, round(cfg.decay_ratio * total_steps))}
    elif cfg.schedule == "plateau":
        schedule_kwargs = {"factor": 0.5, "patience": 1}
    on_validation = bool(cfg.early_stopping_patience) or cfg.schedule == "plateau"  # both read the metric
    accuracy = cfg.val_metric == "token_accuracy"
    if cfg.schedule == "plateau":
        schedule_kwargs["mode"] = "max" if accuracy else "min"
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
        lr_scheduler_type={"wsd": "warmup_stable_decay", "plateau": "reduce_lr_on_plateau"}.get(cfg.schedule, "cosine"),
        lr_scheduler_kwargs=schedule_kwargs,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if val_ds else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        # early stopping keeps the best checkpoint: one is saved at every validation
        save_steps=cfg.eval_steps if cfg.early_stopping_patience else cfg.save_steps,
        metric_for_best_model=f"eval_{cfg.val_metric}" if on_validation else None,
        greater_is_better=accuracy if on_validation else None,
        restore_callback_states_from_checkpoint=bool(cfg.early_stopping_patience),  # patience survives a resume
        save_total_limit=2,
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        seed=cfg.seed,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=not cfg.progress,
        use_cpu=not torch.cuda.is_available(),
        label_names=["labels"],
    )

    class CheckpointTrainer(Trainer):
        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            target = model if model is not None else self.model
            if (Path(resume_from_checkpoint) / "model.safetensors").is_file() and hasattr(target, "config"):
                load_checkpoint_weights(target, resume_from_checkpoint)
            else:  # a LoRA checkpoint (adapter weights): peft's own loader, which maps its keys
                super()._load_from_checkpoint(resume_from_checkpoint, model)

        def _load_callback_state(self) -> None:
            """A resume keeps the patience counter but applies this run's patience and threshold (transformers
            rebuilds the callback from the checkpoint's arguments, so a changed setting would be ignored)."""
            super()._load_callback_state()
            for cb in self.callback_handler.callbacks:
                if isinstance(cb, EarlyStoppingCallback):
                    cb.early_stopping_patience = cfg.early_stopping_patience
                    cb.early_stopping_threshold = cfg.early_stopping_threshold

        def prediction_step(
            self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: Any = None
        ) -> tuple[Any, Any, Any]:
            """For token accuracy, the argmax tokens alone: the Trainer would gather every output beside the logits
            (a VLM's cache and vision outputs, which accelerate cannot pad) and keep vocabulary-wide logits."""
            if not accuracy or prediction_loss_only:
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
            return loss.detach().mean(), outputs["logits"].argmax(-1), inputs["labels"]

    trainer = CheckpointTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=partial(collate, pad_id=processor.tokenizer.pad_token_id),
        callbacks=[EarlyStoppingCallback(cfg.early_stopping_patience, cfg.early_stopping_threshold)]
        if cfg.early_stopping_patience
        else None,
        compute_metrics=answer_token_accuracy if accuracy else None,
    )
    ckpts = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    resume_from = str(ckpts[-1]) if cfg.resume and ckpts else None
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    best = trainer.state.best_model_checkpoint if cfg.early_stopping_patience else None
    if best and Path(best).is_dir():  # the weights of the best validation loss, through the same loader as resume
        trainer._load_from_checkpoint(best)
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
        "best_checkpoint": best,
        "val_metric": cfg.val_metric,
        "best_metric": trainer.state.best_metric if cfg.early_stopping_patience else None,
        # the held-out episodes (ids as load_records gives them, "<dataset index>:<episode>"), so a caller probing
        # them cannot drift from this split
        "val_episodes": sorted({record_episode(val_recs[i]["id"]) for i in range(len(val_recs))}),
        "seconds": seconds,
        "config": {k: v for k, v in to_dict(cfg).items() if k != "progress"},
        "log": [e for e in trainer.state.log_history if "loss" in e or "eval_loss" in e],
    }
    if val_ds:
        final = trainer.evaluate()
        metrics.update({k: final[k] for k in ("eval_loss", "eval_token_accuracy") if k in final})

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)  # the Trainer trains this object in place
        processor.save_pretrained(tmp)
        copy_training_sidecars(base, tmp, use_lora, prompting)

    metrics["world_size"] = args.world_size
    if trainer.is_world_process_zero():  # under torchrun / accelerate launch: one writer (the Trainer's checkpoints
        _atomic_save(out, save)  # are rank 0's too); every rank has the same weights after DDP's all-reduce
        from llara_core.fileio import atomic_write_json

        atomic_write_json(out / "train_metrics.json", metrics)
    trainer.accelerator.wait_for_everyone()  # no rank returns (and reads the folder) before it is written
    return metrics


def answer_token_accuracy(pred: Any) -> dict[str, float]:
    """Share of answer tokens (labels not -100) predicted right from the tokens before them (next-token shift)."""
    import numpy as np

    tokens, labels = np.asarray(pred.predictions)[:, :-1], np.asarray(pred.label_ids)[:, 1:]
    scored = labels != -100
    return {"token_accuracy": float((tokens[scored] == labels[scored]).mean()) if scored.any() else 0.0}


def metrics_summary(metrics: dict[str, Any]) -> str:
    """One line for the CLI."""
    keys = ("steps", "train_loss", "eval_loss", "eval_token_accuracy", "seconds")
    return json.dumps({k: metrics[k] for k in keys if k in metrics})
