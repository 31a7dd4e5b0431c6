"""Reading a training corpus: UTF-8 text files, one sentence or utterance per line.

    corpus = Corpus.from_paths(["notes.txt", "chats/"])   # a directory: its *.txt files
    for line in corpus.lines(): ...

Lines are streamed from disk on every pass, so a corpus larger than memory is
fine. Blank lines are skipped. The held-out validation lines are picked per
line by a seeded generator, so the split is the same on every pass and run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from nextword.errors import CorpusError

DEFAULT_CORPUS_NAME = "embedded default (seed tutorial + everyday English)"
#: Corpora with fewer lines train on all of them: holding out one of the seed's
#: four lines would remove a quarter of what the model can learn.
MIN_LINES_FOR_SPLIT = 20


def default_corpus_path() -> Path:
    return Path(str(resources.files("nextword.train") / "data" / "default_corpus.txt"))


@dataclass(frozen=True)
class CorpusScan:
    """What one checking pass over the files found."""

    files: tuple[str, ...]
    bytes: int
    lines: int
    sha256: str


class Corpus:
    """An ordered list of UTF-8 text files read as one stream of lines.

    ``shard=(index, count)``: only the lines that start in the ``index``-th of ``count`` equal byte ranges of
    the files taken as one stream (a worker of distributed training reads its own range, never the rest).
    """

    def __init__(self, files: Sequence[Path], name: str, skipped: Sequence[Path] = (),
                 shard: tuple[int, int] | None = None) -> None:
        self.files = tuple(files)
        self.name = name
        #: Files in the given directories that are not ``*.txt`` (not read; the plan says so).
        self.skipped = tuple(skipped)
        self.shard = shard

    def sharded(self, index: int, count: int) -> Corpus:
        """The same files, read as shard ``index`` of ``count`` (see the class)."""
        return Corpus(self.files, self.name, self.skipped, shard=None if count == 1 else (index, count))

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path]) -> Corpus:
        files: list[Path] = []
        skipped: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                visible = sorted(p for p in path.rglob("*") if p.is_file()
                                 and not any(part.startswith(".") for part in p.relative_to(path).parts))
                found = [p for p in visible if p.suffix == ".txt"]
                if not found:
                    raise CorpusError(f"corpus directory {path} holds no .txt files; point --corpus at text files")
                files.extend(found)
                skipped.extend(p for p in visible if p.suffix != ".txt")
            elif path.is_file():
                files.append(path)
            elif path.exists():
                raise CorpusError(f"corpus path {path} is not a regular file or directory")
            else:
                raise CorpusError(f"corpus file {path} does not exist; check the path")
        if not files:
            raise CorpusError("no corpus given; pass --corpus FILE (or leave it out for the embedded default)")
        return cls(files, ", ".join(str(p) for p in paths), skipped)

    @classmethod
    def default(cls) -> Corpus:
        return cls([default_corpus_path()], DEFAULT_CORPUS_NAME)

    def lines(self) -> Iterator[str]:
        """Every non-blank line, stripped, file after file."""
        for path, _, line in self._read():
            if line:
                yield line

    def scan(self, *, allow_empty: bool = False) -> CorpusScan:
        """Read everything once: fail early on unreadable or non-text files, and fingerprint them.

        ``allow_empty``: a shard may hold no line (the whole corpus is checked for that)."""
        digest = hashlib.sha256()
        size = 0
        lines = 0
        for path in self.files:
            try:
                size += path.stat().st_size
            except OSError as err:
                raise CorpusError(f"cannot read corpus file {path}: {err.strerror}") from None
        for path, raw, line in self._read():
            digest.update(raw)
            lines += bool(line)
        if lines == 0 and not allow_empty:
            raise CorpusError(f"corpus {self.name} is empty (no non-blank lines); give it some text")
        return CorpusScan(tuple(str(p) for p in self.files), size, lines, digest.hexdigest())

    def _read(self) -> Iterator[tuple[Path, bytes, str]]:
        ranges = self._shard_ranges()
        for path in self.files:
            try:
                with open(path, "rb") as f:
                    if b"\x00" in f.read(8192):
                        raise CorpusError(f"{path} looks binary (it holds NUL bytes); the corpus must be UTF-8 text")
                    if ranges is None:
                        f.seek(0)
                        for number, raw in enumerate(f, start=1):
                            yield path, raw, _decode(raw, path, number)
                    else:
                        yield from _read_range(f, path, *ranges[path])
            except OSError as err:
                raise CorpusError(f"cannot read corpus file {path}: {err.strerror}") from None

    def _shard_ranges(self) -> dict[Path, tuple[int, int]] | None:
        """For a shard: each file's byte range [start, end) of lines that begin in this shard's part of the
        whole stream (every line belongs to the shard where its first byte lies)."""
        if self.shard is None:
            return None
        index, count = self.shard
        sizes = []
        for path in self.files:
            try:
                sizes.append(path.stat().st_size)
            except OSError as err:
                raise CorpusError(f"cannot read corpus file {path}: {err.strerror}") from None
        total = sum(sizes)
        low, high = total * index // count, total * (index + 1) // count
        ranges, offset = {}, 0
        for path, size in zip(self.files, sizes):
            ranges[path] = (min(max(low - offset, 0), size), min(max(high - offset, 0), size))
            offset += size
        return ranges


def _read_range(f, path: Path, start: int, end: int) -> Iterator[tuple[Path, bytes, str]]:
    """The lines of an open file whose first byte lies in [start, end)."""
    if start >= end:
        return
    f.seek(max(0, start - 1))
    if start > 0 and f.read(1) != b"\n":
        f.readline()  # the line in progress began before start: the previous shard's
    position = f.tell()
    number = 0
    while position < end:
        raw = f.readline()
        if not raw:
            break
        number += 1
        # Line numbers inside a shard count from its first line (errors name the byte offset too).
        yield path, raw, _decode(raw, path, number if start == 0 else f"{number} of the shard from byte {start}")
        position += len(raw)


def _decode(raw: bytes, path: Path, number: int | str) -> str:
    if b"\x00" in raw:
        raise CorpusError(f"{path} looks binary (NUL byte on line {number}); the corpus must be UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(
            f"{path} is not UTF-8 text (line {number}, byte {err.start}); convert it, e.g. iconv -t UTF-8"
        ) from None
    if number == 1:  # the file's first line (a shard's first line from byte 0 is one too)
        text = text.removeprefix("\ufeff")
    return text.strip()


def held_out_flags(seed: int, fraction: float, shard: tuple[int, int] | None = None) -> Iterator[bool]:
    """An endless, reproducible stream: True for a line that goes to validation (a shard has its own)."""
    rng = np.random.default_rng([seed, 0x5EED, *(shard or ())])
    while True:
        for value in rng.random(4096):
            yield bool(value < fraction)


def split_lines(lines: Iterator[str], *, seed: int, fraction: float, want_validation: bool,
                shard: tuple[int, int] | None = None) -> Iterator[str]:
    """The training lines (``want_validation=False``) or the held-out ones."""
    if fraction <= 0:
        if not want_validation:
            yield from lines
        return
    for line, held_out in zip(lines, held_out_flags(seed, fraction, shard)):
        if held_out == want_validation:
            yield line
