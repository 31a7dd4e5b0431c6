"""Training on several workers (MultiWorkerMirroredStrategy) on 127.0.0.1: the same model as one process fed the
same global batches, the chief alone writing, and a worker killed mid-epoch resumed like an uninterrupted run."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nextword.errors import UsageError
from nextword.train.corpus import Corpus
from nextword.train.distributed import Cluster, cluster_from, loopback_addresses

from conftest import run_cli, user_env

WORDS = "we want to see you today thank good night tea they some like the a walk need".split()
SETTINGS = ["--mode", "stream", "--window", "6", "--batch-size", "16", "--hidden-size", "16", "--embedding-dim", "8",
            "--valid-fraction", "0", "--seed", "3"]


def write_corpus(path: Path, lines: int = 400, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 9))) + "\n"
                            for _ in range(lines)))
    return path


def start_workers(out: Path, corpus: Path, *extra: str, workers: int = 2, cwds=None) -> list[subprocess.Popen]:
    addresses = loopback_addresses(workers)
    settings = [] if "--resume" in extra else ["--corpus", str(corpus), *SETTINGS]  # a resume reads them from the run
    return [subprocess.Popen([sys.executable, "-m", "nextword", "train", "--out", str(out), *settings, *extra,
                              "--workers", addresses, "--worker-index", str(index)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env(),
                             cwd=cwds[index] if cwds else None)
            for index in range(workers)]


def finish(processes: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str, str]]:
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        results.append((process.returncode, out, err))
    return results


def probabilities(run: Path, contexts: np.ndarray) -> np.ndarray:
    import keras

    return keras.models.load_model(run / "model.keras")(contexts, training=False).numpy()


# ------------------------------------------------------------------------------------------ rules
def test_a_cluster_from_flags_or_tf_config():
    assert cluster_from("a:1,b:2", 1) == Cluster(("a:1", "b:2"), 1)
    assert cluster_from(None, None, {}) is None and cluster_from("a:1", 0) is None  # one worker: one machine
    tf_config = json.dumps({"cluster": {"worker": ["h1:5", "h2:5", "h3:5"]}, "task": {"type": "worker", "index": 2}})
    assert cluster_from(None, None, {"TF_CONFIG": tf_config}) == Cluster(("h1:5", "h2:5", "h3:5"), 2)
    chief = json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 0}})
    assert cluster_from(None, None, {"TF_CONFIG": chief}) == Cluster(("c:1", "w:1"), 1)
    for workers, index, says in [("a:1,b:2", None, "--worker-index"), ("a:1,b:2", 2, "not one of the 2"),
                                 ("a,b:2", 0, "not HOST:PORT"), ("a:1,a:1", 0, "twice"), (None, 1, "needs --workers"),
                                 ("a:99999,b:1", 0, "not HOST:PORT")]:
        with pytest.raises(UsageError, match=says):
            cluster_from(workers, index, {})
    with pytest.raises(UsageError, match="TF_CONFIG"):
        cluster_from(None, None, {"TF_CONFIG": "{not json"})


def test_shards_split_the_corpus_into_consecutive_parts_with_every_line_once(tmp_path):
    rng = random.Random(1)
    for trial in range(20):
        files = []
        for index in range(rng.randrange(1, 4)):
            path = tmp_path / f"{trial}-{index}.txt"
            text = "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 6))) + "\n"
                           for _ in range(rng.randrange(0, 40)))
            path.write_text(text + ("no newline at the end" if rng.random() < 0.5 else ""), encoding="utf-8")
            files.append(path)
        corpus = Corpus(files, "t")
        whole = list(corpus.lines())
        for count in (2, 3, 8, 500):
            shards = [list(corpus.sharded(index, count).lines()) for index in range(count)]
            assert [line for shard in shards for line in shard] == whole


def test_bad_cluster_settings_are_one_line_before_anyone_connects(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt")
    for args, says in [(["--workers", "127.0.0.1:1,127.0.0.1:2"], "--worker-index"),
                       (["--workers", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "0", "--batch-size", "15"],
                        "divide evenly")]:
        result = run_cli("train", "--corpus", str(corpus), "--out", str(tmp_path / "run"), *args, timeout=120)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and says in result.stderr, result.stderr
        assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ training
def test_two_workers_train_the_model_one_process_trains_on_the_same_global_batches(tmp_path):
    pytest.importorskip("tensorflow")
    from nextword.tokenizer import TokenizerConfig
    from nextword.train import trainer
    from nextword.train.plan import TrainConfig, plan_new

    corpus = write_corpus(tmp_path / "corpus.txt")
    results = finish(start_workers(tmp_path / "dist", corpus, "--epochs", "3"))
    assert all(code == 0 for code, _, _ in results), [err[-800:] for _, _, err in results]
    chief, other = results
    assert "worker 1: done" in other[1] and "saved" in chief[1]
    report = json.loads((tmp_path / "dist" / "train_report.json").read_text())
    assert report["distributed"]["global_batch"] == 16 and report["distributed"]["worker_batch"] == 8
    assert report["corpus"]["train_lines"] == 400  # both shards, counted once

    # One process, fed each step the concatenation of the two workers' batches of that step.
    plan = plan_new(tmp_path / "one", TrainConfig(mode="stream", epochs=3, batch_size=16, corpus=(str(corpus),),
                                                  valid_fraction=0.0, seed=3),
                    TokenizerConfig(eos_token="<eos>"), {"window": 6, "hidden_size": 16, "embedding_dim": 8})
    assert plan.tokenizer.vocab == tuple((tmp_path / "dist" / "vocab.txt").read_text().splitlines())
    model = trainer._fresh_model(plan)
    shards = [plan.data.sharded(index, 2) for index in range(2)]
    steps = report["distributed"]["steps_per_epoch"]
    for epoch in range(3):
        streams = [shard.batches("stream", 6, 8, validation=False, rng=np.random.default_rng([3, epoch]),
                                 shuffle_buffer=plan.train_config.shuffle_buffer) for shard in shards]
        for _, (a, b) in zip(range(steps), zip(*streams)):
            model.train_on_batch(np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))
    contexts = np.array([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0, 2]], np.int32)
    expected = model(contexts, training=False).numpy()[:, -1]
    assert np.abs(probabilities(tmp_path / "dist", contexts) - expected).max() < 1e-5


def test_a_worker_killed_mid_epoch_and_the_job_resumed_ends_like_an_uninterrupted_run(tmp_path):
    pytest.importorskip("tensorflow")
    corpus = write_corpus(tmp_path / "corpus.txt", lines=1200)
    settings = ["--epochs", "4", "--batch-size", "4"]
    whole = finish(start_workers(tmp_path / "whole", corpus, *settings))
    assert all(code == 0 for code, _, _ in whole), [err[-800:] for _, _, err in whole]

    run = tmp_path / "killed"
    workers = start_workers(run, corpus, *settings)
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while not (state.exists() and json.loads(state.read_text())["epoch"] >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # into the third epoch
    workers[1].send_signal(signal.SIGKILL)
    (chief_code, _, chief_err), _ = finish(workers, timeout=240)
    assert chief_code == 75 and len(chief_err.strip().splitlines()) == 1, chief_err[-2000:]
    assert "a worker stopped or became unreachable" in chief_err and "--resume" in chief_err
    assert not (run / "model.keras").exists()

    resumed = finish(start_workers(run, corpus, "--resume"))
    assert all(code == 0 for code, _, _ in resumed), [err[-800:] for _, _, err in resumed]
    assert "resuming" in resumed[0][1]
    contexts = np.array([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0, 2]], np.int32)
    assert np.abs(probabilities(run, contexts) - probabilities(tmp_path / "whole", contexts)).max() < 1e-6
    history = [json.loads((path / "train_report.json").read_text())["history"]["loss"] for path in (run, tmp_path / "whole")]
    assert np.allclose(*history, atol=1e-6)


def test_a_worker_told_to_stop_with_sigterm_stops_and_so_does_the_job(tmp_path):
    """Cluster managers stop a job with SIGTERM; TensorFlow's coordination service catches it (the worker
    trained on, with its peers, for as long as it was watched: over a minute). Now the worker stops at its
    next step with one line, and the chief finds it gone and says how to resume."""
    pytest.importorskip("tensorflow")
    corpus = write_corpus(tmp_path / "corpus.txt", lines=1200)
    run = tmp_path / "run"
    workers = start_workers(run, corpus, "--epochs", "200", "--batch-size", "4")
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while not (state.exists() and json.loads(state.read_text())["epoch"] >= 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    workers[1].send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    _, worker_err = workers[1].communicate(timeout=60)
    assert time.monotonic() - stopped < 30 and workers[1].returncode != 0
    assert len(worker_err.strip().splitlines()) == 1 and "worker 1 of 2 stopped" in worker_err, worker_err[-2000:]
    _, chief_err = workers[0].communicate(timeout=120)
    assert workers[0].returncode == 75 and "--resume" in chief_err and "epoch(s) are saved" in chief_err


def test_the_chief_alone_writes_and_a_resume_needs_as_many_workers(tmp_path):
    pytest.importorskip("tensorflow")
    corpus = write_corpus(tmp_path / "corpus.txt")
    homes = [tmp_path / "chief", tmp_path / "worker"]  # two machines' working folders; --out is relative
    for home in homes:
        home.mkdir()
    results = finish(start_workers(Path("run"), corpus, "--epochs", "1", cwds=homes))
    assert all(code == 0 for code, _, _ in results), [err[-800:] for _, _, err in results]
    assert (homes[0] / "run" / "model.keras").exists() and list(homes[1].iterdir()) == []
    single = run_cli("train", "--out", str(homes[0] / "run"), "--resume", "--epochs", "2", timeout=300)
    assert single.returncode != 0 and "resume it with as many" in single.stderr, single.stderr
