"""The ``nextword`` command: a thin dispatcher over the stages' own CLI modules.

    nextword train --out runs/default          # train on the embedded corpus
    nextword train --corpus notes.txt --out runs/notes --mode stream

Each subcommand lives beside its stage (``nextword.train.cli`` ...) and imports
TensorFlow only when it runs, so ``nextword --help`` works on a device. Errors
nextword raises on purpose print one line and exit non-zero; so does anything
unexpected (set NEXTWORD_DEBUG=1 to see its traceback). The native libraries'
log lines are filtered out unless ``--verbose`` (``nextword.cli.console``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from nextword import __version__
from nextword.cli.console import quiet_native_logs
from nextword.errors import NextwordError

#: Subcommand name -> module with ``add_parser(subparsers)``.
SUBCOMMANDS = {
    "train": "nextword.train.cli",
    "export": "nextword.export.cli",
    "inspect": "nextword.cli.inspect",
    "predict": "nextword.cli.predict",
    "keyboard": "nextword.cli.keyboard",
    "eval": "nextword.cli.eval",
    "bench": "nextword.cli.bench",
    "keygen": "nextword.cli.keygen",
    "sign": "nextword.cli.sign",
    "profile": "nextword.cli.profile",
    "web": "nextword.cli.web",
}

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
#: The reader of our output went away (``nextword inspect --json | head``): stop quietly, as Unix tools do.
EXIT_BROKEN_PIPE = 141
VERBOSE_HELP = "show the log lines of TensorFlow, the converters and the engines (hidden by default)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nextword",
        description="Train, export and run an LSTM next-word predictor.",
    )
    parser.add_argument("--version", action="version", version=f"nextword {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(subparsers)
    for subparser in subparsers.choices.values():  # `nextword train ... --verbose` as well
        subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse gives an optional positional (predict's TEXT) its empty value before later options, so
        # `predict MODEL --json -- "-hi"` leaves the text over: it is the text after `--`.
        if getattr(args, "text", "") is None and extra[0] == "--" and len(extra) > 1:
            args.text = " ".join(extra[1:])
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with contextlib.nullcontext() if args.verbose else quiet_native_logs():
            return int(args.run(args) or 0)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except NextwordError as err:
        _fail(args.command, str(err))
        return err.exit_code
    except KeyboardInterrupt:
        _fail(args.command, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # the promise is: never a traceback
        if os.environ.get("NEXTWORD_DEBUG"):
            raise
        detail = " ".join(str(err).split())[:300]
        _fail(args.command, f"unexpected {type(err).__name__}: {detail} (set NEXTWORD_DEBUG=1 for the traceback)")
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _fail(command: str, message: str) -> None:
    print(f"nextword {command}: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
