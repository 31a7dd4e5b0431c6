"""Training: the seed tutorial, the sequence modes, artifacts, determinism, resume after a kill."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from nextword.config import ModelConfig  # noqa: E402
from nextword.errors import RunDirError, UsageError  # noqa: E402
from nextword.tokenizer import Tokenizer, TokenizerConfig  # noqa: E402
from nextword.train import trainer  # noqa: E402
from nextword.train.model import build_model, keras_predictor  # noqa: E402
from nextword.train.plan import TrainConfig, plan_new, plan_resume  # noqa: E402

from conftest import run_cli  # noqa: E402

RUN_FILES = {"model.keras", "vocab.txt", "tokenizer.json", "config.json", "train_report.json", "history.png",
             "checkpoints"}


def quiet(_message: str) -> None:
    pass


def train_tiny(corpus, out, *, epochs=3, mode="prefix", seed=0, **model):
    plan = plan_new(
        out,
        TrainConfig(mode=mode, epochs=epochs, seed=seed, corpus=(str(corpus),), batch_size=16),
        TokenizerConfig(eos_token="<eos>" if mode == "stream" else None),
        {"embedding_dim": 8, "hidden_size": 8, **model},
    )
    return trainer.start(plan, log=quiet)


def resume(out, epochs=None):
    return trainer.resume(plan_resume(out, epochs=epochs), log=quiet)


def test_seed_tutorial_predicts_your(seed_corpus, tmp_path):
    """`nextword train --corpus seed.txt --out RUN_DIR` with no other flag is the tutorial."""
    out = tmp_path / "seed_run"
    result = run_cli("train", "--corpus", str(seed_corpus), "--out", str(out), "--sample", "hello how is")
    assert result.returncode == 0, result.stderr
    assert "'hello how is' -> your" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == {"vocab_size": 12, "window": 4, "embedding_dim": 10, "hidden_size": 50,
                               "num_layers": 1, "dropout": 0.0, "projection_dim": 0, "tie_embeddings": False,
                               "masked": True}
    assert config["training"]["epochs"] == 200 and config["training"]["mode"] == "prefix"
    model = keras.models.load_model(out / "model.keras", safe_mode=True)
    tokenizer = Tokenizer.load(out)
    [top] = keras_predictor(model, tokenizer, ModelConfig.from_dict(config["model"])).suggest("hello how is", k=1)
    assert top.word == "your" and top.prob > 0.5


def test_prefix_run_writes_every_artifact(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    result = train_tiny(tiny_corpus, out, epochs=3)
    assert {p.name for p in out.iterdir()} == RUN_FILES  # nothing half-written left behind
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-0003.keras", "state.json"]
    report = json.loads((out / "train_report.json").read_text())
    assert report["training"]["epochs_completed"] == 3
    assert report["corpus"]["validation"] == "held-out lines" and report["corpus"]["valid_lines"] > 0
    assert report["corpus"]["train_lines"] + report["corpus"]["valid_lines"] == 52
    assert report["vocab_size"] == result.tokenizer.vocab_size
    assert report["parameters"] == result.model.count_params()
    assert report["targets_per_second"] > 0 and report["wall_seconds"] >= report["fit_seconds"] > 0
    later = sorted(report["history"]["epoch_seconds"][1:])
    assert report["steady_targets_per_second"] == pytest.approx(
        report["training"]["train_targets"] / ((later[0] + later[1]) / 2), rel=1e-3)  # median of two
    for key in ("loss", "accuracy", "perplexity", "val_loss", "val_accuracy", "val_perplexity"):
        assert len(report["history"][key]) == 3
    assert report["final"]["perplexity"] == pytest.approx(np.exp(report["final"]["loss"]), rel=1e-3)
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = keras.models.load_model(out / "model.keras", safe_mode=True)
    assert loaded.input_shape == (None, result.config.window)
    assert loaded.output_shape == (None, result.tokenizer.vocab_size)


def test_stream_mode_trains_every_position(tiny_corpus, tmp_path):
    result = train_tiny(tiny_corpus, tmp_path / "run", epochs=2, mode="stream", window=6, num_layers=2,
                        dropout=0.1)
    report = result.report
    assert report.training.train_targets == report.training.train_examples * 6
    assert report.training.train_targets > 2 * report.corpus.train_lines
    assert result.tokenizer.eos_id is not None
    assert result.model.output_shape == (None, result.tokenizer.vocab_size)  # saved as the next-word model
    assert [layer.name for layer in result.model.layers if "lstm" in layer.name] == ["lstm_0", "lstm_1"]


@pytest.mark.parametrize("model", [{}, {"projection_dim": 8, "tie_embeddings": True}], ids=["plain", "tied"])
def test_padding_never_changes_a_prediction(tiny_corpus, tmp_path, model):
    """Masked padding: a short context gives the same output at any amount of pre-padding."""
    result = train_tiny(tiny_corpus, tmp_path / "run", epochs=1, window=8, **model)
    ids = result.tokenizer.encode("we want some tea")
    short = np.array([[0] * 4 + ids], np.int32)
    probs = result.model.predict_on_batch(short)
    unpadded = build_model(dataclasses.replace(result.config, window=len(ids)), standard_layers=True)
    unpadded.set_weights(result.model.get_weights())
    np.testing.assert_allclose(unpadded.predict_on_batch(np.array([ids], np.int32)), probs, atol=1e-6)


def test_same_seed_same_weights(tiny_corpus, tmp_path):
    a = train_tiny(tiny_corpus, tmp_path / "a", seed=7)
    b = train_tiny(tiny_corpus, tmp_path / "b", seed=7)
    c = train_tiny(tiny_corpus, tmp_path / "c", seed=8)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.model.get_weights(), c.model.get_weights()))


@pytest.mark.parametrize("mode, model", [("prefix", {}), ("stream", {}),
                                         ("stream", {"projection_dim": 8, "tie_embeddings": True})],
                         ids=["prefix", "stream", "stream-tied"])
def test_resume_gives_the_weights_of_an_uninterrupted_run(tiny_corpus, tmp_path, mode, model):
    """Tied embeddings included: the checkpoint holds the shared matrix and its output bias once."""
    straight = train_tiny(tiny_corpus, tmp_path / "straight", epochs=4, mode=mode, **model)
    train_tiny(tiny_corpus, tmp_path / "resumed", epochs=2, mode=mode, **model)
    debris = tmp_path / "resumed" / "checkpoints" / ".epoch-0003.k1ll3d.tmp.keras"  # a write cut short by a kill
    debris.write_bytes(b"PK\x03\x04 half an archive")
    resumed = resume(tmp_path / "resumed", epochs=4)
    assert not debris.exists()
    for ws, wr in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(ws, wr, rtol=0, atol=1e-6)
    assert resumed.report.training.resumed_from_epoch == 2
    assert len(resumed.report.history["loss"]) == 4


def test_run_killed_mid_training_resumes_from_its_last_epoch(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "nextword", "train", "--corpus", str(tiny_corpus), "--out",
                             str(out), "--epochs", "500", "--hidden-size", "8"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    state = out / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["epoch"] >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 2 <= killed_at < 500
    assert not (out / "model.keras").exists()
    target = killed_at + 2
    result = run_cli("train", "--out", str(out), "--resume", "--epochs", str(target))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "train_report.json").read_text())
    assert report["training"]["resumed_from_epoch"] == killed_at
    assert report["training"]["epochs_completed"] == target
    # Only the newest checkpoint is kept; a temp file of a write the kill interrupted is cleaned up.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"epoch-{target:04d}.keras", "state.json"]
    assert {p.name for p in out.iterdir()} == RUN_FILES


def test_sigterm_stops_training_like_ctrl_c_and_the_run_resumes(tiny_corpus, tmp_path):
    """`docker stop` and cluster managers send SIGTERM: one line saying what is saved, then --resume."""
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "nextword", "train", "--corpus", str(tiny_corpus), "--out",
                             str(out), "--epochs", "500", "--hidden-size", "8"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    state = out / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["epoch"] >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    saved = json.loads(state.read_text())["epoch"]
    assert proc.returncode != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err[-2000:]
    assert f"interrupted; {saved} epoch(s) are saved" in err and "--resume" in err
    result = run_cli("train", "--out", str(out), "--resume", "--epochs", str(saved + 1))
    assert result.returncode == 0, result.stderr


def test_resume_after_a_kill_between_the_last_epoch_and_the_model_writes_the_model(tiny_corpus, tmp_path):
    """Killed after its last checkpoint but before model.keras (found by benchmarks/kill_trials.py):
    --resume finishes the run from the checkpoint instead of refusing it as complete."""
    straight = train_tiny(tiny_corpus, tmp_path / "run", epochs=2)
    (tmp_path / "run" / "train_report.json").unlink()  # killed between the model and the report
    resume(tmp_path / "run")
    assert (tmp_path / "run" / "train_report.json").exists()
    (tmp_path / "run" / "model.keras").unlink()  # killed between the last checkpoint and the model
    (tmp_path / "run" / "train_report.json").unlink()
    resumed = resume(tmp_path / "run")
    assert (tmp_path / "run" / "model.keras").exists() and resumed.report.training.epochs_completed == 2
    for ws, wr in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(ws, wr)


def test_resume_refuses_what_it_cannot_continue(tiny_corpus, tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        resume(tmp_path / "missing")
    train_tiny(tiny_corpus, tmp_path / "done", epochs=1)
    with pytest.raises(RunDirError, match="already completed 1 of 1 epochs"):
        resume(tmp_path / "done")
    tiny_corpus.write_text("a changed corpus\n" * 30)
    with pytest.raises(Exception, match="corpus .* changed"):
        resume(tmp_path / "done", epochs=3)


def test_the_same_command_plus_resume_continues_and_a_changed_setting_is_one_line(tiny_corpus, tmp_path):
    """A user repeats the command that started the run, adding --resume and more epochs: it continues. A
    setting that differs from the run's is refused in one line naming it with the run's value."""
    out = tmp_path / "run"
    command = ["train", "--corpus", str(tiny_corpus), "--out", str(out), "--hidden-size", "8", "--embedding-dim", "8",
               "--no-unk", "--mode", "prefix"]
    assert run_cli(*command, "--epochs", "1").returncode == 0
    again = run_cli(*command, "--epochs", "2", "--resume")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "train_report.json").read_text())["training"]["epochs_completed"] == 2
    threads = run_cli(*command, "--epochs", "3", "--threads", "1", "--resume")  # the speed may change
    assert threads.returncode == 0, threads.stderr
    changed = run_cli(*command[:-5], "--hidden-size", "16", "--unk", "--epochs", "4", "--resume")
    err = changed.stderr.strip()
    assert changed.returncode != 0 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--hidden-size 16 (the run's: 8)" in err and "--unk true (the run's: false)" in err
    overwrite = run_cli("train", "--out", str(out), "--resume", "--overwrite")
    assert overwrite.returncode != 0 and "give one of them" in overwrite.stderr
    assert json.loads((out / "train_report.json").read_text())["training"]["epochs_completed"] == 3  # untouched

@pytest.mark.slow
def test_early_stopping_stops_when_validation_stops_improving(tiny_corpus, tmp_path):
    unrelated = tmp_path / "valid.txt"
    unrelated.write_text("zebras juggle quantum marmalade\n" * 5 + "coffee zebras today\n" * 5)
    plan = plan_new(tmp_path / "run",
                    TrainConfig(epochs=50, early_stopping=2, corpus=(str(tiny_corpus),), valid=(str(unrelated),),
                                learning_rate=0.02),
                    TokenizerConfig(), {"hidden_size": 8})
    report = trainer.start(plan, log=quiet).report
    assert report.corpus.validation == "file" and report.corpus.valid_unknown_rate > 0.5
    assert report.training.stopped_early and report.training.epochs_completed < 50
    assert report.best.epoch == report.training.epochs_completed - 2


def test_sentence_mode_with_a_decaying_learning_rate(tiny_corpus, tmp_path):
    plan = plan_new(tmp_path / "run", TrainConfig(mode="sentence", epochs=3, corpus=(str(tiny_corpus),),
                                                  batch_size=16, learning_rate=0.01, lr_decay=0.5,
                                                  lr_decay_start=1),
                    TokenizerConfig(eos_token="<eos>"), {"embedding_dim": 8, "hidden_size": 8, "window": 5})
    result = trainer.start(plan, log=quiet)
    report = result.report
    # Every word and every <eos> of the training lines is a target once; padding weighs nothing.
    assert report.training.train_targets == report.corpus.train_tokens
    assert report.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.0025])
    assert report.final["perplexity"] < result.tokenizer.vocab_size  # padding would blow it up
    assert result.model.output_shape == (None, result.tokenizer.vocab_size)


def test_ptb_preset_settings_apply_under_explicit_flags(tmp_path, capsys):
    from nextword.train.presets import PRESETS

    corpus = tmp_path / "ptb-like.txt"
    corpus.write_text("the <unk> rose N % in mr. smith 's plan\n" * 30 + "a b c\n" * 10)
    done = run_cli("train", "--preset", "ptb", "--corpus", str(corpus), "--out", str(tmp_path / "run"),
                   "--epochs", "1", "--hidden-size", "8", "--embedding-dim", "4")
    assert done.returncode == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["window"] == PRESETS["ptb"]["window"] and config["model"]["hidden_size"] == 8
    # The tied projection follows the embedding size given on the command line.
    assert config["model"]["tie_embeddings"] and config["model"]["projection_dim"] == 4
    assert config["training"]["sentence_history"] == PRESETS["ptb"]["sentence_history"]
    assert config["training"]["mode"] == "sentence" and config["training"]["epochs"] == 1
    # 12 words: the preset's sampled softmax would sample more classes than there are; it is off, said once.
    assert config["training"]["sampled_softmax"] == 0
    assert "the preset's sampled softmax (1024 classes) is off" in done.stdout
    tokenizer = Tokenizer.load(tmp_path / "run")
    assert tokenizer.id_of("mr.") and tokenizer.id_of("'s") and tokenizer.eos_id  # punctuation kept
    assert "<unk>" not in tokenizer.vocab[1 : tokenizer.word_count + 1]


@pytest.mark.parametrize("name", ["ptb", "small", "big"])
def test_every_preset_is_a_valid_set_of_settings(name, tiny_corpus, tmp_path):
    from nextword.train.plan import preset_settings, settings_from_options
    from nextword.train.presets import PRESETS

    train_config, tokenizer_config, model = settings_from_options({"corpus": [str(tiny_corpus)]}, name)
    chosen = preset_settings({"corpus": [str(tiny_corpus)], "dropout": 0.1}, name)
    assert "dropout" not in chosen and "corpus" not in chosen and "epochs" in chosen  # the user's flags win
    plan = plan_new(tmp_path / name, train_config, tokenizer_config, model, from_preset=chosen)
    assert plan.train_config.epochs == PRESETS[name]["epochs"] and plan.model_config.tie_embeddings
    assert plan.train_config.sampled_softmax == 0  # the tiny corpus' vocabulary: the full softmax


def test_a_preset_on_a_smaller_corpus_takes_its_steps_in_more_epochs():
    from nextword.train.plan import preset_min_steps, scaled_to_steps
    from nextword.train.presets import MAX_SCALED_EPOCHS, MIN_STEPS, PRESETS

    preset = TrainConfig(**{k: v for k, v in PRESETS["ptb"].items() if k in {f.name for f in
                                                                          dataclasses.fields(TrainConfig)}})
    assert scaled_to_steps(preset, 786, MIN_STEPS["ptb"], True) == (preset, None)  # PTB itself: as tuned
    scaled, note = scaled_to_steps(preset, 300, MIN_STEPS["ptb"], True)
    assert scaled.epochs == 37 and scaled.epochs * 300 >= MIN_STEPS["ptb"] and scaled.early_stopping == 3
    total = preset.lr_decay ** (preset.epochs - preset.lr_decay_start)
    assert scaled.lr_decay ** (scaled.epochs - scaled.lr_decay_start) == pytest.approx(total, rel=0.1)
    assert "37 epochs instead of 14" in note
    assert scaled_to_steps(preset, 3, MIN_STEPS["ptb"], False)[0].epochs == MAX_SCALED_EPOCHS
    assert scaled_to_steps(preset, 3, MIN_STEPS["ptb"], False)[0].early_stopping is None  # nothing to watch
    assert preset_min_steps({"epochs": 2}, "ptb") == 0 and preset_min_steps({}, "ptb") == MIN_STEPS["ptb"]
    assert preset_min_steps({}, "small") == 0 and preset_min_steps({}, None) == 0


def test_a_sampled_softmax_the_user_asked_for_is_never_switched_off(tiny_corpus, tmp_path):
    from nextword.train.plan import preset_settings, settings_from_options

    options = {"corpus": [str(tiny_corpus)], "sampled_softmax": 3}
    train_config, tokenizer_config, model = settings_from_options(options, "ptb")
    plan = plan_new(tmp_path / "run", train_config, tokenizer_config, model,
                    from_preset=preset_settings(options, "ptb"))
    assert plan.train_config.sampled_softmax == 3 and not plan.notes


def test_speed_levers_train_the_same_model_kind(tiny_corpus, tmp_path):
    """Logits, XLA and metrics on validation only change how fast it trains, not what a run holds."""
    plan = plan_new(tmp_path / "run", TrainConfig(mode="sentence", epochs=2, corpus=(str(tiny_corpus),), batch_size=16,
                                                  logits=True, jit_compile=True, train_metrics=False),
                    TokenizerConfig(eos_token="<eos>"), {"embedding_dim": 8, "hidden_size": 8, "window": 5,
                                                         "projection_dim": 8, "tie_embeddings": True})
    lines = []
    result = trainer.start(plan, log=lines.append)
    history = result.report.history
    assert {"loss", "val_loss", "val_accuracy", "val_perplexity"} <= set(history) and "accuracy" not in history
    assert history["val_perplexity"][-1] == pytest.approx(np.exp(history["val_loss"][-1]), rel=1e-5)
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert all("ETA" in line for line in lines if line.startswith("epoch "))
    # The saved model is the plain next-word model: probabilities that sum to 1.
    probs = result.model.predict_on_batch(np.array([[1, 2, 0, 0, 0]], np.int32))
    assert probs.shape == (1, result.tokenizer.vocab_size) and probs.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("tied", [True, False])
def test_sampled_softmax_trains_checkpoints_resumes_and_saves_the_full_model(tiny_corpus, tmp_path, tied):
    """--sampled-softmax changes the training steps only: validation and the saved model use the full softmax,
    and an interrupted run resumes from its checkpoint (the training model class loads back)."""
    from nextword.train.model import SampledSoftmaxModel

    options = {"embedding_dim": 8, "hidden_size": 8, "window": 5, "projection_dim": 8 if tied else 0,
               "tie_embeddings": tied, "dropout": 0.1}
    config = TrainConfig(mode="sentence", epochs=2, corpus=(str(tiny_corpus),), batch_size=16, sampled_softmax=6)
    plan = plan_new(tmp_path / "run", config, TokenizerConfig(eos_token="<eos>"), options)
    assert isinstance(trainer._fresh_model(plan), SampledSoftmaxModel)
    result = trainer.start(plan, log=lambda _: None)
    history = result.report.history
    assert {"loss", "val_loss", "val_perplexity"} <= set(history) and "accuracy" not in history
    assert all(np.isfinite(history["loss"])) and history["loss"][-1] > 0
    assert history["val_perplexity"][-1] < result.tokenizer.vocab_size  # learned something over uniform
    probs = result.model.predict_on_batch(np.array([[1, 2, 0, 0, 0]], np.int32))
    assert probs.shape == (1, result.tokenizer.vocab_size) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert type(result.model) is not SampledSoftmaxModel  # model.keras: the plain next-word model

    resumed = trainer.resume(plan_resume(tmp_path / "run", epochs=3), log=lambda _: None)
    assert len(resumed.report.history["val_loss"]) == 3


def test_full_softmax_epochs_switch_the_training_loss_for_the_last_epochs():
    """--full-softmax-epochs: the last epochs' steps are the full softmax's cross-entropy (at learning rate
    0 the training loss equals ``evaluate``'s), the earlier ones the sampled estimate."""
    import keras

    from nextword.train.model import compile_for_training
    from nextword.train.trainer import FullSoftmaxEpochs

    config = ModelConfig(vocab_size=50, window=4, embedding_dim=8, hidden_size=8, dropout=0.0)
    keras.utils.set_random_seed(0)
    model = build_model(config, sequence_output=True, sampled_softmax=5)
    compile_for_training(model, 0.0, None, metrics=False)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 50, size=(32, 4)).astype(np.int32)
    y = rng.integers(1, 50, size=(32, 4)).astype(np.int32)
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((model.full_softmax,
                                                                                          logs["loss"])))
    model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, callbacks=[FullSoftmaxEpochs(3, 1), record])
    assert [full for full, _ in seen] == [False, False, True]
    full_loss = model.evaluate(x, y, batch_size=32, verbose=0)
    full_loss = full_loss[0] if isinstance(full_loss, list) else full_loss
    assert seen[2][1] == pytest.approx(full_loss, rel=1e-5)
    assert seen[0][1] != pytest.approx(full_loss, rel=1e-3)  # the sampled estimate is another number
    with pytest.raises(UsageError, match="full-softmax-epochs"):
        TrainConfig(full_softmax_epochs=-1)


def test_sampled_softmax_must_be_below_the_vocabulary(tiny_corpus, tmp_path):
    with pytest.raises(UsageError, match="below the vocabulary size"):
        plan_new(tmp_path / "run", TrainConfig(mode="stream", epochs=1, corpus=(str(tiny_corpus),),
                                               sampled_softmax=100_000), TokenizerConfig(), {})
