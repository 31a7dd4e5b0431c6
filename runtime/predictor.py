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

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from nextword.config import ModelConfig
from nextword.context import Suggestion, WordIndex, window_ids
from nextword.engines import open_engine
from nextword.errors import ModelFileError, UsageError
from nextword.modelfile.contract import C_OUT, H_OUT, PROBS, TOKENS, WINDOW, C, H
from nextword.modelfile.reader import ModelFile, read_model_file
from nextword.tokenizer import Tokenizer

if TYPE_CHECKING:
    from nextword.session import Session


def check_k(k, most: int | None = None, *, too_many: str = "") -> None:
    """The one rule for a number of suggestions: a whole number of at least 1 (and at most ``most``, e.g. a
    strip's slots, ``too_many`` the line that says why), else one UsageError line."""
    if type(k) is not int and (isinstance(k, bool) or not isinstance(k, (int, np.integer))) or k < 1:
        raise UsageError(f"k must be a whole number of at least 1, got {k!r}")
    if most is not None and k > most:
        raise UsageError(too_many or f"k must be at most {most}, got {k!r}")


class Predictor:
    """A tokenizer, a model shape and an engine: suggestions from any of them, read the same way.

    ``Predictor.load(path)`` is the device's way in. Training builds one over its Keras model
    (``nextword.train.model.keras_predictor``) so that what it prints is what a device would say.
    """

    def __init__(self, tokenizer: Tokenizer, config: ModelConfig, engine, model: ModelFile | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.engine = engine
        #: The model file it was loaded from (None for an in-memory model).
        self.model = model
        self.words = WordIndex(tokenizer)
        self._start: tuple[list[int], np.ndarray, np.ndarray] | None = None  # see _start_state
        #: Whether ``suggest()`` remembers recent contexts (``_forward_one``); off, every call reads its whole
        #: context (what ``nextword bench`` measures as fresh contexts).
        self.remember_contexts = True
        self._states: OrderedDict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._distributions: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, *, engine: str | None = None, threads: int | None = None,
             trust=None) -> Predictor:
        """The model file at ``path`` on ``engine`` (default: the best installed). ``trust``: an Ed25519 public
        key (PEM path or bytes): only files signed with it load (``nextword.modelfile.signing``)."""
        model = read_model_file(path, trust=trust)  # metadata, checksum, structure: before any engine sees it
        predictor = cls(model.tokenizer, model.config, open_engine(model, engine, threads), model)
        predictor._probe(path)
        return predictor

    def _probe(self, path) -> None:
        """One inference at load on the empty context (the window form, and the sequence and step forms
        where the file has them): a file whose graph does not fit its config, or whose output is not a
        probability distribution, is refused here, never at a user's first suggestion or as a NaN."""
        vocab, window = self.config.vocab_size, self.config.window
        self._check_declared_shapes(path)
        try:
            outputs = [np.asarray(self.engine.window(np.zeros((1, window), np.int32)))]
            if self.config.masked and self.engine.has_sequence:
                outputs.append(np.asarray(self._forward([self.tokenizer.context_ids("we")])))
            if self.engine.has_step:
                zero = np.zeros((self.config.num_layers, 1, self.config.hidden_size), np.float32)
                outputs.append(np.asarray(self.engine.step(np.array([1], np.int32), zero, zero)[0]))
        except Exception as err:  # noqa: BLE001 - engines raise their own types (onnxruntime's InvalidArgument ...)
            detail = " ".join(str(err).split())[:200]
            raise ModelFileError(f"{path}: the model fails on a probe input ({type(err).__name__}: {detail}); "
                                 "the file does not match its own config: export it again") from None
        for probs in outputs:
            if probs.shape != (1, vocab):
                raise ModelFileError(f"{path}: the model outputs shape {list(probs.shape)}, its config says "
                                     f"[1, {vocab}] (model.vocab_size); export it again")
            total = float(probs.sum())
            if not np.isfinite(probs).all() or probs.min() < 0 or abs(total - 1.0) > 0.02:
                raise ModelFileError(f"{path}: the model's output is not a probability distribution (sum {total:.4g}, "
                                     f"min {float(np.nanmin(probs)) if np.isfinite(probs).any() else 'nan'}); "
                                     "the file is damaged: export it again")

    def _check_declared_shapes(self, path) -> None:
        """The config against the graph's own tensor shapes (where the engine declares them): the window,
        the vocabulary (probs), the layers and the hidden size (h and c); one typed line per mismatch."""
        config = self.config
        expected = {TOKENS: (None, config.window), PROBS: (None, config.vocab_size),
                    H: (config.num_layers, None, config.hidden_size), C: (config.num_layers, None, config.hidden_size),
                    H_OUT: (config.num_layers, None, config.hidden_size),
                    C_OUT: (config.num_layers, None, config.hidden_size)}
        fields = {TOKENS: "model.window", PROBS: "model.vocab_size", H: "model.num_layers and model.hidden_size"}
        declared = self.engine.declared_shapes()
        for (form, name), shape in declared.items():
            want = expected.get(name)
            if want is None or (name == TOKENS and form != WINDOW):
                continue  # the sequence form's tokens are (batch, steps): any length
            fits = len(shape) == len(want) and all(d is None or w is None or d == w for d, w in zip(shape, want))
            if not fits:
                shown = [-1 if d is None else d for d in shape]
                raise ModelFileError(f"{path}: {fields.get(name, fields[H])} say {name} is "
                                     f"{[-1 if w is None else w for w in want]}, the graph's {form} form declares "
                                     f"{shown}; the metadata does not belong to this graph, export it again")

    @property
    def engine_name(self) -> str:
        return self.engine.name

    # --------------------------------------------------------------- words
    def context_ids(self, text: str) -> list[int]:
        """Ids of the last ``window`` words of ``text`` as the model reads them (``Tokenizer.context_ids``).

        Only the tail of a long text is tokenized."""
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

    def completion_target(self, text: str, index: WordIndex | None = None) -> tuple[str, str]:
        """(context, prefix) for ``suggest``: complete the last word only if it is unfinished.

        "hello ho": "ho" is no word but begins some, so complete it from "hello".
        "hello how is": "is" is a word: suggest the next one. A keyboard that knows
        whether a space was typed uses a session and passes ``prefix`` itself.
        """
        context, partial = self.split_partial(text)
        index = index or self.words  # a session with a profile passes its own (personal words in)
        if partial and self.tokenizer.id_of(partial) is None and index.begins_some_word(partial) \
                and partial not in index.words_set:
            return context, partial
        return text, ""

    def normalise_prefix(self, prefix: str) -> str:
        if not prefix:  # every strip between words asks with none
            return ""
        tokens = self.tokenizer.split(prefix)
        return tokens[-1] if tokens else ""

    # -------------------------------------------------------------- ranking
    def rank(self, probs: np.ndarray, k: int, prefix: str = "") -> list[Suggestion]:
        """Top ``k`` non-special words of a (vocab,) distribution; only words starting with ``prefix`` if given.
        (A session with a profile ranks its mix with ``Profile.top``.)"""
        check_k(k)
        if type(probs) is not np.ndarray or probs.dtype != np.float32:
            probs = np.asarray(probs, dtype=np.float32)
        ids = self.words.top(probs, int(k), prefix)
        return self.suggestions(ids, probs.reshape(-1)[ids].tolist())

    def suggestions(self, ids: list[int], probs: list[float], word=None) -> list[Suggestion]:
        """Ranked ids and their probabilities as ``Suggestion``s; a value that is no probability means a
        damaged file (NaN fails both comparisons)."""
        vocab = self.tokenizer.vocab
        if not all(0.0 <= p <= 1.0 for p in probs):
            shown = ", ".join(f"{word(i) if word else vocab[i]}: {p}" for i, p in zip(ids, probs))
            raise ModelFileError(f"the model returned a value that is not a probability ({shown}); the model "
                                 "file is damaged: export it again")
        return [Suggestion(word(i) if word else vocab[i], p) for i, p in zip(ids, probs)]

    # ------------------------------------------------------------------ API
    def suggest(self, text: str, k: int = 3) -> list[Suggestion]:
        """The ``k`` most likely next words, or completions of an unfinished last word, best first."""
        context, prefix = self.completion_target(text)
        return self.rank(self._forward([self.context_ids(context)])[0], k, prefix)

    def suggest_batch(self, texts: Sequence[str], k: int = 3) -> list[list[Suggestion]]:
        """``suggest`` for many texts with one batched engine call."""
        if not texts:
            return []
        splits = [self.completion_target(text) for text in texts]
        probs = self._forward([self.context_ids(context) for context, _ in splits])  # (n, vocab)
        return [self.rank(row, k, partial) for row, (_, partial) in zip(probs, splits)]

    def probabilities(self, text: str) -> np.ndarray:
        """The model's (vocab,) distribution for the word after ``text``."""
        return self._forward([self.context_ids(text)])[0].copy()  # (a remembered one is read-only)

    #: How many recent contexts ``suggest()`` keeps the state after (a context one word longer than one of
    #: them costs one step), and how many it keeps the whole distribution of (the same context again, as a
    #: keyboard asks for each letter typed into a word, costs no step).
    REMEMBERED_STATES, REMEMBERED_DISTRIBUTIONS = 64, 4

    def _forward(self, contexts: list[list[int]]) -> np.ndarray:
        """(n, vocab) for contexts of ids: the sequence form over the longest one's steps (pre-padded: padding
        is masked), so n words cost n LSTM steps; the window form where the engine has no sequence form
        (the Keras model in training) and for a model that reads its padding."""
        if not self.config.masked or not self.engine.has_sequence:
            # A model that reads its padding (config.masked False) only ever sees the full window.
            return self.engine.window(np.stack([window_ids(ids, self.config.window) for ids in contexts]))
        if len(contexts) == 1 and self.remember_contexts:
            return self._forward_one(contexts[0])[None]
        return self._sequences(contexts)[0]

    def _forward_one(self, ids: list[int]) -> np.ndarray:
        """(vocab,) for one context, from what recent calls computed: a context seen again costs nothing, one
        that extends a recent one by a word costs that word's step. The same arithmetic either way: the
        sequence form's steps are the step form's, and a state carried is the state it would recompute."""
        key = tuple(ids)
        with self._cache_lock:
            probs = self._distributions.get(key)
            if probs is not None:
                self._distributions.move_to_end(key)
                return probs
            state = self._states.get(key[:-1]) if len(key) > 1 else None
        if state is not None:
            probs, h, c = self.engine.sequence(np.array([key[-1:]], np.int32), *state)
        else:
            probs, h, c = self._sequences([ids])
        probs = probs[0]
        probs.flags.writeable = False
        with self._cache_lock:
            for cache, value, size in ((self._states, (h, c), self.REMEMBERED_STATES),
                                       (self._distributions, probs, self.REMEMBERED_DISTRIBUTIONS)):
                cache[key] = value
                cache.move_to_end(key)
                while len(cache) > size:
                    cache.popitem(last=False)
        return probs

    def _sequences(self, contexts: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sequence form over contexts of ids: (probs, h, c) after each.

        A context that begins with the ids every text starts with (``<eos>``) starts from the state after
        them, computed once: the same arithmetic, one step less per call."""
        start_ids, start_h, start_c = self._start_state()
        skip, count = len(start_ids), len(contexts)
        tails, from_start = [], []  # (Python lists and one array fill: numpy helpers cost more than a step here)
        for row, ids in enumerate(contexts):
            if skip and ids[:skip] == start_ids:
                ids = ids[skip:]
                from_start.append(row)
            tails.append(ids)
        steps = max(1, max(map(len, tails)))  # nothing left: one padding step keeps the state
        # An engine that runs some lengths cheaper pads up to one of them (masked padding).
        steps = max(steps, min(self.engine.padded_steps(steps), self.config.window))
        tokens = np.zeros((count, steps), np.int32)  # pre-padded
        for row, ids in enumerate(tails):
            if ids:
                tokens[row, steps - len(ids):] = ids
        if len(from_start) == count:  # the usual case
            h, c = (start_h, start_c) if count == 1 else (np.repeat(start_h, count, 1), np.repeat(start_c, count, 1))
        else:
            shape = (self.config.num_layers, count, self.config.hidden_size)
            h, c = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
            h[:, from_start], c[:, from_start] = start_h, start_c
        return self.engine.sequence(tokens, h, c)

    def _start_state(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(ids every context starts with, h and c after them), each (layers, 1, hidden)."""
        if self._start is None:
            start_ids = self.tokenizer.context_ids("")
            h = c = np.zeros((self.config.num_layers, 1, self.config.hidden_size), np.float32)
            if start_ids:
                _, h, c = self.engine.sequence(np.array([start_ids], np.int32), h, c)
            self._start = (start_ids, h, c)
        return self._start

    def session(self, profile=None, *, incognito: bool = False, block=()) -> Session:
        """A keyboard session (see ``nextword.session``); ``profile`` (a ``nextword.profile.Profile``) learns
        from committed messages unless ``incognito``; ``block``: words never suggested."""
        from nextword.session import Session

        return Session(self, profile, incognito=incognito, block=block)
