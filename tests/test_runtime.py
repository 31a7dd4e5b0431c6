"""The on-device runtime: Predictor, completion, sessions, threads, any input, the CLI and the keyboard."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from nextword import Predictor, Suggestion
from nextword.context import window_ids
from nextword.errors import EngineError, UsageError
from nextword.modelfile.reader import read_model_file
from nextword.modelfile.containers import zip_start

from conftest import run_cli

FILES = ["model.tflite", "model.float16.tflite", "model.int8.tflite", "model.onnx", "model.int8.onnx"]
CONTEXTS = ["we want", "i like the", "good", "they see some tea today", "", "you need a walk today <eos> we"]


@pytest.fixture(scope="module")
def keras_reference(exported):
    import keras

    run, _, _ = exported
    return keras.models.load_model(run / "model.keras", safe_mode=True)


@pytest.mark.parametrize("name", FILES)
def test_suggest_agrees_with_keras(exported, keras_reference, name):
    _, models, _ = exported
    predictor = Predictor.load(models / name)
    tokenizer, config = predictor.tokenizer, predictor.config
    batch = np.stack([window_ids(tokenizer.context_ids(text), config.window) for text in CONTEXTS])  # as read on a device
    reference = keras_reference(batch, training=False).numpy()
    for text, probs in zip(CONTEXTS, reference):
        got = predictor.suggest(text + " ", k=3)
        probs = probs.copy()
        probs[list(tokenizer.special_ids)] = -1
        assert got[0].word == tokenizer.vocab[int(np.argmax(probs))], (name, text)
        assert [s.prob for s in got] == sorted((s.prob for s in got), reverse=True)
        raw = predictor.engine.window(window_ids(predictor.context_ids(text), config.window)[None])[0]
        assert got[0].prob == pytest.approx(float(raw[tokenizer.id_of(got[0].word)]))  # suggest() = raw engine


def test_special_tokens_are_never_suggested(exported):
    _, models, _ = exported
    predictor = Predictor.load(models / "model.tflite")
    probs = np.full(predictor.config.vocab_size, 1e-4, np.float32)
    for special in predictor.tokenizer.special_ids:
        probs[special] = 0.5
    words = [s.word for s in predictor.rank(probs, k=predictor.config.vocab_size)]
    assert len(words) == predictor.tokenizer.word_count
    assert not {"<pad>", "<unk>", "<eos>"} & set(words)


def test_completion_of_an_unfinished_word(exported):
    _, models, _ = exported
    predictor = Predictor.load(models / "model.onnx")
    got = predictor.suggest("we want some t", k=5)
    assert got and all(s.word.startswith("t") for s in got)
    probs = predictor.probabilities("we want some")
    assert [s.word for s in got] == [s.word for s in predictor.rank(probs, 5, "t")]
    assert predictor.suggest("we want cof", k=5)[0].word == "coffee"
    assert predictor.suggest("we WANT CO", k=1)[0].word == "coffee"  # the partial word is normalised too
    # A finished word (in the vocabulary) gets next-word suggestions, as "hello how is" must.
    assert predictor.suggest("we want coffee") == predictor.suggest("we want coffee ")
    # Nothing in the vocabulary starts with it: it is an unknown word, suggest the next one.
    assert predictor.suggest("we want qqq") == predictor.suggest("we want qqq ")


def test_session_equals_suggest_word_by_word_and_beyond_the_window(exported):
    _, models, _ = exported
    for name in ("model.tflite", "model.int8.onnx"):
        predictor = Predictor.load(models / name)
        session = predictor.session()
        typed = "i like the train today we see some coffee good night thank you so much".split()
        assert len(typed) > predictor.config.window
        assert session.suggest(3) == predictor.suggest("", 3)
        for count, word in enumerate(typed, start=1):
            session.feed(word)
            expected = predictor.suggest(" ".join(typed[:count]) + " ", 3)
            assert [s.word for s in session.suggest(3)] == [s.word for s in expected], (name, count)
            np.testing.assert_allclose([s.prob for s in session.suggest(3)], [s.prob for s in expected], atol=1e-5)
        assert session.suggest(3, prefix="T") == predictor.suggest(" ".join(typed) + " t", 3)
        for count in range(len(typed) - 1, 0, -1):  # backspace, word by word, across the window edge
            assert session.backspace() == typed[count]  # as typed, unknown words too
            expected = predictor.suggest(" ".join(typed[:count]) + " ", 3)
            assert [s.word for s in session.suggest(3)] == [s.word for s in expected], (name, "back", count)
        session.reset()
        assert session.words == [] and session.backspace() is None


def test_a_session_never_reset_stays_bounded_and_equal_to_suggest(exported):
    from nextword.session import HISTORY

    _, models, _ = exported
    predictor = Predictor.load(models / "model.int8.tflite")
    session = predictor.session()
    words = "i like the train today we see some coffee good night thank you so much".split()
    typed = [words[i % len(words)] for i in range(HISTORY + 3 * predictor.config.window)]
    for word in typed:
        session.feed(word)
    assert len(session.words) == predictor.config.window + HISTORY  # older words dropped, the newest kept
    assert session.words[-3:] == typed[-3:]
    expected = predictor.suggest(" ".join(typed) + " ", 3)
    assert [s.word for s in session.suggest(3)] == [s.word for s in expected]
    np.testing.assert_allclose([s.prob for s in session.suggest(3)], [s.prob for s in expected], atol=1e-6)
    for _ in range(HISTORY + 3 * predictor.config.window):  # backspace through all that is kept
        session.backspace()
    assert session.backspace() is None and session.words == []


def test_suggest_batch_equals_one_by_one(exported):
    _, models, _ = exported
    predictor = Predictor.load(models / "model.tflite")
    texts = CONTEXTS + ["we want so", "x" * 1000]
    assert predictor.suggest_batch(texts, 4) == [predictor.suggest(t, 4) for t in texts]
    assert predictor.suggest_batch([], 3) == []


@pytest.mark.parametrize("name", ["model.int8.tflite", "model.onnx"])
def test_eight_threads_on_one_predictor_give_the_single_thread_results(exported, name):
    _, models, _ = exported
    predictor = Predictor.load(models / name)
    texts = [f"{a} {b} " for a in ("i", "we", "they", "you") for b in ("like", "want", "see", "need")]
    expected = [predictor.suggest(t, 3) for t in texts]
    sessions_expected = []
    for text in texts:
        session = predictor.session()
        session.feed(text)
        sessions_expected.append(session.suggest(3))
    errors, mismatches = [], []

    def worker(offset: int) -> None:
        try:
            for round_ in range(25):
                index = (offset + round_) % len(texts)
                if predictor.suggest(texts[index], 3) != expected[index]:
                    mismatches.append(index)
                session = predictor.session()
                session.feed(texts[index])
                if session.suggest(3) != sessions_expected[index]:
                    mismatches.append(index)
        except Exception as err:  # noqa: BLE001 - any error fails the test below
            errors.append(repr(err))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and mismatches == []


ODD_TEXTS = ["", " ", "\n\t\r", "\x00\x01\x07\x1b[31m", "🙂🙂🙂", "東京に行きます", "Ça va? Très bien!", "\ud800",
             "<unk> <eos> <pad>", "!!!...???", "a" * 5000, "word " * 200_000]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_any_input_gives_suggestions_not_exceptions(exported, text):
    _, models, _ = exported
    predictor = Predictor.load(models / "model.int8.tflite")
    got = predictor.suggest(text, 3)
    assert isinstance(got, list) and len(got) <= 3 and all(isinstance(s, Suggestion) for s in got)
    session = predictor.session()
    session.feed(text)
    assert len(session.suggest(3, prefix=text[-3:])) <= 3


def test_bad_k_and_engine_are_typed_errors(exported):
    _, models, _ = exported
    predictor = Predictor.load(models / "model.tflite")
    with pytest.raises(UsageError):
        predictor.suggest("we", k=0)
    with pytest.raises(EngineError, match="cannot run tflite"):
        Predictor.load(models / "model.tflite", engine="onnxruntime")


def test_format_comes_from_the_content_not_the_extension(exported, tmp_path):
    _, models, _ = exported
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes((models / "model.tflite").read_bytes())
    assert Predictor.load(disguised).model.format == "tflite"


def test_runtime_never_imports_tensorflow(exported):
    _, models, _ = exported
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'onnx'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from nextword import Predictor
for name in ('model.int8.tflite', 'model.onnx'):
    p = Predictor.load({str(models)!r} + '/' + name)
    s = p.session(); s.feed('we want'); s.suggest(3); p.suggest('we want so')
print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx') if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_predict_cli_text_json_and_stdin(exported):
    _, models, _ = exported
    model = str(models / "model.onnx")
    result = run_cli("predict", model, "we want some", "--json", "-k", "2")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [s["word"] for s in payload["suggestions"]] == \
        [s.word for s in Predictor.load(model).suggest("we want some", 2)]
    piped = subprocess.run([sys.executable, "-m", "nextword", "predict", model], input="we want\ngood\n",
                           capture_output=True, text=True)
    assert piped.returncode == 0 and len(piped.stdout.strip().splitlines()) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "text"])
def test_predict_refuses_a_damaged_file_in_one_line(exported, tmp_path, damage):
    _, models, _ = exported
    data = bytearray((models / "model.tflite").read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "flip":
        data[len(data) // 4] ^= 0x01
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"hello, I am not a model\n")
    bad = tmp_path / "model.tflite"
    bad.write_bytes(bytes(data))
    result = run_cli("predict", str(bad), "we want")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nextword predict: error:") and "Traceback" not in result.stderr


def _read_screen(fd: int, until: str, timeout: float = 20.0) -> str:
    seen = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if until.encode() in seen:
                break
    return seen.decode("utf-8", "replace")


def test_keyboard_in_a_terminal_shows_suggestions_as_keys_are_typed(exported):
    _, models, _ = exported
    predictor = Predictor.load(models / "model.int8.tflite")
    first_for_so = predictor.rank(predictor.probabilities("we want "), 3, "co")[0].word
    after_it = predictor.suggest(f"we want {first_for_so} ", 3)[0].word
    pid, fd = pty.fork()
    if pid == 0:  # the child: the keyboard, in a real pseudo-terminal
        os.execv(sys.executable, [sys.executable, "-m", "nextword", "keyboard", str(models / "model.int8.tflite")])
    try:
        assert "Tab: accept" in _read_screen(fd, "[1]")
        os.write(fd, b"we want co")
        screen = _read_screen(fd, f"[1] {first_for_so}")
        assert "> we want co" in screen and f"[1] {first_for_so}" in screen
        os.write(fd, b"\t")  # accept the first suggestion
        screen = _read_screen(fd, f"[1] {after_it}")
        assert f"> we want {first_for_so} " in screen and f"[1] {after_it}" in screen
        os.write(fd, b"\x7f\x7f")  # backspace twice: back inside the word
        assert "[1]" in _read_screen(fd, "[1]")
        os.write(fd, b"\x04")  # Ctrl-D quits
        _read_screen(fd, "never", timeout=3)
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_keyboard_falls_back_to_line_mode_without_a_terminal(exported):
    _, models, _ = exported
    result = subprocess.run([sys.executable, "-m", "nextword", "keyboard", str(models / "model.onnx")],
                            input="we want some\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    expected = Predictor.load(models / "model.onnx").suggest("we want some", 3)[0].word
    assert result.stdout.splitlines()[:2] == ["> we want some", result.stdout.splitlines()[1]]
    assert f"[1] {expected}" in result.stdout


def test_a_format_1_file_is_refused_with_one_line_saying_to_export_again(exported, tmp_path, capsys):
    from nextword import cli
    from nextword.export.tflite_format import associated_files_zip

    _, models, _ = exported
    model = read_model_file(models / "model.tflite")
    old = {**model.metadata.to_dict(), "format_version": 1, "graph": "window+step", "nextword_version": "0.0.9"}
    path = tmp_path / "model.tflite"
    path.write_bytes(model.data[:zip_start(model.data)] + associated_files_zip(model.tokenizer.vocab_text(),
                                                                              json.dumps(old)))
    assert cli.main(["predict", str(path), "hello"]) == 1
    err = capsys.readouterr().err
    assert "format 1" in err and "export the model again" in err and err.count("\n") == 1


def test_a_long_paste_costs_one_window_and_suggests_as_suggest_does(exported):
    """A session never freezes on a paste: 20,000 words are read once over their last window (recorded
    engine calls), and the suggestions equal ``suggest()`` on the same text."""
    _, models, _ = exported
    predictor = Predictor.load(models / "model.int8.tflite")
    steps = []
    real = predictor.engine.step
    predictor.engine.step = lambda token, h, c: steps.append(1) or real(token, h, c)
    text = " ".join(["we want some tea", "i like the train", "today coffee"] * 2000)
    session = predictor.session()
    session.feed("i like")
    before = len(steps)
    session.feed(text)
    assert len(steps) - before <= predictor.config.window  # the window's steps, not the text's words
    expected = predictor.suggest("i like " + text + " ", 3)
    assert [s.word for s in session.suggest(3)] == [s.word for s in expected]
    session.feed("we")  # typing on after the paste: one rebuild per word, still equal
    assert [s.word for s in session.suggest(3)] == [s.word for s in predictor.suggest("i like " + text + " we ", 3)]
    assert session.backspace() == "we"
    assert [s.word for s in session.suggest(3)] == [s.word for s in expected]


def test_suggest_runs_as_many_steps_as_the_context_has_words(exported):
    """Cost follows the context: the engine is asked for n steps for n words (the state after the start
    ids every text begins with, ``<eos>``, computed once), not the window's (the real engine, recorded)."""
    _, models, _ = exported
    predictor = Predictor.load(models / "model.int8.tflite")
    predictor.remember_contexts = False  # every call reads its whole context (remembering: the test below)
    calls = []
    engine = predictor.engine
    real = engine.sequence
    engine.sequence = lambda tokens, h, c: calls.append(tokens.shape) or real(tokens, h, c)
    start = predictor.tokenizer.context_ids("")
    assert start == [predictor.tokenizer.eos_id]
    for text, steps in (("we want some tea", 4), ("tea", 1), ("", 1)):  # no word: one padding step
        words = [s.word for s in predictor.suggest(text + " ", 3)]
        assert calls[-1] == (1, steps)
        full = engine.window(window_ids(predictor.context_ids(text), predictor.config.window)[None])[0]
        assert words == [s.word for s in predictor.rank(full, 3)]
        # Starting from the cached start state is the same arithmetic as running the start ids again.
        zero = np.zeros((predictor.config.num_layers, 1, predictor.config.hidden_size), np.float32)
        again = real(np.array([predictor.context_ids(text)], np.int32), zero, zero)[0]
        assert np.array_equal(predictor.probabilities(text), again[0])
    assert len(calls) == 3 * 2  # three suggest() and three probabilities() calls: the start state was
    assert predictor._start is not None  # computed once, by the load's probe, before the engine was recorded
    batch = predictor.suggest_batch(["we want some tea", "tea"], 3)
    assert calls[-1] == (2, 4) and [s.word for s in batch[1]] == [s.word for s in predictor.suggest("tea", 3)]


@pytest.mark.parametrize("name", ["model.int8.tflite", "model.onnx"])
def test_suggest_remembers_recent_contexts_and_gives_the_same_results(exported, name):
    """Typing order (each text the one before plus a word) costs one step per call: the state after a recent
    context is kept, and the same context again (a keyboard asking for each letter of a word) costs none.
    The results equal a predictor's that remembers nothing, to the bit, past the window too; memory is
    bounded; what probabilities() returns is the caller's to change."""
    _, models, _ = exported
    remembering, fresh = Predictor.load(models / name), Predictor.load(models / name)
    fresh.remember_contexts = False
    calls = []
    real = remembering.engine.sequence
    remembering.engine.sequence = lambda tokens, h, c: calls.append(tokens.shape) or real(tokens, h, c)
    window = remembering.config.window
    words = ("we want some tea today and they see a good walk " * 3).split()
    assert len(words) > window + 2
    for count in range(1, len(words)):
        text = " ".join(words[:count]) + " "
        before = len(calls)
        assert remembering.suggest(text, 4) == fresh.suggest(text, 4)
        if 1 < count < window:  # the context read (<eos> + count words) extends the last one by a word
            assert calls[before:] == [(1, 1)]
        before = len(calls)
        assert np.array_equal(remembering.probabilities(text), fresh.probabilities(text))
        assert remembering.suggest(text + "w", 4) == fresh.suggest(text + "w", 4)  # a letter of the next word
        assert calls[before:] in ([], [(1, 1)])  # the same context again, or one word more ("w" as a word)
    for text in ("we want", "we want tea", "we see", "we want a", "they"):  # back and forth
        assert remembering.suggest(text + " ", 3) == fresh.suggest(text + " ", 3)
    assert len(remembering._states) <= Predictor.REMEMBERED_STATES
    assert len(remembering._distributions) <= Predictor.REMEMBERED_DISTRIBUTIONS
    probs = remembering.probabilities("we want ")
    probs[:] = 0.0
    assert remembering.suggest("we want ", 3) == fresh.suggest("we want ", 3)


@pytest.mark.parametrize("name", ["model.tflite", "model.onnx"])
def test_an_engine_failure_after_load_is_a_typed_error(exported, name):
    """A file that passed every check at load can still fail inside the engine on some later input (the short
    fuzz run found one): the caller gets an EngineError, one line, never the engine's own exception."""
    from nextword.errors import EngineError

    _, models, _ = exported
    predictor = Predictor.load(models / name)
    engine = predictor.engine
    inner = "_window" if name.endswith(".tflite") else "_session"

    class Failing:
        def __call__(self, *args, **kwargs):
            raise RuntimeError("Node number 5 (SPLIT) failed to invoke.")

        run = __call__

    setattr(engine, inner, Failing())
    if name.endswith(".tflite"):
        engine._sequence = engine._step = Failing()
    with pytest.raises(EngineError, match="SPLIT") as info:
        predictor.suggest("we want", 3)
    assert "\n" not in str(info.value)
