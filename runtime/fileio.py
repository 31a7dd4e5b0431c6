"""Atomic file writes: a reader sees the old file or the new one, never half of one; and a text file read
as lines, with one clear line for a file that is missing, a directory or not UTF-8.

Everything nextword writes goes through here (or through ``atomic_path`` for
files a library writes itself, such as Keras' ``.keras`` archives).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nextword.errors import TextFileError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp creates 0600 files; finished artifacts get the usual 0666 & ~umask.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str | None = None, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place on success.

    The temporary name ends in ``final``'s suffix (or ``suffix``, e.g. ``.weights.h5``) because
    some writers (Keras) insist on it. On any error the temporary file is removed and ``final``
    is left as it was. ``mode``: the finished file's permissions (default 0666 & ~umask).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{suffix or final.suffix}",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE if mode is None else mode)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    with atomic_path(path, mode=mode) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def ensure_writable_dir(path: str | Path) -> None:
    """Create ``path`` if needed and prove a file can be written in it; OSError if not (checked before any work)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tempfile.NamedTemporaryFile(dir=path, prefix=".nextword-probe-").close()


def read_file(path: str | Path, error: type[Exception], *, what: str, fix: str, missing: str | None = None,
              text: bool = False) -> bytes | str:
    """A whole file's bytes (``text``: its UTF-8 text), or ``error`` with one line that names the file, says
    what is wrong (missing, a directory, unreadable, not UTF-8) and ends with ``fix``: the one rule every
    reader of a user's file follows. ``missing``: another line for a file that does not exist."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(missing or f"{what} {path} does not exist; {fix}") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory; {fix}") from None
    except OSError as err:  # no permission, an I/O error
        raise error(f"cannot read {what} {path} ({err.strerror or err}); {fix}") from None
    if not text:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{what} {path} is not UTF-8 text (byte {err.start}); {fix}") from None


def read_lines(path: Path) -> Iterator[str]:
    """The non-blank lines of a UTF-8 text file, stripped, read as they are needed."""
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise TextFileError(f"{path} is not UTF-8 text (line {number})") from None
                if line:
                    yield line
    except FileNotFoundError:
        raise TextFileError(f"text file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise TextFileError(f"{path} is a directory; give a text file") from None
    except OSError as err:  # no permission, an I/O error
        raise TextFileError(f"cannot read {path} ({err.strerror or err}); check the file") from None
