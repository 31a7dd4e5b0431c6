"""From corpus files to the two ``tf.data`` pipelines (training, validation).

Three streaming passes, none holding the corpus in memory: check the files,
fit the tokenizer on the training lines, count the examples (so progress bars
and the report know the totals). Every epoch then reads the files again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nextword.errors import CorpusError
from nextword.tokenizer import Tokenizer, TokenizerConfig
from nextword.train import sequences
from nextword.train.corpus import MIN_LINES_FOR_SPLIT, Corpus, CorpusScan, split_lines

#: Longest window chosen automatically in prefix mode (the seed's rule is
#: "longest line - 1", which one very long line would make absurd).
MAX_AUTO_WINDOW = 40
DEFAULT_STREAM_WINDOW = 20


@dataclass(frozen=True)
class SplitCounts:
    lines: int
    tokens: int
    unknown: int
    examples: int
    targets: int


class TrainingData:
    """The corpus, its train/validation split, and the tokenizer that encodes it."""

    def __init__(self, corpus: Corpus, valid_corpus: Corpus | None, *, seed: int, valid_fraction: float) -> None:
        self.corpus = corpus
        self.valid_corpus = valid_corpus
        self.seed = seed
        self.valid_fraction = valid_fraction
        self.tokenizer: Tokenizer | None = None

    @classmethod
    def scan(
        cls, corpus: Corpus, valid_corpus: Corpus | None, *, seed: int, valid_fraction: float
    ) -> tuple[TrainingData, CorpusScan]:
        """Check every file once and decide how much to hold out."""
        scan = corpus.scan()
        if valid_corpus is not None:
            valid_corpus.scan()
            valid_fraction = 0.0
        elif scan.lines < MIN_LINES_FOR_SPLIT:
            valid_fraction = 0.0
        return cls(corpus, valid_corpus, seed=seed, valid_fraction=valid_fraction), scan

    @property
    def has_validation(self) -> bool:
        return self.valid_corpus is not None or self.valid_fraction > 0

    def sharded(self, index: int, count: int) -> TrainingData:
        """This worker's part of the data (distributed training): its byte range of the corpus and of the
        validation files, and its own held-out lines."""
        valid = None if self.valid_corpus is None else self.valid_corpus.sharded(index, count)
        data = TrainingData(self.corpus.sharded(index, count), valid, seed=self.seed,
                            valid_fraction=self.valid_fraction)
        data.tokenizer = self.tokenizer
        return data

    def train_lines(self) -> Iterator[str]:
        return split_lines(self.corpus.lines(), seed=self.seed, fraction=self.valid_fraction, want_validation=False,
                           shard=self.corpus.shard)

    def valid_lines(self) -> Iterator[str]:
        if self.valid_corpus is not None:
            return self.valid_corpus.lines()
        return split_lines(self.corpus.lines(), seed=self.seed, fraction=self.valid_fraction, want_validation=True,
                           shard=self.corpus.shard)

    def word_counts(self, config: TokenizerConfig) -> Counter:
        """Counts of the training lines' tokens, in first-occurrence order (what ``Tokenizer.fit`` counts)."""
        return Tokenizer.count(self.train_lines(), config)

    def fit_tokenizer(self, config: TokenizerConfig) -> Tokenizer:
        tokenizer = Tokenizer.fit(self.train_lines(), config)
        if tokenizer.word_count == 0:
            raise CorpusError(
                f"corpus {self.corpus.name} has no words left after filtering punctuation"
                + (f" and min_count={config.min_count}" if config.min_count > 1 else "")
                + "; give it real text"
            )
        self.tokenizer = tokenizer
        return tokenizer

    def longest_line(self) -> int:
        return max((len(self._require_tokenizer().encode_line(line)) for line in self.train_lines()), default=0)

    def auto_window(self, mode: str) -> int:
        if mode in ("stream", "sentence"):
            return DEFAULT_STREAM_WINDOW
        return max(1, min(self.longest_line() - 1, MAX_AUTO_WINDOW))

    def count(self, mode: str, window: int, *, validation: bool, history: float = 0.0) -> SplitCounts:
        tokenizer = self._require_tokenizer()
        lines = tokens = unknown = 0

        def encode_all() -> Iterator[list[int]]:
            nonlocal lines, tokens, unknown
            for line in self.valid_lines() if validation else self.train_lines():
                ids = tokenizer.encode_line(line)
                lines += 1
                tokens += len(ids)
                unknown += ids.count(tokenizer.unk_id) if tokenizer.unk_id is not None else 0
                yield ids

        examples, targets = sequences.count_examples(encode_all(), mode, window, history)
        return SplitCounts(lines, tokens, unknown, examples, targets)

    def batches(
        self, mode: str, window: int, batch_size: int, *, validation: bool, rng: np.random.Generator | None,
        shuffle_buffer: int, history: float = 0.0,
    ) -> Iterator[sequences.Block]:
        tokenizer = self._require_tokenizer()
        lines = self.valid_lines() if validation else self.train_lines()
        blocks = sequences.examples(map(tokenizer.encode_line, lines), mode, window, tokenizer.eos_id, history)
        return sequences.batched(sequences.shuffled(blocks, shuffle_buffer, rng), batch_size)

    def _require_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise RuntimeError("fit_tokenizer() or use_tokenizer() first")
        return self.tokenizer

    def use_tokenizer(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
