"""/metrics: Prometheus text that the official parser reads, bounded labels, counters that move as
calls come and go; the traffic counter and the bounded history of the call monitor."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import prometheus_client
import pytest
from aiohttp.test_utils import TestClient as HttpClient
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from voxwire.agent.echo import EchoAgent
from voxwire.aio.agents import AgentRunner
from voxwire.observability.calls import CallMonitor
from voxwire.observability.metrics import Metrics, TrafficCounter, close_reason_label, relay_registry
from voxwire.observability.series import Series
from voxwire.observability.tracing import Tracer
from voxwire.proto.certificate import Certificate
from voxwire.signaling import dashboard
from voxwire.signaling.auth import Authenticator
from voxwire.signaling.http import make_app
from voxwire.testing.client import TestClient
from voxwire.testing.sockets import sockname, udp, until
from voxwire.transceiver.service import Transceiver, TransceiverConfig

API_KEY = "vx-metrics-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, through prometheus_client's text parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("voxwire_"), family.name
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(parsed, name: str, **labels: str) -> float:
    return parsed.get((name, tuple(sorted(labels.items()))), 0.0)


async def gateway(certs, interval: float = 0.05):
    server = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 1),)), EchoAgent(), certificate=certs[0])
    shell = await udp(server.endpoint)
    shell.after_drain = AgentRunner(server, shell).after_drain
    server.config = TransceiverConfig(advertised=(sockname(shell),))
    app = make_app(server, shell, Authenticator((API_KEY,)))
    if dashboard.MONITOR not in app:  # until make_app adds the dashboard itself
        dashboard.add_routes(app, interval=interval)
    http = HttpClient(TestServer(app))
    await http.start_server()
    return server, shell, http


async def place_call(http, certs, seed: int):
    client = TestClient(certs[1], asyncio.get_running_loop().time(), rng=random.Random(seed))
    client_shell = await udp(client)
    resp = await http.post("/v1/realtime/calls", data=client.offer(data_channel=True),
                           headers={"Content-Type": "application/sdp", **AUTH})
    assert resp.status == 201, await resp.text()
    call_id = resp.headers["Location"].rsplit("/", 1)[1]
    client.answer(await resp.text(), client_shell.now())
    client_shell.drain()
    await until(lambda: client.srtp is not None)
    client.open_channel("oai-events", client_shell.now())
    client_shell.drain()
    return client, client_shell, call_id


def test_metrics_parse_and_move_with_calls(certs):
    async def main() -> None:
        server, shell, http = await gateway(certs)
        metrics = http.server.app[dashboard.METRICS]
        scraped = [""]

        def scrape():  # what GET /metrics returns, without a request per poll
            http.server.app[dashboard.MONITOR].sync()
            scraped[0] = metrics.exposition().decode()
            return samples(scraped[0])

        assert (await http.get("/metrics")).status == 401  # API key only
        resp = await http.get("/metrics", headers=AUTH)
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        before = samples(await resp.text())
        assert value(before, "voxwire_sessions", state="connected") == 0
        assert value(before, "voxwire_calls_created_total") == 0
        # Every histogram and labelled counter is there before the first call.
        assert ("voxwire_call_setup_phase_seconds_count", (("phase", "dtls"),)) in before
        assert ("voxwire_turn_latency_seconds_count", ()) in before

        client, client_shell, call_id = await place_call(http, certs, seed=3)
        for i in range(40):  # most of a second of RTP packets from the client
            client.send_rtp(b"\xf8\xff\xfe", 960 * i)
            client_shell.drain()
            await asyncio.sleep(0.02)
        during = samples(await (await http.get("/metrics", headers=AUTH)).text())
        assert value(during, "voxwire_calls_created_total") == 1
        assert value(during, "voxwire_calls_connected_total") == 1
        assert value(during, "voxwire_sessions", state="connected") == 1
        assert value(during, "voxwire_udp_datagrams_total", direction="in", kind="stun") >= 1
        assert value(during, "voxwire_udp_datagrams_total", direction="in", kind="dtls") >= 2
        assert value(during, "voxwire_udp_datagrams_total", direction="in", kind="rtp") >= 30
        assert value(during, "voxwire_udp_bytes_total", direction="out", kind="dtls") > 0
        for phase in ("signaling", "ice", "dtls", "setup", "first_audio_in"):
            assert value(during, "voxwire_call_setup_phase_seconds_count", phase=phase) == 1, phase
        timeline = (await (await http.get(f"/dashboard/api/sessions/{call_id}", headers=AUTH)).json())["timeline_ms"]
        # The offer request started before the call was made, and its handler ended after.
        assert timeline["request"] is not None and -timeline["request"] <= timeline["signaling"] < 1000
        await until(lambda: value(scrape(), "voxwire_call_setup_phase_seconds_count", phase="datachannel") == 1)

        # Garbage on the media socket is a drop, counted by reason: from a stranger (the endpoint
        # drops it) and from the client's own address (the session does).
        loop = asyncio.get_running_loop()
        stranger, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        stranger.sendto(b"\x99garbage", sockname(shell))
        client_shell.transport.sendto(b"\x99garbage", sockname(shell))
        await until(lambda: value(scrape(), "voxwire_drops_total", layer="endpoint", reason="unknown_source") >= 1)
        await until(lambda: value(scrape(), "voxwire_drops_total", layer="session", reason="srtp_auth") >= 1)
        stranger.close()

        # Hang-up: the session goes, the ended counter moves, the other counters stay.
        assert (await http.delete(f"/v1/realtime/calls/{call_id}", headers=AUTH)).status == 204
        await until(lambda: value(scrape(), "voxwire_calls_ended_total", reason="hung_up") == 1)
        after = scrape()
        assert value(after, "voxwire_sessions", state="connected") == 0
        for key, v in during.items():  # counters never go down
            if key[0].endswith(("_total", "_count")):
                assert after.get(key, 0) >= v, key
        # Bounded labels: no call id and no address anywhere in the exposition.
        assert call_id not in scraped[0] and "127.0.0.1" not in scraped[0]

        await http.close()
        shell.transport.close()
        client_shell.transport.close()

    asyncio.run(main())


def test_traffic_counter_classifies_by_first_byte():
    counter = TrafficCounter()
    seen = []

    class Core:
        def handle_datagram(self, data, addr, now):
            seen.append(data)

        def handle_timeout(self, now):
            pass

        def poll_timeout(self):
            return None

        def poll_transmit(self):
            return (b"\x80\xc8rtcp", ("127.0.0.1", 1)) if len(seen) == 1 else None

    core = counter.wrap(Core())
    for data in (b"\x00\x01stun", b"\x16\xfe\xfddtls", b"\x80\x6frtp!", b"\x81\xc9rr", b"\xff", b""):
        core.handle_datagram(data, ("127.0.0.1", 2), 0.0)
    assert core.poll_transmit() is None  # len(seen) == 6 now
    totals = counter.totals()
    assert totals["packets"]["in"] == {"stun": 1, "dtls": 1, "rtp": 1, "rtcp": 1, "other": 2}
    assert totals["bytes"]["in"]["rtp"] == 6


def test_series_keeps_the_whole_call_at_a_coarser_step():
    series = Series(("t",), capacity=8)
    for t in range(100):
        series.add({"t": t})
    times = [p["t"] for p in series.points]
    assert len(times) < 8 and times[0] == 0 and times[-1] >= 80
    assert series.step == 16


def test_series_rows_leave_out_missing_fields_and_keep_four_decimals():
    series = Series(("t", "loss_in", "rtt_ms"), capacity=4)
    series.add({"t": 0.0, "rtt_ms": None})
    series.add({"t": 1.0, "loss_in": 0.0123, "rtt_ms": 41.7, "unknown": 5.0})
    assert series.points == [{"t": 0.0}, {"t": 1.0, "loss_in": 0.0123, "rtt_ms": 41.7}]
    assert len(series) == 2


def test_series_shows_late_times_as_they_were_sampled():
    series = Series(("t", "rtt_ms", "loss_in"), capacity=4)
    series.add({"t": 5000.3, "rtt_ms": 141.7, "loss_in": 0.0123})  # float32: 5000.2998, 141.6999
    series.add({"t": 86400.1})
    assert series.points == [{"t": 5000.3, "rtt_ms": 141.7, "loss_in": 0.0123}, {"t": 86400.1}]


def test_series_halving_keeps_whole_rows():
    series = Series(("t", "pps_in"), capacity=4)
    for t in range(4):
        series.add({"t": t, "pps_in": 50 + t})
    assert series.points == [{"t": 0, "pps_in": 50}, {"t": 2, "pps_in": 52}]
    assert series.step == 2
    with pytest.raises(ValueError, match="at least one field"):
        Series(())


def test_a_sliced_monitor_tick_samples_each_call_once(certs):
    server = Transceiver(TransceiverConfig(advertised=(("192.0.2.1", 3478),)), EchoAgent(), certificate=certs[0])
    now = [0.0]
    for seed in range(7):
        server.create_call(TestClient(certs[1], 0.0, rng=random.Random(seed)).offer(), 0.0)
    monitor = CallMonitor(server, lambda: now[0], Metrics(), Tracer())
    monitor.sync()
    for part in range(3):  # one tick in three slices, a third of a second apart
        now[0] += 1 / 3
        monitor.sample(part, 3)
        sampled = sorted(len(r.history) for r in monitor.records.values())
        assert sampled.count(1) == sum(1 for r in monitor.records.values() if r.slot % 3 <= part)
    assert [len(r.history) for r in monitor.records.values()] == [1] * 7
    monitor.sample()  # unsliced: every call
    assert [len(r.history) for r in monitor.records.values()] == [2] * 7


def test_close_reasons_are_a_bounded_set():
    reasons = ["hung up", "connect timeout", "ICE consent expired", "DTLS: bad fingerprint", "anything else", None]
    assert [close_reason_label(r) for r in reasons] == [
        "hung_up", "connect_timeout", "consent_expired", "dtls", "application", "unknown"]


def test_an_attached_relay_shows_in_metrics_and_the_overview(certs):
    class Worker:
        def stats(self):
            return {"flows": 3, "parked": 1, "flows_created": 9, "flows_expired": 6, "drop_unknown_source": 4,
                    "drop_token_expired": 2, "send_errors": 1, "recv_errors": 0, "redis_failures": 5,
                    "redis_skipped": 7, "redis_queue_dropped": 0}

    async def main() -> None:
        server, shell, http = await gateway(certs)
        dashboard.attach_relay(http.server.app, Worker())
        parsed = samples(await (await http.get("/metrics", headers=AUTH)).text())
        assert value(parsed, "voxwire_relay_flows") == 3
        assert value(parsed, "voxwire_relay_drops_total", reason="token_expired") == 2
        assert value(parsed, "voxwire_relay_flow_events_total", event="created") == 9
        assert value(parsed, "voxwire_redis_errors_total", component="relay") == 5
        overview = await (await http.get("/dashboard/api/overview", headers=AUTH)).json()
        assert overview["relay"]["flows"] == 3 and overview["relay"]["name"] == "embedded"
        await http.close()
        shell.transport.close()
        # A standalone relay worker exposes the same families from its own registry.
        alone = samples(prometheus_client.generate_latest(relay_registry(Worker().stats)).decode())
        assert value(alone, "voxwire_relay_drops_total", reason="unknown_source") == 4

    asyncio.run(main())


def test_who_gets_a_talk_page_client_secret(certs):
    """POST /session: open in development mode, the API key with keys configured, anyone once the
    talk page is public; rate limited; the index page names the endpoint in Server-Timing."""

    async def main() -> None:
        server = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 1),)), EchoAgent(), certificate=certs[0])
        shell = await udp(server.endpoint)
        for keys in ((), (API_KEY,)):
            app = make_app(server, shell, Authenticator(keys))
            if dashboard.MONITOR not in app:
                dashboard.add_routes(app)
            http = HttpClient(TestServer(app))
            await http.start_server()
            index = await http.get("/")
            assert index.headers["Server-Timing"] == dashboard.TALK_PAGE_HINT
            anonymous = await http.post("/session")
            if keys:
                assert anonymous.status == 401
                assert (await http.post("/session", headers={"Authorization": "Bearer nope-nope-nope"})).status == 401
                minted = await http.post("/session", headers=AUTH)
                dashboard.allow_public_talk_page(app)
                assert (await http.post("/session")).status == 200  # public now
            else:
                minted = anonymous
            body = await minted.json()
            assert minted.status == 200 and body["value"].startswith("ek_") and body["expires_at"] > 0
            statuses = [(await http.post("/session", headers=AUTH)).status for _ in range(dashboard.MINT_BURST + 2)]
            assert statuses[-1] == 429 and statuses.count(200) <= dashboard.MINT_BURST
            await http.close()
        shell.transport.close()

    asyncio.run(main())


def test_media_load_shows_encoder_complexity_and_vad_batching(certs):
    """The load-following encoder and the shared VAD batch are visible to operators."""

    async def main() -> None:
        from voxwire.aio.vad import attach_vad_batch

        server, shell, http = await gateway(certs)
        metrics = http.server.app[dashboard.METRICS]

        def scrape():
            http.server.app[dashboard.MONITOR].sync()
            return samples(metrics.exposition().decode())

        before = scrape()
        assert value(before, "voxwire_opus_encoder_complexity") == 5
        assert value(before, "voxwire_opus_complexity_step_downs_total") == 0
        assert value(before, "voxwire_vad_runs_total") == 0
        batch = attach_vad_batch(server, shell)
        server.complexity.update(0.9)  # what the load follower does when the loop is 90% busy
        from voxwire.agent.vad import SileroVad

        got: list[float] = []
        for _ in range(3):
            batch.submit(SileroVad(), np.zeros(512, dtype=np.int16), lambda p, db: got.append(p))
        await until(lambda: len(got) == 3)
        after = scrape()
        assert value(after, "voxwire_opus_encoder_complexity") == 1
        assert value(after, "voxwire_opus_complexity_step_downs_total") == 1
        assert value(after, "voxwire_vad_windows_total") == 3 and value(after, "voxwire_vad_runs_total") == 1
        await http.close()
        shell.transport.close()

    asyncio.run(main())
