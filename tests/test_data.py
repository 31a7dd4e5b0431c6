"""Corpus reading, the train/validation split, and the two sequence modes."""

from __future__ import annotations

import numpy as np
import pytest

from nextword.errors import CorpusError
from nextword.tokenizer import Tokenizer
from nextword.train import sequences
from nextword.train.corpus import Corpus, default_corpus_path, split_lines

from conftest import SEED_LINES


def test_corpus_reads_files_and_directories_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("second file\n", encoding="utf-8")
    (tmp_path / "b" / "1.txt").write_text("\ufefffirst file\r\n\n   \nwith crlf\r\n", encoding="utf-8")
    (tmp_path / "b" / "notes.md").write_text("not a txt file\n", encoding="utf-8")
    (tmp_path / "extra.txt").write_text("extra", encoding="utf-8")
    corpus = Corpus.from_paths([tmp_path / "b", tmp_path / "extra.txt"])
    assert list(corpus.lines()) == ["first file", "with crlf", "second file", "extra"]
    assert corpus.scan().lines == 4


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\n  \n\t\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"caf\xe9 au lait\n", "not UTF-8"),
])
def test_bad_corpus_files_give_one_clear_line(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as info:
        Corpus.from_paths([path]).scan()
    assert "\n" not in str(info.value)


def test_missing_paths_and_empty_directories(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        Corpus.from_paths([tmp_path / "nope.txt"])
    with pytest.raises(CorpusError, match="no .txt files"):
        Corpus.from_paths([tmp_path])


def test_embedded_default_corpus_starts_with_the_seed_and_is_a_few_thousand_words():
    corpus = Corpus.default()
    lines = list(corpus.lines())
    assert lines[:4] == SEED_LINES
    assert 3000 <= sum(len(line.split()) for line in lines) <= 10000
    assert default_corpus_path().is_file()


def test_split_is_reproducible_and_disjoint():
    lines = [f"line {i}" for i in range(1000)]
    train = list(split_lines(iter(lines), seed=3, fraction=0.1, want_validation=False))
    valid = list(split_lines(iter(lines), seed=3, fraction=0.1, want_validation=True))
    assert sorted(train + valid, key=lambda s: int(s.split()[1])) == lines
    assert 60 <= len(valid) <= 140
    assert valid == list(split_lines(iter(lines), seed=3, fraction=0.1, want_validation=True))
    assert valid != list(split_lines(iter(lines), seed=4, fraction=0.1, want_validation=True))


def test_prefix_mode_reproduces_the_seed_recipe():
    """Every line's prefix n-grams, pre-padded, last word the target (as pad_sequences builds them)."""
    tokenizer = Tokenizer.fit(SEED_LINES)
    encoded = [tokenizer.encode(line) for line in SEED_LINES]
    max_len = max(len(ids) for ids in encoded)
    expected = []
    for ids in encoded:
        for i in range(1, len(ids)):
            ngram = ids[: i + 1]
            expected.append([0] * (max_len - len(ngram)) + ngram)
    expected = np.array(expected)
    blocks = list(sequences.prefix_examples(encoded, window=max_len - 1))
    inputs = np.concatenate([b[0] for b in blocks])
    targets = np.concatenate([b[1] for b in blocks])
    np.testing.assert_array_equal(inputs, expected[:, :-1])
    np.testing.assert_array_equal(targets, expected[:, -1])
    assert sequences.count_examples(encoded, "prefix", max_len - 1) == (len(expected), len(expected))


def test_prefix_mode_truncates_long_lines_to_the_window():
    inputs, targets = next(sequences.prefix_examples([[1, 2, 3, 4, 5]], window=2))
    np.testing.assert_array_equal(inputs, [[0, 1], [1, 2], [2, 3], [3, 4]])
    np.testing.assert_array_equal(targets, [2, 3, 4, 5])


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_stream_mode_predicts_the_next_token_at_every_position(chunk):
    lines = [list(range(1, 8)), list(range(8, 12)), list(range(12, 25))]  # stream 1..24
    blocks = list(sequences.stream_examples(lines, window=5, chunk=chunk))
    inputs = np.concatenate([b[0] for b in blocks])
    targets = np.concatenate([b[1] for b in blocks])
    np.testing.assert_array_equal(inputs, np.arange(1, 21).reshape(4, 5))
    np.testing.assert_array_equal(targets, np.arange(2, 22).reshape(4, 5))
    assert sequences.count_examples(lines, "stream", 5) == (4, 20)


def test_batches_are_exact_and_shuffling_is_seeded():
    blocks = [(np.arange(i, i + 7)[:, None], np.arange(i, i + 7)) for i in range(0, 70, 7)]
    plain = list(sequences.batched(iter(blocks), 8))
    assert [len(b[1]) for b in plain] == [8] * 8 + [6]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in plain]), np.arange(70))

    def shuffled_targets(seed):
        batches = sequences.batched(sequences.shuffled(iter(blocks), 30, np.random.default_rng(seed)), 8)
        return np.concatenate([b[1] for b in batches])

    first = shuffled_targets(1)
    np.testing.assert_array_equal(np.sort(first), np.arange(70))
    np.testing.assert_array_equal(first, shuffled_targets(1))
    assert not np.array_equal(first, shuffled_targets(2))


def test_sentence_mode_reads_every_line_after_eos_with_padding_at_the_end():
    eos = 9
    lines = [[1, 2, 3, eos], [4, 5, 6, 7, 8, 1, 2, eos]]  # encoded lines end with <eos>
    blocks = list(sequences.sentence_examples(lines, window=5, start_id=eos))
    inputs = np.concatenate([b[0] for b in blocks])
    targets = np.concatenate([b[1] for b in blocks])
    np.testing.assert_array_equal(inputs, [[eos, 1, 2, 3, 0], [eos, 4, 5, 6, 7], [8, 1, 2, 0, 0]])
    np.testing.assert_array_equal(targets, [[1, 2, 3, eos, 0], [4, 5, 6, 7, 8], [1, 2, eos, 0, 0]])
    assert sequences.count_examples(lines, "sentence", 5) == (3, 12)


def test_sentence_history_fills_the_window_with_the_lines_before_for_an_even_share_of_lines():
    eos = 9
    lines = [[1, 2, eos], [3, 4, eos], [5, eos], [6, 7, 8, eos], [1, 1, 1, 1, 1, 1, eos]]
    blocks = list(sequences.sentence_examples(lines, window=5, start_id=eos, history=0.5))
    # Lines 1 and 3 (0-based) get history: the stream's last 5 tokens before their end, every one a target.
    # Lines 0, 2 and 4 read from <eos> as a keyboard does (line 4 needs two windows).
    stream = [eos, 1, 2, eos, 3, 4, eos, 5, eos, 6, 7, 8, eos]
    assert [b[0].tolist() for b in blocks] == [
        [[eos, 1, 2, 0, 0]],
        [stream[1:6]],  # ..., 2, eos, 3, 4 -> 2, eos, 3, 4, eos
        [[eos, 5, 0, 0, 0]],
        [stream[7:12]],
        [[eos, 1, 1, 1, 1], [1, 1, 0, 0, 0]],
    ]
    assert blocks[1][1].tolist() == [stream[2:7]]
    targets = sum(int(np.count_nonzero(b[1])) for b in blocks)
    assert sequences.count_examples(lines, "sentence", 5, history=0.5) == (sum(len(b[0]) for b in blocks), targets)


@pytest.mark.parametrize("history", [0.0, 0.25, 0.5, 1.0])
def test_sentence_history_share_is_exact(history):
    picked = sum(sequences._gets_history(i, history) for i in range(1000))
    assert picked == int(1000 * history)
