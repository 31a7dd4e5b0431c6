"""``nextword train``: argument parsing only; the work is in ``nextword.train.trainer``.

    nextword train --out runs/default                                  # embedded corpus, seed settings
    nextword train --corpus seed.txt --out runs/seed                     # the seed tutorial
    nextword train --corpus notes/ --out runs/notes --mode stream --epochs 10 --hidden-size 256
    nextword train --out runs/notes --resume                             # after an interruption
"""

from __future__ import annotations

import argparse
import os

from nextword.deps import require
from nextword.errors import UsageError

DEFAULT_SAMPLES = ("hello how is", "thank you for the", "i will see you", "what time")


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
    p.add_argument("--preset", metavar="NAME",
                   help="a named recipe (ptb: Penn Treebank-like corpora); flags given override it")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from its last completed epoch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in RUN_DIR")

    g = p.add_argument_group("training")
    g.add_argument("--mode", choices=("prefix", "stream", "sentence"),
                   help="prefix: every line's prefix n-grams (seed recipe, default); "
                        "stream: fixed windows of the token stream, a target at every position; "
                        "sentence: every line from the zero state after <eos>, a target at every position")
    g.add_argument("--epochs", type=int, help="epochs to train (default 200)")
    g.add_argument("--batch-size", type=int, help="examples per batch (default 32)")
    g.add_argument("--learning-rate", type=float, help="Adam learning rate (default 0.001)")
    g.add_argument("--clipnorm", type=float, help="clip each gradient to this norm (default: off)")
    g.add_argument("--lr-decay", type=float, help="multiply the learning rate by this every epoch (default 1)")
    g.add_argument("--lr-decay-start", type=int, help="first epoch (from 0) the decay applies to (default 0)")
    g.add_argument("--sentence-history", type=float, metavar="SHARE",
                   help="sentence mode: share of lines read after the lines before them, for context across "
                        "lines (default 0)")
    g.add_argument("--seed", type=int, help="random seed: same seed, same corpus, same weights (default 0)")
    g.add_argument("--valid-fraction", type=float, help="share of lines held out for validation (default 0.1)")
    g.add_argument("--early-stopping", type=int, metavar="EPOCHS",
                   help="stop after this many epochs without a better validation loss")

    m = p.add_argument_group("model")
    m.add_argument("--window", type=int,
                   help="context length in words (default: longest line - 1, at most 40, in prefix mode; 20 in stream)")
    m.add_argument("--embedding-dim", type=int, help="embedding size (default 10)")
    m.add_argument("--hidden-size", type=int, help="LSTM units per layer (default 50)")
    m.add_argument("--layers", type=int, dest="num_layers", help="stacked LSTM layers (default 1)")
    m.add_argument("--dropout", type=float, help="dropout rate (default 0)")
    m.add_argument("--projection-dim", type=int,
                   help="linear layer from the LSTM down to this size before the softmax (default 0: none)")
    m.add_argument("--tie-embeddings", action="store_true", default=None,
                   help="the softmax reuses the embedding matrix (needs --projection-dim = --embedding-dim)")

    t = p.add_argument_group("vocabulary")
    t.add_argument("--max-vocab", type=int, help="cap on vocabulary size, padding and special tokens included")
    t.add_argument("--min-count", type=int, help="leave out words seen fewer times (default 1)")
    t.add_argument("--unk", action=argparse.BooleanOptionalAction, default=None,
                   help="map unknown words to <unk> (default) instead of dropping them")
    t.add_argument("--eos", action=argparse.BooleanOptionalAction, default=None,
                   help="append <eos> to every line (default: on in stream mode, off in prefix mode)")
    t.add_argument("--keep-punctuation", action="store_true", default=None,
                   help="do not strip Keras' filter characters (for corpora that are already tokenized)")

    p.add_argument("--sample", action="append", metavar="TEXT",
                   help="context to show suggestions for at the end (repeatable)")
    p.set_defaults(run=run)


_RESUMABLE = {"out", "resume", "epochs", "sample", "run", "command", "overwrite"}


def run(args: argparse.Namespace) -> int:
    require("tensorflow", extra="train", command="train")
    from nextword.tokenizer import TokenizerConfig
    from nextword.train import plan as planning

    if args.preset and not args.resume:
        from nextword.train.presets import preset

        settings = dict(preset(args.preset))
        if settings.get("tie_embeddings") and args.embedding_dim is not None and args.projection_dim is None:
            # A tied preset's projection is its embedding size: follow the size the user chose.
            settings["projection_dim"] = args.embedding_dim
        for key, value in settings.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    if args.resume:
        changed = sorted(k for k, v in vars(args).items() if k not in _RESUMABLE and v not in (None, False))
        if changed:
            raise UsageError(
                f"--resume continues with the run's saved settings; only --epochs may change "
                f"(got --{', --'.join(c.replace('_', '-') for c in changed)})"
            )
        plan = planning.plan_resume(args.out, epochs=args.epochs)
    else:
        mode = args.mode or "prefix"
        train_config = planning.TrainConfig(
            mode=mode,
            **_given(args, "epochs", "batch_size", "learning_rate", "clipnorm", "seed", "valid_fraction",
                     "early_stopping", "lr_decay", "lr_decay_start", "sentence_history"),
            corpus=tuple(args.corpus) if args.corpus else None,
            valid=tuple(args.valid) if args.valid else None,
        )
        eos = args.eos if args.eos is not None else mode in ("stream", "sentence")
        if mode == "sentence" and not eos:
            raise UsageError("--mode sentence reads every line after <eos>; it cannot be used with --no-eos")
        tokenizer_config = TokenizerConfig(
            **_given(args, "max_vocab", "min_count"),
            unk_token=None if args.unk is False else "<unk>",
            eos_token="<eos>" if eos else None,
            **({"filters": ""} if args.keep_punctuation else {}),
        )
        model_options = planning.ModelOptions(
            **_given(args, "embedding_dim", "hidden_size", "num_layers", "dropout", "window", "projection_dim",
                     "tie_embeddings"))
        plan = planning.plan_new(args.out, train_config, tokenizer_config, model_options, overwrite=args.overwrite)
    # Every input is checked; only now pay for importing TensorFlow.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nextword.train import trainer

    result = trainer.resume(plan) if args.resume else trainer.start(plan)
    _print_result(result, args.sample or list(DEFAULT_SAMPLES))
    return 0


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The options the user set; the others keep the dataclass defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _print_result(result, samples: list[str]) -> None:
    from nextword.train.model import suggest_with_keras

    report = result.report
    final = report["final"]
    metrics = ", ".join(f"{k} {final[k]:.4g}" for k in ("loss", "accuracy", "perplexity",
                                                         "val_loss", "val_accuracy", "val_perplexity") if k in final)
    print(f"\nsaved {report['run_dir']}: model.keras, vocab.txt, tokenizer.json, config.json, "
          "train_report.json, history.png")
    print(f"after {report['training']['epochs_completed']} epochs: {metrics}; "
          f"{report['targets_per_second']:,.0f} targets/s")
    print("suggestions (Keras model):")
    for text, suggestions in zip(samples, suggest_with_keras(result.model, result.tokenizer, result.config, samples)):
        shown = "  ".join(f"{s.word} ({s.prob:.2f})" for s in suggestions)
        print(f"  {text!r:>24} -> {shown}")
