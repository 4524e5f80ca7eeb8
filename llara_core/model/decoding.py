"""Greedy decoding that skips the forward passes the action format makes predictable.

An answer such as ``Step 1: Pick up the <p>red block</p> at <b>(0.534,  0.458)</b>, …``
is mostly fixed wording, punctuation and ``0.``: of the ~34 tokens the demo
model emits, only the object name, the digits and the rotation carry
information. On a CPU a small model's decode step costs the same for one token
as for eight (per-call overhead dominates), so :func:`speculative_greedy`
drafts the predictable tokens with :class:`FormatDraft` and verifies them in
one forward pass, keeping the longest prefix the model itself would have chosen
plus the model's next token. The result is token-for-token what greedy
``generate()`` returns (the tests check it) in about half the forward passes.

Why not transformers' assisted decoding: its drafts come from a second model or
from n-grams of the prompt (``prompt_lookup_num_tokens``), and the action
wording is not in the prompt; measured here, prompt lookup was slower than
plain greedy. The draft below comes from the format itself.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from llara_core.language.actions import ActionStep, render_actions

_DIGIT = -1  # every single-digit token is one symbol in draft contexts: "0.5|3|4" and "0.6|2|7" look alike
_NAMES = ("red block", "green cylinder", "blue bar", "yellow hexagon", "purple block", "pad", "bowl", "dice")


class FormatDraft:
    """Next-token guesses from n-gram counts over answers rendered by :func:`render_actions`.

    A context (the last 1..``order`` tokens, digits merged into one symbol) maps
    to its most frequent next token only when that token follows it at least
    ``min_share`` of the time: digits and names are never guessed, wording is.
    """

    def __init__(self, table: dict[tuple[int, ...], int], digits: set[int], order: int) -> None:
        self.table = table
        self.digits = digits
        self.order = order

    @classmethod
    def for_tokenizer(
        cls, tokenizer: Any, order: int = 6, samples: int = 400, min_share: float = 0.6, seed: int = 0
    ) -> FormatDraft:
        rng = random.Random(seed)
        digits = {
            t for t in (tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)) if t != tokenizer.unk_token_id
        }
        counts: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
        for _ in range(samples):
            steps = [
                ActionStep(
                    pick=(rng.random(), rng.random()),
                    place=(rng.random(), rng.random()),
                    rotation_deg=rng.choice([0, 0, 0, 30, -45, 90, 135, -150]),
                    kind=rng.choice(["pick_place", "pick_place", "sweep"]),
                    object=rng.choice(_NAMES),
                )
                for _ in range(rng.choice([1, 1, 2]))
            ]
            ids = tokenizer(" " + render_actions(steps), add_special_tokens=False)["input_ids"]
            ids.append(tokenizer.eos_token_id)  # as in training: the answer ends with </s>
            keys = [_DIGIT if t in digits else t for t in ids]
            for i in range(1, len(ids)):
                for m in range(1, min(order, i) + 1):
                    counts[tuple(keys[i - m : i])][ids[i]] += 1
        table = {}
        for ctx, c in counts.items():
            tok, n = c.most_common(1)[0]
            if n >= 2 and n >= min_share * sum(c.values()):
                table[ctx] = tok
        return cls(table, digits, order)

    def propose(self, tokens: Sequence[int], k: int = 8) -> list[int]:
        """Up to ``k`` tokens likely to follow ``tokens`` (the answer so far); empty when nothing is predictable."""
        keys = [_DIGIT if t in self.digits else t for t in tokens]
        out: list[int] = []
        for _ in range(k):
            nxt = None
            for m in range(min(self.order, len(keys)), 0, -1):
                nxt = self.table.get(tuple(keys[-m:]))
                if nxt is not None:
                    break
            if nxt is None:
                break
            out.append(nxt)
            keys.append(_DIGIT if nxt in self.digits else nxt)
        return out


def speculative_greedy(
    model: Any,
    inputs: dict[str, Any],
    draft: FormatDraft,
    max_new_tokens: int,
    eos_token_id: int,
    k: int = 8,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[int], int]:
    """Greedy answer tokens for one prompt (batch of 1) and the number of forward passes it took.

    ``inputs`` is what the processor returned (input_ids, attention_mask,
    pixel_values, …); the first pass reads the image, later passes feed the
    last accepted token plus the draft through the KV cache, which is cropped
    back after a rejected draft. ``should_stop`` is asked before every pass after
    the first (a server's client left): True ends decoding with the tokens so far.
    """
    import torch

    with torch.inference_mode():
        out = model(**inputs, use_cache=True)
        cache = out.cache  # a DynamicCache
        tokens = [int(out.logits[0, -1].argmax())]
        passes = 1
        while tokens[-1] != eos_token_id and len(tokens) < max_new_tokens:
            if should_stop is not None and should_stop():
                break
            guess = draft.propose(tokens, min(k, max_new_tokens - len(tokens) - 1))
            feed = torch.tensor([[tokens[-1], *guess]], device=inputs["input_ids"].device)
            out = model(input_ids=feed, cache=cache, use_cache=True)
            passes += 1
            best = out.logits[0].argmax(-1).tolist()
            n = 0
            while n < len(guess) and guess[n] == best[n] and (n == 0 or guess[n - 1] != eos_token_id):
                n += 1
            accepted = guess[:n]
            if not accepted or accepted[-1] != eos_token_id:
                accepted.append(best[n])  # the model's own next token: every pass yields at least one
            cache.crop(n - len(guess))  # drop the rejected guesses (a negative count removes that many positions)
            tokens.extend(accepted)
        if eos_token_id in tokens:
            tokens = tokens[: tokens.index(eos_token_id)]
        return tokens[:max_new_tokens], passes
