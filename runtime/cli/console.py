"""Keeping the console for nextword's own words: the native libraries' log lines are filtered out.

TensorFlow, absl, oneDNN, the TFLite converter, the TFLite interpreters and ONNX Runtime write
log lines straight to file descriptor 2 from C++ (``I0000 ... reader.cc:83] Reading SavedModel``,
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``), some before any Python setting can
reach them: ``TF_CPP_MIN_LOG_LEVEL`` does not silence them all. So every command except under
``--verbose`` runs with descriptor 2 redirected to a file whose follower drops those lines and
forwards everything else (a file, so a writer never blocks). Python's own ``sys.stderr``
(nextword's errors, progress bars, tracebacks) points straight at the real stream, and the
libraries' Python logging and warnings are turned down.

    with quiet_native_logs():
        ...   # import tensorflow, convert, run engines: the terminal shows only what nextword prints
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator

#: Lines the native libraries write that carry nothing a nextword user can act on.
NOISE = re.compile(
    r"^(?:"
    r"[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"  # absl / glog: I0000 00:00:1795503851.010249  2318 reader.cc:83] ...
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "  # TensorFlow's older C++ format
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:"  # second line of cpu_feature_guard's message
    r"|(?:INFO|WARNING|ERROR): "  # TFLite's own logger (XNNPACK delegate, op registration)
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[IWE]:onnxruntime:"  # ONNX Runtime's default logger
    r"|WARNING:(?:root|absl|tensorflow|tf2onnx):"  # Python logging that ran before the level was set
    r")"
)


def is_noise(line: str) -> bool:
    return bool(NOISE.match(line))


class _Forwarder(threading.Thread):
    """Follows the file descriptor 2 is redirected to and copies its lines, without the noise, to the real stream.

    A file, not a pipe: a library that logs while holding the GIL must never block on a full pipe
    that only this (Python) thread could drain.
    """

    POLL_SECONDS = 0.05

    def __init__(self, capture_fd: int, real_fd: int) -> None:
        super().__init__(name="nextword-native-logs", daemon=True)
        self.capture_fd, self.real_fd = capture_fd, real_fd
        self.offset = 0
        self.pending = b""
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            finishing = self.done.is_set()
            self._drain()
            if finishing:
                break
            self.done.wait(self.POLL_SECONDS)
        if self.pending and not is_noise(self.pending.decode("utf-8", "replace")):
            self._write(self.pending)

    def _drain(self) -> None:
        while True:
            chunk = os.pread(self.capture_fd, 65536, self.offset)
            if not chunk:
                return
            self.offset += len(chunk)
            *lines, self.pending = (self.pending + chunk).split(b"\n")
            kept = [line + b"\n" for line in lines if not is_noise(line.decode("utf-8", "replace"))]
            if kept:
                self._write(b"".join(kept))

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.real_fd, data)


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Filter the native libraries' log lines from descriptor 2 for the duration; see the module doc."""
    previous_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # whatever TensorFlow still honours, it need not format
    logging.disable(logging.WARNING)  # onnxruntime.quantization's "WARNING:root:Please consider ..."
    try:
        with warnings.catch_warnings(), _filtered_stderr():
            warnings.simplefilter("ignore")  # Keras' and TensorFlow's deprecation and user warnings
            yield
    finally:
        logging.disable(logging.NOTSET)
        if previous_level is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = previous_level


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Descriptor 2 into a file the forwarder follows; ``sys.stderr`` onto the real stream."""
    try:
        stderr_fd = sys.__stderr__.fileno() if sys.__stderr__ else 2
        sys.stderr.flush()
        capture = tempfile.TemporaryFile(prefix="nextword-native-log-")
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        # No real descriptor 2 (embedded, or captured by a test runner), or nowhere to keep the log:
        # the command runs unfiltered rather than not at all.
        yield
        return
    real = os.dup(stderr_fd)
    previous_stderr = sys.stderr
    sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(real), "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    os.dup2(capture.fileno(), stderr_fd)
    forwarder = _Forwarder(capture.fileno(), real)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, stderr_fd)
        forwarder.done.set()
        forwarder.join(timeout=2)
        capture.close()
        wrapper, sys.stderr = sys.stderr, previous_stderr
        with contextlib.suppress(OSError, ValueError):
            wrapper.close()
        os.close(real)
