"""``nextword bench MODEL_OR_DIR... [--json] [--out DIR]``: speed and memory, measured.

    nextword bench models/ptb/model.int8.tflite models/ptb/model.tflite models/ptb/model.onnx runs/ptb --out bench/

For every model file and every installed engine that can run it (one thread unless ``--threads``):
- cold start: a fresh process imports nextword, loads the file and makes the first suggestion (wall time
  of the whole process, interpreter start included), and its peak RSS (a runtime-only process);
- latency p50/p95/p99 of ``suggest()`` in typing order (each context the one before plus a word: recent
  contexts are remembered, so a call costs the new word's step) and on fresh contexts (nothing remembered:
  a call reads its whole context), of a session's per-word ``feed`` + ``suggest`` (step form), and of the
  raw engine calls alone (window batch 1, one step); ``suggest()`` p50 by context length (1, 3, 5, 10 words
  and the full window, fresh);
- the session word again with a user profile of 1 MB (personal words and the user n-gram mixed in; the two
  measured in turns, ``SESSION_TURNS`` of each), and the time to load that profile;
- batch throughput of ``suggest_batch`` (contexts per second);
- file size.
A training run directory adds the Keras reference row (``model(x)`` and ``model.predict(x)``, batch 1,
needs the train extra) and its training throughput from ``train_report.json``.
Writes ``bench.json``, ``bench.md`` and ``bench.png`` to ``--out``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nextword.context import window_ids
from nextword.engines import installed_engines
from nextword.errors import NextwordError, UsageError
from nextword.modelfile.contract import FORMAT_1_FILE_NAMES, model_file_names
from nextword.modelfile.reader import read_model_file
from nextword.predictor import Predictor
from nextword.records import Record
from nextword.runs import MODEL_FILE, path_kind

SENTENCES = ["the company said it expects to report a loss for the third quarter",
             "hello how are you doing today", "i will call you when i get home",
             "the market is expected to rise next year as interest rates fall"]

_COLD_START = """
import resource, sys, time
started = time.perf_counter()
from nextword import Predictor
predictor = Predictor.load(sys.argv[1], engine=sys.argv[2], threads=int(sys.argv[3]))
predictor.suggest("the company said it")
first = time.perf_counter() - started
for _ in range(200):
    predictor.suggest("the company said it will")
print(first, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tensorflow" in sys.modules)
"""


@dataclass(frozen=True)
class Latency(Record):
    p50_ms: float
    p95_ms: float
    p99_ms: float
    calls: int


@dataclass
class FileRow(Record):
    """One model file on one engine (bench.json's ``runtime`` rows)."""

    OMIT_IF_NONE = ("raw_step",)

    file: str
    format: str
    precision: str
    engine: str
    threads: int
    size_bytes: int
    suggest: Latency  # typing order: each context the one before plus a word
    suggest_fresh: Latency  # nothing remembered: each call reads its whole context
    suggest_p50_ms_by_context_words: dict  # "1", "3", ... -> p50 ms, fresh
    session_word: Latency  # feed + suggest, step form
    session_word_with_profile: Latency  # the same with a 1 MB profile mixed in
    profile_bytes: int
    profile_load_ms: float
    raw_window: Latency
    raw_step: Latency | None = None  # files with the step form
    batch64_contexts_per_s: float = 0.0
    cold_start_s: float = 0.0
    import_load_first_suggest_s: float = 0.0
    peak_rss_mb: float = 0.0
    tensorflow_loaded: bool = False


@dataclass(frozen=True)
class TrainingThroughput(Record):
    """A run's training speed, from its train_report.json (the command line reads it)."""

    mode: str | None = None
    targets_per_second: float | None = None
    steady_targets_per_second: float | None = None


@dataclass
class KerasRow(Record):
    """A training run's Keras model (bench.json's ``keras`` rows)."""

    file: str
    size_bytes: int
    model_call: Latency
    model_predict: Latency
    training: TrainingThroughput = field(default_factory=TrainingThroughput)
    format: str = "keras"
    precision: str = "float32"
    engine: str = "keras"


@dataclass(frozen=True)
class Machine(Record):
    platform: str
    processor: str
    cpus: int | None
    python: str


@dataclass
class BenchResult(Record):
    """bench.json."""

    machine: Machine
    threads: int
    repeats: int
    runtime: list[FileRow] = field(default_factory=list)
    keras: list[KerasRow] = field(default_factory=list)


def percentiles(samples_ms: list[float]) -> Latency:
    values = np.asarray(samples_ms)
    return Latency(p50_ms=float(np.percentile(values, 50)), p95_ms=float(np.percentile(values, 95)),
                   p99_ms=float(np.percentile(values, 99)), calls=int(len(values)))


def timed(function, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def cold_start(path: Path, engine: str, threads: int) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _COLD_START, str(path), engine, str(threads)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise NextwordError(f"cold start of {path.name} on {engine} failed: {out.stderr.strip().splitlines()[-1]}")
    first, rss_mb, tf_loaded = out.stdout.split()
    return {"cold_start_s": wall, "import_load_first_suggest_s": float(first), "peak_rss_mb": float(rss_mb),
            "tensorflow_loaded": tf_loaded == "True"}


#: Turns of the session-word measure (each ``repeats`` words without a profile, then as many with one).
SESSION_TURNS = 3


def session_words(session, words: list[str], repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` words typed in ``session``: feed the word, rank a strip of 3
    (a new message when the window is nearly full)."""
    window, it = session.predictor.config.window, iter(words * (repeats // len(words) + 2))

    def one_word():
        if len(session.words) >= window - 2:
            session.reset()
        session.feed(next(it))
        session.suggest(3)

    return timed(one_word, repeats)


def bench_file(path: Path, engine: str, threads: int, repeats: int) -> FileRow:
    model = read_model_file(path)
    predictor = Predictor.load(path, engine=engine, threads=threads)
    config = predictor.config
    words = " ".join(SENTENCES).split()
    texts = [" ".join(words[: i % 18 + 1]) + " " for i in range(repeats)]
    for text in texts[:20]:  # warm up
        predictor.suggest(text)
    # Typing order: each text is the one before plus a word, as a text field asks while its user types;
    # suggest() remembers recent contexts, so each call costs the new word's step.
    suggest = timed(lambda it=iter(texts * 2): predictor.suggest(next(it)), repeats)
    # Fresh contexts: the same texts with nothing remembered, so each call reads its whole context.
    predictor.remember_contexts = False
    suggest_fresh = timed(lambda it=iter(texts * 2): predictor.suggest(next(it)), repeats)

    # A session word with and without a 1 MB profile (the same words, suggestions mixed with the profile's),
    # measured in turns in the same process so that the ratio compares like with like (one pass of each gave
    # ratios up to 0.09 apart from one run to the next on a quiet machine).
    profile, profile_load_ms = full_profile(predictor)
    session_word, session_word_profile = [], []
    for _ in range(SESSION_TURNS):
        session_word += session_words(predictor.session(), words, repeats)
        session_word_profile += session_words(predictor.session(profile, incognito=True), words, repeats)
    # What a context of n words costs: the sequence form runs n steps (the window form all of them).
    by_length = {}
    for count in sorted({n for n in (1, 3, 5, 10) if n < config.window} | {config.window}):
        text = " ".join((words * (count // len(words) + 1))[:count]) + " "
        by_length[str(count)] = percentiles(timed(lambda t=text: predictor.suggest(t), max(30, repeats // 3))).p50_ms
    predictor.remember_contexts = True
    tokens = window_ids(predictor.context_ids("the company said it"), config.window)[None]  # (1, window)
    raw_window = timed(lambda: predictor.engine.window(tokens), repeats)
    raw_step = None
    if predictor.engine.has_step:
        h = np.zeros((config.num_layers, 1, config.hidden_size), np.float32)
        token = np.array([1], np.int32)
        raw_step = percentiles(timed(lambda: predictor.engine.step(token, h, h), repeats))
    batch = [" ".join(words[i: i + 12]) for i in range(64)]
    batch_time = min(timed(lambda: predictor.suggest_batch(batch), 5)) / 1000
    return FileRow(file=path.name, format=model.format, precision=model.precision, engine=engine, threads=threads,
                   size_bytes=path.stat().st_size, suggest=percentiles(suggest),
                   suggest_fresh=percentiles(suggest_fresh), suggest_p50_ms_by_context_words=by_length,
                   session_word=percentiles(session_word),
                   session_word_with_profile=percentiles(session_word_profile),
                   profile_bytes=len(profile.to_bytes()), profile_load_ms=profile_load_ms,
                   raw_window=percentiles(raw_window), raw_step=raw_step,
                   batch64_contexts_per_s=len(batch) / batch_time, **cold_start(path, engine, threads))


def full_profile(predictor, cap_bytes: int | None = None) -> tuple:
    """A user profile filled to its cap (default 1 MB) by messages of random vocabulary words and a few
    personal words, saved and loaded back: (profile, best load time in ms of 5)."""
    import tempfile

    from nextword.profile import DEFAULT_CAP_BYTES, Profile

    cap_bytes = cap_bytes or DEFAULT_CAP_BYTES
    rng = np.random.default_rng(0)
    vocabulary = [w for w in predictor.tokenizer.vocab if not w.startswith("<")]
    profile = Profile(cap_bytes=cap_bytes)
    profile.bind(predictor.tokenizer)
    words = " ".join(SENTENCES).split()
    sent = 0
    while profile._bytes < 0.97 * cap_bytes and sent < 100_000:  # new names fill it whatever the vocabulary
        message = (list(rng.choice(vocabulary, 6)) + words[: int(rng.integers(3, 12))]
                   + ["zorblax", "kestrel", f"name{sent}"])
        profile.learn(message, [])
        sent += 1
    with tempfile.TemporaryDirectory() as folder:
        path = profile.save(Path(folder) / "user.profile")
        load_ms = min(timed(lambda: Profile.load(path).bind(predictor.tokenizer), 5))
        profile = Profile.load(path)
    return profile, load_ms


def expand(paths: list[Path]) -> list[Path]:
    """Model files and run directories to measure: an export folder stands for the model files in it."""
    out = []
    for path in paths:
        if path_kind(path) == "folder":
            files = sorted(p for p in path.iterdir() if p.name in model_file_names() - set(FORMAT_1_FILE_NAMES))
            if not files:
                raise UsageError(f"{path} holds neither a training run (config.json) nor model files from "
                                 "`nextword export`; give .tflite/.onnx files or a run directory")
            out.extend(files)
        else:
            out.append(path)
    return out


def bench_keras(run_dir: Path, call_fn, predict_fn, tokenizer, window: int, training: TrainingThroughput,
                repeats: int) -> KerasRow:
    """A training run's Keras model, loaded by the caller with ``nextword.train``'s loader: ``call_fn`` is
    ``model(x)``, ``predict_fn`` ``model.predict(x)``, ``training`` the speed its train report gives."""
    tokens = window_ids(tokenizer.context_ids("the company said it"), window)[None]
    for _ in range(5):
        call_fn(tokens)
        predict_fn(tokens)
    call = timed(lambda: call_fn(tokens), repeats)
    predict = timed(lambda: predict_fn(tokens), max(20, repeats // 10))
    return KerasRow(file=f"{run_dir.name}/{MODEL_FILE}", size_bytes=(run_dir / MODEL_FILE).stat().st_size,
                    model_call=percentiles(call), model_predict=percentiles(predict), training=training)


def run_bench(paths: list[Path], *, threads: int = 1, repeats: int = 300, log=print, bench_run=None) -> BenchResult:
    """Every model file (each installed engine) and run directory in ``paths``. A run directory needs
    ``bench_run(run_dir, repeats) -> row`` (the command line passes one that loads the run with
    ``nextword.train``: nothing here imports TensorFlow)."""
    rows, keras_rows = [], []
    for path in expand(paths):
        if path_kind(path) == "run":
            if bench_run is None:
                raise UsageError(f"{path} is a training run: benchmarking its Keras model needs `nextword bench` "
                                 "with the train extra")
            keras_rows.append(bench_run(path, repeats))
            log(f"keras {path}: model(x) p50 {keras_rows[-1].model_call.p50_ms:.2f} ms")
            continue
        model = read_model_file(path)
        for engine in installed_engines(model.format):
            rows.append(bench_file(path, engine, threads, repeats))
            r = rows[-1]
            log(f"{path.name} on {engine}: suggest p50 {r.suggest.p50_ms:.3f} ms, "
                f"session word p50 {r.session_word.p50_ms:.3f} ms, cold start {r.cold_start_s:.2f} s")
    machine = Machine(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                      cpus=os.cpu_count(), python=platform.python_version())
    return BenchResult(machine=machine, threads=threads, repeats=repeats, runtime=rows, keras=keras_rows)
