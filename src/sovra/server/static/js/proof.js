// C2SP tlog-proof (https://c2sp.org/tlog-proof), checked here and nowhere else: the entry the
// proof carries (its "extra" line, as `sovra log export-proof` writes it), its RFC 9162
// inclusion proof up to the checkpoint's root, the checkpoint's signature by the log key the
// page shows, and the witnesses' cosignatures against the quorum the page is told. Every step
// is checked and reported on its own, so a proof that fails says where.

import { checkCosignatures, fromBase64, parseCheckpointBody, parseNote, toHex, verifyCheckpoint } from "./note.js";
import { leafHash, verifyInclusion } from "./merkle.js";
import { describeQuorum, quorumMet, witnessName } from "./policy.js";

export const PROOF_HEADER = "c2sp.org/tlog-proof@v1";
export const MAX_PROOF_BYTES = (1 << 20) + 128 * 1024;
const MAX_HASHES = 63;

function base64(text, what) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) throw new Error(`${what} is not base64`);
  return fromBase64(text);
}

/** {index (BigInt), extra (bytes or null), proof: [32-byte hashes], checkpoint (note text)};
 *  throws naming what is malformed, as `sovra log verify-proof` does. */
export function parseProof(text) {
  const cut = text.indexOf("\n\n");
  if (cut < 0 || cut + 2 >= text.length) throw new Error("a tlog-proof needs an empty line and a checkpoint after its proof");
  const head = text.slice(0, cut).split("\n");
  if (head[0] !== PROOF_HEADER) throw new Error(`a tlog-proof starts with the line ${PROOF_HEADER}`);
  let at = 1;
  let extra = null;
  if (at < head.length && head[at].startsWith("extra ")) {
    extra = base64(head[at].slice("extra ".length), "the extra line");
    at += 1;
  }
  const m = /^index (0|[1-9][0-9]{0,19})$/.exec(head[at] ?? "");
  if (!m) throw new Error(at < head.length ? `${JSON.stringify(head[at].slice(0, 40))} is not an index line ('index <decimal>')` : "a tlog-proof has no index line");
  const lines = head.slice(at + 1);
  if (lines.length > MAX_HASHES) throw new Error(`an inclusion proof has at most ${MAX_HASHES} hashes`);
  const proof = lines.map((line, n) => {
    const hash = line.length === 44 ? base64(line, `inclusion proof line ${n + 1}`) : null;
    if (!hash || hash.length !== 32) throw new Error(`inclusion proof line ${n + 1} is not the base64 of 32 bytes`);
    return hash;
  });
  return { index: BigInt(m[1]), extra, proof, checkpoint: text.slice(cut + 2) };
}

/**
 * Check a tlog-proof. trust: {logKey (parsed vkey), witnessKeys (parsed vkeys), policy
 * (policy.js)}. Returns {verified, steps: [{step, ok, detail}], index, entry, fields,
 * checkpoint, cosigned}; never throws for a bad proof: each failure is a step's detail.
 */
export async function checkProof(text, trust) {
  const steps = [];
  const step = (name, ok, detail) => { steps.push({ step: name, ok, detail }); return ok; };
  const out = { verified: false, steps, index: null, entry: null, fields: null, checkpoint: null, cosigned: [] };
  let proof;
  try {
    proof = parseProof(text.replace(/\r\n/g, "\n"));
  } catch (e) {
    step("read", false, `this is not a C2SP tlog-proof: ${e.message}.`);
    return out;
  }
  out.index = proof.index;
  let cp;
  try {
    cp = { ...parseCheckpointBody(parseNote(proof.checkpoint).body), note: proof.checkpoint };
  } catch (e) {
    step("read", false, `the proof's checkpoint is malformed: ${e.message}.`);
    return out;
  }
  out.checkpoint = cp;
  step("read", true, `a proof of entry ${proof.index} of the log ${cp.origin}, with ${proof.proof.length} inclusion proof hashes and a checkpoint of ${cp.size} entries.`);

  // 1. The entry: what the proof is about, and the leaf hash the inclusion proof starts from.
  let leaf = null;
  if (proof.extra === null) {
    step("entry", false, "the proof carries no entry (no extra line): there is nothing to prove.");
  } else {
    out.entry = proof.extra;
    leaf = await leafHash(proof.extra);
    try { out.fields = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(proof.extra)); } catch { out.fields = null; }
    const what = out.fields?.kind ? `a ${out.fields.kind} entry` : "an entry that is not a sovra log entry (not JSON)";
    step("entry", true, `${what} of ${proof.extra.length} bytes; its leaf hash is ${toHex(leaf)}.`);
  }

  // 2. The checkpoint's signature, by the log key this page shows (pinned or served).
  let signed = null;
  try {
    signed = await verifyCheckpoint(proof.checkpoint, trust.logKey);
    step("signature", true, `the checkpoint is signed by the log key ${trust.logKey.name}+${trust.logKey.id} this page shows.`);
  } catch (e) {
    step("signature", false, `the checkpoint is not signed by the log key ${trust.logKey.name}+${trust.logKey.id} this page shows: ${e.message}.`);
  }

  // 3. Cosignatures: each line by a witness the page knows must verify; the policy's
  //    witnesses that did must meet its quorum.
  const others = parseNote(proof.checkpoint).signatures.filter((s) => !(s.name === trust.logKey.name && s.id === trust.logKey.id));
  const rows = await checkCosignatures({ body: signed?.body ?? parseNote(proof.checkpoint).body, others }, trust.witnessKeys);
  out.rows = rows;
  const failed = rows.filter((r) => r.status === "failed");
  out.cosigned = [...new Set(rows.filter((r) => r.status === "verified").map((r) => witnessName(trust.policy, r.key)).filter(Boolean))];
  const quorum = describeQuorum(trust.policy);
  if (failed.length) {
    step("witnesses", false, `the cosignature by ${failed.map((r) => r.name).join(", ")} does not verify over this checkpoint.`);
  } else if (!quorumMet(trust.policy, out.cosigned)) {
    step("witnesses", false, `the checkpoint is below the witness quorum ${quorum}: cosigned by ${out.cosigned.join(", ") || "none"}.`);
  } else {
    step("witnesses", true, trust.policy.quorum === "none"
      ? "this log names no witness quorum; no cosignature is required."
      : `cosigned by ${out.cosigned.join(", ")}, which meets the witness quorum ${quorum}.`);
  }

  // 4. Inclusion: the entry's leaf hash, up the proof, to the checkpoint's root.
  if (leaf !== null) {
    try {
      if (proof.index >= BigInt(cp.size)) throw new Error(`entry ${proof.index} is not in the checkpoint, which covers ${cp.size} entries`);
      await verifyInclusion(proof.index, cp.size, leaf, proof.proof, cp.root);
      step("inclusion", true, `the entry's leaf hash leads, through ${proof.proof.length} proof hashes, to the checkpoint's root ${cp.rootBase64} (RFC 9162).`);
    } catch (e) {
      step("inclusion", false, `the inclusion proof of entry ${proof.index} does not reach the root of the checkpoint at size ${cp.size}: ${e.message}.`);
    }
  }
  out.proof = proof;
  out.verified = steps.every((s) => s.ok);
  return out;
}
