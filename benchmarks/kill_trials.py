"""kill -9 at random points of `nextword train` and `nextword export`: is anything lost or half-written?

    .venv/bin/python benchmarks/kill_trials.py --trials 20 --out build/kill --json build/kill.json

Train: a small stream-mode model on a generated corpus (8 epochs, each a few seconds), killed with SIGKILL
at a random moment from process start to the end of an uninterrupted run; then `--resume` (or, if no
epoch had completed, the same command again) must finish, every file under a final name must be whole,
and the final weights must equal the uninterrupted run's (same seed; op determinism is on).
Export: the uninterrupted run's export to every format and precision, killed at a random moment; every
model file present under its final name must pass the runtime's checks, export_report.json must parse,
and exporting again (--overwrite) must finish with files equal to an uninterrupted export's (TFLite:
byte-identical; ONNX: identical probabilities, since tf2onnx names deduplicated constants differently
from one run to the next).
Exit status 1 if any trial lost or damaged something.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

NEXTWORD = [sys.executable, "-m", "nextword"]
TRAIN_ARGS = ["--mode", "stream", "--epochs", "8", "--batch-size", "16", "--hidden-size", "32", "--window", "8",
              "--embedding-dim", "16", "--eos", "--seed", "3"]
MODEL_FILES = ("model.tflite", "model.float16.tflite", "model.int8.tflite", "model.onnx", "model.int8.onnx")


def corpus(path: Path) -> Path:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    lines = [" ".join(rng.choice(words[: rng.randint(20, 300)]) for _ in range(rng.randint(4, 12)))
             for _ in range(1500)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: list[str], *, kill_after: float | None = None, after_file: Path | None = None) -> tuple[int, float]:
    """(exit status, seconds); SIGKILL after ``kill_after`` seconds if it is still running, counted from the
    moment ``after_file`` appears when one is given (e.g. the first checkpoint)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    process = subprocess.Popen(NEXTWORD + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if after_file is not None:
        while not after_file.exists() and process.poll() is None:
            time.sleep(0.05)
    try:
        _, err = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    code = process.returncode
    if code not in (0, -signal.SIGKILL):
        raise SystemExit(f"nextword {' '.join(args)} failed ({code}): {err.decode()[-500:] if err else ''}")
    return code, time.perf_counter() - started


def whole_files(folder: Path) -> list[str]:
    """Problems with the files under final names in ``folder`` (temp files of a cut write are ignored)."""
    problems = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".keras":
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
                    if bad:
                        problems.append(f"{path}: member {bad} damaged")
            elif path.name in MODEL_FILES:
                from nextword.modelfile.reader import read_model_file

                read_model_file(path)
        except Exception as err:  # noqa: BLE001 - any failure is the finding
            problems.append(f"{path}: {type(err).__name__}: {str(err)[:120]}")
    return problems


def weights(run_dir: Path) -> list:
    from nextword.train.loading import load_run

    return load_run(run_dir).model.get_weights()


def train_trials(root: Path, text: Path, trials: int, rng: random.Random) -> dict:
    import numpy as np

    reference = root / "train-reference"
    shutil.rmtree(reference, ignore_errors=True)
    state = reference / "checkpoints" / "state.json"
    _, first = run(["train", "--corpus", str(text), "--out", str(reference), *TRAIN_ARGS], kill_after=0,
                   after_file=state)  # how long until the first checkpoint
    shutil.rmtree(reference, ignore_errors=True)
    _, full = run(["train", "--corpus", str(text), "--out", str(reference), *TRAIN_ARGS])
    expected = weights(reference)
    rows = []
    for trial in range(trials):
        out = root / f"train-{trial}"
        shutil.rmtree(out, ignore_errors=True)
        # Even trials: anywhere from the start (imports, corpus scan, first epoch); odd trials: while the
        # epochs after the first run (their checkpoints, the model and report writes at the end).
        after = None if trial % 2 == 0 else out / "checkpoints" / "state.json"
        at = rng.uniform(0.5, full) if after is None else rng.uniform(0.0, max(0.5, full - first))
        code, _ = run(["train", "--corpus", str(text), "--out", str(out), *TRAIN_ARGS], kill_after=at,
                      after_file=after)
        problems = whole_files(out) if out.exists() else []
        state = out / "checkpoints" / "state.json"
        epoch = json.loads(state.read_text())["epoch"] if state.exists() else 0
        if code == 0:
            how = "finished before the kill"
        elif (out / "train_report.json").exists():
            how = "killed after the run was complete (its report written): nothing to resume"
        elif epoch:
            run(["train", "--out", str(out), "--resume"])
            how = f"resumed from epoch {epoch}"
        else:
            run(["train", "--corpus", str(text), "--out", str(out), *TRAIN_ARGS, "--overwrite"])
            how = "no epoch completed: started again"
        problems += whole_files(out)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, weights(out)))
        rows.append({"trial": trial, "killed_at_s": round(at, 2), "counted_from": "first checkpoint" if after else "start",
                     "outcome": how, "problems": problems,
                     "max_weight_diff": diff})
        point = f"{at:5.1f} s after start" if after is None else f"{at:5.1f} s after the first checkpoint"
        print(f"train  trial {trial:2d}: killed {point} (run: {full:.1f} s); {how}; "
              f"max |w - w_uninterrupted| {diff:.2e}; {len(problems)} problem(s)", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return {"uninterrupted_s": round(full, 1), "first_checkpoint_s": round(first, 1), "trials": rows}


def same_export(folder: Path, reference: Path) -> list[str]:
    """Differences from the uninterrupted export. TFLite files must be byte-identical; ONNX files must give
    identical probabilities (tf2onnx names deduplicated constants differently from one run to the next,
    killed or not, so their bytes differ by those names only)."""
    import numpy as np

    from nextword import Predictor

    problems = []
    for name in MODEL_FILES:
        if not (folder / name).exists():
            problems.append(f"{name} missing")
        elif name.endswith(".tflite"):
            if (folder / name).read_bytes() != (reference / name).read_bytes():
                problems.append(f"{name} differs")
        else:
            a, b = Predictor.load(folder / name), Predictor.load(reference / name)
            tokens = np.random.default_rng(0).integers(0, a.config.vocab_size, (32, a.config.window), dtype=np.int32)
            if not np.array_equal(a.engine.window(tokens), b.engine.window(tokens)):
                problems.append(f"{name} predicts differently")
    return problems


def export_trials(root: Path, trials: int, rng: random.Random) -> dict:
    run_dir = root / "train-reference"
    reference = root / "export-reference"
    shutil.rmtree(reference, ignore_errors=True)
    _, full = run(["export", str(run_dir), "--out", str(reference)])
    rows = []
    for trial in range(trials):
        out = root / f"export-{trial}"
        shutil.rmtree(out, ignore_errors=True)
        at = rng.uniform(0.5, full)
        code, _ = run(["export", str(run_dir), "--out", str(out)], kill_after=at)
        present = sorted(n for n in MODEL_FILES if (out / n).exists())
        problems = whole_files(out) if out.exists() else []
        run(["export", str(run_dir), "--out", str(out), "--overwrite"])
        problems += whole_files(out)
        differences = same_export(out, reference)
        same = not differences
        problems += differences
        rows.append({"trial": trial, "killed_at_s": round(at, 2), "finished_before_kill": code == 0,
                     "files_present_after_kill": present, "problems": problems, "identical_after_rerun": same})
        print(f"export trial {trial:2d}: killed at {at:5.1f} s of {full:.1f}; {len(present)} file(s) under final "
              f"names; {len(problems)} problem(s); same as uninterrupted after re-export: {same}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return {"uninterrupted_s": round(full, 1), "trials": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("build/kill"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=("train", "export"), help="run one of the two kinds of trial")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    text = corpus(args.out / "corpus.txt")
    summary = {}
    if args.only != "export":
        summary["train"] = train_trials(args.out, text, args.trials, rng)
    if args.only != "train":
        if not (args.out / "train-reference" / "model.keras").exists():
            run(["train", "--corpus", str(text), "--out", str(args.out / "train-reference"), *TRAIN_ARGS])
        summary["export"] = export_trials(args.out, args.trials, rng)
    failed = [row for part in summary.values() for row in part["trials"] if row["problems"]
              or row.get("max_weight_diff", 0) > 1e-6]
    summary["failed_trials"] = len(failed)
    print(f"{sum(len(part['trials']) for part in summary.values() if isinstance(part, dict))} trials, "
          f"{len(failed)} with a problem")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
