"""Where a TFLite call's time goes: the exported graph against the same graph without some of its parts.

    .venv/bin/python benchmarks/engine_parts.py runs/ptb                    # the train extra (TensorFlow)

Builds the int8 TFLite file's graph (as `nextword export` does, without metadata or validation) from a
training run, and variants of it that leave one part out, then times the engine's ``Invoke`` alone (no
Python around it: inputs set once) on ai-edge-litert, one thread:

- ``exported``: the graph as exported;
- ``no output layer``: ``probs`` is the top layer's first unit broadcast over the vocabulary, so the
  projection, the vocabulary-sized matrix product and the softmax are gone (the LSTM and the loop stay);
- ``no softmax``: the logits returned as they are;
- ``no padding mask``: the cell ignores ``keep`` (wrong for padded contexts; timing only);
- ``no LSTM product``: the cell's gates are read from its input and state repeated, without the kernel's
  matrix product (the gates' element-wise work stays).

For each: the step form, and the sequence form for 1, 5, 10 and 20 words (exact lengths, p50 of 3,000
calls, in µs). The variants are wrong models on purpose: nothing here is a file anyone should ship.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LENGTHS = (1, 5, 10, 20)


def variants():
    import tensorflow as tf

    from nextword.export.graphs import InferenceGraphs

    class NoOutputLayer(InferenceGraphs):
        def _probs(self, weights, top_h):
            return tf.zeros([1, self.config.vocab_size]) + top_h[:, :1]  # a broadcast: no vocabulary-sized op

    class NoSoftmax(InferenceGraphs):
        @staticmethod
        def _probs(weights, top_h):
            features = top_h
            if weights["projection_kernel"] is not None:
                features = tf.matmul(features, weights["projection_kernel"]) + weights["projection_bias"]
            matrix, tied = ((weights["embedding"], True) if weights["dense_kernel"] is None
                            else (weights["dense_kernel"], False))
            return tf.matmul(features, matrix, transpose_b=tied) + weights["dense_bias"]

    class NoPaddingMask(InferenceGraphs):
        @staticmethod
        def _cell(weights, layer, x, h, c, keep):
            z = tf.matmul(tf.concat([x, h], axis=1), weights["kernels"][layer]) + weights["biases"][layer]
            i, f, g, o = tf.split(z, 4, axis=1)
            c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c_new), c_new

    class NoLstmProduct(InferenceGraphs):
        @staticmethod
        def _cell(weights, layer, x, h, c, keep):
            units = 4 * h.shape[-1]
            both = tf.concat([x, h], axis=1)
            z = tf.concat([both] * -(-units // both.shape[-1]), axis=1)[:, :units] * 0.5  # no weights read
            i, f, g, o = tf.split(z, 4, axis=1)
            c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h_new = tf.sigmoid(o) * tf.tanh(c_new)
            return keep * h_new + (1.0 - keep) * h, keep * c_new + (1.0 - keep) * c

    return {"exported": InferenceGraphs, "no output layer": NoOutputLayer, "no softmax": NoSoftmax,
            "no padding mask": NoPaddingMask, "no LSTM product": NoLstmProduct}


def int8_flatbuffer(graphs) -> bytes:
    import tensorflow as tf

    from nextword.export import tflite_format

    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(graphs, tmp, signatures=graphs.concrete_functions())
        return tflite_format.convert(Path(tmp), "int8")


def invoke_us(runner, inputs: dict, calls: int) -> float:
    runner(**inputs)  # sizes and allocates the subgraph for these inputs
    wrapper, subgraph = runner._interpreter_wrapper, runner._subgraph_index  # the call the runner makes
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        wrapper.Invoke(subgraph)
        samples.append(time.perf_counter() - started)
    return float(np.percentile(samples, 50) * 1e6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a finished `nextword train` run directory")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)

    from ai_edge_litert.interpreter import Interpreter

    from nextword.export.graphs import LstmWeights
    from nextword.train.loading import load_run

    loaded = load_run(args.run)
    weights, config = LstmWeights.from_keras(loaded.model, loaded.config), loaded.config
    zero = np.zeros((config.num_layers, 1, config.hidden_size), np.float32)
    print(f"Invoke p50 in µs, int8 TFLite of {args.run} on ai-edge-litert, one thread, {args.calls} calls")
    print("| graph | step | " + " | ".join(f"sequence {n}" for n in LENGTHS) + " |")
    print("|---|---|" + "---|" * len(LENGTHS))
    for name, cls in variants().items():
        interpreter = Interpreter(model_content=int8_flatbuffer(cls(weights, config)), num_threads=1)
        step = invoke_us(interpreter.get_signature_runner("step"), {"token": np.array([5], np.int32), "h": zero,
                                                                     "c": zero}, args.calls)
        sequence = interpreter.get_signature_runner("sequence")
        by_length = [invoke_us(sequence, {"tokens": np.full((1, n), 5, np.int32), "h": zero, "c": zero}, args.calls)
                     for n in LENGTHS]
        print(f"| {name} | {step:.1f} | " + " | ".join(f"{t:.1f}" for t in by_length) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
