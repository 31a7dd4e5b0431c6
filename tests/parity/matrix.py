"""Print the parity matrix from every environment's rows, and fail on a missing or failed cell.

    python tests/parity/matrix.py build/parity

Cells are (model, format, precision, engine, machine): this machine's own column for every engine, and the
arm64 column (tests/arm64/run.sh: the Python engines under emulation in a Raspberry Pi OS root) unless that
script wrote why it could not run (`arm64-skipped.txt`), which is then printed, never passed over silently.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from nextword.modelfile.contract import ENGINES, PRECISIONS

#: Engines outside the Python runtime, by format: the web client's ONNX Runtime Web in Chromium (test_web_parity.py).
OTHER_ENGINES = {"onnx": ("onnxruntime-web",)}
#: The Raspberry Pi's architecture, as Python names it there; its column holds the Python runtime's engines.
ARM64 = "aarch64"
#: The fixtures the arm64 column measures (emulation runs each cell ~10x slower): the seed-sized prefix-mode
#: model, the 2,500-word stream-mode one (the int8 kernels a real vocabulary uses), the two-layer one with
#: <eos>, a projection and tied embeddings, and a Keras user's GRU (its own ops). Not keras-lstm, whose ops are
#: the tutorial's LSTM, also in the others. tests/arm64/run.sh reads this list.
ARM64_MODELS = ("tiny", "wide", "deep", "keras-gru")
SKIPPED = "arm64-skipped.txt"


def engines(fmt: str) -> tuple[str, ...]:
    return ENGINES[fmt] + OTHER_ENGINES.get(fmt, ())


def expected_cells(manifest: dict, arm64: bool) -> set[tuple[str, str, str, str, str]]:
    here = platform.machine()
    cells = {(m, f, p, e, here) for m in manifest["models"] for f, ps in PRECISIONS.items() for p in ps
             for e in engines(f)}
    if arm64 and here != ARM64:
        cells |= {(m, f, p, e, ARM64) for m in manifest["models"] if m in ARM64_MODELS
                  for f, ps in PRECISIONS.items() for p in ps for e in ENGINES[f]}
    return cells


def main(root: Path) -> int:
    rows = [json.loads(line) for path in sorted(root.glob("rows-*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    manifest = json.loads((root / "manifest.json").read_text())
    header = (f"{'model':<10} {'format':<7} {'precision':<9} {'engine':<15} {'machine':<8} {'py/numpy':<11} "
              f"{'form':<8} {'max|diff|':>10} {'top1':>7} {'top5=':>7} {'top5∩':>7} {'win~step':>9} "
              f"{'suggest=raw':>11}  status")
    print("\nParity matrix: every exported file on every engine, against the Keras model")
    print(header)
    print("-" * len(header))
    order = {e: i for i, e in enumerate(sum((engines(fmt) for fmt in ENGINES), ()))}
    rows.sort(key=lambda r: (r["model"], r["format"], PRECISIONS[r["format"]].index(r["precision"]),
                             order[r["engine"]], r.get("machine", ""), r["form"]))
    for r in rows:
        env = f"{r['python']}/{r['numpy']}"
        print(f"{r['model']:<10} {r['format']:<7} {r['precision']:<9} {r['engine']:<15} {r.get('machine', '?'):<8} "
              f"{env:<11} {r['form']:<8} {r['max_abs_diff']:>10.2e} {r['top1_agreement']:>7.1%} "
              f"{r['top5_identical']:>7.1%} {r['top5_overlap']:>7.1%} {r['window_vs_step_max_diff']:>9.1e} "
              f"{str(r['suggest_equals_raw']):>11}  {r['status']}")
    skipped = root / SKIPPED
    if skipped.exists():
        print(f"\n{skipped.read_text(encoding='utf-8').strip()}")
    seen = {(r["model"], r["format"], r["precision"], r["engine"], r.get("machine", "?")) for r in rows}
    expected = expected_cells(manifest, arm64=not skipped.exists())
    missing = sorted(expected - seen)
    failed = [r for r in rows if r["status"] == "FAIL" or r.get("suggest_equals_raw") is False]
    print(f"\n{len(seen & expected)} of {len(expected)} cells measured; {len(failed)} failed; {len(missing)} missing")
    for cell in missing:
        print(f"missing cell: {cell}")
    return 1 if missing or failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/parity")))
