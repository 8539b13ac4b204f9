"use strict";
// voxwire talk page: microphone -> WebRTC -> voxwire (the agent) -> back to the speaker.
//
// Signaling, the way OpenAI recommends for browsers: the page asks its own server for a short-lived
// client secret (POST /session, which voxwire names in the page's Server-Timing header; the server
// holds the API key, the page at most a key its user typed, in memory), then POSTs the SDP offer
// to /v1/realtime/calls with that secret as the bearer token and gets the SDP answer (201,
// Location = the call). Hang-up DELETEs the Location, then closes the connection. The page does not
// wait for ICE gathering to complete: the transceiver is ICE-lite and learns our address from our
// checks.
//
// The "oai-events" data channel carries the Realtime events: the transcript (the user's from
// conversation.item.input_audio_transcription.*, the assistant's from
// response.output_audio_transcript.*) and the user's voice activity (input_audio_buffer.speech_*).
// Whether the assistant is speaking is measured here, from the level of the audio we play.
//
// URL parameters: ?dc=0 opens no data channel (?dc=1, the default, opens "oai-events");
// ?token=... sends this bearer token instead of asking /session (or set window.voxwireToken);
// ?offer=candidate waits for the first UDP host candidate before POSTing (default: POST the offer
// as created); ?raw=1 turns off echo cancellation, noise suppression and gain control.
//
// Tests drive the page through window.voxwire (start, stop, mute, state, error, timeline, recorded,
// stats, channel, pc, callUrl, transcript, speaking, series, events, muted).
(() => {
  const params = new URLSearchParams(location.search);
  const CALLS_URL = "/v1/realtime/calls";
  const SESSION_URL = sessionEndpoint();        // null: the server mints no client secrets
  const OFFER_MODE = params.get("offer") || "immediate";
  const WITH_EVENTS = params.get("dc") !== "0";
  const RECORD_SECONDS = 20;
  const AUDIBLE = 0.003;            // about -50 dBFS: the first remote sample above this is "first_audio"
  const SPEAKING = 0.01;            // about -40 dBFS RMS: the assistant is speaking
  const CHUNK = 2048;               // frames the recorder batches before posting them to the page
  const STATS_MS = 1000;            // getStats() period
  const LEVEL_MS = 100;             // speaking-indicator period
  const POINTS = 60;                // chart length (samples)

  // Runs on the audio thread. Input 0 is the remote track, input 1 our own microphone, so the two
  // recordings are sample-aligned and their lag is the round-trip audio delay.
  const RECORDER = `
    class Recorder extends AudioWorkletProcessor {
      constructor() { super(); this.heard = false; this.fresh(); }
      fresh() { this.n = 0; this.remote = new Float32Array(${CHUNK}); this.local = new Float32Array(${CHUNK}); }
      process(inputs) {
        const remote = inputs[0][0], local = inputs[1][0];
        const frames = (remote || local || { length: 128 }).length;
        if (remote) {
          if (!this.heard && remote.some((v) => Math.abs(v) > ${AUDIBLE})) {
            this.heard = true;
            this.port.postMessage({ heard: true });
          }
          this.remote.set(remote, this.n);
        }
        if (local) this.local.set(local, this.n);
        this.n += frames;
        if (this.n + frames > ${CHUNK}) {
          this.port.postMessage({ n: this.n, remote: this.remote, local: this.local },
                                [this.remote.buffer, this.local.buffer]);
          this.fresh();
        }
        return true;
      }
    }
    registerProcessor("voxwire-recorder", Recorder);`;

  const $ = (id) => document.getElementById(id);
  const button = $("talk");
  const muteButton = $("mute");
  const statusLine = $("status");
  const audio = $("remote");
  const table = $("timeline");
  const transcriptList = $("transcript");
  const keyForm = $("key-form");
  const keyInput = $("key");

  let call = null;                  // the active call: everything that belongs to it
  let last = null;                  // the most recent call, kept after hang-up for recorded() and stats()
  let apiKey = null;                // typed into the key form; kept in memory only

  const api = {
    state: "idle",                  // idle | starting | connecting | connected | ended | failed
    error: null,                    // the last error message shown to the user, or null
    timeline: {},                   // event name -> ms since start()
    channel: null,                  // the "oai-events" RTCDataChannel (null with ?dc=0)
    pc: null,                       // the call's RTCPeerConnection (tests open more channels on it)
    callUrl: null,                  // the call's URL on the server (Location of the answer)
    muted: false,
    speaking: { user: false, assistant: false },
    transcript: [],                 // [{ id, role: "user" | "assistant", text, final }]
    series: newSeries(),            // chart data: rtt, jitter, lost, jitterBuffer (ms / packets), level, micLevel
    events: {},                     // server event type -> count
    start, stop, mute, recorded, stats,
  };
  window.voxwire = api;

  // voxwire names its client-secret endpoint in the page's Server-Timing header (readable without a
  // request); a server that does not (the aiortc baseline) is called without a token.
  function sessionEndpoint() {
    const nav = performance.getEntriesByType("navigation")[0];
    const hint = nav && nav.serverTiming ? nav.serverTiming.find((t) => t.name === "voxwire-session") : null;
    return hint ? hint.description || "/session" : null;
  }

  function newSeries() {
    return { rtt: [], jitter: [], lost: [], jitterBuffer: [], level: [], micLevel: [] };
  }

  function show(text, isError = false) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", isError);
  }

  function setState(state, text) {
    api.state = state;
    const active = state === "starting" || state === "connecting" || state === "connected";
    button.textContent = active ? "Hang up" : "Start";
    button.classList.toggle("active", active);
    muteButton.disabled = !active;
    if (!active) setMuted(false);
    if (text) show(text);
  }

  function fail(message, { askKey = false, serverEnded = false } = {}) {
    api.error = message;
    hangUp("failed", { tellServer: !serverEnded });
    show(message, true);
    if (askKey) {
      keyForm.hidden = false;
      keyInput.focus();
    }
  }

  function mark(c, name) {
    if (c !== call || name in api.timeline) return;
    api.timeline[name] = Math.round((performance.now() - c.t0) * 10) / 10;
    const row = table.insertRow();
    row.insertCell().textContent = name.replaceAll("_", " ");
    row.insertCell().textContent = api.timeline[name].toFixed(1) + " ms";
  }

  // ---- recording the call into two aligned rings (remote, local) -------------------------------

  function newRing(rate) {
    return { rate, size: RECORD_SECONDS * rate, written: 0,
             remote: new Float32Array(RECORD_SECONDS * rate), local: new Float32Array(RECORD_SECONDS * rate) };
  }

  function store(ring, chunk) {
    for (const which of ["remote", "local"]) {
      const data = chunk[which].subarray(0, chunk.n);
      const at = ring.written % ring.size;
      const head = Math.min(data.length, ring.size - at);
      ring[which].set(data.subarray(0, head), at);
      ring[which].set(data.subarray(head), 0);
    }
    ring.written += chunk.n;
  }

  async function startRecorder(c) {
    const url = URL.createObjectURL(new Blob([RECORDER], { type: "text/javascript" }));
    await c.ctx.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    c.recorder = new AudioWorkletNode(c.ctx, "voxwire-recorder", { numberOfInputs: 2, numberOfOutputs: 1 });
    c.recorder.port.onmessage = ({ data }) => {
      if (data.heard) mark(c, "first_audio");
      else store(c.ring, data);
    };
    c.recorder.connect(c.ctx.destination);          // outputs silence; keeps the node pulled
    const micSource = c.ctx.createMediaStreamSource(c.mic);
    micSource.connect(c.recorder, 0, 1);
    micSource.connect(c.micAnalyser);
  }

  // Samples of the last call, oldest first. which: "remote" | "local"; format: "array" | "base64"
  // (little-endian Float32, much faster to move out of the page).
  function recorded(which = "remote", format = "array") {
    const ring = last ? last.ring : newRing(48000);
    const count = Math.min(ring.written, ring.size);
    const start = ring.written > ring.size ? ring.written % ring.size : 0;
    const out = new Float32Array(count);
    const older = ring[which].subarray(start, start + count);        // up to the end of the ring
    out.set(older);
    out.set(ring[which].subarray(0, count - older.length), older.length);
    if (format !== "base64") return { rate: ring.rate, samples: Array.from(out) };
    const bytes = new Uint8Array(out.buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return { rate: ring.rate, frames: count, base64: btoa(binary) };
  }

  async function stats() {
    if (!last || !last.pc || last.pc.connectionState === "closed") return [];
    return Array.from((await last.pc.getStats()).values());
  }

  // ---- the call -------------------------------------------------------------------------------

  async function start() {
    if (call) return;
    const ctx = new AudioContext();                  // created inside the click: allowed to play
    const c = call = last = { t0: performance.now(), ctx, ring: newRing(ctx.sampleRate), pc: null, mic: null,
                              location: null, token: null, connected: false, timers: [],
                              micAnalyser: ctx.createAnalyser(), remoteAnalyser: ctx.createAnalyser(),
                              assistantUntil: 0, prevStats: null };
    api.timeline = {};
    api.error = null;
    api.channel = null;
    api.pc = null;
    api.callUrl = null;
    api.transcript = [];
    api.series = newSeries();
    api.events = {};
    api.speaking = { user: false, assistant: false };
    table.replaceChildren();
    renderTranscript();
    drawCharts();
    setState("starting", "Asking for the microphone…");
    // The client secret is fetched while the microphone opens: no time added to the call setup.
    const token = clientSecret(c);
    token.catch(() => {});                           // handled where it is awaited
    try {
      c.mic = await getMicrophone();
      mark(c, "mic");
      if (c !== call) return c.mic.getTracks().forEach((track) => track.stop());   // hung up meanwhile
      const recorderReady = startRecorder(c);
      const pc = c.pc = api.pc = new RTCPeerConnection({ iceServers: [] });
      watchConnection(c);
      pc.ontrack = (event) => {
        const stream = event.streams[0] || new MediaStream([event.track]);
        event.track.onunmute = () => mark(c, "track_unmuted");   // first RTP packet arrived
        audio.srcObject = stream;                              // Chromium feeds WebAudio only then
        audio.play().catch(() => show("Press Start again to allow audio playback.", true));
        recorderReady.then(() => {
          const source = c.ctx.createMediaStreamSource(stream);
          source.connect(c.recorder, 0, 0);
          source.connect(c.remoteAnalyser);
        });
      };
      pc.addTransceiver(c.mic.getAudioTracks()[0], { direction: "sendrecv", streams: [c.mic] });
      if (WITH_EVENTS) openEvents(c, pc);
      setState("connecting", "Connecting…");
      c.token = await token;
      if (c !== call) return;
      const answer = await signal(c);
      if (c !== call) return endOnServer(c);                                     // hung up meanwhile
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      watchTransports(c);
      c.timers.push(setInterval(() => sampleStats(c), STATS_MS), setInterval(() => sampleLevels(c), LEVEL_MS));
      await recorderReady;
    } catch (err) {
      if (c === call) fail(describe(err), { askKey: err && err.auth });
    }
  }

  async function getMicrophone() {
    const constraints = params.get("raw") === "1"
      ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false } : true;
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: constraints });
    } catch (err) {
      if (err.name === "NotAllowedError") throw new Error("Microphone permission denied: allow the microphone for this page and press Start again.");
      if (err.name === "NotFoundError") throw new Error("No microphone found: connect one and press Start again.");
      throw new Error(`Cannot open the microphone: ${err.message || err.name}`);
    }
  }

  // The bearer token for the call: ?token= / window.voxwireToken as given, else a client secret
  // minted by the server (POST /session, with the API key if the user typed one), else none.
  async function clientSecret(c) {
    const given = params.get("token") || window.voxwireToken;
    if (given) return given;
    if (!SESSION_URL) return null;
    const headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
    let response;
    try {
      response = await fetch(SESSION_URL, { method: "POST", headers });
    } catch (err) {
      throw new Error(`Server unreachable: ${err.message}. Is voxwire running?`);
    }
    if (!response.ok) throw await httpError(response);
    const body = await response.json();
    mark(c, "client_secret");
    return body.value;
  }

  // Create the offer and exchange it for the answer. "immediate" POSTs the offer as created
  // (no candidates; the server learns our address from our first check) while ICE gathering runs
  // in parallel; "candidate" waits for the first UDP host candidate and sends it in the offer.
  async function signal(c) {
    const pc = c.pc;
    const offer = await pc.createOffer();
    mark(c, "offer_created");
    let response;
    if (OFFER_MODE === "candidate") {
      const firstCandidate = new Promise((resolve) => {
        pc.addEventListener("icecandidate", ({ candidate }) => {
          if (!candidate || candidate.protocol === "udp") resolve();
        });
      });
      await pc.setLocalDescription(offer);
      await firstCandidate;
      response = post(c, pc.localDescription.sdp);
    } else {
      response = post(c, offer.sdp);
      await pc.setLocalDescription(offer);
    }
    response = await response;
    mark(c, "answer_received");
    if (!response.ok) throw await httpError(response);
    const location = response.headers.get("Location");
    if (location) c.location = api.callUrl = new URL(location, response.url).href;
    return await response.text();
  }

  function authHeaders(c) {
    return c.token ? { Authorization: `Bearer ${c.token}` } : {};
  }

  async function post(c, sdp) {
    const headers = { "Content-Type": "application/sdp", ...authHeaders(c) };
    mark(c, "offer_sent");
    try {
      return await fetch(CALLS_URL, { method: "POST", headers, body: sdp });
    } catch (err) {
      throw new Error(`Server unreachable: ${err.message}. Is voxwire running?`);
    }
  }

  async function httpError(response) {
    let message = response.statusText;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (err) { /* not JSON: keep the status text */ }
    if (response.status === 401 || response.status === 403) {
      const err = new Error(`Authentication refused (HTTP ${response.status}): ${message} Enter a valid API key and press Start again.`);
      err.auth = true;
      return err;
    }
    if (response.status === 429) return new Error(`The server is busy (HTTP 429): ${message}`);
    return new Error(`Server refused the call (HTTP ${response.status}): ${message}`);
  }

  function describe(err) {
    return (err && err.message) || String(err);
  }

  function watchConnection(c) {
    const pc = c.pc;
    pc.addEventListener("icecandidate", ({ candidate }) => {
      if (candidate && candidate.protocol === "udp") mark(c, "first_candidate");
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      if (pc.iceConnectionState === "connected" || pc.iceConnectionState === "completed") mark(c, "ice_connected");
    });
    pc.addEventListener("connectionstatechange", () => {
      if (c !== call) return;
      const state = pc.connectionState;
      if (state === "connected") {
        mark(c, "connected");
        c.connected = true;
        setState("connected", "Connected: talk now.");
      } else if (state === "disconnected") {
        show("Connection lost: trying to recover…", true);
      } else if (state === "failed") {
        fail(c.connected ? "Connection lost: the server stopped answering."
                         : "Connection failed: no network path to the server (ICE or DTLS failed).");
      }
    });
  }

  // The transports exist once the answer is applied; their events are the precise ICE and DTLS times.
  // A DTLS transport that closes while we did not hang up means the server ended the call.
  function watchTransports(c) {
    const dtls = c.pc.getSenders()[0] && c.pc.getSenders()[0].transport;
    if (!dtls) return;
    const onDtls = () => {
      if (dtls.state === "connected") mark(c, "dtls_connected");
      if (dtls.state === "closed" && c === call) fail("The server ended the call.", { serverEnded: true });
    };
    dtls.addEventListener("statechange", onDtls);
    onDtls();
    const ice = dtls.iceTransport;
    if (!ice) return;
    const onIce = () => { if (ice.state === "connected" || ice.state === "completed") mark(c, "ice_connected"); };
    ice.addEventListener("statechange", onIce);
    onIce();
  }

  // The server hears of the hang-up by DELETE first, then the peer connection closes (closing it
  // first would end the call on the server by DTLS close_notify, and the DELETE would find nothing).
  function hangUp(finalState, { tellServer = true } = {}) {
    const c = call;
    if (!c) return;
    call = null;                                     // late events of this call are ignored from now on
    c.timers.forEach(clearInterval);
    const told = tellServer ? endOnServer(c) : Promise.resolve();
    const closePc = () => { if (c.pc) c.pc.close(); };
    Promise.race([told, new Promise((resolve) => setTimeout(resolve, 1000))]).then(closePc, closePc);
    if (c.mic) c.mic.getTracks().forEach((track) => track.stop());
    c.ctx.close();
    audio.srcObject = null;
    api.speaking = { user: false, assistant: false };
    showSpeakers(0, 0);
    setState(finalState, finalState === "ended" ? "Call ended." : null);
  }

  function endOnServer(c) {
    if (!c.location) return Promise.resolve();
    return fetch(c.location, { method: "DELETE", headers: authHeaders(c), keepalive: true }).catch(() => {});
  }

  function stop() {
    hangUp("ended");
  }

  // ---- mute ------------------------------------------------------------------------------------

  function setMuted(on) {
    api.muted = on;
    muteButton.setAttribute("aria-pressed", String(on));
    muteButton.textContent = on ? "Unmute" : "Mute";
    if (call && call.mic) call.mic.getAudioTracks().forEach((track) => { track.enabled = !on; });
  }

  function mute(on = !api.muted) {
    if (!call) return;
    setMuted(on);
    if (call.connected) show(on ? "Muted: the assistant does not hear you." : "Connected: talk now.");
  }

  // ---- the Realtime events: transcript and voice activity ---------------------------------------

  function openEvents(c, pc) {
    const channel = api.channel = pc.createDataChannel("oai-events");
    channel.onopen = () => mark(c, "datachannel_open");
    channel.onmessage = (event) => {
      if (c !== call || typeof event.data !== "string") return;
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      onServerEvent(c, message);
    };
  }

  function entry(id, role) {
    let item = api.transcript.find((e) => e.id === id);
    if (!item) {
      item = { id, role, text: "", final: false };
      api.transcript.push(item);
    }
    return item;
  }

  function onServerEvent(c, event) {
    const type = event.type || "?";
    api.events[type] = (api.events[type] || 0) + 1;
    switch (type) {
      case "session.created":
        mark(c, "session_created");
        if (event.session && event.session.model) $("agent").textContent = `agent: ${event.session.model.replace(/^voxwire-/, "")}`;
        break;
      case "input_audio_buffer.speech_started":
        api.speaking.user = true;
        break;
      case "input_audio_buffer.speech_stopped":
        api.speaking.user = false;
        break;
      case "conversation.item.added": {
        const item = event.item || {};
        if (item.type === "message" && (item.role === "user" || item.role === "assistant")) entry(item.id, item.role);
        break;
      }
      case "conversation.item.input_audio_transcription.delta":
        entry(event.item_id, "user").text += event.delta || "";
        break;
      case "conversation.item.input_audio_transcription.completed": {
        const item = entry(event.item_id, "user");
        item.text = event.transcript || "";
        item.final = true;
        mark(c, "first_transcript");
        break;
      }
      case "response.output_audio_transcript.delta":
      case "response.output_text.delta":
        entry(event.item_id, "assistant").text += event.delta || "";
        mark(c, "first_transcript");
        break;
      case "response.output_audio_transcript.done":
      case "response.output_text.done": {
        const item = entry(event.item_id, "assistant");
        item.text = event.transcript !== undefined ? event.transcript : (event.text || item.text);
        item.final = true;
        break;
      }
      case "conversation.item.truncated": {
        const item = api.transcript.find((e) => e.id === event.item_id);
        if (item) item.interrupted = true;
        break;
      }
      case "error":
        if (event.error && event.error.message) show(`Server: ${event.error.message}`, true);
        break;
      default:
        return;
    }
    renderTranscript();
  }

  function renderTranscript() {
    const items = api.transcript.filter((e) => e.text || !e.final);
    if (!items.length) {
      transcriptList.innerHTML = '<li class="empty muted">The conversation appears here.</li>';
      return;
    }
    transcriptList.replaceChildren(...items.map((e) => {
      const li = document.createElement("li");
      li.className = e.role + (e.text ? "" : " pending");
      li.dataset.role = e.role;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = e.role === "user" ? "You" : "Assistant";
      li.append(who, e.text || (e.role === "user" ? "(speech)" : "…"));
      if (e.interrupted) li.append(" — interrupted");
      return li;
    }));
    transcriptList.scrollTop = transcriptList.scrollHeight;
  }

  // ---- who is speaking, audio levels ------------------------------------------------------------

  function rms(analyser) {
    const data = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += v * v;
    return Math.sqrt(sum / data.length);
  }

  function sampleLevels(c) {
    if (c !== call) return;
    const mic = api.muted ? 0 : rms(c.micAnalyser);
    const remote = rms(c.remoteAnalyser);
    const now = performance.now();
    if (remote > SPEAKING) c.assistantUntil = now + 300;         // a short hang-over between words
    api.speaking.assistant = now < c.assistantUntil;
    showSpeakers(mic, remote);
  }

  function showSpeakers(mic, remote) {
    $("who-user").dataset.active = String(api.speaking.user);
    $("who-assistant").dataset.active = String(api.speaking.assistant);
    const percent = (v) => `${Math.min(100, Math.max(0, (20 * Math.log10(v + 1e-9) + 60) / 60 * 100)).toFixed(0)}%`;
    $("level-user").style.setProperty("--level", percent(mic));
    $("level-assistant").style.setProperty("--level", percent(remote));
  }

  // ---- getStats() charts ----------------------------------------------------------------------

  async function sampleStats(c) {
    if (c !== call || !c.pc) return;
    const report = await c.pc.getStats();
    if (c !== call) return;
    let inbound = null, remoteInbound = null, pair = null, source = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s;
      else if (s.type === "remote-inbound-rtp" && s.kind === "audio") remoteInbound = s;
      else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
      else if (s.type === "media-source" && s.kind === "audio") source = s;
    });
    const prev = c.prevStats;
    const series = api.series;
    const rtt = remoteInbound && remoteInbound.roundTripTime !== undefined ? remoteInbound.roundTripTime
      : pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime : null;
    push(series.rtt, rtt === null ? null : rtt * 1000);
    push(series.jitter, inbound && inbound.jitter !== undefined ? inbound.jitter * 1000 : null);
    push(series.lost, inbound ? Math.max(0, inbound.packetsLost || 0) : null);
    let buffer = null;
    if (inbound && prev && inbound.jitterBufferEmittedCount > prev.emitted) {
      buffer = 1000 * (inbound.jitterBufferDelay - prev.delay) / (inbound.jitterBufferEmittedCount - prev.emitted);
    }
    push(series.jitterBuffer, buffer);
    push(series.level, inbound && inbound.audioLevel !== undefined ? inbound.audioLevel : null);
    push(series.micLevel, source && source.audioLevel !== undefined ? source.audioLevel : null);
    if (inbound) c.prevStats = { delay: inbound.jitterBufferDelay || 0, emitted: inbound.jitterBufferEmittedCount || 0 };
    drawCharts();
  }

  function push(values, value) {
    values.push(value === null || value === undefined || !Number.isFinite(value) ? null : Math.round(value * 1000) / 1000);
    if (values.length > POINTS) values.shift();
  }

  function drawCharts() {
    const s = api.series;
    const draw = window.voxwireCharts.draw;
    draw($("chart-rtt"), [{ values: s.rtt, color: "#0a7d5a" }], { unit: "ms", points: POINTS });
    draw($("chart-jitter"), [{ values: s.jitter, color: "#0a7d5a" }], { unit: "ms", digits: 1, points: POINTS });
    draw($("chart-lost"), [{ values: s.lost, color: "#c0392b" }], { unit: "pkts", points: POINTS });
    draw($("chart-jitter-buffer"), [{ values: s.jitterBuffer, color: "#0a7d5a" }], { unit: "ms", points: POINTS });
    draw($("chart-level"), [{ values: s.level, color: "#0a7d5a" }, { values: s.micLevel, color: "#2563eb" }],
         { min: 0, max: 1, digits: 2, points: POINTS });
  }

  // ---- page wiring ----------------------------------------------------------------------------

  button.addEventListener("click", () => (call ? stop() : start()));
  muteButton.addEventListener("click", () => mute());
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = keyInput.value.trim() || null;
    keyForm.hidden = true;
    show(apiKey ? "Key set: press Start." : "No key set.");
  });
  window.addEventListener("pagehide", stop);
  drawCharts();
})();
