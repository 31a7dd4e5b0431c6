"""The export folder: one model's files and the report that lists them, never anything else's.

- A new or empty folder is used as is.
- A folder holding an export of the *same* model (same ``model.keras`` bytes) is added to: files
  exported again are replaced, the others stay, and ``export_report.json`` lists them all.
- A folder holding another model's export is refused, unless ``overwrite``: then the files that
  export wrote (named in its report) are deleted first, and nothing else.
- A folder of anything else (documents, a run directory) is refused, overwrite or not.
- The same model exported in an older model-file format (the report's ``model_format_version``;
  format 1 had none): the files that export wrote are deleted, unusable by this nextword.
The report is rewritten after every file placed, so a killed export leaves a folder that says
what it holds.
"""

from __future__ import annotations

import json
from pathlib import Path

from nextword.modelfile.contract import MODEL_FORMAT_VERSION, model_file_names
from nextword.errors import RunDirError
from nextword.fileio import atomic_write_text, ensure_writable_dir

REPORT_NAME = "export_report.json"


class ExportDir:
    def __init__(self, path: str | Path, model_sha256: str, run_dir: Path) -> None:
        self.path = Path(path)
        self.report_path = self.path / REPORT_NAME
        self.model_sha256 = model_sha256
        self.run_dir = run_dir
        #: Report entries of files already here from an earlier export of the same model.
        self.kept_entries: list[dict] = []

    def prepare(self, overwrite: bool) -> None:
        """Check (and with ``overwrite`` clear) the folder before any work; see the module doc."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {self.path} exists and is not a directory; choose another path")
        if self.path.is_dir() and any(self.path.iterdir()):
            previous = self._previous_report()
            ours = [p for p in self.path.iterdir() if p.name in model_file_names()]
            if previous is None and not ours:
                raise RunDirError(f"--out {self.path} is not empty and holds no nextword export; choose a new or "
                                  "empty directory (nextword never deletes files it did not write)")
            same_model = previous is not None and previous.get("model_sha256") == self.model_sha256
            if not same_model:
                source = previous.get("run_dir", "another run") if previous else "an unknown run"
                if not overwrite:
                    raise RunDirError(f"--out {self.path} holds model files exported from {source}, another model "
                                      f"than {self.run_dir}; use another --out, or --overwrite to replace them")
                listed = {name for entry in (previous or {}).get("files", []) for name in entry.get("files", [])}
                for path in ours:
                    if previous is None or path.name in listed:
                        path.unlink()
                self.report_path.unlink(missing_ok=True)
            elif previous.get("model_format_version") != MODEL_FORMAT_VERSION:
                # The same model, exported by a nextword that wrote another model-file format (format 1 had
                # ONNX step companions): files this nextword refuses. Exporting again replaces all of them.
                listed = {name for entry in previous.get("files", []) for name in entry.get("files", [])}
                for path in ours:
                    if path.name in listed:
                        path.unlink()
            else:
                self.kept_entries = [e for e in previous.get("files", [])
                                     if all((self.path / name).is_file() for name in e.get("files", []))]
        try:
            ensure_writable_dir(self.path)
        except OSError as err:
            raise RunDirError(f"cannot write to --out {self.path}: {err.strerror or err}; choose a writable "
                              "directory") from None
        for stale in self.path.glob(".model*.tmp*"):  # left by an export that was killed mid-write
            stale.unlink(missing_ok=True)

    def _previous_report(self) -> dict | None:
        try:
            data = json.loads(self.report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_report(self, report: dict, entries: list[dict]) -> dict:
        """The report with this export's entries plus the kept ones (replaced by name), written atomically."""
        new_names = {entry["path"] for entry in entries}
        files = [e for e in self.kept_entries if e.get("path") not in new_names] + entries
        full = {**report, "model_sha256": self.model_sha256, "model_format_version": MODEL_FORMAT_VERSION, "files": files,
                "passed": all(e.get("passed", False) for e in files)}
        atomic_write_text(self.report_path, json.dumps(full, indent=2, ensure_ascii=False) + "\n")
        return full
