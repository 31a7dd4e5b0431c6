"""The Keras model: ``Embedding -> LSTM(tanh) x layers [-> projection] -> Dense softmax``.

With ``tie_embeddings`` the softmax is the embedding matrix read backwards
(``TiedEmbedding(reverse=True)``, Press & Wolf 2017): one 10k x E matrix instead
of two, fewer parameters to fit on a small corpus and a smaller file.

Two views of the same weights:
- the *training* model: ``(batch, window) -> (batch, window, vocab)`` in the stream and
  sentence modes (the next token at every position), ``(batch, vocab)`` in prefix mode;
  tied models use ``TiedEmbedding`` here, and checkpoints hold this model;
- the *inference* model, ``tokens (batch, window) -> probs (batch, vocab)`` for the next
  word, built from standard Keras layers only (a tied softmax becomes a ``Dense`` holding the
  transposed embedding), so ``model.keras`` loads with plain ``keras.models.load_model``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from nextword.config import ModelConfig
from nextword.modelfile.contract import PROBS, TOKENS


def build_model(config: ModelConfig, *, sequence_output: bool = False, standard_layers: bool = False,
                logits: bool = False, sampled_softmax: int = 0) -> keras.Model:
    """The model for ``config``; ``standard_layers`` builds a tied model without ``TiedEmbedding`` (untrained).

    ``logits``: the last layer is linear (training: the loss takes the logits, no softmax then log);
    the saved inference model always ends in the softmax. ``sampled_softmax`` > 0: a
    ``SampledSoftmaxModel`` (same layers and outputs; its training steps use that many sampled classes).
    """
    tokens = keras.Input(shape=(config.window,), dtype="int32", name=TOKENS)
    tied = config.tie_embeddings and not standard_layers
    # mask_zero: padding is skipped by the LSTM (state carried through
    # unchanged), so pre-padding never changes a prediction and the step-by-step
    # form from the zero state matches the window form exactly.
    embedding_class = TiedEmbedding if tied else layers.Embedding
    embedding = embedding_class(config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding")
    x = embedding(tokens)
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
    if config.projection_dim:
        x = layers.Dense(config.projection_dim, name="projection")(x)  # linear, as in LSTMP / CIFG
    activation = None if logits else "softmax"
    if tied:
        probs = embedding(x, reverse=True)
        if not logits:
            probs = layers.Activation("softmax", name=PROBS)(probs)
    else:
        probs = layers.Dense(config.vocab_size, activation=activation, name=PROBS)(x)
    if sampled_softmax:
        return SampledSoftmaxModel(tokens, probs, name="nextword_lstm", num_sampled=sampled_softmax,
                                   features_layer=_features_layer(config))
    return keras.Model(tokens, probs, name="nextword_lstm")


def _features_layer(config: ModelConfig) -> str:
    """The layer whose output the softmax reads."""
    if config.projection_dim:
        return "projection"
    return "dropout_out" if config.dropout else f"lstm_{config.num_layers - 1}"


@keras.saving.register_keras_serializable(package="nextword")
class SampledSoftmaxModel(keras.Model):
    """The training model whose training steps score the target against ``num_sampled`` sampled classes
    instead of the whole vocabulary (``tf.nn.sampled_softmax_loss``, log-uniform sampler: the ids are
    ranked by frequency, Jean et al. 2015). The softmax is most of a step's FLOPs with a 10k vocabulary;
    the forward pass, validation, evaluation and export still use the full softmax (the model's output),
    and the weights are the same layers'. Training metrics are not computed (validation has them).
    """

    def __init__(self, *args, num_sampled: int = 1024, features_layer: str = "projection", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_sampled, self.features_layer = int(num_sampled), features_layer
        self._features = keras.Model(self.inputs, self.get_layer(features_layer).output)
        self._loss_mean = keras.metrics.Mean(name="loss")  # the epoch's mean, reset with the model's metrics
        #: Train on the full softmax (the compiled loss) instead; set between epochs by ``FullSoftmaxEpochs``.
        self.full_softmax = False

    def get_config(self) -> dict:
        return {**super().get_config(), "num_sampled": self.num_sampled, "features_layer": self.features_layer}

    def _output_weights(self):
        """(vocab, features) matrix and (vocab,) bias of the softmax."""
        import tensorflow as tf

        output = self.get_layer(PROBS) if PROBS in {layer.name for layer in self.layers} else None
        if output is not None and isinstance(output, layers.Dense):
            return tf.transpose(output.kernel), output.bias
        tied = self.get_layer("embedding")
        return tied.embeddings, tied.output_bias

    def train_step(self, data):
        import tensorflow as tf

        if self.full_softmax:
            logs = super().train_step(data)
            return {"loss": logs["loss"]}
        x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            features = self._features(x, training=True)
            width = tf.shape(features)[-1]
            matrix, bias = self._output_weights()
            losses = tf.nn.sampled_softmax_loss(
                weights=matrix, biases=bias, labels=tf.reshape(tf.cast(y, tf.int64), (-1, 1)),
                inputs=tf.reshape(features, (-1, width)), num_sampled=self.num_sampled,
                num_classes=int(matrix.shape[0]), remove_accidental_hits=True)
            weights = tf.ones_like(losses) if weights is None else tf.reshape(tf.cast(weights, losses.dtype), (-1,))
            loss = tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self._loss_mean.update_state(loss, sample_weight=tf.reduce_sum(weights))
        # The sampled loss: lower than the full cross-entropy, which validation reports.
        return {"loss": self._loss_mean.result()}


@keras.saving.register_keras_serializable(package="nextword")
class TiedEmbedding(layers.Layer):
    """An embedding that is also the output layer: ``reverse=True`` maps features to vocabulary logits.

    Looks up ``embeddings[tokens]`` (id 0 masked, as ``Embedding(mask_zero=True)``); in reverse, returns
    ``features @ embeddings.T + output_bias``. Called twice in the model (tokens in, logits out), so both
    uses train the same matrix.
    """

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.input_dim, self.output_dim, self.mask_zero = input_dim, output_dim, mask_zero
        # Keras' default uniform(-0.05, 0.05), as layers.Embedding.
        self.embeddings = self.add_weight(shape=(input_dim, output_dim), initializer="uniform", name="embeddings")
        self.output_bias = self.add_weight(shape=(input_dim,), initializer="zeros", name="output_bias")

    def call(self, inputs, reverse: bool = False):
        if reverse:
            return ops.matmul(inputs, ops.transpose(self.embeddings)) + self.output_bias
        return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)

    def compute_mask(self, inputs, mask=None):
        if "int" not in str(inputs.dtype):  # the reverse call: features keep the mask they came with
            return mask
        return ops.not_equal(inputs, 0) if self.mask_zero else None

    def compute_output_spec(self, inputs, reverse: bool = False):
        if reverse:
            return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype=self.compute_dtype)
        return keras.KerasTensor((*inputs.shape, self.output_dim), dtype=self.compute_dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero}


@keras.saving.register_keras_serializable(package="nextword")
class Perplexity(keras.metrics.Metric):
    """exp(mean cross-entropy) over the epoch, not the mean of per-batch perplexities."""

    def __init__(self, name: str = "perplexity", from_logits: bool = False, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def get_config(self) -> dict:
        return {**super().get_config(), "from_logits": self.from_logits}

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        losses = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)
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


def compile_for_training(model: keras.Model, learning_rate: float, clipnorm: float | None, *,
                         logits: bool = False, jit_compile: bool = False, metrics: bool = True) -> None:
    """Adam + sparse categorical cross-entropy; ``logits``: the model ends without its softmax.

    ``metrics=False`` leaves accuracy and perplexity out of the training steps (they cost a share of every
    step); the loss is still reported, and its exp is the perplexity where no padding is weighted 0.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        # Weighted: in sentence mode the padding positions carry weight 0 (other modes: no weights).
        weighted_metrics=["accuracy", Perplexity(from_logits=logits)] if metrics else None,
        jit_compile=jit_compile,
    )


def inference_model(trained: keras.Model, config: ModelConfig) -> keras.Model:
    """The next-word model with the trained weights, standard Keras layers only, uncompiled."""
    model = build_model(config, sequence_output=False, standard_layers=True)
    for layer in model.layers:
        if not layer.weights:
            continue
        if config.tie_embeddings and layer.name in ("embedding", PROBS):
            tied = trained.get_layer("embedding")
            embeddings = tied.embeddings.numpy()  # (vocab, E)
            layer.set_weights([embeddings] if layer.name == "embedding" else [embeddings.T, tied.output_bias.numpy()])
        else:
            layer.set_weights(trained.get_layer(layer.name).get_weights())
    return model


class KerasEngine:
    """The Keras model behind the runtime's engine interface (window form only)."""

    name = "keras"
    has_step = has_sequence = False

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def window(self, tokens):
        return np.asarray(self.model(np.asarray(tokens, np.int32), training=False))  # (batch, vocab)

    def step(self, token, h, c):
        raise NotImplementedError("the Keras model has the window form only (has_step is False)")

    def sequence(self, tokens, h, c):
        raise NotImplementedError("the Keras model has the window form only (has_sequence is False)")

    @staticmethod
    def padded_steps(steps: int) -> int:
        return steps

    @staticmethod
    def declared_shapes() -> dict:
        return {}  # Keras checks its own shapes


def keras_predictor(model: keras.Model, tokenizer, config: ModelConfig):
    """A runtime ``Predictor`` over the Keras model: suggestions read exactly as a device reads them."""
    from nextword.predictor import Predictor

    return Predictor(tokenizer, config, KerasEngine(model))
