"""``llara import-llava``: an original-format LLaVA-1.5 checkpoint (LLaRA's released policies) -> llava-hf folder.

LLaRA's authors released LLaVA-1.5-7B policies in the original LLaVA layout
(``LlavaLlamaForCausalLM``, ``model.mm_projector.*``, the CLIP tower loaded from
``openai/clip-vit-large-patch14-336`` or saved under ``model.vision_tower.*``).
``VLMPolicy`` loads llava-hf's ``LlavaForConditionalGeneration``; this module
converts offline:

1. tensors (safetensors shards or ``pytorch_model*.bin``) renamed with the key
   mapping of transformers' own LLaVA converter — ``KEYS_TO_MODIFY_MAPPING`` in
   ``src/transformers/models/llava/convert_llava_weights_to_hf.py`` (transformers
   4.x; transformers 5 no longer ships the script, so the table is copied below
   and cited) — into llava-hf's layout;
2. loaded with ``from_pretrained``, whose own checkpoint-conversion rules map
   that layout onto transformers 5's, with every key accounted for: a key the
   source lacks, or one nobody expects, is an error naming it (never a random
   weight);
3. the tokenizer gets ``<image>`` and ``<pad>`` and the vocabulary is resized to
   a multiple of 64, as llava-hf did; the new rows are the mean embedding
   (deterministic; llava-hf sampled them around it — neither row is ever
   predicted: ``<image>`` is replaced by image features, ``<pad>`` is masked);
4. the processor: LLaVA's "pad to square" with the CLIP mean (``do_pad``), 336 px
   (the tower's size), and the Vicuna v1 chat template LLaRA trained with;
5. ``llara_prompt.json`` says the model speaks the ``llara`` prompt profile.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llara_core.errors import LlaraError
from llara_core.language.prompts import VICUNA_V1_SYSTEM, PromptStyle
from llara_core.model.folder import write_style

# transformers' convert_llava_weights_to_hf.KEYS_TO_MODIFY_MAPPING (applied in order, each to every key).
KEYS_TO_MODIFY_MAPPING = {
    "model.vision_tower.": "",
    ".vision_resampler": "",
    "model.mm_projector": "multi_modal_projector",
    "model": "model.model",
    "vision_model.model": "vision_model",
    "lm_head": "language_model.lm_head",
    "model.model": "language_model.model",
    "multi_modal_projector.0": "multi_modal_projector.linear_1",
    "multi_modal_projector.2": "multi_modal_projector.linear_2",
}

#: LLaVA's conv_vicuna_v1 (SeparatorStyle.TWO) for one image: "SYSTEM USER: <image>\n… ASSISTANT: …</s>".
VICUNA_V1_TEMPLATE = (
    "{% for message in messages %}{% if loop.first %}" + VICUNA_V1_SYSTEM + " {% endif %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for c in message['content'] %}{{ c['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


class CheckpointError(LlaraError, ValueError):
    """The source is not a complete original-format LLaVA-1.5 checkpoint; the message says what is missing."""


def to_llava_hf_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Original LLaVA names -> llava-hf's (transformers' converter mapping); rotary caches and position ids dropped."""
    out = {}
    for key, value in state.items():
        if key.endswith((".inv_freq", "position_ids")) or key == "model.image_newline":
            continue
        for old, new in KEYS_TO_MODIFY_MAPPING.items():
            if old in key:
                key = key.replace(old, new)
        out[key] = value
    return out


def load_tensors(folder: Path) -> dict[str, Any]:
    """Every tensor of a checkpoint folder: ``*.safetensors`` shards, else ``pytorch_model*.bin``."""
    import torch
    from safetensors.torch import load_file

    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        state: dict[str, Any] = {}
        for f in shards:
            state.update(load_file(str(f)))
        return state
    bins = sorted(folder.glob("pytorch_model*.bin")) or sorted(folder.glob("*.bin"))
    if not bins:
        raise CheckpointError(f"{folder}: no *.safetensors or pytorch_model*.bin weights")
    state = {}
    for f in bins:
        state.update(torch.load(f, map_location="cpu", weights_only=True))
    return state


def _vision_config(state: dict[str, Any], clip: Path | None) -> Any:
    """The tower's config: the CLIP folder's, else read off the tensors saved inside the checkpoint."""
    from transformers import CLIPVisionConfig

    if clip is not None:
        data = json.loads((clip / "config.json").read_text())
        return CLIPVisionConfig(**data.get("vision_config", data))
    pre = "model.vision_tower.vision_tower.vision_model."
    try:
        patch = state[pre + "embeddings.patch_embedding.weight"]
        positions = state[pre + "embeddings.position_embedding.weight"].shape[0]
        fc1 = state[pre + "encoder.layers.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise CheckpointError(f"no vision tower: the checkpoint has no {exc.args[0]!r}; give the CLIP folder "
                           "(openai/clip-vit-large-patch14-336) with --clip") from exc  # fmt: skip
    # Heads cannot be read off the tensors: head size 64, as in every OpenAI CLIP ViT-B/L tower LLaVA-1.5 used.
    hidden, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    layers = len({k.split(".")[6] for k in state if k.startswith(pre + "encoder.layers.")})
    return CLIPVisionConfig(hidden_size=hidden, intermediate_size=int(fc1.shape[0]), num_hidden_layers=layers,
                            num_attention_heads=max(1, hidden // 64), patch_size=patch_size,
                            image_size=patch_size * math.isqrt(positions - 1))  # fmt: skip


def _text_config(cfg: dict[str, Any]) -> Any:
    from transformers import LlamaConfig

    known = set(LlamaConfig().to_dict())
    skip = {"architectures", "model_type", "_name_or_path", "transformers_version", "torch_dtype", "dtype"}
    return LlamaConfig(**{k: v for k, v in cfg.items() if k in known and k not in skip and not k.startswith("mm_")})


def import_llava(src: str | Path, out: str | Path, clip: str | Path | None = None) -> Path:
    """Convert an original-format LLaVA-1.5 folder (+ the CLIP folder when the tower is not inside) into ``out``."""
    import torch
    from transformers import AddedToken, AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    src, out = Path(src), Path(out)
    clip_dir = Path(clip) if clip else None
    cfg_path = src / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{src}: no config.json")
    cfg = json.loads(cfg_path.read_text())
    arch = cfg.get("architectures") or []
    if cfg.get("model_type") not in ("llava_llama", "llava") and "LlavaLlamaForCausalLM" not in arch:
        raise CheckpointError(
            f"{src}: model_type {cfg.get('model_type')!r} ({arch}) is not an original LLaVA checkpoint"
        )
    if cfg.get("mm_projector_type", "linear") != "mlp2x_gelu":
        raise CheckpointError(f"{src}: projector {cfg.get('mm_projector_type', 'linear')!r}; LLaVA-1.5's is mlp2x_gelu")
    state = load_tensors(src)
    if not any(k.startswith("model.vision_tower.") for k in state):
        if clip_dir is None:
            raise CheckpointError(f"{src} holds no vision tower: give the CLIP ViT-L/14-336 folder with --clip")
        state.update({f"model.vision_tower.vision_tower.{k}": v for k, v in load_tensors(clip_dir).items()
                      if k.startswith("vision_model.")})  # fmt: skip
    vision = _vision_config(state, clip_dir)
    if "lm_head.weight" not in state and "model.embed_tokens.weight" in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()  # tied in the source
    text = _text_config(cfg)
    hf = to_llava_hf_keys(state)

    tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True)
    tokenizer.add_tokens(AddedToken("<image>", special=True, normalized=False), special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
    vocab = int(text.vocab_size)
    padded = math.ceil(len(tokenizer) / 64) * 64
    for key in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        if key not in hf:
            continue  # reported as missing below
        rows = hf[key]
        if rows.shape[0] != vocab:
            raise CheckpointError(f"{key} has {rows.shape[0]} rows, config.json says vocab_size {vocab}")
        extra = rows.float().mean(0, keepdim=True).to(rows.dtype).expand(padded - vocab, -1)
        hf[key] = torch.cat([rows, extra], 0)
    text.vocab_size = padded
    n_patches = (vision.image_size // vision.patch_size) ** 2
    select: Any = "default" if cfg.get("mm_vision_select_feature", "patch") == "patch" else "full"
    image_id: Any = tokenizer.convert_tokens_to_ids("<image>")
    config = LlavaConfig(text_config=text, vision_config=vision, projector_hidden_act="gelu",
                         image_token_index=image_id,
                         vision_feature_layer=cfg.get("mm_vision_select_layer", -2),
                         vision_feature_select_strategy=select, image_seq_length=n_patches)  # fmt: skip
    config.pad_token_id = tokenizer.pad_token_id

    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        save_file({k: v.contiguous() for k, v in hf.items()}, f"{tmp}/model.safetensors")
        config.save_pretrained(tmp)
        loaded: Any = LlavaForConditionalGeneration.from_pretrained(tmp, output_loading_info=True)
    model, info = loaded
    problems = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(problems.values()):
        said = "; ".join(
            f"{k.replace('_', ' ')}: {v[:8]}{' …' if len(v) > 8 else ''}" for k, v in problems.items() if v
        )
        raise CheckpointError(f"{src} is incomplete or not LLaVA-1.5: {said}")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaProcessor(
        image_processor=LlavaImageProcessorPil(
            do_pad=True, size={"shortest_edge": vision.image_size},
            crop_size={"height": vision.image_size, "width": vision.image_size},
        ),
        tokenizer=tokenizer, patch_size=vision.patch_size, vision_feature_select_strategy=select,
        chat_template=VICUNA_V1_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    staging = out.with_name(f".{out.name}.importing")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    processor.save_pretrained(staging)
    write_style(staging, PromptStyle("llara"))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)  # the folder appears whole or not at all
    return out
