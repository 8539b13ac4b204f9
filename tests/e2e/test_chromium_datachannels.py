"""Headless Chromium against `voxwire serve`: data channels, with and without SNAP.

One call per mode. The page (``?dc=1``) opens ``oai-events`` before its offer; once the call is up the
test opens a second channel ("echo") on the page's RTCPeerConnection (``window.voxwire.pc``). On
``oai-events`` the server greets with ``session.created``, answers ``session.update`` with
``session.updated`` and a bogus event with an ``error`` naming its ``event_id``. Every other channel
is the server's loopback: a small string, binary, an empty string, empty binary and 256 KiB (binary
and string) must come back intact (SHA-256 compared in the page).

SNAP (``WebRTC-Sctp-Snap/Enabled/``, draft-hancke-tsvwg-snap): the offer carries ``a=sctp-init``
and voxwire answers with its own, so the association is up with DTLS and no INIT round trips.
Each mode runs in its own Chromium (field trials are per process). The DTLS connected -> channel
open time is printed (``pytest -s``); bench/datachannel.py measures it properly.
"""

from __future__ import annotations

import json

import pytest

from .browser import launch_browser, open_page, start_call, stop_call, timeline, wait_for

SNAP_TRIAL = "WebRTC-Sctp-Snap/Enabled/"
MAX_MESSAGE = 256 * 1024  # voxwire's a=max-message-size

#: Page-side helpers (window.dc), installed before start(). Every channel created on any
#: RTCPeerConnection is tracked from birth: its open time and every message it receives, so nothing
#: sent at open (session.created) is missed. ``dtls`` is when the call's DTLS transport reached
#: "connected" (listened for as soon as setRemoteDescription resolves, like the page does; if it was
#: already connected then, ``dtlsLate`` is set and the time is an upper bound). Times are
#: performance.now() ms.
DC_HOOKS = r"""
(() => {
  if (window.dc) return;
  const dc = window.dc = { channels: {}, inbox: {}, opened: {}, waiters: {}, dtls: null, dtlsLate: false };

  const createDataChannel = RTCPeerConnection.prototype.createDataChannel;
  RTCPeerConnection.prototype.createDataChannel = function (label, options) {
    const ch = createDataChannel.call(this, label, options);
    ch.binaryType = "arraybuffer";
    dc.channels[label] = ch;
    dc.inbox[label] = [];
    ch.addEventListener("open", () => { dc.opened[label] = performance.now(); });
    ch.addEventListener("message", (e) => {
      const waiter = (dc.waiters[label] || []).shift();
      const msg = { t: performance.now(), data: e.data };
      if (waiter) waiter(msg); else dc.inbox[label].push(msg);
    });
    return ch;
  };

  const setRemoteDescription = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = async function (...args) {
    const result = await setRemoteDescription.apply(this, args);
    const dtls = this.sctp ? this.sctp.transport : this.getSenders()[0].transport;
    const check = () => { if (dc.dtls === null && dtls.state === "connected") dc.dtls = performance.now(); };
    dtls.addEventListener("statechange", check);
    if (dtls.state === "connected") dc.dtlsLate = true;
    check();
    return result;
  };

  // The next message on `label` (queued or future), or an error after `ms`.
  dc.next = (label, ms = 5000) => {
    const queued = dc.inbox[label].shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const waiters = dc.waiters[label] = dc.waiters[label] || [];
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(done), 1);
        reject(new Error(`no message on ${label} within ${ms} ms`));
      }, ms);
      const done = (msg) => { clearTimeout(timer); resolve(msg); };
      waiters.push(done);
    });
  };

  dc.open = (label, options = {}, ms = 5000) => {
    const ch = window.voxwire.pc.createDataChannel(label, options);
    if (ch.readyState === "open") return Promise.resolve(dc.opened[label]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label} not open within ${ms} ms`)), ms);
      ch.addEventListener("open", () => { clearTimeout(timer); resolve(dc.opened[label]); });
      ch.addEventListener("error", (e) => { clearTimeout(timer); reject(new Error(`${label}: ${e.error}`)); });
    });
  };

  dc.bytes = (data) => typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
  dc.sha256 = async (data) => {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", dc.bytes(data)));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  };
  dc.describe = async (data) => ({
    kind: typeof data === "string" ? "string" : "binary",
    bytes: dc.bytes(data).length,
    sha256: await dc.sha256(data),
  });

  // A message of `kind` ("string" | "binary") and `size` bytes; random content (ASCII for strings).
  dc.make = (kind, size) => {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
    if (kind === "binary") return bytes.buffer;
    let text = "";
    for (let i = 0; i < size; i += 0x8000) {
      text += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + 0x8000), (b) => 32 + (b % 95)));
    }
    return text;
  };

  // Send each message on `label` and wait for its echo; what was sent and what came back.
  dc.echo = async (label, messages, ms = 5000) => {
    const ch = dc.channels[label];
    const out = [];
    for (const data of messages) {
      const t0 = performance.now();
      ch.send(data);
      const got = await dc.next(label, ms);
      out.push({ sent: await dc.describe(data), got: await dc.describe(got.data), ms: got.t - t0 });
    }
    return out;
  };
})();
"""


def install_hooks(page) -> None:
    page.evaluate(DC_HOOKS)


def sdp_lines(sdp: str, prefix: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module", params=[False, True], ids=["snap-off", "snap-on"])
def chromium(request, speech):
    """(snap, browser): a Chromium per mode, one at a time (the SNAP field trial is per process)."""
    with launch_browser(speech, field_trials=[SNAP_TRIAL] if request.param else []) as context:
        yield request.param, context


def test_data_channels(chromium, voxwire_server):
    snap, browser = chromium
    page = open_page(browser, voxwire_server.url, "?dc=1")
    try:
        install_hooks(page)
        start_call(page)
        wait_for(page, "datachannel_open")
        events = timeline(page)
        echo_opened = page.evaluate("window.dc.open('echo')")

        # -- oai-events: the Realtime protocol -------------------------------------------------------
        created = page.evaluate("window.dc.next('oai-events').then((m) => m.data)")
        created = json.loads(created)
        assert created["type"] == "session.created", created
        assert created["session"]["object"] == "realtime.session", created
        update = {
            "type": "session.update",
            "event_id": "evt_update_1",
            "session": {"type": "realtime", "instructions": "Answer in one sentence."},
        }
        page.evaluate("(text) => window.dc.channels['oai-events'].send(text)", json.dumps(update))
        updated = json.loads(page.evaluate("window.dc.next('oai-events').then((m) => m.data)"))
        assert updated["type"] == "session.updated", updated
        assert updated["session"]["instructions"] == "Answer in one sentence.", updated
        assert updated["session"]["id"] == created["session"]["id"]
        bogus = {"type": "bogus.event", "event_id": "evt_bogus_7"}
        page.evaluate("(text) => window.dc.channels['oai-events'].send(text)", json.dumps(bogus))
        error = json.loads(page.evaluate("window.dc.next('oai-events').then((m) => m.data)"))
        assert error["type"] == "error", error
        assert error["error"]["event_id"] == "evt_bogus_7", error
        assert "bogus.event" in error["error"]["message"], error
        # The session survived: a second update is answered too.
        update["event_id"] = "evt_update_2"
        page.evaluate("(text) => window.dc.channels['oai-events'].send(text)", json.dumps(update))
        again = json.loads(page.evaluate("window.dc.next('oai-events').then((m) => m.data)"))
        assert again["type"] == "session.updated", again

        # -- the echo channel: string, binary, empty, 256 KiB ----------------------------------------
        echoed = page.evaluate(
            """async (max) => window.dc.echo('echo', [
                 'hello, voxwire \u00e9\u4e16\U0001f600',
                 new Uint8Array(Array.from({length: 256}, (_, i) => i)).buffer,
                 '',
                 new ArrayBuffer(0),
                 window.dc.make('binary', max),
                 window.dc.make('string', max),
                 'after the big ones',
               ])""",
            MAX_MESSAGE,
        )
        for item in echoed:
            assert item["got"] == item["sent"], item
        assert [item["sent"]["bytes"] for item in echoed][2:6] == [0, 0, MAX_MESSAGE, MAX_MESSAGE]
        assert page.evaluate("window.dc.inbox['echo'].length") == 0  # nothing extra came back

        # -- SNAP in the SDP, and the timing ---------------------------------------------------------
        offer = page.evaluate("window.voxwire.pc.localDescription.sdp")
        answer = page.evaluate("window.voxwire.pc.remoteDescription.sdp")
        assert sdp_lines(answer, "a=max-message-size:") == [f"a=max-message-size:{MAX_MESSAGE}"], answer
        if snap:
            assert len(sdp_lines(offer, "a=sctp-init:")) == 1, offer
            assert len(sdp_lines(answer, "a=sctp-init:")) == 1, answer
        else:
            assert sdp_lines(offer, "a=sctp-init:") == [], offer
            assert sdp_lines(answer, "a=sctp-init:") == [], answer
        times = page.evaluate("({dtls: dc.dtls, late: dc.dtlsLate, opened: dc.opened})")
        assert times["dtls"] is not None, times
        ready = times["opened"]["oai-events"] - times["dtls"]
        rtt = [item["ms"] for item in echoed[:4]]
        print(
            f"\nSNAP {'on' if snap else 'off'}: DTLS connected -> oai-events open {ready:.1f} ms"
            f"{' (DTLS seen late)' if times['late'] else ''}; page timeline {events}; "
            f"echo channel opened {echo_opened - times['dtls']:.1f} ms after DTLS; "
            f"small-message round trips {', '.join(f'{x:.1f}' for x in rtt)} ms; "
            f"256 KiB round trips {echoed[4]['ms']:.1f} / {echoed[5]['ms']:.1f} ms"
        )
        assert ready < 1000, times
        assert page.console_errors == []
        stop_call(page)
    finally:
        page.close()
