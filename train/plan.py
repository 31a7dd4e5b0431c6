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
from nextword.tokenizer import Tokenizer, TokenizerConfig
from nextword.train.corpus import MIN_LINES_FOR_SPLIT, Corpus, CorpusScan
from nextword.train.data import SplitCounts, TrainingData
from nextword.train.distributed import on_chief
from nextword.train.presets import SAMPLED_SOFTMAX_MIN_VOCAB_RATIO
from nextword.train.run_dir import RunDir, SavedRun, read_json
from nextword.train.settings import (  # noqa: F401 (the run's settings: nextword.train.plan has always offered them)
    ADJUSTED_BY_PLAN,
    MODEL_SETTINGS,
    RESUMABLE,
    TOKENIZER_SETTINGS,
    TrainConfig,
    check_resume_options,
    default_of,
    preset_min_steps,
    preset_settings,
    scaled_to_steps,
    settings_from_options,
)


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
    saved, state = SavedRun.from_dict(saved_run["config"]), saved_run["state"]
    check_resume_options(options or {}, saved, saved_run["tokenizer"])
    tokenizer = Tokenizer.from_text(saved_run["vocab"], saved_run["tokenizer"], source=str(run.path))
    train_config = saved.train_config()
    if epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=epochs)
    if (options or {}).get("threads") is not None:
        train_config = dataclasses.replace(train_config, threads=options["threads"])
    _check_workers(train_config, collective)
    workers = 1 if collective is None else collective.cluster.count
    if saved.corpus.worker_count != workers:
        raise RunDirError(f"{run.path} was trained by {saved.corpus.worker_count} worker(s); resume it "
                          f"with as many (each reads its own part of the corpus), not {workers}")
    data, scan = _scan(train_config, collective)
    if scan.sha256 != saved.corpus.sha256:
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
                    model_config=saved.model, train_config=train_config,
                    initial_epoch=initial_epoch, history=history, checkpoint=checkpoint, collective=collective)


def _read_run(run: RunDir) -> dict:
    """What resuming needs from a run directory, as JSON (sent to the other workers of a distributed run)."""
    if not run.path.is_dir():
        raise RunDirError(f"cannot resume: {run.path} does not exist; start a run with `nextword train --out {run.path}`")
    tokenizer = Tokenizer.load(run.path)
    state = read_json(run.state, what="checkpoint state") if run.state.exists() else None
    return {"config": run.read_config().to_dict(), "vocab": tokenizer.vocab_text(), "tokenizer": tokenizer.settings(),
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
