"""Typed errors. Every message says what was found and what to do about it.

The CLI prints ``str(error)`` as one line and exits non-zero, so a message must
stand on its own: no traceback will follow it.
"""


class NextwordError(Exception):
    """Base class for every error nextword raises on purpose."""

    exit_code = 1


class UsageError(NextwordError):
    """An option or argument the user gave cannot be used."""

    exit_code = 2


class MissingDependencyError(NextwordError):
    """A subcommand needs a package that is not installed (e.g. TensorFlow)."""

    exit_code = 3


class CorpusError(NextwordError):
    """A corpus file is missing, unreadable, not UTF-8 text, or holds no words."""


class TokenizerFileError(NextwordError):
    """Saved tokenizer files are missing, corrupt or inconsistent."""


class RunDirError(NextwordError):
    """A run directory is missing, incomplete, not writable or already used."""
