"""An interpolated modified Kneser-Ney trigram: the n-gram keyboard an LSTM has to beat.

    nextword eval runs/ptb --text ptb.test.txt --trigram ptb.train.txt

Trained on a corpus with the model's own tokenizer, it predicts the same targets from the same
contexts (the last two ids of the model's window), so ``nextword eval`` scores both with the same
measures. Chen & Goodman's modified Kneser-Ney (1998; what KenLM estimates): three discounts per order
from the count-of-counts, continuation counts for the lower orders, interpolation down to a uniform
distribution so no vocabulary word has probability 0. numpy only; a few seconds for a million words.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np
from nextword.context import window_ids
from nextword.tokenizer import PAD_ID, Tokenizer


def _discounts(counts: np.ndarray) -> np.ndarray:
    """D1, D2, D3+ from how many n-grams were seen once, twice, three and four times."""
    n = [int((counts == k).sum()) for k in (1, 2, 3, 4)]
    if min(n) == 0:  # a tiny corpus: the plain Kneser-Ney discount
        return np.array([0.0, 0.5, 0.5, 0.5])
    y = n[0] / (n[0] + 2 * n[1])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    return np.array([0.0, *np.clip(d, 0.05, None)])  # index by min(count, 3)


class _Order:
    """One order's discounted counts grouped by context: a CSR table ``context -> (words, mass)``.

    ``keys`` are the contexts' integer codes, sorted; row r holds the words seen after ``keys[r]`` with
    their discounted count / context total, and ``backoff[r]`` the mass left for the lower order.
    """

    def __init__(self, contexts: np.ndarray, words: np.ndarray, counts: np.ndarray) -> None:
        discount = _discounts(counts)[np.minimum(counts, 3)]
        self.keys, first = np.unique(contexts, return_index=True)
        self.starts = np.append(first, len(contexts))
        totals = np.add.reduceat(counts.astype(np.float64), first)
        freed = np.add.reduceat(discount, first)
        row_total = np.repeat(totals, np.diff(self.starts))
        self.words = words
        self.mass = (counts - discount) / row_total
        self.backoff = freed / totals

    def row(self, context: int) -> int:
        r = int(np.searchsorted(self.keys, context))
        return r if r < len(self.keys) and self.keys[r] == context else -1


class KneserNeyTrigram:
    """``probabilities(windows)`` -> ``(batch, vocab)`` next-token distributions, like a model's window form."""

    def __init__(self, tokenizer: Tokenizer, lines: Iterable[str], context: str = "line") -> None:
        """Counts every token of ``lines`` after its context as ``nextword eval`` reads it: from the start
        of its line (``line``, a line's first word follows what a keyboard context starts with) or after
        the lines before it (``stream``)."""
        self.vocab_size = tokenizer.vocab_size
        v = self.vocab_size
        start = tokenizer.context_ids("")
        triples: list[int] = []
        history = deque([PAD_ID, PAD_ID, *start], maxlen=2)
        for line in lines:
            if context == "line":
                history = deque([PAD_ID, PAD_ID, *start], maxlen=2)
            for target in tokenizer.encode_line(line):
                triples.append((history[0] * v + history[1]) * v + target)
                history.append(target)
        if not triples:
            raise ValueError("the trigram's corpus holds no tokens")
        codes, counts = np.unique(np.array(triples, dtype=np.int64), return_counts=True)
        self.tokens = len(triples)
        # Trigram: raw counts, context (u, v).
        self.tri = _Order(codes // v, codes % v, counts)
        # Bigram: continuation counts N1+(. v w), how many different u precede (v, w).
        bigram_codes, continuation = np.unique(codes % (v * v), return_counts=True)
        self.bi = _Order(bigram_codes // v, bigram_codes % v, continuation)
        # Unigram: N1+(. w), interpolated with the uniform distribution over the real ids (not padding).
        words, continuation = np.unique(bigram_codes % v, return_counts=True)
        discount = _discounts(continuation)[np.minimum(continuation, 3)]
        unigram = np.zeros(v)
        unigram[words] = (continuation - discount) / continuation.sum()
        uniform = np.full(v, 1.0 / (v - 1))
        uniform[PAD_ID] = 0.0
        self.unigram = unigram + discount.sum() / continuation.sum() * uniform

    def _distribution(self, u: int, w: int) -> np.ndarray:
        v = self.vocab_size
        probs = self.unigram.copy()
        for order, context in ((self.bi, w), (self.tri, u * v + w)):
            r = order.row(context)
            if r < 0:
                continue  # an unseen context: the lower order as it is
            lo, hi = order.starts[r], order.starts[r + 1]
            probs *= order.backoff[r]
            probs[order.words[lo:hi]] += order.mass[lo:hi]
        return probs

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows)
        return np.stack([self._distribution(int(row[-2]), int(row[-1])) for row in windows])

    def window_fn(self, window: int):
        """The window form for contexts of ``window`` ids (only the last two are read)."""
        if window >= 2:
            return lambda tokens: self.probabilities(np.asarray(tokens)[:, -2:])
        return lambda tokens: self.probabilities(np.stack([window_ids(list(row), 2) for row in tokens]))
