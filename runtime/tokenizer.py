"""Word tokenizer shared by training and the device: pure Python, no TensorFlow.

By default it splits text exactly as the seed tutorial's Keras ``Tokenizer``
does (lowercase, strip the Keras filter characters, split on whitespace) and
numbers words the same way: by frequency, ties by first occurrence, from 1,
with 0 reserved for padding. Special tokens (``<unk>``, ``<eos>``) take the ids
*after* the last word, so the word ids stay identical to Keras' for any corpus.

    >>> tok = Tokenizer.fit(["hello how are you", "hello how is your day"])
    >>> tok.encode("Hello, how is my day?")   # "my" is unknown -> <unk>
    [1, 2, 5, 8, 7]
    >>> tok.vocab[:4]
    ('<pad>', 'hello', 'how', 'are')

Saved as two plain files (never pickle): ``vocab.txt``, one token per line
with the line number as its id, and ``tokenizer.json`` with the settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nextword.errors import TokenizerFileError, UsageError
from nextword.fileio import atomic_write_text, read_file
from nextword.records import header_mismatch

#: The characters Keras' ``Tokenizer`` strips by default (tab and newline included).
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
PAD_TOKEN = "<pad>"
PAD_ID = 0

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer.json"
FILE_FORMAT = "nextword.tokenizer"
FILE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TokenizerConfig:
    """How text becomes ids. The defaults are the seed tutorial's, plus ``<unk>``."""

    lower: bool = True
    filters: str = KERAS_FILTERS
    #: Unknown words map to this token; ``None`` drops them (Keras' behaviour).
    unk_token: str | None = "<unk>"
    #: Appended to every line of a corpus when set (one sentence per line).
    eos_token: str | None = None
    #: Cap on the whole id space (padding, words and special tokens), i.e. the
    #: model's output size. ``None``: every word that passes ``min_count``.
    max_vocab: int | None = None
    #: Words seen fewer times than this are left out of the vocabulary.
    min_count: int = 1
    #: ``None``: tokens are separated by any whitespace and a special token typed as such stays one
    #: (nextword's own rule). A string: Keras' ``text_to_word_sequence`` exactly (lowercase the text,
    #: turn every filter character into ``split``, ``text.split(split)``, drop empty pieces): the
    #: rule of a Keras ``Tokenizer`` brought by the user (``nextword export MODEL_FILE``).
    split: str | None = None
    #: Ids from this one up name no word (a Keras model whose output is wider than its tokenizer's
    #: vocabulary): placeholders ``<unused:ID>``, never produced by text and never suggested.
    unused_from: int | None = None

    def __post_init__(self) -> None:
        specials = self.special_tokens
        for token in specials:
            if not token or any(ch.isspace() for ch in token):
                raise UsageError(f"special token {token!r} must be non-empty and contain no whitespace")
            if token == PAD_TOKEN:
                raise UsageError(f"{PAD_TOKEN!r} is reserved for padding; choose another special token")
        if len(set(specials)) != len(specials):
            raise UsageError(f"special tokens must differ, got {specials}")
        if self.split is not None and (not isinstance(self.split, str) or not self.split):
            raise UsageError(f"split must be a non-empty string, got {self.split!r}")
        if self.min_count < 1:
            raise UsageError(f"min_count must be at least 1, got {self.min_count}")
        smallest = 2 + len(specials)
        if self.max_vocab is not None and self.max_vocab < smallest:
            raise UsageError(
                f"max_vocab={self.max_vocab} leaves no room for words: padding and "
                f"{len(specials)} special token(s) need {smallest - 1} ids; use at least {smallest}"
            )

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Special tokens in id order (they follow the words)."""
        return tuple(t for t in (self.unk_token, self.eos_token) if t is not None)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TokenizerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TokenizerFileError(f"tokenizer settings hold unknown keys {unknown}; was it written by a newer nextword?")
        for field in dataclasses.fields(cls):
            if field.name in data and not _has_type(data[field.name], _SETTING_TYPES[field.name]):
                raise TokenizerFileError(f"tokenizer setting {field.name} is {type(data[field.name]).__name__} "
                                         f"{str(data[field.name])[:40]!r}; the settings were edited or damaged")
        try:
            return cls(**data)
        except UsageError as err:
            raise TokenizerFileError(f"tokenizer settings are unusable: {err}") from None


#: The JSON types each setting may have (None: null); bool is never an int here.
_SETTING_TYPES = {"lower": (bool,), "filters": (str,), "unk_token": (str, None), "eos_token": (str, None),
                  "max_vocab": (int, None), "min_count": (int,), "split": (str, None), "unused_from": (int, None)}


def _has_type(value, kinds: tuple) -> bool:
    if value is None:
        return None in kinds
    if isinstance(value, bool):
        return bool in kinds
    return any(kind is not None and isinstance(value, kind) for kind in kinds)


class Tokenizer:
    """A fixed vocabulary plus the rules that turn text into ids."""

    def __init__(self, words: Sequence[str], config: TokenizerConfig | None = None) -> None:
        self.config = config or TokenizerConfig()
        specials = self.config.special_tokens
        # A special token already among the words keeps its id there (a Keras oov_token is id 1);
        # nextword's own special tokens follow the words.
        vocab = (PAD_TOKEN, *words, *(t for t in specials if t not in words))
        if len(set(vocab)) != len(vocab):
            duplicates = sorted({t for t in vocab if vocab.count(t) > 1})
            raise TokenizerFileError(f"vocabulary lists tokens more than once: {duplicates[:5]}")
        self.vocab: tuple[str, ...] = vocab
        if self.config.unused_from is not None and not 1 <= self.config.unused_from <= len(vocab):
            raise TokenizerFileError(f"unused_from {self.config.unused_from} lies outside the vocabulary's "
                                     f"{len(vocab)} ids; the settings were edited or damaged")
        self._unused_from = self.config.unused_from or len(vocab)
        # Placeholders past unused_from are no token text can produce: not in the lookup.
        self._ids = {token: i for i, token in enumerate(vocab[:self._unused_from])}
        #: Ids that are words a user can type (not padding, special tokens or placeholders).
        self.word_count = self._unused_from - 1 - sum(t in self._ids for t in specials)
        self._special_literals = frozenset(specials)
        self._translate = str.maketrans({ch: self.config.split or " " for ch in self.config.filters})

    # ----------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, lines: Iterable[str], config: TokenizerConfig | None = None) -> Tokenizer:
        """Build the vocabulary from lines of text (an iterable, read once)."""
        config = config or TokenizerConfig()
        return cls.from_counts(cls.count(lines, config), config)

    @classmethod
    def count(cls, lines: Iterable[str], config: TokenizerConfig | None = None) -> Counter[str]:
        """Counts of the tokens of lines of text, in first-occurrence order (what ``fit`` ranks; a distributed
        plan adds every worker's counts before ranking)."""
        counts: Counter[str] = Counter()
        splitter = cls((), config or TokenizerConfig())
        for line in lines:
            counts.update(splitter.split(line))
        return counts

    @classmethod
    def from_counts(cls, counts: Counter[str], config: TokenizerConfig | None = None) -> Tokenizer:
        """Vocabulary from word counts whose insertion order is first occurrence."""
        config = config or TokenizerConfig()
        # A literal "<pad>" in the text (kept whole when the filters leave "<" and ">") is no word: id 0 is padding.
        specials = {*config.special_tokens, PAD_TOKEN}
        ranked = [(w, n) for w, n in counts.items() if w not in specials and n >= config.min_count]
        # Stable sort: equal counts keep first-occurrence order, as in Keras.
        ranked.sort(key=lambda item: item[1], reverse=True)
        words = [w for w, _ in ranked]
        if config.max_vocab is not None:
            words = words[: config.max_vocab - 1 - len(config.special_tokens)]
        return cls(words, config)

    # ------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """Number of ids, padding and special tokens included: the model's output size."""
        return len(self.vocab)

    @property
    def unk_id(self) -> int | None:
        return self._ids.get(self.config.unk_token) if self.config.unk_token else None

    @property
    def eos_id(self) -> int | None:
        return self._ids.get(self.config.eos_token) if self.config.eos_token else None

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids that are never a word to suggest: padding, ``<unk>``, ``<eos>``."""
        unused = range(self._unused_from, len(self.vocab))
        return frozenset([PAD_ID, *(self._ids[t] for t in self.config.special_tokens), *unused])

    def id_of(self, token: str) -> int | None:
        return self._ids.get(token)

    def vocab_sha256(self) -> str:
        """Digest of ``vocab.txt``'s exact bytes: names this vocabulary anywhere it travels."""
        return hashlib.sha256(self.vocab_text().encode("utf-8")).hexdigest()

    def vocab_text(self) -> str:
        return "".join(token + "\n" for token in self.vocab)

    # ------------------------------------------------------------ text -> ids
    def split(self, text: str) -> list[str]:
        """Text to tokens, the way Keras' ``text_to_word_sequence`` does.

        Whitespace separates tokens; a token that is exactly a special token
        (``<unk>`` in an already-tokenized corpus such as Penn Treebank) stays one.
        """
        if not text:
            return []
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot be saved or matched
            text = text.encode("utf-8", "replace").decode("utf-8")
        if self.config.split is not None:  # Keras' text_to_word_sequence, character for character
            if self.config.lower:
                text = text.lower()
            return [piece for piece in text.translate(self._translate).split(self.config.split) if piece]
        if not any(literal in text for literal in self._special_literals):
            # No special token in the text (the usual case): one pass over the whole text, the same tokens
            # as piece by piece (filters become spaces, and lower() makes no whitespace).
            return (text.lower() if self.config.lower else text).translate(self._translate).split()
        tokens: list[str] = []
        for piece in text.split():
            if piece in self._special_literals:
                tokens.append(piece)
                continue
            if self.config.lower:
                piece = piece.lower()
            tokens.extend(piece.translate(self._translate).split())
        return tokens

    def encode(self, text: str) -> list[int]:
        """Ids of the words in ``text``; unknown words become ``<unk>`` (or are dropped without one)."""
        return self.ids(self.split(text))

    def encode_line(self, line: str) -> list[int]:
        """Ids of one corpus line, ``<eos>`` appended when the tokenizer has one."""
        ids = self.encode(line)
        if self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def context_ids(self, text: str) -> list[int]:
        """Ids of a context as the model reads it: with ``<eos>`` in the vocabulary, text starts after one.

        In training, every sentence follows an ``<eos>`` (stream mode) or starts with one (sentence mode),
        so a keyboard context begins the same way: the first word is predicted after ``<eos>``.
        """
        ids = self.encode(text)
        return ids if self.eos_id is None else [self.eos_id, *ids]

    def ids(self, tokens: Iterable[str]) -> list[int]:
        lookup = self._ids.get
        unk = self.unk_id
        # A missing token and a literal "<pad>" (id 0) in text are both unknown words.
        if unk is None:
            return [i for i in map(lookup, tokens) if i]
        return [i if i else unk for i in map(lookup, tokens)]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab[i] for i in ids]

    # ----------------------------------------------------------- persistence
    def settings(self) -> dict:
        """The JSON written beside ``vocab.txt`` (and embedded in model files)."""
        return {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            **self.config.to_dict(),
            "vocab_size": self.vocab_size,
            "pad_id": PAD_ID,
            "unk_id": self.unk_id,
            "eos_id": self.eos_id,
            "vocab_sha256": self.vocab_sha256(),
        }

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        atomic_write_text(directory / VOCAB_FILE, self.vocab_text())
        atomic_write_text(directory / CONFIG_FILE, json.dumps(self.settings(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        directory = Path(directory)
        fix = f"is {directory} a whole nextword run? retrain or restore it"
        vocab_text, settings_text = (read_file(directory / name, TokenizerFileError, what="tokenizer file", fix=fix,
                                               missing=f"tokenizer file missing: {directory / name}; {fix}", text=True)
                                     for name in (VOCAB_FILE, CONFIG_FILE))
        try:
            settings = json.loads(settings_text)
        except json.JSONDecodeError as err:
            raise TokenizerFileError(f"tokenizer files in {directory} are corrupt ({err}); retrain or restore them") from None
        return cls.from_text(vocab_text, settings, source=str(directory))

    @classmethod
    def from_text(cls, vocab_text: str, settings: dict, *, source: str = "tokenizer") -> Tokenizer:
        """Rebuild from ``vocab.txt``'s text and the settings dict, checking that they agree."""
        mismatch = header_mismatch(settings, format=FILE_FORMAT, version=FILE_FORMAT_VERSION)
        if mismatch == "format":
            raise TokenizerFileError(f"{source}: tokenizer settings are not a {FILE_FORMAT} file")
        if mismatch:  # only version 1 was ever written: older or newer, this nextword cannot read it
            raise TokenizerFileError(
                f"{source}: tokenizer format version {settings.get('format_version')!r} is not supported "
                f"(this nextword reads version {FILE_FORMAT_VERSION}); upgrade nextword"
            )
        # Split on "\n" only: tokens may hold other characters str.splitlines() breaks on.
        tokens = vocab_text.split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        config_keys = {f.name for f in dataclasses.fields(TokenizerConfig)}
        config = TokenizerConfig.from_dict({k: v for k, v in settings.items() if k in config_keys})
        specials = config.special_tokens
        expected_size = settings.get("vocab_size")
        if len(tokens) != expected_size:
            raise TokenizerFileError(
                f"{source}: vocabulary has {len(tokens)} tokens but its settings say {expected_size}; "
                "the files do not belong together"
            )
        if not tokens or tokens[0] != PAD_TOKEN or not set(specials) <= set(tokens):
            raise TokenizerFileError(
                f"{source}: vocabulary must start with {PAD_TOKEN!r} and hold {list(specials)}; the file is damaged"
            )
        tokenizer = cls(tokens[1:], config)  # special tokens keep the ids they have in the file
        if settings.get("vocab_sha256") not in (None, tokenizer.vocab_sha256()):
            raise TokenizerFileError(f"{source}: vocabulary does not match its sha256; it was edited or damaged")
        return tokenizer

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, unk={self.config.unk_token!r}, eos={self.config.eos_token!r})"
