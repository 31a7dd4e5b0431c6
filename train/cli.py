"""``nextword train``: argument parsing only; the work is in ``nextword.train.trainer``.

    nextword train --out runs/default                                  # embedded corpus, seed settings
    nextword train --corpus seed.txt --out runs/seed                     # the seed tutorial
    nextword train --corpus notes/ --out runs/notes --mode stream --epochs 10 --hidden-size 256
    nextword train --out runs/notes --resume                             # after an interruption
"""

from __future__ import annotations

import argparse
import signal
import threading

from nextword.config import ModelConfig
from nextword.deps import require
from nextword.errors import Interrupted
from nextword.tokenizer import TokenizerConfig
from nextword.train import sequences
from nextword.train.plan import TrainConfig, default_of
from nextword.train.presets import PRESETS

#: Contexts shown after training on the embedded default corpus; a user's own corpus gets its own lines.
DEFAULT_SAMPLES = ("hello how is", "thank you for the", "i will see you", "what time")
SAMPLES = 4


def _default(cls, name: str) -> str:
    return f"default {default_of(cls, name)}"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on text files (or the embedded default corpus)",
        description="Train the Keras LSTM next-word model and write a run directory "
        "(model.keras, vocab.txt, tokenizer.json, config.json, train_report.json, history.png).",
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to create (or to resume)")
    p.add_argument("--corpus", nargs="+", metavar="PATH",
                   help="UTF-8 text files or directories of .txt files, one sentence per line "
                        "(default: the embedded corpus)")
    p.add_argument("--valid", nargs="+", metavar="PATH", help="validation text (default: hold out lines of the corpus)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="a named recipe: ptb (Penn Treebank-like, tokenized, ~1M words), small (a few thousand "
                        "lines of your own text), big (millions of lines); flags given override it")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last completed epoch")
    p.add_argument("--finish", action="store_true",
                   help="write RUN_DIR's model and report from its last completed epoch, training no further")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in RUN_DIR (only the files a run writes are deleted)")

    g = p.add_argument_group("training")
    g.add_argument("--mode", choices=sequences.MODES,
                   help="prefix: every line's prefix n-grams (seed recipe, default); "
                        "stream: fixed windows of the token stream, a target at every position; "
                        "sentence: every line from the zero state after <eos>, a target at every position")
    g.add_argument("--epochs", type=int, help=f"epochs to train ({_default(TrainConfig, 'epochs')})")
    g.add_argument("--batch-size", type=int, help=f"examples per batch ({_default(TrainConfig, 'batch_size')})")
    g.add_argument("--learning-rate", type=float, help=f"Adam learning rate ({_default(TrainConfig, 'learning_rate')})")
    g.add_argument("--clipnorm", type=float, help="clip each gradient to this norm (default: off)")
    g.add_argument("--lr-decay", type=float,
                   help=f"multiply the learning rate by this every epoch ({_default(TrainConfig, 'lr_decay')})")
    g.add_argument("--lr-decay-start", type=int,
                   help=f"first epoch (from 0) the decay applies to ({_default(TrainConfig, 'lr_decay_start')})")
    g.add_argument("--sentence-history", type=float, metavar="SHARE",
                   help="sentence mode: share of lines read after the lines before them, for context across "
                        f"lines ({_default(TrainConfig, 'sentence_history')})")
    g.add_argument("--seed", type=int, help=f"random seed: same seed, same corpus, same weights "
                                            f"({_default(TrainConfig, 'seed')})")
    g.add_argument("--valid-fraction", type=float,
                   help=f"share of lines held out for validation ({_default(TrainConfig, 'valid_fraction')})")
    g.add_argument("--early-stopping", type=int, metavar="EPOCHS",
                   help="stop after this many epochs without a better validation loss (default: off)")

    speed = p.add_argument_group("speed (how, not what, the model learns; measured in docs/benchmarks.md)")
    speed.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                       help=f"compile the training step with XLA ({_default(TrainConfig, 'jit_compile')})")
    speed.add_argument("--logits", action=argparse.BooleanOptionalAction, default=None,
                       help=f"train on logits, the loss applying the softmax ({_default(TrainConfig, 'logits')})")
    speed.add_argument("--train-metrics", action=argparse.BooleanOptionalAction, default=None,
                       help="accuracy and perplexity on every training batch, not only on validation "
                            f"({_default(TrainConfig, 'train_metrics')})")
    speed.add_argument("--sampled-softmax", type=int, metavar="CLASSES",
                       help="training steps score each target against this many sampled classes, not the whole "
                            "vocabulary (validation, eval and export keep the full softmax; no training metrics) "
                            f"({_default(TrainConfig, 'sampled_softmax')}: off)")
    speed.add_argument("--full-softmax-epochs", type=int, metavar="EPOCHS",
                       help="with --sampled-softmax: the last EPOCHS epochs train on the full softmax "
                            f"({_default(TrainConfig, 'full_softmax_epochs')})")
    speed.add_argument("--threads", type=int, help="TensorFlow threads per op (default: TensorFlow's choice)")
    speed.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                       help="TensorFlow's op determinism: same seed, same weights; exact --resume "
                            f"({_default(TrainConfig, 'deterministic')})")

    m = p.add_argument_group("model")
    m.add_argument("--window", type=int,
                   help="context length in words (default: longest line - 1, at most 40, in prefix mode; 20 in "
                        "stream and sentence modes)")
    m.add_argument("--embedding-dim", type=int, help=f"embedding size ({_default(ModelConfig, 'embedding_dim')})")
    m.add_argument("--hidden-size", type=int, help=f"LSTM units per layer ({_default(ModelConfig, 'hidden_size')})")
    m.add_argument("--layers", type=int, dest="num_layers",
                   help=f"stacked LSTM layers ({_default(ModelConfig, 'num_layers')})")
    m.add_argument("--dropout", type=float, help=f"dropout rate ({_default(ModelConfig, 'dropout')})")
    m.add_argument("--projection-dim", type=int,
                   help="linear layer from the LSTM down to this size before the softmax (default 0: none)")
    m.add_argument("--tie-embeddings", action="store_true", default=None,
                   help="the softmax reuses the embedding matrix (needs --projection-dim = --embedding-dim)")

    d = p.add_argument_group("several machines (data-parallel, tf.distribute; docs: README \"Training on several "
                             "machines\")")
    d.add_argument("--workers", metavar="HOST:PORT,HOST:PORT,...",
                   help="every worker's address, the same list on each (default: TF_CONFIG if set, else one machine)")
    d.add_argument("--worker-index", type=int, metavar="I",
                   help="this machine's place in --workers; 0 is the chief, which alone writes RUN_DIR")

    t = p.add_argument_group("vocabulary")
    t.add_argument("--max-vocab", type=int, help="cap on vocabulary size, padding and special tokens included "
                                                 "(default: every word)")
    t.add_argument("--min-count", type=int,
                   help=f"leave out words seen fewer times ({_default(TokenizerConfig, 'min_count')})")
    t.add_argument("--unk", action=argparse.BooleanOptionalAction, default=None,
                   help="map unknown words to <unk> (default) instead of dropping them")
    t.add_argument("--eos", action=argparse.BooleanOptionalAction, default=None,
                   help="append <eos> to every line (default: on in the stream and sentence modes, off in prefix)")
    t.add_argument("--keep-punctuation", action="store_true", default=None,
                   help="do not strip Keras' filter characters (for corpora that are already tokenized)")

    p.add_argument("--sample", action="append", metavar="TEXT",
                   help="context to show suggestions for at the end (repeatable; default: a few lines of the "
                        "corpus)")
    p.set_defaults(run=run)


#: Namespace entries that are not training settings.
_NOT_SETTINGS = {"out", "resume", "finish", "overwrite", "preset", "sample", "run", "command", "verbose", "workers",
                 "worker_index"}


def run(args: argparse.Namespace) -> int:
    require("tensorflow", extra="train", command="train")
    # SIGTERM (docker stop, a cluster manager) stops training as Ctrl-C does: at the next step, saying what is
    # saved and how to resume, rather than without a word (distributed.connect sets it again after
    # TensorFlow's coordination service has taken SIGTERM over).
    if threading.current_thread() is not threading.main_thread():
        return _run(args)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    from nextword.train import plan as planning

    from nextword.train.distributed import cluster_from

    options = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    resuming = args.resume or args.finish
    cluster = cluster_from(args.workers, args.worker_index)
    if not resuming:
        train_config, tokenizer_config, model = planning.settings_from_options(options, args.preset)
        if cluster:
            planning.check_workers(train_config, cluster.count)
    collective = _connect(cluster, args.threads if resuming else train_config.threads) if cluster else None
    if resuming:
        plan = planning.plan_resume(args.out, epochs=args.epochs, finish=args.finish, collective=collective,
                                    options={**options, "preset": args.preset, "overwrite": args.overwrite})
    else:
        plan = planning.plan_new(args.out, train_config, tokenizer_config, model, overwrite=args.overwrite,
                                 from_preset=planning.preset_settings(options, args.preset),
                                 min_steps=planning.preset_min_steps(options, args.preset), collective=collective)
    # Every input is checked; only now pay for importing TensorFlow.
    from nextword.train import trainer

    try:
        result = trainer.resume(plan) if resuming else trainer.start(plan)
    except KeyboardInterrupt:  # before or after the fit (inside it, the trainer says what was saved)
        raise Interrupted(f"interrupted; `nextword train --out {args.out} --resume` continues from the last "
                          "completed epoch, if any") from None
    if not plan.chief:
        print(f"worker {cluster.index}: done; the chief ({cluster.workers[0]}) wrote the run directory")
        return 0
    _print_result(result, args.sample or sample_contexts(plan))
    return 0


def _connect(cluster, threads: int | None):
    """The engine's strategy over every worker (waits for all of them to start)."""
    from nextword.train.distributed import Collective, connect

    print(f"worker {cluster.index} of {cluster.count} ({cluster.workers[cluster.index]}): waiting for the other "
          "workers", flush=True)
    return Collective(connect(cluster, threads), cluster)


def sample_contexts(plan) -> list[str]:
    """The default corpus' usual contexts, or the first words of a few lines of the user's own corpus."""
    if plan.train_config.corpus is None:
        return list(DEFAULT_SAMPLES)
    lines = plan.data.valid_lines() if plan.data.has_validation else plan.data.train_lines()
    samples: list[str] = []
    for line in lines:
        words = line.split()
        if len(words) >= 2:
            samples.append(" ".join(words[: max(1, min(len(words) - 1, 3))]))
        if len(samples) == SAMPLES:
            break
    return samples


def _print_result(result, samples: list[str]) -> None:
    from nextword.train.model import keras_predictor

    report = result.report
    final = report.final
    metrics = ", ".join(f"{k} {final[k]:.4g}" for k in ("loss", "accuracy", "perplexity",
                                                         "val_loss", "val_accuracy", "val_perplexity") if k in final)
    print(f"\nsaved {report.run_dir}: model.keras, vocab.txt, tokenizer.json, config.json, "
          "train_report.json, history.png")
    print(f"after {report.training.epochs_completed} epochs: {metrics}")
    print(f"wall time {report.wall_seconds / 60:.1f} min; {report.targets_per_second or 0:,.0f} targets/s "
          f"over the fit, {report.steady_targets_per_second or 0:,.0f} after the first epoch")
    if not samples:
        return
    # The runtime's own Predictor over the Keras model: what `nextword predict` says for the exported file.
    predictor = keras_predictor(result.model, result.tokenizer, result.config)
    print("suggestions (Keras model, read as the runtime reads them):")
    for text, suggestions in zip(samples, predictor.suggest_batch(samples, k=3)):
        shown = "  ".join(f"{s.word} ({s.prob:.2f})" for s in suggestions) or "(no suggestion)"
        print(f"  {text!r:>24} -> {shown}")
