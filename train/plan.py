"""Everything decided before training starts, without TensorFlow.

Checking the corpus, fitting the tokenizer, choosing the window and counting
examples all happen here, so a bad input fails in a second with one line and
no run directory is created.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from nextword.config import ModelConfig
from nextword.errors import CorpusError, RunDirError, UsageError
from nextword.tokenizer import Tokenizer, TokenizerConfig
from nextword.train import sequences
from nextword.train.corpus import Corpus, CorpusScan
from nextword.train.data import SplitCounts, TrainingData
from nextword.train.run_dir import RunDir, read_json


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved in ``config.json`` so ``--resume`` continues the same way."""

    mode: str = "prefix"
    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float | None = None
    #: Learning rate multiplied by ``lr_decay`` every epoch from epoch ``lr_decay_start`` (0-based).
    lr_decay: float = 1.0
    lr_decay_start: int = 0
    #: Sentence mode: share of the lines read after the lines before them (see sequences.sentence_examples).
    sentence_history: float = 0.0
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
        if not 0 < self.lr_decay <= 1:
            raise UsageError(f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        if not 0.0 <= self.sentence_history <= 1.0:
            raise UsageError(f"--sentence-history must be in [0, 1], got {self.sentence_history}")
        if self.sentence_history and self.mode != "sentence":
            raise UsageError(f"--sentence-history applies to --mode sentence only, not --mode {self.mode}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise UsageError(f"--early-stopping must be at least 1 epoch, got {self.early_stopping}")

    @classmethod
    def from_saved(cls, training: dict) -> TrainConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in training.items()})


@dataclass(frozen=True)
class ModelOptions:
    """The user's model settings; vocabulary size and window are decided from the data."""

    embedding_dim: int = 10
    hidden_size: int = 50
    num_layers: int = 1
    dropout: float = 0.0
    window: int | None = None
    projection_dim: int = 0
    tie_embeddings: bool = False


@dataclass(frozen=True)
class RunPlan:
    """A checked, ready-to-train run: what the trainer needs and nothing it has to re-decide."""

    run: RunDir
    data: TrainingData
    scan: CorpusScan
    tokenizer: Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig
    train_counts: SplitCounts
    valid_counts: SplitCounts | None
    overwrite: bool = False
    #: For a resumed run: epochs already done, their history, and the checkpoint holding them.
    initial_epoch: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    checkpoint: Path | None = None


def plan_new(out: str | Path, train_config: TrainConfig, tokenizer_config: TokenizerConfig,
             model_options: ModelOptions, *, overwrite: bool = False) -> RunPlan:
    run = RunDir(out)
    run.ensure_new(overwrite)
    data, scan = _scan(train_config)
    train_config = dataclasses.replace(train_config, valid_fraction=data.valid_fraction)
    tokenizer = data.fit_tokenizer(tokenizer_config)
    model_config = ModelConfig(
        vocab_size=tokenizer.vocab_size,
        window=model_options.window or data.auto_window(train_config.mode),
        embedding_dim=model_options.embedding_dim,
        hidden_size=model_options.hidden_size,
        num_layers=model_options.num_layers,
        dropout=model_options.dropout,
        projection_dim=model_options.projection_dim,
        tie_embeddings=model_options.tie_embeddings,
    )
    return _counted(RunPlan, run=run, data=data, scan=scan, tokenizer=tokenizer, model_config=model_config,
                    train_config=train_config, overwrite=overwrite)


def plan_resume(out: str | Path, *, epochs: int | None = None) -> RunPlan:
    run = RunDir(out)
    if not run.path.is_dir():
        raise RunDirError(f"cannot resume: {run.path} does not exist; start a run with `nextword train --out {run.path}`")
    saved = run.read_config()
    train_config = TrainConfig.from_saved(saved["training"])
    if epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=epochs)
    tokenizer = Tokenizer.load(run.path)
    data, scan = _scan(train_config)
    if scan.sha256 != saved["corpus"]["sha256"]:
        raise CorpusError(
            f"cannot resume {run.path}: the corpus ({data.corpus.name}) changed since the run started; "
            "restore it or start a new run"
        )
    data.use_tokenizer(tokenizer)
    initial_epoch, history, checkpoint = 0, {}, None
    if run.state.exists():
        state = read_json(run.state, what="checkpoint state")
        initial_epoch, history, checkpoint = state["epoch"], state["history"], run.checkpoints / state["checkpoint"]
        if initial_epoch >= train_config.epochs:
            raise RunDirError(
                f"{run.path} already completed {initial_epoch} of {train_config.epochs} epochs; "
                "pass --epochs N with a larger N to train further"
            )
    return _counted(RunPlan, run=run, data=data, scan=scan, tokenizer=tokenizer,
                    model_config=ModelConfig.from_dict(saved["model"]), train_config=train_config,
                    initial_epoch=initial_epoch, history=history, checkpoint=checkpoint)


def _scan(train_config: TrainConfig) -> tuple[TrainingData, CorpusScan]:
    corpus = Corpus.default() if train_config.corpus is None else Corpus.from_paths(train_config.corpus)
    valid = None if train_config.valid is None else Corpus.from_paths(train_config.valid)
    return TrainingData.scan(corpus, valid, seed=train_config.seed, valid_fraction=train_config.valid_fraction)


def _counted(cls, **fields) -> RunPlan:
    data, mode, window = fields["data"], fields["train_config"].mode, fields["model_config"].window
    # Validation always measures the line context (no history): what the keyboard serves.
    train_counts = data.count(mode, window, validation=False, history=fields["train_config"].sentence_history)
    if train_counts.examples == 0:
        raise CorpusError(
            f"corpus {data.corpus.name} yields no training examples in {mode} mode "
            "(every line has a single word, or the text is shorter than the window); give it longer text"
        )
    valid_counts = data.count(mode, window, validation=True) if data.has_validation else None
    return cls(train_counts=train_counts, valid_counts=valid_counts, **fields)
