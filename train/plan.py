"""Everything decided before training starts, without TensorFlow.

Checking the corpus, fitting the tokenizer, choosing the window and counting
examples all happen here, so a bad input fails in a second with one line and
no run directory is created. Every rule about settings lives here too (presets,
the ``<eos>`` default, what ``--resume`` may change), so the library and the CLI
refuse the same things with the same words.

    plan = plan_new("runs/mine", TrainConfig(mode="stream", corpus=("notes.txt",)),
                    TokenizerConfig(eos_token="<eos>"), {"hidden_size": 128})
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nextword.config import ModelConfig
from nextword.errors import CorpusError, RunDirError, UsageError
from nextword.tokenizer import KERAS_FILTERS, Tokenizer, TokenizerConfig
from nextword.train import sequences
from nextword.train.corpus import MIN_LINES_FOR_SPLIT, Corpus, CorpusScan
from nextword.train.data import SplitCounts, TrainingData
from nextword.train.distributed import on_chief
from nextword.train.presets import MAX_SCALED_EPOCHS, MIN_STEPS, SAMPLED_SOFTMAX_MIN_VOCAB_RATIO, SCALED_EARLY_STOPPING
from nextword.train.presets import preset as named_preset
from nextword.train.run_dir import RunDir, read_json

#: Upper bounds that catch a typo (``--epochs 99999999999999999999``) before it becomes a run.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000


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
    #: The training model ends in logits and the loss applies the softmax itself (numerically one op fewer).
    logits: bool = False
    #: Compile the training step with XLA.
    jit_compile: bool = False
    #: Accuracy and perplexity on every training batch (validation always has them).
    train_metrics: bool = True
    #: Training steps score each target against this many sampled classes instead of the whole vocabulary
    #: (0: the full softmax). Validation, eval and export always use the full softmax.
    sampled_softmax: int = 0
    #: With a sampled softmax: the last this-many epochs train on the full softmax (the sampled one's
    #: estimate leaves the full distribution less calibrated; a full epoch at the end corrects it).
    full_softmax_epochs: int = 0
    #: TensorFlow's threads for one op (intra) and across ops (inter); None: TensorFlow's choice.
    threads: int | None = None
    #: TensorFlow's op determinism: same seed, same weights, and --resume ends exactly like a run never stopped.
    deterministic: bool = True
    #: Corpus files/directories; ``None`` is the embedded default corpus.
    corpus: tuple[str, ...] | None = None
    valid: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in sequences.MODES:
            raise UsageError(f"--mode {self.mode!r} does not exist; choose one of {', '.join(sequences.MODES)}")
        for name, high in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE), ("shuffle_buffer", 10**9),
                           ("seed", 2**32 - 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"--{name.replace('_', '-')} must be an integer, got {value!r}")
            low = 0 if name == "seed" else 1
            if not low <= value <= high:
                raise UsageError(f"--{name.replace('_', '-')} must be {low} to {high:,}, got {value:,}")
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
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise UsageError(f"--threads must be 1 to 1,024, got {self.threads}")
        if self.early_stopping is not None and not 1 <= self.early_stopping <= MAX_EPOCHS:
            raise UsageError(f"--early-stopping must be 1 to {MAX_EPOCHS:,} epochs, got {self.early_stopping}")
        if not isinstance(self.sampled_softmax, int) or isinstance(self.sampled_softmax, bool) \
                or not 0 <= self.sampled_softmax <= 10_000_000:
            raise UsageError(f"--sampled-softmax must be 0 (off) or a number of classes, got {self.sampled_softmax!r}")
        if not isinstance(self.full_softmax_epochs, int) or isinstance(self.full_softmax_epochs, bool) \
                or not 0 <= self.full_softmax_epochs <= MAX_EPOCHS:
            raise UsageError(f"--full-softmax-epochs must be 0 to {MAX_EPOCHS:,}, got {self.full_softmax_epochs!r}")
        if not 0 <= self.lr_decay_start <= MAX_EPOCHS:
            raise UsageError(f"--lr-decay-start must be 0 to {MAX_EPOCHS:,}, got {self.lr_decay_start}")

    @classmethod
    def from_saved(cls, training: dict, workdir: str | None = None) -> TrainConfig:
        """The settings a run saved (``config.json``'s ``training``). ``workdir``: the directory the run was
        trained from; a relative corpus path that does not exist from here is read from there, where it does
        (a run exported or resumed from another directory)."""
        config = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in training.items()})
        if not workdir:
            return config

        def located(paths: tuple[str, ...] | None) -> tuple[str, ...] | None:
            if paths is None:
                return None
            return tuple(str(Path(workdir) / p) if not Path(p).is_absolute() and not Path(p).exists()
                         and (Path(workdir) / p).exists() else p for p in paths)

        return dataclasses.replace(config, corpus=located(config.corpus), valid=located(config.valid))


#: ModelConfig fields a user chooses (vocab_size comes from the data; window may, when not given).
MODEL_SETTINGS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size")
#: Tokenizer choices the CLI exposes as flags, mapped onto TokenizerConfig.
TOKENIZER_SETTINGS = ("max_vocab", "min_count", "unk", "eos", "keep_punctuation")


def default_of(cls, name: str):
    """A dataclass field's default: the one place each default is written (help texts read it here)."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def settings_from_options(options: Mapping[str, Any], preset: str | None = None,
                          ) -> tuple[TrainConfig, TokenizerConfig, dict]:
    """(training, tokenizer, model settings) from the options a user set (``None`` = not set).

    A preset fills what the user did not set; ``<eos>`` defaults on in the stream and sentence
    modes; the sentence mode refuses ``eos=False``; unknown option names are refused.
    """
    given = {k: v for k, v in options.items() if v is not None}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(given) - train_fields - set(MODEL_SETTINGS) - set(TOKENIZER_SETTINGS))
    if unknown:
        raise UsageError(f"unknown settings {unknown}; choose from training {sorted(train_fields)}, model "
                         f"{list(MODEL_SETTINGS)}, tokenizer {list(TOKENIZER_SETTINGS)}")
    if preset:
        settings = dict(named_preset(preset))
        if settings.get("tie_embeddings") and "embedding_dim" in given and "projection_dim" not in given:
            settings["projection_dim"] = given["embedding_dim"]  # a tied preset's projection is its embedding size
        given = {**settings, **given}
    train_config = TrainConfig(**{k: tuple(v) if k in ("corpus", "valid") else v
                                  for k, v in given.items() if k in train_fields})
    eos = given.get("eos", train_config.mode in ("stream", "sentence"))
    tokenizer_config = TokenizerConfig(
        **{k: given[k] for k in ("max_vocab", "min_count") if k in given},
        unk_token="<unk>" if given.get("unk", True) else None,
        eos_token="<eos>" if eos else None,
        filters="" if given.get("keep_punctuation") else KERAS_FILTERS,
    )
    return train_config, tokenizer_config, {k: given[k] for k in MODEL_SETTINGS if k in given}


def preset_min_steps(options: Mapping[str, Any], preset: str | None) -> int:
    """The training steps a preset asks for when the user left its epochs alone (0: none)."""
    return MIN_STEPS.get(preset or "", 0) if options.get("epochs") is None else 0


def scaled_to_steps(config: TrainConfig, batches_per_epoch: int, min_steps: int, has_validation: bool,
                    ) -> tuple[TrainConfig, str | None]:
    """More epochs for a corpus smaller than the preset's own, with the same total decay (and a note)."""
    if not min_steps or batches_per_epoch <= 0 or config.epochs * batches_per_epoch >= min_steps:
        return config, None
    epochs = min(MAX_SCALED_EPOCHS, -(-min_steps // batches_per_epoch))
    stretch = epochs / config.epochs
    changes = {"epochs": epochs, "lr_decay_start": round(config.lr_decay_start * stretch),
               "lr_decay": config.lr_decay ** (1 / stretch)}
    if has_validation and config.early_stopping is None:
        changes["early_stopping"] = SCALED_EARLY_STOPPING
    note = (f"the corpus gives {batches_per_epoch:,} batches per epoch: {epochs} epochs instead of {config.epochs} "
            f"(the preset's {min_steps:,} steps), decay x{changes['lr_decay']:.3f} from epoch "
            f"{changes['lr_decay_start'] + 1}" + (f", early stopping after {SCALED_EARLY_STOPPING} epochs without "
                                                  "improvement" if "early_stopping" in changes else ""))
    return dataclasses.replace(config, **changes), note


def preset_settings(options: Mapping[str, Any], preset: str | None) -> frozenset[str]:
    """The settings a run takes from its preset, not from the user's flags."""
    if not preset:
        return frozenset()
    return frozenset(k for k in named_preset(preset) if options.get(k) is None)


#: What `--resume` may change (more epochs; the threads, which change the speed and at most the last bits of
#: the results): everything else is the run's saved settings.
RESUMABLE = {"epochs", "threads"}
#: Settings a plan adjusts to its corpus (steps scaling, a small vocabulary, a validation file), so that a
#: preset named again on --resume is not held to its own values for them.
ADJUSTED_BY_PLAN = {"epochs", "lr_decay", "lr_decay_start", "early_stopping", "sampled_softmax", "valid_fraction"}


def check_resume_options(options: Mapping[str, Any], saved: Mapping[str, Any], tokenizer: Mapping[str, Any]) -> None:
    """``--resume`` continues with the run's saved settings: the same command plus ``--resume`` works (an
    option given again with the value the run was started with), and one line names every option that
    differs, with the run's value. ``options``: the command's settings (None: not given), ``preset`` and
    ``overwrite`` included; ``saved``: the run's config.json; ``tokenizer``: its tokenizer settings."""
    if options.get("overwrite"):
        raise UsageError("--overwrite starts the run over and --resume continues it: give one of them")
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    # The corpus paths as found from here (a run resumed from another directory: see from_saved).
    located = TrainConfig.from_saved(saved["training"], saved.get("workdir"))

    def run_value(name: str):
        if name in ("corpus", "valid"):
            return getattr(located, name)
        if name in train_fields:
            return saved["training"].get(name)
        if name in MODEL_SETTINGS:
            return saved["model"].get(name)
        return {"unk": tokenizer.get("unk_token") is not None, "eos": tokenizer.get("eos_token") is not None,
                "keep_punctuation": tokenizer.get("filters") == ""}.get(name, tokenizer.get(name))

    def same(name: str, value, saved_value) -> bool:
        if name in ("corpus", "valid") and value is not None and saved_value is not None:
            return [Path(p).resolve() for p in value] == [Path(p).resolve() for p in saved_value]
        if name == "tie_embeddings":
            return bool(value) == bool(saved_value)
        return value == saved_value

    given = {k: v for k, v in options.items() if v is not None and k not in (*RESUMABLE, "preset", "overwrite")}
    differ = [f"--{name.replace('_', '-')} {_shown(value)} (the run's: {_shown(run_value(name))})"
              for name, value in sorted(given.items()) if not same(name, value, run_value(name))]
    if options.get("preset"):
        implied = {k: v for k, v in named_preset(options["preset"]).items()
                   if k not in given and k not in ADJUSTED_BY_PLAN}
        unlike = [name for name, value in sorted(implied.items()) if not same(name, value, run_value(name))]
        if unlike:
            shown = [f"{n} {_shown(implied[n])} (the run's: {_shown(run_value(n))})" for n in unlike[:3]]
            more = f" and {len(unlike) - 3} more" if len(unlike) > 3 else ""
            differ.append(f"--preset {options['preset']}: its {', '.join(shown)}{more}")
    if differ:
        raise UsageError(f"--resume continues with the run's saved settings and these differ from them: "
                         f"{'; '.join(differ)}; only --epochs and --threads may change (or start over with "
                         "--overwrite)")


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


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
    #: Things the user should hear before training (files skipped, no validation split ...).
    notes: tuple[str, ...] = ()
    #: Distributed training (``nextword.train.distributed``): this worker's shard is ``data``; the counts are
    #: the whole corpus'; every worker runs ``worker_steps`` steps of ``batch_size / workers`` examples.
    collective: Any = None
    worker_steps: int | None = None

    @property
    def workers(self) -> int:
        return 1 if self.collective is None else self.collective.cluster.count

    @property
    def chief(self) -> bool:
        return self.collective is None or self.collective.cluster.chief


def plan_new(out: str | Path, train_config: TrainConfig, tokenizer_config: TokenizerConfig | None = None,
             model: Mapping[str, Any] | None = None, *, overwrite: bool = False,
             from_preset: frozenset[str] = frozenset(), min_steps: int = 0, collective=None) -> RunPlan:
    """A checked plan for a new run in ``out``; ``model`` holds ModelConfig settings (window: from the data).

    ``from_preset`` names the settings a preset chose (not the user): a preset's sampled softmax is
    switched off, with a note, when the vocabulary is small enough for the full softmax. ``min_steps``: a
    preset's training steps (``preset_min_steps``), reached with more epochs on a smaller corpus.
    ``collective``: this worker's place in distributed training (``distributed.Collective``); every worker
    plans on its own shard and agrees with the others on the vocabulary, window and counts.
    """
    tokenizer_config = tokenizer_config or TokenizerConfig()
    model = dict(model or {})
    unknown = sorted(set(model) - set(MODEL_SETTINGS))
    if unknown:
        raise UsageError(f"unknown model settings {unknown}; choose from {', '.join(MODEL_SETTINGS)}")
    if train_config.mode == "sentence" and tokenizer_config.eos_token is None:
        raise UsageError("--mode sentence reads every line after <eos>; it cannot be used with --no-eos "
                         "(TokenizerConfig(eos_token=None))")
    run = RunDir(out)
    _check_workers(train_config, collective)
    on_chief(collective, lambda: run.ensure_new(overwrite))  # only the chief writes a run directory
    data, scan = _scan(train_config, collective)
    train_config = dataclasses.replace(train_config, valid_fraction=data.valid_fraction)
    tokenizer = _fit_tokenizer(data, tokenizer_config, collective)
    window = model.pop("window", None) or _agreed_max(collective, lambda: data.auto_window(train_config.mode))
    model_config = ModelConfig(vocab_size=tokenizer.vocab_size, window=window, **model)
    notes = []
    sampled = train_config.sampled_softmax
    if "sampled_softmax" in from_preset and sampled * SAMPLED_SOFTMAX_MIN_VOCAB_RATIO > model_config.vocab_size:
        train_config = dataclasses.replace(train_config, sampled_softmax=0)
        notes.append(f"the vocabulary ({model_config.vocab_size:,} ids) is small enough for the full softmax; "
                     f"the preset's sampled softmax ({sampled} classes) is off")
    if train_config.sampled_softmax >= model_config.vocab_size:
        raise UsageError(f"--sampled-softmax {train_config.sampled_softmax} must be below the vocabulary size "
                         f"({model_config.vocab_size}); use about a tenth of it, or 0 for the full softmax")
    notes.extend(_skipped_notes(data))
    if data.valid_fraction == 0 and train_config.valid is None:
        notes.append(f"corpus has {scan.lines} lines, too few to hold some out; training on all, no validation")
    plan = _counted(RunPlan, run=run, data=data, scan=scan, tokenizer=tokenizer, model_config=model_config,
                    train_config=train_config, overwrite=overwrite, notes=tuple(notes), collective=collective)
    batches = plan.worker_steps or -(-plan.train_counts.examples // train_config.batch_size)
    scaled, note = scaled_to_steps(train_config, batches, min_steps, plan.valid_counts is not None)
    if note:
        plan = dataclasses.replace(plan, train_config=scaled, notes=(*plan.notes, note))
    return plan


def _skipped_notes(data: TrainingData):
    for corpus in filter(None, (data.corpus, data.valid_corpus)):
        if corpus.skipped:
            names = ", ".join(str(p) for p in corpus.skipped[:5]) + (" ..." if len(corpus.skipped) > 5 else "")
            yield (f"skipped {len(corpus.skipped)} file(s) that are not .txt in the corpus directories: {names} "
                   "(only *.txt files are read; rename or convert them to include them)")


def plan_resume(out: str | Path, *, epochs: int | None = None, finish: bool = False, collective=None,
                options: Mapping[str, Any] | None = None) -> RunPlan:
    """A plan that continues ``out`` from its last checkpoint (``finish``: train no further, just finalise).
    ``options``: the command's other settings, each accepted when it is the run's own (``check_resume_options``).

    Distributed (``collective``): the chief reads the run directory and every worker gets what it read."""
    run = RunDir(out)
    saved_run = on_chief(collective, lambda: _read_run(run))
    saved, state = saved_run["config"], saved_run["state"]
    check_resume_options(options or {}, saved, saved_run["tokenizer"])
    tokenizer = Tokenizer.from_text(saved_run["vocab"], saved_run["tokenizer"], source=str(run.path))
    train_config = TrainConfig.from_saved(saved["training"], saved.get("workdir"))
    if epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=epochs)
    if (options or {}).get("threads") is not None:
        train_config = dataclasses.replace(train_config, threads=options["threads"])
    _check_workers(train_config, collective)
    workers = 1 if collective is None else collective.cluster.count
    if saved["corpus"].get("workers", 1) != workers:
        raise RunDirError(f"{run.path} was trained by {saved['corpus'].get('workers', 1)} worker(s); resume it "
                          f"with as many (each reads its own part of the corpus), not {workers}")
    data, scan = _scan(train_config, collective)
    if scan.sha256 != saved["corpus"]["sha256"]:
        raise CorpusError(
            f"cannot resume {run.path}: the corpus ({data.corpus.name}) changed since the run started; "
            "restore it or start a new run"
        )
    data.use_tokenizer(tokenizer)
    initial_epoch, history, checkpoint = 0, {}, None
    if state is not None:
        initial_epoch, history, checkpoint = state["epoch"], state["history"], run.checkpoints / state["checkpoint"]
        if finish or (initial_epoch >= train_config.epochs and not (run.model.exists() and run.report.exists())):
            # --finish, or a run stopped after its last epoch but before its model and report were both
            # written (a kill): nothing left to train, so resuming writes them from the checkpoint.
            train_config = dataclasses.replace(train_config, epochs=initial_epoch)
        elif initial_epoch >= train_config.epochs:
            raise RunDirError(
                f"{run.path} already completed {initial_epoch} of {train_config.epochs} epochs; "
                "pass --epochs N with a larger N to train further, or --finish to write its model and report"
            )
    elif finish:
        raise RunDirError(f"{run.path} has no completed epoch to finish at; resume it without --finish to train")
    return _counted(RunPlan, run=run, data=data, scan=scan, tokenizer=tokenizer,
                    model_config=ModelConfig.from_dict(saved["model"]), train_config=train_config,
                    initial_epoch=initial_epoch, history=history, checkpoint=checkpoint, collective=collective)


def _read_run(run: RunDir) -> dict:
    """What resuming needs from a run directory, as JSON (sent to the other workers of a distributed run)."""
    if not run.path.is_dir():
        raise RunDirError(f"cannot resume: {run.path} does not exist; start a run with `nextword train --out {run.path}`")
    tokenizer = Tokenizer.load(run.path)
    state = read_json(run.state, what="checkpoint state") if run.state.exists() else None
    return {"config": run.read_config(), "vocab": tokenizer.vocab_text(), "tokenizer": tokenizer.settings(),
            "state": state}


# --------------------------------------------------------------------- distributed training's agreements
def _check_workers(train_config: TrainConfig, collective) -> None:
    if collective is not None:
        check_workers(train_config, collective.cluster.count)


def check_workers(train_config: TrainConfig, count: int) -> None:
    """Distributed training's rule on the settings (before any worker connects, where it can)."""
    if train_config.batch_size % count:
        raise UsageError(f"--batch-size {train_config.batch_size} is the global batch: it must divide evenly among "
                         f"the {count} workers (e.g. {train_config.batch_size - train_config.batch_size % count or count})")


def _agreed_max(collective, compute) -> int:
    if collective is None:
        return compute()
    return max(collective.agree(compute))


def _fit_tokenizer(data: TrainingData, config: TokenizerConfig, collective) -> Tokenizer:
    """The vocabulary of the whole corpus: every worker's word counts, merged in corpus order (the shards
    are consecutive byte ranges), so it equals one machine's ``Tokenizer.fit`` over the same lines."""
    if collective is None:
        return data.fit_tokenizer(config)
    shards = collective.agree(lambda: list(data.word_counts(config).items()))
    merged: Counter[str] = Counter()
    for shard in shards:
        for word, count in shard:
            merged[word] += count
    tokenizer = Tokenizer.from_counts(merged, config)
    if tokenizer.word_count == 0:
        raise CorpusError(f"corpus {data.corpus.name} has no words left after filtering punctuation; give it real text")
    data.use_tokenizer(tokenizer)
    return tokenizer


def training_data(train_config: TrainConfig) -> TrainingData:
    """The corpus and its train/validation split as ``train_config`` describes them (files not read yet)."""
    corpus = Corpus.default() if train_config.corpus is None else Corpus.from_paths(train_config.corpus)
    valid = None if train_config.valid is None else Corpus.from_paths(train_config.valid)
    return TrainingData(corpus, valid, seed=train_config.seed, valid_fraction=train_config.valid_fraction)


def _scan(train_config: TrainConfig, collective=None) -> tuple[TrainingData, CorpusScan]:
    data = training_data(train_config)
    if collective is None:
        return TrainingData.scan(data.corpus, data.valid_corpus, seed=data.seed, valid_fraction=data.valid_fraction)
    cluster = collective.cluster
    shard = data.sharded(cluster.index, cluster.count)

    def scan_shard() -> dict:
        scan = shard.corpus.scan(allow_empty=True)
        if shard.valid_corpus is not None:
            shard.valid_corpus.scan(allow_empty=True)
        return dataclasses.asdict(scan)

    scans = [CorpusScan(**{**s, "files": tuple(s["files"])}) for s in collective.agree(scan_shard)]
    lines = sum(s.lines for s in scans)
    if lines == 0:
        raise CorpusError(f"corpus {data.corpus.name} is empty (no non-blank lines); give it some text")
    # The shards' fingerprints in order: the same corpus read by the same number of workers gives the same one.
    digest = hashlib.sha256("".join(s.sha256 for s in scans).encode("ascii")).hexdigest()
    scan = dataclasses.replace(scans[0], lines=lines, sha256=digest)
    if data.valid_corpus is not None or lines < MIN_LINES_FOR_SPLIT:
        shard.valid_fraction = 0.0
    return shard, scan


def _counted(cls, **fields) -> RunPlan:
    data, mode, window = fields["data"], fields["train_config"].mode, fields["model_config"].window
    collective = fields.get("collective")

    def count() -> tuple[SplitCounts, SplitCounts | None]:
        # Validation always measures the line context (no history): what the keyboard serves.
        train = data.count(mode, window, validation=False, history=fields["train_config"].sentence_history)
        return train, data.count(mode, window, validation=True) if data.has_validation else None

    if collective is None:
        train_counts, valid_counts = count()
        worker_steps = None
    else:
        shards = collective.agree(lambda: [dataclasses.asdict(c) if c else None for c in count()])
        train_counts = _total([SplitCounts(**train) for train, _ in shards])
        valid_counts = _total([SplitCounts(**valid) for _, valid in shards if valid]) if shards[0][1] else None
        worker_batch = fields["train_config"].batch_size // collective.cluster.count
        worker_steps = min(train["examples"] for train, _ in shards) // worker_batch
        if train_counts.examples and worker_steps == 0:
            raise CorpusError(f"a worker's part of the corpus gives fewer than {worker_batch} examples (its share of "
                              "the global batch); use fewer workers, a smaller --batch-size or more text")
    if train_counts.examples == 0:
        raise CorpusError(
            f"corpus {data.corpus.name} yields no training examples in {mode} mode "
            "(every line has a single word, or the text is shorter than the window); give it longer text"
        )
    return cls(train_counts=train_counts, valid_counts=valid_counts, worker_steps=worker_steps, **fields)


def _total(counts: list[SplitCounts]) -> SplitCounts:
    return SplitCounts(*(sum(getattr(c, f.name) for c in counts) for f in dataclasses.fields(SplitCounts)))
