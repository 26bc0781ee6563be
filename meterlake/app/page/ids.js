// Meter ids are untrusted text: whoever writes to the topic names the meters.
// - in the DOM they are only ever textContent or attribute values (never HTML);
// - plotly reads a subset of HTML in legends, tick labels and hover labels (<b>,
//   <a href>, <br>...), so every id given to a chart goes through plotText, which
//   writes &, < and > as entities (plotly shows them as the characters);
// - long ids are shortened (ID_CHARS) where space is short, the full id on hover:
//   cells by CSS (span.id, title), charts by shortId in ticks and legends and the
//   full id in the hover label.
"use strict";

const ID_CHARS = 20;

function shortId(id) {
  const chars = Array.from(String(id)); // by code point: no half of a surrogate pair
  return chars.length > ID_CHARS ? `${chars.slice(0, ID_CHARS - 1).join("")}…` : chars.join("");
}

function plotText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// A table cell holding a meter id: the literal id, cut by CSS (span.id), whole on hover.
function idCell(tag, id, attrs = {}) {
  const cell = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) cell.setAttribute(k, v);
  const text = document.createElement("span");
  text.className = "id";
  text.title = id;
  text.textContent = id;
  cell.append(text);
  return cell;
}

// A category axis of meter ids: each id's category is its escaped full text, the
// tick shows it shortened; the hover template shows %{customdata}, the full id.
function idAxis(ids) {
  return { type: "category", tickvals: ids.map(plotText), ticktext: ids.map((s) => plotText(shortId(s))),
    automargin: true };
}
