"""Logs: one line per event, the call id on every call's line, no secret ever written, client
addresses only at debug; and a whole call (HTTP signaling, ICE, DTLS, SRTP, data channel, the
dashboard API, /metrics, hang-up) logged at debug with tracing on, scanned for its secrets."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import random
import re

import pytest
from aiohttp.test_utils import TestClient as HttpClient
from aiohttp.test_utils import TestServer

import voxwire.proto.session
import voxwire.testing.client
from voxwire.agent.echo import EchoAgent
from voxwire.aio.agents import AgentRunner
from voxwire.observability import tracing
from voxwire.observability.logging import (
    REDACTED,
    CallIdFilter,
    OneLineFormatter,
    Redactor,
    secrets_from_environment,
    setup_logging,
)
from voxwire.proto.certificate import Certificate
from voxwire.proto.srtp import SrtpSession
from voxwire.signaling import dashboard
from voxwire.signaling.auth import Authenticator
from voxwire.signaling.http import make_app
from voxwire.testing.client import TestClient
from voxwire.testing.sockets import sockname, udp, until
from voxwire.transceiver.service import Transceiver, TransceiverConfig

API_KEY = "vxk_Live_9f8e7d6c5b4a3210"
CALL_ID = "rtc_0123456789abcdef01234567"


# -- the redactor and the formatter --------------------------------------------------------------


@pytest.mark.parametrize(
    "text, secret",
    [
        ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz"),
        ('{"value": "ek_ZcfO_t3Z1JqnUNrK1cY3DvQNkJropckj9Ko5mFWfzuM"}', "ek_ZcfO_t3Z1JqnUNrK1cY3DvQNkJropckj9Ko5mFWfzuM"),
        ("upstream key sk-proj-abcdefghijklmnop1234", "sk-proj-abcdefghijklmnop1234"),
        ("a=ice-pwd:asd88fgpdd777uzjYhagZg", "asd88fgpdd777uzjYhagZg"),
        ("password=hunter2hunter2", "hunter2hunter2"),
        ("api_key: 'short-but-named'", "short-but-named"),
        ("client_secret=xyzxyzxyz", "xyzxyzxyz"),
        ("redis://default:s3cr3tpass@10.0.0.5:6379/0", "s3cr3tpass"),
        ("token keys 1:" + "ab" * 32, "ab" * 32),
        ("srtp master 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c", "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"),
        ("pwd in text QWxhZGRpbjpvcGVuIHNlc2FtZQ9x8Ab+/c7RtY", "QWxhZGRpbjpvcGVuIHNlc2FtZQ9x8Ab+/c7RtY"),
    ],
)
def test_secrets_are_redacted(text, secret):
    out = Redactor()(text)
    assert secret not in out and REDACTED in out, out


def test_exact_secrets_and_environment_secrets():
    env = {"VOXWIRE_API_KEYS": "first-key-123456789,second-key-987654321", "OPENAI_API_KEY": "plainkey77",
           "VOXWIRE_HTTP_PORT": "8080", "VOXWIRE_TOKEN_KEYS": "1:deadbeef00"}
    found = secrets_from_environment(env)
    assert {"first-key-123456789", "second-key-987654321", "plainkey77", "deadbeef00"} <= set(found)
    assert "8080" not in found
    redact = Redactor(found)
    assert redact("got first-key-123456789 and plainkey77 here") == f"got {REDACTED} and {REDACTED} here"


@pytest.mark.parametrize(
    "text",
    [
        f"call {CALL_ID} connected (AEAD_AES_128_GCM)",
        "sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
        "/work/main/.venv/lib/python3.11/site-packages/aiohttp/web_protocol.py line 452",
        "event_Ab3dE5gH7jK9mN1pQ3sT5 item_Zy8xW7vU6tS5rQ4pO3nM2",
        "the routing token was refused: expired",
        "voxwire 0.1.0 serving on http://127.0.0.1:8080/",
    ],
)
def test_ordinary_text_is_kept(text):
    assert Redactor()(text) == text


def record(msg: str, *args: object, level: int = logging.INFO, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line password=letmein123")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    rec = logging.LogRecord("voxwire.test", level, __file__, 1, msg, args, exc_info)
    CallIdFilter().filter(rec)
    return rec


def test_one_line_with_the_call_id():
    text = OneLineFormatter("text").format(record("call %s closed:\nline two", CALL_ID, exc=True))
    assert "\n" not in text
    assert f"call={CALL_ID}" in text and "INFO voxwire.test" in text
    assert "letmein123" not in text and REDACTED in text
    obj = json.loads(OneLineFormatter("json").format(record("call %s connected", CALL_ID)))
    assert obj["call"] == CALL_ID and obj["level"] == "info" and obj["msg"] == f"call {CALL_ID} connected"
    assert OneLineFormatter("text").format(record("server started")).split()[3] == "call=-"


def test_call_id_from_context_or_extra():
    from voxwire.observability.logging import CALL_ID as CTX

    token = CTX.set("rtc_" + "ab" * 12)
    try:
        assert record("agent answered").call_id == "rtc_" + "ab" * 12
    finally:
        CTX.reset(token)
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    rec.call_id = "rtc_given"
    CallIdFilter().filter(rec)
    assert rec.call_id == "rtc_given"


# -- a whole call, scanned -----------------------------------------------------------------------


@pytest.fixture
def debug_log():
    """Root logging at DEBUG into a buffer with voxwire's handler; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    setup_logging("debug", "text", stream=buffer, environ={"VOXWIRE_API_KEYS": API_KEY})
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    logging.captureWarnings(False)


@pytest.fixture
def srtp_keys(monkeypatch):
    """Every SRTP key pair either side derives from DTLS, recorded as it is made."""
    keys: list[bytes] = []

    class Recording(SrtpSession):
        def __init__(self, profile, local_key, remote_key):
            keys.extend((bytes(local_key), bytes(remote_key)))
            super().__init__(profile, local_key, remote_key)

    monkeypatch.setattr(voxwire.proto.session, "SrtpSession", Recording)
    monkeypatch.setattr(voxwire.testing.client, "SrtpSession", Recording)
    return keys


@pytest.fixture
def trace_file(tmp_path):
    path = tmp_path / "traces.jsonl"
    tracing.configure(f"file:{path}")
    yield path
    tracing.configure(None)


def forms(secret: bytes | str) -> list[str]:
    """The ways a secret could be printed."""
    if isinstance(secret, str):
        return [secret]
    return [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode().rstrip("="),
            base64.urlsafe_b64encode(secret).decode().rstrip("="), repr(secret)[2:-1]]


def test_a_logged_and_traced_call_contains_no_secret(debug_log, srtp_keys, trace_file):
    certs = Certificate.generate(), Certificate.generate()
    found: dict[str, list[str]] = {}

    async def main() -> None:
        server = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 1),)), EchoAgent(), certificate=certs[0])
        shell = await udp(server.endpoint)
        shell.after_drain = AgentRunner(server, shell).after_drain
        server.config = TransceiverConfig(advertised=(sockname(shell),))
        app = make_app(server, shell, Authenticator((API_KEY,)))
        if dashboard.MONITOR not in app:
            dashboard.add_routes(app, interval=0.05)
        http = HttpClient(TestServer(app))
        await http.start_server()
        auth = {"Authorization": f"Bearer {API_KEY}"}
        # The browser's way: a client secret minted by the server, then the call with it.
        resp = await http.post("/session", headers=auth)
        secret = (await resp.json())["value"]
        other = (await (await http.post("/v1/realtime/client_secrets", json={}, headers=auth)).json())["value"]
        bearer = {"Authorization": f"Bearer {secret}"}
        client = TestClient(certs[1], asyncio.get_running_loop().time(), rng=random.Random(5))
        client_shell = await udp(client)
        resp = await http.post("/v1/realtime/calls", data=client.offer(data_channel=True),
                               headers={"Content-Type": "application/sdp", **bearer})
        assert resp.status == 201, await resp.text()
        answer = await resp.text()
        call_id = resp.headers["Location"].rsplit("/", 1)[1]
        client.answer(answer, client_shell.now())
        client_shell.drain()
        await until(lambda: client.srtp is not None)
        channel = client.open_channel("oai-events", client_shell.now())
        client_shell.drain()
        await until(lambda: any(c == channel for c, _ in client.channel_messages))
        for i in range(25):
            client.send_rtp(b"\xf8\xff\xfe", 960 * i)
            client_shell.drain()
            await asyncio.sleep(0.02)
        # A wrong key, the dashboard and /metrics with the right one.
        assert (await http.get("/dashboard/api/overview", headers={"Authorization": "Bearer wrong-key-0000"})).status == 401
        overview = await (await http.get("/dashboard/api/overview", headers=auth)).json()
        assert overview["sessions"][0]["id"] == call_id
        assert (await http.get(f"/dashboard/api/sessions/{call_id}", headers=auth)).status == 200
        assert (await http.get("/metrics", headers=auth)).status == 200
        logging.getLogger("voxwire.test").debug("a careless line: Authorization: Bearer %s", secret)
        assert (await http.delete(f"/v1/realtime/calls/{call_id}", headers=bearer)).status == 204
        await until(lambda: trace_file.exists() and trace_file.read_text().strip() != "")
        found["secrets"] = [API_KEY, secret, other, re.search(r"a=ice-pwd:(\S+)", answer)[1], client.pwd]
        found["client"] = [f"{h}:{p}" for h, p in [sockname(client_shell)]]
        found["call_id"] = [call_id]
        await http.close()
        shell.transport.close()
        client_shell.transport.close()

    asyncio.run(main())
    log = debug_log.getvalue()
    traces = trace_file.read_text()
    assert len(srtp_keys) == 4  # two directions, both sides
    secrets = [form for s in [*found["secrets"], *srtp_keys] for form in forms(s)]
    for where, text in (("log", log), ("traces", traces)):
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"secrets in the {where}: {leaked}"

    lines = log.splitlines()
    assert lines and all(line.count(" call=") == 1 for line in lines)
    call_id = found["call_id"][0]
    call_lines = [line for line in lines if call_id in line.partition(" msg=")[2]]
    assert len(call_lines) >= 3 and all(f"call={call_id}" in line for line in call_lines)
    client = found["client"][0]
    with_address = [line for line in lines if client in line]
    assert with_address, "the debug log names the client's address"
    assert all(line.split()[1] == "DEBUG" for line in with_address), with_address

    spans = [s for line in traces.splitlines()
             for s in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]]
    names = {s["name"] for s in spans}
    assert {"call", "signaling", "ice", "dtls", "datachannel"} <= names, names
    root = next(s for s in spans if s["name"] == "call")
    assert all(s["traceId"] == root["traceId"] for s in spans)
    assert all(s.get("parentSpanId") == root["spanId"] for s in spans if s is not root)
    assert client.split(":")[0] not in traces


def test_otlp_exporter_posts_the_json_encoding():
    """The OTLP/HTTP exporter against a tiny collector: one request per trace, OTLP JSON."""
    from aiohttp import web

    received: list[dict] = []

    async def collect(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", collect)
        server = TestServer(app)
        await server.start_server()
        errors = []
        exporter = tracing.OtlpHttpExporter(str(server.make_url("/")), on_error=lambda: errors.append(1))
        tracer = tracing.Tracer(exporter, wallclock_offset=1_700_000_000.0, randbytes=random.Random(1).randbytes)
        trace = tracer.call_trace(CALL_ID, 10.0)
        trace.span("dtls", 10.1, 10.2)
        trace.finish(12.0, {"voxwire.turns": 2})
        await until(lambda: bool(received))
        await exporter.aclose()
        await server.close()
        assert not errors

    asyncio.run(main())
    spans = received[0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
    root, dtls = spans
    assert root["name"] == "call" and dtls["name"] == "dtls" and dtls["parentSpanId"] == root["spanId"]
    assert len(root["traceId"]) == 32 and len(root["spanId"]) == 16
    assert root["startTimeUnixNano"] == str(1_700_000_010 * 10**9) and root["status"] == {"code": 1}
    assert {"key": "voxwire.turns", "value": {"intValue": "2"}} in root["attributes"]
    assert tracing.Tracer().call_trace(CALL_ID, 0.0) is None  # off by default: nothing recorded
