"""Loading a finished run directory: its Keras model, tokenizer, config and the text it was trained on.

    loaded = load_run("runs/default")
    loaded.model(tokens)                 # the Keras next-word model
    loaded.text_sources()                # held-out lines, then training lines (for export validation)

Export, `nextword eval RUN_DIR` and `nextword bench RUN_DIR` all read a run through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import keras

from nextword.config import ModelConfig
from nextword.errors import CorpusError, RunDirError, UsageError
from nextword.records import RecordError
from nextword.tokenizer import Tokenizer
from nextword.train.report import TrainReport
from nextword.train.run_dir import RunDir, SavedRun, read_json


@dataclass
class LoadedRun:
    path: Path
    saved: SavedRun  # config.json
    tokenizer: Tokenizer
    config: ModelConfig
    model: keras.Model

    def train_report(self) -> TrainReport | None:
        """train_report.json, or None when it is missing or unreadable (it is informational)."""
        try:
            return TrainReport.from_dict(read_json(RunDir(self.path).report, what="training report"))
        except (RunDirError, RecordError):
            return None

    def text_sources(self) -> list[Iterable[str]]:
        """[held-out lines, training lines] of the run's corpus (split as in training); [] if the corpus is gone."""
        from nextword.train.plan import training_data

        try:
            data = training_data(self.saved.train_config())
        except (CorpusError, UsageError):
            return []
        return [data.valid_lines(), data.train_lines()] if data.has_validation else [data.train_lines()]


def load_run(run_dir: str | Path) -> LoadedRun:
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise RunDirError(f"run directory {run.path} does not exist; train one with `nextword train --out {run.path}`")
    saved = run.read_config()  # its model config checked as it is read
    if not run.model.exists():
        raise RunDirError(f"{run.path} has no model.keras: the run did not finish; "
                          f"finish it with `nextword train --out {run.path} --resume`")
    tokenizer = Tokenizer.load(run.path)
    config = saved.model
    import nextword.train.model  # noqa: F401  (registers TiedEmbedding, which runs of nextword <= 0.1 saved)

    try:
        model = keras.models.load_model(run.model, safe_mode=True, compile=False)
    except Exception as err:  # a damaged or foreign archive raises many types
        raise RunDirError(f"{run.model} cannot be loaded as a Keras model ({' '.join(str(err).split())[:200]})"
                          ) from None
    expected_layers = {"embedding", "probs", *(f"lstm_{i}" for i in range(config.num_layers))}
    names = {layer.name for layer in model.layers}
    if not expected_layers <= names or model.output_shape != (None, config.vocab_size) \
            or model.input_shape != (None, config.window):
        raise RunDirError(f"{run.model} is not the nextword model its config.json describes "
                          f"(layers {sorted(names)}, input {model.input_shape}, output {model.output_shape})")
    if tokenizer.vocab_size != config.vocab_size:
        raise RunDirError(f"{run.path}: vocab.txt has {tokenizer.vocab_size} tokens but the model outputs "
                          f"{config.vocab_size}; the run directory is inconsistent")
    return LoadedRun(run.path, saved, tokenizer, config, model)
