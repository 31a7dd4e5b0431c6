"""The short fuzz run: mutated model files on every engine of this environment, in child processes.

Run by `tests/parity/run.sh` in the runtime-only environments (tflite-runtime 2.14 is the one that
crashed on re-signed flatbuffers); `benchmarks/fuzz.py` is the long run behind docs/reliability.md.
Every mutant must end in a typed refusal or in suggestions whose probabilities are finite: no crash,
no hang, no untyped exception.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nextword.modelfile.contract import PRECISIONS
from nextword.engines import installed_engines

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fuzz  # noqa: E402

from test_parity import MANIFEST, model_path  # noqa: E402

#: Mutants per (file, kind, re-signed or not): 5 x 8 kinds x 2 = 80 per TFLite file, 70 per ONNX file.
MUTANTS = 5
#: Two fixtures: the seed-sized vocabulary, and two layers with <eos>.
MODELS = ("tiny", "deep")


def seeds(fmt: str) -> list[Path]:
    if MANIFEST is None:
        return []
    return [model_path(model, fmt, precision) for model in MODELS if model in MANIFEST["models"]
            for precision in PRECISIONS[fmt]]


@pytest.mark.parametrize("fmt", list(PRECISIONS))
def test_no_mutant_crashes_hangs_or_escapes_untyped(fmt):
    if not installed_engines(fmt):
        pytest.skip(f"no {fmt} engine in this environment")
    files = seeds(fmt)
    if not files:
        pytest.skip("no parity fixtures (build_fixtures.py)")
    summary = fuzz.campaign(files, MUTANTS, sys.executable, timeout=60.0, seed=1, log=lambda _: None)
    totals = summary["totals"]
    assert sum(totals.values()) >= 200, totals  # hundreds of files per engine
    assert totals["refused"] > 0 and totals["accepted"] > 0, totals  # both paths exercised
    assert not any(totals[o] for o in fuzz.FAILURES), summary["failures"][:5]
