"""Suggesting from a profile: the model, the user n-gram (Witten-Bell) and the recent words mixed with
weights learned per evidence bucket; ranking the mix exactly, at a fraction of a full pass's cost."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from nextword.context import WordIndex, argmax_passes
from nextword.profile.settings import ORDER, PRIOR_RECENT, PRIOR_TARGETS, PRIOR_USER, RECENT_DECAY, START


def _bucket(level: int, count: float) -> str:
    """Evidence bucket of a context: the longest order the user n-gram has seen it at, and how often."""
    if level <= 1:
        return str(level)
    return f"{level}{'a' if count < 2 else 'b' if count < 5 else 'c'}"


class Mixing:
    """The mixed distribution and its ranking (a mixin: the state lives in ``Profile``)."""

    def _factor(self) -> float:
        return 1.0 / self._scale

    def weights(self, bucket: str) -> tuple[float, float, float]:
        """The learned weights (model, user n-gram, recent words) for contexts of this evidence bucket."""
        if bucket == "0":  # nothing learned yet
            return 1.0, 0.0, 0.0
        r_user, r_recent, n = self.mixer.get(bucket, (0.0, 0.0, 0.0))
        w_user = (r_user + PRIOR_USER * PRIOR_TARGETS) / (n + PRIOR_TARGETS)
        w_recent = (r_recent + PRIOR_RECENT * PRIOR_TARGETS) / (n + PRIOR_TARGETS)
        return 1.0 - w_user - w_recent, w_user, w_recent

    def _recent_prob(self, token: str) -> float:
        if not self.recent:
            return 0.0
        weight, hits, total = 1.0, 0.0, 0.0
        for message in reversed(self.recent):
            hits += weight * message.count(token)
            total += weight * len(message)
            weight *= RECENT_DECAY
        return hits / total

    def _refresh_recent(self) -> None:
        """The recent words' distribution, as (ids, probabilities) over the model's ids and the extra words."""
        weights: dict[int, float] = {}
        weight, total = 1.0, 0.0
        for message in reversed(self.recent):
            for word in message:
                index = self._ext_id_or_none(word)
                if index is not None:
                    weights[index] = weights.get(index, 0.0) + weight
            total += weight * len(message)
            weight *= RECENT_DECAY
        self._recent_arrays = (np.fromiter(weights, np.int64, len(weights)),
                               np.fromiter(weights.values(), np.float64, len(weights)) / (total or 1.0))
        self._recent_parts: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def _recent_part(self, ratio: float) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 values) of the recent words scaled by ``ratio`` (w_recent / w_model): one per
        evidence bucket, kept until the next message (every word of a message reuses them)."""
        part = self._recent_parts.get(ratio)
        if part is None:
            if len(self._recent_parts) > 32:  # (one per bucket until a message is learned: only a bound)
                self._recent_parts.clear()
            ids, weights = self._recent_arrays
            part = self._recent_parts[ratio] = (ids, (ratio * weights).astype(np.float32))
        return part

    def _context(self, tokens: Sequence[str]) -> tuple[str, ...]:
        history = [START] * (ORDER - 1) + [t for t in tokens if t]
        if (self.blocked or self._blocked_here) and any(map(self.is_blocked, tokens)):
            # the context restarts after a blocked word
            last = max(i for i, t in enumerate(history) if self.is_blocked(t))
            history = [START] * (ORDER - 1) + history[last + 1:]
        return tuple(history[-(ORDER - 1):])

    def _levels(self, context: tuple[str, ...]):
        """(order, context) pairs from the unigram up to the longest context the user n-gram has seen."""
        levels = [(1, ())]
        for order in range(2, ORDER + 1):
            ctx = context[len(context) - (order - 1):]
            if START in ctx[1:] or self._totals.get(ctx, 0.0) <= 0:
                break
            levels.append((order, ctx))
        return levels

    def user_prob(self, context: tuple[str, ...], word: str) -> tuple[float, str]:
        """(p_user(word | context), evidence bucket of the context)."""
        if not self._totals.get((), 0.0):
            return 0.0, "0"
        levels = self._levels(context)
        p = 0.0
        for order, ctx in levels:
            children = self._children[ctx]
            count = children.get(word, 0.0)
            total = self._totals[ctx]
            if order == 1:
                p = count / total
            else:
                types = len(children)
                p = (count + types * p * self._scale) / (total + types * self._scale)
        order, ctx = levels[-1]
        return p, _bucket(order, self._totals[ctx] * self._factor())

    def _model_share(self, token: str, p_model: float) -> float:
        """The model's probability of an unknown word: its ``<unk>`` mass, shared by how often the user sent
        each unknown word (Witten-Bell: the part for words never sent stays with ``<unk>``)."""
        if not self._is_unknown(token):
            return p_model
        return p_model * self.sent.get(token, 0) / (self._sent_total + len(self.sent)) if self.sent else 0.0

    def _is_unknown(self, token: str) -> bool:
        tokenizer = self.tokenizer
        return tokenizer.id_of(token) is None and token not in tokenizer.config.special_tokens

    # -------------------------------------------------- the session's mixing
    def _mixing(self, context_tokens: Sequence[str]) -> tuple[float, float, float, list]:
        """How this context mixes: (w_model, w_recent, the unigram vector's factor, levels), where levels
        lists (ids, scaled counts, coefficient) of the user n-gram's contexts above the unigram, longest first.

        Witten-Bell, unrolled: each level is (counts + T * lower) / (C + T), so the unigram vector enters once
        with the product of the levels' T / (C + T), and each level's few counts are added sparsely with the
        product of the levels above it."""
        totals = self._totals
        total = totals.get((), 0.0)
        if not total:
            return 1.0, 0.0, 0.0, []
        # The levels above the unigram (as ``_levels``), shortest first, each one dictionary lookup when cached.
        context, arrays, seen = self._context(context_tokens), self._arrays, []
        for start in range(len(context) - 1, -1, -1):
            ctx = context[start:]
            level = arrays.get(ctx)
            if level is None:
                if START in ctx[1:] or totals.get(ctx, 0.0) <= 0:
                    break
                level = self._child_arrays(ctx)
            seen.append(level)
        bucket = _bucket(len(seen) + 1, seen[-1][2] * self._factor()) if seen else "1"
        w_model, w_user, w_recent = self.weights(bucket)
        coefficients, above, scale = [], w_user, self._scale
        for ids, counts, context_total in reversed(seen):
            types = len(ids) * scale
            denominator = context_total + types
            coefficients.append((ids, counts, above / denominator))
            above *= types / denominator
        return w_model, w_recent, above / total, coefficients

    def _unknown_shares(self, unk: int | None) -> tuple[np.ndarray, float] | None:
        """Each extra word's share of the model's ``<unk>`` mass (``_model_share``) and what stays with
        ``<unk>``; None when there is none. Kept until a word is learned."""
        if not (self._extra and unk is not None and self.sent):
            return None
        key = (self._unigram_changes, self._sent_total, len(self.sent))
        if self._shares_key != key:
            shares = self._sent_vector / (self._sent_total + len(self.sent))
            self._shares, self._shares_key = (shares.astype(np.float32), 1.0 - shares.sum()), key
        return self._shares

    def mix(self, model_probs: np.ndarray, context_tokens: Sequence[str]) -> np.ndarray:
        """The mixed distribution (float32) over the model's ids and then the profile's extra words (ids from
        ``vocab_size`` on). Unknown words move out of ``<unk>`` by ``_model_share``."""
        mixing = self._mixing(context_tokens)
        out = self._unscaled(model_probs, mixing)
        shares = self._unknown_shares(self.tokenizer.unk_id)
        if shares is not None:
            out[self.tokenizer.unk_id] *= shares[1]
        out *= np.float32(mixing[0])
        return out

    def _unscaled(self, model_probs: np.ndarray, mixing, extras: np.ndarray | None = None) -> np.ndarray:
        """The mix divided by w_model, ``<unk>`` not yet shared: p_model + (u U + the sparse parts) / w_model
        (float32, the model's ids then the extra words). Ranking needs no more (w_model > 0 scales every word
        alike), and it is two passes over the vocabulary: the unigram vector U scaled, then the model's
        probabilities added; the n-gram levels above the unigram and the recent words are sparse.
        ``extras``: only these extra words are computed and the others are -inf (never ranked), else all."""
        w_model, w_recent, unigram, levels = mixing
        vocab_size = len(model_probs)
        out = np.empty(vocab_size + len(self._extra), np.float32)
        learned = self._totals.get((), 0.0)
        factor = np.float32(unigram / w_model)
        if len(out) > vocab_size:
            shares = self._unknown_shares(self.tokenizer.unk_id)
            if extras is None:
                place, counts = slice(vocab_size, None), self._unigram_buffer[vocab_size: len(out)]
                shared = None if shares is None else shares[0]
            else:
                out[vocab_size:] = -np.inf  # (the sparse parts below add to it and it stays -inf)
                place, (counts, shared) = extras, self._extra_parts(extras, shares)
            values = counts * factor if learned else np.zeros(len(counts), np.float32)
            if shared is not None:
                values += model_probs[self.tokenizer.unk_id] * shared
            out[place] = values
        if learned:
            np.multiply(self._unigram_buffer[:vocab_size], factor, out=out[:vocab_size])
            out[:vocab_size] += model_probs
            for ids, counts, coefficient in levels:
                out[ids] += (coefficient / w_model) * counts  # (ids of one context are distinct)
            ids, added = self._recent_part(w_recent / w_model)
            out[ids] += added
        else:
            out[:vocab_size] = model_probs
        return out

    def _extra_parts(self, extras: np.ndarray, shares) -> tuple[np.ndarray, np.ndarray | None]:
        """(unigram counts, ``<unk>`` shares) of these extra words (the suggested ones), gathered once and
        kept until a word is learned or the suggested words change."""
        key = (self._unigram_changes, self._shares_key)
        if self._parts_key != key or self._parts_of is not extras:
            shared = None if shares is None else shares[0][extras - self.tokenizer.vocab_size]
            self._parts, self._parts_key, self._parts_of = (self._unigram_buffer[extras], shared), key, extras
        return self._parts

    def top(self, model_probs: np.ndarray, context_tokens: Sequence[str], k: int, prefix: str,
            base: WordIndex) -> tuple[list[int], list[float]]:
        """(ids, mixed probabilities) of the ``k`` best suggestions: exactly ``index(base).top`` over ``mix``
        (same ids, same order, same float32 values), at a fraction of the cost: the unscaled mix is ranked
        in place, the extra words only where they are suggested, and with a prefix only the words with that
        prefix are mixed (``_values``)."""
        index = self.index(base)
        model_probs = model_probs.reshape(-1)
        mixing = self._mixing(context_tokens)
        w_model = np.float32(mixing[0])
        if prefix:
            candidates = index.with_prefix(prefix)
            values = self._values(model_probs, candidates, mixing)
            best, best_values = argmax_passes(values, k)
            return candidates[best].tolist(), [float(value * w_model) for value in best_values]
        suggested_extras, hidden = self._ranking_view(index, len(model_probs))
        out = self._unscaled(model_probs, mixing, suggested_extras)
        out[hidden] = -np.inf
        ids, values = argmax_passes(out, min(k, len(index.ids)))
        return ids, [float(value * w_model) for value in values]

    def _ranking_view(self, index: WordIndex, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(the extra words' ids that are suggested, the model's ids that are not: special and blocked), until
        either changes. (``_unscaled`` leaves the extra words that are not suggested at -inf.)"""
        if self._view_key != (index, len(self._extra)):
            hidden = np.ones(vocab_size, bool)
            hidden[index.ids[index.ids < vocab_size]] = False
            self._view = (index.ids[index.ids >= vocab_size], np.flatnonzero(hidden))
            self._view_key = (index, len(self._extra))
        return self._view

    def _values(self, model_probs: np.ndarray, ids: np.ndarray, mixing) -> np.ndarray:
        """``_unscaled(...)[ids]`` for distinct ids: the same float operations in the same order, so equal
        bits. The sparse parts are added in a scratch vector that only these ids and the sparse ones touch."""
        w_model, w_recent, unigram, levels = mixing
        vocab_size = len(model_probs)
        inside = ids < vocab_size
        learned = self._totals.get((), 0.0)
        if learned:
            values = self._unigram_buffer[ids] * np.float32(unigram / w_model)
            values[inside] += model_probs[ids[inside]]
        else:
            values = np.zeros(len(ids), np.float32)
            values[inside] = model_probs[ids[inside]]
        unk = self.tokenizer.unk_id
        shares = self._unknown_shares(unk)
        if shares is not None and not inside.all():
            values[~inside] += model_probs[unk] * shares[0][ids[~inside] - vocab_size]
        if not learned or not len(ids):
            return values
        scratch = self._scratch
        if len(scratch) < len(self._unigram_buffer):
            scratch = self._scratch = np.zeros(len(self._unigram_buffer), np.float32)
        scratch[ids] = values
        sparse = [(ids, (coefficient / w_model) * counts) for ids, counts, coefficient in levels]
        sparse.append(self._recent_part(w_recent / w_model))
        for level_ids, added in sparse:
            scratch[level_ids] += added  # as ``_unscaled`` adds them
        values = scratch[ids]
        scratch[ids] = 0.0
        for level_ids, _ in sparse:
            scratch[level_ids] = 0.0
        return values

    def _child_arrays(self, context: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, float]:
        """(ids, scaled counts, scaled total) of a context's continuations, cached until the context learns
        again (``_add``) or the n-grams are rebuilt."""
        cached = self._arrays.get(context)
        if cached is None:
            children = self._children[context]
            cached = (np.fromiter((self._ext_id(w) for w in children), np.int64, len(children)),
                      np.fromiter(children.values(), np.float32, len(children)), self._totals[context])
            self._arrays[context] = cached
        return cached

    def index(self, base: WordIndex) -> WordIndex:
        """The words a session may suggest: the model's and the personal ones, minus the blocked ones."""
        key = (id(base), self._version)
        if self._index_key != key:
            vocab_size = self.tokenizer.vocab_size
            blocked_ids = {self.tokenizer.id_of(w) for w in self.blocked | self._blocked_here} - {None}
            pairs = [(w, int(i)) for w, i in zip(base.words, base.ids) if int(i) not in blocked_ids]
            pairs += [(w, vocab_size + n) for n, w in enumerate(self._extra)
                      if self.sent.get(w, 0) >= self.threshold and not self.is_blocked(w)]
            self._index = WordIndex.from_pairs(pairs)
            self._index_key = key
        return self._index

    def extra_id(self, word: str) -> int | None:
        """The id past the vocabulary of an unknown word the profile has seen (None if never sent)."""
        index = self._extra_id.get(word)
        return None if index is None else self.tokenizer.vocab_size + index

    def word(self, ext_id: int) -> str:
        vocab_size = self.tokenizer.vocab_size
        return self.tokenizer.vocab[ext_id] if ext_id < vocab_size else self._extra[ext_id - vocab_size]

    def _ext_id_or_none(self, word: str) -> int | None:
        token_id = self.tokenizer.id_of(word)
        return token_id if token_id is not None else self.extra_id(word)

    def _ext_id(self, word: str) -> int:
        token_id = self.tokenizer.id_of(word)
        if token_id is not None:
            return token_id
        return self.tokenizer.vocab_size + self._extra_id[word]

