// Runnel's web console: one page, no framework, nothing fetched from
// elsewhere. Pages are chosen by the URL's hash (#/jobs, #/jobs/ID,
// #/sql, #/catalog); every call goes to /api/ with the session cookie.
// Text from the server is always set as text, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;

let pollTimer = null;
// The previous poll of each job (for rates): id -> {t, job}.
const previous = new Map();
let selectedOperator = null;
let running = null; // the AbortController of a streaming statement

// ---- calls ---------------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (res.status === 401) {
    showLogin();
    throw new Unauthorized("log in first");
  }
  return res;
}

async function json(path, options) {
  const res = await api(path, options);
  const body = await res.json();
  if (!res.ok) {
    const err = new Error(body.error || res.statusText);
    err.body = body;
    throw err;
  }
  return body;
}

/// Runs `sql` and returns its finished result (columns and rows).
async function query(sql) {
  return json("/api/sql", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sql }),
  });
}

// ---- formatting ----------------------------------------------------------

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    tr.appendChild(c instanceof Node ? wrapCell(c) : el("td", c));
  }
  return tr;
}

function wrapCell(node) {
  const td = document.createElement("td");
  td.appendChild(node);
  return td;
}

function number(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "-";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + " M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + " k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function duration(ms) {
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.floor(s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

function time(ms) {
  if (ms === null || ms === undefined) return "-";
  // The end of time: a bounded input has ended.
  if (ms >= 9.2e18) return "end";
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function sum(list, f) {
  return list.reduce((a, x) => a + f(x), 0);
}

// ---- pages ---------------------------------------------------------------

function show(page) {
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== "page-" + page;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === page || (page === "job" && a.dataset.page === "jobs"));
  }
}

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

function poll(f) {
  stopPolling();
  const tick = async () => {
    try {
      await f();
    } catch (e) {
      if (e instanceof Unauthorized) return;
      console.error(e);
    }
    pollTimer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function showLogin() {
  stopPolling();
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  show("login");
  $("login-user").focus();
}

async function route() {
  let me;
  try {
    me = await json("/api/me");
  } catch (e) {
    return;
  }
  $("nav").hidden = false;
  $("logout").hidden = me.anonymous || me.script;
  $("who").textContent = me.script ? "runnel run as " + me.user : me.anonymous ? "anonymous" : "logged in as " + me.user;
  // runnel run's console shows the script's jobs only.
  for (const a of document.querySelectorAll('#nav a[data-page="sql"], #nav a[data-page="catalog"]')) a.hidden = me.script;
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/");
  stopPolling();
  if (page === "jobs" && rest.length > 0) {
    const id = decodeURIComponent(rest.join("/"));
    show("job");
    selectedOperator = null;
    $("operator-detail").hidden = true;
    poll(() => loadJob(id));
  } else if (page === "sql") {
    show("sql");
  } else if (page === "catalog") {
    show("catalog");
    loadCatalog();
  } else {
    show("jobs");
    poll(loadJobs);
  }
}

// ---- job list --------------------------------------------------------------

/// Rows per second of a job since the last poll (since it started, the
/// first time).
function rates(job) {
  if (!job.running) return [null, null];
  return sampled(job.id, job, (prev, secs) => {
    if (!prev) {
      const age = job.uptime_ms / 1000;
      return age > 0 ? [job.rows_read / age, job.rows_written / age] : [null, null];
    }
    return [(job.rows_read - prev.rows_read) / secs, (job.rows_written - prev.rows_written) / secs];
  });
}

/// Rates over at least MIN_SPAN_MS: `compute(previous, seconds)` with the
/// sample kept for `key` (null the first time); polls closer together
/// than that reuse the last rates, so two quick polls give no spikes.
const MIN_SPAN_MS = 800;
function sampled(key, current, compute) {
  const now = performance.now();
  const prev = previous.get(key);
  if (prev && now - prev.t < MIN_SPAN_MS && prev.rates !== undefined) return prev.rates;
  const result = compute(prev ? prev.value : null, prev ? (now - prev.t) / 1000 : 0);
  previous.set(key, { t: now, value: current, rates: result });
  return result;
}

async function loadJobs() {
  const { jobs } = await json("/api/jobs");
  const body = $("jobs-table").tBodies[0];
  body.replaceChildren();
  $("jobs-empty").hidden = jobs.length > 0;
  for (const j of jobs) {
    const link = el("a", j.id);
    link.href = "#/jobs/" + encodeURIComponent(j.id);
    const [rin, rout] = rates(j);
    const status = el("span", j.status, "status " + j.status.split(":")[0].toLowerCase());
    const cp = j.last_checkpoint
      ? "#" + j.last_checkpoint.id + " (" + duration(j.last_checkpoint.duration_ms) + ", " + bytes(j.last_checkpoint.size) + ")"
      : "-";
    const tr = row([link, status, j.kind + (j.target ? " " + j.target : ""), j.owner, duration(j.uptime_ms),
      number(rin), number(rout), time(j.watermark_ms), cp]);
    tr.title = j.statement;
    body.appendChild(tr);
  }
}

// ---- one job -----------------------------------------------------------------

/// Per-operator rates since the previous poll of this job: rows out/s and
/// the busiest subtask's busy and backpressured ms per second.
function operatorRates(job) {
  return sampled("graph:" + job.id, job, (prev, since) => computeOperatorRates(job, prev, since));
}

function computeOperatorRates(job, prev, since) {
  const out = new Map();
  for (const op of job.graph.operators) {
    const before = prev && prev.graph ? prev.graph.operators.find((o) => o.id === op.id) : null;
    const secs = before ? since : job.uptime_ms / 1000;
    const subs = op.subtasks.map((s) => {
      const b = before ? before.subtasks.find((x) => x.subtask === s.subtask) : null;
      const d = (f) => (b ? f(s) - f(b) : f(s));
      const span = d((x) => x.busy_ms + x.backpressured_ms + x.idle_ms) || 1;
      return {
        rowsOut: secs > 0 ? d((x) => x.rows_out) / secs : 0,
        busy: (1000 * d((x) => x.busy_ms)) / span,
        backpressured: (1000 * d((x) => x.backpressured_ms)) / span,
        idle: (1000 * d((x) => x.idle_ms)) / span,
      };
    });
    out.set(op.id, {
      rowsOut: sum(subs, (s) => s.rowsOut),
      busy: Math.max(0, ...subs.map((s) => s.busy)),
      backpressured: Math.max(0, ...subs.map((s) => s.backpressured)),
      subtasks: subs,
    });
  }
  return out;
}

async function loadJob(id) {
  let job;
  try {
    job = await json("/api/jobs/" + encodeURIComponent(id));
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    $("job-title").textContent = id;
    $("job-summary").textContent = e.message;
    return;
  }
  $("job-title").textContent = job.id + " — " + job.status;
  $("job-statement").textContent = job.statement;
  $("job-summary").textContent = "owner " + job.owner + " · up " + duration(job.uptime_ms) + " · rows read " +
    number(job.rows_read) + " · rows written " + number(job.rows_written) + " · late rows " + number(job.late_rows) +
    " · malformed " + number(job.malformed) + " · watermark " + time(job.watermark_ms);
  if (!job.graph) {
    $("graph").replaceChildren();
    return;
  }
  const r = operatorRates(job);
  drawGraph(job, r);
  if (selectedOperator !== null) showOperator(job, selectedOperator, r);
  const cps = $("checkpoints-table").tBodies[0];
  cps.replaceChildren();
  $("checkpoints-empty").hidden = job.graph.checkpoints.length > 0;
  for (const c of [...job.graph.checkpoints].reverse()) {
    cps.appendChild(row([c.id, time(c.completed_at_ms), duration(c.duration_ms), bytes(c.bytes), bytes(c.size), duration(c.alignment_ms)]));
  }
}

function pressure(ms) {
  if (ms >= 500) return "bp-high";
  if (ms >= 100) return "bp-mid";
  return "bp-ok";
}

/// Draws the operators in columns by their distance from a source, edges
/// from left to right.
function drawGraph(job, rates) {
  const svg = $("graph");
  const ops = job.graph.operators;
  const layer = new Map();
  const incoming = new Map(ops.map((o) => [o.id, []]));
  for (const e of job.graph.edges) incoming.get(e.to)?.push(e.from);
  const depth = (id, seen = new Set()) => {
    if (layer.has(id)) return layer.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const ins = incoming.get(id) || [];
    const d = ins.length ? 1 + Math.max(...ins.map((i) => depth(i, seen))) : 0;
    layer.set(id, d);
    return d;
  };
  ops.forEach((o) => depth(o.id));
  const W = 230, H = 84, GX = 70, GY = 26;
  const rows = new Map();
  const pos = new Map();
  for (const o of ops) {
    const l = layer.get(o.id);
    const k = rows.get(l) || 0;
    rows.set(l, k + 1);
    pos.set(o.id, { x: 10 + l * (W + GX), y: 10 + k * (H + GY) });
  }
  const width = 20 + (Math.max(0, ...layer.values()) + 1) * (W + GX);
  const height = 20 + Math.max(1, ...rows.values()) * (H + GY);
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.replaceChildren();
  const defs = document.createElementNS(SVG, "defs");
  const marker = document.createElementNS(SVG, "marker");
  for (const [k, v] of Object.entries({ id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto" })) marker.setAttribute(k, v);
  const tip = document.createElementNS(SVG, "path");
  tip.setAttribute("d", "M0,0 L10,5 L0,10 z");
  tip.setAttribute("class", "edge-tip");
  marker.appendChild(tip);
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const e of job.graph.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const path = document.createElementNS(SVG, "path");
    const mx = (x1 + x2) / 2;
    path.setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
    path.setAttribute("class", "edge");
    path.setAttribute("marker-end", "url(#arrow)");
    svg.appendChild(path);
    const label = svgText(mx, (y1 + y2) / 2 - 4, e.exchange, "edge-label");
    label.setAttribute("text-anchor", "middle");
    svg.appendChild(label);
  }
  for (const o of ops) {
    const p = pos.get(o.id);
    const r = rates.get(o.id);
    const g = document.createElementNS(SVG, "g");
    g.setAttribute("class", "operator " + pressure(r.backpressured) + (selectedOperator === o.id ? " selected" : ""));
    g.setAttribute("transform", `translate(${p.x},${p.y})`);
    g.setAttribute("data-operator", o.name);
    g.setAttribute("tabindex", "0");
    const rect = document.createElementNS(SVG, "rect");
    for (const [k, v] of Object.entries({ width: W, height: H, rx: 6 })) rect.setAttribute(k, v);
    g.appendChild(rect);
    const title = document.createElementNS(SVG, "title");
    title.textContent = o.name;
    g.appendChild(title);
    const name = o.name.length > 32 ? o.name.slice(0, 31) + "…" : o.name;
    g.appendChild(svgText(8, 18, name, "op-name"));
    g.appendChild(svgText(8, 38, "parallelism " + o.parallelism + " · " + number(r.rowsOut) + " rows/s", "op-line"));
    g.appendChild(svgText(8, 56, "busy " + Math.round(r.busy) + " · backpressured " + Math.round(r.backpressured) + " ms/s", "op-line"));
    const wm = o.subtasks.map((s) => s.watermark_ms).filter((w) => w !== null);
    g.appendChild(svgText(8, 74, "watermark " + (wm.length ? time(Math.min(...wm)) : "-"), "op-line"));
    const pick = () => {
      selectedOperator = o.id;
      showOperator(job, o.id, rates);
      for (const n of svg.querySelectorAll(".operator")) n.classList.remove("selected");
      g.classList.add("selected");
    };
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") pick(); });
    svg.appendChild(g);
  }
}

function svgText(x, y, text, cls) {
  const t = document.createElementNS(SVG, "text");
  t.setAttribute("x", x);
  t.setAttribute("y", y);
  t.setAttribute("class", cls);
  t.textContent = text;
  return t;
}

function showOperator(job, id, rates) {
  const op = job.graph.operators.find((o) => o.id === id);
  if (!op) return;
  $("operator-detail").hidden = false;
  $("operator-title").textContent = op.name + " — " + op.parallelism + " subtask" + (op.parallelism === 1 ? "" : "s");
  const body = $("subtasks-table").tBodies[0];
  body.replaceChildren();
  const r = rates.get(id);
  op.subtasks.forEach((s, i) => {
    const sr = r ? r.subtasks[i] : null;
    const tr = row([s.subtask, number(s.rows_in), number(s.rows_out), number(sr?.rowsOut), Math.round(sr?.busy ?? 0),
      Math.round(sr?.backpressured ?? 0), Math.round(sr?.idle ?? 0), bytes(s.bytes_in), bytes(s.bytes_out),
      time(s.watermark_ms), number(s.late_rows), s.commits ? duration(s.last_commit_ms) : "-",
      s.partition_lag.length ? number(sum(s.partition_lag, (p) => p.records)) : "-"]);
    tr.className = pressure(sr?.backpressured ?? 0);
    body.appendChild(tr);
  });
}

// ---- SQL editor ------------------------------------------------------------

function resultHead(columns) {
  const tr = document.createElement("tr");
  for (const c of columns) {
    const th = el("th", c.name);
    th.title = c.type;
    tr.appendChild(th);
  }
  $("sql-result").tHead.replaceChildren(tr);
  $("sql-result").tBodies[0].replaceChildren();
}

function resultRows(rows) {
  const body = $("sql-result").tBodies[0];
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const v of r) tr.appendChild(el("td", v === null ? "NULL" : v, v === null ? "null" : undefined));
    body.appendChild(tr);
  }
}

function showError(body, sql) {
  const box = $("sql-error");
  box.hidden = false;
  let text = body.error || "the statement failed";
  if (body.line) {
    text = "line " + body.line + ", column " + body.column + ": " + text;
    const line = sql.split("\n")[body.line - 1];
    if (line !== undefined) text += "\n" + line + "\n" + " ".repeat(Math.max(0, body.column - 1)) + "^";
  }
  box.textContent = text;
}

async function runSql() {
  const sql = $("sql-text").value;
  if (running) running.abort();
  const controller = new AbortController();
  running = controller;
  $("sql-error").hidden = true;
  $("sql-result").tHead.replaceChildren();
  $("sql-result").tBodies[0].replaceChildren();
  $("sql-status").textContent = "running…";
  $("sql-stop").hidden = false;
  let rowsSeen = 0;
  try {
    const res = await api("/api/sql", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sql }),
      signal: controller.signal,
    });
    const type = res.headers.get("Content-Type") || "";
    if (!type.startsWith("application/x-ndjson")) {
      const body = await res.json();
      if (!res.ok) {
        showError(body, sql);
        $("sql-status").textContent = "failed";
        return;
      }
      resultHead(body.columns);
      resultRows(body.rows);
      $("sql-status").textContent = body.rows.length + " row" + (body.rows.length === 1 ? "" : "s") + (body.truncated ? " (first rows only)" : "");
      return;
    }
    // A subscription: one JSON object per line, as the rows arrive.
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (msg.columns) {
          resultHead(msg.columns);
          $("sql-status").textContent = "streaming " + msg.job_id + " (live)…";
        } else if (msg.rows) {
          resultRows(msg.rows);
          rowsSeen += msg.rows.length;
          $("sql-status").textContent = "streaming: " + rowsSeen + " rows (live)…";
        } else if (msg.end !== undefined) {
          if (msg.end && msg.end.error) showError({ error: msg.end.error }, sql);
          $("sql-status").textContent = rowsSeen + " rows; " + (msg.end.error ? "failed" : msg.end);
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") {
      $("sql-status").textContent = rowsSeen + " rows; stopped";
    } else if (!(e instanceof Unauthorized)) {
      showError({ error: e.message }, sql);
      $("sql-status").textContent = "failed";
    }
  } finally {
    if (running === controller) {
      running = null;
      $("sql-stop").hidden = true;
    }
  }
}

// ---- catalog ---------------------------------------------------------------

const quote = (s) => "'" + String(s).replace(/'/g, "''") + "'";

async function loadCatalog() {
  const list = $("catalog-tables");
  list.replaceChildren();
  const tables = await query("SELECT table_schema, table_name, table_type, connector, comment FROM system.tables");
  for (const [schema, name, type, connector, comment] of tables.rows) {
    const li = el("li");
    const a = el("a", schema === "public" ? name : schema + "." + name);
    a.href = "#/catalog";
    a.addEventListener("click", (ev) => { ev.preventDefault(); showTable(schema, name, type, connector, comment); });
    li.appendChild(a);
    li.appendChild(el("span", " " + type.toLowerCase(), "muted"));
    list.appendChild(li);
  }
}

async function showTable(schema, name, type, connector, comment) {
  const full = schema === "public" ? name : schema + "." + name;
  $("catalog-title").textContent = full + " (" + type.toLowerCase() + (connector ? ", " + connector : "") + ")";
  $("catalog-title").classList.remove("muted");
  $("catalog-comment").textContent = comment || "";
  const [cols, tags, lineage] = await Promise.all([
    query("SELECT column_name, data_type, is_nullable, comment FROM system.columns WHERE table_schema = " + quote(schema) + " AND table_name = " + quote(name)),
    query("SELECT column_name, tag_name, tag_value FROM system.tags WHERE schema_name = " + quote(schema) + " AND table_name = " + quote(name)),
    query("SELECT source_table, source_column, target_table, target_column, derivation, job_id FROM system.lineage"),
  ]);
  const tagsOf = (c) => tags.rows.filter((t) => t[0] === c).map((t) => t[1] + "=" + t[2]).join(", ");
  const body = $("catalog-columns").tBodies[0];
  body.replaceChildren();
  for (const [c, t, n, cm] of cols.rows) body.appendChild(row([c, t, n, cm || "", tagsOf(c)]));
  const tableTags = tagsOf(null);
  if (tableTags) $("catalog-comment").textContent = (comment ? comment + " · " : "") + "tags: " + tableTags;
  const lb = $("catalog-lineage").tBodies[0];
  lb.replaceChildren();
  const mine = (t) => t === full || t === schema + "." + name;
  for (const [st, sc, tt, tc, d, j] of lineage.rows) {
    if (mine(st) || mine(tt)) lb.appendChild(row([st + "." + sc, tt + "." + tc, d, j || ""]));
  }
}

// ---- start -----------------------------------------------------------------

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const res = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ user: $("login-user").value, password: $("login-password").value }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    $("login-error").textContent = body.error || res.statusText;
    return;
  }
  $("login-password").value = "";
  if (!location.hash || location.hash === "#/login") location.hash = "#/jobs";
  route();
});

$("logout").addEventListener("click", async () => {
  if (running) running.abort();
  await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  showLogin();
});

$("sql-run").addEventListener("click", runSql);
$("sql-stop").addEventListener("click", () => running && running.abort());
$("sql-text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    runSql();
  }
});
window.addEventListener("hashchange", route);
route();
