"""The Kneser-Ney trigram baseline against a textbook implementation written with dictionaries."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from nextword import cli
from nextword.measure.ngram import KneserNeyTrigram
from nextword.tokenizer import Tokenizer, TokenizerConfig


def _discounts(counts: Counter) -> tuple[float, float, float]:
    n1, n2, n3, n4 = (sum(1 for c in counts.values() if c == k) for k in (1, 2, 3, 4))
    if not (n1 and n2 and n3 and n4):
        return 0.5, 0.5, 0.5  # too few n-grams to estimate: the plain discount
    y = n1 / (n1 + 2 * n2)
    return 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3


def _reference(events: list[tuple[int, int, int]], vocab: int):
    """p(w | u, v) by Chen & Goodman's interpolated modified Kneser-Ney, one dictionary per order."""
    tri = Counter(events)
    bi = Counter((v, w) for (_, v, w) in tri)           # continuation counts N1+(. v w)
    uni = Counter(w for (_, w) in bi)                    # N1+(. w)
    d_tri, d_bi, d_uni = _discounts(tri), _discounts(bi), _discounts(uni)

    def discount(d, count):
        return d[min(count, 3) - 1]

    def grouped(counts):
        groups = defaultdict(dict)
        for key, count in counts.items():
            groups[key[:-1]][key[-1]] = count
        return groups

    tri_by, bi_by = grouped(tri), grouped(bi)
    total_uni = sum(uni.values())
    freed_uni = sum(discount(d_uni, c) for c in uni.values())

    def p_uni(w):
        uniform = 0.0 if w == 0 else 1 / (vocab - 1)
        return (max(uni[w] - discount(d_uni, uni[w]), 0) if uni[w] else 0) / total_uni + freed_uni / total_uni * uniform

    def interpolate(group, d, w, lower):
        if not group:
            return lower
        total = sum(group.values())
        freed = sum(discount(d, c) for c in group.values())
        own = (group[w] - discount(d, group[w])) / total if w in group else 0.0
        return own + freed / total * lower

    def p(u, v, w):
        return interpolate(tri_by.get((u, v)), d_tri, w, interpolate(bi_by.get((v,)), d_bi, w, p_uni(w)))

    return p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trigram_equals_the_textbook_formula(seed):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)]
    # Zipf-like text, so every order has n-grams seen 1 to 4 times.
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 12), p=_zipf(len(words)))) for _ in range(1500)]
    tokenizer = Tokenizer.fit(lines, TokenizerConfig(eos_token="<eos>", max_vocab=250))  # some <unk> too
    trigram = KneserNeyTrigram(tokenizer, lines)
    events, start = [], tokenizer.context_ids("")
    for line in lines:
        history = [0, 0, *start]
        for target in tokenizer.encode_line(line):
            events.append((history[-2], history[-1], target))
            history.append(target)
    reference = _reference(events, tokenizer.vocab_size)
    contexts = sorted({(u, v) for u, v, _ in events})[:40] + [(3, 3), (0, 0), (7, 2)]  # some never seen
    windows = np.array([[0, u, v] for u, v in contexts], dtype=np.int32)
    got = trigram.window_fn(3)(windows)
    expected = np.array([[reference(u, v, w) for w in range(tokenizer.vocab_size)] for u, v in contexts])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-9)
    assert (got[:, 1:] > 0).all() and (got[:, 0] == 0).all()  # every word possible, padding never


def _zipf(n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1)
    return weights / weights.sum()


def test_stream_context_counts_across_lines():
    tokenizer = Tokenizer.fit(["a b", "c d"], TokenizerConfig(eos_token="<eos>"))
    a, b, c, eos = (tokenizer.id_of(w) for w in ("a", "b", "c", "<eos>"))
    line = KneserNeyTrigram(tokenizer, ["a b", "c d"] * 5, context="line")
    stream = KneserNeyTrigram(tokenizer, ["a b", "c d"] * 5, context="stream")
    after_ab = np.array([[b, eos]], dtype=np.int32)  # "a b <eos>" then the next line
    assert stream.window_fn(2)(after_ab)[0, c] > 0.5  # in the stream "c" always follows "b <eos>"
    assert line.window_fn(2)(after_ab)[0, c] < stream.window_fn(2)(after_ab)[0, c]
    first = np.array([[0, eos]], dtype=np.int32)
    assert line.window_fn(2)(first)[0, a] == pytest.approx(line.window_fn(2)(first)[0, c], rel=0.01)


def test_eval_cli_compares_with_a_trigram(exported, tmp_path, capsys):
    _, models, _ = exported
    text = tmp_path / "text.txt"
    text.write_text("we want coffee today\ni like the train today\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("we want coffee today\nwe want tea\n" * 3, encoding="utf-8")
    assert cli.main(["eval", str(models / "model.tflite"), "--text", str(text), "--trigram", str(corpus),
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    trigram = result["trigram"]
    assert trigram["tokens"] == result["tokens"] == 11 and trigram["tokens_trained"] == 3 * (5 + 4)
    assert trigram["perplexity"] > 1 and "Kneser-Ney trigram" in trigram["model"]
    assert cli.main(["eval", str(models / "model.tflite"), "--text", str(text), "--trigram", str(corpus)]) == 0
    assert capsys.readouterr().out.count("keystroke savings") == 2
    assert cli.main(["eval", str(models / "model.tflite"), "--text", str(text), "--trigram",
                     str(tmp_path / "none.txt")]) == 1
    assert "does not exist" in capsys.readouterr().err
