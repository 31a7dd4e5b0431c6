"""Data-parallel training on several machines, on TensorFlow's own engine (MultiWorkerMirroredStrategy).

    # the same command on every machine; --worker-index 0 is the chief, which alone writes RUN_DIR
    nextword train --corpus big/ --out runs/big --workers 10.0.0.1:2222,10.0.0.2:2222 --worker-index 0
    nextword train --corpus big/ --out runs/big --workers 10.0.0.1:2222,10.0.0.2:2222 --worker-index 1

Every worker reads only its own byte range of the corpus files (``Corpus.sharded``), and agrees with the
others through the engine's collectives before training: the vocabulary from everyone's word counts, the
corpus fingerprint, the steps per epoch (the smallest shard's). ``--batch-size`` stays the global batch
(examples per optimizer step); each worker feeds ``batch_size / workers`` of it and the engine averages the
gradients (all-reduce), so the learning rate means what it means on one machine.

Keras 3's ``model.fit`` fails under this strategy (keras-team/keras#20585: it all-reduces the first input
batch, and reduces scalar logs along axis 0); the epochs here run the model's own ``train_step`` under
``strategy.run`` instead, with the same callbacks, so the model, its loss and optimizer are Keras' own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from nextword import errors
from nextword.errors import UsageError

ENGINE = "tf.distribute.MultiWorkerMirroredStrategy (ring all-reduce)"
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")


@dataclass(frozen=True)
class Cluster:
    """The workers' addresses (HOST:PORT) and this process's place among them."""

    workers: tuple[str, ...]
    index: int

    @property
    def count(self) -> int:
        return len(self.workers)

    @property
    def chief(self) -> bool:
        return self.index == 0

    def tf_config(self) -> str:
        return json.dumps({"cluster": {"worker": list(self.workers)}, "task": {"type": "worker", "index": self.index}})


def cluster_from(workers: str | None, index: int | None, environ=os.environ) -> Cluster | None:
    """``--workers``/``--worker-index``, else the TF_CONFIG convention, else None (one machine)."""
    if workers is None:
        if index is not None:
            raise UsageError("--worker-index needs --workers HOST:PORT,HOST:PORT,...")
        return _from_tf_config(environ.get("TF_CONFIG"))
    addresses = tuple(part.strip() for part in workers.split(","))
    for address in addresses:
        match = _ADDRESS.match(address)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise UsageError(f"--workers: {address!r} is not HOST:PORT (e.g. 10.0.0.2:2222)")
    if len(set(addresses)) != len(addresses):
        raise UsageError("--workers lists the same address twice")
    if index is None:
        raise UsageError("--workers needs --worker-index I (0 for the chief, which writes the run directory)")
    if not 0 <= index < len(addresses):
        raise UsageError(f"--worker-index {index} is not one of the {len(addresses)} workers (0 to {len(addresses) - 1})")
    return Cluster(addresses, index) if len(addresses) > 1 else None


def _from_tf_config(raw: str | None) -> Cluster | None:
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        workers = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
        index = task["index"] + (len(cluster.get("chief", [])) if task["type"] == "worker" else 0)
        if task["type"] not in ("worker", "chief") or set(cluster) - {"chief", "worker"}:
            raise ValueError("only chief and worker tasks")
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"TF_CONFIG is not a usable cluster description ({err}); nextword reads "
                         '{"cluster": {"worker": ["HOST:PORT", ...]}, "task": {"type": "worker", "index": I}}') from None
    if not workers or not 0 <= index < len(workers):
        raise UsageError("TF_CONFIG: the task index is not one of the cluster's workers")
    return Cluster(tuple(workers), index) if len(workers) > 1 else None


def loopback_addresses(count: int) -> str:
    """``--workers`` for ``count`` workers on this machine, on free ports of 127.0.0.1 (tests, benchmarks)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ",".join(f"127.0.0.1:{port}" for port in ports)


def on_chief(collective, compute):
    """``compute()`` here (one machine, ``collective`` None), or on the chief alone: its result, or its error,
    reaches every worker (the others compute nothing and wait for it)."""
    if collective is None:
        return compute()
    return collective.agree(compute if collective.cluster.chief else (lambda: None))[0]


# ------------------------------------------------------------------------------------- the engine
def connect(cluster: Cluster, threads: int | None = None):
    """The strategy, connected to every worker (blocks until all have started). ``threads``: TensorFlow's
    threads per op, set before the strategy starts TensorFlow's runtime (they cannot change after)."""
    os.environ["TF_CONFIG"] = cluster.tf_config()
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)

    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    # TensorFlow's coordination service takes SIGTERM over (a preemption notice for a checkpoint handler that
    # nextword does not use), so a worker a cluster manager told to stop trained on (measured: > 60 s, the
    # peers still training with it). SIGTERM is Ctrl-C again: the worker stops at its next step, says what
    # is saved, and its peers stop when they find it gone.
    if threading.current_thread() is threading.main_thread():  # (signal handlers live in the main thread)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    return strategy


class Collective:
    """What the workers agree on before and during training, through the strategy's collectives."""

    def __init__(self, strategy, cluster: Cluster) -> None:
        self.strategy = strategy
        self.cluster = cluster

    def _gather(self, value):
        import tensorflow as tf

        return self.strategy.gather(self.strategy.run(lambda: tf.identity(value)), axis=0).numpy()

    def gather_json(self, obj) -> list:
        """Every worker's ``obj``, in worker order (as JSON, through int32 tensors: collectives carry numbers)."""
        import numpy as np
        import tensorflow as tf

        payload = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        lengths = self._gather(tf.constant([len(payload)], tf.int64))
        buffer = np.zeros((1, int(lengths.max())), np.int32)
        buffer[0, :len(payload)] = np.frombuffer(payload, np.uint8)
        rows = self._gather(tf.constant(buffer))
        return [json.loads(bytes(row[:length].astype(np.uint8)).decode("utf-8")) for row, length in zip(rows, lengths)]

    def agree(self, compute: Callable[[], object]):
        """Run ``compute`` here, gather every worker's result; if any worker failed, all raise its error."""
        try:
            mine = {"ok": compute()}
        except errors.NextwordError as err:
            mine = {"error": str(err), "kind": type(err).__name__}
        results = self.gather_json(mine)
        for worker, result in enumerate(results):
            if "error" in result:
                kind = getattr(errors, result["kind"], errors.NextwordError)
                raise kind(result["error"] if worker == self.cluster.index else f"worker {worker}: {result['error']}")
        return [result["ok"] for result in results]

    def sum(self, values: list[float]) -> list[float]:
        import tensorflow as tf

        total = self.strategy.reduce("SUM", self.strategy.run(lambda: tf.constant(values, tf.float64)), axis=None)
        return [float(v) for v in total.numpy()]

    def broadcast_variables(self, variables) -> None:
        """Every worker's variables take the chief's values (a sum in which only the chief's count)."""
        import tensorflow as tf

        keep = 1.0 if self.cluster.chief else 0.0
        for variable in variables:
            value = tf.cast(tf.convert_to_tensor(variable), tf.float64) * keep
            total = self.strategy.reduce("SUM", self.strategy.run(lambda v=value: tf.identity(v)), axis=None)
            variable.assign(tf.cast(total, variable.dtype))


# ------------------------------------------------------------------------------------- the epochs
def fit(model, strategy, make_dataset: Callable[[int], object], *, epochs: int, initial_epoch: int, steps: int,
        callbacks) -> None:
    """``model.fit`` for this strategy: ``steps`` global steps per epoch, each worker's batches from
    ``make_dataset(epoch)`` (already its shard, already its part of the global batch)."""
    import keras
    import tensorflow as tf

    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    compiled = {}

    def step_function():
        key = bool(getattr(model, "full_softmax", False))  # a sampled-softmax model's last epochs trace anew
        if key not in compiled:
            @tf.function
            def train(iterator):
                logs = strategy.run(model.train_step, args=(next(iterator),))
                return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}
            compiled[key] = train
        return compiled[key]

    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        dataset = strategy.distribute_datasets_from_function(lambda _context, e=epoch: make_dataset(e))
        iterator = iter(dataset)
        train = step_function()
        logs = {}
        for _ in range(steps):
            logs = train(iterator)
        logs = {name: float(value) for name, value in logs.items()}
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
