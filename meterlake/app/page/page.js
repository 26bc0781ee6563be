// The page of the four answers: renders /api/answers, polls /api/version while live.
// Each answer shows its largest meters ([read] page_sensors) and the ones picked.
"use strict";

const POLL_MS = 1000;
// play runs the whole timeline in about PLAY_WHOLE_MS: each moment for PLAY_WHOLE_MS /
// moments, at least PLAY_MIN_MS (about a render) and at most PLAY_MS, or while it renders
const PLAY_WHOLE_MS = 60000;
const PLAY_MIN_MS = 60;
const PLAY_MS = 800;
// travel: null (live) or { kind: "as_of" | "at", value: text, label: text shown }
const state = { travel: null, rendered: null, busy: false, player: null, picked: [] };

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function fixed(value, decimals) {
  return value === null || value === undefined ? "" : Number(value).toFixed(decimals);
}

function shownNote(answer) {
  const shown = answer.view === "q3" ? answer.columns.length - 1 : answer.rows.length;
  return answer.sensor_count > shown
    ? ` · ${shown} of ${answer.sensor_count.toLocaleString("en")} meters: the largest and those picked`
    : "";
}

function asOfLine(section, answer) {
  const p = section.querySelector(".as-of");
  p.textContent = (answer.as_of === null
    ? `${answer.table} version ${answer.version} is empty`
    : `as of ${answer.as_of} (${answer.table} version ${answer.version})`) + shownNote(answer);
  p.dataset.asOf = answer.as_of ?? "";
  p.dataset.version = answer.version;
}

function barTable(view, answer, column, decimals) {
  const section = document.getElementById(view);
  asOfLine(section, answer);
  const tbody = section.querySelector("tbody");
  const top = Math.max(0, ...answer.rows.map((r) => r[column]));
  tbody.replaceChildren(...answer.rows.map((row) => {
    const tr = el("tr", { "data-sensor": row.sensor_id, "data-value": String(row[column]) });
    tr.append(idCell("td", row.sensor_id), el("td", {}, fixed(row[column], decimals)));
    const bar = el("td", { class: "bar" });
    const fill = el("div");
    fill.style.width = top > 0 ? `${(100 * Math.max(0, row[column])) / top}%` : "0";
    bar.append(fill);
    tr.append(bar);
    return tr;
  }));
}

function halfHours(answer) {
  const section = document.getElementById("q3");
  asOfLine(section, answer);
  const sensors = answer.columns.slice(1);
  const table = document.getElementById("q3-table");
  const head = el("tr");
  head.append(el("th", {}, "period"), ...sensors.map((s) => idCell("th", s)));
  table.querySelector("thead").replaceChildren(head);
  table.querySelector("tbody").replaceChildren(...answer.rows.map((row, i) => {
    const tr = el("tr", { "data-period": answer.periods[i] });
    tr.append(el("td", {}, answer.periods[i]));
    for (const s of sensors) {
      const v = row[s];
      tr.append(el("td", { "data-sensor": s, "data-value": v === null ? "" : String(v),
        class: v === null ? "empty" : "" }, v === null ? "–" : fixed(v, 3)));
    }
    return tr;
  }));
  const traces = sensors.map((s) => ({
    type: "scatter", mode: "lines+markers", name: plotText(shortId(s)), meta: plotText(s),
    hovertemplate: "%{meta}<br>%{x}: %{y:.3f} kWh<extra></extra>",
    x: answer.periods.map((p) => p.slice(11)), y: answer.rows.map((r) => r[s]),
  }));
  Plotly.react("q3-chart", traces, {
    margin: { t: 10, r: 10, b: 60, l: 50 }, xaxis: { type: "category", tickangle: -45, nticks: 13, automargin: true },
    yaxis: { title: { text: "kWh" } },
    legend: { orientation: "h", y: -0.3 },
  }, { displayModeBar: false, responsive: true });
}

function costs(answer, bands) {
  const section = document.getElementById("q4");
  asOfLine(section, answer);
  const rows = bands ? bands.rows : [];
  const names = [];
  const prices = {};
  for (const r of [...rows].sort((a, b) => b.price - a.price)) {
    if (!names.includes(r.band)) { names.push(r.band); prices[r.band] = r.price; }
  }
  const split = {};
  for (const r of rows) (split[r.sensor_id] ??= {})[r.band] = r.cost_eur;
  const head = el("tr");
  head.append(el("th", {}, "sensor"), el("th", {}, "cost"),
    ...names.map((b) => el("th", { title: `${prices[b].toFixed(4)} EUR/kWh` },
      b.replace("_", " "))));
  section.querySelector("thead").replaceChildren(head);
  section.querySelector("tbody").replaceChildren(...answer.rows.map((row) => {
    const tr = el("tr", { "data-sensor": row.sensor_id, "data-value": String(row.cost_eur) });
    tr.append(idCell("td", row.sensor_id), el("td", {}, fixed(row.cost_eur, 4)));
    for (const b of names) {
      const v = (split[row.sensor_id] ?? {})[b] ?? 0;
      tr.append(el("td", { "data-band": b, "data-value": String(v) }, fixed(v, 4)));
    }
    return tr;
  }));
  const sensors = answer.rows.map((r) => r.sensor_id);
  const x = sensors.map(plotText);
  const bar = { type: "bar", x, customdata: x, hovertemplate: "%{customdata}<br>%{y:.4f} EUR" };
  const traces = names.length
    ? names.map((b) => ({ ...bar, name: plotText(`${b.replace("_", " ")} (${prices[b].toFixed(4)} EUR/kWh)`),
      y: sensors.map((s) => (split[s] ?? {})[b] ?? 0) }))
    : [{ ...bar, name: "cost", y: answer.rows.map((r) => r.cost_eur) }];
  Plotly.react("q4-chart", traces, {
    barmode: "relative", margin: { t: 10, r: 10, b: 40, l: 50 }, xaxis: idAxis(sensors),
    yaxis: { title: { text: "EUR" } }, legend: { orientation: "h" },
  }, { displayModeBar: false, responsive: true });
  const total = (s) => Object.values(split[s] ?? {}).reduce((a, b) => a + b, 0);
  const off = answer.rows.filter((r) => Math.abs(total(r.sensor_id) - r.cost_eur) > 1e-6);
  document.getElementById("bands-note").textContent = !bands
    ? ""
    : `Bands: the silver pieces of the day (silver version ${bands.silver_version ?? "none"}, `
      + `as when day_cost version ${answer.version} was written)`
      + (off.length ? `; silver is ahead of gold for ${off.map((r) => r.sensor_id).join(", ")}` : "");
}

function showError(message) {
  const box = document.getElementById("error");
  box.hidden = !message;
  box.textContent = message || "";
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

async function render() {
  const params = new URLSearchParams();
  if (state.travel !== null) params.set(state.travel.kind, state.travel.value);
  for (const s of state.picked) params.append("sensor", s);
  const query = params.toString() ? `?${params}` : "";
  let doc;
  try {
    doc = await getJson(`/api/answers${query}`);
  } catch (error) {
    showError(error.message);
    return;
  }
  showError(Object.values(doc.errors).join("; "));
  document.getElementById("cost-note").textContent = doc.cost_note;
  const a = doc.answers;
  if (a.q1) barTable("q1", a.q1, "energy_kwh", 3);
  if (a.q2) barTable("q2", a.q2, "energy_kwh", 3);
  if (a.q3) halfHours(a.q3);
  if (a.q4) costs(a.q4, doc.bands);
  const shown = Object.fromEntries(Object.entries(a).map(([v, x]) => [x.table, x.version]));
  const mode = document.getElementById("mode");
  const label = state.travel && (state.travel.kind === "at" ? "data at" : "as written at");
  mode.textContent = doc.live ? "live" : `${label} ${state.travel.label}`;
  mode.className = doc.live ? "live" : "travel";
  document.getElementById("versions").textContent = Object.entries(shown)
    .map(([t, v]) => `${t} v${v}`).join(" · ");
  state.rendered = JSON.stringify(doc.versions);
  document.body.dataset.mode = doc.live ? "live" : "travel";
  document.body.dataset.shown = JSON.stringify(shown);
  await renderPanels(query);
  document.body.dataset.state = "ready";
}

async function loadTimeline() {
  const moments = await getJson("/api/timeline");
  const select = document.getElementById("travel-moment");
  const chosen = select.value;
  const options = [el("option", { value: "" }, "live")];
  for (const m of [...moments].reverse()) {
    options.push(el("option", { value: m.at, "data-versions": JSON.stringify(m.versions) },
      m.label));
  }
  select.replaceChildren(...options);
  select.value = chosen;
  if (select.value !== chosen) select.value = "";
}

async function travel(kind, value, label = value) {
  state.travel = value ? { kind, value, label } : null;
  await render();
}

function stopPlaying() {
  if (state.player !== null) clearTimeout(state.player.timer);
  state.player = null;
  document.getElementById("travel-play").textContent = "play";
}

function play() {
  if (state.player !== null) { stopPlaying(); return; }
  const select = document.getElementById("travel-moment");
  const moments = [...select.options].map((o) => o.value).filter(Boolean).reverse();
  const every = Math.min(PLAY_MS, Math.max(PLAY_MIN_MS, PLAY_WHOLE_MS / moments.length));
  const player = { timer: null };
  let next = 0;
  document.getElementById("travel-play").textContent = "pause";
  const step = async () => {
    if (next >= moments.length) { stopPlaying(); return; }
    const started = performance.now();
    select.value = moments[next];
    next += 1;
    await travel("at", select.value, select.selectedOptions[0].text);
    // the next moment once this one is drawn: renders never overlap nor queue up
    if (state.player === player) {
      player.timer = setTimeout(step, Math.max(0, every - (performance.now() - started)));
    }
  };
  state.player = player;
  step();
}

async function poll() {
  if (state.busy) return;
  state.busy = true;
  try {
    const { versions } = await getJson("/api/version");
    if (JSON.stringify(versions) !== state.rendered) {
      await loadTimeline();
      if (state.travel === null) await render();
      else state.rendered = JSON.stringify(versions);
    }
  } catch (error) {
    showError(`lost the server: ${error.message}`);
  } finally {
    state.busy = false;
  }
}

function showPicked() {
  const box = document.getElementById("picked");
  box.replaceChildren(...state.picked.map((s) => {
    const chip = el("button", { type: "button", class: "chip", "data-sensor": s,
      title: `stop showing ${s}` }, `${shortId(s)} ×`);
    chip.addEventListener("click", () => {
      state.picked = state.picked.filter((x) => x !== s);
      showPicked();
      render();
    });
    return chip;
  }));
}

async function suggest(prefix) {
  try {
    const { sensors } = await getJson(`/api/sensors?prefix=${encodeURIComponent(prefix)}`);
    document.getElementById("pick-options").replaceChildren(
      ...sensors.map((s) => el("option", { value: s })));
  } catch (error) {
    showError(error.message);
  }
}

function start() {
  const pick = document.getElementById("pick-sensor");
  pick.addEventListener("input", () => suggest(pick.value));
  document.getElementById("pick").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = pick.value.trim();
    if (id && !state.picked.includes(id)) state.picked.push(id);
    pick.value = "";
    showPicked();
    render();
  });
  document.getElementById("travel-moment").addEventListener("change", (e) => {
    stopPlaying();
    travel("at", e.target.value, e.target.selectedOptions[0].text);
  });
  document.getElementById("travel").addEventListener("submit", (e) => {
    e.preventDefault();
    stopPlaying();
    const text = document.getElementById("travel-time").value.trim();
    document.getElementById("travel-moment").value = "";
    travel(document.getElementById("travel-kind").value, text);
  });
  document.getElementById("travel-play").addEventListener("click", play);
  document.getElementById("travel-live").addEventListener("click", () => {
    stopPlaying();
    document.getElementById("travel-moment").value = "";
    document.getElementById("travel-time").value = "";
    travel("as_of", "");
  });
  loadTimeline().then(render).catch((error) => showError(error.message));
  setInterval(poll, POLL_MS);
}

start();
