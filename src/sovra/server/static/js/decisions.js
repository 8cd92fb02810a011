// The decisions view: allow and deny by jurisdiction, requester and justification, denied
// foreign requests, grants, bulk-guard refusals and the review queue. Every number links to
// the log entries behind it.

import { countLink, getJSON, h, table, time } from "./dom.js";
import { facetPlot, legend, stacked } from "./plot.js";

function split(facet) {
  // "allow|PL" -> rows keyed by the part after the effect
  const rows = {};
  for (const [key, n] of Object.entries(facet || {})) {
    const [effect, ...rest] = key.split("|");
    const name = rest.join("|");
    rows[name] ??= { allow: 0, deny: 0 };
    rows[name][effect] = n;
  }
  return rows;
}

function effectTable(id, caption, label, facetName, facet) {
  const rows = split(facet);
  const names = Object.keys(rows).sort();
  if (!names.length) return h("p", { id }, "None yet.");
  const t = table(caption, [label, { label: "allowed" }, { label: "denied" }],
    names.map((name) => [name,
      countLink(rows[name].allow, facetName, `allow|${name}`),
      countLink(rows[name].deny, facetName, `deny|${name}`)]));
  t.id = id;
  return t;
}

export async function decisionsView(ctx, main) {
  const s = ctx.summary;
  const f = s.facets;
  const names = ctx.info.jurisdictions;
  main.append(h("h2", {}, "Decisions"),
    h("p", { class: "muted" }, `Counted from the public log of ${s.size} entries. Each number links to the entries behind it.`));

  main.append(h("h3", {}, "By the subjects' jurisdiction"),
    effectTable("by-jurisdiction", "Decisions by the jurisdiction of the data", "jurisdiction", "jurisdiction", f.jurisdiction));
  main.append(h("h3", {}, "By the requester's jurisdiction"),
    effectTable("by-requester", "Decisions by the jurisdiction of who asked", "requester from", "requester", f.requester));
  main.append(h("h3", {}, "By justification"),
    effectTable("by-justification", "Decisions by the justification given", "justification", "justification", f.justification));
  main.append(h("h3", {}, "By action"),
    effectTable("by-action", "Decisions by what was asked", "action", "action", f.action));

  const foreign = Object.entries(f["denied-foreign"] || {}).sort();
  main.append(h("h3", {}, "Denied foreign requests"), foreign.length
    ? Object.assign(table("Refused requests for another jurisdiction's data", ["requester from → data of", { label: "denied" }],
      foreign.map(([key, n]) => {
        const [from, to] = key.split("|");
        return [`${from} (${names[from]?.name ?? from}) → ${to} (${names[to]?.name ?? to})`, countLink(n, "denied-foreign", key)];
      })), { id: "denied-foreign" })
    : h("p", { id: "denied-foreign" }, "None."));

  const grants = s.grants;
  main.append(h("h3", {}, "Grants"), grants.length
    ? Object.assign(table("Legal-assistance grants registered in the log", ["grant", "approver", "grantee", "purpose", "until", { label: "registered" }, { label: "used" }, "state"],
      grants.map((g) => [g.grant_id, g.approver, g.grantee, g.purpose, time(g.not_after * 1000),
        countLink(1, "grant-registered", g.grant_id), countLink(g.used, "grant-used", g.grant_id),
        g.revoked ? h("a", { href: `#/entries?${new URLSearchParams({ facet: "grant-revoked", key: g.grant_id })}` }, "revoked")
          : g.expired ? "expired" : "in force"])), { id: "grants" })
    : h("p", { id: "grants" }, "No grant registered."));

  const bulk = Object.entries(f.bulk || {}).sort();
  main.append(h("h3", {}, "Bulk-guard refusals"), bulk.length
    ? Object.assign(table("Requests refused by the bulk-collection guard, by rule", ["rule", { label: "refused" }],
      bulk.map(([rule, n]) => [rule, countLink(n, "bulk", rule)])), { id: "bulk" })
    : h("p", { id: "bulk" }, "None."));

  const review = Object.entries(f.review || {}).sort();
  main.append(h("h3", {}, "Sent for review"), review.length
    ? Object.assign(table("Decisions sent to a review queue", ["queue", { label: "decisions" }],
      review.map(([q, n]) => [q, countLink(n, "review", q)])), { id: "review" })
    : h("p", { id: "review" }, "No decision was sent for review."));

  const e = s.series.effects;
  if (e && s.series.size.length) {
    main.append(h("h3", {}, "Over time"),
      stacked("Decisions allowed and denied over time", s.series.start_ms, s.series.step_ms, e), legend(Object.keys(e)));
    main.append(h("p", { class: "muted" }, "Each bar below is a span of time; each coloured part links to the log entries it counts."));
    const said = (k) => k.replace("|", " · ");
    for (const [facet, what] of [["jurisdiction", "the jurisdiction of the data"],
      ["requester", "the requester's jurisdiction"], ["justification", "justification"]]) {
      const series = s.facet_series?.[facet] || {};
      if (!Object.keys(series).length) continue;
      main.append(h("h4", {}, `Allowed and denied by ${what}, over time`),
        facetPlot({ id: `plot-${facet}`, title: `Decisions by ${what} over time (allow or deny · key)`, facet,
          start: s.series.start_ms, step: s.series.step_ms, series, label: said }));
    }
  }
}

export async function entriesView(ctx, main, params) {
  const facet = params.get("facet") || "";
  const key = params.get("key") || "";
  const offset = Number(params.get("offset") || 0);
  const span = {};
  for (const k of ["start_ms", "end_ms"]) if (params.get(k)) span[k] = params.get(k);
  const q = new URLSearchParams({ facet, key, offset: String(offset), ...span });
  const r = await getJSON(`/v1/page/entries?${q}`);
  main.append(h("h2", {}, "Log entries"),
    h("p", { id: "entries-about" }, `${r.total} entries filed under `, h("code", {}, facet), " ", h("code", {}, key),
      span.start_ms ? ` from ${time(Number(span.start_ms))} to ${time(Number(span.end_ms))}` : "",
      r.total > r.entries.length ? ` (showing ${offset + 1}–${offset + r.entries.length})` : ""));
  main.append(h("ol", { class: "events", id: "entries", start: String(offset + 1) }, r.entries.map((e) => {
    const entry = JSON.parse(e.entry);
    return h("li", {},
      h("a", { href: `/v1/log/entries?start=${e.index}&end=${e.index + 1}` }, `#${e.index}`), " ",
      h("strong", {}, entry.kind), " ", entry.effect ?? "", " by ", h("code", {}, entry.principal), " · ", time(entry.time_ms),
      h("details", {}, h("summary", {}, "entry"), h("pre", { class: "mono" }, JSON.stringify(entry, null, 1))));
  })));
  if (offset + r.entries.length < r.total) {
    const next = new URLSearchParams({ facet, key, offset: String(offset + r.entries.length), ...span });
    main.append(h("a", { href: `#/entries?${next}` }, "Next entries"));
  }
}
