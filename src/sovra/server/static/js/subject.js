// The subject view: a subject signs in (with her own key, or with a bearer token from the
// deployment's OpenID Connect issuer) and sees every entry that touched her data, in words,
// in her language, each with its inclusion proof verified here; she may download her
// records or ask for erasure, each a logged decision.

import { getJSON, h, status } from "./dom.js";
import { LANGUAGES, pickLanguage, t } from "./i18n.js";
import { logKey } from "./key.js";
import { leafHash, verifyInclusion } from "./merkle.js";
import { fromBase64, verifyCheckpoint } from "./note.js";
import { importSeed, makeToken } from "./token.js";

const REPORT = "/v1/subjects/report";
const ACCESS = "/v1/access";
const ERASE = "/v1/subjects/erase";
let lang = pickLanguage(navigator.languages || [navigator.language || "en"]);

export async function subjectView(ctx, main, params) {
  const root = h("div", {});
  main.append(root);
  const kept = {};
  // A sign-in that redirects back here hands the access token in the address
  // (#/subject?access_token=...): it is taken into the page's memory and out of the address.
  const handed = params?.get("access_token");
  if (handed) {
    Object.assign(kept, { mode: "bearer", bearer: handed });
    history.replaceState(null, "", `${location.pathname}#/subject`);
  }
  draw(ctx, root, kept);
}

/** The Authorization header of one request: a sovra token signed here for exactly this
 * request, or the bearer token as the issuer gave it. */
async function credential(signin, method, path, body) {
  if (signin.mode === "bearer") return `Bearer ${signin.bearer}`;
  return `Sovra ${await makeToken(signin.key, signin.principal, method, path, body)}`;
}

async function call(signin, path, body) {
  return getJSON(path, { method: "POST", body,
    headers: { authorization: await credential(signin, "POST", path, body), "content-type": "application/json" } });
}

function draw(ctx, root, kept) {
  document.documentElement.lang = lang;
  const juris = Object.keys(ctx.info.jurisdictions);
  const field = (id, label, input) => h("label", { for: id, id: `${id}-label` }, label, input);
  const jurisdiction = h("select", { id: "subject-jurisdiction", name: "jurisdiction" },
    juris.map((j) => h("option", { value: j, selected: j === kept.jurisdiction }, `${j} · ${ctx.info.jurisdictions[j].name}`)));
  const subject = h("input", { id: "subject-id", name: "subject_id", required: true, autocomplete: "off", value: kept.subject || "" });
  const principal = h("input", { id: "subject-principal", name: "principal", autocomplete: "username", value: kept.principal || "" });
  const keyFile = h("input", { id: "subject-key", name: "key", type: "file" });
  const bearer = h("textarea", { id: "subject-bearer", name: "bearer", rows: 3, autocomplete: "off", spellcheck: "false" });
  bearer.value = kept.bearer || "";
  const language = h("select", { id: "subject-language", name: "language",
    onchange: () => { lang = language.value; draw(ctx, root, read()); } },
  Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, lang: code, selected: code === lang }, name)));
  const mode = () => (root.querySelector("input[name=signin]:checked")?.value || "key");
  const radio = (value, label) => h("label", { class: "choice", for: `signin-${value}` },
    h("input", { type: "radio", name: "signin", id: `signin-${value}`, value,
      checked: (kept.mode || "key") === value, onchange: () => show_(mode()) }), label);
  const keyFields = h("div", { class: "fields", id: "signin-key-fields" },
    field("subject-principal", t(lang, "principal"), principal),
    field("subject-key", t(lang, "key"), keyFile));
  const bearerFields = h("div", { class: "fields", id: "signin-bearer-fields" },
    h("label", { for: "subject-bearer" }, t(lang, "bearer"), h("span", { class: "hint" }, t(lang, "bearer_hint")), bearer));
  const show_ = (m) => {
    keyFields.hidden = m !== "key";
    bearerFields.hidden = m !== "bearer";
    principal.required = m === "key";
    keyFile.required = m === "key" && !kept.key;
    bearer.required = m === "bearer";
  };
  const out = h("div", { id: "subject-result" });
  const read = () => ({ jurisdiction: jurisdiction.value, subject: subject.value, principal: principal.value,
    key: kept.key, bearer: bearer.value.trim(), mode: mode() });

  const form = h("form", { onsubmit: async (ev) => {
    ev.preventDefault();
    out.replaceChildren(h("p", {}, "…"));
    root.dataset.done = "no";
    try {
      if (mode() === "key" && keyFile.files.length) kept.key = await importSeed(new Uint8Array(await keyFile.files[0].arrayBuffer()));
      const signin = read();
      if (signin.mode === "key" && !signin.key) throw new Error(t(lang, "key"));
      if (signin.mode === "bearer" && !signin.bearer) throw new Error(t(lang, "bearer"));
      const who = { jurisdiction: jurisdiction.value, subject_id: subject.value };
      const report = await call(signin, REPORT, JSON.stringify(who));
      out.replaceChildren(...(await show(ctx, report)), archive(signin, who), erasure(signin, who));
    } catch (e) {
      out.replaceChildren(status("subject-status", "fail", t(lang, "failed"), e.message));
    }
    root.dataset.done = "yes";
  } },
  field("subject-language", t(lang, "language"), language),
  field("subject-jurisdiction", t(lang, "jurisdiction"), jurisdiction),
  field("subject-id", t(lang, "subject_id"), subject),
  h("fieldset", { class: "signin" }, h("legend", {}, t(lang, "signin")),
    h("div", { class: "row" }, radio("key", t(lang, "with_key")), radio("bearer", t(lang, "with_bearer")))),
  keyFields, bearerFields,
  h("button", { type: "submit", id: "subject-submit" }, t(lang, "submit")));
  root.replaceChildren(h("h2", { lang }, t(lang, "title")), h("p", { lang }, t(lang, "intro")), form, out);
  show_(kept.mode || "key");
}

/** "Download my records": a read of her own records (a logged allow), saved as one file. */
function archive(signin, who) {
  const note = h("p", { id: "archive-status", role: "status" });
  const button = h("button", { type: "button", class: "secondary", id: "archive", onclick: async () => {
    note.textContent = "…";
    try {
      const body = JSON.stringify({ purpose: "subject-access", justification: "subject-request", subjects: [who] });
      const got = await call(signin, ACCESS, body);
      const file = { subject: who, decision: got.decision,
        log_index: got.log_index, decision_receipt: got.decision_receipt, records: got.records };
      const url = URL.createObjectURL(new Blob([JSON.stringify(file, null, 1)], { type: "application/json" }));
      const a = h("a", { href: url, download: `sovra-records-${who.jurisdiction}.json` });
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

/** "Ask for erasure": asks again, in words, before a logged crypto-shred of her key. */
function erasure(signin, who) {
  const note = h("div", { id: "erase-status", role: "status" });
  const confirm = h("div", { id: "erase-confirm", role: "alertdialog", "aria-labelledby": "erase-warning", hidden: true },
    h("p", { id: "erase-warning" }, t(lang, "erase_warn")),
    h("div", { class: "row" },
      h("button", { type: "button", id: "erase-yes", class: "danger", onclick: async () => {
        confirm.hidden = true;
        note.replaceChildren("…");
        try {
          const got = await call(signin, ERASE, JSON.stringify(who));
          note.replaceChildren(status("erase-result", "ok", t(lang, "erased_word"), t(lang, "erased", { index: got.log_index })));
        } catch (e) {
          note.replaceChildren(status("erase-result", "fail", t(lang, "erase_refused_word"),
            e.logIndex === undefined ? e.message : t(lang, "erase_refused", { index: e.logIndex, why: e.message })));
        }
        ask.focus();
      } }, t(lang, "erase_yes")),
      h("button", { type: "button", id: "erase-no", class: "secondary", onclick: () => { confirm.hidden = true; ask.focus(); } }, t(lang, "erase_no"))));
  const ask = h("button", { type: "button", class: "secondary", id: "erase", "aria-controls": "erase-confirm",
    onclick: () => { confirm.hidden = false; confirm.querySelector("#erase-no").focus(); } }, t(lang, "erase"));
  return h("section", { lang, "aria-labelledby": "erase-h" }, h("h3", { id: "erase-h" }, t(lang, "erase_title")), ask, confirm, note);
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
