"""Sideband control: an application backend watches and steers a call a client started."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from aiohttp.test_utils import TestClient as HttpClient
from aiohttp.test_utils import TestServer

from voxwire.agent.echo import EchoAgent
from voxwire.aio.agents import AgentRunner
from voxwire.proto.certificate import Certificate
from voxwire.signaling.auth import Authenticator
from voxwire.signaling.http import make_app
from voxwire.testing.client import TestClient
from voxwire.testing.sockets import sockname, udp, until
from voxwire.transceiver.service import Transceiver, TransceiverConfig

API_KEY = "sk-sideband-0123456789"


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


def test_sideband_sees_and_steers_a_clients_call(certs):
    async def main() -> None:
        server = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 1),)), EchoAgent(), certificate=certs[0])
        shell = await udp(server.endpoint)
        shell.after_drain = AgentRunner(server, shell).after_drain
        server.config = TransceiverConfig(advertised=(sockname(shell),))
        http = HttpClient(TestServer(make_app(server, shell, Authenticator((API_KEY,)))))
        await http.start_server()
        auth = {"Authorization": f"Bearer {API_KEY}"}
        # The "browser": a call with an oai-events channel, placed over HTTP.
        client = TestClient(certs[1], shell.now(), rng=random.Random(9))
        client_shell = await udp(client)
        resp = await http.post("/v1/realtime/calls", data=client.offer(data_channel=True),
                               headers={"Content-Type": "application/sdp", **auth})
        call_id = resp.headers["Location"].rsplit("/", 1)[1]
        client.answer(await resp.text(), client_shell.now())
        client_shell.drain()
        await until(lambda: client.srtp is not None)
        channel = client.open_channel("oai-events", client_shell.now())
        client_shell.drain()
        await until(lambda: any(c == channel for c, _ in client.channel_messages))
        # Wrong key, client secret, unknown call: refused.
        assert (await http.get("/v1/realtime", params={"call_id": call_id})).status == 401
        assert (await http.get("/v1/realtime", params={"call_id": "rtc_nope"}, headers=auth)).status == 404
        # The backend connects, sees the session, and steers it.
        ws = await http.ws_connect("/v1/realtime", params={"call_id": call_id}, headers=auth)
        update = {"type": "session.update", "event_id": "sb1",
                  "session": {"type": "realtime", "instructions": "from the backend"}}
        await ws.send_str(json.dumps(update))
        seen = []
        while not any(e["type"] == "session.updated" for e in seen):
            seen.append(json.loads((await asyncio.wait_for(ws.receive(), 5)).data))
        browser = [json.loads(m) for c, m in client.channel_messages if c == channel]
        await until(lambda: any(json.loads(m)["type"] == "session.updated"
                                for c, m in client.channel_messages if c == channel))
        assert browser[0]["type"] == "session.created"
        updated = next(e for e in seen if e["type"] == "session.updated")
        assert updated["session"]["instructions"] == "from the backend"
        # A bad event from the backend gets an error on the sideband; the call stays up.
        await ws.send_str("{oops")
        while True:
            event = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            if event["type"] == "error":
                break
        # Hang-up closes the sideband socket.
        assert (await http.delete(f"/v1/realtime/calls/{call_id}", headers=auth)).status == 204
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING")
        await ws.close()
        await http.close()
        shell.transport.close()
        client_shell.transport.close()

    asyncio.run(main())
