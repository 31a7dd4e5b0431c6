"""Tokenizer: the seed's Keras ids exactly, the keyboard options, Unicode, saved files."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextword.errors import TokenizerFileError, UsageError
from nextword.tokenizer import CONFIG_FILE, KERAS_FILTERS, VOCAB_FILE, Tokenizer, TokenizerConfig

from conftest import SEED_LINES

SEED_KERAS_IDS = {"hello": 1, "how": 2, "are": 3, "you": 4, "your": 5, "is": 6, "day": 7,
                  "friends": 8, "what": 9, "doing": 10}


def test_seed_corpus_gets_exactly_the_keras_ids():
    tokenizer = Tokenizer.fit(SEED_LINES)
    assert {w: tokenizer.id_of(w) for w in SEED_KERAS_IDS} == SEED_KERAS_IDS
    assert tokenizer.vocab[0] == "<pad>"
    assert tokenizer.unk_id == 11  # specials follow the words, so word ids stay Keras'
    assert tokenizer.encode("hello how is") == [1, 2, 6]


def test_seed_ids_match_keras_tokenizer_itself():
    keras_text = pytest.importorskip("keras.src.legacy.preprocessing.text")
    reference = keras_text.Tokenizer()
    reference.fit_on_texts(SEED_LINES)
    assert reference.word_index == SEED_KERAS_IDS
    tokenizer = Tokenizer.fit(SEED_LINES)
    assert tokenizer.encode("Hello, how is your day?") == reference.texts_to_sequences(["Hello, how is your day?"])[0]


# Text Keras and nextword split identically: nextword also splits on \r, \v, \f,
# non-breaking and other Unicode spaces (Keras only on " "); stay off those.
_keras_alphabet = st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"))
_keras_text = st.lists(st.one_of(st.text(_keras_alphabet, max_size=8), st.sampled_from([" ", "\n", "\t", ",", "."])),
                       max_size=30).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(_keras_text, min_size=1, max_size=6), _keras_text)
def test_same_ids_as_keras_for_any_corpus(lines, query):
    keras_text = pytest.importorskip("keras.src.legacy.preprocessing.text")
    reference = keras_text.Tokenizer()
    reference.fit_on_texts(lines)
    tokenizer = Tokenizer.fit(lines, TokenizerConfig(unk_token=None))
    assert {w: tokenizer.id_of(w) for w in reference.word_index} == reference.word_index
    assert tokenizer.encode(query) == reference.texts_to_sequences([query])[0]


def test_unknown_words_map_to_unk_or_are_dropped():
    with_unk = Tokenizer.fit(SEED_LINES)
    assert with_unk.encode("hello zebra") == [1, with_unk.unk_id]
    without = Tokenizer.fit(SEED_LINES, TokenizerConfig(unk_token=None))
    assert without.encode("hello zebra") == [1]
    assert without.unk_id is None


def test_literal_special_tokens_in_a_tokenized_corpus():
    config = TokenizerConfig(filters="", eos_token="<eos>")
    tokenizer = Tokenizer.fit(["the <unk> rose N points", "mr. <unk> said"], config)
    assert "<unk>" not in tokenizer.vocab[1:tokenizer.word_count + 1]
    assert tokenizer.encode("mr. <unk>") == [tokenizer.id_of("mr."), tokenizer.unk_id]
    assert tokenizer.encode_line("the end") == [tokenizer.id_of("the"), tokenizer.unk_id, tokenizer.eos_id]
    assert tokenizer.special_ids == {0, tokenizer.unk_id, tokenizer.eos_id}


def test_max_vocab_counts_padding_and_specials():
    config = TokenizerConfig(max_vocab=5, eos_token="<eos>")
    tokenizer = Tokenizer.fit(SEED_LINES, config)
    assert tokenizer.vocab == ("<pad>", "hello", "how", "<unk>", "<eos>")
    assert tokenizer.vocab_size == 5
    assert tokenizer.encode("hello are") == [1, 3]


def test_min_count_drops_rare_words():
    tokenizer = Tokenizer.fit(SEED_LINES, TokenizerConfig(min_count=2))
    assert tokenizer.vocab[1:-1] == ("hello", "how", "are", "you", "your")


@pytest.mark.parametrize("kwargs", [dict(max_vocab=2), dict(min_count=0), dict(unk_token="<pad>"),
                                    dict(unk_token="a b"), dict(unk_token="<x>", eos_token="<x>")])
def test_impossible_settings_are_refused(kwargs):
    with pytest.raises(UsageError):
        TokenizerConfig(**kwargs)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "!!!", "Ça va? Très bien, merci.", "東京に行きます",
                                  "see you 👋🏽 soon", "ＡＢＣ", "\x00\x07\x1b[31m", "a\u2028b\u0085c",
                                  "lone \ud800 surrogate", "İstanbul ß ǅ"])
def test_any_text_encodes_without_error(text):
    tokenizer = Tokenizer.fit(SEED_LINES + ["ça va très bien", "東京", "👋🏽"])
    ids = tokenizer.encode(text)
    assert all(0 < i < tokenizer.vocab_size for i in ids)


def test_unicode_words_are_learned():
    tokenizer = Tokenizer.fit(["ça va très bien", "東京に行きます", "see you 👋🏽"])
    assert tokenizer.decode(tokenizer.encode("Très bien 👋🏽")) == ["très", "bien", "👋🏽"]
    assert tokenizer.encode("東京に行きます") == [tokenizer.id_of("東京に行きます")]


_any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_any_text, min_size=1, max_size=8), _any_text)
def test_any_unicode_round_trips_through_saved_files(tmp_path, lines, query):
    tokenizer = Tokenizer.fit(lines, TokenizerConfig(eos_token="<eos>"))
    tokenizer.save(tmp_path)
    loaded = Tokenizer.load(tmp_path)
    assert loaded.vocab == tokenizer.vocab
    assert loaded.config == tokenizer.config
    assert loaded.encode_line(query) == tokenizer.encode_line(query)
    assert loaded.vocab_sha256() == tokenizer.vocab_sha256()


def test_saved_files_are_plain_text_one_token_per_line(tmp_path):
    Tokenizer.fit(SEED_LINES).save(tmp_path)
    assert (tmp_path / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:3] == ["<pad>", "hello", "how"]
    settings_ = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    assert settings_["vocab_size"] == 12 and settings_["unk_id"] == 11 and settings_["filters"] == KERAS_FILTERS
    assert {p.name for p in tmp_path.iterdir()} == {VOCAB_FILE, CONFIG_FILE}  # no temp files left behind


def test_edited_vocabulary_is_refused(tmp_path):
    Tokenizer.fit(SEED_LINES).save(tmp_path)
    vocab = tmp_path / VOCAB_FILE
    lines = vocab.read_text(encoding="utf-8").split("\n")
    lines[1], lines[2] = lines[2], lines[1]  # swap two words: same size, different ids
    vocab.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match="sha256"):
        Tokenizer.load(tmp_path)


@pytest.mark.parametrize("damage", ["truncate_vocab", "bad_json", "missing", "wrong_format", "future_version"])
def test_damaged_tokenizer_files_give_clear_errors(tmp_path, damage):
    Tokenizer.fit(SEED_LINES).save(tmp_path)
    vocab, config = tmp_path / VOCAB_FILE, tmp_path / CONFIG_FILE
    settings_ = json.loads(config.read_text())
    if damage == "truncate_vocab":
        vocab.write_text("<pad>\nhello\n")
    elif damage == "bad_json":
        config.write_text("{not json")
    elif damage == "missing":
        vocab.unlink()
    elif damage == "wrong_format":
        config.write_text(json.dumps({**settings_, "format": "something"}))
    else:
        config.write_text(json.dumps({**settings_, "format_version": 99}))
    with pytest.raises(TokenizerFileError) as info:
        Tokenizer.load(tmp_path)
    assert "\n" not in str(info.value)


def test_tokenizer_never_imports_tensorflow():
    import subprocess

    code = "import sys, nextword; from nextword.tokenizer import Tokenizer; Tokenizer.fit(['a b']); " \
           "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
       st.booleans(), st.sampled_from(['!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n', "", ".,"]))
def test_splitting_the_whole_text_at_once_equals_piece_by_piece(text, lower, filters):
    _check_split(text, lower, filters)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["<unk>", "<eos>", "<pad>", "x<unk>", "Hello,", "ÇA", "a.b", " ", "\t"]),
                max_size=12), st.booleans())
def test_special_tokens_in_the_text_are_split_as_before(parts, lower):
    _check_split(" ".join(parts), lower, KERAS_FILTERS)


def _check_split(text: str, lower: bool, filters: str) -> None:
    tokenizer = Tokenizer(["a"], TokenizerConfig(lower=lower, filters=filters, eos_token="<eos>"))
    pieces = []
    for piece in text.split():
        if piece in tokenizer._special_literals:  # "<unk>", "<eos>": one token each, as written
            pieces.append(piece)
            continue
        piece = piece.lower() if lower else piece
        pieces.extend(piece.translate(str.maketrans({ch: " " for ch in filters})).split())
    assert tokenizer.split(text) == pieces


def test_a_literal_pad_token_in_the_corpus_is_no_word():
    """With filters that keep "<" and ">", a corpus's literal "<pad>" stays whole: it is not made a word (id 0 is
    padding), and in text it is an unknown word (found by the web client's tokenizer parity test)."""
    tok = Tokenizer.fit(["<pad> hello <pad> how"], TokenizerConfig(filters=""))
    assert tok.vocab == ("<pad>", "hello", "how", "<unk>")
    assert tok.encode("<pad> hello") == [tok.unk_id, 1]
