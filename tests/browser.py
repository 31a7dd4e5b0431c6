"""The web client (clients/web) in a real headless Chromium, for the browser tests and the web parity column.

    with browser_session() as browser, served({"m.onnx": path}) as server:
        page = open_page(browser, server, "m.onnx")      # the page, its model loaded
        page_suggest(page, ["hello how is"])             # [[(word, prob), ...]]

Debian's Chromium (a browser downloaded at install time does not work on these machines), driven by
Playwright for Python. `bash clients/web/install.sh` installs Chromium and the client's npm packages.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import threading
from pathlib import Path

import numpy as np

from nextword.cli.web import CLIENT_DIR, ORT_DIST, page_address, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: As root in a closed network: no sandbox, no GPU, and none of Chromium's background connections.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
#: How long a model may take to load in the page (the wasm engine compiles at first use).
LOAD_MS = 120_000


def missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (bash clients/web/install.sh)"
    if not (CLIENT_DIR / ORT_DIST).is_dir():
        return "the web client's npm packages are not installed (bash clients/web/install.sh)"
    return None


@contextlib.contextmanager
def browser_session():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def served(models: dict[str, Path]):
    """`nextword web`'s own server on a free port, serving the client and ``models`` (name -> file)."""
    server = serve(models, 0, CLIENT_DIR)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def open_page(browser, server, model_name: str | None = None, *, expect: str = "ready"):
    """A new page at the client, with ``?model=`` when a name is given; waits until it is ready (or fails)."""
    page = browser.new_page()
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    address = page_address(server, model_name) if model_name else f"http://127.0.0.1:{server.server_address[1]}/"
    page.goto(address)
    if model_name:
        wait_settled(page)
        state = page.get_attribute("body", "data-state")
        assert state == expect, (state, page.text_content("#error"))
    return page


def wait_settled(page) -> None:
    page.wait_for_selector("body[data-state=ready], body[data-state=error]", timeout=LOAD_MS)


def strip_words(page) -> list[str]:
    return [element.text_content() for element in page.query_selector_all(".suggestion")]


def call(page, script: str, payload) -> object:
    """Run ``script`` (the body of an async function of ``data``) in the page; the payload and the result
    travel as JSON text, which keeps lone surrogates (Playwright's own serialisation may not)."""
    wrapped = f"async (text) => {{ const data = JSON.parse(text); const result = await (async () => {{ {script} }})(); " \
              "return JSON.stringify(result); }"
    return json.loads(page.evaluate(wrapped, json.dumps(payload)))


def page_suggest(page, texts: list[str], k: int = 3) -> list[list[tuple[str, float]]]:
    """``NextWord.suggest`` in the page for each text."""
    script = ("const nw = window.nextwordPage.model; const out = [];"
              "for (const t of data.texts) out.push((await nw.suggest(t, data.k)).map(s => [s.word, s.prob]));"
              "return out;")
    return [[(w, p) for w, p in row] for row in call(page, script, {"texts": texts, "k": k})]


_RUN_SCRIPT = """
    const ort = await import("onnxruntime-web");
    const session = window.nextwordPage.model.engine.session;
    const decode = (b64, Type) => new Type(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)).buffer);
    const encode = (array) => {
      const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(text);
    };
    const out = await session.run({
      tokens: new ort.Tensor("int32", decode(data.tokens, Int32Array), data.tokens_shape),
      h: new ort.Tensor("float32", decode(data.h, Float32Array), data.state_shape),
      c: new ort.Tensor("float32", decode(data.c, Float32Array), data.state_shape),
    });
    return {probs: encode(out.probs.data), h: encode(out.h_out.data), c: encode(out.c_out.data),
            probs_shape: out.probs.dims, state_shape: out.h_out.dims};"""


class WebEngine:
    """The page's ONNX Runtime Web session behind the Python engines' interface (``window``, ``step``,
    ``sequence`` on numpy arrays), so the parity measures run on it unchanged. The page must have a model."""

    name = "onnxruntime-web"
    has_step = has_sequence = True

    def __init__(self, page) -> None:
        self.page = page

    @staticmethod
    def padded_steps(steps: int) -> int:
        return steps

    @staticmethod
    def declared_shapes() -> dict:
        return {}

    def sequence(self, tokens, h, c):
        tokens = np.ascontiguousarray(tokens, np.int32)
        h, c = np.ascontiguousarray(h, np.float32), np.ascontiguousarray(c, np.float32)
        encode = lambda array: base64.b64encode(array.tobytes()).decode("ascii")  # noqa: E731
        out = call(self.page, _RUN_SCRIPT, {"tokens": encode(tokens), "tokens_shape": list(tokens.shape),
                                            "h": encode(h), "c": encode(c), "state_shape": list(h.shape)})
        decode = lambda text, shape: np.frombuffer(base64.b64decode(text), np.float32).reshape(shape)  # noqa: E731
        return (decode(out["probs"], out["probs_shape"]), decode(out["h"], out["state_shape"]),
                decode(out["c"], out["state_shape"]))

    def window(self, tokens):
        tokens = np.asarray(tokens, np.int32)
        return self.sequence(tokens, *self._zero(len(tokens)))[0]

    def step(self, token, h, c):
        return self.sequence(np.asarray(token, np.int32).reshape(-1, 1), h, c)

    def _zero(self, batch: int):
        config = self.page_config()
        zero = np.zeros((config["num_layers"], batch, config["hidden_size"]), np.float32)
        return zero, zero

    def page_config(self) -> dict:
        if not hasattr(self, "_config"):
            self._config = call(self.page, "return window.nextwordPage.model.config.model;", None)
        return self._config
