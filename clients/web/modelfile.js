// Reading a nextword .onnx file without ONNX: its metadata, checksum and config (docs/model-format.md).
//
//   const model = await readModelFile(bytes);   // throws NextWordError with one line on anything else
//   model.config.model.window, model.tokenizer.encode("hello")
//
// onnxruntime-web has no API for a model's metadata_props, so the top-level protobuf fields are scanned here,
// and the checksum is verified before any engine sees the bytes (a flipped weight would load silently).

import { Tokenizer, TokenizerError } from "./tokenizer.js";

export const FORMAT = "nextword.model";
export const FORMAT_VERSION = 2;
const METADATA_PROPS = 14;
const KEYS = { config: "nextword.config", vocab: "nextword.vocab", digest: "nextword.sha256", signature: "nextword.signature" };
const PLACEHOLDER = "0".repeat(64);
const EXPORT_AGAIN = "export the model again with `nextword export`";

export class NextWordError extends Error {
  constructor(message) {
    super(message);
    this.name = "NextWordError";
  }
}

// ----------------------------------------------------------------------------- protobuf
function varint(data, pos) {
  let value = 0;
  let scale = 1;
  for (let shift = 0; shift <= 63; shift += 7) {
    if (pos >= data.length) throw new RangeError("truncated varint");
    const byte = data[pos++];
    value += (byte & 0x7f) * scale; // numbers, not 32-bit ints: lengths past 2 GiB stay exact
    scale *= 128;
    if (!(byte & 0x80)) return [value, pos];
  }
  throw new RangeError("varint longer than 10 bytes");
}

/** Top-level fields of a protobuf message in data[start, end): [number, wire, valueStart, valueEnd]. */
export function* fields(data, start = 0, end = data.length) {
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = varint(data, pos);
    const number = Math.floor(key / 8);
    const wire = key % 8;
    let next;
    if (wire === 0) [, next] = varint(data, pos);
    else if (wire === 1) next = pos + 8;
    else if (wire === 2) {
      let length;
      [length, pos] = varint(data, pos);
      next = pos + length;
    } else if (wire === 5) next = pos + 4;
    else throw new RangeError(`unsupported wire type ${wire}`);
    if (next > end) throw new RangeError("a field runs past the end of the file");
    yield [number, wire, pos, next];
    pos = next;
  }
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * metadata_props: key -> {value, start, end} (the value's byte span), and where the last top-level field
 * begins (a signature entry must be that field), in one walk over the fields.
 */
export function metadataProps(data) {
  const props = new Map();
  let lastStart = 0;
  let previousEnd = 0;
  for (const [number, wire, start, end] of fields(data)) {
    lastStart = previousEnd;
    previousEnd = end;
    if (number !== METADATA_PROPS || wire !== 2) continue;
    let key = null;
    let value = null;
    let span = null;
    for (const [subNumber, subWire, subStart, subEnd] of fields(data, start, end)) {
      if (subNumber === 1 && subWire === 2) key = UTF8.decode(data.subarray(subStart, subEnd));
      else if (subNumber === 2 && subWire === 2) {
        value = UTF8.decode(data.subarray(subStart, subEnd));
        span = [subStart, subEnd];
      }
    }
    if (key !== null && value !== null) props.set(key, { value, start: span[0], end: span[1] });
  }
  return { props, lastStart };
}

// ----------------------------------------------------------------------------- checksum
async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) {
    throw new NextWordError("this page cannot verify the model's checksum: the browser offers no WebCrypto here "
      + "(serve the page over https or from 127.0.0.1, not a file:// address)");
  }
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ----------------------------------------------------------------------------- config
const MODEL_KEYS = {
  vocab_size: "int", window: "int", embedding_dim: "int", hidden_size: "int", num_layers: "int",
  dropout: "number", projection_dim: "int", tie_embeddings: "boolean", masked: "boolean",
};

function checkConfig(config) {
  if (!config || typeof config !== "object" || Array.isArray(config)) {
    throw new NextWordError(`the embedded nextword config is not a JSON object; ${EXPORT_AGAIN}`);
  }
  if (config.format !== FORMAT) throw new NextWordError(`the embedded config is not a ${FORMAT} config`);
  if (config.format_version !== FORMAT_VERSION) {
    const hint = config.format_version === 1 ? EXPORT_AGAIN : "upgrade this client (a newer nextword wrote it)";
    throw new NextWordError(`the model file is format version ${JSON.stringify(config.format_version)}, this client `
      + `reads version ${FORMAT_VERSION}; ${hint}`);
  }
  const model = config.model;
  if (!model || typeof model !== "object") throw new NextWordError(`the config has no model shape; ${EXPORT_AGAIN}`);
  for (const [key, value] of Object.entries(model)) {
    const kind = MODEL_KEYS[key];
    if (!kind) throw new NextWordError(`the config's model holds an unknown key "${key}" (a newer nextword wrote it?)`);
    const ok = kind === "int" ? Number.isInteger(value) : typeof value === kind;
    if (!ok) throw new NextWordError(`the config's model.${key} is ${JSON.stringify(value)}; ${EXPORT_AGAIN}`);
  }
  for (const key of ["vocab_size", "window", "hidden_size", "num_layers"]) {
    if (!Number.isInteger(model[key]) || model[key] < 1) {
      throw new NextWordError(`the config lacks model.${key}; ${EXPORT_AGAIN}`);
    }
  }
  if (model.vocab_size < 2 || model.vocab_size > 10_000_000 || model.window > 4096 || model.num_layers > 64
      || model.hidden_size > 65536) {
    throw new NextWordError(`the config's model shape is out of range; ${EXPORT_AGAIN}`);
  }
  const sequence = config.forms?.sequence;
  if (!sequence || !sequence.inputs?.tokens || !sequence.outputs?.probs) {
    throw new NextWordError(`the file has no sequence form (config forms: ${Object.keys(config.forms ?? {}).join(", ")}); `
      + EXPORT_AGAIN);
  }
  if (config.precision !== undefined && !["float32", "float16", "int8"].includes(config.precision)) {
    throw new NextWordError(`the config names an unknown precision ${JSON.stringify(config.precision)}`);
  }
}

// ----------------------------------------------------------------------------- the file
/**
 * A nextword .onnx file's metadata, checksum verified: {config, tokenizer, checksum, signed, bytes}.
 * @param {Uint8Array} bytes the whole file
 */
export async function readModelFile(bytes) {
  if (!(bytes instanceof Uint8Array)) bytes = new Uint8Array(bytes);
  if (bytes.length >= 8 && String.fromCharCode(...bytes.subarray(4, 8)) === "TFL3") {
    throw new NextWordError("this is a TFLite file; the browser client runs the ONNX file of the same export "
      + "(model.onnx or model.int8.onnx)");
  }
  if (bytes.length === 0) throw new NextWordError("the model file is empty");
  if (bytes[0] !== 0x08) {
    throw new NextWordError("this is not a nextword model file (neither ONNX nor TFLite); choose a .onnx file "
      + "written by `nextword export`");
  }
  let props;
  let lastStart;
  try {
    ({ props, lastStart } = metadataProps(bytes));
    if (!props.has(KEYS.signature)) lastStart = bytes.length; // unsigned: the checksum covers every byte
  } catch (err) {
    const reason = err instanceof TypeError ? "text that is not UTF-8" : err.message;
    throw new NextWordError(`the ONNX file is truncated or damaged (${reason}); re-export or re-copy it`);
  }
  if (!props.has(KEYS.config) || !props.has(KEYS.vocab)) {
    throw new NextWordError("this ONNX model carries no nextword metadata (no vocabulary inside); "
      + "export it with `nextword export`");
  }
  const digest = props.get(KEYS.digest);
  if (!digest) throw new NextWordError(`the file has no ${KEYS.digest} checksum; ${EXPORT_AGAIN}`);
  const signed = props.has(KEYS.signature);
  if (signed && props.get(KEYS.signature).start < lastStart) {
    throw new NextWordError(`its ${KEYS.signature} is not the file's last field: it was edited after it was signed`);
  }
  const covered = bytes.slice(0, lastStart);
  if (digest.end > covered.length || !/^[0-9a-f]{64}$/.test(digest.value)) {
    throw new NextWordError("the file's checksum field is damaged; re-export or re-copy the file");
  }
  covered.set(new TextEncoder().encode(PLACEHOLDER), digest.start);
  const actual = await sha256Hex(covered);
  if (actual !== digest.value) {
    throw new NextWordError(`the model bytes do not match their sha256 (expected ${digest.value.slice(0, 12)}..., `
      + `found ${actual.slice(0, 12)}...); the file is damaged, re-export or re-copy it`);
  }
  let config;
  try {
    config = JSON.parse(props.get(KEYS.config).value);
  } catch (err) {
    throw new NextWordError(`the embedded nextword config is not valid JSON (${err.message})`);
  }
  checkConfig(config);
  const vocabText = props.get(KEYS.vocab).value;
  let tokenizer;
  try {
    tokenizer = new Tokenizer(vocabText, config.tokenizer);
  } catch (err) {
    if (err instanceof TokenizerError) throw new NextWordError(`${err.message}; ${EXPORT_AGAIN}`);
    throw err;
  }
  if (await sha256Hex(new TextEncoder().encode(vocabText)) !== config.tokenizer.vocab_sha256) {
    throw new NextWordError("the vocabulary does not match its sha256; the file was edited, re-export it");
  }
  if (tokenizer.vocabSize !== config.model.vocab_size) {
    throw new NextWordError(`the vocabulary has ${tokenizer.vocabSize} tokens but the model outputs `
      + `${config.model.vocab_size} probabilities; ${EXPORT_AGAIN}`);
  }
  const special = config.special_ids ?? {};
  if ((special.pad ?? 0) !== 0 || (special.unk ?? null) !== tokenizer.unkId || (special.eos ?? null) !== tokenizer.eosId) {
    throw new NextWordError(`the config's special ids disagree with the vocabulary; ${EXPORT_AGAIN}`);
  }
  return { config, tokenizer, checksum: actual, signed, signature: signed ? props.get(KEYS.signature).value : null,
    bytes };
}

// ----------------------------------------------------------------------------- signatures
// As nextword.modelfile.signing: an app that ships its models signed refuses every other one. What is signed is the
// file's checksum, prefixed, with Ed25519; the record names the key by the sha256 of its raw 32 bytes.
const SIGNED_PREFIX = "nextword.model.signature.v1\n";
const MAX_SIGNATURE_BYTES = 4096;
const KEYGEN = "give the .pub file `nextword keygen` wrote";

async function trustedKey(trust) {
  let pem = trust;
  if (typeof trust !== "string") {
    const bytes = trust instanceof Uint8Array ? trust : new Uint8Array(trust);
    pem = new TextDecoder().decode(bytes);
  }
  const match = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/.exec(pem);
  if (!match) throw new NextWordError(`the trusted key is not a PEM public key; ${KEYGEN}`);
  const der = Uint8Array.from(atob(match[1].replace(/\s+/g, "")), (ch) => ch.charCodeAt(0));
  let key;
  try {
    key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, true, ["verify"]);
  } catch (err) {
    throw new NextWordError(`the trusted key is not an Ed25519 public key (${err.name}); ${KEYGEN}`);
  }
  return { key, id: await sha256Hex(new Uint8Array(await crypto.subtle.exportKey("raw", key))) };
}

/**
 * Refuse a model not signed with the trusted key (throws NextWordError, one line).
 * @param model what readModelFile returned
 * @param trust the trusted Ed25519 public key: the PEM text `nextword keygen` writes to NAME.pub, or its bytes
 */
export async function verifySignature(model, trust) {
  const { key, id } = await trustedKey(trust);
  if (model.signature === null) {
    throw new NextWordError("the model is not signed, and a trusted key was given: this app only runs the models "
      + "it shipped (export them with --sign)");
  }
  let record = null;
  try {
    record = model.signature.length <= MAX_SIGNATURE_BYTES ? JSON.parse(model.signature) : null;
  } catch {
    record = null;
  }
  if (!record || record.algorithm !== "ed25519" || typeof record.signature !== "string"
      || typeof record.key_sha256 !== "string") {
    throw new NextWordError("its signature record is not a nextword ed25519 signature; the file was damaged or "
      + "edited, use the file as it was shipped");
  }
  if (record.key_sha256 !== id) {
    throw new NextWordError(`the model was signed by another key (sha256 ${record.key_sha256.slice(0, 12)}...), `
      + "not the trusted one: refused");
  }
  const hex = /^[0-9a-f]{128}$/.test(record.signature) ? record.signature : "";
  const signature = Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
  const signed = new TextEncoder().encode(SIGNED_PREFIX + model.checksum);
  if (!hex || !(await crypto.subtle.verify({ name: "Ed25519" }, key, signature, signed))) {
    throw new NextWordError("its signature does not match its content; the file was edited after it was signed, "
      + "refused");
  }
}
