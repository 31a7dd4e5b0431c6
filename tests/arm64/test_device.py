"""What a device does with a model file, on whichever machine this runs: the arm64 column's device checks.

Run by `tests/arm64/run.sh` inside the emulated Raspberry Pi OS root (Debian Bookworm arm64, Python 3.11),
once per engine extra, on the parity fixtures' files:

    NEXTWORD_PARITY_DIR=build/parity pytest tests/arm64/test_device.py

Every check uses this environment's own engine (tflite-runtime on numpy<2, ai-edge-litert, or ONNX
Runtime) and runs the commands a Pi script would: `nextword predict`, `nextword inspect --json`, `nextword
keyboard` in its pipe mode (with a profile), and a session that learns, saves and reloads a profile. The
commands' answers must be the Python API's on the same file, which the parity cells hold to Keras.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from nextword import Predictor
from nextword.engines import installed_engines
from nextword.modelfile.contract import PRECISIONS
from nextword.profile import Profile

ROOT = Path(os.environ.get("NEXTWORD_PARITY_DIR", "build/parity"))
MANIFEST = json.loads((ROOT / "manifest.json").read_text()) if (ROOT / "manifest.json").exists() else None
#: The seed-sized fixture (prefix mode) and the two-layer one with <eos> (stream mode): both modes' paths.
MODELS = ("tiny", "deep")
TEXTS = ["", "i like the", "we want some", "good", "you need a wa", "Ça va 東京 🙂"]

pytestmark = pytest.mark.skipif(MANIFEST is None, reason=f"no parity fixtures in {ROOT} (build_fixtures.py)")


def files() -> list[tuple[str, str, str, str]]:
    """(model, format, precision, engine) for every fixture file this environment has an engine for."""
    if MANIFEST is None:
        return []
    return [(model, fmt, precision, engine) for model in MODELS for fmt, precisions in PRECISIONS.items()
            for engine in installed_engines(fmt)[:1] for precision in precisions]


def path_of(model: str, fmt: str, precision: str) -> Path:
    return ROOT / model / "models" / MANIFEST["models"][model]["files"][f"{fmt}/{precision}"]


def nextword(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The command as a Pi script runs it: a fresh process of this machine's Python."""
    return subprocess.run([sys.executable, "-m", "nextword", *args], input=stdin, capture_output=True, text=True,
                          timeout=600)


def words(suggestions) -> list[str]:
    return [s.word for s in suggestions]


def test_this_is_the_machine_the_column_names():
    """The rows say which architecture produced them; under tests/arm64/run.sh that is aarch64."""
    expected = os.environ.get("NEXTWORD_EXPECT_MACHINE")
    if expected:
        assert platform.machine() == expected


@pytest.mark.parametrize("model, fmt, precision, engine", files(), ids=lambda v: str(v))
def test_predict_says_what_the_api_says(model, fmt, precision, engine):
    """One text per line of standard input, as a Pi script pipes them (one process: each costs seconds
    under emulation)."""
    path = path_of(model, fmt, precision)
    predictor = Predictor.load(path, engine=engine)
    done = nextword("predict", str(path), "--engine", engine, "--json", stdin="\n".join(TEXTS) + "\n")
    assert done.returncode == 0, done.stderr
    answers = [[s["word"] for s in json.loads(line)["suggestions"]] for line in done.stdout.splitlines()]
    assert answers == [words(predictor.suggest(text, 3)) for text in TEXTS], done.stdout


@pytest.mark.parametrize("model, fmt", [(m, f) for m in MODELS for f in PRECISIONS])
def test_inspect_reads_the_metadata(model, fmt):
    if MANIFEST is None or not installed_engines(fmt):
        pytest.skip(f"no {fmt} engine here")
    path = path_of(model, fmt, "float32")
    done = nextword("inspect", str(path), "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    predictor = Predictor.load(path)
    assert info["format"] == fmt and info["vocab_size"] == predictor.tokenizer.vocab_size
    assert info["checksum"]["verified"] is True and info["vocab_sha256"]["verified"] is True


@pytest.mark.parametrize("model, fmt, precision, engine", [f for f in files() if f[2] != "float16"],
                         ids=lambda v: str(v))
def test_keyboard_pipe_mode_learns_into_a_profile(model, fmt, precision, engine, tmp_path):
    """Each line is a context answered with its strip, then sent: the profile file holds what was learned."""
    path = path_of(model, fmt, precision)
    profile = tmp_path / "pi.profile"
    lines = ["i like the", "we see zorblax today", "they see zorblax soon", "we want zor"]
    done = nextword("keyboard", str(path), "--engine", engine, "--profile", str(profile),
                    stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    answers = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    assert len(answers) == len(lines), done.stdout
    first = words(Predictor.load(path, engine=engine).suggest(lines[0], 3))
    assert answers[0].split()[1::2] == first, (answers[0], first)
    assert "zorblax" in answers[-1], done.stdout  # sent twice: a personal word, completed from "zor"
    assert "zorblax" in Profile.load(profile).sent


@pytest.mark.parametrize("model, fmt, precision, engine", [f for f in files() if f[2] == "int8"],
                         ids=lambda v: str(v))
def test_a_session_learns_saves_and_reloads_its_profile(model, fmt, precision, engine, tmp_path):
    predictor = Predictor.load(path_of(model, fmt, precision), engine=engine)
    profile = Profile()
    session = predictor.session(profile)
    for text in ("i like zorblax today", "we see zorblax", "thank you so much", "i like the train"):
        session.feed(text)
        session.commit()
    saved = profile.save(tmp_path / "me.profile")
    again = predictor.session(Profile.load(saved))
    assert Profile.load(saved).to_dict() == profile.to_dict()
    for context, prefix in (("i like", ""), ("we see", "z"), ("thank you", "")):
        session.reset(), again.reset()
        session.feed(context), again.feed(context)
        assert words(again.suggest(4, prefix)) == words(session.suggest(4, prefix))
    again.reset()
    again.feed("we see")
    assert words(again.suggest(3, "zor"))[0] == "zorblax"
