"""A keyboard session: the recurrent state carried word by word with the step form.

    session = predictor.session()
    session.feed("hello how")        # one model step per word
    session.suggest(3)               # next word after "hello how"
    session.suggest(3, prefix="i")   # completions of a partly typed word
    session.backspace()              # forget the last word
    session.reset()                  # a new message

Its suggestions equal ``predictor.suggest(text)`` for the same text: within
the model's window each word costs one step; once the text is longer than the
window, the state is rebuilt from the last ``window`` words, exactly as the
window form reads them. A model that reads its padding (``config.masked`` false) is read
through the window form for every word instead: its state cannot be carried.
"""

from __future__ import annotations

import numpy as np

from nextword.context import Suggestion, window_ids


class Session:
    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self._window = predictor.config.window
        self._zero = np.zeros((predictor.config.num_layers, 1, predictor.config.hidden_size), np.float32)
        self._start_probs: np.ndarray | None = None
        self.reset()

    # ------------------------------------------------------------- typing
    def reset(self) -> None:
        """Forget everything typed: a new message (after ``<eos>`` when the model has one)."""
        self._ids: list[int] = []
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
        ids = self.predictor.tokenizer.encode(text)
        if len(ids) > 1 and len(self._ids) + len(ids) > self._window:
            self._ids.extend(ids)
            self._rebuild()
            return
        for token_id in ids:
            self._push(token_id)

    def _push(self, token_id: int) -> None:
        self._ids.append(token_id)
        if len(self._ids) <= self._window and len(self._steps) == len(self._ids) - 1:
            self._steps.append(self._advance(self._ids, *self._state()))
        else:
            self._rebuild()

    def backspace(self) -> str | None:
        """Remove the last word; returns it (None if nothing was typed)."""
        if len(self._ids) <= self._hidden:
            return None
        token_id = self._ids.pop()
        if len(self._ids) < self._window and len(self._steps) == len(self._ids) + 1:
            self._steps.pop()
        else:
            self._rebuild()
        return self.predictor.tokenizer.vocab[token_id]

    @property
    def words(self) -> list[str]:
        return self.predictor.tokenizer.decode(self._ids[self._hidden:])

    # --------------------------------------------------------- suggesting
    def probabilities(self) -> np.ndarray:
        if self._steps:
            return self._steps[-1][0]
        if self._start_probs is None:  # empty context: the zero state's distribution
            self._start_probs = self.predictor.engine.window(np.zeros((1, self._window), np.int32))[0]
        return self._start_probs

    def suggest(self, k: int = 3, prefix: str = "") -> list[Suggestion]:
        return self.predictor.rank(self.probabilities(), k, self.predictor.normalise_prefix(prefix))

    # ------------------------------------------------------------ internals
    def _state(self) -> tuple[np.ndarray, np.ndarray]:
        if self._steps:
            return self._steps[-1][1], self._steps[-1][2]
        return self._zero, self._zero

    def _advance(self, ids: list[int], h: np.ndarray, c: np.ndarray):
        """State and probabilities after ``ids[-1]``, given the state after ``ids[:-1]``."""
        engine = self.predictor.engine
        if not engine.has_step or not self.predictor.config.masked:
            # No step form (the Keras model in training), or a model that reads its padding: the state
            # after "n words" depends on the window - n pads before them, so each word reads the window.
            probs = engine.window(window_ids(ids, self._window)[None, :])
            return probs[0], h, c
        probs, h, c = engine.step(np.array([ids[-1]], np.int32), h, c)
        return probs[0], h, c

    def _rebuild(self) -> None:
        """State from the zero state over the last ``window`` ids (what the window form reads)."""
        self._steps = []
        h, c = self._zero, self._zero
        visible = self._ids[-self._window:]
        for end in range(1, len(visible) + 1):
            probs, h, c = self._advance(visible[:end], h, c)
            self._steps.append((probs, h, c))
