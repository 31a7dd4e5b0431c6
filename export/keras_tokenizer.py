"""A Keras user's tokenizer file, read into nextword's ``Tokenizer`` with the same ids and the same rules.

Three kinds of file (``nextword export MODEL_FILE --tokenizer FILE``):

- ``Tokenizer.to_json()`` of ``keras.preprocessing.text`` / ``tf_keras`` (``{"class_name": "Tokenizer",
  "config": {...}}``): its ``word_index``, ``lower``, ``filters``, ``split``, ``oov_token`` and ``num_words``
  are honoured as Keras' ``texts_to_sequences`` does; ``char_level`` is refused.
- a plain word-index JSON (``{"hello": 1, "how": 2}``): Keras' default rules (lowercase, its filters, split on
  " "); an entry at id 1 spelled like an out-of-vocabulary token (``<OOV>``, ``<unk>``, ``[UNK]``) is taken as one.
- a ``vocab.txt``: one token per line. If the first line is empty or a padding token (``<pad>``, ``[PAD]``)
  the line number is the id (0-based, as nextword writes it); otherwise the first line is id 1, Keras' first word.

The rules are Keras' (``TokenizerConfig.split``), so text becomes the ids the user's model was trained on.
Words with an id at or above ``num_words`` are unknown, as in Keras. A model whose output is wider than the
vocabulary gets placeholder tokens for the ids no text produces (``TokenizerConfig.unused_from``).
"""

from __future__ import annotations

import json
from pathlib import Path

from nextword.errors import TokenizerFileError, UsageError
from nextword.fileio import read_file
from nextword.tokenizer import KERAS_FILTERS, PAD_TOKEN, Tokenizer, TokenizerConfig

#: Files looked for next to the model when no --tokenizer is given, in this order ({stem}: the model's name).
NEIGHBOURS = ("{stem}.tokenizer.json", "{stem}_tokenizer.json", "tokenizer.json", "word_index.json", "vocab.txt")
_OOV_SPELLINGS = {"<oov>", "<unk>", "[unk]", "<OOV>", "<UNK>", "[UNK]"}
_PAD_SPELLINGS = {"", PAD_TOKEN, "[PAD]", "<PAD>"}
KINDS = "Keras Tokenizer.to_json(), a word-index JSON ({\"hello\": 1, ...}) or a vocab.txt (one token per line)"


def find_tokenizer(model_path: Path) -> Path:
    """The tokenizer file next to ``model_path``, or one line saying what to pass."""
    candidates = [model_path.parent / name.format(stem=model_path.stem) for name in NEIGHBOURS]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UsageError(f"no tokenizer next to {model_path.name} (looked for {', '.join(c.name for c in candidates)}); "
                     f"pass --tokenizer FILE: {KINDS}")


def read_tokenizer(path: Path, *, input_dim: int, output_dim: int) -> Tokenizer:
    """The tokenizer in ``path``, checked against the model's Embedding rows and output width."""
    if not path.exists():  # a wrong --tokenizer is a usage error; a file that is there but unreadable is not
        raise UsageError(f"tokenizer file {path} does not exist; pass --tokenizer FILE: {KINDS}")
    text = read_file(path, TokenizerFileError, what="tokenizer file", fix=f"it must be UTF-8 text: {KINDS}", text=True)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and data.get("class_name") == "Tokenizer" and isinstance(data.get("config"), dict):
        index, config = _keras_tokenizer(data["config"], path)
    elif isinstance(data, dict) and data and all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
        index, config = _plain_index(data), None
    elif isinstance(data, (dict, list)) or (data is not None and path.suffix.lower() == ".json"):
        raise TokenizerFileError(f"{path.name} is JSON but not a tokenizer nextword reads: {KINDS}")
    else:
        index, config = _vocab_lines(text), None
    return _build(index, config, path, input_dim=input_dim, output_dim=output_dim)


def _keras_tokenizer(config: dict, path: Path) -> tuple[dict[str, int], dict]:
    if config.get("char_level"):
        raise UsageError(f"{path.name} is a character-level Keras Tokenizer (char_level=True); nextword predicts "
                         "words: export a word-level model")
    word_index = config.get("word_index")
    if isinstance(word_index, str):  # to_json() stores it as a JSON string
        try:
            word_index = json.loads(word_index)
        except json.JSONDecodeError:
            word_index = None
    if not isinstance(word_index, dict) or not word_index:
        raise TokenizerFileError(f"{path.name}: the Keras Tokenizer has no word_index; was it fitted "
                                 "(fit_on_texts) before to_json()?")
    return _plain_index(word_index), config


def _plain_index(word_index: dict) -> dict[str, int]:
    index = {}
    for word, i in word_index.items():
        if not isinstance(word, str) or not isinstance(i, int) or isinstance(i, bool) or i < 1:
            raise TokenizerFileError(f"word index entry {word!r}: {i!r} is not a word with an id >= 1 "
                                     "(id 0 is padding)")
        index[word] = i
    return index


def _vocab_lines(text: str) -> dict[str, int]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.rstrip("\r") for line in lines]
    if not any(lines):
        raise TokenizerFileError(f"the vocabulary file holds no tokens: {KINDS}")
    first = 0 if lines[0] in _PAD_SPELLINGS else 1  # line 1 is id 0 (padding), or Keras' first word
    return {token: i + first for i, token in enumerate(lines) if (i + first) > 0}


def _build(index: dict[str, int], keras: dict | None, path: Path, *, input_dim: int, output_dim: int) -> Tokenizer:
    keras = keras or {}
    num_words = keras.get("num_words")
    if num_words is not None and (not isinstance(num_words, int) or isinstance(num_words, bool) or num_words < 2):
        raise TokenizerFileError(f"{path.name}: num_words={num_words!r} is not a vocabulary size")
    # Keras' texts_to_sequences keeps ids below num_words only; the others are unknown words.
    by_id = {i: w for w, i in index.items() if num_words is None or i < num_words}
    size = max(by_id) + 1
    if size > input_dim or size > output_dim:
        raise VocabularySizeError(path, size, input_dim, output_dim)
    missing = [i for i in range(1, size) if i not in by_id]
    if missing:
        raise TokenizerFileError(f"{path.name}: ids {missing[:5]} have no word (ids must run from 1 up without gaps)")
    words = [by_id[i] for i in range(1, size)]
    bad = next((w for w in words if not w or "\n" in w or "\r" in w), None)
    if bad is not None:
        raise TokenizerFileError(f"{path.name}: token {bad!r} is empty or holds a line break; it cannot be stored")
    oov = keras.get("oov_token")
    if not keras and words[0] in _OOV_SPELLINGS:
        oov = words[0]
    if oov is not None and oov not in words:
        oov = None  # Keras only maps unknown words to an oov_token that made it into the index
    split = keras.get("split", " ")
    filters = keras.get("filters", KERAS_FILTERS)
    lower = keras.get("lower", True)
    if not isinstance(split, str) or not split or not isinstance(filters, str) or not isinstance(lower, bool):
        raise TokenizerFileError(f"{path.name}: split={split!r}, filters or lower is not what a Keras Tokenizer "
                                 "stores")
    if output_dim > size:  # outputs no word names: placeholders, never suggested
        words += [f"<unused:{i}>" for i in range(size, output_dim)]
    try:
        settings = TokenizerConfig(lower=lower, filters=filters, unk_token=oov, eos_token=None, split=split,
                                   unused_from=size if output_dim > size else None)
        return Tokenizer(words, settings)
    except (UsageError, TokenizerFileError) as err:
        raise TokenizerFileError(f"{path.name}: {err}") from None


class VocabularySizeError(UsageError):
    def __init__(self, path: Path, size: int, input_dim: int, output_dim: int) -> None:
        super().__init__(f"{path.name} has ids up to {size - 1} ({size} with padding) but the model's Embedding "
                         f"reads {input_dim} ids and its output has {output_dim}: pass the tokenizer this model "
                         "was trained with")
