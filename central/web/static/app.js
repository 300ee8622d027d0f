// The operations center UI: a login, then views chosen by the URL's hash (#map, #stations,
// #station/<id>, #events, #registry, #registry/<id>). Data from the JSON API (/openapi.json), charts by ECharts drawn as SVG.
// <body data-ready> is "1" once a view is drawn, "error" (with data-error) when it failed.
"use strict";

const charts = {};          // chart id -> ECharts instance (the browser tests read them)
let me = null;              // {name, role, csrf}

function dur(s) {
  // an age in words; a negative one (a station's clock ahead of central's) reads "... ahead"
  if (s === null || s === undefined) return "-";
  const a = Math.abs(s), ahead = s < 0 ? " ahead" : "";
  if (a < 120) return `${Math.round(a)} s${ahead}`;
  if (a < 7200) return `${Math.round(a / 60)} min${ahead}`;
  if (a < 172800) return `${(a / 3600).toFixed(1)} h${ahead}`;
  return `${(a / 86400).toFixed(1)} d${ahead}`;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? "-"));
  return e;
}

async function api(path, opts = {}) {
  const headers = {"Accept": "application/json"};
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.method && opts.method !== "GET" && me && me.csrf) headers["X-CSRF-Token"] = me.csrf;
  const res = await fetch(path, {method: opts.method || "GET", headers, credentials: "same-origin",
                                 body: opts.body === undefined ? undefined : JSON.stringify(opts.body)});
  const doc = await res.json().catch(() => ({error: res.statusText}));
  if (!res.ok) { const err = new Error(doc.error || res.statusText); err.status = res.status; throw err; }
  return doc;
}

function ready(state, error) {
  document.body.dataset.ready = state;
  if (error) document.body.dataset.error = error;
}

function chart(id, container) {
  if (charts[id]) charts[id].dispose();
  charts[id] = echarts.init(container, null, {renderer: "svg"});
  return charts[id];
}

// Axis labels as plain numbers: a negative value keeps its minus sign (no locale formatting).
const numberLabel = v => (Math.abs(v) >= 1e4 || v === 0 ? String(v) : String(+v.toPrecision(6)));
const timeAxis = {type: "time", axisLabel: {hideOverlap: true}};
const valueAxis = name => ({type: "value", name, scale: true, axisLabel: {formatter: numberLabel}});
const zoom = [{type: "inside", xAxisIndex: 0, filterMode: "none"}, {type: "slider", xAxisIndex: 0, filterMode: "none"}];

// ---------------------------------------------------------------------------------------------
async function showMap() {
  const rows = await api("/api/fleet");
  const placed = rows.filter(r => r.longitude !== null && r.latitude !== null);
  const box = document.getElementById("map");
  box.dataset.stations = String(placed.length);
  const lon = placed.map(r => r.longitude), lat = placed.map(r => r.latitude);
  const pad = 2;
  const [x0, x1] = [Math.min(...lon, 180) - pad, Math.max(...lon, -180) + pad];
  const [y0, y1] = [Math.max(Math.min(...lat, 90) - pad, -90), Math.min(Math.max(...lat, -90) + pad, 90)];
  // the network's outline: the hull of its stations (no map tiles: nothing is fetched)
  const hull = convexHull(placed.map(r => [r.longitude, r.latitude]));
  const colour = {up: "#2a7a2a", down: "#b00020", lost: "#b00020"};
  chart("map", box).setOption({
    animation: false,
    tooltip: {formatter: p => p.data.tip},
    xAxis: {type: "value", name: "longitude (°)", min: Math.floor(x0), max: Math.ceil(x1), axisLabel: {formatter: numberLabel}},
    yAxis: {type: "value", name: "latitude (°)", min: Math.floor(y0), max: Math.ceil(y1), axisLabel: {formatter: numberLabel}},
    series: [
      {type: "line", name: "outline", data: hull.length > 2 ? [...hull, hull[0]] : [], symbol: "none",
       lineStyle: {color: "#8899aa", type: "dashed"}, areaStyle: null, silent: true},
      {type: "scatter", name: "stations", symbolSize: 14,
       data: placed.map(r => ({value: [r.longitude, r.latitude], name: r.station,
                               tip: `${r.name} (${r.station}): ${r.state}, data lag ${dur(r.data_lag_s)}`,
                               itemStyle: {color: colour[r.state] || "#777"}})),
       label: {show: true, position: "right", formatter: p => p.name}},
    ],
  });
  charts.map.off("click");
  charts.map.on("click", p => { if (p.seriesName === "stations") location.hash = `#station/${p.name}`; });
}

function convexHull(points) {
  const p = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const half = pts => { const h = []; for (const q of pts) { while (h.length >= 2 && cross(h[h.length - 2], h[h.length - 1], q) <= 0) h.pop(); h.push(q); } h.pop(); return h; };
  return [...half(p), ...half([...p].reverse())];
}

// ---------------------------------------------------------------------------------------------
async function showStations() {
  const [rows, cons] = await Promise.all([api("/api/fleet"), api("/api/consistency?species=co2")]);
  document.querySelector("#consistency tbody").replaceChildren(...cons.offsets.map(o => el("tr", {},
    el("td", {}, o.station), el("td", {}, o.other), el("td", {}, String(o.n_days)),
    el("td", {}, o.mean === null ? "-" : o.mean.toFixed(3)), el("td", {}, o.std === null ? "-" : o.std.toFixed(3)),
    el("td", {class: o.beyond_goal ? "bad" : ""}, o.beyond_goal ? `beyond goal (${cons.goal})` : "within goal"))));
  const body = document.querySelector("#stations tbody");
  body.replaceChildren(...rows.map(r => {
    const bias = (r.target_bias || []).map(b => `${b.species} ${b.bias === null ? "-" : b.bias.toFixed(3)} / ${b.goal ?? "-"}`).join(", ");
    const bad = (r.target_bias || []).some(b => b.within_goal === false);
    const link = el("a", {href: `#station/${r.station}`}, r.name === r.station ? r.station : `${r.name} (${r.station})`);
    return el("tr", {"data-station": r.station, "data-state": r.state},
      el("td", {}, link), el("td", {class: "state", title: r.reason || ""}, r.state),
      el("td", {}, dur(r.data_lag_s)), el("td", {}, r.backlog === null ? "-" : String(r.backlog)),
      el("td", {}, r.last_calibration ? r.last_calibration.slice(0, 16).replace("T", " ") : "-"),
      el("td", {class: bad ? "bad" : ""}, bias || "-"),
      el("td", {}, r.clock_offset_s === null ? "-" : `${r.clock_offset_s.toFixed(1)} s`),
      el("td", {}, String(r.alarms)));
  }));
}

// ---------------------------------------------------------------------------------------------
async function showStation(station) {
  const days = document.getElementById("station-days").value;
  document.getElementById("station-title").textContent = station;
  const q = `station=${encodeURIComponent(station)}&days=${days}`;
  const [hourly, targets, cals, flags, events, comp] = await Promise.all([
    api(`/api/hourly?${q}`), api(`/api/targets?${q}`), api(`/api/calibrations?${q}`),
    api(`/api/flags?station=${encodeURIComponent(station)}`), api(`/api/events?${q}`), api(`/api/completeness?${q}`)]);
  // one chart per species (every species the station measures), one line per inlet
  const box = document.getElementById("species-charts");
  for (const id of Object.keys(charts)) if (id.startsWith("ts-")) { charts[id].dispose(); delete charts[id]; }
  box.replaceChildren();
  const bySpecies = {};
  for (const s of hourly.series) (bySpecies[s.species] ||= []).push(s);
  for (const [species, list] of Object.entries(bySpecies).sort()) {
    const div = el("div", {class: "chart timeseries", "data-species": species, "data-station": station});
    // a long window comes as daily means (hourly.resolution "day"): the heading says so
    const label = hourly.resolution === "day" ? `${species} (daily means of valid hours)` : species;
    div.dataset.resolution = hourly.resolution || "hour";
    box.append(el("h3", {}, label), div);
    const manual = flags.filter(f => !f.species || f.species === species)
      .map(f => [{xAxis: f.from, name: `${f.flag}: ${f.reason}`}, {xAxis: f.to}]);
    const series = [];
    for (const s of list) {
      series.push({type: "line", name: s.stream, showSymbol: false, connectNulls: false,
                   data: s.time.map((t, i) => [t, ["U", "O"].includes(s.flag[i]) ? s.mean[i] : null])});
      series.push({type: "scatter", name: `${s.stream} flagged`, symbol: "path://M0,0L10,10M10,0L0,10", symbolSize: 7,
                   itemStyle: {borderColor: "#b00020", borderWidth: 1.5, color: "none"},
                   data: s.time.map((t, i) => [t, s.mean[i], s.flag[i]]).filter(p => !["U", "O"].includes(p[2]) && p[1] !== null)});
    }
    if (series.length) series[0].markArea = {silent: true, itemStyle: {color: "rgba(176,0,32,0.08)"}, data: manual};
    chart(`ts-${species}`, div).setOption({
      animation: false, legend: {type: "scroll"}, tooltip: {trigger: "axis"},
      grid: {left: 70, right: 30, top: 40, bottom: 70}, xAxis: timeAxis, yAxis: valueAxis(species), dataZoom: zoom, series,
    });
  }
  // target bias with the goal band
  const tdiv = document.getElementById("targets-chart");
  const goal = Math.max(0, ...targets.targets.map(t => t.goal || 0));
  chart("targets", tdiv).setOption({
    animation: false, legend: {type: "scroll"}, tooltip: {trigger: "item"},
    grid: {left: 70, right: 30, top: 40, bottom: 70}, xAxis: timeAxis, yAxis: valueAxis("bias"), dataZoom: zoom,
    series: targets.targets.map((t, k) => ({
      // a long window comes as the daily mean bias of each series (targets.resolution "day")
      type: "scatter", name: `${t.cylinder} ${t.species} (${t.term}${targets.resolution === "day" ? ", daily means" : ""})`,
      symbolSize: 6, data: t.time.map((x, i) => [x, t.bias[i]]),
      markArea: k === 0 && goal ? {silent: true, itemStyle: {color: "rgba(42,122,42,0.10)"}, data: [[{yAxis: -goal}, {yAxis: goal}]]} : undefined,
    })),
  });
  const cdiv = document.getElementById("calibrations-chart");
  const cseries = [];
  for (const c of cals.calibrations) {
    cseries.push({type: "line", name: `${c.species} drift`, data: c.time.map((x, i) => [x, c.drift[i]])});
    cseries.push({type: "scatter", name: `${c.species} fit RMSE`, data: c.time.map((x, i) => [x, c.rmse[i]])});
    cseries.push({type: "scatter", name: `${c.species} max |residual|`, symbol: "diamond",
                  data: c.time.map((x, i) => [x, c.max_abs_residual[i]])});
  }
  chart("calibrations", cdiv).setOption({
    animation: false, legend: {type: "scroll"}, tooltip: {trigger: "item"},
    grid: {left: 70, right: 30, top: 40, bottom: 70}, xAxis: timeAxis, yAxis: valueAxis(""), dataZoom: zoom, series: cseries,
  });
  chart("completeness", document.getElementById("completeness-chart")).setOption({
    animation: false, legend: {}, tooltip: {trigger: "axis"}, grid: {left: 70, right: 30, top: 40, bottom: 40},
    xAxis: {type: "category", data: comp.days}, yAxis: {type: "value", min: 0, max: 1, axisLabel: {formatter: numberLabel}},
    series: [{type: "bar", name: "received", data: comp.received}, {type: "bar", name: "valid ambient", data: comp.valid_ambient}],
  });
  document.querySelector("#station-events tbody").replaceChildren(...events.events.slice(-200).reverse().map(e =>
    el("tr", {}, el("td", {}, e.time), el("td", {}, e.kind), el("td", {}, e.severity), el("td", {}, e.message))));
}

// ---------------------------------------------------------------------------------------------
async function showEvents() {
  const [alarms, flags, letters] = await Promise.all([api("/api/alarms"), api("/api/flags"), api("/api/dead-letters")]);
  const writer = me && (me.role === "operator" || me.role === "admin");
  const action = (label, path) => {
    if (!writer) return "";
    const b = el("button", {type: "button"}, label);
    b.onclick = () => api(path, {method: "POST"}).then(route).catch(e => alert(e.message));
    return b;
  };
  document.querySelector("#alarms tbody").replaceChildren(...alarms.map(a => el("tr", {"data-alarm": String(a.id), "data-state": a.state},
    el("td", {}, a.time), el("td", {}, a.station), el("td", {}, a.kind), el("td", {}, a.message),
    el("td", {class: "state"}, a.state === "acknowledged" ? `acknowledged by ${a.acknowledged_by}` : a.state),
    el("td", {}, a.state === "open" ? action("acknowledge", `/api/alarms/${a.id}/acknowledge`) : ""))));
  document.querySelector("#flags tbody").replaceChildren(...flags.slice().reverse().map(f => el("tr", {},
    el("td", {}, f.station), el("td", {}, f.from), el("td", {}, f.to), el("td", {}, f.flag), el("td", {}, f.stream),
    el("td", {}, f.species), el("td", {}, f.reason), el("td", {}, f.operator))));
  document.getElementById("flag-form").hidden = !writer;
  document.querySelector("#dead-letters tbody").replaceChildren(...letters.map(d => el("tr", {"data-letter": String(d.id)},
    el("td", {}, d.received_at), el("td", {}, d.station), el("td", {}, d.topic), el("td", {}, `${d.reason_code}: ${d.reason}`),
    el("td", {class: "resolution"}, d.resolved_at ? `resolved ${d.resolved_at}: ${d.resolution}` : (d.last_replay_result || "")),
    el("td", {}, d.resolved_at ? "" : action("replay", `/api/dead-letters/${d.id}/replay`)))));
}

// ---------------------------------------------------------------------------------------------
// The registry (read for every role): what is installed where, and a station's history.
const stationLink = (s, prefix) => el("a", {href: `${prefix}${encodeURIComponent(s)}`}, s);

async function showRegistry() {
  const rows = await api("/api/registry");
  document.querySelector("#registry tbody").replaceChildren(...rows.map(r => el("tr", {"data-station": r.station, "data-state": r.state || ""},
    el("td", {}, stationLink(r.station, "#registry/")), el("td", {class: "state"}, r.state || "-"),
    el("td", {}, r.agent_version || "-"), el("td", {}, r.config_version === null ? "-" : `v${r.config_version}`),
    el("td", {class: "serials"}, Object.entries(r.devices).map(([d, sn]) => `${d}: ${sn || "?"}`).join(", ") || "-"),
    el("td", {}, Object.entries(r.cylinders).map(([c, p]) => `${c}: ${p ?? "?"}`).join(", ") || "-"),
    el("td", {}, r.clock_synchronised === null || r.clock_synchronised === undefined ? "-" : String(r.clock_synchronised)),
    el("td", {}, r.last_seen))));
}

async function showRegistryStation(station) {
  const r = await api(`/api/registry/${encodeURIComponent(station)}`);
  document.getElementById("registry-title").textContent = `${station}: registry`;
  document.getElementById("registry-versions").textContent =
    `state ${r.state || "-"}, agent ${r.agent_version || "-"}, config ${r.config_version === null ? "-" : "v" + r.config_version}, last seen ${r.last_seen}`;
  const inv = r.inventory || {};
  const devices = inv.devices || {};
  const names = [...new Set([...Object.keys(devices), ...Object.keys(r.serial_history || {})])].sort();
  document.querySelector("#registry-devices tbody").replaceChildren(...names.map(d => el("tr", {"data-device": d},
    el("td", {}, d), el("td", {}, (devices[d] || {}).driver || "-"), el("td", {class: "serial"}, r.devices[d] || "-"),
    el("td", {class: "serial-history"}, (r.serial_history[d] || []).map(h => `${h.from ? h.from.slice(0, 10) : "since first seen"}: ${h.serial_number || "none"}`).join(" → ")))));
  const forecasts = Object.fromEntries((r.cylinder_forecasts || []).map(f => [f.cylinder, f]));
  const cyls = inv.cylinders || {};
  const ids = [...new Set([...Object.keys(cyls), ...Object.keys(forecasts)])].sort();
  const assigned = a => a ? Object.entries(a).map(([sp, v]) => `${sp} ${v}`).join(", ") : "-";
  document.querySelector("#registry-cylinders tbody").replaceChildren(...ids.map(c => {
    const v = cyls[c] || {}, f = forecasts[c] || {};
    const empty = f.status === "ok" ? f.empty_at.slice(0, 10) : (f.status ? f.status.replaceAll("_", " ") : "no readings");
    return el("tr", {"data-cylinder": c}, el("td", {}, c), el("td", {}, v.role || "-"), el("td", {}, v.serial || "-"),
      el("td", {}, assigned(v.assigned)), el("td", {}, v.pressure_bar ?? f.latest_bar ?? "-"),
      el("td", {}, f.low_bar ?? v.low_pressure_bar ?? "-"),
      el("td", {}, f.rate_bar_per_day === null || f.rate_bar_per_day === undefined ? "-" : f.rate_bar_per_day.toFixed(2)),
      el("td", {class: "empty-at"}, empty));
  }));
  document.querySelector("#registry-history tbody").replaceChildren(...(r.history || []).slice().reverse().map(h =>
    el("tr", {}, el("td", {}, h.time), el("td", {}, h.kind), el("td", {}, h.device || "-"), el("td", {}, h.message))));
  await showConfigVersions(station);  // static/config_push.js
}

// ---------------------------------------------------------------------------------------------
async function route() {
  ready("0");
  const hash = location.hash || "#map";
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  try {
    if (hash.startsWith("#station/")) {
      document.getElementById("view-station").hidden = false;
      await showStation(decodeURIComponent(hash.slice(9)));
    } else if (hash === "#stations") {
      document.getElementById("view-stations").hidden = false;
      await showStations();
    } else if (hash.startsWith("#registry/")) {
      document.getElementById("view-registry-station").hidden = false;
      await showRegistryStation(decodeURIComponent(hash.slice(10)));
    } else if (hash === "#registry") {
      document.getElementById("view-registry").hidden = false;
      await showRegistry();
    } else if (hash === "#events") {
      document.getElementById("view-events").hidden = false;
      await showEvents();
    } else {
      document.getElementById("view-map").hidden = false;
      await showMap();
    }
    ready("1");
  } catch (err) {
    if (err.status === 401) return showLogin();
    ready("error", err.message);
  }
}

function showLogin() {
  me = null;
  document.getElementById("nav").hidden = true;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  document.getElementById("login").hidden = false;
  ready("login");
}

async function start() {
  document.getElementById("login-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    ready("0");
    try {
      me = await api("/api/login", {method: "POST", body: {name: document.getElementById("login-name").value,
                                                           password: document.getElementById("login-password").value}});
      document.getElementById("login").hidden = true;
      await enter();
    } catch (err) {
      document.getElementById("login-error").textContent = err.message;
      ready("login");
    }
  });
  document.getElementById("logout").onclick = () => api("/api/logout", {method: "POST", body: {}}).then(showLogin);
  document.getElementById("station-days").onchange = route;
  document.getElementById("flag-form").addEventListener("submit", async ev => {
    // a manual flag through POST /api/flags; the receiver's aggregation recomputes its hours
    ev.preventDefault();
    const v = id => document.getElementById(id).value.trim();
    const body = {station: v("flag-station"), from: v("flag-from"), to: v("flag-to"), flag: v("flag-letter"),
                  reason: v("flag-reason"), reason_code: v("flag-reason-code")};
    if (v("flag-stream")) body.stream = v("flag-stream");
    if (v("flag-species")) body.species = v("flag-species");
    document.getElementById("flag-error").textContent = "";
    try {
      await api("/api/flags", {method: "POST", body});
      document.getElementById("flag-form").reset();
      await route();
    } catch (err) {
      document.getElementById("flag-error").textContent = err.message;
    }
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => Object.values(charts).forEach(c => c.resize()));
  try {
    me = await api("/api/me");
  } catch (err) {
    if (err.status === 401) return showLogin();
    return ready("error", err.message);
  }
  await enter();
}

async function enter() {
  const net = await api("/api/network");
  document.getElementById("network-name").textContent = `${net.name} operations center`;
  document.getElementById("who").textContent = `${me.name} (${me.role})`;
  document.getElementById("nav").hidden = false;
  await route();
}

start();
