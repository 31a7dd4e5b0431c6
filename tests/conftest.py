"""Shared fixtures: small corpora on disk and a way to run the CLI like a user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The seed tutorial's corpus: four lines, ids hello 1 ... doing 10 in Keras.
SEED_LINES = [
    "hello how are you",
    "hello how is your day",
    "hello how are your friends",
    "what are you doing",
]


@pytest.fixture
def seed_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "seed.txt"
    path.write_text("\n".join(SEED_LINES) + "\n", encoding="utf-8")
    return path


def write_tiny_corpus(path: Path) -> Path:
    """52 short lines: enough for a validation split, trains in seconds."""
    subjects = ["i", "you", "we", "they"]
    verbs = ["like", "want", "need", "see"]
    objects = ["coffee", "the train", "a walk", "some tea", "the news"]
    lines = [f"{s} {v} {o} today" for s in subjects for v in verbs for o in objects[:3]]
    lines += ["good morning", "good night", "see you soon", "thank you so much"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    return write_tiny_corpus(tmp_path / "tiny.txt")


def user_env() -> dict:
    """The environment of a person's shell: no log-level settings (the CLI must be quiet by itself)."""
    return {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "NEXTWORD_DEBUG")}


def run_cli(*args: str, timeout: float = 600, cwd=None) -> subprocess.CompletedProcess:
    """Run ``nextword`` in a fresh process, as a person at a terminal would."""
    return subprocess.run(
        [sys.executable, "-m", "nextword", *args],
        capture_output=True, text=True, timeout=timeout, env=user_env(), cwd=cwd,
    )


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A two-layer stream-mode model with <eos>, a projection and tied embeddings, exported to every
    format and precision (the untied, unprojected graph is the parity fixtures' tiny and wide models).

    Returns (run_dir, models_dir, export_report).
    """
    pytest.importorskip("tensorflow")
    from nextword.export import exporter
    from nextword.tokenizer import TokenizerConfig
    from nextword.train import trainer
    from nextword.train.plan import TrainConfig, plan_new

    root = tmp_path_factory.mktemp("export")
    corpus = write_tiny_corpus(root / "tiny.txt")
    plan = plan_new(root / "run", TrainConfig(mode="stream", epochs=4, corpus=(str(corpus),), batch_size=8),
                    TokenizerConfig(eos_token="<eos>"),
                    dict(embedding_dim=8, hidden_size=16, num_layers=2, window=6, projection_dim=8,
                         tie_embeddings=True))
    trainer.start(plan, log=lambda _: None)
    result = exporter.export_run(root / "run", root / "models", formats=["tflite", "onnx"], precisions=None,
                                 log=lambda _: None)
    return root / "run", root / "models", result.report


@pytest.fixture(scope="session")
def readme_main_job(tmp_path_factory):
    """README command 1 after its install step, as written, in a fresh folder (train the embedded default,
    export, predict: a few minutes, run once per test session). Returns (steps, results, folder)."""
    import shlex

    from test_readme import first_code_block

    folder = tmp_path_factory.mktemp("readme-main-job")
    steps = [step.strip() for step in first_code_block()[0].split("&&") if "nextword " in step]
    results = [run_cli(*shlex.split(step)[1:], cwd=folder) for step in steps]
    return steps, results, folder
