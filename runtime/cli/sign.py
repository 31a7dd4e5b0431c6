"""``nextword sign MODEL... --key KEY.key``: sign model files that were exported unsigned (or re-sign them).

    nextword keygen --out keys/release
    nextword sign models/ptb/*.tflite models/ptb/*.onnx --key keys/release.key
    nextword predict models/ptb/model.int8.tflite "the" --trust keys/release.pub

The same signature ``nextword export --sign`` writes (``nextword.modelfile.signing``: the file's checksum, signed with
Ed25519): each file is checked first (a damaged one is refused, never signed), signed, read back with the
key's public half, and only then replaces the original (a temporary file renamed: never half-written).
A signature already there is replaced. Needs the cryptography package (pip install "nextword[sign]").
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sign", help="sign exported model files with an Ed25519 key (in place)",
                              description="Sign .tflite/.onnx files written by `nextword export` with a private key "
                                          "from `nextword keygen`, as `export --sign` does; an app that trusts the "
                                          "public key (--trust, Predictor.load(trust=...)) then runs them.")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite/.onnx files written by `nextword export`")
    p.add_argument("--key", required=True, metavar="KEY.key", help="the Ed25519 private key (PEM) to sign with")
    p.set_defaults(run=run)


def run(args) -> int:
    from nextword.modelfile.signing import load_private_key, sign_file

    key = load_private_key(args.key)  # a bad key fails before any file is touched
    for model in args.models:
        print(f"signed {sign_file(model, key)}")
    return 0
