"""``nextword keyboard MODEL``: type, and watch the suggestion strip follow every keystroke.

    nextword keyboard models/default/model.int8.tflite

The Raspberry Pi script: it needs only the runtime and one engine. Keys:
Tab accepts the first suggestion, 1-3 accept that one, Backspace deletes,
Ctrl-U clears the line, Enter starts a new line, Ctrl-C or Ctrl-D quits.
When standard input is not a terminal it falls back to line mode: each line
read is answered with its suggestions.
"""

from __future__ import annotations

import os
import sys

from nextword.predict_cli import add_engine_options
from nextword.predictor import Predictor

HELP = "Tab: accept 1st | 1-3: accept | Backspace | Ctrl-U: clear | Enter: new line | Ctrl-C/Ctrl-D: quit"
CTRL_C, CTRL_D, CTRL_U, TAB, ENTER, BACKSPACES = "\x03", "\x04", "\x15", "\t", ("\r", "\n"), ("\x7f", "\x08")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("keyboard", help="interactive suggestion strip in the terminal (the Pi script)",
                              description="Type in the terminal and see the top suggestions update at every "
                                          "keystroke. " + HELP)
    p.add_argument("model", metavar="MODEL", help="a .tflite or .onnx file written by `nextword export`")
    p.add_argument("-k", type=int, default=3, help="suggestions in the strip (default 3, at most 9)")
    add_engine_options(p)
    p.set_defaults(run=run)


class Keyboard:
    """The editing logic, separate from the terminal so it can be tested directly."""

    def __init__(self, predictor: Predictor, k: int = 3) -> None:
        self.predictor = predictor
        self.k = max(1, min(k, 9))
        self.text = ""

    def suggestions(self):
        context, partial = self.predictor.split_partial(self.text)
        return self.predictor.rank(self.predictor.probabilities(context), self.k, partial)

    def accept(self, index: int) -> bool:
        options = self.suggestions()
        if index >= len(options):
            return False
        _, partial = self.predictor.split_partial(self.text)
        cut = len(self.text) - len(self.text.rsplit(None, 1)[-1]) if partial else len(self.text)
        if partial and not self.text[cut:].lower().startswith(partial):
            cut = len(self.text) - len(partial)  # "don't" style: only the last piece is replaced
        self.text = self.text[:cut] + options[index].word + " "
        return True

    def key(self, char: str) -> str | None:
        """Apply one key; returns "quit" or "line" when the session or the line ends."""
        if char in (CTRL_C, CTRL_D):
            return "quit"
        if char in ENTER:
            return "line"
        if char == TAB:
            self.accept(0)
        elif char in "123456789" and int(char) <= self.k:
            self.accept(int(char) - 1)
        elif char in BACKSPACES:
            self.text = self.text[:-1]
        elif char == CTRL_U:
            self.text = ""
        elif char.isprintable():
            self.text += char
        return None

    def strip(self) -> str:
        shown = self.suggestions()
        return "   ".join(f"[{i}] {s.word}" for i, s in enumerate(shown, start=1)) or "(no suggestion)"


def _read_key(fd: int) -> str:
    data = os.read(fd, 4)
    if not data:
        return CTRL_D
    if data.startswith(b"\x1b"):  # arrows and other escape sequences: ignored
        return ""
    return data.decode("utf-8", "replace")


def interactive(keyboard: Keyboard) -> int:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    out = sys.stdout
    out.write(f"nextword keyboard ({keyboard.predictor.engine_name}, {keyboard.predictor.model.path.name})\r\n"
              f"{HELP}\r\n\r\n")
    try:
        tty.setraw(fd)
        while True:
            # Two lines, redrawn in place: the text, then the suggestion strip.
            out.write(f"\r\x1b[2K> {keyboard.text}\r\n\x1b[2K  {keyboard.strip()}\x1b[1A\r\x1b[{len(keyboard.text) + 2}C")
            out.flush()
            for char in _read_key(fd):
                action = keyboard.key(char)
                if action == "quit":
                    out.write("\r\n\r\n")
                    return 0
                if action == "line":
                    out.write(f"\r\x1b[2K> {keyboard.text}\r\n\x1b[2K\r\n")
                    keyboard.text = ""
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        out.flush()


def line_mode(keyboard: Keyboard) -> int:
    """Each line read is a whole context (as in `nextword predict`), answered with its strip."""
    predictor = keyboard.predictor
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        shown = predictor.suggest(text, keyboard.k)
        strip = "   ".join(f"[{i}] {s.word}" for i, s in enumerate(shown, start=1)) or "(no suggestion)"
        print(f"> {text}\n  {strip}", flush=True)
    return 0


def run(args) -> int:
    keyboard = Keyboard(Predictor.load(args.model, engine=args.engine, threads=args.threads), args.k)
    if sys.stdin.isatty() and sys.stdout.isatty():
        return interactive(keyboard)
    return line_mode(keyboard)
