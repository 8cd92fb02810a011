// The log view: the newest checkpoint verified here, consistency with the last one this
// browser saw, witness cosignatures, and the log's growth and entry kinds over time.

import { getJSON, getText, h, status, time } from "./dom.js";
import { groupHex, logKey, witnessKeys } from "./key.js";
import { fromBase64, parseVkey, checkCosignatures, verifyCheckpoint } from "./note.js";
import { verifyConsistency } from "./merkle.js";
import { describeQuorum, parsePolicy, quorumMet, witnessName } from "./policy.js";
import { proofSection } from "./proofview.js";
import { growth, legend, stacked } from "./plot.js";
import { trust } from "./trust.js";

export async function logView(ctx, main) {
  const origin = ctx.info.origin;
  main.append(h("h2", {}, "The log"));
  const trusted = await logKey(origin);
  main.append(keySection(origin, trusted));

  const note = await getText("/v1/log/checkpoint");
  let checkpoint;
  try {
    checkpoint = await verifyCheckpoint(note, trusted.key);
    main.append(status("sig-status", "ok", "Verified",
      `the checkpoint is signed by ${trusted.source === "pinned" ? "the key you pinned" : "the key the server presents"}.`));
  } catch (e) {
    main.append(status("sig-status", "fail", "Failed", `the checkpoint does not verify: ${e.message}.`));
  }
  main.append(h("details", {}, h("summary", {}, "The checkpoint as served"), h("pre", { class: "mono" }, note)));
  const witnesses = await witnessTrust(ctx);
  const proofs = proofSection(trusted, witnesses);
  if (!checkpoint) { main.append(proofs); return; }

  main.append(h("dl", { class: "facts" },
    h("dt", {}, "origin"), h("dd", {}, h("code", {}, checkpoint.origin)),
    h("dt", {}, "size"), h("dd", { id: "cp-size" }, String(checkpoint.size)),
    h("dt", {}, "root"), h("dd", {}, h("code", {}, checkpoint.rootBase64))));

  const consistent = await consistency(origin, trusted, checkpoint, main);
  if (consistent && !trusted.mismatch) trust.saw(origin, note);
  await cosignatures(checkpoint, witnesses, main);
  main.append(proofs);
  plots(ctx, main);
}

/** The witness keys this page checks cosignatures with (the server's and this browser's)
 *  and the quorum over them (a tlog-policy the server states; none when it states none). */
async function witnessTrust(ctx) {
  const origin = ctx.info.origin;
  const s = ctx.summary || {};
  const keys = await witnessKeys(origin, s.witnesses || []);
  let policy;
  try {
    policy = await parsePolicy(s.witness_policy || "quorum none\n");
  } catch (e) {
    policy = { witnesses: [], groups: new Map(), quorum: "none", error: e.message };
  }
  return { keys, policy };
}

function keySection(origin, trusted) {
  const k = trusted.key;
  const box = h("section", { "aria-labelledby": "key-h" }, h("h3", { id: "key-h" }, "The log's key"));
  box.append(h("dl", { class: "facts" },
    h("dt", {}, "verifier key"), h("dd", {}, h("code", { id: "vkey" }, k.text)),
    h("dt", {}, "fingerprint"), h("dd", {}, h("code", { id: "fingerprint" }, groupHex(k.fingerprint))),
    h("dt", {}, "source"), h("dd", { id: "key-source" }, trusted.source === "pinned" ? "pinned in this browser" : "the server (/v1/log/key)")));
  if (trusted.error) box.append(status("key-status", "fail", "Pinned key", trusted.error));
  if (trusted.mismatch) {
    box.append(status("key-status", "fail", "Key changed",
      `the server now presents ${trusted.served.text} (fingerprint ${groupHex(trusted.served.fingerprint)}), not the key you pinned. Checks below use your pinned key.`));
  } else if (trusted.source === "tofu") {
    box.append(status("key-status", "warn", "Trust on first use",
      "this key came from the same server as the checkpoint. Compare its fingerprint with one published elsewhere (the deployment's documentation, a witness, a colleague) before pinning it."));
  } else {
    box.append(status("key-status", "ok", "Pinned", "the checkpoint is checked against the key this browser pinned, whatever the server presents."));
  }
  const input = h("input", { id: "pin-input", name: "vkey", autocomplete: "off", spellcheck: "false", placeholder: "origin+keyid+key" });
  const msg = h("p", { id: "pin-message", role: "alert" });
  box.append(
    h("div", { class: "row" },
      trusted.source === "pinned"
        ? h("button", { type: "button", class: "secondary", id: "unpin", onclick: () => { trust.unpinKey(origin); location.reload(); } }, "Forget the pinned key")
        : h("button", { type: "button", id: "pin", onclick: () => { trust.pinKey(origin, trusted.served.text); location.reload(); } }, "Pin this key")),
    h("form", { onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const v = await parseVkey(input.value);
        if (v.name !== origin) throw new Error(`that key is for ${v.name}, not ${origin}`);
        trust.pinKey(origin, v.text);
        location.reload();
      } catch (e) { msg.textContent = e.message; }
    } },
    h("label", { for: "pin-input" }, "Pin a key you got elsewhere", h("span", { class: "hint" }, "the log's vkey, as its operator publishes it")),
    input, h("button", { type: "submit", class: "secondary" }, "Pin"), msg));
  return box;
}

async function consistency(origin, trusted, checkpoint, main) {
  const seen = trust.seen(origin);
  if (!seen) {
    main.append(status("consistency-status", "warn", "First visit",
      `this browser has seen no earlier checkpoint of this log; it keeps this one (size ${checkpoint.size}) to check the next against.`));
    return true;
  }
  let old;
  try {
    old = await verifyCheckpoint(seen.note, trusted.key);
  } catch (e) {
    main.append(status("consistency-status", "fail", "Failed", `the checkpoint this browser kept no longer verifies: ${e.message}.`));
    return false;
  }
  const when = seen.at ? ` on ${time(seen.at)}` : "";
  try {
    if (old.size > checkpoint.size) throw new Error(`the log shrank: you saw ${old.size} entries${when}, it now shows ${checkpoint.size} (a rollback)`);
    let proof = [];
    if (old.size < checkpoint.size) {
      const p = await getJSON(`/v1/log/proof/consistency?old=${old.size}&new=${checkpoint.size}`);
      proof = p.proof.map(fromBase64);
    }
    await verifyConsistency(old.size, checkpoint.size, old.root, checkpoint.root, proof);
  } catch (e) {
    main.append(status("consistency-status", "fail", "Failed", `not consistent with the checkpoint you saw${when}: ${e.message}.`));
    return false;
  }
  main.append(status("consistency-status", "ok", "Consistent",
    old.size === checkpoint.size
      ? `the same tree of ${old.size} entries you saw${when}.`
      : `the log of ${checkpoint.size} entries extends the ${old.size} you saw${when}; nothing was removed or changed (RFC 9162 consistency proof).`));
  return true;
}

async function cosignatures(checkpoint, witnesses, main) {
  const { keys, policy } = witnesses;
  const section = h("section", { "aria-labelledby": "wit-h" }, h("h3", { id: "wit-h" }, "Witness cosignatures"));
  const rows = await checkCosignatures(checkpoint, keys);
  if (rows.length === 0) {
    section.append(h("p", { id: "witness-status" }, keys.length
      ? "This checkpoint carries no cosignature yet."
      : "This log names no witnesses, and this checkpoint carries no cosignature."));
  } else {
    section.append(h("ul", { id: "witness-status" }, rows.map((r) => h("li", {},
      h("span", { class: "badge", "data-status": r.status === "verified" ? "ok" : r.status === "failed" ? "fail" : "warn" }, r.status), " ",
      h("code", {}, r.name), r.time ? ` at ${time(r.time * 1000)}` : "", r.reason ? ` (${r.reason})` : ""))));
  }
  if (policy.quorum !== "none") {
    const names = rows.filter((r) => r.status === "verified").map((r) => witnessName(policy, r.key)).filter(Boolean);
    const met = quorumMet(policy, names);
    section.append(status("witness-quorum", met ? "ok" : "warn", met ? "Quorum met" : "Below quorum",
      `the log's witness quorum is ${describeQuorum(policy)}; this checkpoint is cosigned by ${names.join(", ") || "none of them"}.`));
  }
  if (keys.length) {
    section.append(h("p", { class: "muted" }, "Witness keys: ", keys.map((k) => [h("code", {}, k.text), k.mine ? " (added here)" : " (named by the server)", " "])));
  }
  main.append(section);
}

function plots(ctx, main) {
  const s = ctx.summary;
  if (!s || !s.series.size.length) return;
  const sec = h("section", { "aria-labelledby": "growth-h" }, h("h3", { id: "growth-h" }, "Growth and entry kinds over time"));
  sec.append(growth(`The log's size over time, up to ${s.size} entries`, s.series));
  const kinds = Object.keys(s.series.kinds);
  sec.append(stacked("Entries per kind over time", s.series.start_ms, s.series.step_ms, s.series.kinds), legend(kinds));
  sec.append(h("p", { class: "muted" }, kinds.map((k) => `${k}: ${s.facets.kind?.[k] ?? 0}`).join(" · ")));
  main.append(sec);
}
