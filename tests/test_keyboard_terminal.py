"""The keyboard in a real pseudo-terminal of a given width, read back through a terminal emulator (pyte).

What a person sees is what the emulator's screen holds after every byte the program wrote, cursor
movements and erases included: stale copies of a wrapped line would show up here as extra rows.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

import pytest

pyte = pytest.importorskip("pyte")

from nextword.predictor import Predictor  # noqa: E402

ROWS = 24


class Terminal:
    def __init__(self, args: list[str], columns: int) -> None:
        self.screen = pyte.Screen(columns, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the keyboard in a terminal of this size (fd 0 is the pty here)
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))
                os.execve(sys.executable, [sys.executable, "-m", "nextword", *args], env)
            finally:
                os._exit(127)  # never return into the test runner

    def read(self, until: str | None = None, timeout: float = 60.0, quiet: float = 0.4) -> str:
        """Feed output to the emulator until ``until`` is on screen (then until the program is quiet)."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.stream.feed(data)
                last = time.monotonic()
            elif (until is None or until in self.text()) and time.monotonic() - last > quiet:
                break
        return self.text()

    def type(self, data: bytes, until: str | None = None) -> str:
        for byte in data:  # one key at a time, as a person types
            os.write(self.fd, bytes([byte]))
            self.read(quiet=0.02, timeout=5)
        return self.read(until)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def typed_rows(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display if line.startswith(">")]

    def close(self) -> int:
        os.write(self.fd, b"\x03")
        self.read(timeout=5)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("columns, line", [
    (40, "how about seven at the usual place then we can go to the cinema cinema"),
    (60, "how about seven at the usual place then we can go to the cinema cinema"),
    (100, "we want some tea today and they like the news and you need a walk and i see the train "
          "today we want coffee now"),
])
def test_a_line_longer_than_the_terminal_scrolls_without_stale_copies(exported, columns, line):
    assert len(line) > columns
    _, models, _ = exported
    term = Terminal(["keyboard", str(models / "model.tflite")], columns)
    try:
        term.read("[1]")
        term.type(line.encode())
        rows = term.typed_rows()
        assert len(rows) == 1, term.text()  # one text row, however long the line
        assert rows[0].endswith(line[-(columns - 6):]) and len(rows[0]) < columns
        strip_row = term.screen.display[term.screen.display.index(next(
            r for r in term.screen.display if r.startswith(">"))) + 1]
        assert "[1]" in strip_row or "(no suggestion)" in strip_row
        term.type(b"\x7f\x7f\x7f")  # three Backspaces: still one row, three characters shorter
        rows = term.typed_rows()
        assert len(rows) == 1 and rows[0].endswith(line[:-3][-(columns - 6):].rstrip()), term.text()
        assert "in[1]" not in term.text()
    finally:
        assert term.close() == 0


def test_digits_are_text_and_alt_digit_accepts_that_suggestion(exported):
    _, models, _ = exported
    predictor = Predictor.load(models / "model.tflite")
    second = predictor.suggest("we want ", 3)[1].word
    term = Terminal(["keyboard", str(models / "model.tflite")], 80)
    try:
        term.read("[1]")
        term.type(b"room 123 ")
        assert term.typed_rows() == ["> room 123"], term.text()
        term.type(b"\x15we want ")  # Ctrl-U clears the line
        term.type(b"\x1b2")  # Alt+2 (Esc, then 2)
        assert term.typed_rows() == [f"> we want {second}"], term.text()
        term.type(b"\x15")
        term.type(b"\x1b9")  # no ninth suggestion in a strip of 3: said, not silently ignored
        assert "(no suggestion 9 to accept)" in term.text()
    finally:
        assert term.close() == 0


def test_a_strip_longer_than_the_keyboard_can_accept_is_refused(exported):
    import subprocess

    _, models, _ = exported
    result = subprocess.run([sys.executable, "-m", "nextword", "keyboard", str(models / "model.tflite"), "-k", "20"],
                            capture_output=True, text=True, timeout=60, input="")
    assert result.returncode == 2
    assert result.stderr.strip() == ("nextword keyboard: error: -k 20: the strip shows 1 to 9 suggestions "
                                     "(one Alt+digit each)")


def test_the_keyboard_learns_a_new_word_across_two_messages_and_suggests_it_in_the_third(exported, tmp_path):
    from nextword.profile import Profile

    _, models, _ = exported
    profile = tmp_path / "me.profile"
    term = Terminal(["keyboard", str(models / "model.int8.tflite"), "--profile", str(profile)], 80)
    try:
        term.read("[1]")
        term.type(b"i like zorblax today\r")
        term.type(b"i like zor")
        assert "zorblax" not in term.text().split("> i like zor")[-1]  # sent once: not yet suggested
        term.type(b"blax today\r")
        term.type(b"i like zor", until="[1] zorblax")
        assert "[1] zorblax" in term.text(), term.text()
        term.type(b"\t")  # Tab accepts it
        assert term.typed_rows()[-1] == "> i like zorblax", term.text()
        term.type(b"\x02", until="blocked")  # Ctrl-B: never again
        assert 'blocked "zorblax"' in term.text()
        term.type(b"\x15i like zor")
        assert "zorblax" not in term.text().split("> i like zor")[-1], term.text()
    finally:
        assert term.close() == 0
    saved = Profile.load(profile)
    assert saved.messages == 2 and "zorblax" in saved.blocked and saved.sent == {}


def test_incognito_keyboard_stores_nothing(exported, tmp_path):
    _, models, _ = exported
    profile = tmp_path / "me.profile"
    term = Terminal(["keyboard", str(models / "model.int8.tflite"), "--profile", str(profile), "--incognito"], 80)
    try:
        term.read("[1]")
        term.type(b"i like zorblax today\r")
        term.type(b"i like zorblax today\r")
    finally:
        assert term.close() == 0
    assert not profile.exists()
