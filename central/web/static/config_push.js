// A station's config versions on its registry page (#registry/<id>): what central pushed and every
// step the station reported (GET /api/registry/<id>/config, every role), and for admins the form that
// signs and pushes a new config (POST /api/registry/<id>/config, with the CSRF token). Uses api, el
// and me from app.js (loaded after this file; these functions run only once it has started).
"use strict";

let configPushStation = null;  // the station whose registry page is shown

const stepText = s => `${s.time.slice(0, 19).replace("T", " ")} ${s.step.replaceAll("_", " ")}`;

async function showConfigVersions(station) {
  configPushStation = station;
  const doc = await api(`/api/registry/${encodeURIComponent(station)}/config`);
  document.querySelector("#config-versions tbody").replaceChildren(...doc.versions.slice().reverse().map(v => {
    const p = v.pushes[v.pushes.length - 1] || {};
    return el("tr", {"data-version": String(v.version), "data-state": v.state},
      el("td", {}, `v${v.version}`), el("td", {}, p.time || "-"), el("td", {}, p.user || "-"), el("td", {}, p.source || "-"),
      el("td", {class: "state"}, v.state.replaceAll("_", " ")),
      el("td", {class: "steps"}, ...v.steps.map(s => el("div", {"data-step": s.step, title: s.message}, stepText(s)))));
  }));
  const form = document.getElementById("config-push-form");
  form.hidden = !(me && me.role === "admin");
  form.dataset.station = station;
}

document.getElementById("config-push-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const station = configPushStation, result = document.getElementById("config-push-result");
  const error = document.getElementById("config-push-error");
  result.textContent = error.textContent = "";
  try {
    const row = await api(`/api/registry/${encodeURIComponent(station)}/config`,
                          {method: "POST", body: {config: document.getElementById("config-push-text").value}});
    result.textContent = `version ${row.version} pushed at ${row.time}`;
    result.dataset.version = String(row.version);
    await showConfigVersions(station);
  } catch (err) {
    error.textContent = err.message;
  }
});
