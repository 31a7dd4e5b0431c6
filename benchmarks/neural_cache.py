"""An experiment, not a feature: would a continuous cache (Grave et al., 2017) add to the user profile?

    .venv/bin/python benchmarks/neural_cache.py models/ptb/model.int8.tflite ptb.test.txt --theta 1 --weight 0.1

Runs ``nextword eval --adapt``'s simulation (``evaluate_adapted``: each line scored, then sent) with one
more part mixed into the profile's distribution: the LSTM's top-layer output after each earlier word,
kept with the word that followed it (the last ``--size`` of them, across messages), and for the next word

    p_cache(w) = sum over kept i with word w of softmax_i(theta * h . h_i)
    p(w) = (1 - weight) * p_profile(w) + weight * p_cache(w)

where h is the output the session's next suggestion comes from. It wraps two methods of the session in this
process only. Prints one JSON object: perplexity, suggest top-3 and keystroke savings with this mix, and
without any adaptation. ``--weight 0`` gives the profile alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("text", help="one message per line, typed in order")
    parser.add_argument("--theta", type=float, default=1.0, help="sharpness of the similarity (default 1)")
    parser.add_argument("--weight", type=float, default=0.1, help="the cache's share of the mix (default 0.1)")
    parser.add_argument("--size", type=int, default=2000, help="outputs kept (default 2000)")
    parser.add_argument("--lines", type=int, help="only the first N lines")
    parser.add_argument("--engine", default="ai-edge-litert")
    args = parser.parse_args(argv)

    from nextword import Predictor
    from nextword.measure.evaluate import evaluate_adapted
    from nextword.session import Session

    predictor = Predictor.load(args.model, engine=args.engine, threads=1)
    with open(args.text, encoding="utf-8") as file:
        lines = file.read().splitlines()[: args.lines]
    kept_h: np.ndarray | None = None
    kept_ids = np.zeros(args.size, np.int64)
    count = 0
    adapted, feed_tokens = Session.adapted, Session.feed_tokens

    def top_output(session: Session) -> np.ndarray:
        return session._state()[0][-1, 0]  # (layers, 1, units): the top layer's output

    def adapted_with_cache(session: Session):
        mixed, index = adapted(session)
        if not count or not args.weight:
            return mixed, index
        held = min(count, args.size)
        scores = args.theta * (kept_h[:held] @ top_output(session))
        weights = np.exp(scores - scores.max())
        cache = np.bincount(kept_ids[:held], weights=weights / weights.sum(), minlength=len(mixed))
        return (1 - args.weight) * mixed + args.weight * cache[: len(mixed)].astype(np.float32), index

    def feed_and_keep(session: Session, tokens: list[str]) -> None:
        nonlocal kept_h, count
        for token in tokens:
            ids = session.predictor.tokenizer.ids([token])
            if ids:
                h = top_output(session)
                if kept_h is None:
                    kept_h = np.zeros((args.size, len(h)), np.float32)
                kept_h[count % args.size], kept_ids[count % args.size] = h, ids[0]
                count += 1
            feed_tokens(session, [token])

    Session.adapted, Session.feed_tokens = adapted_with_cache, feed_and_keep
    started = time.perf_counter()
    result = evaluate_adapted(predictor, lines)
    base = result["baseline"]
    print(json.dumps({"theta": args.theta, "weight": args.weight, "size": args.size, "lines": len(lines),
                      "perplexity": round(result["perplexity"], 2), "suggest_top3": round(result["suggest_top3"], 4),
                      "ksr": round(result["ksr"], 4), "baseline_perplexity": round(base["perplexity"], 2),
                      "baseline_suggest_top3": round(base["suggest_top3"], 4), "baseline_ksr": round(base["ksr"], 4),
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
