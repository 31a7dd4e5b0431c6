"""What a training run tells a person: the console summary, train_report.json, history.png."""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nextword import __version__
from nextword.config import ModelConfig
from nextword.fileio import atomic_path
from nextword.records import Record
from nextword.tokenizer import Tokenizer


def keras_verbosity() -> int:
    """Keras' live progress bar in a terminal; in logs and CI only the trainer's line per epoch."""
    return 1 if sys.stdout.isatty() else 0


def summary_line(corpus_name: str, tokenizer: Tokenizer, model_config: ModelConfig, parameters: int,
                 train_counts, mode: str) -> str:
    return (
        f"corpus: {corpus_name} | {train_counts.lines} training lines, {train_counts.tokens} tokens | "
        f"vocab {tokenizer.vocab_size} | window {model_config.window} | "
        f"{model_config.num_layers}x LSTM({model_config.hidden_size}), embedding {model_config.embedding_dim}, "
        f"{parameters:,} parameters | {mode} mode: {train_counts.examples} examples, {train_counts.targets} targets"
    )


@dataclass(frozen=True)
class CorpusStats(Record):
    name: str
    files: list
    train_lines: int
    train_tokens: int
    valid_lines: int = 0
    valid_tokens: int = 0
    train_unknown_rate: float = 0.0
    valid_unknown_rate: float | None = None
    validation: str = "none"  # "file", "held-out lines" or "none"


@dataclass(frozen=True)
class TrainingStats(Record):
    mode: str
    epochs_requested: int
    epochs_completed: int
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int | None = None
    train_examples: int | None = None
    train_targets: int | None = None


@dataclass(frozen=True)
class BestEpoch(Record):
    epoch: int
    val_loss: float
    val_perplexity: float


@dataclass
class TrainReport(Record):
    """train_report.json: what a run measured (informational: nothing is loaded from it but the numbers)."""

    OMIT_IF_NONE = ("distributed",)

    nextword_version: str
    run_dir: str
    corpus: CorpusStats
    vocab_size: int
    model: dict  # ModelConfig.to_dict(), as config.json holds it
    parameters: int
    training: TrainingStats
    final: dict = field(default_factory=dict)  # the last epoch's metrics
    best: BestEpoch | None = None  # the epoch with the lowest val_loss
    wall_seconds: float = 0.0
    fit_seconds: float = 0.0
    # Targets are predicted tokens: the honest unit for comparing modes.
    targets_per_second: float | None = None
    # Median over the epochs after the first (validation included); None for a 1-epoch run.
    steady_targets_per_second: float | None = None
    history: dict = field(default_factory=dict)
    distributed: dict | None = None  # a run on several workers: engine, workers, batches, shards


def build_report(*, run, data, tokenizer: Tokenizer, model_config: ModelConfig, train_config, parameters: int,
                 train_counts, valid_counts, history: dict, fit_seconds: float, wall_seconds: float,
                 resumed_from: int) -> TrainReport:
    epochs_done = len(history.get("loss", []))
    epochs_this_session = epochs_done - resumed_from
    final = {key: values[-1] for key, values in history.items() if key != "epoch_seconds" and values}
    best = None
    if history.get("val_loss"):
        best_epoch = min(range(epochs_done), key=lambda i: history["val_loss"][i])
        best = BestEpoch(epoch=best_epoch + 1, val_loss=history["val_loss"][best_epoch],
                         val_perplexity=math.exp(history["val_loss"][best_epoch]))
    targets_seen = train_counts.targets * epochs_this_session
    # The first epoch pays for tracing the graph; on a small corpus that dominates the mean.
    later_epochs = history.get("epoch_seconds", [])[1:]
    steady = round(train_counts.targets / statistics.median(later_epochs), 1) if later_epochs else None
    corpus = CorpusStats(
        name=data.corpus.name,
        files=[str(p) for p in data.corpus.files],
        train_lines=train_counts.lines,
        train_tokens=train_counts.tokens,
        valid_lines=valid_counts.lines if valid_counts else 0,
        valid_tokens=valid_counts.tokens if valid_counts else 0,
        train_unknown_rate=train_counts.unknown / max(train_counts.tokens, 1),
        valid_unknown_rate=(valid_counts.unknown / max(valid_counts.tokens, 1)) if valid_counts else None,
        validation="file" if data.valid_corpus else ("held-out lines" if data.valid_fraction else "none"),
    )
    training = TrainingStats(
        mode=train_config.mode,
        epochs_requested=train_config.epochs,
        epochs_completed=epochs_done,
        stopped_early=epochs_done < train_config.epochs,
        resumed_from_epoch=resumed_from,
        batch_size=train_config.batch_size,
        learning_rate=train_config.learning_rate,
        seed=train_config.seed,
        train_examples=train_counts.examples,
        train_targets=train_counts.targets,
    )
    return TrainReport(
        nextword_version=__version__, run_dir=str(run.path), corpus=corpus, vocab_size=tokenizer.vocab_size,
        model=model_config.to_dict(), parameters=parameters, training=training, final=final, best=best,
        wall_seconds=round(wall_seconds, 3), fit_seconds=round(fit_seconds, 3),
        targets_per_second=round(targets_seen / fit_seconds, 1) if fit_seconds > 0 else None,
        steady_targets_per_second=steady, history=history,
    )


def plot_title(report: TrainReport) -> str:
    model, training = report.model, report.training
    return (f"{Path(report.run_dir).name}: {training.mode} mode, vocab {report.vocab_size}, "
            f"{model['num_layers']}x LSTM({model['hidden_size']}), {training.epochs_completed} epochs")


def plot_history(history: dict, path: Path, title: str = "") -> None:
    """history.png: see ``history_figure``."""
    import matplotlib.pyplot as plt

    fig = history_figure(history, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def history_figure(history: dict, title: str = ""):
    """Loss, accuracy and perplexity per epoch, training and validation; the best validation epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [("loss", "Loss (cross-entropy)"), ("accuracy", "Top-1 accuracy"), ("perplexity", "Perplexity")]
    epochs = range(1, len(history.get("loss", [])) + 1)
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 4.1))
    val_loss = history.get("val_loss")
    best_epoch = 1 + min(range(len(val_loss)), key=val_loss.__getitem__) if val_loss else None
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    for ax, (key, panel_title) in zip(axes, panels):
        for prefix, label, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = history.get(prefix + key)
            if values:
                ax.plot(epochs, values, style, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linewidth=0.8, linestyle=":", label=f"best validation ({best_epoch})")
        if key == "perplexity":
            ax.set_yscale("log")
            # Plain numbers (218, 250), not 2.18 x 10^2, on the short ranges of a short run.
            low, high = ax.get_ylim()
            ax.yaxis.set_major_formatter(plain)
            # Within one decade the minor ticks are the only ticks: label them; across decades they would crowd.
            ax.yaxis.set_minor_formatter(plain if high / max(low, 1e-12) < 10 else matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(panel_title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
