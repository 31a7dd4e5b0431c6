// Text to ids exactly as nextword's Python tokenizer (runtime/tokenizer.py, docs/model-format.md "Text to ids").
//
//   const tok = new Tokenizer(vocabText, config.tokenizer);
//   tok.encode("Hello, how is my day?")   // [1, 2, 5, 11, 7]
//
// The rules are Python's str.lower() and str.split(), read from tables generated from Python (unicode.js),
// never from the browser's own Unicode version. A string is handled by code points, as Python does.

import { CASED, CASE_IGNORABLE, LOWER_RUNS, LOWER_SPECIAL, WHITESPACE } from "./unicode.js";

export const PAD_TOKEN = "<pad>";
export const PAD_ID = 0;
const SIGMA = 0x3a3;

const LOWER = buildLower();
const SPACE = new Set(WHITESPACE);

function buildLower() {
  const map = new Map();
  for (const [first, last, delta, stride] of LOWER_RUNS) {
    for (let cp = first; cp <= last; cp += stride) map.set(cp, String.fromCodePoint(cp + delta));
  }
  for (const [cp, low] of Object.entries(LOWER_SPECIAL)) map.set(Number(cp), low);
  return map;
}

function inRuns(runs, cp) {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < runs[mid][0]) hi = mid - 1;
    else if (cp > runs[mid][1]) lo = mid + 1;
    else return true;
  }
  return false;
}

/** Code points of a string (a lone surrogate is one code point, as in Python). */
export function codePoints(text) {
  const out = [];
  for (const ch of text) out.push(ch.codePointAt(0));
  return out;
}

/** Python's `ch.isspace()` for one code point. */
export function isSpace(cp) {
  return SPACE.has(cp);
}

/** Python's `str.lower()`, final sigma included. */
export function pyLower(text) {
  const cps = codePoints(text);
  let out = "";
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i];
    if (cp === SIGMA) out += finalSigma(cps, i) ? "\u03c2" : "\u03c3";
    else out += LOWER.get(cp) ?? String.fromCodePoint(cp);
  }
  return out;
}

// Python's rule: a cased letter before (skipping case-ignorables), none after (skipping case-ignorables).
function finalSigma(cps, i) {
  let j = i - 1;
  while (j >= 0 && inRuns(CASE_IGNORABLE, cps[j])) j--;
  if (j < 0 || !inRuns(CASED, cps[j])) return false;
  j = i + 1;
  while (j < cps.length && inRuns(CASE_IGNORABLE, cps[j])) j++;
  return j === cps.length || !inRuns(CASED, cps[j]);
}

/** Python's `str.split()` with no separator: runs of whitespace separate, none at either end. */
export function pySplit(text) {
  const pieces = [];
  let piece = "";
  for (const ch of text) {
    if (SPACE.has(ch.codePointAt(0))) {
      if (piece) pieces.push(piece);
      piece = "";
    } else {
      piece += ch;
    }
  }
  if (piece) pieces.push(piece);
  return pieces;
}

// Python encodes text with lone surrogates as UTF-8 with "replace": each becomes "?".
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export class TokenizerError extends Error {}

const SETTING_TYPES = {
  format: ["string"], format_version: ["int"], lower: ["boolean"], filters: ["string"],
  unk_token: ["string", "null"], eos_token: ["string", "null"], max_vocab: ["int", "null"],
  min_count: ["int"], split: ["string", "null"], unused_from: ["int", "null"], vocab_size: ["int"],
  pad_id: ["int"], unk_id: ["int", "null"], eos_id: ["int", "null"], vocab_sha256: ["string"],
};

function typeOf(value) {
  if (value === null) return "null";
  if (Number.isInteger(value)) return "int";
  return typeof value;
}

export class Tokenizer {
  /**
   * @param {string} vocabText the vocabulary, one token per line ("\n" only)
   * @param {object} settings the config's `tokenizer` object
   */
  constructor(vocabText, settings) {
    if (!settings || typeof settings !== "object" || settings.format !== "nextword.tokenizer"
        || settings.format_version !== 1) {
      throw new TokenizerError("the tokenizer settings are not nextword.tokenizer version 1");
    }
    for (const [key, value] of Object.entries(settings)) {
      const kinds = SETTING_TYPES[key];
      if (!kinds) throw new TokenizerError(`the tokenizer settings hold an unknown key "${key}" (a newer nextword?)`);
      if (!kinds.includes(typeOf(value))) throw new TokenizerError(`tokenizer setting ${key} has the wrong type`);
    }
    this.lower = settings.lower ?? true;
    this.filters = new Set(codePoints(settings.filters ?? ""));
    this.separator = settings.split ?? null;
    this.unkToken = settings.unk_token ?? null;
    this.eosToken = settings.eos_token ?? null;
    const tokens = vocabText.split("\n");
    if (tokens.length && tokens[tokens.length - 1] === "") tokens.pop();
    this.vocab = tokens;
    const specials = [this.unkToken, this.eosToken].filter((t) => t !== null);
    if (tokens.length !== settings.vocab_size) {
      throw new TokenizerError(`the vocabulary has ${tokens.length} tokens but its settings say ${settings.vocab_size}`);
    }
    if (tokens[0] !== PAD_TOKEN || !specials.every((t) => tokens.includes(t))) {
      throw new TokenizerError(`the vocabulary must start with ${PAD_TOKEN} and hold ${specials.join(", ")}`);
    }
    const unusedFrom = settings.unused_from ?? tokens.length;
    if (unusedFrom < 1 || unusedFrom > tokens.length) throw new TokenizerError("unused_from lies outside the vocabulary");
    this.ids = new Map();
    for (let i = 0; i < unusedFrom; i++) {
      if (this.ids.has(tokens[i])) throw new TokenizerError(`the vocabulary lists "${tokens[i]}" twice`);
      this.ids.set(tokens[i], i);
    }
    this.unkId = this.unkToken === null ? null : this.ids.get(this.unkToken);
    this.eosId = this.eosToken === null ? null : this.ids.get(this.eosToken);
    if ((settings.unk_id ?? null) !== this.unkId || (settings.eos_id ?? null) !== this.eosId) {
      throw new TokenizerError("the special ids in the settings disagree with the vocabulary");
    }
    this.specialLiterals = new Set(specials);
    /** Ids never suggested: padding, special tokens, placeholders past unused_from. */
    this.specialIds = new Set([PAD_ID, ...specials.map((t) => this.ids.get(t))]);
    for (let i = unusedFrom; i < tokens.length; i++) this.specialIds.add(i);
  }

  get vocabSize() {
    return this.vocab.length;
  }

  idOf(token) {
    return this.ids.get(token);
  }

  /** Text to tokens (docs/model-format.md "Text to ids"). */
  split(text) {
    if (!text) return [];
    text = text.replace(LONE_SURROGATE, "?");
    if (this.separator !== null) { // Keras' text_to_word_sequence, character for character
      if (this.lower) text = pyLower(text);
      return this.translate(text, this.separator).split(this.separator).filter((piece) => piece);
    }
    const tokens = [];
    for (let piece of pySplit(text)) {
      if (this.specialLiterals.has(piece)) {
        tokens.push(piece);
        continue;
      }
      if (this.lower) piece = pyLower(piece);
      tokens.push(...pySplit(this.translate(piece, " ")));
    }
    return tokens;
  }

  translate(text, replacement) {
    if (!this.filters.size) return text;
    let out = "";
    for (const ch of text) out += this.filters.has(ch.codePointAt(0)) ? replacement : ch;
    return out;
  }

  /** Ids of tokens: unknown words (and a literal "<pad>") are `<unk>`, or dropped without one. */
  tokenIds(tokens) {
    const out = [];
    for (const token of tokens) {
      const id = this.ids.get(token);
      if (id) out.push(id);
      else if (this.unkId !== null) out.push(this.unkId);
    }
    return out;
  }

  encode(text) {
    return this.tokenIds(this.split(text));
  }

  /** A context's ids as the model reads it: after `<eos>` when the model has one. */
  contextIds(text) {
    const ids = this.encode(text);
    return this.eosId === null ? ids : [this.eosId, ...ids];
  }

  /** Whether the last character of text ends a word (whitespace or a filter character). */
  endsWord(text) {
    const cps = codePoints(text);
    const last = cps[cps.length - 1];
    return isSpace(last) || this.filters.has(last);
  }
}
