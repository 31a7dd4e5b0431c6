"""Training a next-word model, from corpus files to a complete run directory.

    nextword train --corpus notes.txt --out runs/notes            # new run
    nextword train --out runs/notes --resume                      # continue after a crash

A checkpoint is written after every epoch (model, optimizer and history
together), so a run killed at any moment resumes from its last completed epoch
and ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from nextword.config import ModelConfig
from nextword.errors import Interrupted, RunDirError, WorkerLostError
from nextword.fileio import atomic_path
from nextword.tokenizer import Tokenizer
from nextword.train import report as reporting
from nextword.train import distributed, sequences
from nextword.train.distributed import ENGINE, on_chief
from nextword.train.model import build_model, compile_for_training, inference_model
from nextword.train.plan import RunPlan
from nextword.train.run_dir import CorpusRecord, RunDir, SavedRun, write_json

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    report: reporting.TrainReport | None  # None on a distributed run's other workers (the chief writes it)
    model: keras.Model  # the inference model saved as model.keras
    tokenizer: Tokenizer
    config: ModelConfig


def start(plan: RunPlan, *, log: Log = print) -> TrainResult:
    """Create the run directory from a checked plan and train it."""
    run = plan.run
    for note in plan.notes if plan.chief else ():
        log(f"note: {note}")

    def create() -> None:
        run.create(plan.overwrite)
        try:
            plan.tokenizer.save(run.path)
            corpus = CorpusRecord(name=plan.data.corpus.name, **dataclasses.asdict(plan.scan),
                                  workers=plan.workers if plan.workers > 1 else None)
            run.write_config(SavedRun(model=plan.model_config, training=plan.train_config, corpus=corpus))
        except BaseException:
            # Nothing trained yet: leave no half-made run behind.
            shutil.rmtree(run.path, ignore_errors=True)
            raise

    on_chief(plan.collective, create)  # distributed: the chief alone writes the run directory
    return _fit(plan, _fresh_model(plan), log=log)


def resume(plan: RunPlan, *, log: Log = print) -> TrainResult:
    """Continue a run from the checkpoint its plan names (or from scratch if it has none yet)."""
    if plan.collective is not None:
        return _resume_distributed(plan, log=log)
    plan.run.remove_stale_temp_files()
    if plan.checkpoint is None:
        log(f"no completed epoch in {plan.run.path}; starting from epoch 1")
        model = _fresh_model(plan)
    else:
        model = _load_checkpoint(plan)
        # Dropout's random state lives in the checkpoint; this seeds anything else.
        keras.utils.set_random_seed(plan.train_config.seed)
        log(f"resuming {plan.run.path} at epoch {plan.initial_epoch + 1} of {plan.train_config.epochs}")
    _rewrite_config(plan)
    return _fit(plan, model, log=log)


def _load_checkpoint(plan: RunPlan) -> keras.Model:
    try:
        return keras.models.load_model(plan.checkpoint)
    except Exception as err:  # a damaged archive raises many different types
        raise RunDirError(f"checkpoint {plan.checkpoint} cannot be loaded ({err}); start a new run") from None


def _rewrite_config(plan: RunPlan) -> None:
    plan.run.write_config(dataclasses.replace(plan.run.read_config(), training=plan.train_config))


def _resume_distributed(plan: RunPlan, *, log: Log) -> TrainResult:
    """Every worker builds the model as a new run does; the chief loads the checkpoint into it and the
    engine gives its values (weights, optimizer state, random state) to every worker."""
    model = _fresh_model(plan)
    collective = plan.collective
    variables = list(model.variables) + list(model.optimizer.variables)

    def load() -> None:
        plan.run.remove_stale_temp_files()
        if plan.checkpoint is not None:
            saved = _load_checkpoint(plan)
            if not saved.optimizer.built:  # a checkpoint saved before the first step has no optimizer state yet
                saved.optimizer.build(saved.trainable_variables)
            values = list(saved.variables) + list(saved.optimizer.variables)
            if [tuple(v.shape) for v in values] != [tuple(v.shape) for v in variables]:
                raise RunDirError(f"checkpoint {plan.checkpoint} does not match the run's model; start a new run")
            for variable, value in zip(variables, values):
                variable.assign(value)
        _rewrite_config(plan)

    on_chief(plan.collective, load)
    collective.broadcast_variables(variables)
    if plan.chief:
        log(f"resuming {plan.run.path} at epoch {plan.initial_epoch + 1} of {plan.train_config.epochs} on "
            f"{plan.workers} workers" if plan.checkpoint else f"no completed epoch in {plan.run.path}; starting "
            "from epoch 1")
    return _fit(plan, model, log=log)


def _fresh_model(plan: RunPlan) -> keras.Model:
    config = plan.train_config
    keras.utils.set_random_seed(config.seed)
    scope = plan.collective.strategy.scope() if plan.collective else contextlib.nullcontext()
    with scope:  # distributed: the variables are mirrored on every worker
        model = build_model(plan.model_config, sequence_output=config.mode in ("stream", "sentence"),
                            logits=config.logits, sampled_softmax=config.sampled_softmax)
        compile_for_training(model, config.learning_rate, config.clipnorm, logits=config.logits,
                             jit_compile=config.jit_compile, metrics=_train_metrics(config))
        if plan.collective:
            model.optimizer.build(model.trainable_variables)  # its state exists before a checkpoint fills it
    return model


def _train_metrics(config) -> bool:
    """Metrics on every training batch: not with a sampled softmax (its steps never compute the full one)."""
    return config.train_metrics and not config.sampled_softmax


def _set_threads(threads: int | None) -> None:
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)
        except RuntimeError:  # already initialised in this process (tests): keep what it has
            pass


class Progress(keras.callbacks.Callback):
    """One line per epoch: its metrics, its time and the time left for the whole run.

    Runs after ``EpochCheckpoint``, whose history's ``epoch_seconds`` it reads (this session's epochs).
    """

    def __init__(self, checkpoint: EpochCheckpoint, total_epochs: int, log: Log) -> None:
        super().__init__()
        self.checkpoint, self.total_epochs, self.log = checkpoint, total_epochs, log
        self._first = len(checkpoint.history.get("epoch_seconds", []))  # epochs of earlier sessions

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        durations = self.checkpoint.history["epoch_seconds"][self._first:]
        recent = durations[1:] or durations  # the first epoch pays for tracing
        left = (self.total_epochs - epoch - 1) * sum(recent) / len(recent)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in (logs or {}).items() if k != "learning_rate")
        self.log(f"epoch {epoch + 1}/{self.total_epochs}  {durations[-1]:.0f} s  {shown}  ETA {_duration(left)}")


class FullSoftmaxEpochs(keras.callbacks.Callback):
    """A sampled-softmax model trains its last ``count`` epochs on the full softmax: a function of the
    epoch alone, so a resumed run switches where an uninterrupted one does."""

    def __init__(self, total_epochs: int, count: int) -> None:
        super().__init__()
        self.first_full = total_epochs - count

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        full = epoch >= self.first_full
        if full != self.model.full_softmax:
            self.model.full_softmax = full
            self.model.make_train_function(force=True)  # the step is traced again for the other loss


class ValidationMetrics(keras.callbacks.Callback):
    """val_loss, val_accuracy and val_perplexity when the training steps carry no metrics.

    One pass over the validation set per epoch, weighted as the loss is (padding weighs 0), so
    val_perplexity is exp of the mean cross-entropy of the real targets.
    """

    def __init__(self, dataset, logits: bool, summed=None) -> None:
        super().__init__()
        self.dataset, self.logits = dataset, logits
        #: Distributed: adds up the workers' sums (each measured its own held-out lines).
        self.summed = summed
        self._forward = None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self._forward is None:
            self._forward = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        total = correct = count = 0.0
        for batch in self.dataset:
            x, y = batch[0], batch[1]
            out = self._forward(x)
            weights = batch[2] if len(batch) == 3 else tf.ones_like(y, tf.float32)
            losses = keras.losses.sparse_categorical_crossentropy(y, out, from_logits=self.logits)
            hits = tf.cast(tf.equal(tf.argmax(out, axis=-1, output_type=tf.int32), y), tf.float32)
            total += float(tf.reduce_sum(losses * weights))
            correct += float(tf.reduce_sum(hits * weights))
            count += float(tf.reduce_sum(weights))
        if self.summed is not None:
            total, correct, count = self.summed([total, correct, count])
        if logs is not None and count:
            logs.update(val_loss=total / count, val_accuracy=correct / count, val_perplexity=float(np.exp(total / count)))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: save model + optimizer, then a state file naming it (the commit point)."""

    def __init__(self, run: RunDir, history: dict, epoch_holder: list[int]) -> None:
        super().__init__()
        self.run = run
        self.history = history
        self.epoch_holder = epoch_holder
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch_holder[0] = epoch
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.history.setdefault("epoch_seconds", []).append(time.perf_counter() - self._started)
        checkpoint = self.run.checkpoint_for(epoch + 1)
        with atomic_path(checkpoint) as tmp:
            self.model.save(tmp)
        write_json(self.run.state, {"epoch": epoch + 1, "checkpoint": checkpoint.name, "history": self.history})
        for old in self.run.checkpoints.glob("epoch-*.keras"):
            if old != checkpoint:
                old.unlink(missing_ok=True)
        # Best weights (ResumableEarlyStopping): the newest file of a committed epoch is the best so far.
        committed = sorted((e, p) for e, p in self.run.best_weights_files().items() if e <= epoch + 1)
        for _, old in committed[:-1]:
            old.unlink(missing_ok=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience and best weights survive ``--resume``.

    Keras keeps them in memory only. Here the best value and the epochs waited are rebuilt from the
    saved history, and the best weights are saved (``checkpoints/best-epoch-N.weights.h5``) when they
    improve, before the epoch's checkpoint commits, so a resumed run stops where an uninterrupted one would.
    """

    def __init__(self, run: RunDir, history: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run = run
        self.saved_history = history

    def on_train_begin(self, logs=None) -> None:
        super().on_train_begin(logs)
        values = self.saved_history.get(self.monitor, [])
        if not values:
            return
        best_index = min(range(len(values)), key=values.__getitem__)
        self.best, self.best_epoch = values[best_index], best_index
        self.wait = len(values) - 1 - best_index
        best_file = self.run.best_weights_for(best_index + 1)
        if self.restore_best_weights and best_file.exists():
            current = self.model.get_weights()
            self.model.load_weights(best_file)
            self.best_weights = self.model.get_weights()
            self.model.set_weights(current)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        super().on_epoch_end(epoch, logs)
        if self.restore_best_weights and self.best_epoch == epoch:
            with atomic_path(self.run.best_weights_for(epoch + 1), suffix=".weights.h5") as tmp:
                self.model.save_weights(tmp)


def _interrupted_message(plan: RunPlan) -> str:
    """Ctrl-C, or SIGTERM on a distributed worker (``distributed.connect``): what is saved, how to go on."""
    run = plan.run
    if not plan.chief:  # only the chief writes checkpoints
        cluster = plan.collective.cluster
        return (f"interrupted: worker {cluster.index} of {cluster.count} stopped; the chief ({cluster.workers[0]}) "
                "keeps the run's last completed epoch: start every worker again with `nextword train --out "
                "RUN_DIR --resume` and the same --workers and --worker-index")
    done = run.saved_epochs()
    if not done:
        return (f"interrupted before the first epoch ended; nothing to resume in {run.path}: "
                f"start again with --overwrite")
    return (f"interrupted; {done} epoch(s) are saved in {run.path}: `nextword train --out {run.path} --resume` "
            f"continues, `nextword train --out {run.path} --finish` writes the model as it is now")


def _worker_lost_message(plan: RunPlan, err: Exception) -> str:
    """One line for the end of a distributed job: which engine error, what is saved, how to go on."""
    kind = type(err).__name__
    done = plan.run.saved_epochs() if plan.chief else None
    saved = (f"{done} epoch(s) are saved in {plan.run.path}" if done else "the chief holds the last completed "
             "epoch's checkpoint") if done is None or done else f"no epoch was completed in {plan.run.path}"
    return (f"a worker stopped or became unreachable during training ({kind} from the engine's collectives); "
            f"{saved}: start every worker again with `nextword train --out RUN_DIR --resume` and the same "
            "--workers and --worker-index")


def _fit(plan: RunPlan, model: keras.Model, *, log: Log) -> TrainResult:
    started = time.perf_counter()
    _set_threads(plan.train_config.threads)
    if plan.train_config.deterministic:
        tf.config.experimental.enable_op_determinism()
    run, data, tokenizer, model_config, train_config = (plan.run, plan.data, plan.tokenizer, plan.model_config,
                                                        plan.train_config)
    mode, window, batch_size = train_config.mode, model_config.window, train_config.batch_size
    train_counts, valid_counts = plan.train_counts, plan.valid_counts
    initial_epoch, history = plan.initial_epoch, dict(plan.history)
    epoch_holder = [initial_epoch]

    collective = plan.collective
    worker_batch = batch_size // plan.workers  # distributed: this worker's part of the global batch

    def train_batches(epoch: int | None = None):
        rng = np.random.default_rng([train_config.seed, epoch_holder[0] if epoch is None else epoch])
        return data.batches(mode, window, worker_batch, validation=False, rng=rng,
                            shuffle_buffer=train_config.shuffle_buffer, history=train_config.sentence_history)

    train_ds = sequences.tensorflow_dataset(train_batches, mode=mode, window=window,
                                            batches=-(-train_counts.examples // batch_size))
    valid_ds = None
    if valid_counts is not None and valid_counts.examples > 0:
        # Distributed: each worker measures its own held-out lines and the sums are added up (ValidationMetrics).
        valid_ds = sequences.tensorflow_dataset(
            lambda: data.batches(mode, window, batch_size, validation=True, rng=None,
                                 shuffle_buffer=train_config.shuffle_buffer),
            mode=mode, window=window, batches=None if collective else -(-valid_counts.examples // batch_size))

    if plan.chief:
        log(reporting.summary_line(data.corpus.name, tokenizer, model_config, model.count_params(), train_counts,
                                   mode))
    if collective is not None:
        log(f"worker {collective.cluster.index} of {plan.workers}: {plan.worker_steps:,} steps of {worker_batch} "
            f"examples per epoch (global batch {batch_size}, learning rate {train_config.learning_rate:g}), "
            f"{ENGINE}")
    checkpoint = EpochCheckpoint(run, history, epoch_holder)
    callbacks: list[keras.callbacks.Callback] = [checkpoint, Progress(checkpoint, train_config.epochs, log)] \
        if plan.chief else []  # per epoch: a checkpoint, then the metrics and the time left
    keras_validation = valid_ds
    if (not _train_metrics(train_config) or collective is not None) and valid_ds is not None:
        summed = collective.sum if collective is not None else None
        callbacks.insert(0, ValidationMetrics(valid_ds, train_config.logits, summed))  # first: the others read it
        keras_validation = None
    if train_config.lr_decay != 1.0:
        base, decay, first = train_config.learning_rate, train_config.lr_decay, train_config.lr_decay_start
        # A function of the epoch alone, so a resumed run continues the same schedule.
        callbacks.insert(0, keras.callbacks.LearningRateScheduler(
            lambda epoch, _lr: base * decay ** max(0, epoch - first + 1)))
    if train_config.sampled_softmax and train_config.full_softmax_epochs:
        callbacks.insert(0, FullSoftmaxEpochs(train_config.epochs, train_config.full_softmax_epochs))
    if train_config.early_stopping:
        # Before the checkpoint: its best weights are on disk when the epoch commits (the chief's).
        callbacks.insert(callbacks.index(checkpoint) if plan.chief else len(callbacks), ResumableEarlyStopping(
            run, history, monitor="val_loss" if valid_ds is not None else "loss",
            patience=train_config.early_stopping, restore_best_weights=plan.chief))
    fit_started = time.perf_counter()
    if initial_epoch < train_config.epochs:  # --finish: nothing left to train, write what the checkpoint holds
        try:
            if collective is None:
                model.fit(train_ds, validation_data=keras_validation, epochs=train_config.epochs,
                          initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                          verbose=reporting.keras_verbosity())
            else:
                def worker_dataset(epoch: int):
                    return sequences.tensorflow_dataset(lambda: train_batches(epoch), mode=mode, window=window,
                                                        batches=plan.worker_steps)
                try:
                    distributed.fit(model, collective.strategy, worker_dataset, epochs=train_config.epochs,
                                    initial_epoch=initial_epoch, steps=plan.worker_steps, callbacks=callbacks)
                except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError,
                        tf.errors.AbortedError, tf.errors.InternalError) as err:
                    raise WorkerLostError(_worker_lost_message(plan, err)) from None
        except KeyboardInterrupt:
            raise Interrupted(_interrupted_message(plan)) from None
    fit_seconds = time.perf_counter() - fit_started
    if not plan.chief:  # the chief writes the model and the report
        return TrainResult(None, model, tokenizer, model_config)

    final = inference_model(model, model_config)
    with atomic_path(run.model) as tmp:
        final.save(tmp)
    report = reporting.build_report(
        run=run, data=data, tokenizer=tokenizer, model_config=model_config, train_config=train_config,
        parameters=final.count_params(), train_counts=train_counts, valid_counts=valid_counts,
        history=history, fit_seconds=fit_seconds, wall_seconds=time.perf_counter() - started,
        resumed_from=initial_epoch,
    )
    if collective is not None:
        report.distributed = {"engine": ENGINE, "workers": list(collective.cluster.workers),
                                 "global_batch": batch_size, "worker_batch": worker_batch,
                                 "steps_per_epoch": plan.worker_steps, "learning_rate": train_config.learning_rate,
                                 "shards": "consecutive byte ranges of the corpus files, one per worker"}
    reporting.plot_history(history, run.history_plot, title=reporting.plot_title(report))
    write_json(run.report, report.to_dict())  # last: a run with its report is complete (resume relies on it)
    return TrainResult(report, final, tokenizer, model_config)
