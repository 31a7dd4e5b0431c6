"""Evaluation measures on a hand-checkable model: a fixed distribution per context."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nextword import cli
from nextword.measure.evaluate import KeystrokeCounter, evaluate, examples
from nextword.tokenizer import Tokenizer, TokenizerConfig

LINES = ["the cat sat", "the cat ran"]


@pytest.fixture
def tokenizer():
    return Tokenizer.fit(LINES, TokenizerConfig(eos_token="<eos>"))


def test_line_and_stream_contexts(tokenizer):
    ids = [tokenizer.encode_line(line) for line in LINES]
    eos = tokenizer.eos_id
    line = list(examples(LINES, tokenizer, window=2, context="line"))
    # A context starts after <eos>, as in training and on the keyboard; the window keeps the last 2 ids.
    assert [(c, t) for c, t in line[:4]] == [([eos], ids[0][0]), ([eos, ids[0][0]], ids[0][1]),
                                            (ids[0][:2], ids[0][2]), (ids[0][1:3], ids[0][3])]
    assert line[4] == ([eos], ids[1][0])  # a new line starts afresh
    stream = list(examples(LINES, tokenizer, window=2, context="stream"))
    assert stream[4] == (ids[0][2:4], ids[1][0])  # the context runs across lines


def test_measures_on_a_known_distribution(tokenizer):
    vocab = tokenizer.vocab_size
    cat, the = tokenizer.id_of("cat"), tokenizer.id_of("the")

    def always_cat(inputs):  # (n, window) -> (n, vocab): p(cat) = 0.5, the rest uniform
        probs = np.full((len(inputs), vocab), 0.5 / (vocab - 1))
        probs[:, cat] = 0.5
        return probs

    result = evaluate(always_cat, tokenizer, 3, LINES, context="line")
    targets = [t for line in LINES for t in tokenizer.encode_line(line)]
    assert result["tokens"] == len(targets) == 8
    p = [0.5 if t == cat else 0.5 / (vocab - 1) for t in targets]
    assert result["perplexity"] == pytest.approx(math.exp(-np.mean(np.log(p))))
    assert result["top1"] == pytest.approx(2 / 8)  # only the two "cat" targets are ranked first
    words = [t for t in targets if t not in tokenizer.special_ids]
    assert result["suggest_tokens"] == len(words) == 6  # the two <eos> targets are skipped
    assert result["suggest_top1"] == pytest.approx(2 / 6)
    assert 0 <= result["ksr"] <= 1
    assert the != cat


def test_keystroke_savings_by_hand():
    tokenizer = Tokenizer.fit(["apple apricot banana"], TokenizerConfig(unk_token=None))
    counter = KeystrokeCounter(tokenizer)
    probs = np.zeros(tokenizer.vocab_size)
    probs[tokenizer.id_of("apple")] = 0.9
    counter.add(probs, tokenizer.id_of("apple"), shown_without_prefix=True)  # shown at once: 1 key for 6
    assert (counter.typed, counter.with_strip) == (6, 1)
    counter.add(probs, tokenizer.id_of("banana"), shown_without_prefix=False)  # "b" leaves one candidate
    assert (counter.typed, counter.with_strip) == (13, 1 + 2)
    assert counter.ksr == pytest.approx(1 - 3 / 13)


def test_eval_cli_on_a_model_file(exported, tmp_path, capsys):
    _, models, _ = exported
    text = tmp_path / "text.txt"
    text.write_text("we want coffee today\ni like the train today\n", encoding="utf-8")
    assert cli.main(["eval", str(models / "model.int8.tflite"), "--text", str(text), "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"perplexity", "top1", "top3", "top5", "suggest_top1", "suggest_top3", "ksr", "tokens"}
    assert result["tokens"] == 5 + 6 and result["perplexity"] > 1  # words plus <eos> per line
    assert cli.main(["eval", str(models / "model.onnx"), "--text", str(tmp_path / "missing.txt")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_bench_writes_json_markdown_and_chart(exported, tmp_path):
    _, models, _ = exported
    out = tmp_path / "bench"
    assert cli.main(["bench", str(models / "model.int8.tflite"), str(models / "model.onnx"), "--repeats", "10",
                     "--out", str(out)]) == 0
    import json

    result = json.loads((out / "bench.json").read_text())
    engines = {(r["file"], r["engine"]) for r in result["runtime"]}
    assert engines == {("model.int8.tflite", "ai-edge-litert"), ("model.onnx", "onnxruntime")}
    for row in result["runtime"]:
        assert row["suggest"]["calls"] == 10 and 0 < row["suggest"]["p50_ms"] <= row["suggest"]["p99_ms"]
        assert row["raw_step"]["p50_ms"] > 0 and row["cold_start_s"] > 0 and row["peak_rss_mb"] > 0
        assert not row["tensorflow_loaded"]  # the cold-start process is runtime-only
    assert "| model.onnx | onnxruntime |" in (out / "bench.md").read_text()
    window = result["runtime"][0]["suggest_p50_ms_by_context_words"]
    assert list(window) == ["1", "3", "5", "6"] and all(v > 0 for v in window.values())  # the fixture's window is 6
    assert "by context length" in (out / "bench.md").read_text()
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
