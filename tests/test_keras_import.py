"""`nextword export MODEL_FILE`: the model a Keras user already has, with the tutorial's own flow.

Trained here as the tutorial does (Tokenizer, prefix n-grams, pad_sequences('pre'), Sequential, fit, save),
exported through the CLI, and read back by the runtime: its top-3 must be the Keras model's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tensorflow")

sys.path.insert(0, str(Path(__file__).parent / "parity"))
from keras_tutorial import CONTEXTS, train_tutorial_model  # noqa: E402

from conftest import run_cli  # noqa: E402
from nextword import Predictor  # noqa: E402
from nextword.modelfile.contract import PRECISIONS, file_name  # noqa: E402
from nextword.modelfile.reader import read_model_file  # noqa: E402


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    root = tmp_path_factory.mktemp("tutorial")
    return {kind: train_tutorial_model(root / kind, kind) for kind in ("lstm", "gru", "rnn", "gru_v1", "deep")}


def _export(*args: str):
    return run_cli("export", *args)


def _runtime_top3(path: Path, text: str) -> list[str]:
    return [s.word for s in Predictor.load(path).suggest(text + " ", 3)]


@pytest.mark.parametrize("kind, model_kind, tokenizer_kind", [
    ("lstm", "keras", "to_json"),   # unmasked: the cell reads the padding
    ("gru", "h5", "word_index"),    # mask_zero, reset_after=True
    ("rnn", "keras", "word_index"),  # relu SimpleRNN, unmasked
    ("lstm", "h5", "to_json"),
    ("gru_v1", "keras", "to_json"),  # reset_after=False
    ("deep", "h5", "word_index"),    # LSTM(24) -> Dropout -> GRU(16) -> Dense(relu) -> logits: mixed widths
])
def test_tutorial_model_exports_and_predicts_what_keras_predicts(tutorial, tmp_path, kind, model_kind,
                                                                   tokenizer_kind):
    made = tutorial[kind]
    model = made.keras_path if model_kind == "keras" else made.h5_path
    tokenizer = made.tokenizer_json if tokenizer_kind == "to_json" else made.word_index_json
    out = tmp_path / "exported"
    result = _export(str(model), "--tokenizer", str(tokenizer), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "random words stand in for text" in result.stdout and "--validate-on FILE" in result.stdout
    report = json.loads((out / "export_report.json").read_text())
    assert report["source"]["file"] == model.name and all(f["passed"] for f in report["files"])
    for fmt, precisions in PRECISIONS.items():
        for precision in precisions:
            path = out / file_name(fmt, precision)
            for text in CONTEXTS:
                ours, theirs = _runtime_top3(path, text), made.keras_top3(text)
                if precision != "int8":
                    assert ours == theirs, (path.name, text)
                else:  # int8 may swap near-ties only: top-1 equal, any other swap within 0.02 of probability
                    probs, index = made.keras_probs(text), made.tokenizer.word_index
                    assert ours[0] == theirs[0], (path.name, text)
                    assert all(abs(probs[index[a]] - probs[index[b]]) <= 0.02 for a, b in zip(ours, theirs)), \
                        (path.name, text, ours, theirs)
    float32 = read_model_file(out / "model.tflite")
    assert float32.config.masked is kind.startswith("gru")
    assert float32.metadata.source["layers"][0].startswith("Embedding(")


def test_unmasked_model_session_gives_the_window_forms_suggestions(tutorial, tmp_path):
    """The state after n words depends on the window - n pads before them: the session reads the window."""
    made = tutorial["lstm"]
    out = tmp_path / "exported"
    assert _export(str(made.keras_path), "--out", str(out), "--formats", "tflite",
                   "--precisions", "float32").returncode == 0  # tokenizer found next to the model
    predictor = Predictor.load(out / "model.tflite")
    session = predictor.session()
    typed = []
    for word in "hello how are you".split():
        session.feed(word)
        typed.append(word)
        expected = predictor.suggest(" ".join(typed) + " ", 3)
        assert session.suggest(3) == expected
        assert [s.word for s in expected] == made.keras_top3(" ".join(typed))
    # A paste longer than the window, then backspaces back inside it: each position read when needed.
    text = "hello how are you " * predictor.config.window
    session.reset()
    session.feed(text)
    assert session.suggest(3) == predictor.suggest(text, 3)
    words = text.split()
    for count in range(len(words) - 1, len(words) - predictor.config.window - 2, -1):
        session.backspace()
        assert session.suggest(3) == predictor.suggest(" ".join(words[:count]) + " ", 3), count
    probs = predictor.probabilities("hello how")
    assert np.allclose(probs, made.keras_probs("hello how"), atol=1e-5)


def test_inspect_says_where_the_model_came_from(tutorial, tmp_path):
    made = tutorial["rnn"]
    out = tmp_path / "exported"
    assert _export(str(made.keras_path), "--tokenizer", str(made.tokenizer_json), "--out", str(out),
                   "--formats", "onnx", "--precisions", "float32").returncode == 0
    shown = run_cli("inspect", str(out / "model.onnx")).stdout
    assert "came from    keras model file rnn.keras" in shown
    assert "SimpleRNN(50, relu)" in shown and "padding read by the cells" in shown


def test_window_from_the_option_when_the_model_leaves_it_open(tmp_path, tutorial):
    import keras

    made = tutorial["gru"]
    open_model = keras.Sequential([keras.Input((None,)), *made.model.layers])
    open_model.save(tmp_path / "open.keras")
    missing = _export(str(tmp_path / "open.keras"), "--tokenizer", str(made.tokenizer_json),
                      "--out", str(tmp_path / "a"))
    assert missing.returncode != 0 and "--window N" in missing.stderr and missing.stderr.count("\n") == 1
    ok = _export(str(tmp_path / "open.keras"), "--tokenizer", str(made.tokenizer_json), "--window",
                 str(made.window), "--out", str(tmp_path / "b"), "--formats", "tflite", "--precisions", "float32")
    assert ok.returncode == 0, ok.stderr[-1500:]
    assert read_model_file(tmp_path / "b" / "model.tflite").config.window == made.window


def test_functional_model_exports(tutorial, tmp_path):
    """The same layers built with the functional API (fresh layers, the trained weights copied)."""
    import keras

    made = tutorial["gru"]
    tokens = keras.Input((made.window,))
    x = tokens
    for layer in made.model.layers:
        fresh = type(layer).from_config(layer.get_config())
        x = fresh(x)
        fresh.set_weights(layer.get_weights())
    keras.Model(tokens, x).save(tmp_path / "functional.keras")
    out = tmp_path / "exported"
    result = _export(str(tmp_path / "functional.keras"), "--tokenizer", str(made.tokenizer_json), "--out", str(out),
                     "--formats", "tflite", "--precisions", "float32")
    assert result.returncode == 0, result.stderr[-1500:]
    for text in CONTEXTS:
        assert _runtime_top3(out / "model.tflite", text) == made.keras_top3(text)


def _refused(result, out: Path, *phrases: str) -> None:
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(p in result.stderr for p in phrases), result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_unsupported_layers_are_named_in_one_line(tmp_path, tutorial):
    import keras

    made = tutorial["lstm"]
    vocab = len(made.tokenizer.word_index) + 1
    conv = keras.Sequential([keras.Input((made.window,)), keras.layers.Embedding(vocab, 8),
                             keras.layers.Conv1D(8, 2), keras.layers.GlobalMaxPooling1D(),
                             keras.layers.Dense(vocab, activation="softmax")])
    conv.save(tmp_path / "conv.keras")
    _refused(_export(str(tmp_path / "conv.keras"), "--tokenizer", str(made.tokenizer_json), "--out",
                     str(tmp_path / "o1")), tmp_path / "o1", "Conv1D", "Embedding -> LSTM / GRU / SimpleRNN")

    tokens = keras.Input((made.window,))
    embedded = keras.layers.Embedding(vocab, 8)(tokens)
    attended = keras.layers.Attention()([embedded, embedded])
    pooled = keras.layers.LSTM(8)(attended)
    functional = keras.Model(tokens, keras.layers.Dense(vocab, activation="softmax")(pooled))
    functional.save(tmp_path / "attention.keras")
    _refused(_export(str(tmp_path / "attention.keras"), "--tokenizer", str(made.tokenizer_json), "--out",
                     str(tmp_path / "o2")), tmp_path / "o2", "Attention")

    bidirectional = keras.Sequential([keras.Input((made.window,)), keras.layers.Embedding(vocab, 8),
                                      keras.layers.Bidirectional(keras.layers.LSTM(8)),
                                      keras.layers.Dense(vocab, activation="softmax")])
    bidirectional.save(tmp_path / "bi.keras")
    _refused(_export(str(tmp_path / "bi.keras"), "--tokenizer", str(made.tokenizer_json), "--out",
                     str(tmp_path / "o3")), tmp_path / "o3", "Bidirectional", "backwards")


def test_tokenizer_problems_are_one_line(tmp_path, tutorial):
    made = tutorial["lstm"]
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    model = lonely / "model.keras"
    model.write_bytes(made.keras_path.read_bytes())
    _refused(_export(str(model), "--out", str(tmp_path / "o1")), tmp_path / "o1", "no tokenizer next to",
             "--tokenizer FILE")

    bigger = dict(made.tokenizer.word_index, extra=len(made.tokenizer.word_index) + 1, more=99)
    (tmp_path / "big.json").write_text(json.dumps(bigger))
    vocab = len(made.tokenizer.word_index) + 1
    _refused(_export(str(model), "--tokenizer", str(tmp_path / "big.json"), "--out", str(tmp_path / "o2")),
             tmp_path / "o2", "ids up to 99", f"reads {vocab} ids")

    from tensorflow.keras.preprocessing.text import Tokenizer

    chars = Tokenizer(char_level=True)
    chars.fit_on_texts(["hello how are you"])
    (tmp_path / "chars.json").write_text(chars.to_json())
    _refused(_export(str(model), "--tokenizer", str(tmp_path / "chars.json"), "--out", str(tmp_path / "o3")),
             tmp_path / "o3", "char_level")

    _refused(_export(str(tmp_path / "missing.keras"), "--out", str(tmp_path / "o4")), tmp_path / "o4",
             "does not exist")
    (tmp_path / "broken.keras").write_bytes(b"not a zip at all")
    _refused(_export(str(tmp_path / "broken.keras"), "--tokenizer", str(made.tokenizer_json),
                     "--out", str(tmp_path / "o5")), tmp_path / "o5", "cannot be loaded as a Keras model")


def test_tf_keras_h5_exports(tmp_path, tutorial):
    """A model saved by Keras 2 / tf_keras, in the environment that has it."""
    tf_keras = pytest.importorskip("tf_keras")
    made = tutorial["lstm"]
    vocab = len(made.tokenizer.word_index) + 1
    old = tf_keras.Sequential([tf_keras.layers.Embedding(vocab, 10, input_length=made.window),
                               tf_keras.layers.LSTM(20), tf_keras.layers.Dense(vocab, activation="softmax")])
    old.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    old.save(tmp_path / "old.h5")
    out = tmp_path / "exported"
    result = _export(str(tmp_path / "old.h5"), "--tokenizer", str(made.tokenizer_json), "--out", str(out),
                     "--formats", "tflite", "--precisions", "float32")
    assert result.returncode == 0, result.stderr[-1500:]
    from tensorflow.keras.preprocessing.sequence import pad_sequences

    predictor = Predictor.load(out / "model.tflite")
    assert predictor.model.metadata.source["file"] == "old.h5"
    for text in CONTEXTS:
        ids = pad_sequences(made.tokenizer.texts_to_sequences([text]), maxlen=made.window, padding="pre")
        assert np.allclose(predictor.probabilities(text), old.predict(ids, verbose=0)[0], atol=1e-5)


# ------------------------------------------------------------------ tokenizer files, as Keras reads text
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_text, st.sampled_from([None, "<OOV>"]), st.sampled_from([None, 6]))
def test_tokenizer_json_encodes_as_keras_does(text, oov, num_words):
    from tensorflow.keras.preprocessing.text import Tokenizer as KerasTokenizer

    from nextword.export.keras_tokenizer import read_tokenizer

    keras_tokenizer = KerasTokenizer(oov_token=oov, num_words=num_words)
    keras_tokenizer.fit_on_texts(["Hello how are you", "hello how is your day", "what a day, Ça va?"])
    path = Path(__import__("tempfile").mkdtemp()) / "tokenizer.json"
    path.write_text(keras_tokenizer.to_json(), encoding="utf-8")
    size = len(keras_tokenizer.word_index) + 1
    ours = read_tokenizer(path, input_dim=size, output_dim=size)
    assert ours.encode(text) == keras_tokenizer.texts_to_sequences([text])[0]


def test_vocab_txt_and_word_index_forms(tmp_path):
    from nextword.errors import TokenizerFileError
    from nextword.export.keras_tokenizer import read_tokenizer

    keras_style = tmp_path / "vocab.txt"
    keras_style.write_text("hello\nhow\nare\n")  # line 1 is id 1
    tokenizer = read_tokenizer(keras_style, input_dim=4, output_dim=6)
    assert tokenizer.encode("Hello, how are you") == [1, 2, 3]  # "you" unknown, no oov token: dropped
    assert tokenizer.vocab_size == 6 and tokenizer.special_ids >= {0, 4, 5}  # placeholders never suggested
    ours = tmp_path / "ours.txt"
    ours.write_text("<pad>\n<unk>\nhello\nhow\n")  # nextword's layout: the line number is the id
    tokenizer = read_tokenizer(ours, input_dim=4, output_dim=4)
    assert tokenizer.encode("hello you") == [2, 1] and tokenizer.unk_id == 1
    (tmp_path / "gap.json").write_text(json.dumps({"a": 1, "c": 3}))
    with pytest.raises(TokenizerFileError, match="no word"):
        read_tokenizer(tmp_path / "gap.json", input_dim=4, output_dim=4)


def test_imported_files_match_the_documented_keys(tutorial, tmp_path):
    """docs/model-format.md covers a Keras user's file too (source, masked, split, unused_from)."""
    from test_model_format import documented_keys, flatten, matches

    made = tutorial["gru"]
    out = tmp_path / "exported"
    assert _export(str(made.h5_path), "--tokenizer", str(made.word_index_json), "--out", str(out),
                   "--formats", "tflite", "--precisions", "int8").returncode == 0
    keys = documented_keys()
    found = flatten(read_model_file(out / "model.int8.tflite").metadata.to_dict())
    assert {"source.layers", "model.masked", "tokenizer.split", "tokenizer.unused_from"} <= set(found)
    for key in found:
        assert any(matches(p, key) for p in keys), f"{key} is not in docs/model-format.md"


def test_device_commands_on_a_keras_file_say_export_it_first(tutorial):
    made = tutorial["lstm"]
    for command in ("predict", "inspect"):
        args = [command, str(made.keras_path)] + (["hello"] if command == "predict" else [])
        result = run_cli(*args)
        assert result.returncode != 0 and result.stderr.count("\n") == 1
        assert f"nextword export {made.keras_path}" in result.stderr, result.stderr


def test_a_lambda_layer_is_never_deserialized(tutorial, tmp_path):
    """Code inside a model file is not run: Keras 3's safe mode refuses it, and tf_keras is not asked."""
    import keras

    made = tutorial["lstm"]
    vocab = len(made.tokenizer.word_index) + 1
    model = keras.Sequential([keras.Input((made.window,)), keras.layers.Embedding(vocab, 4),
                              keras.layers.Lambda(lambda x: x * 1.0), keras.layers.LSTM(4),
                              keras.layers.Dense(vocab, activation="softmax")])
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"lambda{suffix}"
        model.save(path)
        out = tmp_path / f"out{suffix}"
        _refused(_export(str(path), "--tokenizer", str(made.tokenizer_json), "--out", str(out)), out,
                 "cannot be loaded as a Keras model")


def test_a_keras_model_is_validated_on_the_text_given(tutorial, tmp_path):
    made = tutorial["lstm"]
    text = tmp_path / "typed.txt"
    text.write_text("hello how are you\nhello how is your day\nhow are you today\n" * 30)
    out = tmp_path / "exported"
    result = _export(str(made.keras_path), "--tokenizer", str(made.tokenizer_json), "--out", str(out),
                     "--formats", "tflite", "--precisions", "int8", "--validate-on", str(text))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "random words stand in" not in result.stdout
    sources = json.loads((out / "export_report.json").read_text())["contexts"]["sources"]
    assert sources["typed.txt"] > 0, sources
