"""Learning from sent messages: decayed n-gram counts, personal words, the mixing weights' online EM, and
the bounds that keep a profile small (rescaling, pruning to the cap)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from nextword.profile.settings import DECAY, ORDER, RECENT_MESSAGES, RECENT_WORDS, START

if TYPE_CHECKING:
    from nextword.profile.profile import Profile


class Learning:
    """What a ``Profile`` learns and how it stays within its cap (a mixin: the state lives in ``Profile``)."""

    def merge(self, other: Profile) -> None:
        """Add what ``other`` learned (an export of this user's profile, say): counts, sends, blocked words."""
        ours, theirs = self._factor(), other._factor()
        grams = {gram: value * ours for gram, value in self.grams.items()}
        for gram, value in other.grams.items():
            grams[gram] = grams.get(gram, 0.0) + value * theirs
        self.blocked |= other.blocked
        self._scale = 1.0
        for word, count in other.sent.items():
            self.sent[word] = self.sent.get(word, 0) + count
        for bucket, theirs_stats in other.mixer.items():
            stats = self.mixer.setdefault(bucket, [0.0, 0.0, 0.0])
            for i, value in enumerate(theirs_stats):
                stats[i] += value
        self.recent = [[w for w in message if not self.is_blocked(w)]
                       for message in (self.recent + other.recent)[-RECENT_MESSAGES:]]
        self.messages += other.messages
        self._set_grams({gram: value for gram, value in grams.items() if not any(map(self.is_blocked, gram))})

    # --------------------------------------------------------------- learning
    def learn(self, tokens: Sequence[str], model_probs: Sequence[float | None]) -> None:
        """Learn from one sent message: ``tokens`` as typed (unknown words kept as written), and the model's
        probability of each token given the ones before it (None where it was not computed, e.g. a paste)."""
        tokens = [t for t in tokens if t]
        # First score each word with what was known before this message: the mixing weights learn from that.
        for position, token in enumerate(tokens):
            p_model = model_probs[position] if position < len(model_probs) else None
            if p_model is None or self.is_blocked(token):
                continue
            context = self._context(tokens[max(0, position - (ORDER - 1)):position])
            p_user, bucket = self.user_prob(context, token)
            p_recent = self._recent_prob(token)
            p_model = self._model_share(token, p_model)
            w_model, w_user, w_recent = self.weights(bucket)
            mixed = w_model * p_model + w_user * p_user + w_recent * p_recent
            if mixed <= 0:  # no part gave it any probability: nothing to learn about the weights
                continue
            stats = self.mixer.setdefault(bucket, [0.0, 0.0, 0.0])
            stats[0] += w_user * p_user / mixed
            stats[1] += w_recent * p_recent / mixed
            stats[2] += 1.0
        self.messages += 1
        self._scale /= DECAY
        for stats in self.mixer.values():
            for i in range(len(stats)):
                stats[i] *= DECAY
        if self._scale > 1e20:  # fold the scale into the counts long before float32 overflows
            self._rescale()
        history = [START] * (ORDER - 1)
        for token in tokens:
            if self.is_blocked(token):
                history = [START] * (ORDER - 1)  # no n-gram spans a blocked word
                continue
            history.append(token)
            for order in range(1, ORDER + 1):
                gram = tuple(history[-order:])
                if START in gram[1:]:
                    break
                self._add(gram)
            if self._is_unknown(token):
                before = self.sent.get(token, 0)
                self.sent[token] = before + 1
                self._sent_vector[self._extra_id[token]] += 1
                self._sent_total += 1
                if before + 1 == self.threshold:
                    self._version += 1
        words = [t for t in tokens if not self.is_blocked(t)]
        if words:
            self.recent = (self.recent + [words[-RECENT_WORDS:]])[-RECENT_MESSAGES:]
        if self._bytes > self.cap_bytes:
            self._prune(0.85 * self.cap_bytes)
        elif self._tokenizer is not None:
            self._refresh_recent()

    def _add(self, gram: tuple[str, ...]) -> None:
        context, word = gram[:-1], gram[-1]
        children = self._children.setdefault(context, {})
        value = children.get(word)
        if value is None:
            self._bytes += _entry_bytes(gram)
            value = 0.0
        children[word] = value + self._scale
        self._totals[context] = self._totals.get(context, 0.0) + self._scale
        self._arrays.pop(context, None)
        if len(gram) == 1 and self._tokenizer is not None:
            self._register_word(word)
            self._unigram_buffer[self._ext_id(word)] = value + self._scale
            self._unigram_changes += 1


    # ------------------------------------------------------------ structure
    @property
    def grams(self) -> dict[tuple[str, ...], float]:
        """Every n-gram (1..ORDER words, the last one the target) -> its count, scaled by ``_scale``."""
        return {(*context, word): value for context, words in self._children.items() for word, value in words.items()}

    def _set_grams(self, grams: dict[tuple[str, ...], float]) -> None:
        self._children = {}
        for gram, value in grams.items():
            self._children.setdefault(gram[:-1], {})[gram[-1]] = value
        self._rebuild_structure()

    def _rebuild_structure(self) -> None:
        """Totals, size and extra words, from the n-grams (after load, bind, block, prune)."""
        self._totals = {context: sum(words.values()) for context, words in self._children.items()}
        self._arrays: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, float]] = {}
        self._bytes = sum(len(words) * (sum(map(len, context)) + len(context) + 13) + sum(map(len, words))
                          for context, words in self._children.items())
        self._rebuild_words()

    def _rebuild_words(self) -> None:
        """Extra ids of the unknown words, sent counts and recent words (after bind, and every rebuild)."""
        self._version += 1
        self._unigram_changes += 1
        self._index_key = None
        self._extra: list[str] = []
        self._extra_id: dict[str, int] = {}
        if self._tokenizer is None:
            return
        unigrams = self._children.get((), {})
        self.sent = {w: n for w, n in self.sent.items() if self._is_unknown(w) and w in unigrams}
        self._sent_buffer = np.zeros(64, np.float64)
        self._unigram_buffer = np.zeros(self._tokenizer.vocab_size + 64, np.float32)
        self._sent_total = 0
        for word, value in unigrams.items():
            self._register_word(word)
            self._unigram_buffer[self._ext_id(word)] = value
        self._refresh_sent()
        self._refresh_recent()

    def _register_word(self, word: str) -> None:
        """A new unknown word gets the next extra id (the sent-count vector grows by doubling)."""
        if self._tokenizer.id_of(word) is None and word not in self._extra_id:
            self._extra_id[word] = len(self._extra)
            self._extra.append(word)
            if len(self._sent_buffer) < len(self._extra):
                self._sent_buffer = np.concatenate([self._sent_buffer, np.zeros_like(self._sent_buffer)])
                grown = np.zeros(len(self._sent_buffer) // 2, np.float32)
                self._unigram_buffer = np.concatenate([self._unigram_buffer, grown])

    @property
    def _sent_vector(self) -> np.ndarray:
        return self._sent_buffer[: len(self._extra)]

    def _refresh_sent(self) -> None:
        self._sent_vector[:] = [self.sent.get(w, 0) for w in self._extra]
        self._sent_total = int(self._sent_vector.sum())

    # -------------------------------------------------------------- bounds
    def _rescale(self) -> None:
        factor = self._factor()
        for words in self._children.values():
            for word in words:
                words[word] *= factor
        self._scale = 1.0
        self._rebuild_structure()

    def _prune(self, target_bytes: float) -> None:
        """Drop the lowest decayed counts (the oldest and rarest n-grams: a longer n-gram never counts more
        than its shorter suffix, so they go first) until the entries fit ``target_bytes``."""
        ranked = sorted(self.grams.items(), key=lambda item: (item[1], -len(item[0])))
        size = self._bytes
        cut = 0
        while cut < len(ranked) and size > target_bytes:
            size -= _entry_bytes(ranked[cut][0])
            cut += 1
        self._set_grams(dict(ranked[cut:]))

    def _fit_cap(self) -> None:
        """Prune until the serialized file fits ``cap_bytes``."""
        for _ in range(20):
            size = len(self._encode())
            if size <= self.cap_bytes or not self._children:
                return
            self._prune(self._bytes * 0.9 * self.cap_bytes / size)


def _entry_bytes(gram: tuple[str, ...]) -> int:
    """About what one n-gram costs in the file (characters, not bytes: an estimate), with its count."""
    return sum(map(len, gram)) + len(gram) + 12

