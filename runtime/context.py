"""Turning typed text into the model's input, and its output into words.

Shared by training (sample suggestions, evaluation) and the device runtime so
that both read a context exactly the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nextword.tokenizer import PAD_ID, Tokenizer


class Suggestion(NamedTuple):
    word: str
    prob: float


def window_ids(ids: Sequence[int], window: int) -> np.ndarray:
    """The last ``window`` ids, pre-padded with 0: shape ``(window,)``, int32."""
    out = np.full(window, PAD_ID, dtype=np.int32)
    tail = list(ids)[-window:] if window else []
    if tail:
        out[window - len(tail):] = tail
    return out


def top_suggestions(probs: np.ndarray, tokenizer: Tokenizer, k: int) -> list[Suggestion]:
    """The ``k`` most probable words, best first; special tokens are never suggested."""
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    ranked = np.argsort(-probs, kind="stable")
    special = tokenizer.special_ids
    out: list[Suggestion] = []
    for idx in ranked:
        if len(out) >= k:
            break
        if int(idx) not in special:
            out.append(Suggestion(tokenizer.vocab[idx], float(probs[idx])))
    return out
