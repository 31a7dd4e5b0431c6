"""``nextword inspect MODEL [--json]``: what a model file carries, read with the runtime only.

    nextword inspect models/default/model.int8.tflite
    nextword inspect models/default/model.onnx --json

No inference engine and no TensorFlow are needed: the format is detected from
the content, the metadata parsed and the checksum verified by ``nextword.modelfile``
(a damaged file is reported as such, with a non-zero exit).
"""

from __future__ import annotations

import dataclasses
import json

from nextword.modelfile import ModelFile, read_model_file, zip_start

FIRST_WORDS = 12


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="show what a model file carries (vocabulary, config, checksums)",
                              description="Show a model file's format, precision, forms and shapes, vocabulary, "
                                          "config and checksum status, without TensorFlow or an engine.")
    p.add_argument("model", metavar="MODEL", help="a .tflite or .onnx file written by `nextword export`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=run)


def summary(model: ModelFile) -> dict:
    tokenizer = model.tokenizer
    meta = model.metadata
    info = {
        "path": str(model.path),
        "format": model.format,
        "precision": model.precision,
        "size_bytes": len(model.data),
        "graph": meta.graph,
        "companion": dataclasses.asdict(meta.companion) if meta.companion else None,
        "forms": {name: form.to_dict() for name, form in meta.forms.items()},
        "vocab_size": tokenizer.vocab_size,
        "first_words": list(tokenizer.vocab[1:FIRST_WORDS + 1]),
        "special_ids": {"pad": 0, "unk": tokenizer.unk_id, "eos": tokenizer.eos_id},
        "model": model.config.to_dict(),
        "tokenizer": {k: v for k, v in tokenizer.settings().items() if k not in ("format", "format_version")},
        "padding": meta.padding,
        "training": dataclasses.asdict(meta.training),
        "checksum": {"sha256": model.checksum, "verified": True,
                     "covers": "flatbuffer (bytes before the metadata zip)" if model.format == "tflite"
                     else "whole file with the digest field blanked"},
        "vocab_sha256": {"sha256": tokenizer.vocab_sha256(), "verified": True},
        "nextword_version": meta.nextword_version,
        "metadata_format_version": meta.format_version,
    }
    if model.format == "tflite":
        info["associated_files_offset"] = zip_start(model.data)
        info["ops"] = list(meta.ops or ())
    return info


def _shape(spec: dict) -> str:
    return f"{spec['dtype']}[{', '.join('batch' if d == -1 else str(d) for d in spec['shape'])}]"


def run(args) -> int:
    info = summary(read_model_file(args.model))
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    m = info["model"]
    lines = [
        f"{info['path']}: {info['format']} {info['precision']}, {info['size_bytes']:,} bytes",
        f"  checksum     sha256 {info['checksum']['sha256'][:16]}... verified ({info['checksum']['covers']})",
        f"  vocabulary   {info['vocab_size']} tokens, sha256 verified; first: {', '.join(info['first_words'])}",
        "  special ids  " + ", ".join(f"{k} {v}" for k, v in info["special_ids"].items() if v is not None),
        f"  model        window {m['window']}, {m['num_layers']}x LSTM({m['hidden_size']}), "
        f"embedding {m['embedding_dim']}, vocab {m['vocab_size']}" + _output_layer(m),
    ]
    for name, form in info["forms"].items():
        inputs = ", ".join(f"{k} {_shape(v)}" for k, v in form["inputs"].items())
        outputs = ", ".join(f"{k} {_shape(v)}" for k, v in form["outputs"].items())
        lines.append(f"  form {name:<7} signature '{form['signature']}': {inputs} -> {outputs}")
    if info["companion"]:
        lines.append(f"  companion    {info['companion']['graph']} form in {info['companion']['file']}")
    if info.get("ops"):
        lines.append(f"  ops          {', '.join(info['ops'])}")
    training = info["training"] or {}
    final = training.get("final_metrics") or {}
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k.startswith("val_")) or "no validation"
    lines.append(f"  trained on   {training.get('corpus')} ({training.get('mode')} mode, "
                 f"{training.get('epochs')} epochs; {metrics})")
    lines.append(f"  written by   nextword {info['nextword_version']}, metadata format {info['metadata_format_version']}")
    print("\n".join(lines))
    return 0


def _output_layer(model: dict) -> str:
    """The softmax's shape when it is not the plain Dense from the top LSTM (files from older versions: plain)."""
    parts = []
    if model.get("projection_dim"):
        parts.append(f"projection {model['projection_dim']}")
    if model.get("tie_embeddings"):
        parts.append("tied embeddings")
    return "".join(f", {part}" for part in parts)
