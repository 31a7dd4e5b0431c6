"""The parity matrix's bookkeeping: which cells it expects, and that a skipped arm64 column is said, not passed."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "parity"))
import matrix  # noqa: E402


def row(model: str, engine: str, machine: str, fmt: str = "tflite", precision: str = "float32") -> dict:
    return {"model": model, "format": fmt, "precision": precision, "engine": engine, "machine": machine,
            "python": "3.11", "numpy": "2", "form": "window", "max_abs_diff": 0.0, "top1_agreement": 1.0,
            "top5_identical": 1.0, "top5_overlap": 1.0, "window_vs_step_max_diff": 0.0,
            "suggest_equals_raw": True, "status": "ok"}


def every_native_row(models) -> list[dict]:
    return [row(m, e, platform.machine(), f, p) for m in models for f, ps in matrix.PRECISIONS.items()
            for p in ps for e in matrix.engines(f)]


def test_the_arm64_column_is_expected_for_its_fixtures_and_a_skip_is_printed(tmp_path, capsys):
    models = ["tiny", "keras-lstm"]
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {m: {} for m in models}}))
    (tmp_path / "rows-x.jsonl").write_text("\n".join(json.dumps(r) for r in every_native_row(models)))
    assert matrix.main(tmp_path) == 1  # the arm64 cells of tiny are missing (keras-lstm is not in the column)
    out = capsys.readouterr().out
    assert "('tiny', 'tflite', 'float32', 'tflite-runtime', 'aarch64')" in out and "'keras-lstm', 'tflite'" \
        not in out.split("missing cell")[-1]
    (tmp_path / "arm64-skipped.txt").write_text("arm64 column skipped: binfmt_misc is not mounted\n")
    assert matrix.main(tmp_path) == 0
    assert "arm64 column skipped: binfmt_misc is not mounted" in capsys.readouterr().out
    arm = [row("tiny", e, "aarch64", f, p) for f, ps in matrix.PRECISIONS.items() for p in ps
           for e in matrix.ENGINES[f]]
    (tmp_path / "arm64-skipped.txt").unlink()
    (tmp_path / "rows-arm64.jsonl").write_text("\n".join(json.dumps(r) for r in arm))
    assert matrix.main(tmp_path) == 0
    arm[0]["status"] = "FAIL"
    (tmp_path / "rows-arm64.jsonl").write_text("\n".join(json.dumps(r) for r in arm))
    assert matrix.main(tmp_path) == 1
