// The panels beyond the four answers: plans compared (each meter's saving against its
// contract), the bill so far beside the month ahead, meter health (silent meters stand
// out). Renders /api/panels with the page's travel and picked meters (page.js calls
// renderPanels). Every number cell carries its full-precision value in data-value.
"use strict";

const CHART_CONFIG = { displayModeBar: false, responsive: true };

function numberCell(column, value, decimals) {
  const missing = value === null || value === undefined;
  return el("td", { "data-column": column, "data-value": missing ? "" : String(value),
    class: missing ? "empty" : "" }, missing ? "–" : fixed(value, decimals));
}

function textCell(column, text) {
  return el("td", { "data-column": column, title: text ?? "" }, text ?? "");
}

function panelLines(view, panel, error) {
  const section = document.getElementById(view);
  const shown = panel ? panel.rows.length : 0;
  const count = panel && panel.sensor_count > shown
    ? ` · ${shown} of ${panel.sensor_count.toLocaleString("en")} meters: those that stand out and those picked`
    : "";
  section.querySelector(".note").textContent = panel ? panel.notes.join(" · ") + count : "";
  const problem = section.querySelector(".panel-error");
  problem.hidden = !error;
  problem.textContent = error || "";
  section.dataset.state = panel ? "ready" : "missing";
}

function plansPanel(panel) {
  const section = document.getElementById("plans");
  section.querySelector("tbody").replaceChildren(...panel.rows.map((row) => {
    const tr = el("tr", { "data-sensor": row.sensor_id,
      class: row.saving_eur > 1e-9 ? "saves" : "" });
    tr.append(idCell("td", row.sensor_id), textCell("contract", row.contract),
      numberCell("contract_eur", row.contract_eur, 4), textCell("cheapest", row.cheapest),
      numberCell("cheapest_eur", row.cheapest_eur, 4), numberCell("saving_eur", row.saving_eur, 4));
    return tr;
  }));
  const ids = panel.rows.map((r) => r.sensor_id);
  Plotly.react("plans-chart", [{
    type: "bar", x: ids.map(plotText), y: panel.rows.map((r) => r.saving_eur), marker: { color: "#2a9d8f" },
    customdata: panel.rows.map((r) => [plotText(r.sensor_id), plotText(r.contract), plotText(r.cheapest)]),
    hovertemplate: "%{customdata[0]}<br>%{customdata[1]} → %{customdata[2]}: %{y:.4f} EUR less<extra></extra>",
  }], {
    margin: { t: 10, r: 10, b: 40, l: 60 }, xaxis: idAxis(ids), showlegend: false,
    yaxis: { title: { text: "EUR saved this month" }, rangemode: "tozero" },
  }, CHART_CONFIG);
}

const BILL_COLUMNS = [["days", 0], ["energy_kwh", 3], ["energy_eur", 4], ["power_eur", 4],
  ["vat_eur", 4], ["total_eur", 4], ["kwh_projected", 3], ["cost_projected_eur", 4]];
const BILL_TERMS = [["energy_eur", "energy", "#457b9d"], ["power_eur", "power", "#a8dadc"],
  ["vat_eur", "VAT", "#e9c46a"]];

function billPanel(panel) {
  const section = document.getElementById("bill");
  section.querySelector("tbody").replaceChildren(...panel.rows.map((row) => {
    const tr = el("tr", { "data-sensor": row.sensor_id });
    tr.append(idCell("td", row.sensor_id),
      ...BILL_COLUMNS.map(([column, decimals]) => numberCell(column, row[column], decimals)));
    return tr;
  }));
  const ids = panel.rows.map((r) => r.sensor_id);
  const x = ids.map(plotText);
  const traces = BILL_TERMS.map(([column, name, color]) => ({
    type: "bar", name, x, y: panel.rows.map((r) => r[column]), marker: { color }, customdata: x,
    hovertemplate: `%{customdata}<br>${name} so far: %{y:.4f} EUR<extra></extra>`,
  }));
  traces.push({
    type: "scatter", mode: "markers", name: "energy term, projected to the end of the month", x,
    y: panel.rows.map((r) => r.cost_projected_eur), customdata: x,
    marker: { symbol: "diamond", size: 10, color: "#e76f51" },
    hovertemplate: "%{customdata}<br>energy projected: %{y:.4f} EUR<extra></extra>",
  });
  Plotly.react("bill-chart", traces, {
    barmode: "relative", margin: { t: 10, r: 10, b: 40, l: 60 }, xaxis: idAxis(ids),
    yaxis: { title: { text: "EUR this month" } }, legend: { orientation: "h" },
  }, CHART_CONFIG);
}

function minutes(seconds) {
  return seconds === null || seconds === undefined ? "–" : `${(seconds / 60).toFixed(1)} min`;
}

function healthPanel(panel) {
  const section = document.getElementById("health");
  const alert = section.querySelector(".alert");
  alert.hidden = panel.silent_count === 0;
  alert.textContent = panel.silent_count === 1 ? "1 silent meter"
    : `${panel.silent_count.toLocaleString("en")} silent meters`;
  section.querySelector("tbody").replaceChildren(...panel.rows.map((row) => {
    const tr = el("tr", { "data-sensor": row.sensor_id, "data-silent": String(row.silent),
      class: row.silent ? "silent" : "" });
    const status = el("td", { "data-column": "silent" });
    status.append(el("span", { class: row.silent ? "badge silent" : "badge ok" },
      row.silent ? "silent" : "reporting"));
    tr.append(idCell("td", row.sensor_id), textCell("last_reading", row.last_reading), status,
      el("td", { "data-column": "cadence_s", "data-value": String(row.cadence_s ?? "") },
        minutes(row.cadence_s)),
      numberCell("readings_today", row.readings_today, 0),
      el("td", { "data-column": "longest_gap_today_s",
        "data-value": String(row.longest_gap_today_s ?? "") }, minutes(row.longest_gap_today_s)),
      el("td", { "data-column": "quarantined_today", "data-value": String(row.quarantined_today),
        title: row.quarantined_by_reason }, String(row.quarantined_today)));
    return tr;
  }));
}

const PANELS = { plans: plansPanel, bill: billPanel, health: healthPanel };

async function renderPanels(query) {
  let doc;
  try {
    doc = await getJson(`/api/panels${query}`);
  } catch (error) {
    for (const view of Object.keys(PANELS)) panelLines(view, null, error.message);
    return;
  }
  for (const [view, draw] of Object.entries(PANELS)) {
    const panel = doc.panels[view];
    const error = [doc.errors[view], view === "bill" ? doc.errors.projection : null]
      .filter(Boolean).join("; ");
    if (panel) draw(panel);
    panelLines(view, panel, error);
  }
}
