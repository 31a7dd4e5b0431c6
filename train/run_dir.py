"""The layout of a training run directory, and reading/writing its small files.

    RUN_DIR/
      model.keras          the trained next-word model (loads with safe_mode)
      vocab.txt            one token per line, line number = id
      tokenizer.json       tokenizer settings
      config.json          model + training config (what `--resume` and export read)
      train_report.json    corpus stats, metrics, timings
      history.png          loss / accuracy / perplexity curves
      checkpoints/         last completed epoch, for `--resume`
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nextword import __version__
from nextword.config import CONFIG_FORMAT_VERSION
from nextword.errors import RunDirError
from nextword.fileio import atomic_write_text

RUN_FORMAT = "nextword.run"


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    model = property(lambda self: self.path / "model.keras")
    config = property(lambda self: self.path / "config.json")
    report = property(lambda self: self.path / "train_report.json")
    history_plot = property(lambda self: self.path / "history.png")
    checkpoints = property(lambda self: self.path / "checkpoints")
    state = property(lambda self: self.path / "checkpoints" / "state.json")

    def checkpoint_for(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:04d}.keras"

    def best_weights_for(self, epoch: int) -> Path:
        """Early stopping's best weights, saved when epoch ``epoch`` (from 1) improved the monitored loss."""
        return self.checkpoints / f"best-epoch-{epoch:04d}.weights.h5"

    def best_weights_files(self) -> dict[int, Path]:
        """Epoch -> best-weights file, for every one on disk."""
        return {int(p.name[len("best-epoch-"):-len(".weights.h5")]): p
                for p in self.checkpoints.glob("best-epoch-*.weights.h5")}

    def saved_epochs(self) -> int:
        """Epochs committed on disk (the state file is the commit point), 0 if none or unreadable.

        What an interrupted run reports: the in-memory history may already hold an epoch whose
        checkpoint was still being written when the signal came.
        """
        try:
            return int(json.loads(self.state.read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, TypeError, KeyError):
            return 0

    def written_files(self) -> list[Path]:
        """Every file a run writes that exists here: what ``--overwrite`` may delete, and nothing else."""
        files = [self.model, self.config, self.report, self.history_plot, self.path / "vocab.txt",
                 self.path / "tokenizer.json", self.state, *self.checkpoints.glob("epoch-*.keras"),
                 *self.best_weights_files().values()]
        return [f for f in files if f.is_file()]

    # ------------------------------------------------------------- creating
    def ensure_new(self, overwrite: bool) -> None:
        """Refuse to train over an existing run unless asked to; check before any work is done."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {self.path} exists and is not a directory; choose another path")
        if self.path.is_dir() and any(self.path.iterdir()):
            if not self.config.exists():
                raise RunDirError(f"--out {self.path} is not empty and holds no nextword run; choose a new or "
                                  "empty directory (nextword never deletes files it did not write)")
            if not overwrite:
                raise RunDirError(f"--out {self.path} holds a nextword run; use --resume to continue it, or "
                                  "--overwrite to replace it (overwrite=True in Python)")
        _check_writable(self.path)

    def create(self, overwrite: bool) -> None:
        if overwrite and self.path.exists():
            # Only what a run writes: a user's notes beside it survive.
            for path in self.written_files():
                path.unlink()
            self.remove_stale_temp_files()
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(f"cannot create {self.path}: {err.strerror}; choose a writable --out") from None

    def remove_stale_temp_files(self) -> list[Path]:
        """Temporary files of a process killed mid-write (never under a final name): safe to delete."""
        stale = [p for folder in (self.path, self.checkpoints) if folder.is_dir()
                 for p in folder.glob(".*.tmp*") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    # ------------------------------------------------------------ json files
    def write_config(self, *, model: dict, training: dict, corpus: dict, workdir: str | None = None) -> None:
        """``workdir``: the directory the corpus paths are relative to (default: the current one), so that
        the run finds its corpus when exported or resumed from elsewhere."""
        payload = {
            "format": RUN_FORMAT,
            "format_version": CONFIG_FORMAT_VERSION,
            "nextword_version": __version__,
            "model": model,
            "training": training,
            "corpus": corpus,
            "workdir": workdir or _current_dir(),
        }
        write_json(self.config, payload)

    def read_config(self) -> dict:
        data = read_json(self.config, what="run config")
        if data.get("format") != RUN_FORMAT:
            raise RunDirError(f"{self.config} is not a nextword run config")
        if data.get("format_version") != CONFIG_FORMAT_VERSION:
            raise RunDirError(
                f"{self.path} was written by nextword {data.get('nextword_version')} in run format "
                f"{data.get('format_version')}; this nextword ({__version__}) reads format {CONFIG_FORMAT_VERSION}"
            )
        return data


def _current_dir() -> str | None:
    try:
        return str(Path.cwd())
    except OSError:  # the directory was removed under the process: relative paths stay as they were typed
        return None


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path, *, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{what} {path} is missing; is {path.parent} a complete nextword run?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{what} {path} is unreadable or corrupt ({err})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{what} {path} is corrupt (not a JSON object)")
    return data


def _check_writable(path: Path) -> None:
    """Fail now, before training, if the run directory could not be created or written."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RunDirError(f"cannot create {path}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot write to {probe}; choose a writable --out")
