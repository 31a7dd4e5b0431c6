"""The three forms (window, step, sequence) over a Keras user's own stack (``keras_import.Stack``).

The signatures, state layout and loop are ``graphs.InferenceGraphs``'; only the cells and the head differ:

- state ``h``, ``c``: ``(layers, batch, hidden)`` with ``hidden`` the widest layer's units; a narrower
  layer uses the first ``units`` entries and leaves the rest zero. ``c`` is the LSTM cell state; a GRU or
  SimpleRNN layer passes its ``c`` through unchanged (zeros from the zero state).
- cells in Keras' own equations (gate order i, f, c, o for the LSTM; z, r, h for the GRU with either
  ``reset_after``), calling the layer's own activation functions, so any activation Keras allows converts
  as Keras computes it.
- padding: a ``mask_zero`` model leaves the state unchanged on id 0, as Keras does; an unmasked one reads
  the padding like any token (``ModelConfig.masked`` false), so the window form is the Keras model exactly.
- the head: every Dense and Activation after the last recurrent layer; the last one's activation is
  replaced by a softmax over its pre-activation (a softmax model's output, a logits model's probabilities).

Every matrix a MatMul reads is its own constant (the GRU's recurrent kernel is split where ``reset_after``
is false), so the int8 writers find each one.
"""

from __future__ import annotations

import tensorflow as tf

from nextword.config import ModelConfig
from nextword.export.graphs import InferenceGraphs
from nextword.export.keras_import import Cell, Stack


class StackGraphs(InferenceGraphs):
    def __init__(self, stack: Stack, config: ModelConfig) -> None:
        super().__init__(stack, config)  # the base keeps it as self._weights

    def _constants(self) -> dict:
        stack: Stack = self._weights
        return {
            "embedding": tf.constant(stack.embedding, tf.float32),
            "cells": [_cell_constants(cell) for cell in stack.cells],
            "head": [(None if h.kernel is None else tf.constant(h.kernel, tf.float32),
                      None if h.bias is None else tf.constant(h.bias, tf.float32)) for h in stack.head],
        }

    def _cell(self, weights: dict, layer: int, x, h, c, keep):
        cell: Cell = self._weights.cells[layer]
        w = weights["cells"][layer]
        units, width = cell.units, self.config.hidden_size
        h_in = h if units == width else h[:, :units]
        act, gate = cell.activation, cell.recurrent_activation
        c_new = None
        if cell.kind == "lstm":
            c_in = c if units == width else c[:, :units]
            z = _dense(x, w["kernel"], w.get("bias")) + tf.matmul(h_in, w["recurrent"])
            i, f, g, o = tf.split(z, 4, axis=1)
            c_new = gate(f) * c_in + gate(i) * act(g)
            h_new = gate(o) * act(c_new)
            if self.config.masked:
                c_new = keep * c_new + (1.0 - keep) * c_in
        elif cell.kind == "gru":
            x_z, x_r, x_h = tf.split(_dense(x, w["kernel"], w.get("input_bias")), 3, axis=1)
            if cell.reset_after:
                r_z, r_r, r_h = tf.split(_dense(h_in, w["recurrent"], w.get("recurrent_bias")), 3, axis=1)
                z, r = gate(x_z + r_z), gate(x_r + r_r)
                candidate = act(x_h + r * r_h)
            else:
                r_z, r_r = tf.split(tf.matmul(h_in, w["recurrent_zr"]), 2, axis=1)
                z, r = gate(x_z + r_z), gate(x_r + r_r)
                candidate = act(x_h + tf.matmul(r * h_in, w["recurrent_h"]))
            h_new = z * h_in + (1.0 - z) * candidate
        else:  # simple_rnn
            h_new = act(_dense(x, w["kernel"], w.get("bias")) + tf.matmul(h_in, w["recurrent"]))
        if self.config.masked:
            h_new = keep * h_new + (1.0 - keep) * h_in
        return _widen(h_new, width), c if c_new is None else _widen(c_new, width)

    def _probs(self, weights: dict, top_h):
        stack: Stack = self._weights
        units = stack.cells[-1].units
        features = top_h if units == self.config.hidden_size else top_h[:, :units]
        last = len(stack.head) - 1
        for index, (head, (kernel, bias)) in enumerate(zip(stack.head, weights["head"])):
            if kernel is not None:
                features = _dense(features, kernel, bias)
            if index < last:
                features = head.activation(features)
        return tf.nn.softmax(features)  # (batch, vocab)


def _cell_constants(cell: Cell) -> dict:
    const = {"kernel": tf.constant(cell.kernel, tf.float32)}
    recurrent, bias, units = cell.recurrent_kernel, cell.bias, cell.units
    if cell.kind == "gru" and cell.reset_after:
        const["recurrent"] = tf.constant(recurrent, tf.float32)
        if bias is not None:
            const["input_bias"], const["recurrent_bias"] = (tf.constant(b, tf.float32) for b in bias)
    elif cell.kind == "gru":
        const["recurrent_zr"] = tf.constant(recurrent[:, :2 * units], tf.float32)
        const["recurrent_h"] = tf.constant(recurrent[:, 2 * units:], tf.float32)
        if bias is not None:
            const["input_bias"] = tf.constant(bias, tf.float32)
    else:
        const["recurrent"] = tf.constant(recurrent, tf.float32)
        if bias is not None:
            const["bias"] = tf.constant(bias, tf.float32)
    return const


def _dense(x, kernel, bias):
    y = tf.matmul(x, kernel)
    return y if bias is None else y + bias


def _widen(state, width: int):
    missing = width - state.shape[-1]
    return state if missing == 0 else tf.pad(state, [[0, 0], [0, missing]])
