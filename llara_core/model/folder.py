"""A model folder: a Hugging Face checkpoint plus this package's sidecar files, every one read and written here.

Models load from local folders only. Beside the checkpoint's own files (config, weights, processor) a folder
may hold:

``llara_prompt.json``
    The prompt style (profile, end effector) of the data it was trained on; the policy prompts the same way.
    Written by training, LoRA merging and the LLaRA importer; absent: this project's default wording.
``llara_model.json``
    How the folder is finetuned further: ``{"finetune": "full"}`` for the tiny models this project builds
    (random weights that LoRA adapters cannot teach), ``"lora"`` otherwise. Written by the tiny builder and by
    full finetuning; ``llara train --lora/--no-lora`` overrides it. A folder without it is finetuned with LoRA,
    except one built by an older version of this package (it has ``llara_tiny_spec.json`` only): full.
``llara_tiny_spec.json``
    The :class:`~llara_core.model.tiny.TinySpec` a tiny model was built with (a record of its architecture).
``llara_base_model.txt``
    In a LoRA folder: the absolute path of the base model the adapter applies to (PEFT's own
    ``base_model_name_or_path`` holds whatever path training was given).
``vision_pretrained.json``
    The vision-tower pretraining figures, written last by ``tiny_with_pretrained_tower``: its presence means a
    finished tower, so a re-run resumes instead of starting over.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from llara_core.errors import UsageError
from llara_core.fileio import atomic_write_json
from llara_core.language.prompts import PromptStyle

log = logging.getLogger(__name__)

PROMPT_SETTINGS_FILE = "llara_prompt.json"
MODEL_SETTINGS_FILE = "llara_model.json"
TINY_SPEC_FILE = "llara_tiny_spec.json"
BASE_MODEL_FILE = "llara_base_model.txt"
VISION_DONE_FILE = "vision_pretrained.json"
Finetune = Literal["full", "lora"]


def check_model_folder(path: str | Path) -> Path:
    """A local model folder (a ``config.json``, or a LoRA folder's ``adapter_config.json``), else UsageError
    with one line naming it (models never download)."""
    folder = Path(path)
    if not folder.exists():
        raise UsageError(f"model folder {folder} does not exist (models load from local folders only)")
    if not folder.is_dir() or not ((folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()):
        raise UsageError(f"{folder} is not a model folder (no config.json or adapter_config.json)")
    return folder


def read_style(folder: Path) -> PromptStyle:
    """The prompt style of a model's training data (this project's default without ``llara_prompt.json``)."""
    path = folder / PROMPT_SETTINGS_FILE
    if not path.is_file():
        return PromptStyle()
    try:
        return PromptStyle.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid prompt settings file ({exc})") from exc


def write_style(folder: Path, style: PromptStyle) -> None:
    atomic_write_json(folder / PROMPT_SETTINGS_FILE, style.to_dict())


def read_finetune(folder: Path) -> Finetune:
    """How this folder is finetuned when the configuration does not say (see the module docstring)."""
    path = folder / MODEL_SETTINGS_FILE
    if path.is_file():
        try:
            value = json.loads(path.read_text()).get("finetune")
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a valid model settings file ({exc})") from exc
        if value not in ("full", "lora"):
            raise ValueError(f"{path}: 'finetune' must be 'full' or 'lora', got {value!r}")
        return value
    return "full" if (folder / TINY_SPEC_FILE).is_file() else "lora"


def write_finetune(folder: Path, finetune: Finetune) -> None:
    atomic_write_json(folder / MODEL_SETTINGS_FILE, {"finetune": finetune})


def write_tiny_spec(folder: Path, spec: dict[str, Any]) -> None:
    """Record a tiny model's architecture, and that it is finetuned in full."""
    atomic_write_json(folder / TINY_SPEC_FILE, spec)
    write_finetune(folder, "full")


def copy_training_sidecars(base: Path, out: Path, lora: bool, style: PromptStyle) -> None:
    """The sidecars a finetuned folder carries: its data's prompt style, and either its base (LoRA) or how it is
    finetuned next (full: as its base was)."""
    if lora:
        (out / BASE_MODEL_FILE).write_text(str(base.resolve()) + "\n")
    else:
        if (base / TINY_SPEC_FILE).is_file():
            atomic_write_json(out / TINY_SPEC_FILE, json.loads((base / TINY_SPEC_FILE).read_text()))
        write_finetune(out, "full")
    write_style(out, style)


def resolve_adapter(path: Path, adapter: str | Path | None) -> tuple[Path, Path | None]:
    """(base model folder, adapter folder or None) for a model folder or a LoRA output folder."""
    if adapter is not None:
        return path, Path(adapter)
    cfg = path / "adapter_config.json"
    if not cfg.is_file():
        return path, None
    hint = path / BASE_MODEL_FILE
    base = hint.read_text().strip() if hint.is_file() else json.loads(cfg.read_text()).get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise FileNotFoundError(f"{path} is a LoRA adapter whose base model {base!r} is not a local folder")
    return Path(base), path


def has_pretrained_tower(path: str | Path) -> bool:
    """Whether a finished vision-tower pretraining is recorded at ``path`` (its figures file is written last)."""
    return (Path(path) / VISION_DONE_FILE).is_file()


def write_vision_figures(folder: Path, figures: dict[str, Any]) -> None:
    atomic_write_json(folder / VISION_DONE_FILE, figures)


def read_vision_figures(folder: Path) -> dict[str, Any]:
    figures: dict[str, Any] = json.loads((folder / VISION_DONE_FILE).read_text())
    return figures
