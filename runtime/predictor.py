"""Next-word suggestions from a model file alone: numpy plus one inference engine.

    from nextword import Predictor
    predictor = Predictor.load("model.int8.tflite")
    predictor.suggest("hello how is")        # [Suggestion(word='your', prob=0.6), ...]
    predictor.suggest("hello ho")            # completes the partial word: how, ...
    session = predictor.session()            # a keyboard: one model step per typed word
    session.feed("hello how"); session.suggest(3, prefix="i")

Any text is accepted (empty, whitespace, control characters, any script, a
megabyte): unknown words become ``<unk>`` and special tokens are never
suggested. Errors are typed ``NextwordError`` subclasses.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nextword.context import Suggestion, window_ids
from nextword.engines import open_engine
from nextword.errors import UsageError
from nextword.modelfile import ModelFile, read_model_file
from nextword.tokenizer import Tokenizer


class Predictor:
    """A loaded model file: its tokenizer, config and engine."""

    def __init__(self, model: ModelFile, engine) -> None:
        self.model = model
        self.tokenizer: Tokenizer = model.tokenizer
        self.config = model.config
        self.engine = engine
        special = self.tokenizer.special_ids
        words = [(token, index) for index, token in enumerate(self.tokenizer.vocab) if index not in special]
        words.sort()
        self._sorted_words = [w for w, _ in words]  # for prefix lookups (word completion)
        self._sorted_ids = np.array([i for _, i in words], dtype=np.int64)
        self._word_ids = np.array([i for i in range(self.tokenizer.vocab_size) if i not in special], dtype=np.int64)
        self._special_ids = np.array(sorted(special), dtype=np.int64)

    @classmethod
    def load(cls, path: str | Path, *, engine: str | None = None, threads: int | None = None) -> Predictor:
        model = read_model_file(path)  # checks metadata and checksum before any engine sees the file
        return cls(model, open_engine(model, engine, threads))

    @property
    def engine_name(self) -> str:
        return self.engine.name

    # --------------------------------------------------------------- words
    def context_ids(self, text: str) -> list[int]:
        """Ids of the last ``window`` words of ``text`` (only the tail of a long text is tokenized)."""
        window = self.config.window
        pieces = text.rsplit(None, 4 * window)  # each piece gives >= 0 tokens; the head may be huge
        if len(pieces) > 4 * window:
            ids = self.tokenizer.encode(" ".join(pieces[1:]))
            if len(ids) >= window:
                return ids[-window:]
        return self.tokenizer.context_ids(text)[-window:]  # the whole text: it starts after <eos>

    def split_partial(self, text: str) -> tuple[str, str]:
        """(context, partial word). Text ending in a space or punctuation has no partial word."""
        if not text or text[-1].isspace() or text[-1] in self.tokenizer.config.filters:
            return text, ""
        last = text.rsplit(None, 1)[-1]
        tokens = self.tokenizer.split(last)
        if not tokens:
            return text, ""
        # "don't" splits into "don" + "t": the partial word is the last piece, the rest is context.
        return text[: len(text) - len(last)] + " " + " ".join(tokens[:-1]), tokens[-1]

    def completion_target(self, text: str) -> tuple[str, str]:
        """(context, prefix) for ``suggest``: complete the last word only if it is unfinished.

        "hello ho": "ho" is no word but begins some, so complete it from "hello".
        "hello how is": "is" is a word: suggest the next one. A keyboard that knows
        whether a space was typed uses a session and passes ``prefix`` itself.
        """
        context, partial = self.split_partial(text)
        if partial and self.tokenizer.id_of(partial) is None and self._begins_some_word(partial):
            return context, partial
        return text, ""

    def _begins_some_word(self, prefix: str) -> bool:
        index = bisect.bisect_left(self._sorted_words, prefix)
        return index < len(self._sorted_words) and self._sorted_words[index].startswith(prefix)

    def normalise_prefix(self, prefix: str) -> str:
        tokens = self.tokenizer.split(prefix)
        return tokens[-1] if tokens else ""

    # -------------------------------------------------------------- ranking
    def rank(self, probs: np.ndarray, k: int, prefix: str = "") -> list[Suggestion]:
        """Top ``k`` non-special words of a (vocab,) distribution; only words starting with ``prefix`` if given."""
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if prefix:
            lo = bisect.bisect_left(self._sorted_words, prefix)
            hi = bisect.bisect_left(self._sorted_words, prefix + "\U0010ffff")
            candidates = self._sorted_ids[lo:hi]
            scores = probs[candidates]
        else:  # every word: no gather, just hide the special tokens
            candidates = None
            scores = probs.copy()
            scores[self._special_ids] = -np.inf
        count = min(k, len(scores) if candidates is not None else len(self._word_ids))
        if count <= 8:
            # A few argmax passes beat a partition of the whole vocabulary for a suggestion strip.
            best = []
            for _ in range(count):
                index = int(np.argmax(scores))
                best.append(index)
                scores[index] = -np.inf
            best = np.array(best, dtype=np.int64)
        else:
            best = np.argpartition(-scores, count - 1)[:count]
            best = best[np.argsort(-scores[best], kind="stable")]
        top = best if candidates is None else candidates[best]
        return [Suggestion(self.tokenizer.vocab[i], float(probs[i])) for i in top]

    # ------------------------------------------------------------------ API
    def suggest(self, text: str, k: int = 3) -> list[Suggestion]:
        """The ``k`` most likely next words, or completions of an unfinished last word, best first."""
        context, prefix = self.completion_target(text)
        return self.rank(self.probabilities(context), k, prefix)

    def suggest_batch(self, texts: Sequence[str], k: int = 3) -> list[list[Suggestion]]:
        """``suggest`` for many texts with one batched engine call."""
        if not texts:
            return []
        splits = [self.completion_target(text) for text in texts]
        batch = np.stack([window_ids(self.context_ids(context), self.config.window) for context, _ in splits])
        probs = self.engine.window(batch)  # (n, vocab)
        return [self.rank(row, k, partial) for row, (_, partial) in zip(probs, splits)]

    def probabilities(self, text: str) -> np.ndarray:
        """The model's (vocab,) distribution for the word after ``text`` (window form)."""
        tokens = window_ids(self.context_ids(text), self.config.window)[None, :]  # (1, window)
        return self.engine.window(tokens)[0]

    def session(self) -> Session:
        from nextword.session import Session

        return Session(self)
