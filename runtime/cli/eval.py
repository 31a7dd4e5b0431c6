"""``nextword eval MODEL --text FILE [--context line|stream] [--json]``.

    nextword eval models/default/model.int8.tflite --text notes.txt
    nextword eval runs/default --text notes.txt --context stream --json     # the Keras model (train extra)
    nextword eval runs/ptb --text ptb.test.txt --trigram ptb.train.txt       # against an n-gram keyboard

MODEL is a model file (.tflite, .onnx: scored through the runtime, as on the device) or a training run
directory (its Keras model; needs the `train` extra). See ``nextword.measure.evaluate`` for the measures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nextword.cli.predict import add_engine_options
from nextword.errors import TextFileError, UsageError
from nextword.fileio import read_lines
from nextword.runs import MODEL_FILE, path_kind
from nextword.measure.evaluate import CONTEXTS, evaluate


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="perplexity, top-k accuracy and keystroke savings on a text file",
                              description="Score a model file or a training run on a text file, one sentence "
                                          "per line.")
    p.add_argument("model", metavar="MODEL", help="a .tflite/.onnx file, or a `nextword train` run directory")
    p.add_argument("--text", required=True, metavar="FILE", help="UTF-8 text, one sentence per line")
    p.add_argument("--context", choices=CONTEXTS, default="line",
                   help="line: context restarts at every line (a keyboard; default); stream: runs across lines")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--trigram", nargs="+", metavar="CORPUS",
                   help="also score a Kneser-Ney trigram trained on these files with the model's tokenizer "
                        "(the n-gram keyboard to beat); JSON: under \"trigram\"")
    p.add_argument("--adapt", action="store_true",
                   help="simulate one user typing the lines in order, each sent after it is scored, with a "
                        "profile that learns from them: every measure with and without it (JSON: \"baseline\")")
    p.add_argument("--profile", metavar="FILE", help="with --adapt: start from this profile instead of an empty one "
                                                     "(it is not changed)")
    p.add_argument("--threshold", type=int, metavar="N",
                   help="with --adapt and no --profile: times an unknown word is sent before it is suggested "
                        "(default: the profile's, 2)")
    add_engine_options(p)
    p.set_defaults(run=run)


def _scorer(model: Path, engine: str | None, threads: int | None, trust: str | None = None):
    """(window function, tokenizer, window, description) for a model file or a run directory."""
    if path_kind(model) in ("run", "folder"):  # a folder without config.json: load_run says what is missing
        from nextword.deps import require

        require("tensorflow", extra="train", command="eval RUN_DIR")
        from nextword.train.loading import load_run
        from nextword.train.model import KerasEngine

        loaded = load_run(model)
        return (KerasEngine(loaded.model).window, loaded.tokenizer, loaded.config.window,
                f"Keras {model / MODEL_FILE}")
    from nextword.predictor import Predictor

    predictor = Predictor.load(model, engine=engine, threads=threads, trust=trust)
    return (predictor.engine.window, predictor.tokenizer, predictor.config.window,
            f"{predictor.engine_name} {model.name} ({predictor.model.precision})")


def run(args) -> int:
    if args.adapt:
        return _run_adapted(args)
    if args.profile or args.threshold is not None:
        raise UsageError("--profile and --threshold are for --adapt")
    window_fn, tokenizer, window, description = _scorer(Path(args.model), args.engine, args.threads, args.trust)
    text = Path(args.text)
    total = sum(1 for _ in read_lines(text))  # also checks the file before any scoring
    if total == 0:
        raise TextFileError(f"{text} holds no text")
    trigram = _trigram(args.trigram, tokenizer, args.context) if args.trigram else None  # its files checked first
    progress = _progress_bar(not args.json)
    result = evaluate(window_fn, tokenizer, window, read_lines(text), context=args.context,
                      progress=progress.update if progress else None)
    if progress:
        progress.close()
    result = {"model": description, "text": str(text), **result}
    if trigram is not None:
        result["trigram"] = {"model": trigram.description, "tokens_trained": trigram.tokens,
                             **evaluate(trigram.window_fn(window), tokenizer, window, read_lines(text),
                                        context=args.context)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_scores(result, text, args.context)
    if args.trigram:
        _print_scores(result["trigram"], text, args.context)
    return 0


def _run_adapted(args) -> int:
    model = Path(args.model)
    if path_kind(model) in ("run", "folder"):
        raise UsageError("--adapt runs a model file the way a keyboard does: give a .tflite or .onnx file")
    if args.context != "line" or args.trigram:
        raise UsageError("--adapt scores a keyboard user's messages (line context) without --trigram")
    from nextword.measure.evaluate import evaluate_adapted
    from nextword.predictor import Predictor
    from nextword.profile import Profile

    predictor = Predictor.load(model, engine=args.engine, threads=args.threads, trust=args.trust)
    if args.profile and args.threshold is not None:
        raise UsageError("--threshold is for a new profile: the one given keeps its own")
    profile = Profile.load(args.profile) if args.profile else Profile(**(
        {"threshold": args.threshold} if args.threshold is not None else {}))
    profile.path = None  # the simulation learns in memory only
    text = Path(args.text)
    total = sum(1 for _ in read_lines(text))
    if total == 0:
        raise TextFileError(f"{text} holds no text")
    progress = _progress_bar(not args.json)
    result = evaluate_adapted(predictor, read_lines(text), profile, progress=progress.update if progress else None)
    if progress:
        progress.close()
    description = f"{predictor.engine_name} {model.name} ({predictor.model.precision})"
    result = {"model": description, "text": str(text), **result}
    result["baseline"] = {"model": description, "text": str(text), **result["baseline"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_scores(result["baseline"], text, "line", "without adaptation")
    _print_scores(result, text, "line", "adapted to the user as they type")
    print(f"  words outside the vocabulary: {result['unknown_word_share']:.2%} of word targets, "
          f"{result['personal_word_share']:.2%} already personal words when typed")
    print("  learned weights (model/user/recent) by context evidence: " + ", ".join(
        f"{b} {w['model']:.2f}/{w['user']:.2f}/{w['recent']:.2f}" for b, w in result["mixing_weights"].items()))
    return 0


def _trigram(paths: list[str], tokenizer, context: str):
    from nextword.measure.ngram import KneserNeyTrigram

    def lines():
        for path in paths:
            yield from read_lines(Path(path))

    try:
        trigram = KneserNeyTrigram(tokenizer, lines(), context=context)
    except ValueError:
        raise TextFileError(f"{' '.join(paths)} holds no text to train the trigram on") from None
    trigram.description = f"Kneser-Ney trigram trained on {', '.join(paths)} ({trigram.tokens:,} tokens)"
    return trigram


def _print_scores(result: dict, text: Path, context: str, note: str = "") -> None:
    note = f", {note}" if note else ""
    print(f"{result['model']} on {text} ({context} context, {result['tokens']:,} tokens{note})")
    print(f"  perplexity     {result['perplexity']:.2f}")
    print(f"  top-1/3/5      {result['top1']:.2%} / {result['top3']:.2%} / {result['top5']:.2%}  (full distribution)")
    print(f"  suggest top-1/3 {result['suggest_top1']:.2%} / {result['suggest_top3']:.2%}  "
          f"(as the keyboard shows it, {result['suggest_tokens']:,} word targets)")
    print(f"  keystroke savings {result['ksr']:.2%}  (3 suggestions)")


def _progress_bar(enabled: bool):
    """A tqdm bar on stderr when tqdm is installed (it is with the train and litert extras)."""
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(unit=" tokens", unit_scale=True, file=sys.stderr, leave=False)
