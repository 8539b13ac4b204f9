"""Headless Chromium through the relay tier, every part in its own process (tests/e2e/relay_fleet.py):
a real ``redis-server``, ``voxwire relay`` and two ``voxwire transceiver`` processes, the page loaded
from (and POSTing its offer to) one transceiver's HTTP port while its media goes to the relay's one
public UDP address.

* each session lands on the transceiver that answered its offer, the answer advertises the relay
  (not the transceiver), audio echoes both ways, and the transceiver logs the client's true address
  (the page's own candidate, not the relay's internal socket);
* a relay restart in the middle of a call: audio resumes (bench/relay_restart.py measures the gap);
* Redis stopped during a call: the call keeps flowing and a new call still connects from its token;
* ``voxwire serve --relay-port``: the same through the relay embedded in the one serve process.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from voxwire.relay.cli import parse_token_keys
from voxwire.wire.token import TokenVerifier

from .browser import (
    EchoCall,
    delay,
    find_in_loop,
    free_port,
    read_wav,
    recording,
    run_server,
    start_call,
    stop_call,
    timeline,
    voxwire_command,
    wait_for,
)
from .relay_fleet import RelayFleet, TransceiverProcess, token_key

CALLS_PATH = "/v1/realtime/calls"


# ---- page helpers -------------------------------------------------------------------------------


def capture_offer_responses(page) -> list:
    """Collects the responses to the page's offer POSTs (the SDP answer and its Location)."""
    got: list = []
    page.on("response", lambda r: r.request.method == "POST" and r.url.endswith(CALLS_PATH) and got.append(r))
    return got


def answer_of(responses: list) -> tuple[str, str]:
    """(call id, answer SDP) of the one captured offer POST."""
    assert len(responses) == 1, responses
    response = responses[0]
    assert response.status == 201, response.status
    call_id = response.headers["location"].rstrip("/").rsplit("/", 1)[1]
    assert re.fullmatch(r"rtc_[0-9a-f]{24}", call_id), call_id
    return call_id, response.text()


def candidates(sdp: str) -> list[tuple[str, int]]:
    """(address, port) of every a=candidate line."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            out.append((parts[4], int(parts[5])))
    return sorted(set(out))


def ice_ufrag(sdp: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in sdp.splitlines() if line.startswith("a=ice-ufrag:"))


def stats(page) -> list[dict]:
    return page.evaluate("window.voxwire.stats()")


def selected_pair(page) -> tuple[tuple[str, int], tuple[str, int]]:
    """((local address, port), (remote address, port)) of the page's selected candidate pair."""
    report = stats(page)
    by_id = {s["id"]: s for s in report}
    transport = next(s for s in report if s["type"] == "transport" and s.get("selectedCandidatePairId"))
    pair = by_id[transport["selectedCandidatePairId"]]
    local, remote = by_id[pair["localCandidateId"]], by_id[pair["remoteCandidateId"]]
    return (local["address"], int(local["port"])), (remote["address"], int(remote["port"]))


def packets_received(page) -> int:
    return sum(int(s.get("packetsReceived", 0)) for s in stats(page)
               if s["type"] == "inbound-rtp" and s.get("kind") == "audio")


def wait_packets(page, more_than: int, timeout: float) -> float:
    """Seconds until the page has received more than `more_than` audio packets (polled every 20 ms)."""
    t0 = time.monotonic()
    while packets_received(page) <= more_than:
        assert time.monotonic() - t0 < timeout, f"no audio packets for {timeout} s (still {more_than})"
        page.wait_for_timeout(20)
    return time.monotonic() - t0


def wait_log(proc: TransceiverProcess, pattern: str, timeout: float = 5.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while (m := re.search(pattern, proc.log())) is None:
        assert time.monotonic() < deadline, f"{proc.name} never logged {pattern!r}:\n{proc.log()[-3000:]}"
        time.sleep(0.05)
    return m


def analyse(page, speech: Path, other_speech: Path) -> EchoCall:
    """EchoCall of the page's recording so far (the call keeps running)."""
    rec = recording(page)
    result = EchoCall(
        heard=find_in_loop(read_wav(speech), rec.remote, rec.rate),
        control=find_in_loop(read_wav(other_speech), rec.remote, rec.rate),
        echo=delay(rec.local, rec.remote, rec.rate),
        events=timeline(page),
    )
    print(f"\nheard {result.heard}\ncontrol {result.control}\necho {result.echo}")
    return result


def tail_heard(page, speech: Path, seconds: float = 1.5):
    """How well the last `seconds` the page heard match its own speech (the echo is back)."""
    rec = recording(page)
    tail = rec.remote[-int(seconds * rec.rate):]
    assert np.sqrt(np.mean(tail.astype(np.float64) ** 2)) > 1e-3, "the page hears silence"
    return find_in_loop(read_wav(speech), tail, rec.rate)


def assert_client_address_logged(proc: TransceiverProcess, call_id: str, local: tuple[str, int],
                                 not_from: set[tuple[str, int]]) -> None:
    """The transceiver logs the page's own transport address for the call (Call, debug level)."""
    m = wait_log(proc, rf"call {call_id} client address (\S+):(\d+)")
    logged = (m.group(1), int(m.group(2)))
    assert logged == local, (logged, local)
    assert logged not in not_from, logged


# ---- the fleet ----------------------------------------------------------------------------------


@pytest.fixture
def fleet(redis_server, tmp_path):
    """A relay in front of two transceivers (ids 1, 2), found through a fresh Redis registry."""
    if not redis_server.running:
        redis_server.start()
    redis_server.flush()
    try:
        metrics_port = free_port()
        with RelayFleet(2, redis=redis_server, log_dir=tmp_path,
                        relay_extra=("--metrics-port", str(metrics_port))) as f:
            f.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
            yield f
    finally:
        if not redis_server.running:  # an outage test stopped it: the session's server comes back
            redis_server.start()


def test_each_session_lands_on_the_transceiver_that_answered(fleet, new_page, speech, other_speech):
    txs = fleet.transceivers
    pages = [new_page(t.url, "?raw=1") for t in txs]  # each page POSTs to where it was loaded from
    responses = [capture_offer_responses(p) for p in pages]
    for page in pages:
        start_call(page)
    for page in pages:
        wait_for(page, "first_audio", timeout=15)
    internal = {fleet.internal, *(t.address for t in txs)}
    ids = []
    for page, got, tx, other in zip(pages, responses, txs, reversed(txs), strict=True):
        call_id, answer = answer_of(got)
        ids.append(call_id)
        # The answer advertises the relay's public address, never the transceiver's own socket.
        assert candidates(answer) == [fleet.public], answer
        local, remote = selected_pair(page)
        assert remote == fleet.public, remote
        # The session is on the transceiver that answered, and that one sees the page's address.
        wait_log(tx, rf"call {call_id} connected")
        assert call_id not in other.log()
        assert_client_address_logged(tx, call_id, local, internal | {fleet.public})
    assert ids[0] != ids[1]
    pages[0].wait_for_timeout(3000)
    for page in pages:
        analyse(page, speech, other_speech).assert_echoed()
    for page in pages:
        assert page.console_errors == []
        stop_call(page)
    # The relay's own /metrics (voxwire relay --metrics-port) saw both flows and no addresses.
    with urllib.request.urlopen(fleet.metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(text) for s in family.samples}
    assert got[("voxwire_relay_flow_events_total", (("event", "created"),))] >= 2, text
    assert got[("voxwire_relay_flows", ())] >= 2, text
    assert "127.0.0.1" not in text


def test_relay_restart_mid_call_audio_resumes(fleet, new_page, speech):
    page = new_page(fleet.transceivers[0].url, "?raw=1")
    start_call(page)
    wait_for(page, "first_audio", timeout=15)
    local, _ = selected_pair(page)
    # The relay wrote the flow to the Redis flow cache (a restarted relay recovers it from there).
    deadline = time.monotonic() + 3
    while f"voxwire:0:flow:{local[0]}|{local[1]}" not in fleet.flow_keys():
        assert time.monotonic() < deadline, fleet.flow_keys()
        time.sleep(0.05)
    page.wait_for_timeout(1000)
    assert tail_heard(page, speech).corr > 0.6
    before = packets_received(page)
    outage, startup = fleet.restart_relay()
    after_restart = packets_received(page)
    resumed = wait_packets(page, after_restart + 1, timeout=5)
    print(f"\nrelay down {outage * 1000:.0f} ms (start {startup * 1000:.0f} ms); "
          f"{after_restart - before} packets meanwhile; audio packets again {resumed * 1000:.0f} ms after it listened")
    # With the flow cache (and the transceiver's own packets) the path is back well before any
    # consent check (Chromium's come every ~2.5 s): allow for a loaded machine.
    assert resumed < 1.5, resumed
    page.wait_for_timeout(2000)
    heard = tail_heard(page, speech)
    assert heard.corr > 0.6, heard
    assert page.evaluate("window.voxwire.state") == "connected"
    stop_call(page)


@contextlib.contextmanager
def registry_kept_empty(url: str):
    """Deletes every transceiver's registry entry every 20 ms: a Redis that came back empty, before
    the transceivers' next heartbeats."""
    import redis

    stop = threading.Event()

    def run() -> None:
        client = redis.Redis.from_url(url, socket_timeout=1)
        while not stop.is_set():
            with contextlib.suppress(redis.RedisError):
                keys = client.keys("voxwire:0:tx:*")
                if keys:
                    client.delete(*keys)
            stop.wait(0.02)
        client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def test_redis_outage_established_call_continues_new_call_connects(fleet, new_page, speech, other_speech):
    tx1, tx2 = fleet.transceivers
    page1 = new_page(tx1.url, "?raw=1")
    start_call(page1)
    wait_for(page1, "first_audio", timeout=15)
    page1.wait_for_timeout(500)

    fleet.stop_redis()
    n0 = packets_received(page1)
    page1.wait_for_timeout(1500)
    n1 = packets_received(page1)
    assert n1 - n0 >= 50, (n0, n1)  # 20 ms packets: ~75 in 1.5 s

    # A new call on the other transceiver: the relay routes it from its token (and its cached
    # directory), with Redis down.
    page2 = new_page(tx2.url, "?raw=1")
    got = capture_offer_responses(page2)
    start_call(page2)
    wait_for(page2, "first_audio", timeout=15)
    call_id, answer = answer_of(got)
    assert candidates(answer) == [fleet.public]
    wait_log(tx2, rf"call {call_id} connected")
    local2, _ = selected_pair(page2)
    assert_client_address_logged(tx2, call_id, local2, {fleet.internal})
    page2.wait_for_timeout(2500)
    analyse(page2, speech, other_speech).assert_echoed()
    stop_call(page2)

    # The established call kept flowing all along, and still echoes.
    n2 = packets_received(page1)
    assert n2 - n1 >= 100, (n1, n2)
    heard = tail_heard(page1, speech)
    assert heard.corr > 0.6, heard
    assert fleet.relay is not None and "unavailable" in fleet.relay.log()  # the relay did notice

    # Redis comes back empty: the relay's next registry refresh finds no transceivers at all (they
    # re-register at their next heartbeat); the established call must not notice either.
    with registry_kept_empty(fleet.redis.url):
        fleet.start_redis()
        deadline = time.monotonic() + 12
        while "is back" not in fleet.relay.log():  # the relay's first Redis call since: a refresh
            assert time.monotonic() < deadline, fleet.relay.log()
            page1.wait_for_timeout(100)
        n3 = packets_received(page1)
        page1.wait_for_timeout(1500)
        n4 = packets_received(page1)
    assert n4 - n3 >= 50, (n3, n4)
    assert page1.evaluate("window.voxwire.state") == "connected"
    stop_call(page1)


def test_serve_with_embedded_relay(new_page, speech, other_speech, tmp_path):
    http_port, udp_port, relay_port = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    keys = token_key(7)
    cmd = voxwire_command(http_port, udp_port, "--relay-port", str(relay_port), "--token-keys", keys,
                          "--transceiver-id", "42", "--log-level", "debug")
    with run_server(cmd, port=http_port, log_dir=tmp_path) as server:
        assert f"relay mode: public udp 127.0.0.1:{relay_port}" in server.log()
        page = new_page(server.url, "?raw=1")
        got = capture_offer_responses(page)
        start_call(page)
        wait_for(page, "first_audio", timeout=15)
        call_id, answer = answer_of(got)
        assert candidates(answer) == [("127.0.0.1", relay_port)], answer
        token = TokenVerifier(parse_token_keys(keys), 60).verify(ice_ufrag(answer), time.time())
        assert (token.transceiver_id, token.key_id) == (42, 7)
        local, remote = selected_pair(page)
        assert remote == ("127.0.0.1", relay_port)
        m = re.search(rf"call {call_id} client address (\S+):(\d+)", server.log())
        assert m is not None and (m.group(1), int(m.group(2))) == local, (m, local)
        assert local[1] not in (udp_port, relay_port)
        page.wait_for_timeout(3000)
        analyse(page, speech, other_speech).assert_echoed()
        stop_call(page)
