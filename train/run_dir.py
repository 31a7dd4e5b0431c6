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

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nextword import __version__
from nextword.config import CONFIG_FORMAT_VERSION, ModelConfig
from nextword.errors import NextwordError, RunDirError
from nextword import runs
from nextword.fileio import atomic_write_text, read_file
from nextword.records import Record, RecordError, header_mismatch
from nextword.tokenizer import CONFIG_FILE as TOKENIZER_FILE
from nextword.tokenizer import VOCAB_FILE
from nextword.train.settings import TrainConfig

RUN_FORMAT = "nextword.run"


@dataclass(frozen=True)
class CorpusRecord(Record):
    """The corpus a run was trained on, as its first pass found it (``corpus.CorpusScan``)."""

    OMIT_IF_NONE = ("workers",)

    name: str | None = None
    files: tuple = ()
    bytes: int = 0
    lines: int = 0
    sha256: str = ""
    workers: int | None = None  # a distributed run: each worker reads its own part

    @property
    def worker_count(self) -> int:
        return self.workers or 1


@dataclass(frozen=True)
class SavedRun(Record):
    """config.json: what a run was trained as, read by ``--resume``, export, eval and bench."""

    model: ModelConfig
    training: TrainConfig  # as saved: corpus paths as they were typed (``train_config()`` finds them from here)
    corpus: CorpusRecord
    workdir: str | None = None  # the directory relative corpus paths are relative to
    format: str = RUN_FORMAT
    format_version: int = CONFIG_FORMAT_VERSION
    nextword_version: str = __version__

    def train_config(self) -> TrainConfig:
        """The training settings with the corpus paths as found from here (a run moved or used elsewhere)."""
        return self.training.located(self.workdir)


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    model = property(lambda self: self.path / runs.MODEL_FILE)
    config = property(lambda self: self.path / runs.CONFIG_FILE)
    report = property(lambda self: self.path / runs.REPORT_FILE)
    history_plot = property(lambda self: self.path / runs.HISTORY_PLOT)
    checkpoints = property(lambda self: self.path / runs.CHECKPOINTS)
    state = property(lambda self: self.path / runs.CHECKPOINTS / "state.json")

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
        files = [self.model, self.config, self.report, self.history_plot, self.path / VOCAB_FILE,
                 self.path / TOKENIZER_FILE, self.state, *self.checkpoints.glob("epoch-*.keras"),
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
    def write_config(self, saved: SavedRun) -> None:
        """A ``workdir`` of None is the current directory, so that the run finds its corpus when exported
        or resumed from elsewhere."""
        if saved.workdir is None:
            saved = dataclasses.replace(saved, workdir=_current_dir())
        payload = saved.to_dict()
        # The header first, as every nextword file has it.
        header = {key: payload.pop(key) for key in ("format", "format_version", "nextword_version")}
        write_json(self.config, {**header, **payload})

    def read_config(self) -> SavedRun:
        data = read_json(self.config, what="run config")
        mismatch = header_mismatch(data, format=RUN_FORMAT, version=CONFIG_FORMAT_VERSION)
        if mismatch == "format":
            raise RunDirError(f"{self.config} is not a nextword run config")
        if mismatch:  # format 1 is the only one written so far: an older or newer run cannot be read
            raise RunDirError(
                f"{self.path} was written by nextword {data.get('nextword_version')} in run format "
                f"{data.get('format_version')}; this nextword ({__version__}) reads format {CONFIG_FORMAT_VERSION}"
            )
        try:
            return SavedRun.from_dict(data)
        except (RecordError, NextwordError) as err:
            raise RunDirError(f"{self.config}: {err}") from None


def _current_dir() -> str | None:
    try:
        return str(Path.cwd())
    except OSError:  # the directory was removed under the process: relative paths stay as they were typed
        return None


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path, *, what: str) -> dict:
    text = read_file(path, RunDirError, what=what, fix=f"is {path.parent} a complete nextword run?",
                     missing=f"{what} {path} is missing; is {path.parent} a complete nextword run?", text=True)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunDirError(f"{what} {path} is corrupt ({err})") from None
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
