// Small SVG plots: a line (the log's size over time), stacked bars (entries per kind), and
// stacked bars per facet whose every segment links to the log entries behind it.

const NS = "http://www.w3.org/2000/svg";
export const COLOURS = ["#0b57a4", "#c2410c", "#0b6b2e", "#7c3aed", "#a4161a", "#4a4a4a", "#b8860b", "#0e7490"];

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function frame(title, maxY, start, step, n, fmt) {
  const svg = el("svg", { viewBox: "0 0 640 220", class: "plot", role: "img", "aria-label": title });
  svg.append(el("title", {}, title));
  svg.append(el("line", { x1: 50, y1: 190, x2: 630, y2: 190, stroke: "#767676" }));
  svg.append(el("line", { x1: 50, y1: 10, x2: 50, y2: 190, stroke: "#767676" }));
  svg.append(el("text", { x: 44, y: 14, "text-anchor": "end" }, String(maxY)));
  svg.append(el("text", { x: 44, y: 190, "text-anchor": "end" }, "0"));
  svg.append(el("text", { x: 50, y: 208 }, fmt(start)));
  svg.append(el("text", { x: 630, y: 208, "text-anchor": "end" }, fmt(start + step * n)));
  return svg;
}

const clock = (ms) => new Date(ms).toLocaleString(document.documentElement.lang || "en",
  { dateStyle: "short", timeStyle: "medium" });

/** The cumulative size per time slot, as a line. */
export function growth(title, series) {
  const n = series.size.length;
  const maxY = Math.max(1, ...series.size);
  const svg = frame(title, maxY, series.start_ms, series.step_ms, n, clock);
  const pts = series.size.map((v, i) => `${50 + (580 * (i + 1)) / n},${190 - (180 * v) / maxY}`);
  svg.append(el("polyline", { points: ["50,190", ...pts].join(" "), fill: "none", stroke: COLOURS[0], "stroke-width": 2 }));
  return svg;
}

/** Stacked bars of named series (same length each). */
export function stacked(title, start, step, named) {
  const names = Object.keys(named);
  const n = names.length ? named[names[0]].length : 0;
  const totals = Array.from({ length: n }, (_, i) => names.reduce((s, k) => s + named[k][i], 0));
  const maxY = Math.max(1, ...totals);
  const svg = frame(title, maxY, start, step, n, clock);
  const w = 580 / Math.max(1, n);
  for (let i = 0; i < n; i++) {
    let y = 190;
    names.forEach((k, c) => {
      const v = named[k][i];
      if (!v) return;
      const hgt = (180 * v) / maxY;
      y -= hgt;
      const r = el("rect", { x: 50 + i * w + 1, y, width: Math.max(1, w - 2), height: hgt, fill: COLOURS[c % COLOURS.length] });
      r.append(el("title", {}, `${k}: ${v}`));
      svg.append(r);
    });
  }
  return svg;
}

export function legend(names) {
  const div = document.createElement("div");
  div.className = "legend";
  names.forEach((k, c) => {
    const span = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = COLOURS[c % COLOURS.length];
    span.append(i, k);
    div.append(span);
  });
  return div;
}

/** Stacked bars over time of one facet's keys (``series[key]`` counts per span); each
 * segment is a link to the entries behind it (``#/entries?facet&key&start_ms&end_ms``),
 * reached with Tab and named in words for a screen reader. */
export function facetPlot({ id, title, facet, start, step, series, label = (k) => k }) {
  const names = Object.keys(series).sort();
  const n = names.length ? series[names[0]].length : 0;
  const totals = Array.from({ length: n }, (_, i) => names.reduce((s, k) => s + series[k][i], 0));
  const maxY = Math.max(1, ...totals);
  const svg = frame(title, maxY, start, step, n, clock);
  svg.setAttribute("role", "group");
  svg.removeAttribute("aria-label");
  svg.setAttribute("aria-labelledby", `${id}-title`);
  svg.querySelector("title").id = `${id}-title`;
  const w = 580 / Math.max(1, n);
  for (let i = 0; i < n; i++) {
    let y = 190;
    const from = start + i * step;
    names.forEach((k, c) => {
      const v = series[k][i];
      if (!v) return;
      const hgt = (180 * v) / maxY;
      y -= hgt;
      const q = new URLSearchParams({ facet, key: k, start_ms: String(from), end_ms: String(from + step) });
      const words = `${label(k)}: ${v} ${v === 1 ? "entry" : "entries"}, ${clock(from)} to ${clock(from + step)}`;
      const a = el("a", { href: `#/entries?${q}`, "aria-label": words, class: "seg" });
      const r = el("rect", { x: 50 + i * w + 1, y, width: Math.max(1, w - 2), height: hgt, fill: COLOURS[c % COLOURS.length] });
      r.append(el("title", {}, words));
      a.append(r);
      svg.append(a);
    });
  }
  const fig = document.createElement("figure");
  fig.id = id;
  fig.className = "plot";
  fig.append(svg, legend(names.map(label)));
  return fig;
}
