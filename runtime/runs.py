"""What a path given to a command is: a training run, an export folder, a Keras model file or a model file.

    path_kind("runs/default")            # "run": a directory with a run's config.json
    path_kind("models/default")          # "folder": any other directory (an export folder's files)
    path_kind("my_model.keras")          # "keras": a Keras user's model file (.keras, .h5, .hdf5)
    path_kind("model.int8.tflite")       # "file": any other file, read as a nextword model file
    path_kind("runs/typo")               # "missing": nothing there (a missing "x.keras" is "keras")

The one rule `nextword export`, `eval` and `bench` follow, and the names of a run directory's files, which
``nextword.train.run_dir.RunDir`` lays out: nothing on a device imports training to know them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
REPORT_FILE = "train_report.json"
HISTORY_PLOT = "history.png"
CHECKPOINTS = "checkpoints"
#: A Keras user's model file, by its suffix.
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")

PathKind = Literal["run", "folder", "keras", "file", "missing"]


def path_kind(path: str | Path) -> PathKind:
    """Each command words its own error for a "missing" path (export: no such run directory; eval, bench:
    no such model file), as it names what it expected there."""
    path = Path(path)
    if path.is_dir():
        return "run" if (path / CONFIG_FILE).is_file() else "folder"
    if path.suffix.lower() in KERAS_SUFFIXES:
        return "keras"
    return "file" if path.exists() else "missing"
