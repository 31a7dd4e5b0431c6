"""Words a user never wants suggested: blocked everywhere, erased from what was learned, never learned again."""

from __future__ import annotations

from pathlib import Path

from nextword.errors import UsageError
from nextword.fileio import read_file


class Blocking:
    """Blocking words in a ``Profile`` (a mixin: the state lives in ``Profile``)."""

    def block(self, word: str, *, keep: bool = True) -> str:
        """Never suggest, complete or learn ``word``; what was learned with it is erased. Returns the word.

        ``keep=False`` blocks it for this process only (``--block FILE``): the file does not list it."""
        word = self._normalise(word)
        if not word:
            raise UsageError("nothing to block: give a word")
        self.block_all([word], keep=keep)
        return word

    def block_all(self, words, *, keep: bool = True) -> None:
        """``block`` for many words at once (a blocklist file): what was learned is filtered once."""
        words = {self._normalise(word) for word in words} - {""}
        if not words:
            return
        (self.blocked if keep else self._blocked_here).update(words)
        self.recent = [[w for w in message if w not in words] for message in self.recent]
        for word in words:
            self.sent.pop(word, None)
        self._set_grams({gram: value for gram, value in self.grams.items() if words.isdisjoint(gram)})

    def is_blocked(self, word: str) -> bool:
        return word in self.blocked or word in self._blocked_here



def read_blocklist(path: str | Path) -> list[str]:
    """Words to block, one per line (``#`` starts a comment)."""
    path = Path(path)
    text = read_file(path, UsageError, what="--block", fix="give a file of words, one per line",
                     missing=f"--block {path}: no such file", text=True)
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]

