"""The CLI as a person meets it: help, and bad input answered with one line and no debris."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from nextword import cli

from conftest import run_cli, user_env


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_help_lists_train_and_does_not_import_tensorflow():
    code = ("import sys; from nextword.cli import build_parser; build_parser().format_help(); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    result = run_cli("--help")
    assert result.returncode == 0 and "train" in result.stdout
    assert run_cli("--version").stdout.startswith("nextword ")


@pytest.mark.parametrize("case", ["missing", "empty", "punctuation_only", "binary", "latin1", "directory"])
def test_bad_corpus_is_one_line_nonzero_and_no_run_dir(tmp_path, case):
    corpus = tmp_path / "corpus.txt"
    content = {"empty": b"", "punctuation_only": b"!!! ... ???\n-- ;; --\n", "binary": b"\x00\x01\x02" * 100,
               "latin1": "déjà vu\n".encode("latin-1")}.get(case)
    if content is not None:
        corpus.write_bytes(content)
    if case == "directory":
        corpus = tmp_path / "empty_dir"
        corpus.mkdir()
    out = tmp_path / "run"
    result = run_cli("train", "--corpus", str(corpus), "--out", str(out), "--epochs", "1")
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("nextword train: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_unwritable_output_is_refused_before_training(tmp_path, seed_corpus):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run_cli("train", "--corpus", str(seed_corpus), "--out", str(blocker / "run"))
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "not a directory" in line and not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten_by_accident(tmp_path, seed_corpus):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = run_cli("train", "--corpus", str(seed_corpus), "--out", str(out))
    assert result.returncode == 1 and "not empty" in result.stderr
    assert (out / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be 1 to 100,000, got 0"),
    (["--epochs", "99999999999999999999"], "--epochs must be 1 to 100,000"),
    (["--window", "100000"], "window=100000 is out of range"),
    (["--valid-fraction", "1.5"], "--valid-fraction"),
    (["--max-vocab", "1"], "max_vocab=1"),
    (["--hidden-size", "0"], "hidden_size=0"),
    (["--resume", "--hidden-size", "8"], "cannot resume"),  # no such run (a run's own: tests/test_train.py)
    (["--tie-embeddings"], "set --projection-dim 10"),
    (["--projection-dim", "-1"], "projection_dim=-1"),
    (["--sentence-history", "0.5"], "applies to --mode sentence only"),
    (["--mode", "sentence", "--sentence-history", "2"], "--sentence-history must be in [0, 1]"),
])
def test_impossible_options_are_one_line(tmp_path, seed_corpus, capsys, args, message):
    code = cli.main(["train", "--corpus", str(seed_corpus), "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_unknown_mode_is_rejected_by_the_parser(tmp_path):
    result = run_cli("train", "--out", str(tmp_path / "run"), "--mode", "words")
    assert result.returncode == 2 and "invalid choice: 'words'" in result.stderr


def test_train_without_tensorflow_says_which_extra_to_install(tmp_path, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a))
    code = cli.main(["train", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 3 and err == ('nextword train: error: `nextword train` needs tensorflow, which is not installed; '
                                 'install it with: pip install "nextword[train]"')


def test_unexpected_errors_are_one_line_too(monkeypatch, capsys, tmp_path):
    from nextword.train import plan

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(plan, "plan_new", boom)
    code = cli.main(["train", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_INTERNAL and err.count("\n") == 0 and "OSError: disk on fire" in err


def test_predict_reads_stdin_as_utf8_bytes_and_text_after_double_dash(exported):
    """Invalid UTF-8 on stdin is one line naming the line, under any locale; "-hi" is text after `--`."""
    _, models, _ = exported
    model = str(models / "model.int8.tflite")
    env = {**user_env(), "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C"}
    done = subprocess.run([sys.executable, "-m", "nextword", "predict", model], input=b"we want\nwe \xff\xfe\n",
                          capture_output=True, env=env, timeout=300)
    assert done.returncode == 2 and len(done.stdout.decode().splitlines()) == 1  # the good line was answered
    assert done.stderr.decode().strip() == ("nextword predict: error: standard input line 2 is not UTF-8 text; "
                                            "convert it (e.g. iconv -t UTF-8)")
    done = subprocess.run([sys.executable, "-m", "nextword", "predict", model, "--json", "--", "-hi"],
                          capture_output=True, env=user_env(), timeout=300)
    assert done.returncode == 0 and json.loads(done.stdout)["suggestions"]
