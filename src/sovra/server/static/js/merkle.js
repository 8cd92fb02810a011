// RFC 9162 section 2.1: leaf and node hashes, inclusion and consistency proof verification.
// Sizes and indices are BigInt inside, so trees past 2^31 entries need no care from callers.

const enc = new TextEncoder();

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** SHA-256(0x00 || entry); entry is a string (UTF-8) or bytes. */
export function leafHash(entry) {
  const bytes = typeof entry === "string" ? enc.encode(entry) : entry;
  return sha256(concat(Uint8Array.of(0), bytes));
}

export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function check(hashes, what) {
  for (const x of hashes) {
    if (!(x instanceof Uint8Array) || x.length !== 32) throw new Error(`${what} is not a SHA-256 hash`);
  }
}

/** Throws unless proof (list of 32-byte hashes, leaf upwards) puts leaf at index in root. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  check([leaf], "the leaf hash");
  check([root], "the root");
  check(proof, "a proof hash");
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (BigInt(index) >= BigInt(size)) throw new Error(`index ${index} is beyond the tree of ${size}`);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error("the inclusion proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the inclusion proof is too short");
  if (!equalBytes(r, root)) throw new Error("the inclusion proof does not lead to the signed root");
}

/** Throws unless proof shows the tree (size1, root1) is a prefix of (size2, root2). */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  const s1 = BigInt(size1), s2 = BigInt(size2);
  check([root1, root2], "a root");
  check(proof, "a proof hash");
  if (s1 < 1n || s2 < s1) throw new Error(`no consistency from size ${size1} to ${size2}`);
  if (s1 === s2) {
    if (proof.length !== 0) throw new Error("trees of one size need an empty proof");
    if (!equalBytes(root1, root2)) throw new Error("two different roots for one size: a fork");
    return;
  }
  let path = proof.slice();
  if ((s1 & (s1 - 1n)) === 0n) path = [root1, ...path];
  if (path.length === 0) throw new Error("the consistency proof is empty");
  let fn = s1 - 1n, sn = s2 - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new Error("the consistency proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the consistency proof is too short");
  if (!equalBytes(fr, root1)) throw new Error("the proof does not rebuild the older root");
  if (!equalBytes(sr, root2)) throw new Error("the proof does not rebuild the newer root");
}
