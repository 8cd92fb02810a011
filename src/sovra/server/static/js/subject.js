// The subject view: a subject signs in with her own key and sees every entry that touched
// her data, in words, in her language, each with its inclusion proof verified here.

import { getJSON, h, status } from "./dom.js";
import { LANGUAGES, pickLanguage, t } from "./i18n.js";
import { logKey } from "./key.js";
import { leafHash, verifyInclusion } from "./merkle.js";
import { fromBase64, verifyCheckpoint } from "./note.js";
import { importSeed, makeToken } from "./token.js";

const REPORT = "/v1/subjects/report";
const ACCESS = "/v1/access";
let lang = pickLanguage(navigator.languages || [navigator.language || "en"]);

export async function subjectView(ctx, main) {
  const root = h("div", {});
  main.append(root);
  draw(ctx, root, {});
}

function draw(ctx, root, kept) {
  document.documentElement.lang = lang;
  const juris = Object.keys(ctx.info.jurisdictions);
  const field = (id, label, input) => h("label", { for: id }, label, input);
  const jurisdiction = h("select", { id: "subject-jurisdiction", name: "jurisdiction" },
    juris.map((j) => h("option", { value: j, selected: j === kept.jurisdiction }, `${j} · ${ctx.info.jurisdictions[j].name}`)));
  const subject = h("input", { id: "subject-id", name: "subject_id", required: true, autocomplete: "off", value: kept.subject || "" });
  const principal = h("input", { id: "subject-principal", name: "principal", required: true, autocomplete: "username", value: kept.principal || "" });
  const keyFile = h("input", { id: "subject-key", name: "key", type: "file", required: !kept.key });
  const language = h("select", { id: "subject-language", name: "language",
    onchange: () => { lang = language.value; draw(ctx, root, read()); } },
  Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, lang: code, selected: code === lang }, name)));
  const out = h("div", { id: "subject-result" });
  const read = () => ({ jurisdiction: jurisdiction.value, subject: subject.value, principal: principal.value, key: kept.key });

  const form = h("form", { onsubmit: async (ev) => {
    ev.preventDefault();
    out.replaceChildren(h("p", {}, "…"));
    root.dataset.done = "no";
    try {
      if (keyFile.files.length) kept.key = await importSeed(new Uint8Array(await keyFile.files[0].arrayBuffer()));
      if (!kept.key) throw new Error(t(lang, "key"));
      const body = JSON.stringify({ jurisdiction: jurisdiction.value, subject_id: subject.value });
      const token = await makeToken(kept.key, principal.value, "POST", REPORT, body);
      const report = await getJSON(REPORT, { method: "POST", body,
        headers: { authorization: `Sovra ${token}`, "content-type": "application/json" } });
      out.replaceChildren(...(await show(ctx, report)), archive(kept.key, principal.value, jurisdiction.value, subject.value));
    } catch (e) {
      out.replaceChildren(status("subject-status", "fail", t(lang, "failed"), e.message));
    }
    root.dataset.done = "yes";
  } },
  field("subject-language", t(lang, "language"), language),
  field("subject-jurisdiction", t(lang, "jurisdiction"), jurisdiction),
  field("subject-id", t(lang, "subject_id"), subject),
  field("subject-principal", t(lang, "principal"), principal),
  field("subject-key", t(lang, "key"), keyFile),
  h("button", { type: "submit", id: "subject-submit" }, t(lang, "submit")));
  root.replaceChildren(h("h2", { lang }, t(lang, "title")), h("p", { lang }, t(lang, "intro")), form, out);
}

/** "Download my records": a read of her own records (a logged allow), saved as one file. */
function archive(key, principal, jurisdiction, subjectId) {
  const note = h("p", { id: "archive-status", role: "status" });
  const button = h("button", { type: "button", class: "secondary", id: "archive", onclick: async () => {
    note.textContent = "…";
    try {
      const body = JSON.stringify({ purpose: "subject-access", justification: "subject-request",
        subjects: [{ jurisdiction, subject_id: subjectId }] });
      const token = await makeToken(key, principal, "POST", ACCESS, body);
      const got = await getJSON(ACCESS, { method: "POST", body,
        headers: { authorization: `Sovra ${token}`, "content-type": "application/json" } });
      const file = { subject: { jurisdiction, subject_id: subjectId }, decision: got.decision,
        log_index: got.log_index, decision_receipt: got.decision_receipt, records: got.records };
      const url = URL.createObjectURL(new Blob([JSON.stringify(file, null, 1)], { type: "application/json" }));
      const a = h("a", { href: url, download: `sovra-records-${jurisdiction}.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      note.textContent = t(lang, "archived", { n: Object.keys(got.records).length, index: got.log_index });
    } catch (e) {
      note.textContent = e.message;
    }
  } }, t(lang, "archive"));
  return h("div", { lang }, button, note);
}

async function show(ctx, report) {
  const trusted = await logKey(ctx.info.origin);
  let checkpoint;
  try {
    checkpoint = await verifyCheckpoint(report.checkpoint, trusted.key);
  } catch (e) {
    return [status("subject-status", "fail", t(lang, "failed"), t(lang, "cp_fail", { why: e.message }))];
  }
  const entries = report.entries.map((e) => ({ ...e, parsed: JSON.parse(e.entry) }));
  const grants = {};
  for (const e of entries) if (e.parsed.kind === "grant") grants[e.parsed.grant] = e.parsed.grant_id;
  const items = [];
  let bad = 0;
  for (const e of entries) {
    let ok = true;
    try {
      await verifyInclusion(e.index, checkpoint.size, await leafHash(e.entry), e.proof.map(fromBase64), checkpoint.root);
    } catch { ok = false; bad += 1; }
    items.push(h("li", { lang, "data-index": String(e.index), "data-verified": ok ? "yes" : "no" },
      h("span", { class: "badge", "data-status": ok ? "ok" : "fail" }, t(lang, ok ? "verified" : "failed")), " ",
      describe(ctx, e.parsed, grants), " ",
      h("span", { class: "muted" }, new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(e.parsed.time_ms)), " · ",
        h("a", { href: `/v1/log/entries?start=${e.index}&end=${e.index + 1}` }, `#${e.index}`))));
  }
  const n = entries.length;
  const head = bad
    ? status("subject-status", "fail", t(lang, "failed"), t(lang, "summary_fail", { bad, n }))
    : status("subject-status", "ok", t(lang, "verified"), t(lang, "summary_ok", { n, size: checkpoint.size }));
  const notes = trusted.source === "tofu" ? h("p", { class: "muted", id: "subject-tofu" }, t(lang, "tofu")) : null;
  return [head, notes, h("ol", { class: "events", id: "subject-entries" }, items)];
}

function describe(ctx, e, grants) {
  const who = e.principal;
  const from = ctx.summary?.principals?.[who]?.jurisdiction ?? "?";
  const until = (s) => new Intl.DateTimeFormat(lang, { dateStyle: "medium" }).format(new Date(s * 1000));
  switch (e.kind) {
    case "ingest":
      return t(lang, "ingest", { who, record: e.record, region: e.region, j: e.jurisdiction });
    case "key_release":
      return t(lang, "key_release", { who });
    case "grant":
      return t(lang, "grant", { approver: e.approver, grantee: e.grantee, purpose: e.purpose, until: until(e.not_after), grant: e.grant_id });
    case "grant_revoked":
      return t(lang, "grant_revoked", { grant: e.grant_id });
    case "shred":
      return t(lang, "shred", {});
    case "decision":
      if (e.effect === "deny") return t(lang, "deny", { who, from, action: e.action, reason: e.reason });
      if (e.action === "report") return t(lang, "report", { who });
      if (e.action === "read") {
        return e.grant
          ? t(lang, "read_grant", { who, from, purpose: e.purpose, grant: grants[e.grant] ?? e.grant.slice(0, 12) })
          : t(lang, "read", { who, from, purpose: e.purpose });
      }
      return t(lang, "allowed", { who, from, action: e.action });
    default:
      return `${e.kind} (${who})`;
  }
}
