"""A long keyboard session in one process: does memory grow, and does a paste ever freeze it?

    .venv-litert/bin/python benchmarks/soak.py models/ptb/model.int8.tflite --words 1000000
    .venv-litert/bin/python benchmarks/soak.py models/ptb/model.int8.tflite --words 0 --messages 100000

Feeds ``--words`` words one at a time into one session (a suggestion strip after each word, a
backspace and a reset now and then, as a keyboard does), reading the process's resident memory
(VmRSS) after a warm-up and at the end; then times pastes of 10 kB, 100 kB and 1 MB of text into a
fresh session, and checks that the session's suggestions after each paste equal ``suggest()`` on
the same text. ``--messages N``: then N messages typed and sent into a session with a user profile
(each learned; a few new words in every one, so the profile reaches its cap and is pruned), RSS read
after the first tenth and at the end. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def soak_profile(predictor, vocabulary: list[str], count: int, rng: random.Random) -> dict:
    """``count`` messages of 5 to 15 words (two of them new words every time) sent into a profile."""
    from nextword.profile import Profile

    profile = Profile()
    session = predictor.session(profile)
    baseline, started, sizes = None, time.perf_counter(), []
    for message in range(count):
        if message == count // 10:
            baseline, started = rss_mb(), time.perf_counter()
        words = [rng.choice(vocabulary) for _ in range(rng.randint(3, 13))] + [f"new{message}", f"w{message % 5000}"]
        session.feed(" ".join(words))
        session.suggest(3)
        session.commit()
        if message % 10_000 == 9_999:
            sizes.append(len(profile.to_bytes()))
    return {"messages": count, "rss_mb_after_first_tenth": round(baseline, 1), "rss_mb_end": round(rss_mb(), 1),
            "rss_growth_mb": round(rss_mb() - baseline, 2), "profile_bytes_every_10000": sizes,
            "ms_per_message": round(1000 * (time.perf_counter() - started) / max(1, count - count // 10), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--words", type=int, default=1_000_000)
    parser.add_argument("--engine", default=None)
    parser.add_argument("--messages", type=int, default=0, help="also send this many messages into a profile")
    args = parser.parse_args()

    from nextword import Predictor

    predictor = Predictor.load(args.model, engine=args.engine)
    vocabulary = [w for w in predictor.tokenizer.vocab[1:] if not w.startswith("<")]
    rng = random.Random(0)
    words = [rng.choice(vocabulary) for _ in range(10_000)] + ["zzyzx", "Ça", "🙂"]
    session = predictor.session()
    warmup = min(20_000, args.words // 10)
    started = time.perf_counter()
    baseline = None
    for count in range(args.words):
        if count == warmup:
            baseline, started = rss_mb(), time.perf_counter()
        session.feed(words[count % len(words)])
        session.suggest(3)
        if count % 997 == 0:
            session.backspace()
        if count % 50_000 == 49_999:
            session.reset()
    seconds = time.perf_counter() - started
    end = rss_mb()
    messages = soak_profile(predictor, vocabulary, args.messages, rng) if args.messages else None

    pastes = {}
    for size in (10_000, 100_000, 1_000_000):
        text_words, length = [], 0
        while length < size:
            word = rng.choice(vocabulary)
            text_words.append(word)
            length += len(word) + 1
        text = " ".join(text_words) + " "
        fresh = predictor.session()
        t0 = time.perf_counter()
        fresh.feed(text)
        suggestions = [s.word for s in fresh.suggest(3)]
        elapsed = time.perf_counter() - t0
        pastes[f"{size:,} bytes"] = {"seconds": round(elapsed, 3), "words": len(text_words),
                                     "equals_suggest": suggestions == [s.word for s in predictor.suggest(text, 3)]}
    print(json.dumps({"model": args.model, "engine": predictor.engine_name, "words": args.words,
                      "rss_mb_after_warmup": round(baseline or float("nan"), 1), "rss_mb_end": round(end, 1),
                      "rss_growth_mb": round(end - (baseline or end), 2),
                      "ms_per_word_after_warmup": round(1000 * seconds / max(1, args.words - warmup), 4),
                      "pastes": pastes, "profile_messages": messages}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
