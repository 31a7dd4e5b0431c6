// The page: a text box and a strip of suggestions that follows every keystroke (index.html).
//
// The strip is a keyboard session (one model step per new word, as the Python keyboard), kept in step with
// the text before the caret: words that changed are backspaced, new ones fed, and an unfinished last word
// is completed. The model comes from `?model=URL` or the file chooser; `?trust=URL` admits only files signed
// with that public key.

import * as ort from "onnxruntime-web";
import { HISTORY, NextWord, NextWordError } from "./nextword.js";

ort.env.wasm.numThreads = 1; // threads need a cross-origin-isolated page; one thread is what a phone gives a tab
ort.env.logLevel = "error";

const SUGGESTIONS = 3;
const text = document.getElementById("text");
const strip = document.getElementById("strip");
const status = document.getElementById("status");
const error = document.getElementById("error");
const file = document.getElementById("file");

let model = null;
let session = null;
let busy = false;
let again = false;

function setState(state) {
  document.body.dataset.state = state;
}

function showError(err) {
  // One line, never a blank page: what is wrong and what to do (NextWordError), or what broke.
  const line = err instanceof NextWordError ? err.message : `unexpected error: ${err?.message ?? err}`;
  error.textContent = line.split("\n")[0];
  strip.replaceChildren();
  setState("error");
}

async function load(source, name) {
  setState("loading");
  error.textContent = "";
  status.textContent = `Loading ${name} ...`;
  text.disabled = true;
  try {
    const started = performance.now();
    const loaded = await NextWord.load(source, { trust: await trustPem() });
    model = loaded;
    session = model.session();
    const m = model.config.model;
    const precision = model.config.precision ?? "float32";
    status.textContent = `${name}: ${m.vocab_size.toLocaleString()} words, window ${m.window}, ${precision}, `
      + `${(model.bytes / 1e6).toFixed(2)} MB, loaded in ${Math.round(performance.now() - started)} ms `
      + `(ONNX Runtime Web, wasm)${model.trusted ? ", signature verified" : ""}`;
    text.disabled = false;
    setState("ready");
    text.focus();
    await update();
  } catch (err) {
    // A model already loaded keeps working: a wrong file chosen by mistake costs nothing typed.
    status.textContent = model ? `${name} was not loaded; still using the model loaded before.`
      : `${name} was not loaded.`;
    text.disabled = !model;
    showError(err);
  }
}

// The text before the caret, as the session should hold it: [context tokens, prefix].
function target() {
  const before = text.value.slice(0, text.selectionStart ?? text.value.length);
  const [context, prefix] = model.completionTarget(before);
  return { before, context, prefix, tokens: model.tokenizer.split(context) };
}

async function suggestions() {
  const { before, prefix, tokens } = target();
  if (tokens.length > HISTORY) return model.suggest(before, SUGGESTIONS); // a long text: its window alone matters
  const words = session.words;
  let common = 0;
  while (common < words.length && common < tokens.length && words[common] === tokens[common]) common++;
  for (let i = words.length; i > common; i--) await session.backspace();
  session.feedTokens(tokens.slice(common));
  return session.suggest(SUGGESTIONS, prefix);
}

function render(list) {
  strip.replaceChildren(...list.map(({ word, prob }) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "suggestion";
    button.dataset.word = word;
    button.textContent = word; // the element's text is the word alone; the probability is drawn by CSS
    button.dataset.prob = prob.toFixed(2);
    button.addEventListener("mousedown", (event) => event.preventDefault()); // keep the caret in the text box
    button.addEventListener("click", () => accept(word));
    return button;
  }));
}

// Suggestions for the current text; keystrokes that arrive meanwhile are folded into one more pass.
async function update() {
  if (!model) return;
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  try {
    do {
      again = false;
      const list = await suggestions();
      if (!again) render(list);
    } while (again);
    if (document.body.dataset.state === "ready") error.textContent = "";
  } catch (err) {
    showError(err);
  } finally {
    busy = false;
  }
}

// Put a word in: it replaces the unfinished word before the caret, or follows the last word.
function accept(word) {
  const caret = text.selectionStart ?? text.value.length;
  const before = text.value.slice(0, caret);
  const after = text.value.slice(caret);
  const { prefix } = target();
  let head = before;
  if (prefix) {
    let cut = head.length; // the unfinished word as typed: the characters after the last space or punctuation
    while (cut > 0 && !model.tokenizer.endsWord(head.slice(0, cut))) cut--;
    head = head.slice(0, cut);
  } else if (head && !model.tokenizer.endsWord(head)) {
    head += " ";
  }
  text.value = `${head}${word} ${after}`;
  const position = head.length + word.length + 1;
  text.setSelectionRange(position, position);
  text.focus();
  update();
}

text.addEventListener("input", update);
text.addEventListener("click", update);
text.addEventListener("keyup", (event) => {
  if (event.key.startsWith("Arrow") || event.key === "Home" || event.key === "End") update();
});
text.addEventListener("keydown", (event) => {
  const first = strip.querySelector(".suggestion");
  if (event.key === "Tab" && !event.shiftKey && first) {
    event.preventDefault();
    accept(first.dataset.word);
  }
});
file.addEventListener("change", () => {
  const chosen = file.files?.[0];
  if (chosen) load(chosen, chosen.name);
});

// `?trust=URL`: the app's public key (`nextword keygen`'s NAME.pub); every model, from the URL or the file chooser,
// must then be signed with it (`nextword export --sign`), as `--trust` in the Python runtime.
const params = new URLSearchParams(location.search);
let trustFetch = null;
function trustPem() {
  const where = params.get("trust");
  if (!where) return Promise.resolve(null);
  trustFetch ??= fetch(where).then(async (response) => {
    if (!response.ok) throw new NextWordError(`cannot fetch the trusted key at ${where}: HTTP ${response.status}`);
    return response.text();
  }, (err) => {
    throw new NextWordError(`cannot fetch the trusted key at ${where} (${err.message})`);
  });
  return trustFetch;
}

const url = params.get("model");
if (url) load(url, url.split("/").pop());

// For tests and the console: the loaded model (NextWord) once ready.
window.nextwordPage = { get model() { return model; }, load };
