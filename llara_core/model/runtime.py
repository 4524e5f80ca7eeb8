"""The VLM policy: image + instruction -> action text -> parsed steps, on any local image-text-to-text model.

``VLMPolicy.from_pretrained`` loads a Hugging Face checkpoint from a local
folder only (``local_files_only``, safetensors, no remote code) through
``AutoProcessor`` + ``AutoModelForImageTextToText`` — LLaVA-1.5-hf first, and
any family whose processor has a chat template through the same calls
(Idefics3 is tested on a tiny random model; Qwen2-VL's processor needs
torchvision, which does not import beside torch 2.13.0). A PEFT LoRA folder
(what ``llara train`` writes for pretrained bases) is recognized and applied
on top of its base.

Prompts come from :mod:`llara_core.language.prompts` (inBC, or D-inBC when object boxes
are given), decoding is greedy, and the answer goes through the one strict
parser: a policy never returns coordinates the parser did not accept. A single
query decodes with :func:`~llara_core.model.decoding.speculative_greedy` (same
tokens as ``generate()``, about half the forward passes); batches use ``generate()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.language.actions import ActionKind, ActionStep
from llara_core.language.objects import ObjectBox
from llara_core.language.prompts import IMAGE_TOKEN, PromptStyle, query_prompt
from llara_core.model.data import prompt_text
from llara_core.model.decoding import FormatDraft, speculative_greedy
from llara_core.model.folder import read_style, resolve_adapter
from llara_core.model.policy import PolicyConfig, PolicyOutput

log = logging.getLogger(__name__)


def choose_style(trained: PromptStyle, profile: str | None, end_effector: str | None) -> PromptStyle:
    """The model's own style, with what the configuration sets instead (a warning per differing field)."""
    want = PromptStyle(profile or trained.profile, end_effector or trained.end_effector)
    for name, a, b in (("prompt_profile", want.profile, trained.profile),
                       ("end_effector", want.end_effector, trained.end_effector)):  # fmt: skip
        if a != b:
            log.warning("%s %r differs from the %r this model was trained with: its prompts will not match its "
                        "training data", name, a, b)  # fmt: skip
    return want


def check_device(device: str) -> None:
    """Refuse a torch device this machine does not have before any weights load (one line, not a traceback)."""
    import torch

    from llara_core.errors import UsageError

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, mps): {exc}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r}: no CUDA GPU here (torch {torch.__version__} sees none); use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {device!r}: MPS is not available here; use cpu")


def _stopping_criteria(stop: Callable[[int], bool]) -> Any:
    """``generate()``'s per-row stop: row ``i`` is finished once ``stop(i)`` (transformers >= 4.39 reads a bool
    tensor per row; a batch ends when every row is finished)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.tensor([stop(i) for i in range(input_ids.shape[0])], device=input_ids.device)

    return StoppingCriteriaList([_Stop()])


class VLMPolicy:
    """A loaded model + processor with LLaRA's prompting and the strict action parser."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: str = "cpu",
        max_new_tokens: int | None = None,
        speculative: bool = True,
        style: PromptStyle | None = None,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.device = device
        self.style = style or PromptStyle()
        self.max_new_tokens = max_new_tokens or self.style.max_new_tokens
        # Verified token-for-token on the LLaVA family; others (Qwen2-VL's rope deltas, …) keep generate().
        llava = getattr(model.config, "model_type", "") == "llava"
        self.draft = FormatDraft.for_tokenizer(processor.tokenizer) if speculative and llava else None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        max_new_tokens: int | None = None,
        speculative: bool = True,
        end_effector: str | None = None,
        prompt_profile: str | None = None,
    ) -> VLMPolicy:
        """Load a model folder (or LoRA folder) offline.

        ``end_effector`` / ``prompt_profile`` None prompt with the wording the
        model was trained on (its ``llara_prompt.json``; this project's default
        when absent); a different value is used as given, with a warning,
        because the model saw other prompts. ``max_new_tokens`` None: the
        prompt profile's answer length.
        """
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"model folder {path} does not exist (models load from local folders only)")
        check_device(device)
        base, lora = resolve_adapter(path, adapter)
        torch_dtype = getattr(torch, dtype) if dtype else None
        processor = AutoProcessor.from_pretrained(lora or base, local_files_only=True, trust_remote_code=False)
        model: Any = AutoModelForImageTextToText.from_pretrained(
            base, local_files_only=True, use_safetensors=True, trust_remote_code=False, dtype=torch_dtype
        )
        if lora is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(lora)).merge_and_unload()
        style = choose_style(read_style(lora or base), prompt_profile, end_effector)
        return cls(model.to(device), processor, device, max_new_tokens or style.max_new_tokens, speculative, style)

    @classmethod
    def from_config(cls, config: PolicyConfig) -> VLMPolicy:
        """The ``transformers`` backend of :func:`~llara_core.model.policy.load_policy`."""
        from llara_core.resources import demo_model_path

        if config.threads:
            # Process-wide. On a machine the model shares with other busy processes (make demo: four nodes and a
            # renderer on two cores) one thread avoids OpenMP's barrier waits on a preempted sibling: the model's
            # p50 inside make demo went from 721 to 228 ms with 1 thread (standalone 2 threads: 111, 1: 128 ms).
            import torch

            torch.set_num_threads(config.threads)
        return cls.from_pretrained(
            config.model or demo_model_path(), adapter=config.adapter, device=config.device, dtype=config.dtype,
            max_new_tokens=config.max_new_tokens or None, end_effector=config.end_effector,
            prompt_profile=config.prompt_profile,
        )  # fmt: skip

    # -- prompting -------------------------------------------------------------------------------
    def build_prompt(
        self,
        instruction: str,
        objects: Sequence[ObjectBox] | None = None,
        history: Sequence[ActionStep] = (),
        kind: ActionKind = "pick_place",
    ) -> str:
        """The LLaVA human turn: inBC, or D-inBC when ``objects`` are given (:func:`query_prompt`)."""
        return query_prompt(instruction, objects, history, kind, self.style)

    def generate(
        self, images: Sequence[Any], questions: Sequence[str], stop: Callable[[int], bool] | None = None
    ) -> list[str]:
        """Greedy answers to LLaVA-format questions (``<image>\\n…``), one per image.

        ``stop(i)``, asked between decoding steps, ends answer ``i`` early (what a server does for a client that
        left or a request past its deadline); that answer is then incomplete, and the caller drops it.
        """
        import torch
        from PIL import Image

        pil = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in images]
        texts = [prompt_text(self.processor, q) for q in questions]
        enc = self.processor(images=pil, text=texts, return_tensors="pt", padding=True).to(self.device)
        tok = self.processor.tokenizer
        if self.draft is not None and len(pil) == 1:
            should_stop = (lambda: stop(0)) if stop is not None else None
            ids, _ = speculative_greedy(self.model, enc, self.draft, self.max_new_tokens, tok.eos_token_id,
                                        should_stop=should_stop)  # fmt: skip
            return [tok.decode(ids, skip_special_tokens=True).strip()]
        extra: dict[str, Any] = {}
        if stop is not None:
            extra["stopping_criteria"] = _stopping_criteria(stop)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, **extra)
        new = out[:, enc["input_ids"].shape[1] :]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    @property
    def context_length(self) -> int | None:
        """The language model's context in tokens (``max_position_embeddings``), None where the config lacks it."""
        cfg = getattr(self.model.config, "text_config", None) or self.model.config
        n = getattr(cfg, "max_position_embeddings", None)
        return int(n) if n else None

    def prompt_counter(self) -> Callable[[str], int]:
        """A function giving the tokens a question costs the model, its image's tokens included.

        It tokenizes with its own copy of the tokenizer, so it may run on another
        thread than the model's (a fast tokenizer shared across threads raises
        "Already borrowed" when one of them sets padding, as the processor does).
        """
        import copy

        tok = copy.deepcopy(self.processor.tokenizer)
        image_tokens = int(getattr(self.model.config, "image_seq_length", 0) or 0)
        processor = self.processor

        def count(question: str) -> int:
            ids = tok(prompt_text(processor, question), add_special_tokens=False, verbose=False)["input_ids"]
            return len(ids) + question.count(IMAGE_TOKEN) * max(image_tokens - 1, 0)

        return count

    def act(
        self,
        image: npt.NDArray[np.uint8] | Any,
        instruction: str,
        objects: Sequence[ObjectBox] | None = None,
        history: Sequence[ActionStep] = (),
    ) -> PolicyOutput:
        """One query of LLaRA's loop: the next step(s) for this image, given the steps already done."""
        return self.act_batch([image], [instruction], [objects], [history])[0]

    def act_batch(
        self,
        images: Sequence[Any],
        instructions: Sequence[str],
        objects: Sequence[Sequence[ObjectBox] | None] | None = None,
        histories: Sequence[Sequence[ActionStep]] | None = None,
    ) -> list[PolicyOutput]:
        n = len(images)
        objects = objects or [None] * n
        histories = histories or [()] * n
        prompts = [self.build_prompt(i, o, h) for i, o, h in zip(instructions, objects, histories, strict=True)]
        t0 = time.perf_counter()
        texts = self.generate(images, prompts)
        outs = [PolicyOutput.from_text(text, prompt) for text, prompt in zip(texts, prompts, strict=True)]
        dt = (time.perf_counter() - t0) / max(n, 1)
        for o in outs:
            o.latency_s = dt
        return outs
