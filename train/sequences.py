"""Training examples from encoded lines, in three modes (prefix, stream, sentence), as numpy batches.

``prefix`` (the seed tutorial's recipe): every line becomes its prefix n-grams,
pre-padded to the window, the last word as the target; a line of n tokens gives
n - 1 examples of shape ``(window,) -> ()``.

``stream`` (for real corpora): the corpus is one token stream cut into windows
of ``window + 1`` tokens; the model predicts the next token at every position,
so one window gives ``window`` targets, ``(window,) -> (window,)``.

``sentence`` (for a keyboard on real corpora): every line on its own, from the zero state, read after
``<eos>`` as the keyboard reads it (``Tokenizer.context_ids``): ``[<eos>, w1 .. wn] -> [w1 .. wn, <eos>]``,
a target at every position, post-padded to the window (padding is masked and weighted 0); a line longer
than the window continues in further windows. Train for the context you serve: this is exactly the
keyboard's (line) context, first word included. With ``history`` > 0, that share of the lines is read
instead after the end of the lines before it, the window filled with them (every position a target): the
context a reader across lines has (``nextword eval --context stream``), at no extra cost, since those
positions would otherwise be padding. Which lines get history is fixed (evenly spread), so counts are exact.

Everything is a generator over lines read from disk with a bounded shuffle
buffer, so memory does not grow with the corpus. ``tensorflow_dataset`` wraps
it in ``tf.data``; the rest of this module does not need TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nextword.tokenizer import PAD_ID

MODES = ("prefix", "stream", "sentence")
Block = tuple[np.ndarray, np.ndarray]


def prefix_examples(encoded_lines: Iterable[list[int]], window: int) -> Iterator[Block]:
    """One block per line: its n - 1 prefix contexts ``(n-1, window)`` and targets ``(n-1,)``."""
    for ids in encoded_lines:
        n = len(ids)
        if n < 2:
            continue
        padded = np.concatenate([np.full(window, PAD_ID, np.int32), np.asarray(ids, np.int32)])
        # Row i of the view is padded[i : i + window] = the window before ids[i].
        contexts = sliding_window_view(padded, window)[1:n]
        yield np.ascontiguousarray(contexts), np.asarray(ids[1:], np.int32)


def stream_examples(encoded_lines: Iterable[list[int]], window: int, chunk: int = 256) -> Iterator[Block]:
    """Consecutive, non-overlapping windows of the token stream: ``(m, window)`` inputs and next-token targets."""
    span = window + 1
    buffer: list[int] = []
    for ids in encoded_lines:
        buffer.extend(ids)
        if len(buffer) >= chunk * window + 1:
            yield _cut_windows(buffer, window)
            # The last token of a window is the first input of the next one.
            del buffer[: (len(buffer) - 1) // window * window]
    if len(buffer) >= span:
        yield _cut_windows(buffer, window)


def sentence_examples(encoded_lines: Iterable[list[int]], window: int, start_id: int, history: float = 0.0
                       ) -> Iterator[Block]:
    """Per line: ``(k, window)`` inputs and targets, k = windows the line needs (see the module docstring)."""
    recent: list[int] = [start_id]  # the stream so far, at most window + 1 tokens: what a history window reads
    seen = 1
    for index, ids in enumerate(encoded_lines):
        if not ids:
            continue
        recent = (recent + ids)[-(window + 1):]
        seen += len(ids)
        if _reads_history(index, len(ids), seen, window, history):
            yield np.asarray([recent[:-1]], np.int32), np.asarray([recent[1:]], np.int32)
            continue
        sequence = [start_id, *ids]
        inputs, targets = sequence[:-1], sequence[1:]
        count = -(-len(inputs) // window)
        block_inputs = np.zeros((count, window), np.int32)
        block_targets = np.zeros((count, window), np.int32)
        for row in range(count):
            piece = slice(row * window, (row + 1) * window)
            block_inputs[row, : len(inputs[piece])] = inputs[piece]
            block_targets[row, : len(targets[piece])] = targets[piece]
        yield block_inputs, block_targets


def _gets_history(index: int, history: float) -> bool:
    """True for a ``history`` share of line indices, evenly spread: (i + 1) * h crosses an integer."""
    return int((index + 1) * history) > int(index * history)


def _reads_history(index: int, length: int, seen: int, window: int, history: float) -> bool:
    """Whether line ``index`` (``length`` ids, ``seen`` stream tokens up to its end) gets a history window:
    it is one of the share, fits one window, and the stream before it can fill the window."""
    return _gets_history(index, history) and length < window and seen >= window + 1


def _cut_windows(tokens: list[int], window: int) -> Block:
    count = (len(tokens) - 1) // window
    stream = np.asarray(tokens[: count * window + 1], np.int32)
    inputs = stream[:-1].reshape(count, window)
    targets = stream[1:].reshape(count, window)
    return inputs, targets


def count_examples(encoded_lines: Iterable[list[int]], mode: str, window: int, history: float = 0.0
                   ) -> tuple[int, int]:
    """(examples, targets) the mode yields for these lines, without building them."""
    if mode == "prefix":
        examples = sum(max(len(ids) - 1, 0) for ids in encoded_lines)
        return examples, examples
    if mode == "sentence":
        examples = targets = 0
        seen = 1  # stream tokens so far, the leading <eos> included
        for index, ids in enumerate(encoded_lines):
            if not ids:
                continue
            seen += len(ids)
            if _reads_history(index, len(ids), seen, window, history):
                examples, targets = examples + 1, targets + window
            else:
                examples, targets = examples + -(-len(ids) // window), targets + len(ids)
        return examples, targets
    tokens = sum(len(ids) for ids in encoded_lines)
    examples = max(tokens - 1, 0) // window
    return examples, examples * window


def examples(encoded_lines: Iterable[list[int]], mode: str, window: int, start_id: int | None = None,
             history: float = 0.0) -> Iterator[Block]:
    if mode == "prefix":
        return prefix_examples(encoded_lines, window)
    if mode == "stream":
        return stream_examples(encoded_lines, window)
    if mode == "sentence":
        if start_id is None:
            raise ValueError("sentence mode needs the <eos> id to start each line with")
        return sentence_examples(encoded_lines, window, start_id, history)
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def shuffled(blocks: Iterable[Block], buffer_size: int, rng: np.random.Generator | None) -> Iterator[Block]:
    """Shuffle examples within buffers of ``buffer_size`` (the whole corpus when it fits)."""
    if rng is None:
        yield from blocks
        return
    pending: list[Block] = []
    held = 0
    for block in blocks:
        pending.append(block)
        held += len(block[0])
        if held >= buffer_size:
            yield _permute(pending, rng)
            pending, held = [], 0
    if pending:
        yield _permute(pending, rng)


def _permute(blocks: list[Block], rng: np.random.Generator) -> Block:
    inputs = np.concatenate([b[0] for b in blocks])
    targets = np.concatenate([b[1] for b in blocks])
    order = rng.permutation(len(inputs))
    return inputs[order], targets[order]


def batched(blocks: Iterable[Block], batch_size: int) -> Iterator[Block]:
    """Exactly ``batch_size`` examples per batch (the last may be smaller), across block edges."""
    pending: list[Block] = []
    held = 0
    for block in blocks:
        pending.append(block)
        held += len(block[0])
        while held >= batch_size:
            inputs = np.concatenate([b[0] for b in pending])
            targets = np.concatenate([b[1] for b in pending])
            yield inputs[:batch_size], targets[:batch_size]
            rest = (inputs[batch_size:], targets[batch_size:])
            pending, held = [rest], len(rest[0])
    if held:
        yield np.concatenate([b[0] for b in pending]), np.concatenate([b[1] for b in pending])


def tensorflow_dataset(
    make_batches: Callable[[], Iterator[Block]], *, mode: str, window: int, batches: int | None
):
    """Wrap a batch generator factory in ``tf.data``; it is called anew for every epoch."""
    import tensorflow as tf

    target_shape = (None,) if mode == "prefix" else (None, window)
    dataset = tf.data.Dataset.from_generator(
        make_batches,
        output_signature=(
            tf.TensorSpec(shape=(None, window), dtype=tf.int32),
            tf.TensorSpec(shape=target_shape, dtype=tf.int32),
        ),
    )
    if mode == "sentence":  # padding targets weigh nothing, in the loss and in the metrics
        dataset = dataset.map(lambda x, y: (x, y, tf.cast(tf.not_equal(y, 0), tf.float32)))
    # A known length gives Keras' progress bar its total on the first epoch too (None: not known).
    if batches is not None:
        dataset = dataset.take(batches).apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(2)
