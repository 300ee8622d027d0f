// The operations center's eddy-covariance page (/flux): per flux station the half-hourly CO2 flux,
// H and LE coloured by their quality flag, u*, and the daily sums of the valid half hours with u*
// filtering, from /api/flux/* (central/web/flux.py). Charts by ECharts drawn as SVG.
// <body data-ready> is "1" once drawn, "error" (with data-error) when it failed, "login" without a session.
"use strict";

const charts = {};   // chart id -> ECharts instance (the browser tests read them)
const FLAG_COLOUR = {0: "#2a7a2a", 1: "#e0a000", 2: "#b00020"};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? "-"));
  return e;
}

async function api(path) {
  const res = await fetch(path, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
  const doc = await res.json().catch(() => ({error: res.statusText}));
  if (!res.ok) { const err = new Error(doc.error || res.statusText); err.status = res.status; throw err; }
  return doc;
}

function ready(state, error) {
  document.body.dataset.ready = state;
  if (error) document.body.dataset.error = error; else delete document.body.dataset.error;
}

function chart(id) {
  if (charts[id]) charts[id].dispose();
  charts[id] = echarts.init(document.getElementById(id), null, {renderer: "svg"});
  return charts[id];
}

const numberLabel = v => (Math.abs(v) >= 1e4 || v === 0 ? String(v) : String(+v.toPrecision(6)));
const fixed = (v, d) => (v === null || v === undefined ? "-" : v.toFixed(d));
const base = (name, legend) => ({
  animation: false, tooltip: {trigger: "item"}, legend: {data: legend},
  grid: {left: 70, right: 30, top: 40, bottom: 70},
  xAxis: {type: "time", axisLabel: {hideOverlap: true}},
  yAxis: {type: "value", name, scale: true, axisLabel: {formatter: numberLabel}},
  dataZoom: [{type: "inside", xAxisIndex: 0, filterMode: "none"}, {type: "slider", xAxisIndex: 0, filterMode: "none"}],
});

// A quantity as a thin line and its points coloured by their flag (data items keep the flag).
function flagged(name, times, values, flags, symbol) {
  const points = [];
  for (let i = 0; i < times.length; i++) {
    if (values[i] === null) continue;
    points.push({value: [times[i], values[i]], flag: flags[i], itemStyle: {color: FLAG_COLOUR[flags[i]] || "#777"}});
  }
  return [
    {type: "line", name, data: points.map(p => p.value), showSymbol: false, lineStyle: {width: 1, color: "#99a"},
     silent: true, connectNulls: false},
    {type: "scatter", name, data: points, symbol, symbolSize: 6,
     tooltip: {formatter: p => `${name} ${p.value[1].toFixed(2)} at ${p.value[0]} (flag ${p.data.flag})`}},
  ];
}

async function draw() {
  const station = document.getElementById("flux-station").value;
  const days = document.getElementById("flux-days").value;
  const ustar = document.getElementById("flux-ustar").value.trim();
  const q = `station=${encodeURIComponent(station)}&days=${days}`;
  const [hh, daily] = await Promise.all([
    api(`/api/flux/halfhours?${q}`),
    api(`/api/flux/daily?${q}${ustar ? `&ustar=${encodeURIComponent(ustar)}` : ""}`),
  ]);
  const t = hh.time;
  for (const id of ["flux-co2", "flux-heat", "flux-ustar-chart", "flux-daily-chart"]) {
    document.getElementById(id).dataset.station = station;
  }
  document.getElementById("flux-co2").dataset.points = String(t.length);
  chart("flux-co2").setOption({...base("umol m-2 s-1", ["CO2 flux"]),
    series: flagged("CO2 flux", t, hh.co2_flux_umol_m2_s, hh.flag_co2, "circle")});
  chart("flux-heat").setOption({...base("W m-2", ["H", "LE"]),
    series: [...flagged("H", t, hh.h_w_m2, hh.flag_h, "circle"), ...flagged("LE", t, hh.le_w_m2, hh.flag_le, "triangle")]});
  const thresholds = daily.ustar_thresholds || {};
  chart("flux-ustar-chart").setOption({...base("m s-1", ["u*"]),
    series: [{type: "line", name: "u*", data: t.map((x, i) => [x, hh.ustar_ms[i]]), showSymbol: false,
              markLine: Object.keys(thresholds).length ? {symbol: "none", silent: true, label: {formatter: "threshold"},
                                                          data: [{yAxis: Math.max(...Object.values(thresholds))}]} : undefined}]});
  document.getElementById("flux-ustar-filter").textContent = daily.ustar_filter === null
    ? "no u* filter" : `u* filter on ${daily.ustar_filter}: ` +
      Object.entries(thresholds).map(([s, v]) => `${s} ${v} m/s`).join(", ");
  const d = daily.days;
  chart("flux-daily-chart").setOption({
    animation: false, tooltip: {trigger: "axis"}, legend: {data: ["CO2 of the valid half hours", "CO2 whole day"]},
    grid: {left: 70, right: 30, top: 40, bottom: 40},
    xAxis: {type: "category", data: d.map(r => r.day)},
    yAxis: {type: "value", name: "g C m-2", axisLabel: {formatter: numberLabel}},
    series: [{type: "bar", name: "CO2 of the valid half hours", data: d.map(r => r.co2_valid_g_c_m2)},
             {type: "bar", name: "CO2 whole day", data: d.map(r => r.co2_daily_g_c_m2)}],
  });
  const body = document.querySelector("#flux-daily tbody");
  body.replaceChildren(...d.map(r => el("tr", {"data-day": r.day},
    el("td", {}, r.day), el("td", {}, String(r.n_records)), el("td", {}, String(r.n_valid)),
    el("td", {}, String(r.n_low_ustar)), el("td", {}, `${Math.round(100 * r.coverage)} %`),
    el("td", {}, fixed(r.co2_valid_g_c_m2, 3)), el("td", {}, fixed(r.co2_daily_g_c_m2, 3)),
    el("td", {}, fixed(r.h_valid_mj_m2, 2)), el("td", {}, fixed(r.le_valid_mj_m2, 2)))));
}

async function refresh() {
  ready("0");
  document.getElementById("flux-error").textContent = "";
  try {
    await draw();
    ready("1");
  } catch (err) {
    if (err.status === 401) return showLogin();
    if (err.status === 400) {  // a setting the API refused (e.g. the u* threshold): say so, keep the page
      document.getElementById("flux-error").textContent = err.message;
      return ready("1");
    }
    ready("error", err.message);
  }
}

function showLogin() {
  document.getElementById("flux").hidden = true;
  document.getElementById("login-needed").hidden = false;
  ready("login");
}

async function start() {
  try {
    const me = await api("/api/me");
    document.getElementById("who").textContent = `${me.name} (${me.role})`;
    const stations = await api("/api/flux/stations");
    const select = document.getElementById("flux-station");
    select.replaceChildren(...stations.map(s => el("option", {value: s.station}, `${s.name} (${s.station})`)));
    const wanted = new URLSearchParams(location.search).get("station");
    if (wanted && stations.some(s => s.station === wanted)) select.value = wanted;
    document.getElementById("flux").hidden = false;
    if (!stations.length) {
      document.getElementById("flux-error").textContent = "no station has sent flux records yet";
      return ready("1");
    }
    for (const id of ["flux-station", "flux-days"]) document.getElementById(id).addEventListener("change", refresh);
    document.getElementById("flux-apply").addEventListener("click", refresh);
    await refresh();
  } catch (err) {
    if (err.status === 401) return showLogin();
    ready("error", err.message);
  }
}

start();
