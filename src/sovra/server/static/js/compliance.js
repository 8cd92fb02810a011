// The compliance view: what the scanner found and what minimisation did, per jurisdiction,
// kind and purpose (counts, never values), exportable as CSV and JSON.

import { countLink, h, table } from "./dom.js";
import { facetPlot } from "./plot.js";

/** One row per jurisdiction, kind and purpose: findings, records, and each action's count. */
export function complianceRows(summary) {
  const rows = new Map();
  const row = (j, kind, purpose) => {
    const key = `${j}|${kind}|${purpose}`;
    if (!rows.has(key)) rows.set(key, { jurisdiction: j, kind, purpose, found: 0, records: 0, actions: {} });
    return rows.get(key);
  };
  for (const [key, n] of Object.entries(summary.totals.found || {})) {
    const [j, kind, purpose] = key.split("|");
    row(j, kind, purpose).found = n;
  }
  for (const [key, n] of Object.entries(summary.facets.found || {})) {
    const [j, kind, purpose] = key.split("|");
    row(j, kind, purpose).records = n;
  }
  for (const [key, n] of Object.entries(summary.facets.minimised || {})) {
    const [j, kind, action, purpose] = key.split("|");
    row(j, kind, purpose).actions[action] = n;
  }
  return [...rows.values()].sort((a, b) =>
    a.jurisdiction.localeCompare(b.jurisdiction) || a.kind.localeCompare(b.kind) || a.purpose.localeCompare(b.purpose));
}

const ACTIONS = (rows) => [...new Set(rows.flatMap((r) => Object.keys(r.actions)))].sort();

export function toCSV(rows) {
  const actions = ACTIONS(rows);
  const cell = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  const lines = [["jurisdiction", "kind", "purpose", "found", "records", ...actions.map((a) => `action:${a}`)]];
  for (const r of rows) lines.push([r.jurisdiction, r.kind, r.purpose, r.found, r.records, ...actions.map((a) => r.actions[a] ?? 0)]);
  return lines.map((l) => l.map(cell).join(",")).join("\r\n") + "\r\n";
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function complianceView(ctx, main) {
  const s = ctx.summary;
  const rows = complianceRows(s);
  const actions = ACTIONS(rows);
  main.append(h("h2", {}, "Compliance"),
    h("p", { class: "muted" }, `What the scanner found at ingest and what minimisation did, from the ${s.facets.kind?.ingest ?? 0} ingest entries of the log. Counts only: the log never holds the values.`));
  main.append(h("div", { class: "row" },
    h("button", { type: "button", id: "export-csv", onclick: () => download("sovra-compliance.csv", "text/csv", toCSV(rows)) }, "Export CSV"),
    h("button", { type: "button", id: "export-json", class: "secondary",
      onclick: () => download("sovra-compliance.json", "application/json", JSON.stringify({ origin: s.origin, size: s.size, rows }, null, 1)) }, "Export JSON")));
  const t = table("Findings and minimisation per jurisdiction, kind of data and purpose",
    ["jurisdiction · kind · purpose", { label: "found" }, { label: "records" }, ...actions.map((a) => ({ label: a }))],
    rows.map((r) => {
      const key = `${r.jurisdiction}|${r.kind}|${r.purpose}`;
      return [`${r.jurisdiction} · ${r.kind} · ${r.purpose}`, r.found, countLink(r.records, "found", key),
        ...actions.map((a) => countLink(r.actions[a] ?? 0, "minimised", `${r.jurisdiction}|${r.kind}|${a}|${r.purpose}`))];
    }));
  t.id = "compliance";
  main.append(t);
  if (s.series.size.length) {
    main.append(h("h3", {}, "Over time"),
      h("p", { class: "muted" }, "Records with each kind found, and each minimisation action per kind, per span of time; each coloured part links to the ingest entries it counts."));
    const plots = [
      ["found-kind", "Records in which the scanner found each kind, over time", (k) => k],
      ["minimised-kind", "Minimisation per kind and action, over time", (k) => k.replace("|", " → ")],
    ];
    for (const [facet, title, label] of plots) {
      const series = s.facet_series?.[facet] || {};
      if (!Object.keys(series).length) continue;
      main.append(h("h4", {}, title), facetPlot({ id: `plot-${facet}`, title, facet,
        start: s.series.start_ms, step: s.series.step_ms, series, label }));
    }
  }
  const ingests = Object.entries(s.facets.ingest || {}).sort();
  if (ingests.length) {
    main.append(h("h3", {}, "Records ingested"), Object.assign(table("Records per jurisdiction and declared purpose",
      ["jurisdiction · purpose", { label: "records" }],
      ingests.map(([key, n]) => [key.replace("|", " · "), countLink(n, "ingest", key)])), { id: "ingests" }));
  }
}
