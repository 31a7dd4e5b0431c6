"""``nextword export``: argument parsing only; the work is in ``nextword.export.exporter``.

    nextword export runs/default --out models/default
    nextword export runs/ptb --out models/ptb --formats tflite --precisions float32,int8
"""

from __future__ import annotations

import os

from nextword.deps import require


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a training run to TFLite and ONNX (vocabulary inside), validated against Keras",
        description="Convert RUN_DIR's model to TFLite and ONNX files that carry the vocabulary and config, "
                    "validate each against the Keras model, and write export_report.json.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished `nextword train` run directory")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the model files")
    p.add_argument("--formats", default="tflite,onnx", help="comma-separated: tflite, onnx (default both)")
    p.add_argument("--precisions", default=None,
                   help="comma-separated: float32, float16, int8 (default: every precision each format supports)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="write files that miss their validation tolerance anyway (and say so)")
    p.set_defaults(run=run)


def run(args) -> int:
    require("tensorflow", extra="train", command="export")
    require("tf2onnx", extra="train", command="export")
    from nextword.export.exporter import parse_selection

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()] if args.precisions else None
    parse_selection(formats, precisions)  # bad names fail before TensorFlow is imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nextword.export.exporter import export_run

    report = export_run(args.run_dir, args.out, formats=formats, precisions=precisions,
                        allow_mismatch=args.allow_mismatch)
    print(f"wrote {len([f for f in report['files'] if f['written']])} model(s) and export_report.json to {args.out}")
    return 0
