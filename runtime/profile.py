"""What a keyboard learns from its user, kept on the device: personal words, the user's own word
sequences, and the words never to suggest.

    profile = Profile.open("me.profile", predictor.tokenizer)   # a damaged file is set aside, not fatal
    session = predictor.session(profile=profile)
    session.feed("see you at the kestrel")
    session.commit()                                            # learn from a sent message
    profile.save()                                              # atomic, capped (default 1 MB)

The model is never changed. Next to it the profile keeps a user n-gram (orders 1 to ``ORDER``) over the
words of committed messages, with counts that decay by ``DECAY`` per message (recent habits weigh more),
and a word outside the model's vocabulary becomes a *personal word* once it was sent ``threshold`` times:
it is then completed and suggested like a vocabulary word. A suggestion's probability mixes three parts:

    p(w) = w_model * p_model(w) + w_user * p_user(w) + w_recent * p_recent(w)

``p_user`` is a Witten-Bell n-gram over everything learned (slow decay: habits); ``p_recent`` the words of
the last ``RECENT_MESSAGES`` messages, each message's weight ``RECENT_DECAY`` times the next one's (the
topic of the moment). ``p_model`` of a personal word is the model's ``<unk>`` mass shared by how often the
user sent each unknown word. The weights are learned per evidence bucket (how long and how often seen the
user's context is) from how well each part predicted this user's sent words: an online EM estimate, so
a user whose text the model already knows keeps small weights and one who repeats themselves gets large
ones. Blocked words are removed from every suggestion after mixing, never
learned, and erased from what was learned before.

The file is JSON with a sha256 of its body, tied to the model's vocabulary digest; nothing here
opens a network connection.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nextword.context import WordIndex, argmax_passes
from nextword.errors import NextwordError, UsageError
from nextword.fileio import atomic_write_bytes

FORMAT = "nextword-profile"
VERSION = 1
ORDER = 3
#: Per committed message: a count halves in about 700 messages.
DECAY = 0.999
#: Times an unknown word must be sent before it is suggested (measured in docs/benchmarks.md).
PERSONAL_THRESHOLD = 2
DEFAULT_CAP_BYTES = 1_000_000
#: The weights of the user n-gram and of the recent words before the user's text says otherwise, and how
#: many targets that guess weighs.
PRIOR_USER, PRIOR_RECENT, PRIOR_TARGETS = 0.1, 0.05, 4.0
#: Messages the recent-words part reads, and the weight of each message relative to the one after it.
RECENT_MESSAGES, RECENT_DECAY = 50, 0.9
#: Words of a message the recent-words part keeps (its last ones): a commit reads them all, so a pasted
#: book, or a crafted file, cannot make every later message slow.
RECENT_WORDS = 1000
#: Marks the start of a message in the user n-gram's contexts (no token contains whitespace).
START = "\n"
MAX_FILE_BYTES = 16 * DEFAULT_CAP_BYTES
#: A saved n-gram count no profile reaches (a decayed count is at most 1 / (1 - DECAY) times a word's
#: occurrences per message) and that float32 vectors hold with room for the decay's scale (up to 1e20).
MAX_COUNT = 1e12


class ProfileError(NextwordError):
    """A profile file is damaged, of another model, or cannot be written."""


class ProfileMismatchError(ProfileError):
    """The profile was learned with another model's vocabulary."""


class ProfileDamagedError(ProfileError):
    """The file is not a whole nextword profile (cut short, edited, another kind of file)."""


def _bucket(level: int, count: float) -> str:
    """Evidence bucket of a context: the longest order the user n-gram has seen it at, and how often."""
    if level <= 1:
        return str(level)
    return f"{level}{'a' if count < 2 else 'b' if count < 5 else 'c'}"


class Profile:
    def __init__(self, path: str | Path | None = None, *, vocab_sha256: str | None = None,
                 threshold: int = PERSONAL_THRESHOLD, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise UsageError(f"a personal-word threshold must be a whole number >= 1, got {threshold!r}")
        self.path = Path(path) if path is not None else None
        self.vocab_sha256 = vocab_sha256
        self.threshold = threshold
        self.cap_bytes = cap_bytes
        self.messages = 0
        self.blocked: set[str] = set()
        self._blocked_here: set[str] = set()
        #: context (a tuple of 0..ORDER-1 words) -> {next word: count scaled by ``_scale``}: the n-grams
        self._children: dict[tuple[str, ...], dict[str, float]] = {}
        #: unknown word -> times sent (the personal-word threshold counts sends, not decayed weight)
        self.sent: dict[str, int] = {}
        #: bucket -> [responsibility of the user n-gram, of the recent words, targets], decayed like the counts
        self.mixer: dict[str, list[float]] = {}
        #: the last RECENT_MESSAGES messages' words, oldest first
        self.recent: list[list[str]] = []
        self._scale = 1.0  # stored counts are value / DECAY**(messages since the base): one multiply per read
        self._bytes = 0
        self._tokenizer = None
        self._version = 0  # bumps when the suggestable words change (the word index is rebuilt)
        self._unigram_changes = 0  # bumps when a unigram count (or a sent count) changes
        self._shares_key = self._view_key = self._parts_key = self._parts_of = None
        self._scratch = np.zeros(0, np.float32)  # ``_values``' buffer
        self._rebuild_structure()

    # ------------------------------------------------------------------ file
    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Profile:
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ProfileDamagedError(f"{path}: {size:,} bytes is not a profile (at most {MAX_FILE_BYTES:,}); "
                                          "move it away or give another --profile")
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ProfileError(f"{path}: no such profile; a keyboard creates it at the first sent message") from None
        except OSError as err:
            raise ProfileError(f"{path}: cannot read the profile ({err.strerror}); check the path") from None
        profile = cls(path, **kwargs)
        profile._read(raw, path)
        return profile

    @classmethod
    def open(cls, path: str | Path, tokenizer=None, *, warn=None, **kwargs) -> Profile:
        """The profile at ``path`` for a keyboard: a new one if missing; a damaged one is renamed aside
        (``PATH.damaged-TIME``, one line on ``warn``) and a new one starts. Another model's profile is refused."""
        path = Path(path)
        warn = warn or (lambda line: print(line, file=sys.stderr))
        profile = None
        if path.exists():
            try:
                profile = cls.load(path, **kwargs)
            except ProfileDamagedError as err:
                aside = path.with_name(f"{path.name}.damaged-{datetime.datetime.now():%Y%m%d-%H%M%S}")
                try:
                    path.rename(aside)
                except OSError:
                    raise err from None
                warn(f"{err}; set aside as {aside.name}, starting a new profile")
        if profile is None:
            profile = cls(path, **kwargs)
        if tokenizer is not None:
            profile.bind(tokenizer)
        return profile

    def _read(self, raw: bytes, path) -> None:
        """A profile file: one header line (format, version, sha256 of the rest), then the body, JSON."""
        def bad(what: str) -> ProfileError:
            return ProfileDamagedError(f"{path}: damaged profile ({what}); move it away or run "
                                       f"`nextword profile clear {path}`")

        header_line, _, body = raw.partition(b"\n")
        try:
            header = json.loads(header_line.decode("utf-8")) if len(header_line) < 1000 else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise bad("not a nextword profile")
        if header.get("version") != VERSION:
            raise ProfileError(f"{path}: profile version {header.get('version')!r}, this nextword reads {VERSION}; "
                               "upgrade nextword")
        if header.get("sha256") != hashlib.sha256(body).hexdigest():
            raise bad("its checksum does not match: it was cut short or edited")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise bad("not JSON") from None
        try:
            self.vocab_sha256 = _typed(data["vocab_sha256"], str)
            self.messages = _typed(data["messages"], int)
            self.threshold = _typed(data["threshold"], int)
            self.blocked = {_typed(word, str) for word in _typed(data["blocked"], list)}
            self.sent = {_typed(w, str): _typed(n, int) for w, n in _typed(data["sent"], dict).items()}
            children = {tuple(key.split(" ")) if key else (): _typed(words, dict)
                        for key, words in _typed(data["grams"], dict).items()}
            if any(len(context) >= ORDER or "" in context for context in children):
                raise ValueError
            self.mixer = {_typed(b, str): [float(_typed(r, (int, float))), float(_typed(q, (int, float))),
                                           float(_typed(n, (int, float)))]
                          for b, (r, q, n) in _typed(data["mixer"], dict).items()}
            self.recent = [[_typed(w, str) for w in _typed(m, list)][-RECENT_WORDS:]
                           for m in _typed(data["recent"], list)]
        except (KeyError, TypeError, ValueError, OverflowError):
            raise bad("a field is missing or of the wrong type") from None
        if not 1 <= self.threshold < 2**31 or not 0 <= self.messages < 2**53 or len(self.recent) > RECENT_MESSAGES \
                or not all(1 <= n < 2**53 for n in self.sent.values()) \
                or any(not all(map(_is_count, stats)) or stats[0] + stats[1] > stats[2] * (1 + 1e-6) + 1e-9
                       for stats in self.mixer.values()):
            raise bad("a value is out of range")
        if not all(_is_word(word) and _is_count(value, MAX_COUNT)
                   for words in children.values() for word, value in words.items()):
            raise bad("an n-gram's word or count is out of range")
        unigrams = children.get((), {})
        if any(word not in unigrams for context, words in children.items() if context for word in words):
            # (learning adds every order of an n-gram, and pruning drops a longer one first)
            raise bad("an n-gram's word is missing from its unigrams")
        self._children = {context: words for context, words in children.items() if words}
        self._rebuild_structure()

    def to_dict(self) -> dict:
        """What the file holds (its body; n-grams as {"context words": {"next word": count}}, the unigrams'
        context "", words never hold a space)."""
        factor = self._factor()
        return {"format": FORMAT, "version": VERSION, "vocab_sha256": self.vocab_sha256, "messages": self.messages,
                "threshold": self.threshold, "decay": DECAY, "blocked": sorted(self.blocked),
                "sent": dict(sorted(self.sent.items())),
                "grams": {" ".join(context): {word: round(value * factor, 6) for word, value in words.items()}
                          for context, words in self._children.items()},
                "mixer": {b: [round(v, 6) for v in stats] for b, stats in sorted(self.mixer.items())},
                "recent": self.recent}

    def _encode(self) -> bytes:
        body = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        header = {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(body).hexdigest()}
        return json.dumps(header).encode("utf-8") + b"\n" + body

    def to_bytes(self) -> bytes:
        """The file: a header line (format, version, sha256 of the body), then the body; pruned to the cap."""
        self._fit_cap()
        return self._encode()

    def save(self, path: str | Path | None = None) -> Path:
        """Write the profile atomically (the old file stays whole until the new one is in place)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise UsageError("this profile has no file: give save() a path")
        try:
            atomic_write_bytes(target, self.to_bytes(), mode=0o600)
        except OSError as err:
            raise ProfileError(f"{target}: cannot write the profile ({err.strerror}); check the folder") from None
        return target

    # --------------------------------------------------------------- binding
    def bind(self, tokenizer) -> None:
        """Tie the profile to a model's vocabulary (a new profile takes it; another model's is refused)."""
        digest = tokenizer.vocab_sha256()
        if self.vocab_sha256 is None:
            self.vocab_sha256 = digest
        elif self.vocab_sha256 != digest:
            where = f"{self.path}: " if self.path else ""
            raise ProfileMismatchError(f"{where}this profile was learned with another model's vocabulary "
                                       f"(sha256 {self.vocab_sha256[:12]}…, the model's is {digest[:12]}…); give "
                                       "another --profile file, or clear this one with `nextword profile clear`")
        if self._tokenizer is tokenizer:
            return
        self._tokenizer = tokenizer
        blocked = {self._normalise(word) for word in self.blocked} - {""}
        if blocked != self.blocked:  # a hand-edited list: block as the model's tokenizer writes the words
            self.blocked = set()
            self.block_all(blocked)
        self._rebuild_words()

    def _normalise(self, word: str) -> str:
        if self._tokenizer is None:
            return word.strip().lower()
        tokens = self._tokenizer.split(word)
        return tokens[-1] if tokens else ""

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            raise UsageError("bind the profile to a model first (predictor.session(profile=...) does it)")
        return self._tokenizer

    # -------------------------------------------------------------- blocking
    def block(self, word: str, *, keep: bool = True) -> str:
        """Never suggest, complete or learn ``word``; what was learned with it is erased. Returns the word.

        ``keep=False`` blocks it for this process only (``--block FILE``): the file does not list it."""
        word = self._normalise(word)
        if not word:
            raise UsageError("nothing to block: give a word")
        self.block_all([word], keep=keep)
        return word

    def block_all(self, words, *, keep: bool = True) -> None:
        """``block`` for many words at once (a blocklist file): what was learned is filtered once."""
        words = {self._normalise(word) for word in words} - {""}
        if not words:
            return
        (self.blocked if keep else self._blocked_here).update(words)
        self.recent = [[w for w in message if w not in words] for message in self.recent]
        for word in words:
            self.sent.pop(word, None)
        self._set_grams({gram: value for gram, value in self.grams.items() if words.isdisjoint(gram)})

    def unblock(self, word: str) -> None:
        word = self._normalise(word)
        self.blocked.discard(word)
        self._blocked_here.discard(word)
        self._version += 1

    def is_blocked(self, word: str) -> bool:
        return word in self.blocked or word in self._blocked_here

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

    # ------------------------------------------------------------- predicting
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

    # ------------------------------------------------------------- summary
    def summary(self, top: int = 10) -> dict:
        factor = self._factor()
        personal = sorted((w for w, n in self.sent.items() if n >= self.threshold and w not in self.blocked),
                          key=lambda w: -self.sent[w])
        buckets = sorted(set(self.mixer) | {"1"})
        rounded = {b: [round(w, 3) for w in self.weights(b)] for b in buckets}
        return {"messages": self.messages, "vocab_sha256": self.vocab_sha256, "threshold": self.threshold,
                "personal_words": len(personal), "top_personal_words": personal[:top],
                "ngrams": {f"order {n}": sum(len(words) for context, words in self._children.items()
                                             if len(context) == n - 1) for n in range(1, ORDER + 1)},
                "words_learned": round(sum(self._children.get((), {}).values()) * factor, 1),
                "blocked": sorted(self.blocked),
                "mixing_weights": {b: {"model": w[0], "user": w[1], "recent": w[2]} for b, w in rounded.items()}}


def _entry_bytes(gram: tuple[str, ...]) -> int:
    """About what one n-gram costs in the file (characters, not bytes: an estimate), with its count."""
    return sum(map(len, gram)) + len(gram) + 12


def _is_count(value, limit: float = 1e300) -> bool:
    """A finite number >= 0 below ``limit`` (JSON allows 1e400 and 400-digit integers)."""
    return (type(value) is float and 0.0 <= value < limit) or (type(value) is int and 0 <= value < min(limit, 2**53))


def _is_word(word: str) -> bool:
    """A word a profile can hold: what a tokenizer makes (contexts are saved joined by spaces)."""
    return bool(word) and " " not in word and word != START


def _typed(value, kinds):
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError
    return value


def read_blocklist(path: str | Path) -> list[str]:
    """Words to block, one per line (``#`` starts a comment)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--block {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--block {path}: is a directory; give a file of words, one per line") from None
    except OSError as err:
        raise UsageError(f"--block {path}: cannot read it ({err.strerror}); give a file of words, one per line") \
            from None
    except UnicodeDecodeError as err:
        raise UsageError(f"--block {path}: not UTF-8 text (byte {err.start}); give a file of words, one per line") \
            from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]

