"""``nextword keygen --out NAME``: an Ed25519 key pair for signing model files.

    nextword keygen --out keys/release      # keys/release.key (private, 0600) and keys/release.pub
    nextword export runs/ptb --out models/ptb --sign keys/release.key
    nextword predict models/ptb/model.int8.tflite "the" --trust keys/release.pub

Keep the .key file off devices and out of version control; ship the .pub file with the app.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("keygen", help="make an Ed25519 key pair to sign model files (export --sign)",
                              description="Write NAME.key (the private key, PEM, readable by you only) and NAME.pub "
                                          "(the public key an app trusts: --trust, Predictor.load(trust=...)). "
                                          "Needs the cryptography package (pip install \"nextword[sign]\").")
    p.add_argument("--out", required=True, metavar="NAME", help="path and name of the two files, without suffix")
    p.set_defaults(run=run)


def run(args) -> int:
    from nextword.modelfile.signing import generate

    private, public = generate(args.out)
    print(f"wrote {private} (private: keep it secret, sign with `nextword export ... --sign {private}`)")
    print(f"wrote {public} (public: ship it with the app, check with `--trust {public}`)")
    return 0
