"""Training a next-word model, from corpus files to a complete run directory.

    nextword train --corpus notes.txt --out runs/notes            # new run
    nextword train --out runs/notes --resume                      # continue after a crash

A checkpoint is written after every epoch (model, optimizer and history
together), so a run killed at any moment resumes from its last completed epoch
and ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nextword.config import ModelConfig
from nextword.errors import CorpusError, RunDirError, UsageError
from nextword.fileio import atomic_path
from nextword.tokenizer import Tokenizer, TokenizerConfig
from nextword.train import report as reporting
from nextword.train import sequences
from nextword.train.corpus import Corpus
from nextword.train.data import TrainingData
from nextword.train.model import build_model, compile_for_training, inference_model
from nextword.train.run_dir import RunDir, read_json, write_json

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    report: dict
    model: keras.Model  # the inference model saved as model.keras
    tokenizer: Tokenizer
    config: ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved in ``config.json`` so ``--resume`` continues the same way."""

    mode: str = "prefix"
    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float | None = None
    seed: int = 0
    valid_fraction: float = 0.1
    #: Stop after this many epochs without improvement of the validation loss.
    early_stopping: int | None = None
    shuffle_buffer: int = 100_000
    #: Corpus files/directories; ``None`` is the embedded default corpus.
    corpus: tuple[str, ...] | None = None
    valid: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in sequences.MODES:
            raise UsageError(f"--mode {self.mode!r} does not exist; choose one of {', '.join(sequences.MODES)}")
        for name in ("epochs", "batch_size", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise UsageError(f"--valid-fraction must be in [0, 1), got {self.valid_fraction}")
        if self.learning_rate <= 0:
            raise UsageError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise UsageError(f"--early-stopping must be at least 1 epoch, got {self.early_stopping}")


@dataclass(frozen=True)
class ModelOptions:
    """The user's model settings; vocabulary size and window are decided from the data."""

    embedding_dim: int = 10
    hidden_size: int = 50
    num_layers: int = 1
    dropout: float = 0.0
    window: int | None = None


def corpus_of(paths: tuple[str, ...] | None) -> Corpus:
    return Corpus.default() if paths is None else Corpus.from_paths(paths)


def start(
    out: str | Path,
    train_config: TrainConfig,
    tokenizer_config: TokenizerConfig,
    model_options: ModelOptions,
    *,
    overwrite: bool = False,
    log: Log = print,
) -> TrainResult:
    """Validate everything, create the run directory, train. """
    run = RunDir(out)
    run.ensure_new(overwrite)
    data, scan = TrainingData.scan(
        corpus_of(train_config.corpus),
        None if train_config.valid is None else Corpus.from_paths(train_config.valid),
        seed=train_config.seed,
        valid_fraction=train_config.valid_fraction,
    )
    train_config = dataclasses.replace(train_config, valid_fraction=data.valid_fraction)
    tokenizer = data.fit_tokenizer(tokenizer_config)
    window = model_options.window or data.auto_window(train_config.mode)
    model_config = ModelConfig(
        vocab_size=tokenizer.vocab_size,
        window=window,
        embedding_dim=model_options.embedding_dim,
        hidden_size=model_options.hidden_size,
        num_layers=model_options.num_layers,
        dropout=model_options.dropout,
    )
    if train_config.valid_fraction == 0 and train_config.valid is None:
        log(f"note: corpus has {scan.lines} lines, too few to hold some out; training on all, no validation")

    run.create(overwrite)
    try:
        tokenizer.save(run.path)
        run.write_config(
            model=model_config.to_dict(),
            training=dataclasses.asdict(train_config),
            corpus={"name": data.corpus.name, **dataclasses.asdict(scan)},
        )
    except BaseException:
        # Nothing trained yet: leave no half-made run behind.
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    keras.utils.set_random_seed(train_config.seed)
    model = build_model(model_config, sequence_output=train_config.mode == "stream")
    compile_for_training(model, train_config.learning_rate, train_config.clipnorm)
    return _fit(run, data, tokenizer, model_config, train_config, model, initial_epoch=0, history={}, log=log)


def resume(out: str | Path, *, epochs: int | None = None, log: Log = print) -> TrainResult:
    """Continue a run from its last completed epoch (``epochs`` may raise the target)."""
    run = RunDir(out)
    if not run.path.is_dir():
        raise RunDirError(f"cannot resume: {run.path} does not exist; start a run with `nextword train --out {run.path}`")
    saved = run.read_config()
    train_config = TrainConfig(**_tuples(saved["training"]))
    if epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=epochs)
    model_config = ModelConfig.from_dict(saved["model"])
    tokenizer = Tokenizer.load(run.path)
    data, scan = TrainingData.scan(
        corpus_of(train_config.corpus),
        None if train_config.valid is None else Corpus.from_paths(train_config.valid),
        seed=train_config.seed,
        valid_fraction=train_config.valid_fraction,
    )
    if scan.sha256 != saved["corpus"]["sha256"]:
        raise CorpusError(
            f"cannot resume {run.path}: the corpus ({data.corpus.name}) changed since the run started; "
            "restore it or start a new run"
        )
    data.use_tokenizer(tokenizer)
    state = read_json(run.state, what="checkpoint state") if run.state.exists() else None
    if state is None:
        log(f"no completed epoch in {run.path}; starting from epoch 1")
        keras.utils.set_random_seed(train_config.seed)
        model = build_model(model_config, sequence_output=train_config.mode == "stream")
        compile_for_training(model, train_config.learning_rate, train_config.clipnorm)
        initial_epoch, history = 0, {}
    else:
        initial_epoch, history = state["epoch"], state["history"]
        if initial_epoch >= train_config.epochs:
            raise RunDirError(
                f"{run.path} already completed {initial_epoch} of {train_config.epochs} epochs; "
                "pass --epochs N with a larger N to train further"
            )
        checkpoint = run.checkpoints / state["checkpoint"]
        try:
            model = keras.models.load_model(checkpoint)
        except Exception as err:  # a damaged archive raises many different types
            raise RunDirError(f"checkpoint {checkpoint} cannot be loaded ({err}); start a new run") from None
        # Dropout's random state lives in the checkpoint; this seeds anything else.
        keras.utils.set_random_seed(train_config.seed)
        log(f"resuming {run.path} at epoch {initial_epoch + 1} of {train_config.epochs}")
    run.write_config(model=saved["model"], training=dataclasses.asdict(train_config), corpus=saved["corpus"])
    return _fit(run, data, tokenizer, model_config, train_config, model, initial_epoch=initial_epoch,
                history=history, log=log)


def _tuples(training: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in training.items()}


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch: save model + optimizer, then a state file naming it (the commit point)."""

    def __init__(self, run: RunDir, history: dict, epoch_holder: list[int]) -> None:
        super().__init__()
        self.run = run
        self.history = history
        self.epoch_holder = epoch_holder
        self.epoch_seconds: list[float] = list(history.get("epoch_seconds", []))
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


def _fit(
    run: RunDir,
    data: TrainingData,
    tokenizer: Tokenizer,
    model_config: ModelConfig,
    train_config: TrainConfig,
    model: keras.Model,
    *,
    initial_epoch: int,
    history: dict,
    log: Log,
) -> TrainResult:
    started = time.perf_counter()
    tf.config.experimental.enable_op_determinism()
    mode, window, batch_size = train_config.mode, model_config.window, train_config.batch_size
    train_counts = data.count(mode, window, validation=False)
    if train_counts.examples == 0:
        raise CorpusError(
            f"corpus {data.corpus.name} yields no training examples in {mode} mode "
            "(every line has a single word, or the stream is shorter than the window); give it longer text"
        )
    valid_counts = data.count(mode, window, validation=True) if data.has_validation else None
    epoch_holder = [initial_epoch]

    def train_batches():
        rng = np.random.default_rng([train_config.seed, epoch_holder[0]])
        return data.batches(mode, window, batch_size, validation=False, rng=rng,
                            shuffle_buffer=train_config.shuffle_buffer)

    train_ds = sequences.tensorflow_dataset(train_batches, mode=mode, window=window,
                                            batches=-(-train_counts.examples // batch_size))
    valid_ds = None
    if valid_counts is not None and valid_counts.examples > 0:
        valid_ds = sequences.tensorflow_dataset(
            lambda: data.batches(mode, window, batch_size, validation=True, rng=None,
                                 shuffle_buffer=train_config.shuffle_buffer),
            mode=mode, window=window, batches=-(-valid_counts.examples // batch_size))

    log(reporting.summary_line(data.corpus.name, tokenizer, model_config, model.count_params(), train_counts, mode))
    checkpoint = EpochCheckpoint(run, history, epoch_holder)
    callbacks: list[keras.callbacks.Callback] = [checkpoint]
    if train_config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss" if valid_ds is not None else "loss",
            patience=train_config.early_stopping, restore_best_weights=True))
    fit_started = time.perf_counter()
    model.fit(train_ds, validation_data=valid_ds, epochs=train_config.epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, shuffle=False, verbose=reporting.keras_verbosity())
    fit_seconds = time.perf_counter() - fit_started

    final = inference_model(model, model_config)
    with atomic_path(run.model) as tmp:
        final.save(tmp)
    report = reporting.build_report(
        run=run, data=data, tokenizer=tokenizer, model_config=model_config, train_config=train_config,
        parameters=final.count_params(), train_counts=train_counts, valid_counts=valid_counts,
        history=history, fit_seconds=fit_seconds, wall_seconds=time.perf_counter() - started,
        resumed_from=initial_epoch,
    )
    write_json(run.report, report)
    reporting.plot_history(history, run.history_plot)
    return TrainResult(report, final, tokenizer, model_config)
