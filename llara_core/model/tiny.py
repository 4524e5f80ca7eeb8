"""A tiny LLaVA built from config, with a tokenizer trained offline: the stand-in for LLaVA-7B on a CPU.

Same architecture family as ``llava-hf/llava-1.5-7b-hf`` (CLIP vision tower →
MLP projector → Llama), only small, so every code path of the runtime and the
trainer is the one a real checkpoint takes. Nothing is downloaded: the
tokenizer is a byte-level BPE trained with ``tokenizers`` on the project's own
prompts and answers, with every digit its own token (numbers are the actions).

The image processor is ``CLIPImageProcessorPil`` — the torchvision-backed one
does not load beside torch 2.13 (DESIGN §6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llara_core.config import setting
from llara_core.language.objects import OBJECT_NAME_RE
from llara_core.language.prompts import IMAGE_TOKEN
from llara_core.model.folder import write_tiny_spec

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN)
# LLaVA-1.5's conversation format ("USER: … ASSISTANT: …</s>") as a chat template the processor applies, with
# one change: the image comes *after* the text of the turn. Causal attention lets a token see only what precedes
# it, so this way every image patch can look at the instruction and mark itself as "the object named" in one
# step, and the answer then reads the marked patch; with the image first, the answer would have to combine the
# name and the patches itself (two steps), which a model this small learns far more slowly. Datasets keep
# LLaVA's "<image>\n…" records; only this tokenization differs.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    " {% else %}ASSISTANT: {% for c in message['content'] %}{{ c['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model. The defaults give ≈ 4.7 M parameters (≈ 19 MB in fp32).

    The count moves a little with the vocabulary the tokenizer learns from the corpus.

    160-pixel input in 16-pixel patches: 100 image tokens (a 224 camera image is
    resized by the processor); objects stay 7–14 px wide, enough for colour and
    shape, and the language model's sequence is a third of what 224/16 gives.
    """

    image_size: int = setting(160, "input image size of the vision tower (px, square)")
    patch_size: int = setting(16, "vision patch size (px)")
    vision_hidden: int = setting(128, "vision tower width")
    vision_layers: int = setting(4, "vision tower layers")
    text_hidden: int = setting(256, "language model width")
    text_layers: int = setting(4, "language model layers")
    heads: int = setting(4, "attention heads (both towers)")
    vocab_size: int = setting(2048, "tokenizer vocabulary size")
    max_positions: int = setting(1024, "longest token sequence")

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if min(self.vision_hidden, self.text_hidden) % self.heads:
            raise ValueError("the widths must be multiples of heads")


def dataset_texts(datasets: Iterable[str | Path]) -> list[str]:
    """Every prompt and answer of the LLaVA-format dataset folders: the tokenizer's corpus."""
    from llara_core.datasets.reader import read_dataset

    return [t["value"] for d in datasets for r in read_dataset(d, check_images=False) for t in r["conversations"]]


def name_words(texts: Iterable[str]) -> list[str]:
    """The words of every object name (``<p>…</p>``) in the corpus: colours and shapes."""
    return sorted({w for t in texts for m in OBJECT_NAME_RE.finditer(t) for w in m.group(1).split()})


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> Any:
    """Byte-level BPE (exact round trip of any text) that keeps what carries meaning apart.

    Digits are single tokens (numbers are the actions) and the words of object
    names (colours, shapes) are always their own tokens, so "red cylinder" is
    read as *red* + *cylinder* even when that pair never occurred (L2). Everything
    else — the fixed wording of prompts and of the action format — may merge
    across spaces into long tokens: an answer is ~32 tokens instead of ~66, which
    halves decoding time, and the prompts shrink by two thirds.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    words = sorted(name_words(texts), key=len, reverse=True)
    isolated = r"\d" + (rf"| ?\b(?:{'|'.join(map(re.escape, words))})\b" if words else "")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(isolated), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=64,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",  # generation pads on the left
        model_max_length=2048,
    )


def build_tiny_model(out: str | Path, corpus: Iterable[str], spec: TinySpec = TinySpec(), seed: int = 0) -> Path:
    """Train the tokenizer on ``corpus`` (prompts and answers), build the model, save both to ``out``."""
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(seed)
    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    n_patches = (spec.image_size // spec.patch_size) ** 2
    vision = CLIPVisionConfig(
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        hidden_size=spec.vision_hidden,
        intermediate_size=4 * spec.vision_hidden,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.heads,
        projection_dim=spec.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_hidden,
        intermediate_size=3 * spec.text_hidden,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_id,
        image_seq_length=n_patches,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    config.pad_token_id = tokenizer.pad_token_id
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": spec.image_size},
            crop_size={"height": spec.image_size, "width": spec.image_size},
            do_center_crop=True,
        ),
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    write_tiny_spec(out, asdict(spec))
    return out
