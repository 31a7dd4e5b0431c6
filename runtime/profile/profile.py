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

from pathlib import Path

import numpy as np
from nextword.errors import UsageError
from nextword.profile.blocking import Blocking
from nextword.profile.learning import Learning
from nextword.profile.mixing import Mixing
from nextword.profile.settings import DEFAULT_CAP_BYTES, PERSONAL_THRESHOLD
from nextword.profile.storage import ProfileFile, ProfileMismatchError


class Profile(ProfileFile, Blocking, Learning, Mixing):
    """A user's profile: the state, and how it binds to a model's vocabulary. The jobs live in the mixins:
    the file (``storage``), blocking (``blocking``), learning (``learning``) and suggesting (``mixing``)."""

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

