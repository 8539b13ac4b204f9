"""HTTP signaling: POST/DELETE /v1/realtime/calls with real sockets on loopback.

Bad requests get a 4xx with OpenAI's error body naming the problem; nothing is leaked: a rejected
offer creates no call, and DELETE frees what POST made.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient as HttpClient
from aiohttp.test_utils import TestServer

from voxwire.agent.echo import EchoAgent
from voxwire.aio.udp import open_udp
from voxwire.proto.certificate import Certificate
from voxwire.signaling.auth import Authenticator, load_api_keys
from voxwire.signaling.http import MAX_OFFER_BYTES, MAX_SESSION_BYTES, make_app
from voxwire.testing.client import TestClient
from voxwire.transceiver.service import Transceiver, TransceiverConfig

OFFERS = Path(__file__).parent / "data" / "sdp"
CERT = Certificate.generate()


def run(
    body: Callable[[HttpClient, Transceiver], Awaitable[None]],
    max_calls: int = 10,
    *,
    auth: Authenticator | None = None,
    wallclock: Callable[[], float] = time.time,
) -> None:
    async def main() -> None:
        transceiver = Transceiver(
            TransceiverConfig(advertised=(("127.0.0.1", 9),), max_calls=max_calls), EchoAgent(), certificate=CERT
        )
        shell = await open_udp(transceiver.endpoint, "127.0.0.1", 0, after_drain=transceiver.collect)
        client = HttpClient(TestServer(make_app(transceiver, shell, auth, wallclock=wallclock)))
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
        assert (await http.delete(location)).status == 204  # idempotent: the call is already gone
        await expect_error(await http.delete("/v1/realtime/calls/rtc_unknown"), 404, "call_not_found", "no call")

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


# -- authentication and the OpenAI-compatible extras ---------------------------------------------

API_KEY = "sk-test-0123456789abcdef"
SDP = {"Content-Type": "application/sdp"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_calls_need_an_api_key_or_a_client_secret():
    clock = [1_000_000.0]

    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        for headers in ({}, bearer("sk-wrong-0123456789abcdef"), {"Authorization": "Basic abc"}):
            resp = await http.post("/v1/realtime/calls", data=offer(), headers={**SDP, **headers})
            assert resp.status == 401
            error = (await resp.json())["error"]
            assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
            assert API_KEY not in error["message"]
        assert len(transceiver.calls) == 0
        resp = await http.post("/v1/realtime/calls", data=offer(), headers={**SDP, **bearer(API_KEY)})
        assert resp.status == 201
        # Client secrets: minted with the API key only, then good for calls until they expire.
        ask = {"expires_after": {"anchor": "created_at", "seconds": 60}, "session": {"instructions": "hi"}}
        assert (await http.post("/v1/realtime/client_secrets", json=ask)).status == 401
        resp = await http.post("/v1/realtime/client_secrets", json=ask, headers=bearer(API_KEY))
        assert resp.status == 200
        minted = await resp.json()
        assert minted["value"].startswith("ek_") and minted["expires_at"] == int(clock[0]) + 60
        assert minted["session"] == {"instructions": "hi"}
        secret = minted["value"]
        resp = await http.post("/v1/realtime/calls", data=offer(), headers={**SDP, **bearer(secret)})
        assert resp.status == 201
        call = transceiver.calls[resp.headers["Location"].rsplit("/", 1)[1]]
        assert call.voice.conversation.settings.instructions == "hi"  # the secret's configuration
        # A client secret cannot mint more secrets or hang up other calls.
        assert (await http.post("/v1/realtime/client_secrets", json={}, headers=bearer(secret))).status == 401
        clock[0] += 61
        resp = await http.post("/v1/realtime/calls", data=offer(), headers={**SDP, **bearer(secret)})
        assert resp.status == 401 and "expired" in (await resp.json())["error"]["message"]

    run(body, auth=Authenticator((API_KEY,)), wallclock=lambda: clock[0])


@pytest.mark.parametrize(
    ("ask", "words"),
    [
        ({"expires_after": {"seconds": 5}}, "between 10 and 7200"),
        ({"expires_after": {"seconds": 7201}}, "between 10 and 7200"),
        ({"expires_after": {"seconds": "60"}}, "must be an integer"),
        ({"expires_after": {"anchor": "now"}}, "anchor"),
        ({"session": []}, "JSON objects"),
    ],
)
def test_client_secret_requests_are_validated(ask, words):
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        resp = await http.post("/v1/realtime/client_secrets", json=ask, headers=bearer(API_KEY))
        assert resp.status == 400
        assert words in (await resp.json())["error"]["message"]

    run(body, auth=Authenticator((API_KEY,)))


def test_multipart_bodies_as_browsers_and_curl_send_them():
    """A quoted boundary and a file part (curl -F sdp=@offer.sdp) work; a malformed Content-Type,
    a broken form and an oversized session part are each named."""

    def form(boundary: str, session: bytes = b"{}", disposition: str = 'name="sdp"') -> bytes:
        return (
            f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
            f"Content-Type: application/sdp\r\n\r\n{offer()}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="session"\r\n\r\n'
        ).encode() + session + f"\r\n--{boundary}--\r\n".encode()

    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        async def post(data: bytes, ctype: str):
            return await http.post("/v1/realtime/calls", data=data, headers={**bearer(API_KEY), "Content-Type": ctype})

        resp = await post(form("a b", disposition='name="sdp"; filename="offer.sdp"'), 'multipart/form-data; boundary="a b"')
        assert resp.status == 201, await resp.text()
        await expect_error(await post(form("b"), "multipart/form-data; boundary"), 400, "invalid_content_type", "malformed")
        await expect_error(await post(form("b"), "multipart/form-data"), 400, "invalid_form", "1 to 70")
        await expect_error(await post(form("b")[:-12], "multipart/form-data; boundary=b"), 400, "invalid_form", "ends inside")
        big = b'{"instructions": "' + b"x" * MAX_SESSION_BYTES + b'"}'
        await expect_error(await post(form("b", big), "multipart/form-data; boundary=b"), 413, "session_too_large", "session")
        await expect_error(await post(form("b", big * 3), "multipart/form-data; boundary=b"), 413, "offer_too_large", "exceeds")
        assert len(transceiver.calls) == 1

    run(body, auth=Authenticator((API_KEY,)))


def test_a_body_that_arrives_in_pieces_is_read_whole():
    """A loaded server or a slow client sees an offer arrive in several TCP segments; reading
    stops at the end of the body, not at the end of the first segment (a 400 before)."""

    async def trickle(data: bytes):
        for i in range(0, len(data), 500):
            yield data[i : i + 500]
            await asyncio.sleep(0.01)

    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        resp = await http.post("/v1/realtime/calls", data=trickle(offer().encode()),
                               headers={**bearer(API_KEY), "Content-Type": "application/sdp"})
        assert resp.status == 201, await resp.text()
        form = (
            f'--b\r\nContent-Disposition: form-data; name="sdp"\r\n\r\n{offer()}\r\n'
            f'--b\r\nContent-Disposition: form-data; name="session"\r\n\r\n{{}}\r\n--b--\r\n'
        ).encode()
        resp = await http.post("/v1/realtime/calls", data=trickle(form),
                               headers={**bearer(API_KEY), "Content-Type": "multipart/form-data; boundary=b"})
        assert resp.status == 201, await resp.text()
        assert len(transceiver.calls) == 2

    run(body, auth=Authenticator((API_KEY,)))


def test_multipart_offer_with_session_and_hangup():
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        import aiohttp

        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("sdp", offer(), content_type="application/sdp")
        form.add_field("session", '{"type": "realtime", "instructions": "be brief"}', content_type="application/json")
        resp = await http.post("/v1/realtime/calls", data=form, headers=bearer(API_KEY))
        assert resp.status == 201, await resp.text()
        call_id = resp.headers["Location"].rsplit("/", 1)[1]
        assert transceiver.calls[call_id].voice.conversation.settings.instructions == "be brief"
        resp = await http.post(f"/v1/realtime/calls/{call_id}/hangup", headers=bearer(API_KEY))
        assert resp.status == 200 and call_id not in transceiver.calls
        # Malformed forms are named.
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("session", "{}")
        resp = await http.post("/v1/realtime/calls", data=form, headers=bearer(API_KEY))
        await expect_error(resp, 400, "missing_sdp", "'sdp'")
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("sdp", offer())
        form.add_field("session", "{not json")
        resp = await http.post("/v1/realtime/calls", data=form, headers=bearer(API_KEY))
        await expect_error(resp, 400, "invalid_session", "not JSON")
        assert len(transceiver.calls) == 0

    run(body, auth=Authenticator((API_KEY,)))


def test_api_keys_come_from_the_environment_or_a_file(tmp_path):
    keyfile = tmp_path / "keys"
    keyfile.write_text("# comment\nsk-from-file-0123456789\n")
    env = {"VOXWIRE_API_KEYS": "sk-env-one-0123456789, sk-env-two-0123456789", "VOXWIRE_API_KEY_FILE": str(keyfile)}
    assert load_api_keys(env) == ("sk-env-one-0123456789", "sk-env-two-0123456789", "sk-from-file-0123456789")
    assert load_api_keys({}) == ()
    with pytest.raises(ValueError, match="shorter than 16"):
        load_api_keys({"VOXWIRE_API_KEYS": "short"})
    assert "sk-env" not in repr(Authenticator(load_api_keys(env)))


def test_client_secret_store_is_bounded():
    auth = Authenticator((API_KEY,), max_client_secrets=3)
    minted = [auth.mint({}, 60, 1000.0) for _ in range(5)]
    assert "3 client secrets" in repr(auth)
    from voxwire.signaling.auth import AuthError

    with pytest.raises(AuthError):  # the oldest went first
        auth.authenticate(f"Bearer {minted[0].value}", 1001.0)
    auth.authenticate(f"Bearer {minted[4].value}", 1001.0)


# -- WHIP (RFC 9725) --------------------------------------------------------------------------------


def test_whip_post_patch_delete():
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        client = TestClient(CERT, 0.0, rng=random.Random(3))
        resp = await http.post("/whip", data=client.offer(), headers={**SDP, **bearer(API_KEY)})
        assert resp.status == 201
        location, tag = resp.headers["Location"], resp.headers["ETag"]
        assert location.startswith("/whip/rtc_") and tag.startswith('"')
        assert resp.headers["Access-Control-Expose-Headers"] == "Location, ETag, Link"
        call = transceiver.calls[location.rsplit("/", 1)[1]]
        frag = {"Content-Type": "application/trickle-ice-sdpfrag", **bearer(API_KEY)}
        trickle = f"a=ice-ufrag:{client.ufrag}\r\na=ice-pwd:{client.pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        trickle += "a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host\r\na=end-of-candidates\r\n"
        # Trickle: accepted, nothing changes.
        assert (await http.patch(location, data=trickle, headers={**frag, "If-Match": tag})).status == 204
        # Wrong ETag, wrong type, junk.
        resp = await http.patch(location, data=trickle, headers={**frag, "If-Match": '"stale"'})
        await expect_error(resp, 412, "etag_mismatch", "If-Match")
        resp = await http.patch(location, data=trickle, headers={**SDP, **bearer(API_KEY)})
        await expect_error(resp, 415, "unsupported_media_type", "sdpfrag")
        resp = await http.patch(location, data="x=1\r\n", headers=frag)
        await expect_error(resp, 400, "invalid_sdpfrag", "only m= and a=")
        # ICE restart: new client credentials -> our new ones and a new ETag.
        old_ufrag = call.local_ufrag
        new = client.new_credentials()
        restart = f"a=ice-ufrag:{new}\r\na=ice-pwd:{client.pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        resp = await http.patch(location, data=restart, headers={**frag, "If-Match": "*"})
        assert resp.status == 200 and resp.content_type == "application/trickle-ice-sdpfrag"
        answer = await resp.text()
        assert f"a=ice-ufrag:{call.local_ufrag}" in answer and call.local_ufrag != old_ufrag
        assert "a=candidate:" in answer and resp.headers["ETag"] != tag
        assert transceiver.endpoint.get(call.local_ufrag) is call
        # OPTIONS, DELETE.
        resp = await http.options("/whip")
        assert resp.status == 204 and "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert (await http.delete(location, headers=bearer(API_KEY))).status == 200
        assert not transceiver.calls
        assert (await http.patch(location, data=trickle, headers=frag)).status == 404

    run(body, auth=Authenticator((API_KEY,)))


def test_an_invalid_session_configuration_is_a_400_not_a_silent_error():
    async def body(http: HttpClient, transceiver: Transceiver) -> None:
        import aiohttp

        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("sdp", offer())
        form.add_field("session", '{"type": "realtime", "audio": {"input": {"turn_detection": {"threshold": 7}}}}')
        resp = await http.post("/v1/realtime/calls", data=form, headers=bearer(API_KEY))
        await expect_error(resp, 400, "unsupported_offer", "turn_detection.threshold")
        assert not transceiver.calls

    run(body, auth=Authenticator((API_KEY,)))
