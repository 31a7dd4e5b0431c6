"""The two inference forms, rebuilt from the trained weights as plain TensorFlow.

Keras 3's LSTM does not convert cleanly to TFLite (dynamic-batch WHILE loops,
resource variables; see docs in the README), so the exporter writes the LSTM
cell out by hand from ``model.get_weights()``, weights as constants:

- ``window(tokens (batch, window) int32) -> probs (batch, vocab)``: the cell
  over the fixed window from the zero state, padding (id 0) masked exactly as
  Keras' ``mask_zero`` does: a padded position leaves h and c unchanged.
- ``step(token (batch,) int32, h (layers, batch, hidden), c (layers, batch, hidden))
  -> probs, h_out, c_out``: one token for a keyboard that types word by word.
  From the zero state, feeding a context's ids one at a time gives the window
  form's probabilities; feeding id 0 changes nothing.
- ``sequence(tokens (batch, steps) int32, h, c) -> probs, h_out, c_out``: any number of
  tokens (``steps`` >= 1) from any state, in one call: a loop (TFLite WHILE, ONNX Loop)
  whose cost follows the context's length, not the window's. It is the window form for
  ``steps = window`` from the zero state, and the step form for ``steps = 1``.

Keras' gate order is i, f, c (g), o; the recurrent activation is the sigmoid. An optional linear
projection sits before the softmax; with tied embeddings the softmax multiplies by the embedding matrix
itself (``transpose_b``), so a float32 or float16 file holds that matrix once, for the lookup and for the
output (int8's dynamic-range quantizer makes a second, per-channel copy for the output layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from nextword.config import ModelConfig
from nextword.modelfile.contract import C, C_OUT, H, H_OUT, PROBS, SEQUENCE, STEP, TOKEN, TOKENS, WINDOW


@dataclass(frozen=True)
class LstmWeights:
    embedding: np.ndarray  # (vocab, embedding_dim)
    kernels: tuple[np.ndarray, ...]  # per layer: (input + hidden, 4 * hidden), input and recurrent stacked
    biases: tuple[np.ndarray, ...]  # per layer: (4 * hidden,)
    dense_kernel: np.ndarray | None  # (output_dim, vocab); None when tied to the embedding
    dense_bias: np.ndarray  # (vocab,)
    projection_kernel: np.ndarray | None = None  # (hidden, projection_dim)
    projection_bias: np.ndarray | None = None  # (projection_dim,)

    @classmethod
    def from_keras(cls, model, config: ModelConfig) -> LstmWeights:
        embedding_weights = model.get_layer("embedding").get_weights()
        embedding = embedding_weights[0]
        kernels, biases = [], []
        for index in range(config.num_layers):
            kernel, recurrent, bias = model.get_layer(f"lstm_{index}").get_weights()
            # One matmul per step: [x, h] @ [[W], [U]].
            kernels.append(np.concatenate([kernel, recurrent], axis=0))
            biases.append(bias)
        projection_kernel = projection_bias = None
        if config.projection_dim:
            projection_kernel, projection_bias = model.get_layer("projection").get_weights()
        if config.tie_embeddings and len(embedding_weights) == 2:  # a TiedEmbedding (runs of nextword <= 0.1)
            dense_kernel, dense_bias = None, embedding_weights[1]
        else:
            dense_kernel, dense_bias = model.get_layer(PROBS).get_weights()
            if config.tie_embeddings:  # the Dense holds the embedding transposed: the graphs use the matrix once
                dense_kernel = None
        return cls(embedding, tuple(kernels), tuple(biases), dense_kernel, dense_bias, projection_kernel,
                   projection_bias)


class InferenceGraphs(tf.Module):
    """``window`` and ``step`` as concrete-signature tf.functions over constant weights."""

    def __init__(self, weights: LstmWeights, config: ModelConfig) -> None:
        super().__init__(name="nextword")
        self.config = config
        # Kept as numpy and turned into constants *inside* each traced function:
        # captured eager tensors would become extra graph inputs in tf2onnx.
        self._weights = weights
        hidden, layers = config.hidden_size, config.num_layers
        self.window = tf.function(
            self._window, input_signature=[tf.TensorSpec([None, config.window], tf.int32, name=TOKENS)]
        )
        self.step = tf.function(
            self._step,
            input_signature=[
                tf.TensorSpec([None], tf.int32, name=TOKEN),
                tf.TensorSpec([layers, None, hidden], tf.float32, name=H),
                tf.TensorSpec([layers, None, hidden], tf.float32, name=C),
            ],
        )
        self.sequence = tf.function(
            self._sequence,
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name=TOKENS),
                tf.TensorSpec([layers, None, hidden], tf.float32, name=H),
                tf.TensorSpec([layers, None, hidden], tf.float32, name=C),
            ],
        )

    def concrete_functions(self) -> dict:
        """Form name -> concrete function: the signatures of the SavedModel the converters read."""
        return {name: getattr(self, name).get_concrete_function() for name in (WINDOW, STEP, SEQUENCE)}

    def _constants(self) -> dict:
        w = self._weights
        optional = {"dense_kernel": w.dense_kernel, "projection_kernel": w.projection_kernel,
                    "projection_bias": w.projection_bias}
        return {
            "embedding": tf.constant(w.embedding, tf.float32),
            "kernels": [tf.constant(k, tf.float32) for k in w.kernels],
            "biases": [tf.constant(b, tf.float32) for b in w.biases],
            "dense_bias": tf.constant(w.dense_bias, tf.float32),
            **{name: None if value is None else tf.constant(value, tf.float32) for name, value in optional.items()},
        }

    @staticmethod
    def _cell(weights: dict, layer: int, x, h, c, keep):
        """One LSTM step of one layer; ``keep`` (batch, 1) is 1.0 for a real token, 0.0 for padding."""
        z = tf.matmul(tf.concat([x, h], axis=1), weights["kernels"][layer]) + weights["biases"][layer]  # (batch, 4H)
        i, f, g, o = tf.split(z, 4, axis=1)
        c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h_new = tf.sigmoid(o) * tf.tanh(c_new)
        # Exact for keep in {0, 1}: padding leaves the state as it was.
        return keep * h_new + (1.0 - keep) * h, keep * c_new + (1.0 - keep) * c

    @staticmethod
    def _probs(weights: dict, top_h):
        features = top_h
        if weights["projection_kernel"] is not None:
            features = tf.matmul(features, weights["projection_kernel"]) + weights["projection_bias"]
        if weights["dense_kernel"] is None:  # tied: the embedding matrix (vocab, E) read as (E, vocab)
            logits = tf.matmul(features, weights["embedding"], transpose_b=True)
        else:
            logits = tf.matmul(features, weights["dense_kernel"])
        return tf.nn.softmax(logits + weights["dense_bias"])  # (batch, vocab)

    def _window(self, tokens):
        """The sequence loop over the window from the zero state. A loop, not the window unrolled: the
        unrolled graph held one copy of the cell's ops per step (most of a small file's bytes), and
        XNNPACK packed the LSTM kernel once per step (slower than the loop's single packed copy)."""
        zeros = tf.zeros(tf.stack([self.config.num_layers, tf.shape(tokens)[0], self.config.hidden_size]), tf.float32)
        return {PROBS: self._sequence(tokens, zeros, zeros)[PROBS]}

    def _step(self, token, h, c):
        weights = self._constants()
        x = tf.gather(weights["embedding"], token)  # (batch, E)
        keep = tf.cast(tf.not_equal(token, 0), tf.float32)[:, None]  # (batch, 1)
        h_layers, c_layers = tf.unstack(h, num=self.config.num_layers), tf.unstack(c, num=self.config.num_layers)
        h_out, c_out = [], []
        for layer in range(self.config.num_layers):
            h_new, c_new = self._cell(weights, layer, x, h_layers[layer], c_layers[layer], keep)
            h_out.append(h_new)
            c_out.append(c_new)
            x = h_new
        # Outputs are named h_out / c_out: an output named like an input breaks tf2onnx.
        return {PROBS: self._probs(weights, h_out[-1]), H_OUT: tf.stack(h_out), C_OUT: tf.stack(c_out)}

    def _sequence(self, tokens, h, c):
        weights = self._constants()
        layers = self.config.num_layers
        embedded = tf.gather(weights["embedding"], tokens)  # (batch, steps, E): one lookup for all steps
        keep = tf.cast(tf.not_equal(tokens, 0), tf.float32)  # (batch, steps)
        steps = tf.shape(tokens)[1]

        def body(t, h_layers, c_layers):
            x = tf.gather(embedded, t, axis=1)  # (batch, E)
            keep_t = tf.gather(keep, t, axis=1)[:, None]
            h_new, c_new = [], []
            for layer in range(layers):
                h_layer, c_layer = self._cell(weights, layer, x, h_layers[layer], c_layers[layer], keep_t)
                h_new.append(h_layer)
                c_new.append(c_layer)
                x = h_layer
            return t + 1, h_new, c_new

        start = (tf.constant(0), tf.unstack(h, num=layers), tf.unstack(c, num=layers))
        _, h_out, c_out = tf.while_loop(lambda t, *_: t < steps, body, start)
        return {PROBS: self._probs(weights, h_out[-1]), H_OUT: tf.stack(h_out), C_OUT: tf.stack(c_out)}
