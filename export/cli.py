"""``nextword export``: argument parsing only; the work is in ``nextword.export.exporter``.

    nextword export runs/default --out models/default
    nextword export runs/ptb --out models/ptb --formats tflite --precisions float32,int8
    nextword export model.keras --tokenizer tokenizer.json --out exported     # a Keras user's own model
"""

from __future__ import annotations

from nextword.modelfile.contract import ALL_PRECISIONS, FORMATS, parse_selection
from nextword.deps import require
from nextword.errors import UsageError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a training run or your own Keras model to TFLite and ONNX (vocabulary inside), validated",
        description="Convert a training run's model, or your own Keras next-word model (.keras/.h5 with its "
                    "Tokenizer), to TFLite and ONNX files that carry the vocabulary and config, validate each "
                    "against the Keras model, and write export_report.json.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR_OR_MODEL",
                   help="a finished `nextword train` run directory, or a Keras model file (.keras, .h5)")
    p.add_argument("--tokenizer", metavar="FILE", default=None,
                   help="for a model file: its Keras Tokenizer.to_json(), a word-index JSON or a vocab.txt "
                        "(default: a tokenizer file next to the model)")
    p.add_argument("--window", type=int, metavar="N", default=None,
                   help="for a model file whose input length is not fixed: the padded context length it was "
                        "trained on")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the model files: new, empty, or holding an export of the same model")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated: {', '.join(FORMATS)} (default: all)")
    p.add_argument("--precisions", default=None,
                   help=f"comma-separated: {', '.join(ALL_PRECISIONS)} (default: every precision each format supports)")
    p.add_argument("--validate-on", metavar="FILE", default=None,
                   help="a UTF-8 text file, one message per line, like what the model's users type: each file is "
                        "validated on up to 1,024 prefixes of its lines first (default: the run's held-out lines; "
                        "a Keras model file brings none, so random words)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="write files that miss their validation tolerance anyway (and say so)")
    p.add_argument("--sign", metavar="KEY", default=None,
                   help="sign every file with this Ed25519 private key (PEM; `nextword keygen` makes one), so an app "
                        "given the public key (--trust, Predictor.load(trust=...)) runs these files only")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another model's export in --out (only the files that export wrote are deleted)")
    p.set_defaults(run=run)


def run(args) -> int:
    require("tensorflow", extra="train", command="export")
    require("tf2onnx", extra="train", command="export")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()] if args.precisions else None
    parse_selection(formats, precisions)  # bad names fail before TensorFlow is imported
    from nextword.export.exporter import export_run

    if args.window is not None and args.window < 1:
        raise UsageError(f"--window must be at least 1, got {args.window}")
    sign = None
    if args.sign is not None:
        from nextword.modelfile.signing import load_private_key

        sign = load_private_key(args.sign)  # a bad key fails before any conversion
    result = export_run(args.run_dir, args.out, formats=formats, precisions=precisions,
                        allow_mismatch=args.allow_mismatch, overwrite=args.overwrite, tokenizer=args.tokenizer,
                        window=args.window, sign=sign, validate_on=args.validate_on)
    written = [f for f in result.report["files"] if f["written"]]
    print(f"{args.out} holds {len(written)} model(s) and export_report.json")
    return 0
