"""Scoring a model on a text file: how often it suggests the right word, and how many keys it saves.

    nextword eval models/ptb/model.int8.tflite --text ptb.test.txt             # keyboard (line) context
    nextword eval runs/ptb --text ptb.test.txt --context stream --json           # the literature's setting

Every line is a sentence (``<eos>`` appended when the model has one). Each token is predicted from the
tokens before it: on its own line only (``line``, what a keyboard sees: the first word from an empty
context), or across lines (``stream``), up to the model's window either way. Works through the window
form of any engine, the same call the device makes.

Measures:
- ``perplexity``: exp of the mean negative log-probability of every target token;
- ``top1``/``top3``/``top5``: the target is among the k most probable ids of the full distribution
  (special tokens included, comparable with the literature);
- ``suggest_top1``/``suggest_top3``: as the keyboard shows it: special tokens never suggested, and targets
  that are special tokens (``<unk>``, ``<eos>``) skipped;
- ``ksr``: keystroke savings rate with 3 suggestions (see ``keystrokes``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from nextword.context import WordIndex, window_ids
from nextword.tokenizer import Tokenizer

WindowFn = Callable[[np.ndarray], np.ndarray]  # (batch, window) int32 -> (batch, vocab) probabilities
CONTEXTS = ("line", "stream")
SUGGESTIONS = 3


def examples(lines: Iterable[str], tokenizer: Tokenizer, window: int, context: str) -> Iterator[tuple[list, int]]:
    """(context ids, target id) for every token of every line."""
    start = tokenizer.context_ids("")  # [<eos>] when the model has one: what a keyboard context starts with
    history: deque[int] = deque(start, maxlen=window)
    for line in lines:
        ids = tokenizer.encode_line(line)
        if context == "line":
            history = deque(start, maxlen=window)
        for target in ids:
            yield list(history), target
            history.append(target)


class KeystrokeCounter:
    """Keystroke savings with a suggestion strip, for words the vocabulary knows.

    A word of n letters costs n + 1 keys typed in full (letters, then a space). With the strip: before
    each letter (and before the first), the keyboard shows the 3 most probable vocabulary words that
    start with the letters typed so far, ranked by the model's probability given the words before; if the
    word is shown, one key accepts it (the space comes with it). So a word shown after j letters costs
    j + 1 keys. KSR = 1 - keys with suggestions / keys without. Special-token targets are skipped.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.index = WordIndex(tokenizer)
        self.vocab = tokenizer.vocab
        self.typed = 0
        self.with_strip = 0

    def add(self, probs: np.ndarray, target: int, shown_without_prefix: bool, *, index: WordIndex | None = None,
            word: str | None = None) -> None:
        """One target word; ``index`` and ``word`` for a strip that ranks more words than the vocabulary's
        (a user profile's personal words), where ``target`` may be an id past the vocabulary."""
        word = self.vocab[target] if word is None else word
        index = index or self.index
        self.typed += len(word) + 1
        if shown_without_prefix:
            self.with_strip += 1
            return
        for letters in range(1, len(word)):
            shown = index.top(probs, SUGGESTIONS, word[:letters])
            if target in shown:
                self.with_strip += letters + 1
                return
        self.with_strip += len(word) + 1  # typed in full (the last letter completes it anyway)

    def typed_in_full(self, word: str) -> None:
        """A word the strip can never show (outside what it suggests): n + 1 keys either way."""
        self.typed += len(word) + 1
        self.with_strip += len(word) + 1

    @property
    def ksr(self) -> float:
        return 1.0 - self.with_strip / self.typed if self.typed else 0.0


def evaluate(window_fn: WindowFn, tokenizer: Tokenizer, window: int, lines: Iterable[str], *,
             context: str = "line", batch_size: int = 512, progress=None) -> dict:
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {CONTEXTS}")
    special = np.array(sorted(tokenizer.special_ids), dtype=np.int64)
    totals = {"nll": 0.0, "tokens": 0, "top1": 0, "top3": 0, "top5": 0, "suggest_tokens": 0, "suggest_top1": 0,
              "suggest_top3": 0}
    keys = KeystrokeCounter(tokenizer)
    started = time.perf_counter()

    def score(batch: list[tuple[list, int]]) -> None:
        inputs = np.stack([window_ids(ids, window) for ids, _ in batch])  # (n, window)
        targets = np.array([t for _, t in batch], dtype=np.int64)
        probs = np.asarray(window_fn(inputs), dtype=np.float64)  # (n, vocab)
        rows = np.arange(len(batch))
        p_target = probs[rows, targets]
        totals["nll"] += float(-np.log(np.maximum(p_target, 1e-30)).sum())
        rank = (probs > p_target[:, None]).sum(axis=1)  # 0 = best
        totals["tokens"] += len(batch)
        for k in (1, 3, 5):
            totals[f"top{k}"] += int((rank < k).sum())
        words = ~np.isin(targets, special)
        masked = probs.copy()
        masked[:, special] = -1.0
        suggest_rank = (masked > p_target[:, None]).sum(axis=1)
        totals["suggest_tokens"] += int(words.sum())
        totals["suggest_top1"] += int(((suggest_rank < 1) & words).sum())
        totals["suggest_top3"] += int(((suggest_rank < 3) & words).sum())
        for row in np.flatnonzero(words):
            keys.add(probs[row], int(targets[row]), bool(suggest_rank[row] < SUGGESTIONS))
        if progress is not None:
            progress(len(batch))

    pending: list[tuple[list, int]] = []
    for example in examples(lines, tokenizer, window, context):
        pending.append(example)
        if len(pending) == batch_size:
            score(pending)
            pending = []
    if pending:
        score(pending)
    n, words = max(totals["tokens"], 1), max(totals["suggest_tokens"], 1)
    return {
        "perplexity": math.exp(totals["nll"] / n) if totals["tokens"] else float("nan"),
        "top1": totals["top1"] / n,
        "top3": totals["top3"] / n,
        "top5": totals["top5"] / n,
        "suggest_top1": totals["suggest_top1"] / words,
        "suggest_top3": totals["suggest_top3"] / words,
        "ksr": keys.ksr,
        "tokens": totals["tokens"],
        "suggest_tokens": totals["suggest_tokens"],
        "context": context,
        "seconds": round(time.perf_counter() - started, 2),
    }


class TargetScores:
    """The measures of ``evaluate``, accumulated one target at a time (a simulated user's session)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.keys = KeystrokeCounter(tokenizer)
        self.nll, self.tokens, self.top = 0.0, 0, {1: 0, 3: 0, 5: 0}
        self.words, self.suggest_top = 0, {1: 0, 3: 0}

    def add(self, model_probs: np.ndarray, model_target: int | None, probs: np.ndarray, target: int | None,
            word: str | None, index: WordIndex) -> None:
        """Perplexity and top-k on the model's own ids (``model_probs``, ``model_target``: every unknown word
        is ``<unk>``, None where the model has none), so that runs with and without a profile score the same
        events; the suggestion measures on what the strip ranks (``probs``, ``target``: None if it cannot
        show the word, ``index``). ``word``: the target as typed, None for special tokens."""
        if model_target is not None:
            p_model = float(model_probs[model_target])
            self.nll -= math.log(max(p_model, 1e-30))
            self.tokens += 1
            rank = int((model_probs > p_model).sum())
            for k in self.top:
                self.top[k] += rank < k
        if word is None:
            return
        p_target = float(probs[target]) if target is not None else 0.0
        self.words += 1
        if target is None or not index.suggests(target):
            self.keys.typed_in_full(word)
            return
        rank = int((probs[index.ids] > p_target).sum())  # among the words the strip may show
        for k in self.suggest_top:
            self.suggest_top[k] += rank < k
        self.keys.add(probs, target, rank < SUGGESTIONS, index=index, word=word)

    def result(self) -> dict:
        n, words = max(self.tokens, 1), max(self.words, 1)
        return {"perplexity": math.exp(self.nll / n) if self.tokens else float("nan"),
                "top1": self.top[1] / n, "top3": self.top[3] / n, "top5": self.top[5] / n,
                "suggest_top1": self.suggest_top[1] / words, "suggest_top3": self.suggest_top[3] / words,
                "ksr": self.keys.ksr, "tokens": self.tokens, "suggest_tokens": self.words, "context": "line"}


def collapse(probs: np.ndarray, vocab_size: int, unk: int | None) -> np.ndarray:
    """A distribution over the model's ids from one that also covers a profile's personal words (ids from
    ``vocab_size`` on): their probability goes back to ``<unk>``, the event the model scores them as."""
    if len(probs) == vocab_size or unk is None:
        return probs[:vocab_size]
    out = probs[:vocab_size].copy()
    out[unk] += probs[vocab_size:].sum()
    return out


def evaluate_adapted(predictor, lines: Iterable[str], profile=None, *, progress=None) -> dict:
    """One user typing ``lines`` in order, each line a message sent after it is scored (line context):
    every measure with the profile's adaptation, and under ``baseline`` without it, on the same targets.

    Unlike ``evaluate``, a word outside the vocabulary is a word target here in both runs (the user
    typed it): the model alone can never suggest it, a profile can once it became a personal word."""
    from nextword.profile import Profile

    profile = profile if profile is not None else Profile()
    session = predictor.session(profile)
    tokenizer = predictor.tokenizer
    eos = tokenizer.vocab[tokenizer.eos_id] if tokenizer.eos_id is not None else None
    adapted, baseline = TargetScores(tokenizer), TargetScores(tokenizer)
    base_index = predictor.words
    special_tokens = set(tokenizer.config.special_tokens)
    unknown = personal = 0
    started = time.perf_counter()
    for line in lines:
        tokens = tokenizer.split(line) + ([eos] if eos else [])
        session.reset()
        for token in tokens:
            ids = tokenizer.ids([token])
            model_id = ids[0] if ids else None
            word = None if token in special_tokens else token
            model = session.probabilities()
            mixed, index = session.adapted()
            target = model_id
            if word is not None and tokenizer.id_of(token) is None:
                unknown += 1
                extra = profile.extra_id(token)
                if extra is not None:
                    target = extra
                    personal += index.suggests(extra)
            baseline.add(model, model_id, model, model_id, word, base_index)
            adapted.add(collapse(mixed, len(model), tokenizer.unk_id), model_id, mixed, target, word, index)
            session.feed_tokens([token])
            if progress is not None:
                progress(1)
        session.commit()
    result = adapted.result()
    words = max(result["suggest_tokens"], 1)
    result.update({"adapt": True, "unknown_word_share": unknown / words, "personal_word_share": personal / words,
                   "mixing_weights": profile.summary()["mixing_weights"],
                   "seconds": round(time.perf_counter() - started, 2), "baseline": baseline.result()})
    return result
