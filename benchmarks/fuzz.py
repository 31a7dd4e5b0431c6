"""Mutation fuzzing of exported model files: typed refusal or a good answer, nothing else.

    python benchmarks/fuzz.py models/default/*.tflite models/default/*.onnx --mutants 100 \\
        --python .venv-tflite/bin/python --json build/fuzz-tflite.json

For every seed file and every mutation kind, ``--mutants`` files are written (seeded: the same
command writes the same files) and handed, one path at a time, to a worker process running the given
Python (a runtime-only environment: numpy, nextword and one engine). The worker loads each file with
``Predictor.load`` (on every engine of the file's format that it has) and asks it for suggestions;
the parent classifies each file:

- ``refused``: a ``NextwordError`` (the one-line, typed refusal the CLI prints);
- ``accepted``: suggestions came back, every probability finite and in [0, 1];
- ``bad_output``: suggestions came back with a probability that is not;
- ``untyped``: any other exception (the CLI would say "unexpected ...", exit 70);
- ``crash``: the worker died (a signal, e.g. SIGSEGV in an engine); a new worker takes the next file;
- ``hang``: no answer within ``--timeout`` seconds (the worker is killed).

Kinds: byte damage (``bitflip``, ``truncate``, ``zeros``, ``insert``, ``append``), metadata edits
(``zip``: a metadata member's bytes changed and the zip's CRCs fixed, TFLite only; ``config``: one JSON
field set to a hostile value, or a consistent edit; ``vocab``: lines swapped, dropped, duplicated or
changed), and each of them ``+resigned``: the file's sha256 recomputed afterwards, as anyone can, so
that the checks behind the checksum are reached. Exit status 1 if any file crashed, hung or raised an
untyped exception.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

from nextword.modelfile.contract import CONFIG_NAME, DIGEST_PLACEHOLDER, ONNX_CONFIG_KEY, ONNX_DIGEST_KEY, ONNX_VOCAB_KEY, VOCAB_NAME
from nextword.modelfile.reader import detect_format
from nextword.modelfile.containers import _fields, encode_varint, length_delimited, onnx_digest, onnx_metadata_props, tflite_digest, zip_start

BYTE_KINDS = ("bitflip", "truncate", "zeros", "insert", "append")
META_KINDS = ("zip", "config", "vocab")
KINDS = BYTE_KINDS + META_KINDS
OUTCOMES = ("refused", "accepted", "bad_output", "untyped", "crash", "hang")
FAILURES = ("bad_output", "untyped", "crash", "hang")

#: Values a config field is set to: wrong types, out of range, huge, non-finite, deep.
HOSTILE_VALUES = ["", ".", None, True, -1, 0, 1, 3, 4.0, 2 ** 31, 2 ** 63, 10 ** 9, 1e308, float("nan"),
                  float("inf"), [], {}, [1, 2], {"a": 1}, "x" * 10_000, "/dev/zero", "../../../../etc/hostname"]


# ------------------------------------------------------------------ the parts of a file
class TFLiteParts:
    """A TFLite file as flatbuffer + vocabulary + config, reassembled with or without a fresh checksum."""

    def __init__(self, data: bytes) -> None:
        start = zip_start(data)
        self.flatbuffer = data[:start]
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            self.vocab = archive.read(VOCAB_NAME)
            self.config = archive.read(CONFIG_NAME)

    def assemble(self, flatbuffer: bytes, vocab: bytes, config: bytes, *, resign: bool) -> bytes:
        if resign:
            try:
                meta = json.loads(config)
                old = meta["checksum"]["sha256"]
            except (ValueError, TypeError, KeyError, RecursionError):
                old = None
            if isinstance(old, str) and len(old) == 64:
                blank = config.replace(old.encode(), DIGEST_PLACEHOLDER.encode())
                digest = tflite_digest(flatbuffer, vocab, blank)
                config = blank.replace(DIGEST_PLACEHOLDER.encode(), digest.encode())
        return flatbuffer + _zip({VOCAB_NAME: vocab, CONFIG_NAME: config})


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def onnx_set_prop(data: bytes, key: str, value: bytes) -> bytes:
    """The ONNX file with metadata_props[key] replaced (lengths re-encoded); unchanged if not found."""
    for number, wire, start, end in _fields(data):
        if number != 14 or wire != 2:
            continue
        entry_key = None
        for sub_number, sub_wire, sub_start, sub_end in _fields(data, start, end):
            if sub_number == 1 and sub_wire == 2:
                entry_key = data[sub_start:sub_end]
        if entry_key != key.encode():
            continue
        body = length_delimited(1, entry_key) + length_delimited(2, value)
        key_start = start - len(encode_varint(end - start)) - 1
        return data[:key_start] + length_delimited(14, body) + data[end:]
    return data


def onnx_resign(data: bytes) -> bytes:
    """The ONNX file with its nextword.sha256 recomputed (unchanged if its metadata cannot be found)."""
    try:
        props = onnx_metadata_props(data)
        _, start, end = props[ONNX_DIGEST_KEY]
    except (ValueError, UnicodeDecodeError, KeyError):
        return data
    if end - start != 64:
        return data
    digest = onnx_digest(data, (start, end))
    return data[:start] + digest.encode() + data[end:]


# ---------------------------------------------------------------------------- mutations
def damage_bytes(data: bytes, kind: str, rng: random.Random) -> bytes:
    out = bytearray(data)
    if not out:
        return bytes(out)
    if kind == "bitflip":
        for _ in range(rng.choice((1, 1, 2, 8, 64))):
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del out[rng.randrange(len(out)):]
    elif kind == "zeros":
        at = rng.randrange(len(out))
        length = rng.choice((4, 16, 256, 4096))
        out[at:at + length] = bytes(len(out[at:at + length]))
    elif kind == "insert":
        at = rng.randrange(len(out))
        out[at:at] = rng.randbytes(rng.choice((1, 4, 16, 256)))
    elif kind == "append":
        out += rng.choice((rng.randbytes(rng.choice((1, 64, 4096))), b"PK\x05\x06" + bytes(18)))
    return bytes(out)


def _hostile(rng: random.Random):
    return rng.choice(HOSTILE_VALUES)


def edit_config(config: bytes, rng: random.Random) -> bytes:
    """One field of the JSON set to a hostile value, deleted, nudged, or the text itself made hostile."""
    choice = rng.random()
    if choice < 0.05:
        return b"[" * 200_000 + b"]" * 200_000
    if choice < 0.1:
        return config.replace(b'"window": ', b'"window": ' + b"9" * 10_000, 1)
    try:
        meta = json.loads(config)
    except ValueError:
        return damage_bytes(config, "bitflip", rng)
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                paths.append(path + (key,))
                walk(value, path + (key,))
        elif isinstance(node, list):
            for index, value in enumerate(node[:8]):
                paths.append(path + (index,))
                walk(value, path + (index,))

    walk(meta, ())
    path = rng.choice(paths)
    parent = meta
    for step in path[:-1]:
        parent = parent[step]
    leaf = path[-1]
    value = parent[leaf]
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[leaf]
    elif action < 0.5 and isinstance(value, int) and not isinstance(value, bool):
        parent[leaf] = rng.choice((value + 1, value - 1, value * 2, -value, value * 1000))
        if path[:2] == ("model", "window") or path[-1] in ("vocab_size", "hidden_size"):
            # The consistent edit: the same number in every shape that says it.
            text = json.dumps(meta).replace(f", {value}]", f", {parent[leaf]}]").replace(f"[{value},", f"[{parent[leaf]},")
            return text.encode()
    else:
        parent[leaf] = _hostile(rng)
    return json.dumps(meta, ensure_ascii=False).encode("utf-8")


def edit_vocab(vocab: bytes, config: bytes, rng: random.Random, *, consistent: bool) -> tuple[bytes, bytes]:
    """Vocabulary lines swapped, dropped, duplicated, appended or changed; ``consistent``: the config's
    vocabulary size and sha256 updated to match (what a careful editor does)."""
    lines = vocab.decode("utf-8", "replace").split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    how = rng.choice(("swap", "drop", "dup", "append", "change", "empty"))
    if how == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif how == "drop":
        del lines[i]
    elif how == "dup":
        lines.insert(i, lines[j])
    elif how == "append":
        lines.append(rng.choice(("zzz", "<unk>", "", "a b", "\u202e")))
    elif how == "change":
        lines[i] = rng.choice(("", " ", "<eos>", "<pad>", "x" * 5000, "\x00", "é\u0301"))
    else:
        lines = [""]
    new_vocab = "\n".join(lines).encode("utf-8")
    if consistent:
        try:
            meta = json.loads(config)
            meta["tokenizer"]["vocab_sha256"] = hashlib.sha256(new_vocab).hexdigest()
            meta["tokenizer"]["vocab_size"] = meta["model"]["vocab_size"] = len(lines) - (lines[-1:] == [""])
            config = json.dumps(meta, ensure_ascii=False).encode("utf-8")
        except (ValueError, TypeError, KeyError):
            pass
    return new_vocab, config


def mutate(data: bytes, kind: str, resign: bool, rng: random.Random) -> bytes:
    """One mutant of ``data`` (a valid exported file) of this kind."""
    if detect_format(data) == "tflite":
        parts = TFLiteParts(data)
        flatbuffer, vocab, config = parts.flatbuffer, parts.vocab, parts.config
        if kind in BYTE_KINDS:
            if not resign:
                return damage_bytes(data, kind, rng)
            flatbuffer = damage_bytes(flatbuffer, kind, rng)
        elif kind == "zip":
            name = rng.choice((VOCAB_NAME, CONFIG_NAME))
            if name == VOCAB_NAME:
                vocab = damage_bytes(vocab, rng.choice(BYTE_KINDS), rng)
            else:
                config = damage_bytes(config, rng.choice(BYTE_KINDS), rng)
        elif kind == "config":
            config = edit_config(config, rng)
        else:
            vocab, config = edit_vocab(vocab, config, rng, consistent=rng.random() < 0.5)
        return parts.assemble(flatbuffer, vocab, config, resign=resign)
    # ONNX: one protobuf; metadata_props hold the config and the vocabulary.
    if kind in BYTE_KINDS or kind == "zip":
        out = damage_bytes(data, kind if kind in BYTE_KINDS else "bitflip", rng)
    else:
        props = onnx_metadata_props(data)
        config, vocab = props[ONNX_CONFIG_KEY][0].encode(), props[ONNX_VOCAB_KEY][0].encode()
        if kind == "config":
            out = onnx_set_prop(data, ONNX_CONFIG_KEY, edit_config(config, rng))
        else:
            vocab, config = edit_vocab(vocab, config, rng, consistent=rng.random() < 0.5)
            out = onnx_set_prop(onnx_set_prop(data, ONNX_VOCAB_KEY, vocab), ONNX_CONFIG_KEY, config)
    return onnx_resign(out) if resign else out


# ------------------------------------------------------------------------------ worker
def worker() -> None:
    """Child process: one path per stdin line, one JSON outcome per stdout line."""
    import math

    from nextword import Predictor
    from nextword.engines import installed_engines
    from nextword.errors import NextwordError

    answers = os.fdopen(os.dup(1), "w", buffering=1)  # engines' own prints go to stderr, not into the answers
    os.dup2(2, 1)
    for line in sys.stdin:
        path = line.rstrip("\n")
        outcome, detail = "accepted", ""
        try:
            fmt = detect_format(Path(path).read_bytes()[:16]) or "tflite"
            for engine in installed_engines(fmt) or [None]:
                predictor = Predictor.load(path, engine=engine)
                suggestions = predictor.suggest("the cat sat on the", 3) + predictor.suggest("hello wo", 3)
                session = predictor.session()
                session.feed("we want some tea today " * 3)
                suggestions += session.suggest(3)
                if not all(math.isfinite(s.prob) and 0.0 <= s.prob <= 1.0 for s in suggestions):
                    outcome, detail = "bad_output", repr([s.prob for s in suggestions][:3])
        except NextwordError as err:
            outcome, detail = "refused", f"{type(err).__name__}: {str(err)[:160]}"
        except BaseException as err:  # noqa: BLE001 - classifying is the point
            import traceback

            frame = traceback.extract_tb(err.__traceback__)[-1]
            outcome, detail = "untyped", (f"{type(err).__name__}: {str(err)[:160]} "
                                          f"({Path(frame.filename).name}:{frame.lineno})")
        print(json.dumps({"outcome": outcome, "detail": detail}), file=answers, flush=True)


class Worker:
    """A worker process, restarted after a crash or a hang."""

    def __init__(self, python: str, timeout: float) -> None:
        self.python, self.timeout = python, timeout
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        # This folder first, then whatever path the caller runs with (an environment installed with --target).
        path = os.pathsep.join(p for p in (str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.Popen([self.python, "-c", "import fuzz; fuzz.worker()"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                bufsize=1)

    def classify(self, path: Path) -> tuple[str, str]:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        answer = _readline(self.process, self.timeout)
        if answer is None:  # no line in time: hung
            self.process.kill()
            self.process.wait()
            self.process = None
            return "hang", f"no answer in {self.timeout:g} s"
        if answer == "":  # end of output: the worker died
            code = self.process.wait()
            self.process = None
            return "crash", signal.Signals(-code).name if code < 0 else f"exit {code}"
        result = json.loads(answer)
        return result["outcome"], result["detail"]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def _readline(process: subprocess.Popen, timeout: float) -> str | None:
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            return process.stdout.readline()  # "" at end of output: the worker died
    return None


# ------------------------------------------------------------------------------- runner
def campaign(seeds: list[Path], mutants: int, python: str, *, timeout: float = 30.0, seed: int = 0,
             kinds: tuple[str, ...] = KINDS, log=print) -> dict:
    """Mutate every seed file ``mutants`` times per kind (and resigned), classify each; the summary."""
    rng = random.Random(seed)
    engines = json.loads(subprocess.run(
        [python, "-c", "import json; from nextword.engines import installed_engines as i; "
                       "print(json.dumps({f: i(f) for f in ('tflite', 'onnx')}))"],
        capture_output=True, text=True, check=True).stdout)
    skipped = [str(p) for p in seeds if not engines.get(detect_format(Path(p).read_bytes()[:16]) or "")]
    if skipped:
        log(f"skipped (no engine for their format in {python}): {', '.join(skipped)}")
    seeds = [p for p in seeds if str(p) not in skipped]
    worker_process = Worker(python, timeout)
    rows, examples = Counter(), {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nextword-fuzz-") as tmp:
        try:
            for seed_path in seeds:
                data = Path(seed_path).read_bytes()
                label_file = f"{Path(seed_path).parent.name}/{Path(seed_path).name}"
                fmt = detect_format(data)
                for kind in kinds:
                    if kind == "zip" and fmt != "tflite":
                        continue
                    for resign in (False, True):
                        label = kind + ("+resigned" if resign else "")
                        for index in range(mutants):
                            mutant = Path(tmp) / f"{index}{Path(seed_path).suffix}"
                            mutant.write_bytes(mutate(data, kind, resign, rng))
                            outcome, detail = worker_process.classify(mutant)
                            rows[(label_file, label, outcome)] += 1
                            if outcome in FAILURES:
                                examples.setdefault((label_file, label, outcome, detail[:60]), detail)
                        log(f"{label_file:32} {label:18} " + " ".join(
                            f"{o}={rows[(label_file, label, o)]}" for o in OUTCOMES if rows[(label_file, label, o)]))
        finally:
            worker_process.close()
    totals = Counter()
    for (_, _, outcome), count in rows.items():
        totals[outcome] += count
    return {"python": python, "engines": engines, "skipped": skipped, "mutants_per_kind": mutants, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "totals": {o: totals[o] for o in OUTCOMES},
            "rows": [{"file": f, "kind": k, "outcome": o, "count": c} for (f, k, o), c in sorted(rows.items())],
            "failures": [{"file": f, "kind": k, "outcome": o, "detail": d} for (f, k, o, _), d in examples.items()]}


def markdown(summaries: dict[str, dict]) -> str:
    """One table: engine and format x kind -> outcomes, summed over the seed files."""
    lines = ["| engine (format) | kind | files | " + " | ".join(OUTCOMES) + " |",
             "|---|---|---|" + "---|" * len(OUTCOMES)]
    for name, summary in summaries.items():
        by_kind: dict[str, Counter] = {}
        for row in summary["rows"]:
            by_kind.setdefault(row["kind"], Counter())[row["outcome"]] += row["count"]
        for kind, counts in by_kind.items():
            lines.append(f"| {name} | {kind} | {sum(counts.values()):,} | "
                         + " | ".join(f"{counts[o]:,}" for o in OUTCOMES) + " |")
        totals = summary["totals"]
        lines.append(f"| **{name}** | **all** | **{sum(totals.values()):,}** | "
                     + " | ".join(f"**{totals[o]:,}**" for o in OUTCOMES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="exported .tflite / .onnx files to mutate")
    parser.add_argument("--mutants", type=int, default=20, help="mutants per file, kind and resigning (default 20)")
    parser.add_argument("--python", default=sys.executable, help="the Python of the environment to test")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a file counts as a hang")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args(argv)
    summary = campaign(args.files, args.mutants, args.python, timeout=args.timeout, seed=args.seed,
                       kinds=tuple(args.kinds.split(",")))
    print(json.dumps(summary["totals"]), f"in {summary['seconds']} s")
    for failure in summary["failures"][:40]:
        print("  ", failure)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 1 if any(summary["totals"][o] for o in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
