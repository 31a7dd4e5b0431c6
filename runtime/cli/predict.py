"""``nextword predict MODEL [TEXT] [-k 3] [--json]``: suggestions from a model file.

    nextword predict models/default/model.int8.tflite "hello how is"
    nextword predict models/default/model.onnx "hello how is" --json
    printf 'see you\\nthank you for the\\n' | nextword predict models/default/model.tflite

With no TEXT, every line of standard input is a context, one answer per line.
"""

from __future__ import annotations

import json
import sys

from nextword.errors import UsageError
from nextword.modelfile.contract import ALL_ENGINES
from nextword.predictor import Predictor


def add_engine_options(parser) -> None:
    parser.add_argument("--engine", choices=ALL_ENGINES,
                        help="inference engine (default: the best one installed for the file's format)")
    parser.add_argument("--threads", type=int, help="engine threads (default: the engine's choice)")
    add_trust_option(parser)


def add_trust_option(parser) -> None:
    parser.add_argument("--trust", metavar="KEY.pub", default=None,
                        help="run the model only if it is signed with this Ed25519 public key (PEM, from "
                             "`nextword keygen`; needs the cryptography package)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="suggest the next word for a text, from a model file",
                              description="Print the k most likely next words (or completions of an unfinished "
                                          "last word) for TEXT, or for every line of standard input.")
    p.add_argument("model", metavar="MODEL", help="a .tflite or .onnx file written by `nextword export`")
    p.add_argument("text", metavar="TEXT", nargs="?", help="the text typed so far (default: read lines from stdin); text that starts "
                        "with '-' goes after `--`: nextword predict MODEL -- \"-so\"")
    p.add_argument("-k", type=int, default=3, help="number of suggestions (default 3)")
    p.add_argument("--json", action="store_true", help='print {"suggestions": [{"word": ..., "prob": ...}]}')
    add_engine_options(p)
    p.set_defaults(run=run)


def _format(suggestions, as_json: bool) -> str:
    if as_json:
        return json.dumps({"suggestions": [{"word": s.word, "prob": round(s.prob, 6)} for s in suggestions]},
                          ensure_ascii=False)
    return "  ".join(f"{s.word} ({s.prob:.2f})" for s in suggestions) or "(no suggestion)"


def run(args) -> int:
    predictor = Predictor.load(args.model, engine=args.engine, threads=args.threads, trust=args.trust)
    predictor.rank(predictor.probabilities(""), args.k)  # validates k before any output
    if args.text is not None:
        print(_format(predictor.suggest(args.text, args.k), args.json))
        return 0
    if sys.stdin.isatty():  # a person at a terminal, not a pipe: say why nothing happens yet
        print("reading texts from standard input, one per line (Ctrl-D to end; or give TEXT as an argument)",
              file=sys.stderr)
    for number, raw in enumerate(sys.stdin.buffer, start=1):  # bytes: the locale's codec never decides
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"standard input line {number} is not UTF-8 text; convert it (e.g. iconv -t UTF-8)") \
                from None
        print(_format(predictor.suggest(line.rstrip("\r\n"), args.k), args.json), flush=True)
    return 0
