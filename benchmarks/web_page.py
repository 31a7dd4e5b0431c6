"""What the web page costs: the bytes it loads, the time to its first suggestion, and suggest() in the browser.

    .venv/bin/python benchmarks/web_page.py models/default/model.int8.onnx [--repeats 200]

Serves the client (clients/web) with the model on 127.0.0.1 like `nextword web`, opens it in headless
Chromium (Debian's), and prints every file the page loaded with its size, the time from navigation to a
loaded model, and in-page timings: `suggest()` p50 by context length (fresh contexts), in typing order, and
a session's cost per typed word
(ONNX Runtime Web, wasm, one thread). Needs `bash clients/web/install.sh`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import browser_session, call, missing, served, wait_settled  # noqa: E402
from nextword.cli.web import page_address  # noqa: E402

TIMING = """
    const nw = window.nextwordPage.model;
    const words = ["the", "people", "said", "that", "we", "would", "like", "to", "see", "you", "again",
                   "next", "week", "at", "home", "with", "all", "of", "our", "friends"];
    const p50 = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const out = {suggest: {}};
    nw.rememberContexts = false; // fresh contexts: each call reads its whole context (as `nextword bench`)
    for (const n of data.lengths) {
      const text = Array.from({length: n}, (_, i) => words[i % words.length]).join(" ") + " ";
      await nw.suggest(text);
      const times = [];
      for (let r = 0; r < data.repeats; r++) {
        const start = performance.now();
        await nw.suggest(text);
        times.push(performance.now() - start);
      }
      out.suggest[n] = p50(times);
    }
    nw.rememberContexts = true;
    const typing = []; // typing order: each text the one before plus a word (a recent context extended)
    for (let r = 0; r < data.repeats; r++) {
      const text = words.slice(0, r % 18 + 1).join(" ") + " ";
      const start = performance.now();
      await nw.suggest(text);
      typing.push(performance.now() - start);
    }
    out.suggest_typing = p50(typing);
    const session = nw.session();
    const perWord = [];
    for (let r = 0; r < data.repeats; r++) {
      const start = performance.now();
      await session.feed(words[r % words.length]);
      await session.suggest(3);
      perWord.push(performance.now() - start);
      if (r % 10 === 9) session.reset();
    }
    out.session_word = p50(perWord);
    return out;"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a nextword .onnx file")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    if missing():
        print(f"web_page.py: {missing()}", file=sys.stderr)
        return 1
    loaded: list[tuple[str, int]] = []
    with browser_session() as browser, served({args.model.name: args.model}) as server:
        page = browser.new_page()
        page.on("response", lambda response: loaded.append((response.url, len(response.body()))))
        started = time.perf_counter()
        page.goto(page_address(server, args.model.name))
        wait_settled(page)
        ready_s = time.perf_counter() - started
        if page.get_attribute("body", "data-state") != "ready":
            print(f"web_page.py: the page did not load the model: {page.text_content('#error')}", file=sys.stderr)
            return 1
        window = call(page, "return window.nextwordPage.model.window;", None)
        timings = call(page, TIMING, {"lengths": sorted({1, 3, 5, 10, window}), "repeats": args.repeats})
    return report(args.model, loaded, ready_s, timings)


def report(model: Path, loaded, ready_s: float, timings: dict) -> int:
    print(f"web page with {model} (ONNX Runtime Web, wasm, one thread; headless Chromium)")
    total = 0
    for url, size in loaded:
        name = url.split("127.0.0.1:")[-1].split("/", 1)[-1].split("?")[0] or "(page)"
        print(f"  {size:>12,} bytes  {name}")
        total += size
    print(f"  {total:>12,} bytes  in all ({total / 1e6:.2f} MB)")
    print(f"navigation to a loaded model: {ready_s:.2f} s")
    for length, ms in timings["suggest"].items():
        print(f"suggest() p50, {length:>3}-word context: {ms:.3f} ms")
    print(f"suggest() p50 in typing order (each text the one before plus a word): {timings['suggest_typing']:.3f} ms")
    print(f"session word (feed + suggest) p50: {timings['session_word']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
