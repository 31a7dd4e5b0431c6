"""What a newcomer hit in their first hour, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time

import pytest

from nextword import cli
from nextword.cli.console import is_noise
from nextword.errors import UsageError

from conftest import run_cli, write_tiny_corpus

keras = pytest.importorskip("keras")

from nextword.tokenizer import TokenizerConfig  # noqa: E402
from nextword.train import trainer  # noqa: E402
from nextword.train.plan import TrainConfig, plan_new, plan_resume  # noqa: E402

#: Log lines of TensorFlow, absl, oneDNN, the converters and the engines, as users saw them.
ENGINE_LOG = re.compile(r"^[IWEF]\d{4} |XNNPACK|oneDNN|absl::InitializeLog|WARNING:root|reader\.cc|loader\.cc|"
                        r"single_machine\.cc|cpu_feature_guard|Please consider to run pre-processing")


def engine_log_lines(*results: subprocess.CompletedProcess) -> list[str]:
    return [line for r in results for line in (r.stdout + r.stderr).splitlines() if ENGINE_LOG.search(line)]


def quiet(_message: str) -> None:
    pass


# ------------------------------------------------------------------------------------------- 1. noise
def test_no_engine_or_tensorflow_log_lines_unless_verbose(exported, tmp_path, seed_corpus):
    run, models, _ = exported
    train = run_cli("train", "--corpus", str(seed_corpus), "--out", str(tmp_path / "seed"), "--epochs", "2")
    export = run_cli("export", str(run), "--out", str(tmp_path / "models"), "--precisions", "float32,int8")
    predict = run_cli("predict", str(tmp_path / "models" / "model.int8.tflite"), "we want")
    onnx = run_cli("predict", str(tmp_path / "models" / "model.int8.onnx"), "we want")
    for result in (train, export, predict, onnx):
        assert result.returncode == 0, result.stderr
    assert engine_log_lines(train, export, predict, onnx) == []
    assert "validating on" in export.stdout and "model.int8.onnx" in export.stdout  # our own words stay
    assert re.match(r"^\w+ \(\d\.\d\d\)", predict.stdout)
    # The same commands with --verbose show what was hidden: the check above can see such lines.
    loud = run_cli("export", str(run), "--out", str(tmp_path / "loud"), "--formats", "onnx", "--precisions",
                   "int8", "--verbose")
    loud_predict = run_cli("predict", str(models / "model.tflite"), "we want", "--verbose")
    assert engine_log_lines(loud) and engine_log_lines(loud_predict)


def test_the_filter_keeps_everything_but_library_log_lines():
    noise = ["I0000 00:00:1795503854.552353    2318 reader.cc:83] Reading SavedModel from: /tmp/x",
             "E0000 00:00:1795503851.010249    2318 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512",
             "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
             "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "WARNING:root:Please consider to run pre-processing before quantization."]
    kept = ["nextword train: error: corpus x.txt does not exist; check the path", "Traceback (most recent call last):",
            "Fatal Python error: Segmentation fault", "  3%|▎         | 1.00k/30.0k tokens"]
    assert all(is_noise(line) for line in noise)
    assert not any(is_noise(line) for line in kept)


@pytest.mark.slow
def test_readme_main_job_console_is_clean_and_suggests_everyday_words(readme_main_job):
    """README command 1 after its install step, as written, in a fresh folder: train the embedded default
    (200 epochs, a few minutes), export, predict. Its whole console is searched for library log lines."""
    steps, results, _ = readme_main_job
    assert [step.split()[1] for step in steps] == ["train", "export", "predict"]
    for step, result in zip(steps, results):
        assert result.returncode == 0, (step, result.stderr)
    assert engine_log_lines(*results) == []
    train, _, predict = results
    printed = {line.split("->")[0].strip().strip("'"): re.findall(r"(\S+) \(\d\.\d\d\)", line.split("->")[1])
               for line in train.stdout.splitlines() if "->" in line}
    from nextword.train.corpus import default_corpus_path

    corpus = default_corpus_path().read_text(encoding="utf-8").lower().splitlines()
    for text in ("hello how is", "thank you for the", "i will see you"):
        # Words the corpus itself has after this context: the model must have learnt at least one.
        seen = {line[len(text):].split()[0] for line in corpus if line.startswith(text + " ")}
        assert seen & set(printed[text]), (text, printed[text], seen)
    assert predict.stdout.split()[0] == "your"


# ------------------------------------------------------------------ 3. train prints what predict says
def test_suggestions_printed_after_training_are_what_predict_says(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "notes.txt")
    run, models = tmp_path / "run", tmp_path / "models"
    samples = ["see you", "we want", "thank you so", "good"]
    train = run_cli("train", "--corpus", str(corpus), "--out", str(run), "--mode", "stream", "--window", "6",
                    "--epochs", "3", *[arg for text in samples for arg in ("--sample", text)])
    assert train.returncode == 0, train.stderr
    export = run_cli("export", str(run), "--out", str(models), "--formats", "tflite", "--precisions", "float32")
    assert export.returncode == 0, export.stderr
    for text in samples:
        printed = next(line for line in train.stdout.splitlines() if line.strip().startswith(repr(text)))
        printed_words = re.findall(r"(\S+) \(\d\.\d\d\)", printed.split("->", 1)[1])
        predicted = run_cli("predict", str(models / "model.tflite"), text, "--json")
        assert printed_words == [s["word"] for s in json.loads(predicted.stdout)["suggestions"]], (text, printed)


def test_samples_come_from_the_users_own_corpus(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "notes.txt")
    result = run_cli("train", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--epochs", "1")
    assert result.returncode == 0, result.stderr
    shown = [line.split("->")[0].strip().strip("'") for line in result.stdout.splitlines() if "->" in line]
    assert shown and "thank you for the" not in shown
    assert all(any(line.startswith(text) for line in corpus.read_text().splitlines()) for text in shown)


# ---------------------------------------------------------------------- 4. one export per folder
def test_exporting_again_over_a_format_1_folder_removes_its_files(exported, tmp_path):
    """Format 1 wrote ONNX step companions; this nextword refuses those files, so exporting the same model again
    deletes what that export listed (and nothing else)."""
    import hashlib

    run, _, _ = exported
    out = tmp_path / "old"
    out.mkdir()
    for name in ("model.onnx", "model.step.onnx", "NOTES.md"):
        (out / name).write_text("old")
    (out / "export_report.json").write_text(json.dumps({
        "model_sha256": hashlib.sha256((run / "model.keras").read_bytes()).hexdigest(),
        "files": [{"path": "model.onnx", "files": ["model.onnx", "model.step.onnx"]}]}))
    assert cli.main(["export", str(run), "--out", str(out), "--formats", "tflite", "--precisions", "float32"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["NOTES.md", "export_report.json", "model.tflite"]
    report = json.loads((out / "export_report.json").read_text())
    assert report["model_format_version"] == 2 and [e["path"] for e in report["files"]] == ["model.tflite"]


def test_an_export_folder_holds_one_model(exported, tmp_path, seed_corpus, capsys):
    run_a, _, _ = exported
    run_b = tmp_path / "b"
    assert cli.main(["train", "--corpus", str(seed_corpus), "--out", str(run_b), "--epochs", "1"]) == 0
    out = tmp_path / "models"
    assert cli.main(["export", str(run_a), "--out", str(out), "--formats", "tflite", "--precisions", "float32"]) == 0
    # The same model adds to its folder, and the report lists both files.
    assert cli.main(["export", str(run_a), "--out", str(out), "--formats", "onnx", "--precisions", "float32"]) == 0
    report = json.loads((out / "export_report.json").read_text())
    assert [e["path"] for e in report["files"]] == ["model.tflite", "model.onnx"] and report["complete"]
    capsys.readouterr()
    # Another model is refused, and nothing changes.
    before = sorted(p.name for p in out.iterdir())
    assert cli.main(["export", str(run_b), "--out", str(out), "--formats", "onnx", "--precisions", "float32"]) == 1
    err = capsys.readouterr().err
    assert "another model" in err and "--overwrite" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == before
    # --overwrite replaces that export's files, and only them.
    (out / "NOTES.md").write_text("mine")
    assert cli.main(["export", str(run_b), "--out", str(out), "--formats", "onnx", "--precisions", "float32",
                     "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["NOTES.md", "export_report.json", "model.onnx"]
    assert json.loads((out / "export_report.json").read_text())["run_dir"] == str(run_b)
    # A folder of unrelated documents is never exported into.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "letter.txt").write_text("dear")
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert cli.main(["export", str(run_a), "--out", str(docs), "--formats", "tflite", *extra]) == 1
        assert "holds no nextword export" in capsys.readouterr().err
    assert [p.name for p in docs.iterdir()] == ["letter.txt"]


# ------------------------------------------------------------------------ 5. --overwrite is careful
def test_overwrite_deletes_only_what_a_run_wrote(tmp_path, seed_corpus, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--corpus", str(seed_corpus), "--out", str(out), "--epochs", "1"]) == 0
    (out / "NOTES.md").write_text("my notes")
    capsys.readouterr()
    assert cli.main(["train", "--corpus", str(seed_corpus), "--out", str(out), "--epochs", "1"]) == 1
    assert "holds a nextword run; use --resume to continue it, or --overwrite" in capsys.readouterr().err
    assert cli.main(["train", "--corpus", str(seed_corpus), "--out", str(out), "--epochs", "2", "--overwrite"]) == 0
    assert (out / "NOTES.md").read_text() == "my notes"
    assert json.loads((out / "train_report.json").read_text())["training"]["epochs_completed"] == 2
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "paper.pdf").write_bytes(b"%PDF")
    capsys.readouterr()
    assert cli.main(["train", "--corpus", str(seed_corpus), "--out", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "holds no nextword run" in err and "--overwrite" not in err  # no hint that would be refused next


# --------------------------------------------------------------------------- 6. unexpected errors
def test_a_closed_pipe_ends_quietly(exported):
    _, models, _ = exported
    result = subprocess.run(f"{sys.executable} -m nextword inspect {models / 'model.tflite'} --json | head -1",
                            shell=True, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "{" and result.stderr == ""


def test_bench_refuses_an_out_that_is_a_file_before_measuring(exported, tmp_path, capsys):
    _, models, _ = exported
    target = tmp_path / "mine.keras"
    target.write_text("x")
    assert cli.main(["bench", str(models / "model.tflite"), "--out", str(target)]) == 2
    err = capsys.readouterr()
    assert "exists and is not a directory" in err.err and err.out == ""


def test_bench_measures_the_files_of_an_export_folder(exported, tmp_path):
    from nextword.measure.bench import expand

    _, models, _ = exported
    files = expand([models])
    assert {p.name for p in files} == {"model.tflite", "model.float16.tflite", "model.int8.tflite", "model.onnx",
                                       "model.int8.onnx"}
    with pytest.raises(UsageError, match="neither a training run"):
        expand([tmp_path])


# -------------------------------------------------------------------------------- 7. small ones
def test_ctrl_c_during_training_says_how_to_continue(tmp_path):
    corpus = tmp_path / "big.txt"
    corpus.write_text("\n".join(f"line {i} of some text we want to read again" for i in range(3000)) + "\n")
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "nextword", "train", "--corpus", str(corpus), "--out", str(out),
                                "--epochs", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert f"nextword train --out {out} --resume" in err and "--finish" in err and "Traceback" not in err


def test_a_killed_run_can_be_finished_at_its_last_checkpoint(tmp_path, capsys):
    corpus = write_tiny_corpus(tmp_path / "tiny.txt")
    out = tmp_path / "run"
    plan = plan_new(out, TrainConfig(epochs=2, corpus=(str(corpus),)), TokenizerConfig(), {"hidden_size": 8})
    trainer.start(plan, log=quiet)
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    config = json.loads((out / "config.json").read_text())
    config["training"]["epochs"] = 5  # as if killed after epoch 2 of 5
    (out / "config.json").write_text(json.dumps(config))
    (out / "model.keras").unlink()
    assert cli.main(["train", "--out", str(out), "--finish"]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["training"]["epochs_completed"] == state["epoch"] == 2 and (out / "model.keras").exists()


def test_resume_keeps_early_stoppings_patience_and_best_weights(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "tiny.txt")
    unrelated = tmp_path / "valid.txt"
    unrelated.write_text("zebras juggle quantum marmalade\n" * 5 + "coffee zebras today\n" * 5)

    def config(epochs):
        return TrainConfig(epochs=epochs, early_stopping=2, corpus=(str(corpus),), valid=(str(unrelated),),
                           learning_rate=0.02)

    whole = trainer.start(plan_new(tmp_path / "whole", config(40), TokenizerConfig(), {"hidden_size": 8}), log=quiet)
    stopped = whole.report.training.epochs_completed
    best = whole.report.best.epoch
    assert stopped < 40 and stopped - best == 2
    # The same run, stopped one epoch after its best epoch, then resumed: it must stop where the whole run did.
    trainer.start(plan_new(tmp_path / "parts", config(best + 1), TokenizerConfig(), {"hidden_size": 8}), log=quiet)
    resumed = trainer.resume(plan_resume(tmp_path / "parts", epochs=40), log=quiet)
    assert resumed.report.training.epochs_completed == stopped
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
        assert (a == b).all()


def test_predict_on_a_terminal_says_it_reads_standard_input(exported):
    _, models, _ = exported
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(sys.executable, [sys.executable, "-m", "nextword", "predict", str(models / "model.tflite")])
        finally:
            os._exit(127)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Ctrl-D" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(fd, 4096)
        except OSError:
            break
    os.write(fd, b"\x04")
    os.waitpid(pid, 0)
    assert b"reading texts from standard input" in seen


def test_every_option_of_eval_has_help():
    parser = cli.build_parser()
    eval_parser = next(a for a in parser._subparsers._actions if a.dest == "command").choices["eval"]
    for action in eval_parser._actions:
        assert action.help, f"eval {action.option_strings} has no help text"


def test_history_plot_names_the_run_and_uses_plain_numbers():
    import matplotlib

    matplotlib.use("Agg")
    from nextword.train.report import history_figure

    history = {"loss": [5.45, 5.40, 5.38], "val_loss": [5.50, 5.47, 5.46], "accuracy": [0.1, 0.11, 0.12],
               "perplexity": [232.0, 221.0, 218.0], "val_perplexity": [244.0, 237.0, 235.0]}
    figure = history_figure(history, title="mine: stream mode")
    figure.canvas.draw()
    assert figure._suptitle.get_text() == "mine: stream mode"
    perplexity = figure.axes[2]
    assert perplexity.get_title() == "Perplexity"
    labels = [t.get_text() for t in perplexity.get_yticklabels(minor=True) + perplexity.get_yticklabels()]
    assert labels and not any("times" in label or "^" in label for label in labels), labels


def test_files_a_corpus_folder_skips_are_named(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    write_tiny_corpus(folder / "a.txt")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4")
    plan = plan_new(tmp_path / "run", TrainConfig(corpus=(str(folder),)), TokenizerConfig(), {})
    assert any("report.pdf" in note and "not .txt" in note for note in plan.notes)


def test_a_tied_model_keras_loads_with_plain_keras(exported):
    run, _, _ = exported
    code = ("import sys, keras; m = keras.models.load_model(sys.argv[1]); "
            "print(m.output_shape, any(n.startswith('nextword') for n in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, str(run / "model.keras")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"


# ------------------------------------------------------------------------ 9. the library owns the rules
def test_the_library_refuses_a_sentence_run_without_eos_before_creating_anything(tmp_path, seed_corpus, capsys):
    with pytest.raises(UsageError) as info:
        plan_new(tmp_path / "run", TrainConfig(mode="sentence", corpus=(str(seed_corpus),)),
                 TokenizerConfig(eos_token=None), {})
    assert not (tmp_path / "run").exists()
    assert cli.main(["train", "--corpus", str(seed_corpus), "--out", str(tmp_path / "run"), "--mode", "sentence",
                     "--no-eos"]) == 2
    assert str(info.value) in capsys.readouterr().err


def test_model_settings_are_the_model_configs_fields(tmp_path, seed_corpus):
    with pytest.raises(UsageError, match="unknown model settings"):
        plan_new(tmp_path / "run", TrainConfig(corpus=(str(seed_corpus),)), None, {"hidden": 8})
    plan = plan_new(tmp_path / "run", TrainConfig(corpus=(str(seed_corpus),)), None, {"hidden_size": 8})
    assert plan.model_config.hidden_size == 8 and plan.model_config.embedding_dim == 10


# --------------------------------------------------------------------- the typed model-file contract
@pytest.mark.parametrize("path, value", [(("model", "vocab_size"), "."), (("model", "window"), 4.0),
                                         (("model", "window"), 1_000_000_000), (("forms",), {}),
                                         (("special_ids", "eos"), float("nan")), (("tensor_bytes",), {"lstm": -1}),
                                         (("forms",), [])])
def test_a_wrong_field_type_is_a_metadata_error(exported, path, value):
    from nextword.modelfile.contract import ModelMetadata
    from nextword.errors import MetadataError
    from nextword.modelfile.reader import read_model_file

    _, models, _ = exported
    data = read_model_file(models / "model.onnx").metadata.to_dict()
    assert ModelMetadata.from_dict(data, "onnx").to_dict() == data  # round trip
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(MetadataError):
        ModelMetadata.from_dict(data, "onnx")
