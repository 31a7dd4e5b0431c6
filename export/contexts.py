"""The contexts every export is validated on: held-out text of the training corpus plus edge cases."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextword.config import ModelConfig
from nextword.context import window_ids
from nextword.errors import TextFileError
from nextword.fileio import read_lines
from nextword.tokenizer import Tokenizer

#: At least this many contexts; random word sequences top up a corpus too small to give them.
MIN_CONTEXTS = 256
#: Up to this many real held-out prefixes: one flipped prediction then moves an agreement
#: rate by 0.1 point instead of 0.4.
MAX_CONTEXTS = 1024


def edge_cases(tokenizer: Tokenizer, config: ModelConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Named contexts that exercise padding, truncation and unknown words."""
    words = np.arange(1, tokenizer.word_count + 1)
    cases = {
        "empty context (all padding)": [],
        "one word": [1],
        "full window": list(rng.choice(words, config.window)),
        "longer than the window": list(rng.choice(words, 2 * config.window + 3)),
    }
    if tokenizer.unk_id is not None:
        cases["unknown words"] = [1, tokenizer.unk_id, tokenizer.unk_id]
        cases["only unknown words"] = [tokenizer.unk_id]
    if tokenizer.eos_id is not None:
        cases["after end of sentence"] = [1, 2, tokenizer.eos_id]
    return {name: window_ids(ids, config.window) for name, ids in cases.items()}


def text_contexts(sources, tokenizer: Tokenizer, config: ModelConfig,
                  rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Random prefixes of real lines (after ``<eos>`` if the vocabulary has it, as the runtime reads
    them), up to MAX_CONTEXTS, and how many came from each source.

    ``sources`` are line iterables in order of preference (held-out lines, then
    training lines): a source is only read while fewer than MIN_CONTEXTS were
    found. Random word sequences top up a corpus too small for even that.
    """
    chosen: list[list[int]] = []
    counts = []
    # As the runtime reads a line (Tokenizer.context_ids): after <eos> when the vocabulary has one.
    start = [] if tokenizer.eos_id is None else [tokenizer.eos_id]
    for lines in sources:
        if len(chosen) >= MIN_CONTEXTS:
            counts.append(0)
            continue
        prefixes = []
        for line in lines:
            ids = tokenizer.encode_line(line)
            prefixes.extend(start + ids[:end] for end in range(1, len(ids)))
            if len(prefixes) >= 50 * MAX_CONTEXTS:
                break
        take = [prefixes[i] for i in rng.permutation(len(prefixes))[: MAX_CONTEXTS - len(chosen)]]
        chosen += take
        counts.append(len(take))
    random_count = 0
    while len(chosen) < MIN_CONTEXTS:  # a tiny corpus (the seed's four lines) has fewer prefixes than that
        length = int(rng.integers(1, config.window + 1))
        chosen.append(list(rng.integers(1, tokenizer.word_count + 1, length)))
        random_count += 1
    return np.stack([window_ids(ids, config.window) for ids in chosen]), counts + [random_count]


@dataclass(frozen=True)
class ValidationSet:
    """The contexts an export is checked on, the Keras model's probabilities for them, and where they came from."""

    contexts: np.ndarray  # (n, window) int32, pre-padded
    reference: np.ndarray  # (n, vocab) float32, the Keras model's output
    origin: dict  # source name -> count
    edge_cases: tuple[str, ...]
    #: Why the run's own text is missing from the contexts, if it is ("" otherwise).
    note: str = ""

    def describe(self) -> str:
        return (f"validating on {len(self.contexts)} contexts: "
                + ", ".join(f"{n} from {k}" for k, n in self.origin.items())
                + f", {len(self.edge_cases)} edge cases" + (f"; {self.note}" if self.note else ""))


def text_lines(path: str | Path) -> Iterator[str]:
    """The lines of a text to validate on, read as they are needed (only until enough prefixes are found);
    TextFileError at once for a file that is missing, not UTF-8 at its first line, or empty."""
    lines = read_lines(Path(path))
    first = next(lines, None)
    if first is None:
        raise TextFileError(f"{path} holds no text; give the lines the model's users type")
    return itertools.chain([first], lines)


def validation_set(loaded, seed: int = 0, text: tuple[str, Iterator[str]] | None = None) -> ValidationSet:
    """Prefixes of ``text``'s lines if given ((name, ``text_lines(path)``): the text the model's users type),
    then held-out lines of the run's corpus, then its training lines, then random words, plus the edge cases."""
    rng = np.random.default_rng(seed)
    own = loaded.text_sources()
    named = list(zip(["held-out lines", "training lines"][-len(own):] if own else [], own))
    if text is not None:
        named.insert(0, text)
    contexts, counts = text_contexts([lines for _, lines in named], loaded.tokenizer, loaded.config, rng)
    edges = edge_cases(loaded.tokenizer, loaded.config, rng)
    contexts = np.concatenate([contexts, np.stack(list(edges.values()))])  # (n, window)
    reference = np.asarray(loaded.model(contexts, training=False))  # (n, vocab)
    names = [name for name, _ in named] + ["random word sequences"]
    origin = {name: count for name, count in zip(names, counts) if count}
    note = ""
    saved = loaded.saved  # a training run's config.json (a Keras model file: None)
    if saved is not None and not own and not sum(counts[:-1]):
        # Random words are harder on a quantized file than text (its int8 files may miss a tolerance here).
        note = (f"warning: the run's corpus ({saved.corpus.name}) is not found from here"
                + (f" nor from {saved.workdir}" if saved.workdir else "")
                + ", so random words stand in for its held-out lines: run the export where the corpus is, "
                  "or give your own text (--validate-on FILE)")
    elif saved is None and text is None:
        note = ("a Keras model file brings no corpus: random words stand in for text, and they are harder on an "
                "int8 file than what your users type; give that text with --validate-on FILE")
    return ValidationSet(contexts, reference, origin, tuple(edges), note)
