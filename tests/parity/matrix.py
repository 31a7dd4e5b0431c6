"""Print the parity matrix from every environment's rows, and fail on a missing or failed cell.

    python tests/parity/matrix.py build/parity
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nextword.modelfile.contract import ENGINES, PRECISIONS

#: Engines outside the Python runtime, by format: the web client's ONNX Runtime Web in Chromium (test_web_parity.py).
OTHER_ENGINES = {"onnx": ("onnxruntime-web",)}


def engines(fmt: str) -> tuple[str, ...]:
    return ENGINES[fmt] + OTHER_ENGINES.get(fmt, ())


def main(root: Path) -> int:
    rows = [json.loads(line) for path in sorted(root.glob("rows-*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    manifest = json.loads((root / "manifest.json").read_text())
    header = (f"{'model':<6} {'format':<7} {'precision':<9} {'engine':<15} {'py/numpy':<11} {'form':<7} "
              f"{'max|diff|':>10} {'top1':>7} {'top5=':>7} {'top5∩':>7} {'win~step':>9} {'suggest=raw':>11}  status")
    print("\nParity matrix: every exported file on every engine, against the Keras model")
    print(header)
    print("-" * len(header))
    order = {e: i for i, e in enumerate(sum((engines(fmt) for fmt in ENGINES), ()))}
    rows.sort(key=lambda r: (r["model"], r["format"], PRECISIONS[r["format"]].index(r["precision"]),
                             order[r["engine"]], r["form"]))
    for r in rows:
        env = f"{r['python']}/{r['numpy']}"
        if r["form"] == "-":
            print(f"{r['model']:<6} {r['format']:<7} {r['precision']:<9} {r['engine']:<15} {env:<11} {'-':<7} "
                  f"{'':>10} {'':>7} {'':>7} {'':>7} {'':>9} {'':>11}  {r['status']}")
            continue
        print(f"{r['model']:<6} {r['format']:<7} {r['precision']:<9} {r['engine']:<15} {env:<11} {r['form']:<7} "
              f"{r['max_abs_diff']:>10.2e} {r['top1_agreement']:>7.1%} {r['top5_identical']:>7.1%} "
              f"{r['top5_overlap']:>7.1%} {r['window_vs_step_max_diff']:>9.1e} {str(r['suggest_equals_raw']):>11}  "
              f"{r['status']}")
    seen = {(r["model"], r["format"], r["precision"], r["engine"]) for r in rows}
    expected = {(m, f, p, e) for m in manifest["models"] for f, ps in PRECISIONS.items() for p in ps
                for e in engines(f)}
    missing = sorted(expected - seen)
    failed = [r for r in rows if r["status"] == "FAIL" or r.get("suggest_equals_raw") is False]
    print(f"\n{len(seen)} of {len(expected)} cells measured; {len(failed)} failed; {len(missing)} missing")
    for cell in missing:
        print(f"missing cell: {cell}")
    return 1 if missing or failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/parity")))
