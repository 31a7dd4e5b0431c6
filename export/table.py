"""The console table of an export: one row per file and form, with its validation figures."""

from __future__ import annotations


def print_table(entries: list[dict], log) -> None:
    header = (f"{'file':<24} {'size':>11} {'form':<8} {'max|diff|':>10} {'top-p rel':>9} {'top1':>7} {'top5=':>7} "
              f"{'top5∩':>7}  result")
    log(header)
    log("-" * len(header))
    for entry in entries:
        for index, (form, m) in enumerate((f, entry["validation"][f]) for f in ("window", "step", "sequence") if f in entry["validation"]):
            name = entry["path"] if index == 0 else ""
            size = f"{entry['size_bytes']:,}" if index == 0 else ""
            result = ("ok" if entry["passed"] else "FAIL" + (" (written)" if entry["written"] else "")) \
                if index == 0 else ""
            if "max_abs_diff" not in m:
                log(f"{name:<24} {size:>11} {form:<8} shape mismatch {result}")
                continue
            log(f"{name:<24} {size:>11} {form:<8} {m['max_abs_diff']:>10.2e} {m['top_relative_error']:>9.2%} "
                f"{m['top1_agreement']:>7.1%} "
                f"{m['top5_identical']:>7.1%} {m['top5_overlap']:>7.1%}  {result}")
