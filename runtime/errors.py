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


class TextFileError(NextwordError):
    """A text to evaluate or validate on is missing, unreadable or not UTF-8."""


class TokenizerFileError(NextwordError):
    """Saved tokenizer files are missing, corrupt or inconsistent."""


class RunDirError(NextwordError):
    """A run directory is missing, incomplete, not writable or already used."""


class ModelFileError(NextwordError):
    """A model file is missing, unreadable, or not a TFLite/ONNX model."""


class MetadataError(NextwordError):
    """A model file carries no (or unusable) nextword metadata."""


class ChecksumError(NextwordError):
    """A model file's bytes do not match the checksum stored inside it: it is damaged."""


class SignatureError(NextwordError):
    """A trusted key was given and the model file is unsigned, signed by another key, or edited since."""


class VocabMismatchError(NextwordError):
    """The embedded vocabulary does not fit the model (size or digest)."""


class EngineError(NextwordError):
    """No inference engine can run this file (missing package, unsupported op)."""


class ExportValidationError(NextwordError):
    """An exported file does not predict what the Keras model predicts, within tolerance."""


class Interrupted(NextwordError):
    """The user pressed Ctrl-C; the message says what was kept and how to continue."""

    exit_code = 130


class WorkerLostError(NextwordError):
    """Distributed training: a worker stopped or became unreachable; the job stops and resumes as a whole."""

    exit_code = 75  # EX_TEMPFAIL: restarting the job continues it
