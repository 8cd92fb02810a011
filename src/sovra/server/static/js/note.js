// C2SP signed-note, tlog-checkpoint and tlog-cosignature, verified with WebCrypto Ed25519.

import { concat, equalBytes, sha256 } from "./merkle.js";

const enc = new TextEncoder();
const DASH = "\u2014 ";
const ED25519 = 0x01;
const COSIGNATURE_V1 = 0x04;

export function fromBase64(text) {
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A vkey "name+hexid+base64(type || key)", its key ID checked against its key. */
export async function parseVkey(vkey) {
  const text = vkey.trim();
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(text);
  if (!m) throw new Error("a verifier key reads name+keyid+key");
  const [, name, id, key] = m;
  let raw;
  try { raw = fromBase64(key); } catch { throw new Error("the key is not base64"); }
  if (raw.length !== 33 || (raw[0] !== ED25519 && raw[0] !== COSIGNATURE_V1)) {
    throw new Error("only Ed25519 and cosignature/v1 keys are supported");
  }
  const digest = await sha256(concat(enc.encode(name + "\n"), raw));
  if (toHex(digest.slice(0, 4)) !== id) throw new Error("the key ID does not match the key");
  const fingerprint = toHex(await sha256(raw.slice(1)));
  return { text, name, id, type: raw[0], publicKey: raw.slice(1), fingerprint };
}

/** Split a signed note into its text (ending in a newline) and its signature lines. */
export function parseNote(note) {
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0) throw new Error("a signed note needs a blank line before its signatures");
  const body = note.slice(0, cut + 1);
  const lines = note.slice(cut + 2).split("\n").filter((l) => l !== "");
  if (lines.length === 0) throw new Error("the note carries no signature");
  const signatures = lines.map((line) => {
    if (!line.startsWith(DASH)) throw new Error(`not a signature line: ${line.slice(0, 40)}`);
    const rest = line.slice(DASH.length);
    const space = rest.lastIndexOf(" ");
    if (space <= 0) throw new Error("a signature line reads: dash, name, signature");
    let raw;
    try { raw = fromBase64(rest.slice(space + 1)); } catch { throw new Error("a signature is not base64"); }
    if (raw.length < 5) throw new Error("a signature is too short");
    return { name: rest.slice(0, space), id: toHex(raw.slice(0, 4)), raw: raw.slice(4), line };
  });
  return { body, signatures };
}

/** origin, size and root of a checkpoint body. */
export function parseCheckpointBody(body) {
  const lines = body.split("\n");
  if (lines.length < 4) throw new Error("a checkpoint has origin, size and root lines");
  const [origin, size, root] = lines;
  if (!/^(0|[1-9][0-9]{0,18})$/.test(size)) throw new Error(`bad checkpoint size ${size}`);
  let hash;
  try { hash = fromBase64(root); } catch { throw new Error("the root is not base64"); }
  if (hash.length !== 32) throw new Error("the root is not a SHA-256 hash");
  return { origin, size: Number(size), root: hash, rootBase64: root };
}

async function ed25519(publicKey, signature, message) {
  if (signature.length !== 64) return false;
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

/**
 * Verify a signed note against a vkey (parsed): every line by that key must verify and
 * there must be one. Returns the text and the other signature lines; throws otherwise.
 */
export async function verifyNote(note, vkey) {
  const { body, signatures } = parseNote(note);
  const mine = signatures.filter((s) => s.name === vkey.name && s.id === vkey.id);
  if (mine.length === 0) throw new Error("no signature by the log's key");
  for (const s of mine) {
    if (!(await ed25519(vkey.publicKey, s.raw, enc.encode(body)))) {
      throw new Error("the log's signature does not verify");
    }
  }
  return { body, others: signatures.filter((s) => !mine.includes(s)) };
}

/**
 * Verify a checkpoint note against the log's vkey (parsed). Returns its parts and its
 * other signature lines; throws with the reason when it does not verify.
 */
export async function verifyCheckpoint(note, vkey) {
  const checkpoint = parseCheckpointBody(parseNote(note).body);
  if (checkpoint.origin !== vkey.name) {
    throw new Error(`the checkpoint's origin ${checkpoint.origin} is not the key's ${vkey.name}`);
  }
  const { body, others } = await verifyNote(note, vkey);
  return { ...checkpoint, body, note, others };
}

/**
 * Check each non-log signature line against the witness vkeys (parsed); returns one row per
 * line: {name, key (the vkey that checked it), status: "verified" | "failed" | "unknown", time,
 * reason}.
 */
export async function checkCosignatures(checkpoint, witnesses) {
  const rows = [];
  for (const s of checkpoint.others) {
    const w = witnesses.find((k) => k.name === s.name && k.id === s.id);
    if (!w) { rows.push({ name: s.name, status: "unknown", reason: "no known witness key" }); continue; }
    if (s.raw.length !== 72) { rows.push({ name: s.name, key: w.text, status: "failed", reason: "malformed cosignature" }); continue; }
    const view = new DataView(s.raw.buffer, s.raw.byteOffset, 8);
    const time = view.getBigUint64(0);
    const message = enc.encode(`cosignature/v1\ntime ${time}\n${checkpoint.body}`);
    const ok = await ed25519(w.publicKey, s.raw.slice(8), message);
    rows.push({ name: s.name, key: w.text, status: ok ? "verified" : "failed", time: Number(time),
      reason: ok ? "" : "the cosignature does not verify" });
  }
  return rows;
}

export { equalBytes };
