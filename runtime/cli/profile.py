"""``nextword profile show|clear|export|import FILE``: look at, empty, back up and merge a user profile.

    nextword profile show ~/.nextword/me.profile
    nextword profile export ~/.nextword/me.profile --out backup.json
    nextword profile clear ~/.nextword/me.profile              # forget what was learned, keep the blocklist
    nextword profile import ~/.nextword/me.profile --from backup.json

A profile is written by ``nextword keyboard MODEL --profile FILE`` (see ``nextword.profile``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nextword.errors import UsageError
from nextword.profile import Profile, ProfileError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("profile", help="show, clear, export or import a keyboard user profile",
                              description="A user profile holds what the keyboard learned from its user: "
                                          "personal words, word sequences, mixing weights and blocked words.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="what the profile holds")
    show.add_argument("file", metavar="FILE")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    clear = actions.add_parser("clear", help="forget everything learned (blocked words stay unless --all)")
    clear.add_argument("file", metavar="FILE")
    clear.add_argument("--all", action="store_true", help="also forget the blocked words")
    export = actions.add_parser("export", help="write a copy of the profile file to --out, or to standard output")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--out", metavar="OUT", help="where to write the copy (default: standard output)")
    merge = actions.add_parser("import", help="add an exported profile's counts and blocked words to FILE")
    merge.add_argument("file", metavar="FILE")
    merge.add_argument("--from", dest="source", required=True, metavar="EXPORTED",
                       help="a profile file or an export of one, learned with the same model")
    p.set_defaults(run=run)


def run(args) -> int:
    path = Path(args.file)
    if args.action == "import":
        return _import(path, Path(args.source))
    profile = Profile.load(path)
    if args.action == "show":
        summary = {"file": str(path), "bytes": path.stat().st_size, **profile.summary()}
        if args.json:
            print(json.dumps(summary, indent=2, ensure_ascii=False))
        else:
            _print_summary(summary)
    elif args.action == "clear":
        cleared = Profile(path, vocab_sha256=profile.vocab_sha256, threshold=profile.threshold)
        if not args.all:
            cleared.blocked = set(profile.blocked)
        cleared.save()
        kept = f"; kept {len(cleared.blocked)} blocked words" if cleared.blocked else ""
        print(f"cleared {path}: {profile.messages:,} messages and {len(profile.grams):,} n-grams forgotten{kept}")
    elif args.out:
        profile.save(args.out)
        print(f"wrote {args.out}")
    else:
        sys.stdout.buffer.write(profile.to_bytes() + b"\n")
    return 0


def _import(path: Path, source: Path) -> int:
    incoming = Profile.load(source)
    profile = Profile.load(path) if path.exists() else Profile(path, vocab_sha256=incoming.vocab_sha256)
    if profile.vocab_sha256 and incoming.vocab_sha256 and profile.vocab_sha256 != incoming.vocab_sha256:
        raise ProfileError(f"{source} was learned with another model's vocabulary than {path}; "
                           "import only profiles of the same model")
    if path.resolve() == source.resolve():
        raise UsageError("import a profile into another file, not into itself")
    profile.merge(incoming)
    profile.save(path)
    print(f"imported {source} into {path}: {profile.messages:,} messages, {len(profile.grams):,} n-grams")
    return 0


def _print_summary(summary: dict) -> None:
    print(f"{summary['file']}: {summary['bytes']:,} bytes, {summary['messages']:,} messages learned")
    print(f"  model vocabulary sha256 {summary['vocab_sha256']}")
    print(f"  personal words (sent {summary['threshold']}+ times): {summary['personal_words']:,}"
          + (f"  e.g. {', '.join(summary['top_personal_words'])}" if summary["top_personal_words"] else ""))
    print("  word sequences: " + ", ".join(f"{n:,} of {order}" for order, n in summary["ngrams"].items()))
    print("  learned weights (model/user/recent) by context evidence: " + ", ".join(
        f"{b} {w['model']:.2f}/{w['user']:.2f}/{w['recent']:.2f}" for b, w in summary["mixing_weights"].items()))
    print(f"  blocked words: {', '.join(summary['blocked']) if summary['blocked'] else '(none)'}")
