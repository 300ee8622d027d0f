// ghgnet operators' dashboard: station table and SVG plots drawn here (no library, no CDN).
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const COLORS = ["#1d3557", "#e76f51", "#2a9d8f", "#8d5fd3", "#f4a261", "#457b9d"];

async function getJSON(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function dur(s) {
  if (s === null || s === undefined) return "-";
  // a negative age: the station's times are ahead of central's clock (a clock error, or a demo
  // running at --speed)
  if (s < 0) return dur(-s) + " ahead";
  if (s < 120) return s.toFixed(0) + " s";
  if (s < 7200) return (s / 60).toFixed(0) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toISOString().slice(5, 16).replace("T", " ");
}

// A line/point plot in a new <svg class="plot">. series: [{name, x: [ms], y: [v]}];
// opts: {kind, station, band: [lo, hi], points: bool, lines: bool (with points: joined too)}.
// With a band, points outside it get the class "outside".
function plotXY(series, opts) {
  const W = 460, H = 220, L = 52, R = 10, T = 10, B = 28;
  const svg = svgEl("svg", {class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
                            "data-kind": opts.kind, "data-station": opts.station});
  const xs = [], ys = [];
  for (const s of series) s.x.forEach((x, i) => { if (s.y[i] !== null) { xs.push(x); ys.push(s.y[i]); } });
  if (opts.band) ys.push(opts.band[0], opts.band[1]);
  if (xs.length === 0) {
    const t = svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"});
    t.textContent = "no data";
    svg.appendChild(t);
    return svg;
  }
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x1 === x0) { x0 -= 3600e3; x1 += 3600e3; }
  if (opts.points) { const px = (x1 - x0) * 0.03; x0 -= px; x1 += px; }  // no marker on the frame
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const X = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const Y = y => T + (y1 - y) / (y1 - y0) * (H - T - B);
  if (opts.band) {
    svg.appendChild(svgEl("rect", {class: "goal-band", x: L, width: W - L - R,
                                   y: Y(opts.band[1]), height: Math.max(1, Y(opts.band[0]) - Y(opts.band[1]))}));
  }
  svg.appendChild(svgEl("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
  svg.appendChild(svgEl("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}));
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + (y1 - y0) * i / 4;
    const t = svgEl("text", {x: L - 4, y: Y(yv) + 3, "text-anchor": "end"});
    t.textContent = yv.toPrecision(5);
    svg.appendChild(t);
  }
  for (let i = 0; i <= 2; i++) {
    const xv = x0 + (x1 - x0) * i / 2;
    const t = svgEl("text", {x: X(xv), y: H - 8, "text-anchor": i === 0 ? "start" : i === 2 ? "end" : "middle"});
    t.textContent = fmtTime(xv);
    svg.appendChild(t);
  }
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    if (opts.points) {
      s.x.forEach((x, i) => {
        if (s.y[i] === null) return;
        const outside = opts.band && (s.y[i] < opts.band[0] || s.y[i] > opts.band[1]);
        svg.appendChild(svgEl("circle", {class: outside ? "point outside" : "point", cx: X(x), cy: Y(s.y[i]), r: 3,
                                         fill: color, "data-series": s.name}));
      });
    }
    if (!opts.points || opts.lines) {
      let d = "", pen = "M";
      s.x.forEach((x, i) => {
        if (s.y[i] === null) { pen = "M"; return; }
        d += `${pen}${X(x).toFixed(1)},${Y(s.y[i]).toFixed(1)} `;
        // a value without a neighbour draws no line: mark it (e.g. one hour on an inlet)
        const alone = (i === 0 || s.y[i - 1] === null) && (i === s.x.length - 1 || s.y[i + 1] === null);
        if (alone && !opts.points) {
          svg.appendChild(svgEl("circle", {class: "vertex", cx: X(x), cy: Y(s.y[i]), r: 2.5, fill: color,
                                           "data-series": s.name}));
        }
        pen = "L";
      });
      svg.appendChild(svgEl("path", {class: "series", d: d.trim(), stroke: color, "data-series": s.name}));
    }
    const lg = svgEl("text", {x: L + 6 + 110 * k, y: T + 10, fill: color});
    lg.textContent = s.name;
    svg.appendChild(lg);
  });
  return svg;
}

// Daily completeness as bars: received (blue) and valid ambient (green), fraction of the day.
function plotBars(days, received, valid, station) {
  const W = 460, H = 220, L = 40, R = 10, T = 10, B = 28;
  const svg = svgEl("svg", {class: "plot", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
                            "data-kind": "completeness", "data-station": station});
  svg.appendChild(svgEl("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
  svg.appendChild(svgEl("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}));
  for (const f of [0, 0.5, 1]) {
    const t = svgEl("text", {x: L - 4, y: T + (1 - f) * (H - T - B) + 3, "text-anchor": "end"});
    t.textContent = (f * 100).toFixed(0) + "%";
    svg.appendChild(t);
  }
  const n = Math.max(days.length, 1), bw = (W - L - R) / n;
  days.forEach((d, i) => {
    const h1 = Math.min(1, received[i]) * (H - T - B), h2 = Math.min(1, valid[i]) * (H - T - B);
    svg.appendChild(svgEl("rect", {class: "bar", x: L + i * bw + 1, width: Math.max(1, bw / 2 - 1),
                                   y: H - B - h1, height: Math.max(h1, 0.5), "data-day": d}));
    svg.appendChild(svgEl("rect", {class: "bar valid", x: L + i * bw + bw / 2, width: Math.max(1, bw / 2 - 1),
                                   y: H - B - h2, height: Math.max(h2, 0.5), "data-day": d}));
    if (n <= 14 || i % Math.ceil(n / 7) === 0) {
      const t = svgEl("text", {x: L + i * bw + bw / 2, y: H - 8, "text-anchor": "middle"});
      t.textContent = d.slice(5);
      svg.appendChild(t);
    }
  });
  return svg;
}

function plotBox(title, svg) {
  const box = el("div", {class: "plot-box"});
  box.appendChild(el("span", {class: "title"}, title));
  box.appendChild(svg);
  return box;
}

function renderTable(stations) {
  const tbody = document.querySelector("#stations tbody");
  tbody.replaceChildren();
  for (const s of stations) {
    const tr = el("tr", {"data-station": s.station, "data-state": s.state});
    const cells = [s.station, s.role, s.state,
                   s.last_seen_age_s === null ? "-" : dur(s.last_seen_age_s) + " ago", dur(s.latency_s),
                   s.backlog === null ? "-" : String(s.backlog), dur(s.oldest_unacked_age_s), dur(s.data_lag_s),
                   s.completeness_today === null ? "-" : (100 * s.completeness_today).toFixed(0) + "%",
                   s.instrument, String(s.minutes), String(s.alarms)];
    cells.forEach((c, i) => {
      const attrs = i === 2 ? {class: "state-" + s.state, title: s.reason}
        : i === 11 && s.last_alarm ? {class: "alarm", title: `${s.last_alarm.time} ${s.last_alarm.message}`} : {};
      const td = el("td", attrs, c);
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
}

async function renderStation(s, species, days, goals) {
  const q = `station=${encodeURIComponent(s.station)}&days=${days}`;
  const panel = el("div", {class: "panel", "data-station": s.station});
  panel.appendChild(el("h3", {}, `${s.name} (${s.station})`));
  const plots = el("div", {class: "plots"});
  panel.appendChild(plots);
  const [hourly, targets, comp, calib] = await Promise.all([
    getJSON(`/api/hourly?${q}&species=${species}`), getJSON(`/api/targets?${q}`), getJSON(`/api/completeness?${q}`),
    getJSON(`/api/calibrations?${q}`)]);
  const ts = hourly.series.map(g => ({name: g.stream.replace("inlet:", ""), x: g.time.map(Date.parse), y: g.mean}));
  plots.appendChild(plotBox(`hourly ${species} by inlet`, plotXY(ts, {kind: "timeseries", station: s.station})));
  const goal = goals[species];
  const tg = targets.targets.filter(t => t.species === species)
    .map(t => ({name: `${t.cylinder} (${t.term})`, x: t.time.map(Date.parse), y: t.bias}));
  plots.appendChild(plotBox(`target bias ${species} (goal ±${goal})`,
                            plotXY(tg, {kind: "target", station: s.station, band: [-goal, goal], points: true})));
  // Calibrations: drift of the fit at the reference level since the previous calibration, the
  // fit's RMSE and its largest residual, each against the compatibility goal.
  const cal = calib.calibrations.find(c => c.species === species);
  const cx = cal ? cal.time.map(Date.parse) : [];
  const cs = cal ? [{name: "drift", x: cx, y: cal.drift}, {name: "fit RMSE", x: cx, y: cal.rmse},
                    {name: "max |residual|", x: cx, y: cal.max_abs_residual}] : [];
  const ref = cal && cal.reference !== null ? ` at ${cal.reference}` : "";
  plots.appendChild(plotBox(`calibration ${species}: drift${ref}, fit RMSE, max residual (goal ±${goal})`,
                            plotXY(cs, {kind: "calibration", station: s.station, band: [-goal, goal],
                                        points: true, lines: true})));
  plots.appendChild(plotBox("completeness per day (received / valid ambient)",
                            plotBars(comp.days, comp.received, comp.valid_ambient, s.station)));
  return panel;
}

async function renderConsistency(species, days) {
  const box = document.getElementById("consistency");
  const c = await getJSON(`/api/consistency?species=${species}&days=${days}`);
  box.replaceChildren();
  if (c.offsets.length === 0) {
    box.appendChild(el("p", {class: "empty"}, `fewer than two background stations with ${species} afternoon means`));
    return;
  }
  const t = el("table", {id: "offsets"});
  t.appendChild(el("tr", {}, ""));
  t.firstChild.append(el("th", {}, "station"), el("th", {}, "other"), el("th", {}, "days"),
                      el("th", {}, "mean offset"), el("th", {}, `goal ±${c.goal}`));
  for (const o of c.offsets) {
    const tr = el("tr");
    tr.append(el("td", {}, o.station), el("td", {}, o.other), el("td", {}, String(o.n_days)),
              el("td", {}, o.mean === null ? "-" : o.mean.toFixed(3)),
              el("td", o.beyond_goal ? {class: "beyond"} : {}, o.beyond_goal ? "beyond goal" : "ok"));
    t.appendChild(tr);
  }
  box.appendChild(t);
}

async function refresh() {
  document.body.dataset.ready = "0";
  const species = document.getElementById("species").value;
  const days = document.getElementById("days").value || 7;
  try {
    const [net, stations] = await Promise.all([getJSON("/api/network"), getJSON("/api/stations")]);
    document.getElementById("network").textContent = net.name;
    document.getElementById("clock").textContent = net.time;
    renderTable(stations);
    const panels = await Promise.all(stations.map(s => renderStation(s, species, days, net.goals)));
    document.getElementById("panels").replaceChildren(...panels);
    await renderConsistency(species, days);
    document.body.dataset.ready = "1";
  } catch (e) {
    document.body.dataset.ready = "error";
    document.body.dataset.error = String(e);
    console.error(e);
  }
}

document.getElementById("species").addEventListener("change", refresh);
document.getElementById("days").addEventListener("change", refresh);
refresh();
setInterval(refresh, 30000);
