"""A training run's settings (``TrainConfig``) and every rule about them: presets, the ``<eos>`` default,
scaling a preset to a corpus, and what ``--resume`` may change, so that the library and the CLI refuse the same
things with the same words. Nothing here reads a corpus (``plan`` does).

    TrainConfig(mode="stream", corpus=("notes.txt",), epochs=10)
    settings_from_options({"preset": "small", "epochs": 3})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nextword.config import ModelConfig
from nextword.errors import UsageError
from nextword.tokenizer import KERAS_FILTERS, TokenizerConfig
from nextword.train import sequences
from nextword.train.presets import MAX_SCALED_EPOCHS, MIN_STEPS, SCALED_EARLY_STOPPING
from nextword.train.presets import preset as named_preset

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
    def from_dict(cls, training: dict) -> TrainConfig:
        """The settings as a run saved them (``config.json``'s ``training``): lists back to tuples."""
        if not isinstance(training, dict):
            raise UsageError("the training settings must be a JSON object")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in training.items()})
        except TypeError as err:
            raise UsageError(f"the training settings are not this nextword's ({err})") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def located(self, workdir: str | None) -> TrainConfig:
        """``workdir``: the directory the run was trained from; a relative corpus path that does not exist
        from here is read from there, where it does (a run exported or resumed from another directory)."""
        config = self
        if not workdir:
            return config

        def found(paths: tuple[str, ...] | None) -> tuple[str, ...] | None:
            if paths is None:
                return None
            return tuple(str(Path(workdir) / p) if not Path(p).is_absolute() and not Path(p).exists()
                         and (Path(workdir) / p).exists() else p for p in paths)

        return dataclasses.replace(config, corpus=found(config.corpus), valid=found(config.valid))


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


def check_resume_options(options: Mapping[str, Any], saved, tokenizer: Mapping[str, Any]) -> None:
    """``--resume`` continues with the run's saved settings: the same command plus ``--resume`` works (an
    option given again with the value the run was started with), and one line names every option that
    differs, with the run's value. ``options``: the command's settings (None: not given), ``preset`` and
    ``overwrite`` included; ``saved``: the run's config.json (``run_dir.SavedRun``); ``tokenizer``: its
    tokenizer settings."""
    if options.get("overwrite"):
        raise UsageError("--overwrite starts the run over and --resume continues it: give one of them")
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    # The corpus paths as found from here (a run resumed from another directory: see TrainConfig.located).
    located = saved.train_config()

    def run_value(name: str):
        if name in ("corpus", "valid"):
            return getattr(located, name)
        if name in train_fields:
            return getattr(saved.training, name)
        if name in MODEL_SETTINGS:
            return getattr(saved.model, name)
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
