"""HTTP signaling: POST/DELETE /v1/realtime/calls with real sockets on loopback.

Bad requests get a 4xx with OpenAI's error body naming the problem; nothing is leaked: a rejected
offer creates no call, and DELETE frees what POST made.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient as HttpClient
from aiohttp.test_utils import TestServer

from voxwire.agent.echo import EchoAgent
from voxwire.aio.udp import open_udp
from voxwire.proto.certificate import Certificate
from voxwire.signaling.http import MAX_OFFER_BYTES, make_app
from voxwire.testing.client import TestClient
from voxwire.transceiver.service import Transceiver, TransceiverConfig

OFFERS = Path(__file__).parent / "data" / "sdp"
CERT = Certificate.generate()


def run(body: Callable[[HttpClient, Transceiver], Awaitable[None]], max_calls: int = 10) -> None:
    async def main() -> None:
        transceiver = Transceiver(
            TransceiverConfig(advertised=(("127.0.0.1", 9),), max_calls=max_calls), EchoAgent, certificate=CERT
        )
        shell = await open_udp(transceiver.endpoint, "127.0.0.1", 0, after_drain=transceiver.collect)
        client = HttpClient(TestServer(make_app(transceiver, shell)))
        await client.start_server()
        try:
            await body(client, transceiver)
        finally:
            await client.close()
            assert shell.transport is not None
            shell.transport.close()

    asyncio.run(main())


def offer() -> str:
    return TestClient(CERT, 0.0, rng=random.Random(1)).offer()


async def expect_error(resp, status: int, code: str, words: str) -> None:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == code
    assert words in body["error"]["message"], body
    assert body["error"]["type"] in ("invalid_request_error", "server_error")


def test_post_answers_201_with_location_and_delete_frees():
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        resp = await http.post("/v1/realtime/calls", data=offer(), headers={"Content-Type": "application/sdp"})
        assert resp.status == 201
        assert resp.content_type == "application/sdp"
        location = resp.headers["Location"]
        assert location.startswith("/v1/realtime/calls/rtc_")
        answer = await resp.text()
        assert "a=ice-lite" in answer and "a=setup:active" in answer and "127.0.0.1 9 typ host" in answer
        assert len(transceiver.calls) == 1
        assert (await http.delete(location)).status == 204
        assert len(transceiver.calls) == 0 and len(transceiver.endpoint) == 0
        await expect_error(await http.delete(location), 404, "call_not_found", "no call")

    run(body)


def test_captured_offers_of_real_clients_are_answered():
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        files = sorted(OFFERS.glob("*.sdp"))
        assert len(files) >= 6
        for path in files:
            resp = await http.post(
                "/v1/realtime/calls", data=path.read_text(), headers={"Content-Type": "application/sdp"}
            )
            if path.name == "chromium_datachannel_only.sdp":  # a voice gateway needs audio
                await expect_error(resp, 400, "unsupported_offer", "no audio section")
            else:
                assert resp.status == 201, (path.name, await resp.text())

    run(body)


@pytest.mark.parametrize(
    ("data", "ctype", "status", "code", "words"),
    [
        ("v=0\r\n", "application/json", 415, "unsupported_media_type", "application/sdp"),
        ("hello", "application/sdp", 400, "invalid_sdp", "invalid SDP offer"),
        (offer().replace("a=rtcp-mux\r\n", ""), "application/sdp", 400, "invalid_sdp", "rtcp-mux"),
        (offer().replace("opus/48000/2", "ISAC/16000"), "application/sdp", 400, "invalid_sdp", "Opus"),
        (b"\xff\xfe\x00", "application/sdp", 400, "invalid_sdp", "UTF-8"),
        ("v=0\r\n" + "a=x\r\n" * (MAX_OFFER_BYTES // 4), "application/sdp", 413, "offer_too_large", "exceeds"),
    ],
)
def test_bad_requests_get_a_named_error_and_leak_nothing(data, ctype, status, code, words):
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        resp = await http.post("/v1/realtime/calls", data=data, headers={"Content-Type": ctype})
        await expect_error(resp, status, code, words)
        assert len(transceiver.calls) == 0 and len(transceiver.endpoint) == 0

    run(body)


def test_capacity_limit_is_503():
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        headers = {"Content-Type": "application/sdp"}
        assert (await http.post("/v1/realtime/calls", data=offer(), headers=headers)).status == 201
        resp = await http.post("/v1/realtime/calls", data=offer(), headers=headers)
        await expect_error(resp, 503, "capacity_exceeded", "limit of 1 calls")

    run(body, max_calls=1)


def test_index_page_is_served():
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        resp = await http.get("/")
        assert resp.status == 200 and "window.voxwire" in await resp.text()
        assert (await http.get("/static/..%2Fcli.py")).status == 404

    run(body)
