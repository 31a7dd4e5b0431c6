"""Distributed training on this machine: throughput with 1 and 2 workers, and memory with a corpus larger than RAM.

    .venv/bin/python benchmarks/distributed.py throughput ptb.train.txt --epochs 2
    .venv/bin/python benchmarks/distributed.py rss --gb 3 --watch 240

`throughput` trains the same model on CORPUS with one process, then with two workers on 127.0.0.1 (same global
batch, one TensorFlow thread each), and prints each run's steady targets per second from its train_report.json.
On one 2-core machine two workers cannot be faster: the figure shows the engine's overhead (all-reduce over
loopback, two input pipelines), not a gain.

`rss` writes a generated corpus of GB gigabytes (Zipf-distributed made-up words; nothing is read from anywhere),
starts two workers on it and samples each worker's resident memory every second for WATCH seconds (the
planning passes over its half, then training), prints the peak per phase, and stops the workers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nextword.train.distributed import loopback_addresses

NEXTWORD = [sys.executable, "-m", "nextword", "train"]
MODEL = ["--mode", "stream", "--window", "20", "--embedding-dim", "64", "--hidden-size", "256", "--batch-size", "64",
         "--valid-fraction", "0", "--no-train-metrics"]


def workers(out: Path, args: list[str], count: int = 2) -> list[subprocess.Popen]:
    cluster = loopback_addresses(count)
    return [subprocess.Popen([*NEXTWORD, "--out", str(out), *args, "--workers", cluster, "--worker-index", str(i)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(count)]


def throughput(corpus: Path, epochs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--corpus", str(corpus), *MODEL, "--epochs", str(epochs)]
        started = time.perf_counter()
        subprocess.run([*NEXTWORD, "--out", f"{tmp}/one", *args], check=True, capture_output=True)
        one_wall = time.perf_counter() - started
        started = time.perf_counter()
        processes = workers(Path(tmp) / "two", [*args, "--threads", "1"])
        for process in processes:
            process.communicate()
            if process.returncode:
                raise SystemExit(f"a worker failed (exit {process.returncode})")
        two_wall = time.perf_counter() - started
        print(f"corpus {corpus}, {' '.join(MODEL)} --epochs {epochs}")
        for name, run, wall in (("1 process (TensorFlow's threads)", "one", one_wall),
                                ("2 workers on 127.0.0.1, 1 thread each", "two", two_wall)):
            report = json.loads((Path(tmp) / run / "train_report.json").read_text())
            seconds = report["history"]["epoch_seconds"]
            print(f"{name:<40} steady {report['steady_targets_per_second']:>9,.0f} targets/s, epochs "
                  f"{', '.join(f'{s:.0f}' for s in seconds)} s, wall {wall:.0f} s")


def generate(path: Path, gigabytes: float, seed: int = 0) -> None:
    """Zipf-distributed made-up words of 3-9 letters, 5-25 per line, until the file has the size asked."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = np.array(["".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(200_000)])
    weights = 1 / np.arange(1, len(vocabulary) + 1)
    weights /= weights.sum()
    target = int(gigabytes * 1e9)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            words = vocabulary[rng.choice(len(vocabulary), 2_000_000, p=weights)]
            cuts = np.cumsum(rng.integers(5, 26, 200_000))
            lines = [" ".join(line) for line in np.split(words, cuts[cuts < len(words)])]
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss(gigabytes: float, watch: float, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "big.txt"
    if not corpus.exists() or corpus.stat().st_size < gigabytes * 1e9 * 0.99:
        started = time.perf_counter()
        generate(corpus, gigabytes)
        print(f"generated {corpus} ({corpus.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s")
    out = folder / "run"
    shutil.rmtree(out, ignore_errors=True)
    processes = workers(out, ["--corpus", str(corpus), *MODEL, "--max-vocab", "20000", "--epochs", "1",
                              "--threads", "1"])
    peaks = [{"planning": 0.0, "training": 0.0} for _ in processes]
    started = time.perf_counter()
    training_at = None
    timeline: list[str] = []
    while time.perf_counter() - started < watch and all(p.poll() is None for p in processes):
        phase = "training" if (out / "config.json").exists() else "planning"  # the chief writes it to start
        if phase == "training" and training_at is None:
            training_at = time.perf_counter() - started
        values = [rss_mb(process.pid) or 0.0 for process in processes]
        for peak, value in zip(peaks, values):
            peak[phase] = max(peak[phase], value)
        elapsed = time.perf_counter() - started
        if int(elapsed) % 30 == 0:  # the timeline: flat while training is what "bounded" means
            timeline.append(f"{elapsed:5.0f} s  {phase:<8}  " + "  ".join(f"{v:6,.0f} MB" for v in values))
        time.sleep(1)
    for process in processes:  # a worker inside the engine's collectives may not heed SIGTERM at once
        process.kill()
        process.communicate(timeout=60)
    print(f"corpus {corpus.stat().st_size / 1e9:.2f} GB, 2 workers on 127.0.0.1 (each reads half), watched "
          f"{watch:.0f} s; training began after {training_at or float('nan'):.0f} s")
    print("RSS every 30 s (worker 0, worker 1):")
    for line in timeline:
        print("  " + line)
    for index, peak in enumerate(peaks):
        print(f"worker {index}: peak RSS planning {peak['planning']:,.0f} MB, training {peak['training']:,.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("corpus", type=Path)
    t.add_argument("--epochs", type=int, default=2)
    r = sub.add_parser("rss")
    r.add_argument("--gb", type=float, default=3.0)
    r.add_argument("--watch", type=float, default=240)
    r.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "nextword-big-corpus")
    args = parser.parse_args()
    if args.what == "throughput":
        throughput(args.corpus, args.epochs)
    else:
        rss(args.gb, args.watch, args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
