"""The Keras model: ``Embedding -> LSTM(tanh) x layers -> Dense softmax``.

Two views of the same weights:
- the *inference* model, ``tokens (batch, window) -> probs (batch, vocab)`` for
  the next word: what is saved as ``model.keras`` and exported;
- the *stream-training* model, ``(batch, window) -> (batch, window, vocab)``,
  which predicts the next token at every position.
Both have identical weight lists, so ``set_weights`` moves a trained model
from one to the other.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from nextword.config import ModelConfig


def build_model(config: ModelConfig, *, sequence_output: bool = False) -> keras.Model:
    tokens = keras.Input(shape=(config.window,), dtype="int32", name="tokens")
    # mask_zero: padding is skipped by the LSTM (state carried through
    # unchanged), so pre-padding never changes a prediction and the step-by-step
    # form from the zero state matches the window form exactly.
    x = layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding")(tokens)
    for index in range(config.num_layers):
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
        last = index == config.num_layers - 1
        x = layers.LSTM(
            config.hidden_size,
            activation="tanh",
            return_sequences=sequence_output or not last,
            name=f"lstm_{index}",
        )(x)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="dropout_out")(x)
    probs = layers.Dense(config.vocab_size, activation="softmax", name="probs")(x)
    return keras.Model(tokens, probs, name="nextword_lstm")


@keras.saving.register_keras_serializable(package="nextword")
class Perplexity(keras.metrics.Metric):
    """exp(mean cross-entropy) over the epoch, not the mean of per-batch perplexities."""

    def __init__(self, name: str = "perplexity", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        losses = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        if sample_weight is None:
            weights = ops.ones_like(losses)
        else:
            weights = ops.broadcast_to(ops.cast(sample_weight, losses.dtype), ops.shape(losses))
        self.total.assign_add(ops.sum(losses * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.exp(self.total / ops.maximum(self.count, 1.0))

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)


def compile_for_training(model: keras.Model, learning_rate: float, clipnorm: float | None) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        # Weighted: in sentence mode the padding positions carry weight 0 (other modes: no weights).
        weighted_metrics=["accuracy", Perplexity()],
    )


def inference_model(trained: keras.Model, config: ModelConfig) -> keras.Model:
    """The next-word model with the trained weights, uncompiled (nothing custom to load)."""
    model = build_model(config, sequence_output=False)
    model.set_weights(trained.get_weights())
    return model


def suggest_with_keras(model: keras.Model, tokenizer, config: ModelConfig, texts, k: int = 3):
    """Top-k suggestions for each text from the Keras model (the reference the exports must match)."""
    import numpy as np

    from nextword.context import top_suggestions, window_ids

    batch = np.stack([window_ids(tokenizer.encode(text), config.window) for text in texts])  # (n, window)
    probs = model.predict_on_batch(batch)  # (n, vocab)
    return [top_suggestions(row, tokenizer, k) for row in probs]
