"""The Keras next-word tutorial's flow, as its users run it (training environment only).

    made = train_tutorial_model(folder, "lstm")   # Tokenizer, prefix n-grams, pad_sequences('pre'), fit, save
    made.keras_path, made.h5_path, made.tokenizer_json, made.word_index_json, made.keras_top3("hello how")

Kinds: ``lstm`` (no mask_zero: the cell reads the padding), ``gru`` (mask_zero, reset_after=True),
``gru_v1`` (mask_zero, reset_after=False), ``rnn`` (SimpleRNN with relu, no mask), ``deep`` (LSTM(24) ->
Dropout -> GRU(16) -> Dense(16, relu) -> Dense(vocab) logits, no mask). Used by tests/test_keras_import.py
and by the parity fixtures (build_fixtures.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORPUS = ["hello how are you", "hello how is your day", "hello how are your friends", "what are you doing",
          "hi how are you doing today", "what is your name", "how is the weather today", "you are my friend"]
CONTEXTS = ["hello", "hello how", "hello how is", "what are", "how is the", "you are my", "zebra"]


@dataclass
class TutorialModel:
    kind: str
    model: object
    tokenizer: object  # the Keras Tokenizer
    window: int
    keras_path: Path
    h5_path: Path
    tokenizer_json: Path
    word_index_json: Path

    def keras_probs(self, text: str) -> np.ndarray:
        from tensorflow.keras.preprocessing.sequence import pad_sequences

        ids = pad_sequences(self.tokenizer.texts_to_sequences([text]), maxlen=self.window, padding="pre")
        probs = np.asarray(self.model(ids, training=False))[0]
        if self.kind == "deep":  # logits
            probs = np.exp(probs - probs.max())
            probs /= probs.sum()
        return probs

    def keras_top3(self, text: str) -> list[str]:
        """The tutorial's prediction, best three words (never padding or the oov token)."""
        probs = self.keras_probs(text)
        skip = {0, self.tokenizer.word_index.get(self.tokenizer.oov_token, 0)}
        ranked = [int(i) for i in np.argsort(-probs, kind="stable") if int(i) not in skip]
        return [self.tokenizer.index_word[i] for i in ranked[:3]]


def train_tutorial_model(folder: Path, kind: str, *, epochs: int = 60, oov_token: str | None = None,
                         seed: int = 0) -> TutorialModel:
    import keras
    from tensorflow.keras.preprocessing.sequence import pad_sequences
    from tensorflow.keras.preprocessing.text import Tokenizer

    keras.utils.set_random_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(oov_token=oov_token)
    tokenizer.fit_on_texts(CORPUS)
    total_words = len(tokenizer.word_index) + 1
    sequences = []
    for line in CORPUS:
        ids = tokenizer.texts_to_sequences([line])[0]
        sequences += [ids[: i + 1] for i in range(1, len(ids))]
    max_len = max(len(s) for s in sequences)
    padded = np.array(pad_sequences(sequences, maxlen=max_len, padding="pre"))
    x, y = padded[:, :-1], padded[:, -1]
    layers = keras.layers
    stacks = {
        "lstm": [layers.Embedding(total_words, 10), layers.LSTM(50)],
        "gru": [layers.Embedding(total_words, 10, mask_zero=True), layers.GRU(50)],
        "gru_v1": [layers.Embedding(total_words, 10, mask_zero=True), layers.GRU(40, reset_after=False)],
        "rnn": [layers.Embedding(total_words, 10), layers.SimpleRNN(50, activation="relu")],
        "deep": [layers.Embedding(total_words, 12), layers.LSTM(24, return_sequences=True), layers.Dropout(0.1),
                 layers.GRU(16), layers.Dense(16, activation="relu")],
    }
    output = layers.Dense(total_words, activation=None if kind == "deep" else "softmax")
    model = keras.Sequential([keras.Input((max_len - 1,)), *stacks[kind], output])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=kind == "deep")
    model.compile(loss=loss, optimizer="adam")
    model.fit(x, y, epochs=epochs, verbose=0)
    made = TutorialModel(kind, model, tokenizer, max_len - 1, folder / f"{kind}.keras", folder / f"{kind}.h5",
                         folder / f"{kind}_tokenizer.json", folder / f"{kind}_word_index.json")
    model.save(made.keras_path)
    model.save(made.h5_path)
    made.tokenizer_json.write_text(tokenizer.to_json(), encoding="utf-8")
    made.word_index_json.write_text(json.dumps(tokenizer.word_index), encoding="utf-8")
    return made
