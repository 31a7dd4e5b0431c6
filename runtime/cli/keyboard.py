"""``nextword keyboard MODEL``: type, and watch the suggestion strip follow every keystroke.

    nextword keyboard models/default/model.int8.tflite

    nextword keyboard models/default/model.int8.tflite --profile me.profile   # learns from what you send

The Raspberry Pi script: it needs only the runtime and one engine. Keys:
Tab accepts the first suggestion, Alt+1..9 (or Esc, then the digit) accepts that one, digits are
text, Backspace deletes, Ctrl-U clears the line, Enter sends the line (with ``--profile`` the
keyboard learns from it, unless ``--incognito``), Ctrl-B blocks the word under the cursor,
Ctrl-C or Ctrl-D quits.
The typed line scrolls sideways instead of wrapping, so a line longer than the terminal never
leaves stale copies behind. When standard input is not a terminal it falls back to line mode:
each line read is answered with its suggestions.
"""

from __future__ import annotations

import os
import shutil
import sys

from nextword.cli.predict import add_engine_options
from nextword.predictor import Predictor, check_k
from nextword.profile import Profile, ProfileError, read_blocklist

HELP = ("Tab: accept 1st | Alt+1..9 (or Esc, digit): accept that one | Backspace | Ctrl-U: clear | "
        "Enter: send | Ctrl-B: block the word | Ctrl-C/Ctrl-D: quit")
CTRL_B, CTRL_C, CTRL_D, CTRL_U, TAB = "\x02", "\x03", "\x04", "\x15", "\t"
ENTER, BACKSPACES = ("\r", "\n"), ("\x7f", "\x08")
ESC = "\x1b"
#: Suggestions the strip can show: one Alt+digit each.
MAX_K = 9


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("keyboard", help="interactive suggestion strip in the terminal (the Pi script)",
                              description="Type in the terminal and see the top suggestions update at every "
                                          "keystroke. " + HELP)
    p.add_argument("model", metavar="MODEL", help="a .tflite or .onnx file written by `nextword export`")
    p.add_argument("-k", type=int, default=3, help=f"suggestions in the strip (default 3, 1 to {MAX_K})")
    p.add_argument("--profile", metavar="FILE",
                   help="learn from every line you send and suggest your own words (created if missing)")
    p.add_argument("--incognito", action="store_true", help="use the profile but learn and store nothing")
    p.add_argument("--block", metavar="FILE", help="words never to suggest, one per line")
    add_engine_options(p)
    p.set_defaults(run=run)


def check_strip_k(k: int) -> None:
    check_k(k, MAX_K, too_many=f"-k {k}: the strip shows 1 to {MAX_K} suggestions (one Alt+digit each)")


class Keyboard:
    """The editing logic, separate from the terminal so it can be tested directly."""

    def __init__(self, predictor: Predictor, k: int = 3, profile: Profile | None = None, *,
                 incognito: bool = False, block=()) -> None:
        check_strip_k(k)
        self.predictor = predictor
        self.k = k
        self.text = ""
        #: One line shown in place of the strip until the next key (e.g. "no suggestion 3").
        self.message = ""
        self.profile = profile
        self.incognito = incognito
        self.session = predictor.session(profile, incognito=incognito, block=block)
        self._fed: str | None = None  # the context the session holds

    def suggestions(self, text: str | None = None, partial: str | None = None):
        if text is None:
            text, partial = self.predictor.split_partial(self.text)
        if text != self._fed:
            self.session.reset()
            self.session.feed(text)
            self._fed = text
        return self.session.suggest(self.k, partial or "")

    def send(self) -> None:
        """Enter: the line is sent. With a profile (not incognito) it is learned and the profile saved."""
        self.session.reset()
        self.session.feed(self.text)
        self.session.commit()
        self._fed = None
        self.text = ""
        if self.profile is not None and not self.incognito and self.profile.path is not None:
            self._save()

    def _save(self) -> None:
        """Save the profile; a failure is said in the strip and typing goes on (what was learned stays in
        memory and is saved at the next message that can be)."""
        try:
            self.profile.save()
        except ProfileError as err:
            self.message = str(err)

    def block_last_word(self) -> None:
        """Ctrl-B: the word under the cursor (the last one typed) is never suggested again."""
        tokens = self.predictor.tokenizer.split(self.text)
        if not tokens:
            self.message = "no word to block"
            return
        if self.session.profile is None:
            self.session = self.predictor.session(block=[tokens[-1]])
        elif self.profile is not None and not self.incognito:
            self.profile.block(tokens[-1])
            if self.profile.path is not None:
                self._save()
        else:
            self.session.profile.block(tokens[-1], keep=False)
        self._fed = None
        if not self.message:
            self.message = f"blocked \"{tokens[-1]}\": never suggested again"

    def accept(self, index: int) -> bool:
        options = self.suggestions()
        if index >= len(options):
            self.message = f"no suggestion {index + 1} to accept"
            return False
        _, partial = self.predictor.split_partial(self.text)
        cut = len(self.text) - len(self.text.rsplit(None, 1)[-1]) if partial else len(self.text)
        if partial and not self.text[cut:].lower().startswith(partial):
            cut = len(self.text) - len(partial)  # "don't" style: only the last piece is replaced
        self.text = self.text[:cut] + options[index].word + " "
        return True

    def key(self, key: str) -> str | None:
        """Apply one key (a character, or Esc + digit); returns "quit" or "line" when the session or line ends."""
        self.message = ""
        if key in (CTRL_C, CTRL_D):
            return "quit"
        if key in ENTER:
            return "line"
        if key == TAB:
            self.accept(0)
        elif key == CTRL_B:
            self.block_last_word()
        elif len(key) == 2 and key[0] == ESC and key[1] in "123456789":
            self.accept(int(key[1]) - 1)
        elif key in BACKSPACES:
            self.text = self.text[:-1]
        elif key == CTRL_U:
            self.text = ""
        elif len(key) == 1 and key.isprintable():
            self.text += key
        return None

    def strip(self) -> str:
        if self.message:
            return f"({self.message})"
        shown = self.suggestions()
        return "   ".join(f"[{i}] {s.word}" for i, s in enumerate(shown, start=1)) or "(no suggestion)"


def split_keys(data: str, pending_escape: bool = False) -> tuple[list[str], bool]:
    """Keys in what one read returned: Esc + digit is one key (Alt+digit); other escape sequences
    (arrows, function keys) are dropped. Returns the keys and whether a lone Esc is still waiting for its digit."""
    keys, index = [], 0
    if pending_escape and data:
        data = ESC + data
    while index < len(data):
        char = data[index]
        if char != ESC:
            keys.append(char)
            index += 1
            continue
        following = data[index + 1: index + 2]
        if not following:
            return keys, True
        if following in "123456789":
            keys.append(ESC + following)
            index += 2
        else:  # Alt + another key, or a CSI / SS3 sequence (arrows ...): skip it whole
            index += 2
            if following in "[O":
                while index < len(data) and not (data[index].isalpha() or data[index] == "~"):
                    index += 1
                index += 1
    return keys, False


def render(keyboard: Keyboard, columns: int) -> tuple[str, int]:
    """The two screen lines, each shorter than the terminal: (text, cursor column after the text).

    The typed line scrolls: only its tail is drawn, so it never wraps (a wrapped line cannot be
    cleared with one erase, which is what left stale copies on screen)."""
    room = max(columns - 3, 4)  # "> " and one column for the cursor
    text = keyboard.text
    visible = text if len(text) <= room else "…" + text[-(room - 1):]
    line = f"> {visible}"
    strip = "  " + keyboard.strip()
    if len(strip) > columns - 1:
        strip = strip[: max(columns - 2, 1)] + "…"
    return f"\r\x1b[2K{line}\r\n\x1b[2K{strip}\x1b[1A\r\x1b[{len(line)}C", len(line)


def _columns() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def interactive(keyboard: Keyboard) -> int:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    out = sys.stdout
    name = keyboard.predictor.model.path.name if keyboard.predictor.model else "model"
    out.write(f"nextword keyboard ({keyboard.predictor.engine_name}, {name})\r\n{HELP}\r\n\r\n")
    pending_escape = False
    try:
        tty.setraw(fd)
        while True:
            # Two lines, redrawn in place: the text, then the suggestion strip.
            screen, _ = render(keyboard, _columns())
            out.write(screen)
            out.flush()
            data = os.read(fd, 64)
            if not data:
                out.write("\r\n\r\n")
                return 0
            keys, pending_escape = split_keys(data.decode("utf-8", "replace"), pending_escape)
            for key in keys:
                action = keyboard.key(key)
                if action == "quit":
                    out.write("\r\n\r\n")
                    return 0
                if action == "line":
                    line, _ = render(keyboard, _columns())
                    out.write(line.split("\r\n")[0] + "\r\n\x1b[2K\r\n")
                    keyboard.send()
                elif keyboard.message and not keyboard.message.startswith("blocked"):
                    out.write("\a")  # the terminal's bell: that key did nothing
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        out.flush()


def line_mode(keyboard: Keyboard) -> int:
    """Each line read is a whole context (as in `nextword predict`), answered with its strip; with a
    profile, each line is then sent (learned)."""
    predictor = keyboard.predictor
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        index = keyboard.session.profile.index(predictor.words) if keyboard.session.profile else None
        shown = keyboard.suggestions(*predictor.completion_target(text, index))
        strip = "   ".join(f"[{i}] {s.word}" for i, s in enumerate(shown, start=1)) or "(no suggestion)"
        print(f"> {text}\n  {strip}", flush=True)
        if keyboard.profile is not None:
            keyboard.text = text
            keyboard.send()
            if keyboard.message:  # the profile could not be saved: said, and the lines go on
                print(f"nextword keyboard: {keyboard.message}", file=sys.stderr, flush=True)
                keyboard.message = ""
    return 0


def run(args) -> int:
    check_strip_k(args.k)  # before loading the model
    block = read_blocklist(args.block) if args.block else []
    predictor = Predictor.load(args.model, engine=args.engine, threads=args.threads, trust=args.trust)
    profile = Profile.open(args.profile, predictor.tokenizer) if args.profile else None
    keyboard = Keyboard(predictor, args.k, profile, incognito=args.incognito, block=block)
    if sys.stdin.isatty() and sys.stdout.isatty():
        return interactive(keyboard)
    return line_mode(keyboard)
