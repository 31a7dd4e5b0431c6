"""A keyboard session: the recurrent state carried word by word with the step form.

    session = predictor.session()
    session.feed("hello how")        # one model step per word
    session.suggest(3)               # next word after "hello how"
    session.suggest(3, prefix="i")   # completions of a partly typed word
    session.backspace()              # forget the last word
    session.reset()                  # a new message

Its suggestions equal ``predictor.suggest(text)`` for the same text: within
the model's window each word costs one step; once the text is longer than the
window, each word is one call of the window form over the last ``window`` words,
exactly what ``suggest()`` reads (the oldest word drops out, so no state is carried).
A model that reads its padding (``config.masked`` false) is read through the window
form for every word: its state cannot be carried (a paste computes only the positions read). The session keeps at most
``HISTORY`` ids, so a session that is never reset does not grow.
"""

from __future__ import annotations

import numpy as np
from nextword.context import Suggestion, window_ids
from nextword.predictor import check_k
from nextword.profile import ORDER, Profile

#: Ids kept beyond the window, so that a backspace past the window's start still restores older words;
#: older ones are dropped (a session that is never reset must not grow).
HISTORY = 1024


class Session:
    """One message being typed. With a ``profile``, suggestions mix in what the user sent before and
    ``commit()`` learns from the message (unless ``incognito``); ``block`` lists words never suggested."""

    def __init__(self, predictor, profile: Profile | None = None, *, incognito: bool = False,
                 block=()) -> None:
        self.predictor = predictor
        self.incognito = incognito
        if block and profile is None:
            profile, incognito = Profile(), True  # a blocklist alone: an empty profile that never learns
        self.profile = profile
        self._learns = profile is not None and not incognito
        if profile is not None:
            profile.bind(predictor.tokenizer)
            profile.block_all(block, keep=False)
        self._window = predictor.config.window
        self._zero = np.zeros((predictor.config.num_layers, 1, predictor.config.hidden_size), np.float32)
        self._start_probs: np.ndarray | None = None
        self.reset()

    # ------------------------------------------------------------- typing
    def reset(self) -> None:
        """Forget everything typed: a new message (after ``<eos>`` when the model has one)."""
        self._ids: list[int] = []
        #: What was typed in this message: (token as typed, whether the model saw an id for it, the
        #: model's probability of it given the words before, when that was computed).
        self._typed: list[tuple[str, bool, float | None]] = []
        self._steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (probs, h, c) per id in the window
        start = self.predictor.tokenizer.context_ids("")
        self._hidden = len(start)  # ids fed on reset that are not typed words
        for token_id in start:
            self._push(token_id)

    def feed(self, text: str) -> None:
        """Words typed (one or many); unknown words count as ``<unk>``.

        A paste that runs past the window is read once, over its last ``window`` words (what the window
        form reads): its cost is the window's, not one rebuild per word, however long the text.
        """
        self.feed_tokens(self.predictor.tokenizer.split(text))

    def feed_tokens(self, tokens: list[str]) -> None:
        """Tokens already split by the model's tokenizer (``feed`` splits the text first)."""
        tokenizer = self.predictor.tokenizer
        if len(tokens) > 1 and len(self._ids) + len(tokens) > self._window:
            if len(tokens) > 4 * self._window + HISTORY:  # a long paste: only its tail can matter
                tokens = tokens[-(4 * self._window + HISTORY):]
            for token in tokens:
                ids = tokenizer.ids([token])
                self._typed.append((token, bool(ids), None))
                self._ids.extend(ids)
            self._trim()
            self._rebuild()
            return
        for token in tokens:
            ids = tokenizer.ids([token])  # [] for an unknown word when the model has no <unk>
            p_model = float(self.probabilities()[ids[0]]) if ids and self._learns else None
            self._typed.append((token, bool(ids), p_model))
            if ids:
                self._push(ids[0])
        self._trim()

    def commit(self) -> None:
        """The message is sent: learn from it (with a profile, unless incognito), then start a new one."""
        if self._learns:
            tokens = [token for token, _, _ in self._typed]
            probs = [p for _, _, p in self._typed]
            eos = self.predictor.tokenizer.eos_id
            if eos is not None and tokens:  # the message ended here: the model's <eos> is a target too
                tokens.append(self.predictor.tokenizer.vocab[eos])
                probs.append(float(self.probabilities()[eos]) if probs[-1] is not None else None)
            self.profile.learn(tokens, probs)
        self.reset()

    def _push(self, token_id: int) -> None:
        self._ids.append(token_id)
        if len(self._ids) <= self._window and len(self._steps) == len(self._ids) - 1:
            self._steps.append(self._advance(self._ids, *self._state()))
        else:
            self._rebuild()

    def backspace(self) -> str | None:
        """Remove the last word; returns it as typed (None if nothing was typed)."""
        if not self._typed:
            return None
        token, had_id, _ = self._typed.pop()
        if had_id and len(self._ids) > self._hidden:
            self._ids.pop()
            if len(self._ids) < self._window and len(self._steps) == len(self._ids) + 1:
                self._steps.pop()
            else:
                self._rebuild()
        return token

    @property
    def words(self) -> list[str]:
        """The words of this message as typed (unknown words as written)."""
        return [token for token, _, _ in self._typed]

    # --------------------------------------------------------- suggesting
    def probabilities(self) -> np.ndarray:
        if self._steps:
            if self._steps[-1] is None:  # a window-reading model's position not computed yet (see _rebuild)
                probs = self.predictor.engine.window(window_ids(self._ids, self._window)[None, :])
                self._steps[-1] = (probs[0], self._zero, self._zero)
            return self._steps[-1][0]
        if self._start_probs is None:  # empty context: the zero state's distribution
            self._start_probs = self.predictor.engine.window(np.zeros((1, self._window), np.int32))[0]
        return self._start_probs

    def adapted(self) -> tuple[np.ndarray, object]:
        """(distribution, word index) the strip ranks: the model's alone, or mixed with the profile's
        (ids past the vocabulary are the profile's personal words)."""
        if self.profile is None:
            return self.probabilities(), self.predictor.words
        return self.profile.mix(self.probabilities(), self._user_context()), self.profile.index(self.predictor.words)

    def suggest(self, k: int = 3, prefix: str = "") -> list[Suggestion]:
        prefix = self.predictor.normalise_prefix(prefix)
        if self.profile is None:
            return self.predictor.rank(self.probabilities(), k, prefix)
        check_k(k)
        ids, probs = self.profile.top(self.probabilities(), self._user_context(), int(k), prefix, self.predictor.words)
        return self.predictor.suggestions(ids, probs, self.profile.word)

    # ------------------------------------------------------------ internals
    def _user_context(self) -> list[str]:
        """The words the profile's n-gram reads before the next one (as typed, unknown words too)."""
        return [token for token, _, _ in self._typed[-(ORDER - 1):]]

    def _state(self) -> tuple[np.ndarray, np.ndarray]:
        if self._steps and self._steps[-1] is not None:
            return self._steps[-1][1], self._steps[-1][2]
        return self._zero, self._zero

    @property
    def _carries_state(self) -> bool:
        """Whether the step form carries the state word by word (a masked model with a step form)."""
        return self.predictor.engine.has_step and self.predictor.config.masked

    def _advance(self, ids: list[int], h: np.ndarray, c: np.ndarray):
        """State and probabilities after ``ids[-1]``, given the state after ``ids[:-1]``."""
        engine = self.predictor.engine
        if not self._carries_state:
            # No step form (the Keras model in training), or a model that reads its padding: the state
            # after "n words" depends on the window - n pads before them, so each word reads the window.
            probs = engine.window(window_ids(ids, self._window)[None, :])
            return probs[0], h, c
        probs, h, c = engine.step(np.array([ids[-1]], np.int32), h, c)
        return probs[0], h, c

    def _trim(self) -> None:
        if len(self._ids) > self._window + HISTORY:
            del self._ids[:-(self._window + HISTORY)]
            self._hidden = 0  # the start ids fell out of the history (far outside the window)
        if len(self._typed) > self._window + HISTORY:
            del self._typed[:-(self._window + HISTORY)]

    def _rebuild(self) -> None:
        """State from the zero state over the last ``window`` ids (what the window form reads)."""
        if len(self._ids) > self._window:
            # Past the window the next word drops the oldest one, so a carried state would be rebuilt
            # anyway: one window call (the LSTM loop inside the engine) gives the probabilities, and no
            # state is kept. ``_push`` and ``backspace`` rebuild whenever the ids outnumber the window.
            probs = self.predictor.engine.window(window_ids(self._ids, self._window)[None, :])
            self._steps = [(probs[0], self._zero, self._zero)]
            return
        if not self._carries_state:
            # Each position is its own window call, and only the last one is read unless backspace comes
            # back to an earlier one: those are computed when read (``probabilities``), not all now.
            self._steps = [None] * len(self._ids)
            return
        self._steps = []
        h, c = self._zero, self._zero
        visible = self._ids[-self._window:]
        for end in range(1, len(visible) + 1):
            probs, h, c = self._advance(visible[:end], h, c)
            self._steps.append((probs, h, c))
