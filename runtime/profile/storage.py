"""A profile's file: one header line (format, version, sha256 of the body), then a JSON body; atomic
writes, a size cap, and one line for every way a file can be wrong.

    profile = Profile.open("me.profile", tokenizer)   # a damaged file is set aside, not fatal
    profile.save()
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nextword.errors import NextwordError, UsageError
from nextword.fileio import atomic_write_bytes, read_file
from nextword.records import header_mismatch
from nextword.profile.settings import (
    DECAY,
    FORMAT,
    MAX_COUNT,
    MAX_FILE_BYTES,
    ORDER,
    RECENT_MESSAGES,
    RECENT_WORDS,
    START,
    VERSION,
)

if TYPE_CHECKING:
    from nextword.profile.profile import Profile


class ProfileError(NextwordError):
    """A profile file is damaged, of another model, or cannot be written."""


class ProfileMismatchError(ProfileError):
    """The profile was learned with another model's vocabulary."""


class ProfileDamagedError(ProfileError):
    """The file is not a whole nextword profile (cut short, edited, another kind of file)."""



class ProfileFile:
    """Reading, writing and summarising a ``Profile`` (a mixin: the state lives in ``Profile``)."""

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Profile:
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError:
            size = 0  # read_file says what is wrong
        if size > MAX_FILE_BYTES:
            raise ProfileDamagedError(f"{path}: {size:,} bytes is not a profile (at most {MAX_FILE_BYTES:,}); "
                                      "move it away or give another --profile")
        raw = read_file(path, ProfileError, what="profile", fix="check the path",
                        missing=f"{path}: no such profile; a keyboard creates it at the first sent message")
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
        mismatch = header_mismatch(header, format=FORMAT, version=VERSION, key="version")
        if mismatch == "format":
            raise bad("not a nextword profile")
        if mismatch:
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

