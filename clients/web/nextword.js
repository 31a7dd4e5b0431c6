// nextword in the browser: next-word suggestions from a nextword .onnx file, on ONNX Runtime Web.
//
//   import { NextWord } from "./nextword.js";
//   const nw = await NextWord.load("models/default/model.onnx");   // a URL, or the file's bytes
//   await nw.suggest("hello how is");        // [{word: "your", prob: 0.58}, ...]
//   await nw.suggest("hello ho");            // completes the unfinished word: how, ...
//   const session = nw.session();            // a keyboard: one model step per typed word
//   await session.feed("hello how"); await session.suggest(3, "i"); await session.backspace(); session.reset();
//
// The same rules as the Python runtime (runtime/predictor.py, runtime/session.py), so the same words come out:
// the tokenizer of docs/model-format.md, the `sequence` form from the state after `<eos>`, and a ranking that
// never suggests padding or special tokens. "onnxruntime-web" is a bare import: an import map (index.html) or
// a bundler resolves it.

import * as ort from "onnxruntime-web";
import { NextWordError, readModelFile, verifySignature } from "./modelfile.js";
import { Tokenizer, pySplit } from "./tokenizer.js";

export { NextWordError, Tokenizer, readModelFile, verifySignature };

/** Ids a session keeps beyond the window (a backspace past the window's start restores older words). */
export const HISTORY = 1024;

/** Contexts `suggest()` remembers (runtime/predictor.py): the state after the last 64, the distribution after
 * the last 4. A text one word longer than a recent one costs that word's step; the same text again, none. */
export const REMEMBERED_STATES = 64;
export const REMEMBERED_DISTRIBUTIONS = 4;

/** Put key last in a Map used as a least-recently-used cache of `size` entries. */
function remember(cache, key, value, size) {
  cache.delete(key);
  cache.set(key, value);
  while (cache.size > size) cache.delete(cache.keys().next().value);
}

// ------------------------------------------------------------------------------- words
/** Python's order of strings (by code point; JavaScript's < compares UTF-16 units). */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (astral code points) sort after U+E000..U+FFFF by code point.
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

/** The words a keyboard may suggest, sorted as the Python runtime sorts them (its ties break the same way). */
class WordIndex {
  constructor(tokenizer) {
    const pairs = [];
    tokenizer.vocab.forEach((word, id) => {
      if (!tokenizer.specialIds.has(id)) pairs.push([word, id]);
    });
    pairs.sort((p, q) => compareCodePoints(p[0], q[0]));
    this.words = pairs.map((p) => p[0]);
    this.ids = Int32Array.from(pairs, (p) => p[1]);
    this.wordSet = new Set(this.words);
    this.hidden = tokenizer.specialIds;
  }

  /** [lo, hi): the sorted positions of the words that start with prefix. */
  span(prefix) {
    const lo = this.lowerBound(prefix);
    let hi = lo;
    while (hi < this.words.length && this.words[hi].startsWith(prefix)) hi++;
    return [lo, hi];
  }

  lowerBound(prefix) {
    let lo = 0;
    let hi = this.words.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareCodePoints(this.words[mid], prefix) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  beginsSomeWord(prefix) {
    const [lo, hi] = this.span(prefix);
    return hi > lo;
  }

  /** Ids of the k most probable words (starting with prefix), best first; ties: the first in Python's order. */
  top(probs, k, prefix = "") {
    const candidates = prefix ? this.ids.subarray(...this.span(prefix)) : null;
    const size = candidates ? candidates.length : probs.length;
    if (!candidates && (!this.hiddenMask || this.hiddenMask.length !== size)) {
      this.hiddenMask = new Uint8Array(size);
      for (const id of this.hidden) if (id < size) this.hiddenMask[id] = 1;
    }
    // One pass, a sorted list of at most k: a later id displaces only a strictly smaller score, so equal
    // scores keep the earlier id first (numpy's argmax, taken k times, in the Python runtime).
    const ids = [];
    const scores = [];
    for (let i = 0; i < size; i++) {
      const id = candidates ? candidates[i] : i;
      if (!candidates && this.hiddenMask[id]) continue;
      const score = probs[id];
      if (ids.length === k && !(score > scores[k - 1])) continue;
      let at = ids.length;
      while (at > 0 && score > scores[at - 1]) at--;
      ids.splice(at, 0, id);
      scores.splice(at, 0, score);
      if (ids.length > k) {
        ids.pop();
        scores.pop();
      }
    }
    return ids;
  }
}

// ------------------------------------------------------------------------------- the engine
function padded(ids, window) {
  const out = new Int32Array(window);
  const tail = ids.slice(-window);
  out.set(tail, window - tail.length);
  return out;
}

/** The file's one graph, the `sequence` form: the window form (a padded window from zeros) and the step form too. */
class Engine {
  constructor(session, config) {
    this.session = session;
    this.layers = config.model.num_layers;
    this.hidden = config.model.hidden_size;
    this.window = config.model.window;
    this.queue = Promise.resolve(); // one run at a time: an InferenceSession is not re-entrant
  }

  zeros() {
    return new Float32Array(this.layers * this.hidden);
  }

  /** {probs, h, c} after tokens (an array of ids), from the state h, c (Float32Array [layers * hidden]). */
  sequence(tokens, h, c) {
    const run = async () => {
      const steps = Math.max(1, tokens.length);
      const feeds = {
        tokens: new ort.Tensor("int32", tokens.length ? Int32Array.from(tokens) : new Int32Array(1), [1, steps]),
        h: new ort.Tensor("float32", h, [this.layers, 1, this.hidden]),
        c: new ort.Tensor("float32", c, [this.layers, 1, this.hidden]),
      };
      let out;
      try {
        out = await this.session.run(feeds);
      } catch (err) {
        throw new NextWordError(`the model failed to run (${String(err.message ?? err).slice(0, 200)})`);
      }
      return { probs: out.probs.data, h: out.h_out.data, c: out.c_out.data };
    };
    const result = this.queue.then(run);
    this.queue = result.catch(() => {});
    return result;
  }

  /** probs of the window form: the last `window` ids, pre-padded, from the zero state. */
  async windowProbs(ids) {
    return (await this.sequence(padded(ids, this.window), this.zeros(), this.zeros())).probs;
  }
}

async function fetchBytes(source) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (typeof Blob !== "undefined" && source instanceof Blob) return new Uint8Array(await source.arrayBuffer());
  let response;
  try {
    response = await fetch(source);
  } catch (err) {
    throw new NextWordError(`cannot fetch the model at ${source} (${err.message})`);
  }
  if (!response.ok) throw new NextWordError(`cannot fetch the model at ${source}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// ------------------------------------------------------------------------------- the predictor
export class NextWord {
  constructor(model, engine) {
    this.config = model.config;
    this.tokenizer = model.tokenizer;
    this.checksum = model.checksum;
    this.bytes = model.bytes.length;
    this.engine = engine;
    this.words = new WordIndex(this.tokenizer);
    this.window = model.config.model.window;
    this.masked = model.config.model.masked !== false;
    this.start = null; // [ids every context starts with, h, c after them]
    /** false: every call reads its whole context (what the benchmark's "fresh" row measures). */
    this.rememberContexts = true;
    this.states = new Map(); // ids joined by "," -> {h, c} after them
    this.distributions = new Map(); // ids joined by "," -> probs after them
  }

  /**
   * Load a nextword .onnx file: metadata read and checksum verified before ONNX Runtime sees it, then one probe.
   * @param source a URL, or the file's bytes (Uint8Array, ArrayBuffer, Blob/File)
   * @param options {ort: InferenceSession options, trust: an Ed25519 public key (PEM text or bytes, `nextword
   *   keygen`'s NAME.pub): only a file signed with it loads (`nextword export --sign`)}
   */
  static async load(source, options = {}) {
    const model = await readModelFile(await fetchBytes(source));
    const trusted = options.trust !== undefined && options.trust !== null;
    if (trusted) await verifySignature(model, options.trust);
    let session;
    try {
      // disable_quant_qdq: ONNX Runtime folds the int8 file's DequantizeLinear nodes into float constants once,
      // at load, instead of dequantizing every matrix on every run (the same numbers; see runtime/engines.py).
      session = await ort.InferenceSession.create(model.bytes, {
        executionProviders: ["wasm"], extra: { session: { disable_quant_qdq: "1" } }, ...(options.ort ?? {}),
      });
    } catch (err) {
      throw new NextWordError(`ONNX Runtime cannot load the model (${String(err.message ?? err).slice(0, 200)}); `
        + "export it again");
    }
    for (const name of ["tokens", "h", "c"]) {
      if (!session.inputNames.includes(name)) {
        throw new NextWordError(`the ONNX graph has no input "${name}" (it has ${session.inputNames.join(", ")}); `
          + "the metadata does not belong to this graph, export it again");
      }
    }
    const nw = new NextWord(model, new Engine(session, model.config));
    nw.trusted = trusted;
    await nw.probe();
    return nw;
  }

  async probe() {
    const probs = await this.engine.windowProbs([]);
    let total = 0;
    let finite = true;
    for (const p of probs) {
      total += p;
      if (!(p >= 0 && p <= 1)) finite = false;
    }
    if (probs.length !== this.config.model.vocab_size || !finite || Math.abs(total - 1) > 0.02) {
      throw new NextWordError(`the model's output is not a distribution over its ${this.config.model.vocab_size} `
        + "words; the file does not match its config, export it again");
    }
  }

  // ----------------------------------------------------------------------- text
  /** [context, partial word]: text ending in whitespace or punctuation has no partial word. */
  splitPartial(text) {
    if (!text || this.tokenizer.endsWord(text)) return [text, ""];
    const pieces = pySplit(text);
    const last = pieces[pieces.length - 1];
    const tokens = this.tokenizer.split(last);
    if (!tokens.length) return [text, ""];
    // "don't" splits into "don" + "t": the partial word is the last piece, the rest is context.
    const head = text.slice(0, text.length - last.length);
    return [`${head} ${tokens.slice(0, -1).join(" ")}`, tokens[tokens.length - 1]];
  }

  /** [context, prefix]: complete the last word only if it is unfinished (no word itself, but begins some). */
  completionTarget(text) {
    const [context, partial] = this.splitPartial(text);
    if (partial && this.tokenizer.idOf(partial) === undefined && this.words.beginsSomeWord(partial)
        && !this.words.wordSet.has(partial)) {
      return [context, partial];
    }
    return [text, ""];
  }

  normalisePrefix(prefix) {
    const tokens = this.tokenizer.split(prefix);
    return tokens.length ? tokens[tokens.length - 1] : "";
  }

  /** The last `window` ids of text's context (after `<eos>` when the model has one). */
  contextIds(text) {
    return this.tokenizer.contextIds(text).slice(-this.window);
  }

  rank(probs, k, prefix = "") {
    if (!Number.isInteger(k) || k < 1) throw new NextWordError(`k must be a whole number of at least 1, got ${k}`);
    const suggestions = this.words.top(probs, k, prefix).map((id) => ({ word: this.tokenizer.vocab[id], prob: probs[id] }));
    if (suggestions.some(({ prob }) => !(prob >= 0 && prob <= 1))) { // NaN fails both
      throw new NextWordError("the model returned a value that is not a probability; the model file is damaged: "
        + "export it again");
    }
    return suggestions;
  }

  // ----------------------------------------------------------------------- suggesting
  /** The k most likely next words, or completions of an unfinished last word, best first. */
  async suggest(text, k = 3) {
    const [context, prefix] = this.completionTarget(String(text ?? ""));
    return this.rank(await this.forward(this.contextIds(context)), k, prefix);
  }

  /** The model's distribution (a Float32Array of vocab_size, yours to change) for the word after text. */
  async probabilities(text) {
    return (await this.forward(this.contextIds(text))).slice();
  }

  // The distribution after ids (read-only: it may be remembered), from what recent calls computed. The same
  // arithmetic either way: the sequence form's steps are the step form's, and a carried state is the state
  // it would recompute (a test compares the bits).
  async forward(ids) {
    if (!this.masked) return this.engine.windowProbs(ids); // a model that reads its padding sees the full window
    const key = ids.join(",");
    if (this.rememberContexts) {
      const probs = this.distributions.get(key);
      if (probs !== undefined) {
        remember(this.distributions, key, probs, REMEMBERED_DISTRIBUTIONS);
        return probs;
      }
      const before = ids.length > 1 ? this.states.get(ids.slice(0, -1).join(",")) : undefined;
      if (before !== undefined) return this.kept(key, await this.engine.sequence(ids.slice(-1), before.h, before.c));
    }
    const [startIds, h, c] = await this.startState();
    const fromStart = startIds.length && startIds.every((id, i) => ids[i] === id);
    const tail = fromStart ? ids.slice(startIds.length) : ids;
    const zero = this.engine.zeros();
    const out = await this.engine.sequence(tail, fromStart ? h : zero, fromStart ? c : zero);
    return this.rememberContexts ? this.kept(key, out) : out.probs;
  }

  kept(key, { probs, h, c }) {
    remember(this.states, key, { h, c }, REMEMBERED_STATES);
    remember(this.distributions, key, probs, REMEMBERED_DISTRIBUTIONS);
    return probs;
  }

  async startState() {
    if (this.start === null) {
      const ids = this.tokenizer.contextIds("");
      let h = this.engine.zeros();
      let c = this.engine.zeros();
      if (ids.length) ({ h, c } = await this.engine.sequence(ids, h, c));
      this.start = [ids, h, c];
    }
    return this.start;
  }

  /** A keyboard session: the recurrent state carried word by word. */
  session() {
    return new Session(this);
  }
}

// ------------------------------------------------------------------------------- the session
/** One message being typed; its suggestions equal `suggest()` for the same text (runtime/session.py). */
export class Session {
  constructor(nw) {
    this.nw = nw;
    this.engine = nw.engine;
    this.window = nw.window;
    this.carriesState = nw.masked;
    this.startProbs = null;
    this.reset();
  }

  /** Forget everything typed: a new message. */
  reset() {
    this.ids = [];
    this.typed = []; // [token as typed, whether the model saw an id for it]
    this.steps = []; // per id in the window: {probs, h, c}, or a promise of it
    const start = this.nw.tokenizer.contextIds("");
    this.hiddenIds = start.length;
    for (const id of start) this.push(id);
  }

  /** The words of this message as typed. */
  get words() {
    return this.typed.map(([token]) => token);
  }

  /** Words typed (one or many); unknown words count as `<unk>`. */
  async feed(text) {
    this.feedTokens(this.nw.tokenizer.split(String(text ?? "")));
    await this.probabilities();
  }

  feedTokens(tokens) {
    const tokenizer = this.nw.tokenizer;
    if (tokens.length > 1 && this.ids.length + tokens.length > this.window) { // a paste past the window: read once
      for (const token of tokens.slice(-(4 * this.window + HISTORY))) {
        const ids = tokenizer.tokenIds([token]);
        this.typed.push([token, ids.length > 0]);
        this.ids.push(...ids);
      }
      this.trim();
      this.rebuild();
      return;
    }
    for (const token of tokens) {
      const ids = tokenizer.tokenIds([token]);
      this.typed.push([token, ids.length > 0]);
      if (ids.length) this.push(ids[0]);
    }
    this.trim();
  }

  /** Remove the last word; resolves to it as typed (null if nothing was typed). */
  async backspace() {
    if (!this.typed.length) return null;
    const [token, hadId] = this.typed.pop();
    if (hadId && this.ids.length > this.hiddenIds) {
      this.ids.pop();
      if (this.ids.length < this.window && this.steps.length === this.ids.length + 1) this.steps.pop();
      else this.rebuild();
    }
    await this.probabilities();
    return token;
  }

  /** The model's distribution after the words typed. */
  async probabilities() {
    if (this.steps.length) {
      const last = this.steps.length - 1;
      if (this.steps[last] === null) { // a window-reading model: computed when read
        this.steps[last] = this.engine.windowProbs(this.ids).then((probs) => ({ probs, h: null, c: null }));
      }
      return (await this.steps[last]).probs;
    }
    if (this.startProbs === null) this.startProbs = this.engine.windowProbs([]);
    return this.startProbs;
  }

  /** The k most likely next words (starting with prefix, a partly typed word, if given). */
  async suggest(k = 3, prefix = "") {
    return this.nw.rank(await this.probabilities(), k, this.nw.normalisePrefix(prefix));
  }

  push(id) {
    this.ids.push(id);
    if (this.ids.length <= this.window && this.steps.length === this.ids.length - 1) {
      this.steps.push(this.advance(this.ids.slice(), this.steps[this.steps.length - 1]));
    } else {
      this.rebuild();
    }
  }

  // The step after ids[-1] from the step before (a promise: steps chain without waiting).
  advance(ids, previous) {
    if (!this.carriesState) return this.engine.windowProbs(ids).then((probs) => ({ probs, h: null, c: null }));
    const zero = this.engine.zeros();
    return Promise.resolve(previous).then((before) => this.engine.sequence(
      [ids[ids.length - 1]], before?.h ?? zero, before?.c ?? zero));
  }

  trim() {
    const keep = this.window + HISTORY;
    if (this.ids.length > keep) {
      this.ids.splice(0, this.ids.length - keep);
      this.hiddenIds = 0;
    }
    if (this.typed.length > keep) this.typed.splice(0, this.typed.length - keep);
  }

  // State over the last `window` ids, as the window form reads them.
  rebuild() {
    if (this.ids.length > this.window) { // past the window: one window call, no state carried
      this.steps = [this.engine.windowProbs(this.ids).then((probs) => ({ probs, h: null, c: null }))];
      return;
    }
    if (!this.carriesState) {
      this.steps = this.ids.map(() => null);
      return;
    }
    this.steps = [];
    const visible = this.ids.slice(-this.window);
    for (let end = 1; end <= visible.length; end++) {
      this.steps.push(this.advance(visible.slice(0, end), this.steps[this.steps.length - 1]));
    }
  }
}
