// The page's shell: loads the public facts once, then renders the view the address names.

import { getJSON, h, status } from "./dom.js";
import { logView } from "./log.js";
import { decisionsView, entriesView } from "./decisions.js";
import { subjectView } from "./subject.js";
import { complianceView } from "./compliance.js";

const views = {
  log: logView,
  decisions: decisionsView,
  subject: subjectView,
  compliance: complianceView,
  entries: entriesView,
};

const ctx = { info: null, summary: null };
let shown = 0;

async function render() {
  // Each rendering fills a container of its own: one started before the address changed
  // again writes into a container no longer on the page.
  const turn = ++shown;
  const main = document.getElementById("main");
  const view = h("div", {});
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const name = views[path] ? path : "log";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main.replaceChildren(view);
  main.dataset.view = name;
  main.dataset.ready = "no";
  try {
    if (!ctx.info) ctx.info = await getJSON("/v1/info");
    document.getElementById("origin").textContent = ctx.info.origin;
    ctx.summary = await getJSON("/v1/page/summary");
    await views[name](ctx, view, new URLSearchParams(query || ""));
  } catch (e) {
    view.append(status("page-error", "fail", "Error", e.message));
  }
  if (turn === shown) main.dataset.ready = "yes";
}

window.addEventListener("hashchange", () => { render(); document.getElementById("main").focus(); });
render();

export { ctx, h };
