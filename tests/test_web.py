"""The web client (clients/web) in headless Chromium: its tokenizer, its suggestions and its page, against Python.

The JavaScript tokenizer must split every text as the Python one does (generated texts of any Unicode, every
code point's lowercase and whitespace, the final-sigma rule), and the page's suggestions must be what
`nextword predict` says for the same ONNX file. Needs Debian's chromium and the client's npm packages
(`bash clients/web/install.sh`, part of the README's test command).
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import unicodedata
import urllib.request
from pathlib import Path

import pytest

from nextword import Predictor
from nextword.tokenizer import KERAS_FILTERS, Tokenizer, TokenizerConfig
from nextword.cli.web import CLIENT_DIR, page_address

from browser import browser_session, call, missing, open_page, page_suggest, served, strip_words
from conftest import run_cli, user_env

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

GEN_UNICODE = CLIENT_DIR / "gen_unicode.py"


@pytest.fixture(scope="module")
def browser():
    with browser_session() as session:
        yield session


@pytest.fixture(scope="module")
def default_onnx(readme_main_job) -> Path:
    """The default model (README command 1, every precision), its ONNX files."""
    _, results, folder = readme_main_job
    assert all(result.returncode == 0 for result in results), [r.stderr[-500:] for r in results]
    return folder / "models" / "default"


@pytest.fixture(scope="module")
def blank_page(browser):
    """The client page with no model: for tokenizer tests, which import its modules."""
    with served({}) as server:
        page = open_page(browser, server)
        yield page
        page.close()


# ------------------------------------------------------------------------------------------ tokenizer
#: Characters a keyboard sends and a tokenizer trips on: every Python whitespace, JavaScript-only "spaces"
#: (U+FEFF, U+180E, U+200B), Greek sigma contexts, case changes that grow a string, special tokens.
PIECES = ["hello", "How", "ARE", "you", "Ça", "VA", "東京", "🙂", "naïve", "İstanbul", "ẞ", "ΌΣΟΣ", "ΣΑΣ", "Σ", "ς",
          "Α'Σ", "Σ.", "<unk>", "<eos>", "<pad>", "<OOV>", "don't", "e-mail", "x\u0301Σ", "ǅ", "\u0345Σ", "𐐀", "Ⅻ",
          "\ud800", "\udc00x", "ab\udbff"]
SPACES = [" ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u1680", "\u2000",
          "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff", "\u180e", "\u200b"]


def random_char(rng: random.Random) -> str:
    while True:
        kind = rng.random()
        if kind < 0.4:
            cp = rng.randrange(0x20, 0x250)
        elif kind < 0.7:
            cp = rng.randrange(0x250, 0x3000)
        elif kind < 0.85:
            cp = rng.randrange(0x3000, 0x10000)
        else:
            cp = rng.randrange(0x10000, 0x110000)
        if not 0xD800 <= cp < 0xE000:
            return chr(cp)


def generated_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "\ufeff", "<unk>", "hello how is", "Hello, how is your day?"]
    while len(texts) < count:
        parts = []
        for _ in range(rng.randrange(0, 10)):
            kind = rng.random()
            if kind < 0.3:
                parts.append(rng.choice(PIECES))
            elif kind < 0.5:
                parts.append(rng.choice(KERAS_FILTERS + "«»—'’"))
            elif kind < 0.85:
                parts.append("".join(random_char(rng) for _ in range(rng.randrange(1, 6))))
            else:
                parts.append(rng.choice(SPACES))
            parts.append(rng.choice(SPACES) if rng.random() < 0.6 else "")
        text = "".join(parts)
        # A high surrogate followed by a low one is one character in JavaScript but two in Python: keep apart.
        texts.append(re.sub("([\ud800-\udbff])(?=[\udc00-\udfff])", r"\1 ", text))
    return texts


def tokenizers() -> dict[str, Tokenizer]:
    """A default tokenizer fitted on generated text (so Unicode words have ids), one with <eos>, a Keras user's
    (split " ", <OOV> as word 1), and one without <unk>, without lowercasing, with non-ASCII filters."""
    corpus = [text.encode("utf-8", "replace").decode("utf-8") for text in generated_texts(300, seed=1)]
    return {
        "default": Tokenizer.fit(corpus),
        "eos": Tokenizer.fit(corpus, TokenizerConfig(eos_token="<eos>", max_vocab=400)),
        "keras": Tokenizer(["<OOV>", "hello", "how", "are", "you", "ça", "東京"], TokenizerConfig(split=" ", unk_token="<OOV>")),
        "raw": Tokenizer.fit(corpus, TokenizerConfig(lower=False, unk_token=None, filters="«»—𐐀,.")),
    }


def test_tokenizer_equals_python_on_generated_texts(blank_page):
    texts = generated_texts(1200)
    script = """
        const { Tokenizer } = await import("./tokenizer.js");
        const out = {};
        for (const [name, t] of Object.entries(data.tokenizers)) {
          const tok = new Tokenizer(t.vocab, t.settings);
          out[name] = data.texts.map((text) => [tok.split(text), tok.encode(text), tok.contextIds(text)]);
        }
        return out;"""
    payload = {"texts": texts, "tokenizers": {name: {"vocab": tok.vocab_text(), "settings": tok.settings()}
                                              for name, tok in tokenizers().items()}}
    got = call(blank_page, script, payload)
    for name, tok in tokenizers().items():
        expected = [[tok.split(text), tok.encode(text), tok.context_ids(text)] for text in texts]
        mismatches = [(text, e, g) for text, e, g in zip(texts, expected, got[name]) if e != g]
        assert not mismatches, (name, len(mismatches), mismatches[:3])
    assert len(texts) >= 1000


def test_lowercase_and_whitespace_equal_python_for_every_code_point(blank_page):
    lower = {cp: chr(cp).lower() for cp in range(0x110000) if not 0xD800 <= cp < 0xE000 and chr(cp).lower() != chr(cp)}
    space = [cp for cp in range(0x110000) if chr(cp).isspace()]
    script = """
        const { pyLower, isSpace } = await import("./tokenizer.js");
        const bad = [];
        for (let cp = 0; cp < 0x110000; cp++) {
          if (cp >= 0xd800 && cp < 0xe000) continue;
          const ch = String.fromCodePoint(cp);
          const want = data.lower[cp] ?? ch;
          if (pyLower(ch) !== want) bad.push(["lower", cp]);
          if (isSpace(cp) !== data.space.includes(cp)) bad.push(["space", cp]);
        }
        return bad;"""
    bad = call(blank_page, script, {"lower": lower, "space": space})
    assert bad == [], bad[:10]
    assert len(lower) > 1000 and len(space) == 29


def sigma_lowered(lowered: str, probe: str) -> str:
    return lowered[1] if probe == "following" else lowered[-1]


def test_final_sigma_equals_python_for_every_code_point(blank_page):
    """Σ lowers to ς after a cased letter unless one follows (case-ignorables skipped): the neighbourhood of Σ
    probed with every code point, as Python lowers it."""
    probes = {"before": "{}\u03a3", "after_a": "A{}\u03a3", "following": "A\u03a3{}"}
    # Where Σ is: last in the first two probes, second in the third ("A" lowers to one character).
    final = {name: [cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000
                    and sigma_lowered(form.format(chr(cp)).lower(), name) == "\u03c2"]
             for name, form in probes.items()}
    script = """
        const { pyLower } = await import("./tokenizer.js");
        const bad = [];
        for (const [name, form] of Object.entries(data.probes)) {
          const want = new Set(data.final[name]);
          for (let cp = 0; cp < 0x110000; cp++) {
            if (cp >= 0xd800 && cp < 0xe000) continue;
            const text = form.replace("{}", String.fromCodePoint(cp));
            const low = pyLower(text);
            const sigma = name === "following" ? low[1] : low[low.length - 1];
            if ((sigma === "\\u03c2") !== want.has(cp)) bad.push([name, cp]);
          }
        }
        return bad;"""
    bad = call(blank_page, script, {"probes": probes, "final": final})
    assert bad == [], bad[:10]


def test_unicode_tables_are_those_of_this_python():
    committed = (CLIENT_DIR / "unicode.js").read_text(encoding="utf-8")
    version = re.search(r"UNICODE_VERSION = '([\d.]+)'", committed).group(1)
    if version != unicodedata.unidata_version:
        pytest.skip(f"the tables follow Unicode {version} (Python 3.11); this Python has {unicodedata.unidata_version}")
    fresh = subprocess.run([sys.executable, str(GEN_UNICODE)], capture_output=True, text=True, check=True).stdout
    strip = lambda text: text.split("\n", 1)[1]  # noqa: E731 - the first line names the Python patch version
    assert strip(fresh) == strip(committed), "run: python3 clients/web/gen_unicode.py > clients/web/unicode.js"


# ------------------------------------------------------------------------------------------ the page
def test_typing_hello_how_is_shows_your_first(browser, default_onnx):
    with served({"model.onnx": default_onnx / "model.onnx"}) as server:
        page = open_page(browser, server, "model.onnx")
        page.click("#text")
        page.keyboard.type("hello how is")
        page.wait_for_function("document.querySelector('.suggestion')?.textContent === 'your'", timeout=10_000)
        assert strip_words(page)[0] == "your"
        assert page.errors == []


def test_a_partial_word_shows_its_completions_and_tab_or_a_click_accepts(browser, default_onnx):
    path = default_onnx / "model.int8.onnx"
    predictor = Predictor.load(path, engine="onnxruntime")
    expected = [s.word for s in predictor.suggest("hello ho", 3)]
    assert expected and all(word.startswith("ho") for word in expected)
    with served({path.name: path}) as server:
        page = open_page(browser, server, path.name)
        page.click("#text")
        page.keyboard.type("hello ho")
        page.wait_for_function(f"[...document.querySelectorAll('.suggestion')].map(e => e.textContent).join(' ') "
                               f"=== {json.dumps(' '.join(expected))}", timeout=10_000)
        page.keyboard.press("Tab")  # the first completion replaces the partial word, and a space follows
        assert page.input_value("#text") == f"hello {expected[0]} "
        after = [s.word for s in predictor.suggest(f"hello {expected[0]} ", 3)]
        page.wait_for_function(f"document.querySelector('.suggestion')?.textContent === {json.dumps(after[0])}")
        page.click(".suggestion >> nth=1")
        assert page.input_value("#text") == f"hello {expected[0]} {after[1]} "
        assert page.errors == []


def damaged_files(good: Path, tflite: Path, tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, what the page's line must say)."""
    data = bytearray(good.read_bytes())
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    import onnx

    bare = onnx.load_from_string(bytes(data))
    del bare.metadata_props[:]
    return {
        "flipped.onnx": (bytes(flipped), "do not match their sha256"),
        "truncated.onnx": (bytes(data[: len(data) // 3]), "truncated or damaged"),
        "empty.onnx": (b"", "empty"),
        "notes.onnx": ("hello how are you\n".encode(), "not a nextword model file"),
        "model.tflite": (tflite.read_bytes(), "TFLite file"),
        "bare.onnx": (bare.SerializeToString(), "no nextword metadata"),
    }


def test_bad_files_show_one_clear_line_and_the_page_still_works(browser, exported, tmp_path):
    _, models, _ = exported
    good = models / "model.onnx"
    with served({good.name: good}) as server:
        page = open_page(browser, server)
        for name, (data, says) in damaged_files(good, models / "model.tflite", tmp_path).items():
            page.set_input_files("#file", files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
            page.wait_for_selector("body[data-state=error]", timeout=60_000)
            line = page.text_content("#error")
            assert says in line and "\n" not in line, (name, line)
            assert page.is_visible("#error") and page.is_visible("#text")
            page.evaluate("document.body.dataset.state = 'empty'")
        page.set_input_files("#file", files=[{"name": good.name, "mimeType": "application/octet-stream",
                                              "buffer": good.read_bytes()}])
        page.wait_for_selector("body[data-state=ready]", timeout=60_000)
        assert page.text_content("#error") == ""
        # A wrong file chosen after a good one: one line, and the model loaded before keeps suggesting.
        page.set_input_files("#file", files=[{"name": "notes.onnx", "mimeType": "text/plain", "buffer": b"notes"}])
        page.wait_for_selector("body[data-state=error]", timeout=60_000)
        assert "still using the model loaded before" in page.text_content("#status")
        page.click("#text")
        page.keyboard.type("we want ")
        page.wait_for_selector(".suggestion", timeout=10_000)
        missing_page = open_page(browser, server, "nowhere.onnx", expect="error")  # a URL that is not there
        assert "HTTP 404" in missing_page.text_content("#error")
        assert page.errors == [] and missing_page.errors == []


def test_a_trusted_key_admits_only_files_signed_with_it(browser, exported, tmp_path):
    """As `--trust` in Python: with the app's public key, the page and `NextWord.load(..., {trust})` refuse an
    unsigned file, one signed by another key and one whose signature was edited, each in one line."""
    pytest.importorskip("cryptography")
    from nextword.modelfile.signing import generate, load_private_key, signed_bytes

    _, models, _ = exported
    keys = {name: generate(tmp_path / name) for name in ("release", "other")}
    plain = (models / "model.int8.onnx").read_bytes()
    signed = signed_bytes(plain, "onnx", load_private_key(keys["release"][0]))
    record_at = signed.rindex(b'"signature": "') + len(b'"signature": "')
    edited = bytearray(signed)
    edited[record_at] = ord("0") if edited[record_at] != ord("0") else ord("1")
    files = {"signed.onnx": signed, "plain.onnx": plain,
             "other.onnx": signed_bytes(plain, "onnx", load_private_key(keys["other"][0])), "edited.onnx": bytes(edited)}
    (tmp_path / "signed.onnx").write_bytes(signed)
    script = """
        const { NextWord } = await import("./nextword.js");
        const decode = (b64) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const out = {};
        for (const [name, b64] of Object.entries(data.files)) {
          try {
            const model = await NextWord.load(decode(b64), { trust: data.trust });
            out[name] = model.trusted ? "trusted" : "untrusted";
          } catch (err) { out[name] = `${err.name}: ${err.message}`; }
        }
        try { await NextWord.load(decode(data.files["signed.onnx"]), { trust: "not a key" }); }
        catch (err) { out.badKey = err.message; }
        return out;"""
    import base64

    payload = {"files": {name: base64.b64encode(data).decode("ascii") for name, data in files.items()},
               "trust": keys["release"][1].read_text()}
    with served({"signed.onnx": tmp_path / "signed.onnx", "trusted.pub": keys["release"][1],
                 "other.pub": keys["other"][1]}) as server:
        blank = open_page(browser, server)
        said = call(blank, script, payload)
        assert said["signed.onnx"] == "trusted"
        assert said["plain.onnx"] == "NextWordError: the model is not signed, and a trusted key was given: this app " \
                                     "only runs the models it shipped (export them with --sign)"
        assert "signed by another key" in said["other.onnx"] and "does not match its content" in said["edited.onnx"]
        assert "not a PEM public key" in said["badKey"]
        page = browser.new_page()
        page.goto(page_address(server, "signed.onnx", "trusted.pub"))
        page.wait_for_selector("body[data-state=ready]", timeout=120_000)
        assert "signature verified" in page.text_content("#status")
        page.set_input_files("#file", files=[{"name": "plain.onnx", "mimeType": "application/octet-stream",
                                              "buffer": plain}])  # a file the user picks is held to the key too
        page.wait_for_selector("body[data-state=error]", timeout=60_000)
        assert "is not signed" in page.text_content("#error")
        foreign = browser.new_page()
        foreign.goto(page_address(server, "signed.onnx", "other.pub"))
        foreign.wait_for_selector("body[data-state=error]", timeout=120_000)
        assert "signed by another key" in foreign.text_content("#error")
        assert blank.errors == []
    refused = run_cli("web", str(tmp_path / "signed.onnx"), "--trust", str(keys["other"][1]), "--port", "0")
    assert refused.returncode != 0 and "signed by another key" in refused.stderr and "Traceback" not in refused.stderr


# ------------------------------------------------------------------------------------------ parity
def contexts_of(lines: list[str], count: int, seed: int = 0) -> list[str]:
    """Prefixes of real lines (whole words, and cut inside a word for completions), edge cases, random text."""
    rng = random.Random(seed)
    texts = ["", "hello how is", "hello ho", "<unk>", "ΌΣΟΣ", "🙂 ", "the", "don't", "a " * 80]
    while len(texts) < count:
        line = rng.choice(lines)
        cut = rng.randrange(0, len(line) + 1)
        texts.append(line[:cut] if rng.random() < 0.8 else generated_texts(1, seed=rng.randrange(10**6))[-1])
    return texts


#: How far the page's probabilities may be from ONNX Runtime's, relative to their value, by file precision.
#: float32: float rounding. int8: both engines quantize the activations per call (DynamicQuantizeLinear), and
#: a value on a rounding boundary can land one step apart in wasm and native code; measured once 0.31% (one
#: of 368 session states of the default model trained 2026-12-03 on an AVX2 EPYC; the page's word order the same).
RELATIVE = {"float32": 0.0, "int8": 0.01}


def assert_same_suggestions(expected, got, texts, precision: str = "float32"):
    """Equal words in equal order; where two words' probabilities are within the two engines' rounding
    (ONNX Runtime native and wasm: ``RELATIVE``), either order is the same ranking."""
    def close(p: float, q: float) -> bool:
        return abs(p - q) <= 1e-5 + RELATIVE[precision] * max(p, q)

    mismatches = []
    for text, want, have in zip(texts, expected, got):
        if [w for w, _ in want] == [w for w, _ in have]:
            assert all(close(p, q) for (_, p), (_, q) in zip(want, have)), (text, want, have)
            continue
        tie = len(want) == len(have) and all(close(p, q) for (_, p), (_, q) in zip(want, have))
        if not tie:
            mismatches.append((text, want, have))
    assert not mismatches, (len(mismatches), mismatches[:3])


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx"])
@pytest.mark.parametrize("which", ["default", "fixture"])
def test_page_suggestions_equal_predict(browser, default_onnx, exported, which, name):
    folder = default_onnx if which == "default" else exported[1]
    path = folder / name
    predictor = Predictor.load(path, engine="onnxruntime")
    if which == "default":
        from nextword.train.corpus import default_corpus_path

        lines = default_corpus_path().read_text(encoding="utf-8").splitlines()
    else:
        lines = ["we want to see you today", "thank you so much", "they see some tea today", "good night"]
    texts = contexts_of(lines, 300)
    expected = [[(s.word, s.prob) for s in predictor.suggest(text, 3)] for text in texts]
    with served({name: path}) as server:
        page = open_page(browser, server, name)
        got = page_suggest(page, texts)
        precision = "int8" if "int8" in name else "float32"
        assert_same_suggestions(expected, got, texts, precision)
        # A session fed word by word (with backspaces) says what suggest() says for the same words.
        script = """
            const nw = window.nextwordPage.model; const s = nw.session(); const out = [];
            for (const step of data.steps) {
              if (step === null) await s.backspace(); else await s.feed(step);
              out.push((await s.suggest(3)).map(x => [x.word, x.prob]));
            }
            return out;"""
        words = " ".join(lines[:20]).split()[:60]
        steps, typed, states = [], [], []  # a word, or None for a backspace; the text after each step
        for i, word in enumerate(words):
            for step in ([word, None] if i % 7 == 6 else [word]):
                typed.pop() if step is None else typed.append(step)
                steps.append(step)
                states.append(" ".join(typed) + " ")
        session = call(page, script, {"steps": steps})
        expected = [[(s.word, s.prob) for s in predictor.suggest(text, 3)] for text in states]
        assert_same_suggestions(expected, [[tuple(x) for x in row] for row in session], states, precision)
        assert page.errors == []


def test_the_client_remembers_contexts_and_says_the_same_bits(browser, exported):
    """`suggest()` in typing order costs one step per new word (as `Predictor` does); its distributions must be
    exactly those of reading each whole context, and `probabilities()` hands out a copy."""
    path = exported[1] / "model.onnx"
    script = """
        const nw = window.nextwordPage.model; const out = {maxDiff: 0};
        const texts = [];
        for (const line of data.lines) {
          const words = line.split(" ");
          for (let n = 0; n <= words.length; n++) texts.push(words.slice(0, n).join(" ") + " ");
          texts.push(line + " ", words.slice(0, 2).join(" ") + " ");  // the same text again, and back
        }
        const engine = nw.engine; const run = engine.sequence.bind(engine); let steps = 0;
        engine.sequence = (tokens, h, c) => { steps += Math.max(1, tokens.length); return run(tokens, h, c); };
        const remembered = [];
        for (const t of texts) remembered.push(await nw.probabilities(t));
        out.steps = steps; out.texts = texts.length; steps = 0;
        nw.rememberContexts = false;
        for (let i = 0; i < texts.length; i++) {
          const fresh = await nw.probabilities(texts[i]);
          for (let j = 0; j < fresh.length; j++) out.maxDiff = Math.max(out.maxDiff, Math.abs(fresh[j] - remembered[i][j]));
        }
        out.freshSteps = steps;
        nw.rememberContexts = true;
        const first = await nw.probabilities("we want ");
        first.fill(0);
        out.copyKept = (await nw.probabilities("we want "))[3] !== 0;
        out.states = nw.states.size; out.distributions = nw.distributions.size;
        engine.sequence = run;
        return out;"""
    lines = ["we want to see you today", "thank you so much", "they see some tea today", "good night"] * 20
    with served({path.name: path}) as server:
        page = open_page(browser, server, path.name)
        result = call(page, script, {"lines": lines})
        assert page.errors == []
    assert result["maxDiff"] == 0, result
    # At most one step per text (a new word's; none for a text seen again), against its whole context each
    assert result["steps"] <= result["texts"] and result["steps"] < result["freshSteps"] / 2, result
    assert result["copyKept"] and result["states"] <= 64 and result["distributions"] <= 4, result


# ------------------------------------------------------------------------------------------ nextword web
def test_nextword_web_serves_the_page_and_the_model(exported):
    _, models, _ = exported
    model = models / "model.int8.onnx"
    process = subprocess.Popen([sys.executable, "-m", "nextword", "web", str(model), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env())
    try:
        line = process.stdout.readline()
        address = re.search(r"(http://127\.0\.0\.1:\d+/\?model=\S+)", line).group(1)
        page = urllib.request.urlopen(address, timeout=10).read().decode()
        assert 'id="text"' in page
        model_url = address.split("?")[0] + address.split("model=")[1]
        assert urllib.request.urlopen(model_url, timeout=10).read() == model.read_bytes()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(address.split("?")[0] + "../../README.md", timeout=10)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and "stopped" in out and "Traceback" not in err


@pytest.mark.parametrize("name, says", [("model.tflite", "TFLite file"), ("missing.onnx", "does not exist")])
def test_nextword_web_refuses_what_the_page_cannot_run(exported, name, says):
    from conftest import run_cli

    _, models, _ = exported
    result = run_cli("web", str(models / name), "--port", "0", timeout=60)
    assert result.returncode != 0 and says in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
