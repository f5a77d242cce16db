// baleen view: the page asks the server for one page of rows at a time (/api/records) and
// keeps every filter in its own address, so a link (or a reload) shows the same rows.
// All text from records goes in through textContent, never as HTML.
"use strict";

const FILTERS = ["outcome", "round", "run", "reason", "tag", "change", "min_score", "max_score", "q", "sort"];
const LIMIT = 50;
const OUTCOME_LABEL = { kept: "kept", rejected: "rejected", error: "error" };
const CHANGE_LABEL = { new: "new", kept_again: "kept again", dropped: "dropped" };

const state = { filters: {}, offset: 0, rec: null, total: 0 };
let summary = null;
let requestSeq = 0;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const score = (s) => (s === null || s === undefined ? "–" : Number.isInteger(s) ? String(s) : s.toFixed(2));

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ---------------------------------------------------------------- address <-> state

function readAddress() {
  const params = new URLSearchParams(location.search);
  state.filters = {};
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value) state.filters[name] = value;
  }
  state.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  state.rec = params.has("rec") ? parseInt(params.get("rec"), 10) : null;
}

function query(extra) {
  const params = new URLSearchParams();
  for (const name of FILTERS) if (state.filters[name]) params.set(name, state.filters[name]);
  for (const [key, value] of Object.entries(extra || {})) if (value !== null && value !== "") params.set(key, value);
  return params;
}

function writeAddress() {
  const params = query({ offset: state.offset || null, rec: state.rec });
  const search = params.toString();
  history.replaceState(null, "", search ? "?" + search : location.pathname);
}

function setFilters(changes) {
  for (const [name, value] of Object.entries(changes)) {
    if (value === "" || value === null || value === undefined) delete state.filters[name];
    else state.filters[name] = String(value);
  }
  state.offset = 0;
  syncControls();
  loadRecords();
}

// ---------------------------------------------------------------- controls

function fillSelect(id, entries, allLabel) {
  const select = $(id);
  select.replaceChildren(el("option", { value: "" }, allLabel));
  for (const [value, label] of entries) select.append(el("option", { value }, label));
}

function buildControls() {
  const f = summary.facets;
  const rounds = summary.kind === "rounds";
  fillSelect("round", summary.rounds.map((r) => [r.label, r.label]), "all rounds");
  fillSelect("run", summary.runs.filter((r) => r.has_records).map((r) => [r.name, r.name]), "all runs");
  fillSelect("reason", Object.entries(f.reason).map(([k, n]) => [k, `${k} (${fmt(n)})`]), "any reason");
  fillSelect("tag", Object.entries(f.tag).map(([k, n]) => [k, `${k} (${fmt(n)})`]), "any tag");
  fillSelect("change", Object.entries(f.change).map(([k, n]) => [k, `${CHANGE_LABEL[k]} (${fmt(n)})`]), "any");
  for (const node of document.querySelectorAll('[data-for="round"], [data-for="change"]')) node.hidden = !rounds;
  for (const node of document.querySelectorAll("#outcome button")) {
    const n = node.dataset.value ? f.outcome[node.dataset.value] : summary.records;
    node.append(el("span", { class: "n" }, fmt(n)));
  }
}

function syncControls() {
  for (const name of ["round", "run", "reason", "tag", "change", "sort", "min_score", "max_score", "q"]) {
    const control = $(name);
    const value = state.filters[name] || "";
    if (control.tagName === "SELECT" && value && ![...control.options].some((o) => o.value === value)) {
      control.append(el("option", { value }, value));  // a value from a link the data lacks
    }
    if (control !== document.activeElement || control.tagName === "SELECT") control.value = value;
  }
  for (const button of document.querySelectorAll("#outcome button")) {
    button.classList.toggle("on", (state.filters.outcome || "") === button.dataset.value);
  }
}

function wireControls() {
  for (const button of document.querySelectorAll("#outcome button")) {
    button.addEventListener("click", () => setFilters({ outcome: button.dataset.value }));
  }
  for (const name of ["round", "run", "reason", "tag", "change", "sort"]) {
    $(name).addEventListener("change", (event) => setFilters({ [name]: event.target.value }));
  }
  for (const name of ["min_score", "max_score"]) {
    $(name).addEventListener("change", (event) => setFilters({ [name]: event.target.value }));
  }
  let timer = null;
  const search = $("q");
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => setFilters({ q: search.value.trim() }), 350);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      clearTimeout(timer);
      setFilters({ q: search.value.trim() });
    }
  });
  $("clear").addEventListener("click", () => {
    state.filters = {};
    state.offset = 0;
    syncControls();
    loadRecords();
  });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea")) return;
    if (event.key === "j" || event.key === "ArrowDown") step(1);
    else if (event.key === "k" || event.key === "ArrowUp") step(-1);
    else return;
    event.preventDefault();
  });
}

function page(direction) {
  const next = state.offset + direction * LIMIT;
  if (next < 0 || next >= state.total) return;
  state.offset = next;
  loadRecords();
}

function step(direction) {
  const rows = [...document.querySelectorAll("#records tbody tr[data-row]")];
  if (!rows.length) return;
  const at = rows.findIndex((tr) => Number(tr.dataset.row) === state.rec);
  const next = rows[Math.min(rows.length - 1, Math.max(0, at + direction))];
  select(Number(next.dataset.row));
  next.scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------- overview

function countLink(n, filters, cls) {
  if (!n) return el("span", { class: "zero" }, fmt(n));
  return el("a", { href: "#", class: cls, onclick: (e) => { e.preventDefault(); setFilters(filters); } }, fmt(n));
}

function renderRuns() {
  const head = el("tr", {}, el("th", {}, "Run"), el("th", {}, "Stage"),
    el("th", {}, "Status"), el("th", { class: "num" }, "Kept"), el("th", { class: "num" }, "Rejected"),
    el("th", { class: "num" }, "Errors"), el("th", {}, "Top reasons"), el("th", { class: "num" }, "Tokens"));
  const body = summary.runs.map((run) => {
    const base = { run: run.name, round: "", reason: "", change: "" };
    const cells = run.has_records
      ? [countLink(run.kept, { ...base, outcome: "kept" }, "kept"),
         countLink(run.rejected, { ...base, outcome: "rejected" }, "rejected"),
         countLink(run.errors, { ...base, outcome: "error" }, "error")]
      : [el("span", { class: "zero" }, "–"), el("span", { class: "zero" }, "–"), el("span", { class: "zero" }, "–")];
    const reasons = Object.entries(run.reasons).slice(0, 3).map(([k, n]) =>
      el("a", { href: "#", class: "chip", onclick: (e) => { e.preventDefault(); setFilters({ ...base, outcome: "", reason: k }); } },
        `${k} ${fmt(n)}`));
    return el("tr", {}, el("td", { class: "name" }, run.has_records
        ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); setFilters({ ...base, outcome: "" }); } }, run.name)
        : run.name),
      el("td", {}, run.stage), el("td", {}, el("span", { class: `status ${run.status}` }, run.status)),
      ...cells.map((c) => el("td", { class: "num" }, c)),
      el("td", {}, el("div", { class: "reasons" }, run.bad_lines ? el("span", { class: "warn" }, `${run.bad_lines} unreadable `) : null,
        reasons)),
      el("td", { class: "num" }, run.tokens ? fmt(run.tokens) : "–"));
  });
  $("runs").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
}

function renderDiffs() {
  if (summary.kind !== "rounds" || !summary.diffs.length) return;
  $("diff-card").hidden = false;
  const lineage = Object.fromEntries(summary.rounds.map((r) => [r.label, r.lineage]));
  const head = el("tr", {}, el("th", {}, "Round"), el("th", {}, "vs"), el("th", { class: "num" }, "Kept"),
    el("th", { class: "num" }, "New"), el("th", { class: "num" }, "Dropped"), el("th", { class: "num" }, "Kept again"));
  const body = summary.diffs.map((d) => {
    const base = { round: d.round, run: d.run, outcome: "", reason: "" };
    const rater = (lineage[d.round] || {}).rater;
    return el("tr", {}, el("td", { class: "name", title: rater ? `rated by ${rater}` : null }, d.run),
      el("td", { class: "muted" }, d.previous_run),
      el("td", { class: "num" }, fmt(d.kept)),
      el("td", { class: "num" }, countLink(d.new, { ...base, change: "new" }, "new")),
      el("td", { class: "num" }, countLink(d.dropped, { ...base, change: "dropped" }, "dropped")),
      el("td", { class: "num" }, countLink(d.kept_again, { ...base, change: "kept_again" }, "kept_again")));
  });
  $("diffs").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
}

// ---------------------------------------------------------------- records

function badge(kind, text) {
  return el("span", { class: `badge ${kind}` }, text);
}

async function loadRecords() {
  writeAddress();
  const seq = ++requestSeq;
  const params = query({ offset: state.offset, limit: LIMIT });
  document.body.dataset.state = "loading";
  let data;
  try {
    data = await getJSON("/api/records?" + params);
  } catch (error) {
    if (seq !== requestSeq) return;
    $("count").textContent = "Error: " + error.message;
    $("records").tBodies[0].replaceChildren();
    document.body.dataset.state = "error";
    return;
  }
  if (seq !== requestSeq) return;  // a newer request is on its way
  state.total = data.total;
  renderRecords(data);
  document.body.dataset.state = "ready";
}

function renderRecords(data) {
  const rounds = summary.kind === "rounds";
  const first = data.total ? data.offset + 1 : 0;
  const last = data.offset + data.rows.length;
  $("count").textContent = data.total
    ? `${fmt(first)}–${fmt(last)} of ${fmt(data.total)} records`
    : "No records match these filters";
  $("prev").disabled = data.offset <= 0;
  $("next").disabled = last >= data.total;
  const rows = data.rows.map((r) => el("tr", {
      data: { row: r.row, outcome: r.outcome },
      class: r.row === state.rec ? "selected" : null,
      onclick: () => select(r.row),
    },
    el("td", { class: "name" }, r.run),
    el("td", {}, badge(r.outcome, OUTCOME_LABEL[r.outcome])),
    el("td", { class: "reason" }, r.reason || ""),
    el("td", { class: "num" }, score(r.score)),
    el("td", { class: "tag" }, r.tag || ""),
    rounds ? el("td", {}, r.change ? badge(r.change, CHANGE_LABEL[r.change]) : "") : el("td", { hidden: true }),
    el("td", { class: "text" }, r.header ? el("span", { class: "header" }, r.header) : null, r.text)));
  const table = $("records");
  table.classList.toggle("no-change", !rounds);
  table.tBodies[0].replaceChildren(...rows);
  table.dataset.query = query().toString();
  table.dataset.total = data.total;
  if (state.rec !== null && !document.querySelector("#detail[data-row]")) select(state.rec);
}

// ---------------------------------------------------------------- one record

async function select(row) {
  state.rec = row;
  writeAddress();
  for (const tr of document.querySelectorAll("#records tbody tr")) {
    tr.classList.toggle("selected", Number(tr.dataset.row) === row);
  }
  let data;
  try {
    data = await getJSON("/api/record?row=" + row);
  } catch (error) {
    $("detail").replaceChildren(el("p", { class: "hint" }, error.message));
    return;
  }
  if (state.rec !== row) return;
  renderDetail(data);
}

function fact(label, value) {
  if (value === null || value === undefined || value === "") return null;
  return [el("dt", {}, label), el("dd", {}, value)];
}

function renderDetail(d) {
  const rec = d.record || {};
  const meta = rec.meta && typeof rec.meta === "object" ? rec.meta : {};
  const cur = meta.curation && typeof meta.curation === "object" ? meta.curation : null;
  const parts = [];

  parts.push(el("div", { class: "title" }, badge(d.outcome, OUTCOME_LABEL[d.outcome]),
    d.change ? badge(d.change, CHANGE_LABEL[d.change]) : null,
    el("span", { class: "run" }, d.run),
    el("code", { class: "id", title: "record id" }, d.id || "")));

  const url = typeof meta.url === "string" && /^https?:\/\//.test(meta.url)
    ? el("a", { href: meta.url, target: "_blank", rel: "noreferrer noopener" }, meta.url) : meta.url;
  parts.push(el("dl", { class: "facts" },
    fact("Score", d.score === null ? null
      : el("span", {}, el("b", { class: "big" }, score(d.score)),
          d.score_expected !== null ? el("span", { class: "muted" }, `  expected ${d.score_expected.toFixed(2)}`) : null)),
    fact(d.outcome === "error" ? "Error" : "Reason", d.reason),
    fact("Tag", d.tag), fact("Source", rec.source), fact("Stage", d.stage),
    fact("Header", meta.header), fact("URL", url), fact("Document", meta.doc_id),
    fact("Segment", meta.segment !== undefined ? String(meta.segment) : null),
    fact("Model", meta.model), fact("Template", meta.template), fact("Finish", meta.finish),
    fact("Rater", cur ? cur.rater : null)));

  if (typeof rec.reason === "string" && rec.reason) {
    parts.push(el("section", { class: "rating" }, el("h3", {}, "Rubric reasoning"), el("p", { class: "pre" }, rec.reason)));
  }
  if (cur && Array.isArray(cur.problems) && cur.problems.length) {
    parts.push(el("p", { class: "muted" }, `Rating problems: ${cur.problems.join(", ")} (attempts: ${cur.attempts})`));
  }

  if (Array.isArray(rec.messages) && rec.messages.length) {
    parts.push(el("section", { class: "conversation" }, el("h3", {}, `Conversation · ${rec.messages.length} turns`),
      rec.messages.map((m) => el("div", { class: `msg ${m.role || ""}` },
        el("div", { class: "role" }, m.role || "?"), el("div", { class: "pre" }, m.content || "")))));
  }

  if (d.outcome === "error") {
    const input = typeof rec.input === "string" ? rec.input : JSON.stringify(rec.input, null, 2);
    parts.push(el("section", { class: "error-box" }, el("h3", {}, "Error"),
      el("p", { class: "pre" }, rec.error || ""),
      rec.status ? el("p", {}, `HTTP status ${rec.status}`) : null,
      el("h3", {}, "Input"), el("p", { class: "pre" }, input || ""),
      rec.last_response ? [el("h3", {}, "Last response"), el("p", { class: "pre" }, rec.last_response)] : null));
  }
  if (typeof meta.raw === "string" && meta.raw) {
    parts.push(el("details", {}, el("summary", {}, "Model's raw text"), el("pre", {}, meta.raw)));
  }
  parts.push(el("details", {}, el("summary", {}, "Stored line (JSON)"), el("pre", {}, JSON.stringify(rec, null, 2))));

  const detail = $("detail");
  detail.replaceChildren(...parts);
  detail.dataset.row = d.row;
  detail.scrollTop = 0;
}

// ---------------------------------------------------------------- start

async function start() {
  readAddress();
  try {
    summary = await getJSON("/api/runs");
  } catch (error) {
    $("count").textContent = "Cannot load the runs: " + error.message;
    document.body.dataset.state = "error";
    return;
  }
  document.title = `baleen view · ${summary.folder.split("/").pop()}`;
  $("folder").textContent = summary.folder;
  $("totals").textContent = `${fmt(summary.records)} records · ${summary.runs.length} runs` +
    (summary.kind === "rounds" ? ` · ${summary.rounds.length} rounds` : "") +
    ` · indexed in ${summary.index_seconds.toFixed(2)} s`;
  buildControls();
  renderRuns();
  renderDiffs();
  wireControls();
  syncControls();
  loadRecords();
}

start();
