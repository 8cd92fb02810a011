// The log view's proof checker: a C2SP tlog-proof file, dropped, picked or pasted, checked
// in this browser (proof.js) against the log key and witness quorum the log view shows; each
// step's outcome in words, what the proof shows, and, for a proof of this very log whose
// inclusion fails, where it differs from the log.

import { getJSON, h, status, time } from "./dom.js";
import { fromBase64 } from "./note.js";
import { MAX_PROOF_BYTES, checkProof } from "./proof.js";

export function proofSection(trusted, witnesses) {
  const sec = h("section", { "aria-labelledby": "proof-h", id: "proof-check", class: "drop" },
    h("h3", { id: "proof-h" }, "Check a proof"));
  sec.append(h("p", { class: "muted" },
    "A receipt, decision or key release exported with ", h("code", {}, "sovra log export-proof INDEX"),
    " (a C2SP tlog-proof) is checked here, in this browser, and sent nowhere: the entry's hash, its inclusion proof up to the checkpoint's root, the checkpoint's signature by the log key above, and the witnesses' cosignatures against the quorum this log states. Drop the file on this box, pick it, or paste it."));
  const result = h("div", { id: "proof-result", "aria-live": "polite", "data-ready": "idle" });
  const run = async (text) => {
    result.dataset.ready = "no";
    result.replaceChildren();
    try {
      result.append(...(await proofReport(text, trusted, witnesses)));
    } catch (e) {
      result.append(status("proof-status", "fail", "Failed", `the proof could not be checked: ${e.message}.`));
    }
    result.dataset.ready = "yes";
  };
  const fromFile = async (file) => {
    if (!file) return;
    if (file.size > MAX_PROOF_BYTES) {
      result.replaceChildren(status("proof-status", "fail", "Failed", `${file.name} is ${file.size} bytes, over the ${MAX_PROOF_BYTES} of a tlog-proof.`));
      result.dataset.ready = "yes";
      return;
    }
    await run(await file.text());
  };
  const picker = h("input", { type: "file", id: "proof-file", accept: ".tlog-proof,text/plain",
    onchange: (ev) => fromFile(ev.target.files[0]) });
  const pasted = h("textarea", { id: "proof-text", rows: "6", spellcheck: "false", autocomplete: "off",
    placeholder: "c2sp.org/tlog-proof@v1\nextra ...\nindex ..." });
  sec.append(
    h("div", { class: "fields" }, h("label", { for: "proof-file" }, "A proof file", h("span", { class: "hint" }, "a .tlog-proof, picked here or dropped on this box")), picker),
    h("form", { onsubmit: (ev) => { ev.preventDefault(); run(pasted.value); } },
      h("label", { for: "proof-text" }, "Or paste a proof"), pasted,
      h("button", { type: "submit", id: "proof-submit" }, "Check this proof")),
    result);
  sec.addEventListener("dragover", (ev) => { ev.preventDefault(); sec.dataset.over = "yes"; });
  sec.addEventListener("dragleave", () => { delete sec.dataset.over; });
  sec.addEventListener("drop", (ev) => {
    ev.preventDefault();
    delete sec.dataset.over;
    const file = ev.dataTransfer?.files?.[0];
    if (file) fromFile(file);
    else run(ev.dataTransfer?.getData("text/plain") || "");
  });
  return sec;
}

const STEP_NAMES = {
  read: "The proof",
  entry: "The entry",
  signature: "The log's signature",
  witnesses: "Witness cosignatures",
  inclusion: "Inclusion in the checkpoint",
};

async function proofReport(text, trusted, witnesses) {
  const checked = await checkProof(text, { logKey: trusted.key, witnessKeys: witnesses.keys, policy: witnesses.policy });
  const out = [checked.verified
    ? status("proof-status", "ok", "Verified", `entry ${checked.index} is in the log ${checked.checkpoint.origin}, in a checkpoint of ${checked.checkpoint.size} entries signed by its key${checked.cosigned.length ? ` and cosigned by ${checked.cosigned.join(", ")}` : ""}.`)
    : status("proof-status", "fail", "Failed", `not proven: ${checked.steps.filter((s) => !s.ok).map((s) => STEP_NAMES[s.step].toLowerCase()).join(", ")} did not verify (each check below).`)];
  out.push(h("ol", { id: "proof-steps" }, checked.steps.map((s) => h("li", { "data-step": s.step, "data-ok": s.ok ? "yes" : "no" },
    h("span", { class: "badge", "data-status": s.ok ? "ok" : "fail" }, s.ok ? "verified" : "failed"), " ",
    h("strong", {}, STEP_NAMES[s.step]), ": ", s.detail))));
  if (checked.fields || checked.index !== null) out.push(proven(checked));
  if (checked.steps.some((s) => s.step === "inclusion" && !s.ok)) {
    const hint = await diagnose(checked);
    if (hint) out.push(h("p", { id: "proof-diagnosis" }, hint));
  }
  return out;
}

/** What the proof is about, in words: proven when it verified, claimed otherwise. */
function proven(checked) {
  const f = checked.fields || {};
  const rows = [["log", checked.checkpoint?.origin], ["entry", String(checked.index)], ["kind", f.kind],
    ["time", f.time_ms ? time(f.time_ms) : null], ["by", f.principal]];
  if (f.kind === "decision") {
    rows.push(["decision", f.effect], ["action", f.action], ["purpose", f.purpose], ["justification", f.justification],
      ["rules", (f.policies || []).join(", ")], ["reason", f.reason], ["records", f.records ? String(f.records.length) : null],
      ["decision id", f.decision_id]);
  } else if (f.kind === "key_release") {
    rows.push(["released under the decision at", f.decision_index !== undefined ? String(f.decision_index) : null],
      ["decision id", f.decision_id], ["records", f.records ? String(f.records.length) : null]);
  } else if (f.kind === "ingest") {
    rows.push(["record", f.record], ["jurisdiction", f.jurisdiction], ["region", f.region],
      ["kinds found", f.kinds ? Object.keys(f.kinds).join(", ") : null]);
  } else if (f.kind) {
    for (const [k, v] of Object.entries(f)) {
      if (!["kind", "time_ms", "principal", "v"].includes(k) && (typeof v === "string" || typeof v === "number")) rows.push([k.replace(/_/g, " "), String(v)]);
    }
  }
  return h("section", { id: "proof-what", "aria-labelledby": "proof-what-h" },
    h("h4", { id: "proof-what-h" }, checked.verified ? "What this proof shows" : "What the proof claims (not verified)"),
    h("dl", { class: "facts" }, rows.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v)])),
    checked.entry ? h("details", {}, h("summary", {}, "The entry as carried"), h("pre", { class: "mono" }, new TextDecoder().decode(checked.entry))) : null);
}

/**
 * Where an inclusion proof went wrong, by comparing it with the log this page is served from
 * (only for a proof of this log): whether the entry differs from the one logged at its index,
 * or which proof hash differs. Only a hint: the verdict above stands without it.
 */
async function diagnose(checked) {
  const { proof, checkpoint, index } = checked;
  if (!proof || !checkpoint || !checked.entry) return null;
  try {
    const info = await getJSON("/v1/info");
    if (info.origin !== checkpoint.origin || BigInt(info.log_size) < BigInt(checkpoint.size) || index >= BigInt(checkpoint.size)) return null;
    const logged = await getJSON(`/v1/log/entries?start=${index}&end=${index + 1n}`);
    const entry = new TextEncoder().encode(logged.entries[0]);
    const at = firstDifference(entry, checked.entry);
    if (at >= 0) {
      return `Compared with this log: the entry the proof carries is not the one logged at index ${index}; they differ from byte ${at} on.`;
    }
    const served = (await getJSON(`/v1/log/proof/inclusion?index=${index}&size=${checkpoint.size}`)).proof.map(fromBase64);
    if (served.length !== proof.proof.length) {
      return `Compared with this log: the entry is the one logged at index ${index}, but the log's inclusion proof has ${served.length} hashes and this one ${proof.proof.length}.`;
    }
    const bad = served.findIndex((x, i) => firstDifference(x, proof.proof[i]) >= 0);
    if (bad >= 0) return `Compared with this log: the entry is the one logged at index ${index}; inclusion proof hash ${bad + 1} of ${served.length} differs from the log's.`;
    return `Compared with this log: the entry and the proof hashes are the log's; the checkpoint's root is not.`;
  } catch {
    return null;
  }
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
