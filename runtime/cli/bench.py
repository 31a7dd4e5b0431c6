"""``nextword bench``: argument parsing and the written reports (bench.json, bench.md, bench.png)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from nextword.errors import UsageError
from nextword.fileio import atomic_path, atomic_write_text, ensure_writable_dir

if TYPE_CHECKING:
    from nextword.measure.bench import BenchResult


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="latency, throughput, cold start and memory of model files",
                              description="Benchmark model files on every installed engine (and a run "
                                          "directory's Keras model as the reference row).")
    p.add_argument("paths", nargs="+", metavar="MODEL_OR_DIR",
                   help=".tflite/.onnx files, export folders (every model file in them) and/or run directories")
    p.add_argument("--out", metavar="DIR", help="write bench.json, bench.md and bench.png here")
    p.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    p.add_argument("--repeats", type=int, default=300, help="timed calls per measure (default 300)")
    p.add_argument("--json", action="store_true", help="print bench.json to stdout")
    p.set_defaults(run=run)


def markdown(result: BenchResult) -> str:
    m = result.machine
    lines = [f"Machine: {m.processor}, {m.cpus} CPUs, {m.platform}, Python {m.python}; "
             f"{result.threads} engine thread(s), {result.repeats} calls per measure. Times in ms.", "",
             "suggest() in typing order: each context is the one before plus a word (a context extending a "
             "recent one costs the new word's step); fresh: nothing remembered, each call reads its whole context.",
             "", "| file | engine | bytes | suggest typing p50 / p95 / p99 | suggest fresh p50 | session word p50 "
             "| raw window p50 | raw step p50 | batch-64 ctx/s | cold start s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result.runtime:
        s, w, fresh = r.suggest, r.raw_window, r.suggest_fresh.p50_ms
        step = r.raw_step.p50_ms if r.raw_step else None
        lines.append(
            f"| {r.file} | {r.engine} | {r.size_bytes:,} | {s.p50_ms:.3f} / {s.p95_ms:.3f} / "
            f"{s.p99_ms:.3f} | {fresh:.3f} | {r.session_word.p50_ms:.3f} | "
            f"{w.p50_ms:.3f} | {'-' if step is None else f'{step:.3f}'} | "
            f"{r.batch64_contexts_per_s:,.0f} | {r.cold_start_s:.2f} | {r.peak_rss_mb:.0f} |")
    for k in result.keras:
        lines.append(f"| {k.file} | Keras `model(x)` | {k.size_bytes:,} | {k.model_call.p50_ms:.2f} / "
                     f"{k.model_call.p95_ms:.2f} / {k.model_call.p99_ms:.2f} | | | | | | | |")
        lines.append(f"| {k.file} | Keras `model.predict(x)` | | {k.model_predict.p50_ms:.2f} / "
                     f"{k.model_predict.p95_ms:.2f} / {k.model_predict.p99_ms:.2f} | | | | | | | |")
    if result.runtime:
        lengths = list(result.runtime[0].suggest_p50_ms_by_context_words)
        lines += ["", "suggest() p50 (ms) by context length in words (fresh contexts):", "",
                  "| file | engine | " + " | ".join(f"{n} words" for n in lengths) + " |",
                  "|---|---|" + "---|" * len(lengths)]
        for r in result.runtime:
            by_length = r.suggest_p50_ms_by_context_words
            lines.append(f"| {r.file} | {r.engine} | " + " | ".join(f"{by_length[n]:.3f}" for n in lengths) + " |")
    if result.runtime:
        lines += ["", "A session word (feed + suggest) with a 1 MB user profile mixed in (see nextword.profile):", "",
                  "| file | engine | without p50 | with profile p50 / p95 | ratio | profile bytes | profile load ms |",
                  "|---|---|---|---|---|---|---|"]
        for r in result.runtime:
            plain, mixed = r.session_word.p50_ms, r.session_word_with_profile
            lines.append(f"| {r.file} | {r.engine} | {plain:.3f} | {mixed.p50_ms:.3f} / {mixed.p95_ms:.3f} "
                         f"| {mixed.p50_ms / plain:.2f} | {r.profile_bytes:,} | {r.profile_load_ms:.1f} |")
    if result.runtime and result.keras:
        predict = result.keras[0].model_predict.p50_ms
        five = "5" if "5" in result.runtime[0].suggest_p50_ms_by_context_words else None
        lines += ["", f"How many times faster than Keras `model.predict(x)` ({predict:.2f} ms p50, same run):", "",
                  "| file | engine | suggest(), typing | suggest(), fresh | suggest(), 5 words fresh | session word |",
                  "|---|---|---|---|---|---|"]
        for r in result.runtime:
            by_length = r.suggest_p50_ms_by_context_words
            five_ratio = f"{predict / by_length[five]:,.0f}x" if five else "-"
            lines.append(f"| {r.file} | {r.engine} | {predict / r.suggest.p50_ms:,.0f}x | "
                         f"{predict / r.suggest_fresh.p50_ms:,.0f}x | {five_ratio} | "
                         f"{predict / r.session_word.p50_ms:,.0f}x |")
    for k in result.keras:
        training = k.training
        if training.targets_per_second:
            steady = training.steady_targets_per_second
            after_first = f", {steady:,.0f} after the first epoch" if steady else ""
            lines.append(f"\nTraining throughput of {k.file}: {training.targets_per_second:,.0f} targets/s "
                         f"over the whole fit{after_first} ({training.mode} mode, from train_report.json).")
    return "\n".join(lines) + "\n"


def plot(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels, window, session = [], [], []
    for r in result.runtime:
        labels.append(f"{r.file}\n{r.engine}")
        window.append(r.suggest.p50_ms)
        session.append(r.session_word.p50_ms)
    for k in result.keras:
        labels.append(f"Keras model(x)\n{k.file}")
        window.append(k.model_call.p50_ms)
        session.append(0)
        labels.append(f"Keras predict(x)\n{k.file}")
        window.append(k.model_predict.p50_ms)
        session.append(0)
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(labels) + 2.2))
    y = range(len(labels))
    ax.barh([i + 0.2 for i in y], window, height=0.4, label="suggest() in typing order / Keras call")
    ax.barh([i - 0.2 for i in y], session, height=0.4, label="keyboard session: one word, step form")
    for i, (a, b) in enumerate(zip(window, session)):
        ax.text(a, i + 0.2, f" {a:.3g}", va="center", fontsize=8)
        if b:
            ax.text(b, i - 0.2, f" {b:.3g}", va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(v for v in window + session if v) / 2, max(window) * 4)  # room for the labels
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("median latency per suggestion, ms (log scale; shorter is faster)")
    ax.set_title(f"nextword: next-word latency, {result.threads} thread(s)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(labels)), ncol=2, fontsize=8,
              frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def check_out(out: Path) -> None:
    """Refuse an --out that cannot take the reports before minutes of measuring, not after."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; give a directory for bench.json, bench.md "
                         "and bench.png")
    try:
        ensure_writable_dir(out)
    except OSError as err:
        raise UsageError(f"cannot write to --out {out}: {err.strerror or err}; choose a writable directory") from None


def bench_run(run_dir: Path, repeats: int) -> dict:
    """A run directory's Keras model, loaded with ``nextword.train``'s loader (TensorFlow only here)."""
    from nextword.deps import require

    require("tensorflow", extra="train", command="bench RUN_DIR")
    from nextword.measure.bench import TrainingThroughput, bench_keras
    from nextword.train.loading import load_run

    loaded = load_run(run_dir)
    report = loaded.train_report()
    training = TrainingThroughput() if report is None else TrainingThroughput(
        report.training.mode, report.targets_per_second, report.steady_targets_per_second)
    return bench_keras(run_dir, lambda x: loaded.model(x, training=False).numpy(),
                       lambda x: loaded.model.predict(x, verbose=0), loaded.tokenizer, loaded.config.window, training,
                       repeats)


def run(args) -> int:
    from nextword.measure.bench import run_bench

    if args.out:
        check_out(Path(args.out))
    result = run_bench([Path(p) for p in args.paths], threads=args.threads, repeats=args.repeats,
                       bench_run=bench_run)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "bench.json", json.dumps(result.to_dict(), indent=2) + "\n")
        atomic_write_text(out / "bench.md", markdown(result))
        try:
            plot(result, out / "bench.png")
        except ImportError:
            print("bench.png skipped: matplotlib is not installed (it comes with the train extra)")
        print(f"wrote {out / 'bench.json'}, bench.md, bench.png")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not args.out:
        print(markdown(result))
    return 0
