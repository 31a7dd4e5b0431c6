"""Turning typed text into the model's input, and its output into words.

Shared by training (sample suggestions, evaluation) and the device runtime so
that both read a context exactly the same way: ids from ``Tokenizer.context_ids``,
``window_ids`` to pad them, ``WordIndex`` to rank words.
"""

from __future__ import annotations

import bisect
import functools
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
    tail = list(ids[-window:]) if window else []
    if tail:
        out[window - len(tail):] = tail
    return out


def argmax_passes(scores: np.ndarray, count: int) -> tuple[list[int], list]:
    """Positions and values of the ``count`` largest scores, best first, the first of equal ones first;
    ``scores`` is overwritten (each value is read before its place is cleared)."""
    best, values = [], []
    for _ in range(min(count, len(scores))):
        position = int(scores.argmax())
        best.append(position)
        values.append(scores[position])
        scores[position] = -np.inf
    return best, values


class WordIndex:
    """The words a keyboard may suggest, sorted for prefix lookups, and the ranker over them.

    Special tokens (padding, ``<unk>``, ``<eos>``) are never suggested. One index serves the
    predictor, the session, the keyboard and ``nextword eval``'s keystroke count.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        special = tokenizer.special_ids
        pairs = sorted((token, index) for index, token in enumerate(tokenizer.vocab) if index not in special)
        self.words = [w for w, _ in pairs]
        self.ids = np.array([i for _, i in pairs], dtype=np.int64)
        self.special_ids = np.array(sorted(special), dtype=np.int64)

    #: True when the index holds only some of the distribution's ids (``from_pairs``): every ranking
    #: gathers its ids instead of hiding the special ones.
    subset = False

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, int]]) -> WordIndex:
        """An index over given (word, id) pairs: a user's personal words beside the model's, blocked ones
        left out. Ids it does not hold are never ranked."""
        index = cls.__new__(cls)
        pairs = sorted(pairs)
        index.words = [w for w, _ in pairs]
        index.ids = np.array([i for _, i in pairs], dtype=np.int64)
        index.special_ids = np.zeros(0, dtype=np.int64)
        index.subset = True
        return index

    def _span(self, prefix: str) -> tuple[int, int]:
        return (bisect.bisect_left(self.words, prefix), bisect.bisect_left(self.words, prefix + "\U0010ffff"))

    def with_prefix(self, prefix: str) -> np.ndarray:
        """Ids of the words that start with ``prefix`` (every word for "")."""
        lo, hi = self._span(prefix)
        return self.ids[lo:hi]

    @functools.cached_property
    def words_set(self) -> frozenset[str]:
        return frozenset(self.words)

    @functools.cached_property
    def _id_set(self) -> frozenset[int]:
        return frozenset(self.ids.tolist())

    def _hidden(self, size: int) -> np.ndarray:
        """Ids below ``size`` the index does not hold (the special tokens; for a subset, also the rest)."""
        if not self.subset:
            return self.special_ids
        if getattr(self, "_hidden_size", None) != size:
            hidden = np.ones(size, dtype=bool)
            hidden[self.ids[self.ids < size]] = False
            self._hidden_ids, self._hidden_size = np.flatnonzero(hidden), size
        return self._hidden_ids

    def suggests(self, token_id: int) -> bool:
        """Whether the strip may show this id."""
        return token_id in self._id_set

    def begins_some_word(self, prefix: str) -> bool:
        lo, hi = self._span(prefix)
        return hi > lo

    def top(self, probs: np.ndarray, k: int, prefix: str = "") -> list[int]:
        """Ids of the ``k`` most probable words (starting with ``prefix`` if given), best first.

        This is on every suggestion's path (a third of a suggestion's Python time was here): no
        conversions where the input is already a flat float array, plain ints out."""
        if probs.ndim != 1:
            probs = probs.reshape(-1)
        if prefix:
            candidates = self.with_prefix(prefix)
            scores = probs[candidates]  # a gather is already a copy
        else:  # every word: no gather, just hide the ids it does not suggest
            candidates = None
            scores = probs.copy()
            scores[self._hidden(len(probs))] = -np.inf
        count = min(k, len(scores) if candidates is not None else len(self.ids))
        if count <= 0:
            return []
        if count <= 8:  # a few argmax passes beat a partition of the whole vocabulary for a suggestion strip
            best, _ = argmax_passes(scores, count)
        else:
            best = np.argpartition(-scores, count - 1)[:count]
            best = best[np.argsort(-scores[best], kind="stable")].tolist()
        return best if candidates is None else candidates[best].tolist()
