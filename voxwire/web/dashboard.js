"use strict";
// voxwire operator dashboard. Live data comes from GET /dashboard/api/stream (server-sent events,
// one overview per second), read with fetch() so the API key can go in the Authorization header
// (EventSource cannot send one). A selected session's detail (history, counters) is fetched from
// /dashboard/api/sessions/{id} on each update. The key typed into the page stays in memory only.
//
// Tests read window.dashboard: { live, overview, detail, select(id), updates }.
(() => {
  const $ = (id) => document.getElementById(id);
  const RETRY_MS = 2000;
  let apiKey = null;
  let selected = null;

  const state = window.dashboard = { live: false, overview: null, detail: null, updates: 0, select };

  function headers() {
    return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  }

  function status(text, isError = false) {
    $("status").textContent = text;
    $("status").classList.toggle("error", isError);
  }

  function setLive(live) {
    state.live = live;
    $("live").dataset.live = String(live);
    $("live").textContent = live ? "live" : "disconnected";
  }

  async function needKey(response) {
    let message = "";
    try { message = (await response.json()).error.message; } catch (err) { /* not JSON */ }
    setLive(false);
    $("key-form").hidden = false;
    status(`The dashboard needs the server API key${apiKey ? " (refused)" : ""}. ${message}`, true);
  }

  // ---- the live stream -------------------------------------------------------------------------

  async function connect() {
    let response;
    try {
      response = await fetch("/dashboard/api/stream", { headers: headers(), cache: "no-store" });
    } catch (err) {
      setLive(false);
      status(`Server unreachable: ${err.message}. Retrying…`, true);
      return setTimeout(connect, RETRY_MS);
    }
    if (response.status === 401 || response.status === 403) return needKey(response);
    if (!response.ok || !response.body) {
      setLive(false);
      status(`The server answered HTTP ${response.status}. Retrying…`, true);
      return setTimeout(connect, RETRY_MS);
    }
    setLive(true);
    status("");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) update(JSON.parse(data));
        }
      }
    } catch (err) { /* the connection dropped */ }
    setLive(false);
    status("Lost the connection to the server. Reconnecting…", true);
    setTimeout(connect, RETRY_MS);
  }

  function update(overview) {
    state.overview = overview;
    state.updates += 1;
    renderLoad(overview);
    renderSessions(overview);
    renderDrops(overview.drops);
    renderRelay(overview.relay);
    renderRecent(overview.recent);
    if (selected && overview.sessions.some((s) => s.id === selected)) loadDetail(selected);
    else if (selected) $("detail-id").textContent = `${selected} (ended)`;
  }

  // ---- rendering -------------------------------------------------------------------------------

  const fmt = (v, digits = 0, unit = "") => (v === null || v === undefined ? "–" : `${Number(v).toFixed(digits)}${unit}`);
  const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
  const age = (s) => (s < 60 ? `${s.toFixed(0)} s` : s < 3600 ? `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s` : `${(s / 3600).toFixed(1)} h`);

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function keyValueTable(table, pairs) {
    table.replaceChildren();
    if (!pairs.length) {
      cell(table.insertRow(), "none", "muted");
      return;
    }
    for (const [k, v] of pairs) {
      const row = table.insertRow();
      cell(row, k);
      cell(row, String(v));
    }
  }

  function renderLoad(o) {
    const t = o.traffic;
    const sum = (d) => (t ? Object.values(t.packets[d]).reduce((a, b) => a + b, 0) : null);
    const cards = [
      ["sessions", `${o.load.calls} / ${o.load.max_calls}`],
      ["connected", o.by_state.connected || 0],
      ["agent", o.load.agent],
      ["CPU", fmt(o.load.cpu_percent, 0, "%")],
      ["memory", fmt(o.load.rss_mb, 0, " MB")],
      ["datagrams in / out", t ? `${sum("in")} / ${sum("out")}` : "–"],
      ["uptime", age(o.uptime_s)],
    ];
    $("load").replaceChildren(...cards.map(([label, value]) => {
      const div = document.createElement("div");
      div.className = "card";
      const b = document.createElement("b");
      b.textContent = value;
      const span = document.createElement("span");
      span.textContent = label;
      div.append(b, span);
      return div;
    }));
  }

  function renderSessions(o) {
    const body = $("sessions").tBodies[0];
    $("session-count").textContent = `(${o.total_sessions})`;
    body.replaceChildren();
    if (!o.sessions.length) {
      const row = body.insertRow();
      row.className = "empty";
      const td = cell(row, "No live sessions.", "muted");
      td.colSpan = 13;
      return;
    }
    for (const s of o.sessions) {
      const row = body.insertRow();
      row.dataset.id = s.id;
      row.dataset.state = s.state;
      if (s.id === selected) row.className = "selected";
      cell(row, s.id.slice(0, 12) + "…").title = s.id;
      cell(row, s.state, `state-${s.state}`);
      cell(row, age(s.age_s));
      cell(row, s.client || "–");
      cell(row, s.transceiver);
      cell(row, s.relay || "–");
      cell(row, s.codec).title = s.srtp || "";
      cell(row, fmt(s.rtt_ms, 0, " ms"));
      cell(row, `${pct(s.loss_in)} / ${pct(s.loss_out)}`);
      cell(row, `${fmt(s.jitter_in_ms, 1)} / ${fmt(s.jitter_out_ms, 1)} ms`);
      cell(row, s.assistant === "playing" ? `${s.vad}, assistant` : s.vad, `vad-${s.vad}`);
      cell(row, `${s.turns} / ${s.replies}`).title = "user turns / replies";
      cell(row, s.last_turn_ms === null ? "–" : `${fmt(s.last_turn_ms)} ms`).title =
        `response ${fmt(s.last_response_ms)} ms, barge-in ${fmt(s.last_barge_in_ms)} ms`;
      row.addEventListener("click", () => select(s.id));
    }
  }

  function renderDrops(drops) {
    const pairs = [];
    for (const [layer, reasons] of Object.entries(drops || {})) {
      for (const [reason, n] of Object.entries(reasons)) pairs.push([`${layer}: ${reason}`, n]);
    }
    keyValueTable($("drops"), pairs);
  }

  function renderRelay(relay) {
    $("relay-section").hidden = !relay;
    if (!relay) return;
    $("relay-name").textContent = relay.name ? `(${relay.name})` : "";
    keyValueTable($("relay"), [["flows", relay.flows], ["parked", relay.parked], ...Object.entries(relay.counters)]);
  }

  function renderRecent(recent) {
    const table = $("recent");
    table.replaceChildren();
    if (!recent.length) return cell(table.insertRow(), "none yet", "muted");
    const head = table.createTHead().insertRow();
    for (const h of ["call", "ended", "duration", "reason", "turns"]) head.appendChild(document.createElement("th")).textContent = h;
    const body = table.createTBody();
    for (const r of recent) {
      const row = body.insertRow();
      row.dataset.id = r.id;
      cell(row, r.id.slice(0, 12) + "…").title = r.id;
      cell(row, `${age(r.ended_s_ago)} ago`);
      cell(row, age(r.duration_s));
      cell(row, (r.reason || "?") + (r.connected ? "" : " (never connected)"));
      cell(row, `${r.turns} / ${r.replies}`);
    }
  }

  // ---- one session -----------------------------------------------------------------------------

  function select(id) {
    selected = id;
    state.detail = null;
    $("detail").hidden = !id;
    $("detail-id").textContent = id || "";
    if (id) loadDetail(id);
    for (const row of $("sessions").tBodies[0].rows) row.classList.toggle("selected", row.dataset.id === id);
  }

  async function loadDetail(id) {
    let response;
    try {
      response = await fetch(`/dashboard/api/sessions/${encodeURIComponent(id)}`, { headers: headers(), cache: "no-store" });
    } catch (err) { return; }
    if (id !== selected) return;
    if (response.status === 404) {
      $("detail-id").textContent = `${id} (ended)`;
      return;
    }
    if (!response.ok) return;
    const d = state.detail = await response.json();
    keyValueTable($("detail-timeline"), Object.entries(d.timeline_ms).filter(([, v]) => v !== null).map(([k, v]) => [k.replaceAll("_", " "), `${v} ms`]));
    keyValueTable($("detail-latencies"), d.latencies.slice(-8).map((l) => l.kind === "turn"
      ? [`turn at ${l.at_s} s`, `${l.turn_ms} ms (response ${l.response_ms} ms)`]
      : [`barge-in at ${l.at_s} s`, `${l.barge_in_ms} ms`]));
    const pairs = [];
    for (const [layer, counters] of Object.entries(d.counters)) {
      for (const [name, n] of Object.entries(counters)) pairs.push([`${layer}: ${name}`, n]);
    }
    keyValueTable($("detail-counters"), pairs);
    const points = d.history.points;
    const col = (key) => points.map((p) => (p[key] === undefined ? null : p[key]));
    const n = Math.max(points.length, 2);
    const draw = window.voxwireCharts.draw;
    draw($("detail-rtt"), [{ values: col("rtt_ms"), color: "#0a7d5a" }], { unit: "ms", points: n });
    draw($("detail-jitter"), [{ values: col("jitter_in_ms"), color: "#2563eb" }, { values: col("jitter_out_ms"), color: "#0a7d5a" }], { unit: "ms", digits: 1, points: n });
    draw($("detail-loss"), [{ values: col("loss_in"), color: "#2563eb" }, { values: col("loss_out"), color: "#0a7d5a" }], { digits: 3, points: n });
    draw($("detail-pps"), [{ values: col("pps_in"), color: "#2563eb" }, { values: col("pps_out"), color: "#0a7d5a" }], { unit: "/s", points: n });
  }

  // ---- page wiring -----------------------------------------------------------------------------

  $("detail-close").addEventListener("click", () => select(null));
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key").value.trim() || null;
    $("key-form").hidden = true;
    status("Connecting…");
    connect();
  });
  connect();
})();
