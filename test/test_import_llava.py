"""``llara import-llava`` on a tiny checkpoint in LLaVA's original layout (random weights, built here).

A llava-hf model is assembled first; its tensors are written under the names
an original LLaVA-1.5 checkpoint uses (``model.layers.*``, ``model.mm_projector.0/2``,
the CLIP tower inside or in its own folder, vocabulary without ``<image>``).
The converted model must compute the same logits from the same tensors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from llara_core.model.import_llava import CheckpointError, import_llava

V = 96  # the source vocabulary (Vicuna's would be 32000)


def _tokenizer(tmp):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=V, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet()[:60], show_progress=False)  # fmt: skip
    tok.train_from_iterator(["Pick up the object at <b>(0.1, 0.2)</b> and drop it."] * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    return fast


@pytest.fixture(scope="module")
def reference():
    """A llava-hf model whose vocabulary already has the two added tokens (rows V, V+1) padded to 64."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    padded = math.ceil((V + 2) / 64) * 64
    text = LlamaConfig(vocab_size=padded, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512)  # fmt: skip
    # head size 64, as in every OpenAI CLIP ViT-B/L: the importer reads the head count off a tower saved inside
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=1,
                              image_size=28, patch_size=14)  # fmt: skip
    cfg = LlavaConfig(text_config=text, vision_config=vision, image_token_index=V, projector_hidden_act="gelu",
                      vision_feature_layer=-2, vision_feature_select_strategy="default", image_seq_length=4)  # fmt: skip
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(cfg).eval()


def _original(reference, tmp, tower_inside: bool, fmt: str = "safetensors", drop: str | None = None):
    """Write ``reference`` as an original LLaVA-1.5 folder (+ a CLIP folder when the tower is outside)."""
    from safetensors.torch import save_file

    src, clip = tmp / "llava-src", tmp / "clip"
    src.mkdir(exist_ok=True)
    state, tower = {}, {}
    for k, v in reference.state_dict().items():
        v = v.clone()
        if k.startswith("model.language_model."):
            name = "model." + k[len("model.language_model.") :]
            state[name] = v[:V] if name == "model.embed_tokens.weight" else v
        elif k == "lm_head.weight":
            state[k] = v[:V]
        elif k.startswith("model.multi_modal_projector.linear_"):
            idx = {"1": "0", "2": "2"}[k.split("linear_")[1][0]]
            state["model.mm_projector." + idx + k.split("linear_")[1][1:]] = v
        elif k.startswith("model.vision_tower."):
            tower["vision_model." + k[len("model.vision_tower.") :]] = v
    if tower_inside:
        state.update({f"model.vision_tower.vision_tower.{k}": v for k, v in tower.items()})
    else:
        clip.mkdir(exist_ok=True)
        save_file(tower, str(clip / "model.safetensors"))
        (clip / "config.json").write_text(
            json.dumps({"model_type": "clip", "vision_config": reference.config.vision_config.to_dict()})
        )
    if drop:
        state.pop(drop)
    keys = sorted(state)
    halves = [dict((k, state[k]) for k in keys[: len(keys) // 2]), dict((k, state[k]) for k in keys[len(keys) // 2 :])]
    for i, part in enumerate(halves):
        if fmt == "safetensors":
            save_file(
                {k: v.contiguous() for k, v in part.items()}, str(src / f"model-0000{i + 1}-of-00002.safetensors")
            )
        else:
            torch.save(part, src / f"pytorch_model-0000{i + 1}-of-00002.bin")
    t = reference.config.text_config
    (src / "config.json").write_text(json.dumps({
        "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava_llama", "vocab_size": V,
        "hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size, "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads, "num_key_value_heads": t.num_key_value_heads,
        "max_position_embeddings": t.max_position_embeddings, "rms_norm_eps": t.rms_norm_eps,
        "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
        "mm_vision_tower": "openai/clip-vit-large-patch14-336", "image_aspect_ratio": "pad", "mm_hidden_size": 64,
    }))  # fmt: skip
    _tokenizer(tmp).save_pretrained(src)
    return src, (None if tower_inside else clip)


def _logits(model, image_id: int):
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, 28, 28)
    ids = torch.tensor([[1, 5, *([image_id] * 4), 7, 9, 11]])
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids)).logits[..., :V]


@pytest.mark.parametrize(("tower_inside", "fmt"), [(False, "safetensors"), (True, "bin")])
def test_every_tensor_lands_where_llava_hf_expects_it(reference, tmp_path, tower_inside, fmt):
    from transformers import LlavaForConditionalGeneration

    from llara_core.model.runtime import VLMPolicy

    src, clip = _original(reference, tmp_path, tower_inside, fmt)
    out = import_llava(src, tmp_path / "hf", clip)
    converted = LlavaForConditionalGeneration.from_pretrained(out).eval()
    assert converted.config.image_token_index == V and converted.config.text_config.vocab_size == 128
    assert torch.allclose(_logits(converted, V), _logits(reference, V), atol=1e-5)
    policy = VLMPolicy.from_pretrained(out, max_new_tokens=4)
    assert policy.style.profile == "llara"  # the imported model prompts the way LLaRA trained it
    prompt = policy.processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                   "text": "hi"}]}], add_generation_prompt=True, tokenize=False)  # fmt: skip
    assert prompt == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: <image>\nhi ASSISTANT:"
    )
    out_text = policy.act(np.zeros((20, 40, 3), np.uint8), "put the block in the bowl")  # not square: padded
    assert isinstance(out_text.text, str)


def test_an_incomplete_or_foreign_source_names_what_is_wrong(reference, tmp_path):
    src, clip = _original(reference, tmp_path, tower_inside=False, drop="model.layers.1.mlp.up_proj.weight")
    with pytest.raises(CheckpointError, match=r"missing keys: \[.*layers\.1\.mlp\.up_proj\.weight"):
        import_llava(src, tmp_path / "hf", clip)
    assert not (tmp_path / "hf").exists()
    with pytest.raises(CheckpointError, match="give the CLIP ViT-L/14-336 folder"):
        import_llava(src, tmp_path / "hf2")
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "mm_projector_type": "linear"}))
    with pytest.raises(CheckpointError, match="mlp2x_gelu"):
        import_llava(src, tmp_path / "hf3", clip)
    (src / "config.json").write_text(json.dumps({**cfg, "model_type": "qwen2", "architectures": ["Qwen2"]}))
    with pytest.raises(CheckpointError, match="not an original LLaVA checkpoint"):
        import_llava(src, tmp_path / "hf4", clip)
