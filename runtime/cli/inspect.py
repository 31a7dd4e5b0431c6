"""``nextword inspect MODEL [--json]``: what a model file carries, read with the runtime only.

    nextword inspect models/default/model.int8.tflite
    nextword inspect models/default/model.onnx --json

No inference engine and no TensorFlow are needed: the format is detected from
the content, the metadata parsed and the checksum verified by ``nextword.modelfile.reader``
(a damaged file is reported as such, with a non-zero exit).
"""

from __future__ import annotations

import dataclasses
import json

from nextword.cli.predict import add_trust_option
from nextword.modelfile.containers import onnx_metadata_props, zip_start
from nextword.modelfile.contract import TOKENS
from nextword.modelfile.reader import ModelFile, read_model_file

FIRST_WORDS = 12


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="show what a model file carries (vocabulary, config, checksums)",
                              description="Show a model file's format, precision, forms and shapes, vocabulary, "
                                          "config and checksum status, without TensorFlow or an engine.")
    p.add_argument("model", metavar="MODEL", help="a .tflite or .onnx file written by `nextword export`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_trust_option(p)
    p.set_defaults(run=run)


def summary(model: ModelFile) -> dict:
    tokenizer = model.tokenizer
    meta = model.metadata
    info = {
        "path": str(model.path),
        "format": model.format,
        "precision": model.precision,
        "size_bytes": len(model.data),
        "bytes": file_bytes(model),
        "forms": {name: form.to_dict() for name, form in meta.forms.items()},
        "vocab_size": tokenizer.vocab_size,
        "first_words": list(tokenizer.vocab[1:FIRST_WORDS + 1]),
        "special_ids": {"pad": 0, "unk": tokenizer.unk_id, "eos": tokenizer.eos_id},
        "model": model.config.to_dict(),
        "tokenizer": {k: v for k, v in tokenizer.settings().items() if k not in ("format", "format_version")},
        "padding": meta.padding,
        "training": dataclasses.asdict(meta.training),
        "checksum": {"sha256": model.checksum, "verified": True,
                     "covers": "flatbuffer, vocab.txt and nextword.json (digest blanked)" if model.format == "tflite"
                     else "whole file with the digest field blanked, up to any signature"},
        "signature": None if model.signature is None else {
            "algorithm": "ed25519", "key_sha256": model.signature.key_sha256, "verified": model.trusted},
        "vocab_sha256": {"sha256": tokenizer.vocab_sha256(), "verified": True},
        "nextword_version": meta.nextword_version,
        "format_version": meta.format_version,
        "source": meta.source,
    }
    if model.format == "tflite":
        info["associated_files_offset"] = zip_start(model.data)
        info["ops"] = list(meta.ops or ())
    return info


def file_bytes(model: ModelFile) -> dict[str, int]:
    """The file's bytes by part: the weights per group (as the exporter measured them on the file's tensors),
    the nextword metadata (vocabulary and config), and the rest (the graph: ops, tensor records, names)."""
    weights = dict(model.metadata.tensor_bytes or {})
    if model.format == "tflite":
        metadata = len(model.data) - (zip_start(model.data) or len(model.data))
    else:
        metadata = sum(len(value.encode("utf-8")) for value, _, _ in onnx_metadata_props(model.data).values())
    graph = len(model.data) - metadata - sum(weights.values())
    return {**weights, "metadata": metadata, "graph and other": max(graph, 0)}


def _shape(name: str, spec: dict) -> str:
    """-1 is dynamic: the batch, and the number of steps in the sequence form's tokens (batch, steps)."""
    dims = [str(d) if d != -1 else ("steps" if name == TOKENS and i == 1 else "batch")
            for i, d in enumerate(spec["shape"])]
    return f"{spec['dtype']}[{', '.join(dims)}]"


def run(args) -> int:
    info = summary(read_model_file(args.model, trust=args.trust))
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    m = info["model"]
    source = info.get("source")
    if source:  # a Keras user's model: its own layers
        shape = f"window {m['window']}, " + " -> ".join(source.get("layers", [])) + \
            ("" if m.get("masked", True) else "; padding read by the cells (unmasked: the window form only)")
    else:
        shape = (f"window {m['window']}, {m['num_layers']}x LSTM({m['hidden_size']}), "
                 f"embedding {m['embedding_dim']}, vocab {m['vocab_size']}" + _output_layer(m))
    lines = [
        f"{info['path']}: {info['format']} {info['precision']}, {info['size_bytes']:,} bytes",
        f"  checksum     sha256 {info['checksum']['sha256'][:16]}... verified ({info['checksum']['covers']})",
        "  signature    " + ("none" if info["signature"] is None else
                             f"ed25519, key sha256 {info['signature']['key_sha256'][:16]}... " +
                             ("verified with the trusted key" if info["signature"]["verified"]
                              else "not verified (give --trust KEY.pub)")),
        f"  vocabulary   {info['vocab_size']} tokens, sha256 verified; first: {', '.join(info['first_words'])}",
        "  special ids  " + ", ".join(f"{k} {v}" for k, v in info["special_ids"].items() if v is not None),
        f"  model        {shape}",
    ]
    for name, form in info["forms"].items():
        inputs = ", ".join(f"{k} {_shape(k, v)}" for k, v in form["inputs"].items())
        outputs = ", ".join(f"{k} {_shape(k, v)}" for k, v in form["outputs"].items())
        lines.append(f"  form {name:<8} signature '{form['signature']}': {inputs} -> {outputs}")
    lines.append("  bytes        " + ", ".join(f"{group} {size:,}" for group, size in info["bytes"].items()))
    if info.get("ops"):
        lines.append(f"  ops          {', '.join(info['ops'])}")
    training = info["training"] or {}
    final = training.get("final_metrics") or {}
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k.startswith("val_")) or "no validation"
    if source:
        lines.append(f"  came from    {source.get('kind')} {source.get('file')} ({source.get('framework')}, sha256 "
                     f"{str(source.get('sha256'))[:16]}...), tokenizer {source.get('tokenizer_file')}, "
                     f"output {source.get('output')}")
    else:
        lines.append(f"  trained on   {training.get('corpus')} ({training.get('mode')} mode, "
                     f"{training.get('epochs')} epochs; {metrics})")
    lines.append(f"  written by   nextword {info['nextword_version']}, model-file format {info['format_version']}")
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
