// The swift-dtm console: a small single-page app on the public JSON API (/api/dtmsvr/*). No build step, no
// third-party code; served by the coordinator with a strict Content-Security-Policy (no inline script or style).

// The API's methods and paths, written by the server from its route table: the console names no path itself.
import { ROUTES } from "./routes.js";

const STATUSES = ["prepared", "submitted", "aborting", "succeed", "failed"];
const TYPES = ["saga", "tcc", "msg", "xa", "workflow"];
const POLL_MS = 3000;

const main = document.getElementById("main");
const banner = document.getElementById("banner");
let pollTimer = null;

// ---- tokens and API calls ----------------------------------------------------------------------------------

const tokenKey = "swift-dtm-token";
const token = () => sessionStorage.getItem(tokenKey) || "";

class Unauthorized extends Error {}

// Calls one of ROUTES: `query` is the query string, `suffix` what follows a prefix route's path (a topic's name).
async function api(route, { query = "", suffix = "", body } = {}) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = route.path + suffix + (query ? "?" + query : "");
  const r = await fetch(url, { method: route.method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) throw new Unauthorized();
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!r.ok) throw new Error((json && json.message) || text || "HTTP " + r.status);
  return json;
}

// ---- small DOM helpers ---------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

/// `replaceChildren` without the nulls of optional parts.
const replace = (parent, ...children) => parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));

const statusBadge = (s) => el("span", { class: "status " + s, "data-status": s }, s || "?");
const time = (t) => (t ? new Date(t).toLocaleString() : "");

function show(...nodes) {
  replace(main, ...nodes);
}

function stopPolling() {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
}

// Every value of branch_headers is a secret (tokens, cookies): shown masked whatever the server sent.
function masked(transaction) {
  const t = structuredClone(transaction || {});
  const mask = (o) => {
    if (o && o.branch_headers) for (const k of Object.keys(o.branch_headers)) o.branch_headers[k] = "***";
  };
  mask(t);
  if (typeof t.options === "string") {
    try {
      const o = JSON.parse(t.options);
      mask(o);
      t.options = JSON.stringify(o);
    } catch { /* not JSON: left as it is */ }
  }
  return t;
}

// ---- login ---------------------------------------------------------------------------------------------------

function showLogin(message) {
  stopPolling();
  document.getElementById("logout").hidden = true;
  banner.hidden = true;
  const input = el("input", { type: "password", id: "token", placeholder: "AdminToken", autocomplete: "current-password" });
  const form = el("form", { class: "login", id: "login" },
    el("h2", {}, "Log in"),
    el("p", { class: "muted" }, "This coordinator needs its AdminToken (or AuthToken) to show anything."),
    message ? el("p", { class: "error", id: "login-error" }, message) : null,
    input,
    el("button", { class: "primary", type: "submit" }, "Log in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(tokenKey, input.value);
    try {
      await api(ROUTES.all, { query: "limit=1" });
      route();
    } catch (e) {
      sessionStorage.removeItem(tokenKey);
      showLogin(e instanceof Unauthorized ? "Wrong token." : e.message);
    }
  });
  show(form);
  input.focus();
}

// ---- transactions --------------------------------------------------------------------------------------------

function listFilters(params) {
  const select = (name, values, label) =>
    el("label", {}, label, el("select", { name, id: "filter-" + name },
      el("option", { value: "" }, "any"),
      values.map((v) => el("option", { value: v, selected: params.get(name) === v }, v))));
  const form = el("form", { class: "filters", id: "filters" },
    el("label", {}, "gid", el("input", { name: "gid", id: "filter-gid", value: params.get("gid") || "" })),
    select("status", STATUSES, "status"),
    select("transType", TYPES, "type"),
    el("label", {}, "created from", el("input", { type: "datetime-local", name: "from", value: params.get("from") || "" })),
    el("label", {}, "to", el("input", { type: "datetime-local", name: "to", value: params.get("to") || "" })),
    el("button", { class: "primary", type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    location.hash = "#/?" + next.toString();
  });
  return form;
}

async function showList(params) {
  const position = params.get("position") || "";
  const query = new URLSearchParams({ limit: params.get("limit") || "20" });
  for (const k of ["gid", "status", "transType"]) if (params.get(k)) query.set(k, params.get(k));
  if (params.get("from")) query.set("createTimeStart", String(new Date(params.get("from")).getTime()));
  if (params.get("to")) query.set("createTimeEnd", String(new Date(params.get("to")).getTime()));
  if (position) query.set("position", position);
  const body = el("tbody", { id: "transactions" });
  const pager = el("div", { class: "pager" });
  const counters = el("div", { class: "counters", id: "counters" });
  show(el("h2", {}, "Transactions"), counters, listFilters(params),
    el("table", {}, el("thead", {}, el("tr", {},
      el("th", {}, "gid"), el("th", {}, "type"), el("th", {}, "status"), el("th", { class: "optional" }, "created"),
      el("th", { class: "optional" }, "next cron"), el("th", { class: "optional" }, "reason"))), body), pager);
  const refresh = async () => {
    const [data, stats] = await Promise.all([api(ROUTES.all, { query: query.toString() }), api(ROUTES.stats)]);
    const count = (n) => (n >= stats.cap ? stats.cap + "+" : String(n));
    replace(counters, ["prepared", "submitted", "aborting", "due", "overdue"].map((k) =>
      el("span", { class: "counter " + k + (k === "overdue" && stats[k] > 0 ? " alert" : ""), id: "count-" + k },
        el("b", {}, count(stats[k])), " " + k)));
    const rows = (data.transactions || []).map((t) => el("tr", { "data-gid": t.gid },
      el("td", { class: "gid" }, el("a", { href: "#/trans/" + encodeURIComponent(t.gid) }, t.gid)),
      el("td", {}, t.trans_type), el("td", {}, statusBadge(t.status)),
      el("td", { class: "optional" }, time(t.create_time)),
      el("td", { class: "optional" }, t.status === "succeed" || t.status === "failed" ? "" : time(t.next_cron_time)),
      el("td", { class: "optional" }, t.rollback_reason || "")));
    body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No transactions."))]));
    const next = new URLSearchParams(params);
    replace(pager,
      position ? el("a", { href: "#/", id: "first-page" }, "First page") : null,
      data.next_position ? el("a", { href: "#/?" + (next.set("position", data.next_position), next.toString()), id: "next-page" }, "Next page") : null,
      el("span", { class: "muted" }, rows.length + " shown"));
  };
  await refresh();
  // Live: the first page follows new and changing transactions by itself.
  if (!position) pollTimer = setInterval(() => refresh().catch(handleError), POLL_MS);
}

async function showTransaction(gid) {
  const result = el("div", { class: "result", id: "action-result" });
  const detail = el("div", { id: "detail" });
  show(el("p", {}, el("a", { href: "#/" }, "← Transactions")), el("h2", {}, gid), result, detail);
  const act = async (label, route) => {
    if (!confirm(label + " " + gid + "?")) return;
    try {
      await api(route, { body: { gid } });
      result.textContent = label + ": done.";
      await refresh();
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      result.textContent = label + " failed: " + e.message;
    }
  };
  const refresh = async () => {
    const data = await api(ROUTES.query, { query: "gid=" + encodeURIComponent(gid) });
    const t = data.transaction;
    if (!t) {
      detail.replaceChildren(el("p", { class: "muted" }, "No transaction with this gid."));
      return;
    }
    const shown = masked(t);
    const finished = t.status === "succeed" || t.status === "failed";
    // The schedule means nothing once a transaction is finished.
    const fields = ["status", "trans_type", "protocol", "create_time", "update_time", "finish_time", "rollback_time",
      ...(finished ? [] : ["next_cron_time", "next_cron_interval"]), "owner", "rollback_reason", "query_prepared", "custom_data", "options", "result"];
    replace(detail,
      el("dl", { class: "fields" }, fields.filter((f) => shown[f] !== undefined && shown[f] !== "").flatMap((f) => [
        el("dt", {}, f),
        el("dd", { id: "field-" + f }, f === "status" ? statusBadge(t.status) : f.endsWith("_time") ? time(shown[f]) : String(shown[f]))])),
      el("div", { class: "actions" },
        finished ? null : el("button", { id: "retry-now", onclick: () => act("Retry now", ROUTES.resetNextCronTime).catch(handleError) }, "Retry now"),
        finished ? null : el("button", { class: "danger", id: "force-stop", onclick: () => act("Force stop", ROUTES.forceStop).catch(handleError) }, "Force stop")),
      el("h3", {}, t.trans_type === "saga" ? "Steps" : "Timeline"),
      t.trans_type === "saga" ? sagaGraph(t, data.branches || []) : branchTimeline(t, data.branches || []),
      el("h3", {}, "Branches"),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "branch"), el("th", {}, "op"), el("th", {}, "status"),
        el("th", { class: "optional" }, "finished"), el("th", {}, "url"))),
        el("tbody", { id: "branches" }, (data.branches || []).map((b) => el("tr", { "data-branch": b.branch_id + "/" + b.op },
          el("td", {}, b.branch_id), el("td", {}, b.op), el("td", {}, statusBadge(b.status)),
          el("td", { class: "optional" }, time(b.finish_time)), el("td", { class: "gid" }, b.url))))),
      el("h3", {}, "JSON"),
      el("pre", { id: "raw" }, JSON.stringify({ transaction: shown, branches: data.branches }, null, 2)));
  };
  await refresh();
  pollTimer = setInterval(() => refresh().catch(handleError), POLL_MS);
}

// ---- the saga as a picture --------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// A saga's steps as a graph: the sequential chain, or the DAG of `orders` for a concurrent saga (custom_data
// {"orders": {"<step>": [<steps it waits for>]}, "concurrent": true}, steps counted from 0). Each step is a box whose
// upper half is its action's status and lower half its compensation's.
function sagaGraph(transaction, branches) {
  const steps = [...new Set(branches.map((b) => b.branch_id))].sort();
  if (steps.length === 0) return null;
  const statusOf = (id, op) => (branches.find((b) => b.branch_id === id && b.op === op) || {}).status || "none";
  let custom = {};
  try { custom = JSON.parse(transaction.custom_data || "{}") || {}; } catch { custom = {}; }
  const waitsFor = steps.map((_, i) => {
    if (!custom.concurrent) return i === 0 ? [] : [i - 1];
    const before = (custom.orders || {})[String(i)];
    return Array.isArray(before) ? before.filter((j) => Number.isInteger(j) && j >= 0 && j < steps.length && j !== i) : [];
  });
  // Column of each step: one more than the furthest step it waits for (cycles are cut by the bound).
  const column = steps.map(() => 0);
  for (let round = 0; round < steps.length; round++) {
    steps.forEach((_, i) => { for (const j of waitsFor[i]) column[i] = Math.max(column[i], Math.min(column[j] + 1, steps.length)); });
  }
  const rowInColumn = {};
  const position = steps.map((_, i) => {
    const c = column[i];
    rowInColumn[c] = (rowInColumn[c] || 0) + 1;
    return { x: 20 + c * 130, y: 20 + (rowInColumn[c] - 1) * 70 };
  });
  const width = 20 + (Math.max(...column) + 1) * 130;
  const height = 20 + Math.max(...Object.values(rowInColumn)) * 70;
  const g = svg("svg", { class: "graph", id: "saga-graph", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  steps.forEach((_, i) => {
    for (const j of waitsFor[i]) {
      g.append(svg("line", { class: "edge", x1: position[j].x + 90, y1: position[j].y + 22, x2: position[i].x, y2: position[i].y + 22 }));
    }
  });
  steps.forEach((id, i) => {
    const { x, y } = position[i];
    const action = statusOf(id, "action");
    const compensate = statusOf(id, "compensate");
    g.append(svg("g", { class: "step", "data-step": id, "data-action": action, "data-compensate": compensate },
      svg("rect", { class: "half " + action, x, y, width: 90, height: 22 }),
      svg("rect", { class: "half " + compensate, x, y: y + 22, width: 90, height: 22 }),
      svg("text", { x: x + 6, y: y + 15 }, id + " action"),
      svg("text", { x: x + 6, y: y + 37 }, "compensate")));
  });
  return g;
}

// The branches of a TCC, XA, msg or workflow transaction in the order they finished: one row per branch op, a bar
// from the transaction's creation to the branch's finish time.
function branchTimeline(transaction, branches) {
  const start = Date.parse(transaction.create_time);
  const finished = branches.filter((b) => b.finish_time).map((b) => ({ ...b, at: Date.parse(b.finish_time) }));
  if (!Number.isFinite(start) || finished.length === 0) return null;
  finished.sort((a, b) => a.at - b.at);
  const span = Math.max(1, ...finished.map((b) => b.at - start));
  const rowHeight = 22;
  const g = svg("svg", { class: "graph timeline", id: "timeline", viewBox: `0 0 600 ${finished.length * rowHeight + 10}`,
    width: 600, height: finished.length * rowHeight + 10, role: "img" });
  const after = (ms) => (ms < 1000 ? "+" + Math.round(ms) + " ms" : "+" + (ms / 1000).toFixed(1) + " s");
  finished.forEach((b, i) => {
    const y = 5 + i * rowHeight;
    const width = Math.max(4, Math.round(((b.at - start) / span) * 280));
    g.append(svg("g", { class: "event", "data-branch": b.branch_id + "/" + b.op, "data-status": b.status },
      svg("rect", { class: "half " + b.status, x: 200, y, width, height: rowHeight - 6 }),
      svg("text", { class: "label", x: 4, y: y + 12 }, b.branch_id + " " + b.op),
      svg("text", { class: "label", x: 206 + width, y: y + 12 }, after(b.at - start))));
  });
  return g;
}

// ---- attention -----------------------------------------------------------------------------------------------

// Unfinished transactions retried beyond AlertRetryLimit or overdue, oldest first, with the last error each got.
async function showAttention() {
  const body = el("tbody", { id: "attention" });
  show(el("h2", {}, "Attention"),
    el("p", { class: "muted" }, "Unfinished transactions retried beyond AlertRetryLimit, or overdue, oldest first."),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "gid"), el("th", {}, "status"), el("th", { class: "optional" }, "age"),
      el("th", {}, "retries"), el("th", {}, "last error"))), body));
  const refresh = async () => {
    const data = await api(ROUTES.attention, { query: "limit=100" });
    const age = (t) => {
      const s = Math.max(0, (Date.now() - Date.parse(t.create_time)) / 1000);
      return s < 120 ? Math.round(s) + " s" : s < 7200 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
    };
    const rows = (data.items || []).map((item) => el("tr", { "data-gid": item.transaction.gid },
      el("td", { class: "gid" }, el("a", { href: "#/trans/" + encodeURIComponent(item.transaction.gid) }, item.transaction.gid)),
      el("td", {}, statusBadge(item.transaction.status), item.overdue ? el("span", { class: "muted" }, " overdue") : null),
      el("td", { class: "optional" }, age(item.transaction)),
      el("td", { class: "retries" }, String(item.retries)),
      el("td", { class: "last-error" }, item.last_error || "")));
    replace(body, rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Nothing needs attention."))]);
  };
  await refresh();
  pollTimer = setInterval(() => refresh().catch(handleError), POLL_MS);
}

// ---- topics --------------------------------------------------------------------------------------------------

async function showTopics() {
  const result = el("div", { class: "result", id: "topic-result" });
  const list = el("tbody", { id: "topics" });
  const topic = el("input", { name: "topic", placeholder: "topic", required: true });
  const url = el("input", { name: "url", placeholder: "subscriber URL", required: true });
  const remark = el("input", { name: "remark", placeholder: "remark" });
  const form = el("form", { class: "filters", id: "subscribe" }, topic, url, remark, el("button", { class: "primary", type: "submit" }, "Subscribe"));
  const run = async (label, route, options) => {
    try {
      await api(route, options);
      result.textContent = label + ": done.";
    } catch (e) {
      if (e instanceof Unauthorized) throw e;
      result.textContent = label + " failed: " + e.message;
    }
    await refresh();
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({ topic: topic.value, url: url.value, remark: remark.value });
    run("Subscribe", ROUTES.subscribe, { query: q.toString() }).catch(handleError);
  });
  const refresh = async () => {
    const data = await api(ROUTES.scanKV, { query: "cat=topics&limit=100" });
    list.replaceChildren(...(data.kv || []).flatMap((kv) => {
      let subscribers = [];
      try { subscribers = JSON.parse(kv.v) || []; } catch { subscribers = []; }
      return subscribers.map((s) => el("tr", {},
        el("td", {}, kv.k), el("td", { class: "gid" }, s.url), el("td", { class: "optional" }, s.remark || ""),
        el("td", {},
          el("button", { class: "link", onclick: () => confirm("Unsubscribe " + s.url + " from " + kv.k + "?") &&
            run("Unsubscribe", ROUTES.unsubscribe, { query: new URLSearchParams({ topic: kv.k, url: s.url }).toString() }).catch(handleError) }, "unsubscribe"),
          el("button", { class: "link", onclick: () => confirm("Delete topic " + kv.k + "?") &&
            run("Delete", ROUTES.deleteTopic, { suffix: encodeURIComponent(kv.k) }).catch(handleError) }, "delete topic"))));
    }));
  };
  show(el("h2", {}, "Topics"), form, result,
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "topic"), el("th", {}, "subscriber"), el("th", { class: "optional" }, "remark"), el("th", {}, ""))), list));
  await refresh();
}

// ---- routing -------------------------------------------------------------------------------------------------

function handleError(e) {
  if (e instanceof Unauthorized) return showLogin(token() ? "The token was refused." : "");
  banner.hidden = false;
  banner.className = "banner error";
  banner.textContent = "Error: " + e.message;
}

async function route() {
  stopPolling();
  const hash = location.hash || "#/";
  try {
    const version = await api(ROUTES.version);
    document.getElementById("version").textContent = "version " + version.version;
    document.getElementById("logout").hidden = !token();
    if (hash.startsWith("#/trans/")) return await showTransaction(decodeURIComponent(hash.slice("#/trans/".length)));
    if (hash.startsWith("#/topics")) return await showTopics();
    if (hash.startsWith("#/attention")) return await showAttention();
    const query = hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "";
    await showList(new URLSearchParams(query));
    if (!token()) {
      banner.hidden = false;
      banner.className = "banner";
      banner.textContent = "No AdminToken is set: this console and the admin APIs are open to anyone who can reach this port.";
    }
  } catch (e) {
    handleError(e);
  }
}

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(tokenKey);
  route();
});
window.addEventListener("hashchange", route);
route();
