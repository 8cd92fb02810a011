// A tiny element builder: text goes in as text nodes, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A status box: state is "ok", "fail" or "warn"; the word says it, not only the colour. */
export function status(id, state, word, ...detail) {
  return h("div", { class: "status", id, "data-status": state, role: "status" },
    h("strong", {}, word), " ", ...detail);
}

export async function getText(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.text();
}

export async function getJSON(url, init) {
  const r = await fetch(url, { cache: "no-store", ...init });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const why = body?.error?.message || body?.detail || body?.message || `HTTP ${r.status}`;
    const err = new Error(typeof why === "string" ? why : JSON.stringify(why));
    err.status = r.status;
    // A refusal by policy names the log entry that records it.
    if (Number.isInteger(body?.log_index)) err.logIndex = body.log_index;
    throw err;
  }
  return body;
}

/** A link to the log entries behind a count (the entries view). */
export function countLink(n, facet, key) {
  if (!n) return h("span", { class: "n0" }, "0");
  const q = new URLSearchParams({ facet, key });
  return h("a", { href: `#/entries?${q}`, "aria-label": `${n} log entries: ${facet} ${key}` }, String(n));
}

export function table(caption, head, rows) {
  return h("div", { class: "scroll" },
    h("table", {},
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { scope: "col", class: i && typeof c === "object" ? "n" : null }, typeof c === "object" ? c.label : c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => (i === 0
        ? h("th", { scope: "row" }, c)
        : h("td", { class: c instanceof Node || typeof c === "number" ? "n" : null }, c))))))));
}

export function time(ms, lang = document.documentElement.lang || "en") {
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" }).format(new Date(ms));
}
