"""aiortc (an independent SCTP/DCEP stack) against `voxwire serve`: data channels.

One call with two channels in the offer: ``oai-events`` (the Realtime protocol: ``session.created``
at open, ``session.update`` answered with ``session.updated``, a bogus event with an ``error``) and
"echo" (the server's loopback: a small string, small binary, an empty string, and 256 KiB binary
and string messages come back intact and in order). aiortc does not offer SNAP, so this is the
normal SCTP handshake, with aiortc as the DTLS client or server as voxwire's answer decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import numpy as np

from .aiortc_client import run_aiortc_call

MAX_MESSAGE = 256 * 1024  # voxwire's a=max-message-size

UPDATE = {
    "type": "session.update",
    "event_id": "evt_update_1",
    "session": {"type": "realtime", "instructions": "Answer in one sentence."},
}
BOGUS = {"type": "bogus.event", "event_id": "evt_bogus_7"}
SILENCE = np.zeros(4800, dtype=np.int16)  # the call needs an audio track; nothing listens to it


def digest(message: str | bytes) -> tuple[str, int, str]:
    data = message.encode() if isinstance(message, str) else message
    return type(message).__name__, len(data), hashlib.sha256(data).hexdigest()


def test_aiortc_data_channels(voxwire_server):
    echo_send: list[str | bytes] = [
        "hello, voxwire \u00e9\u4e16\U0001f600",
        bytes(range(256)),
        "",
        b"",
        os.urandom(MAX_MESSAGE),
        os.urandom(MAX_MESSAGE // 2).hex(),  # a 256 KiB string
        "after the big ones",
    ]

    def finished(by_label: dict[str, list[str | bytes]]) -> bool:
        return len(by_label.get("echo", [])) >= len(echo_send) and len(by_label.get("oai-events", [])) >= 3

    result = asyncio.run(
        run_aiortc_call(
            voxwire_server.url,
            audio=SILENCE,
            duration=8.0,
            channel_label="oai-events",
            data_channel_send=[json.dumps(UPDATE), json.dumps(BOGUS)],
            extra_channels={"echo": echo_send},
            until=finished,
        )
    )
    assert result.connected, result.connection_state_history
    timings = result.timings
    print(
        f"\naiortc timings (s after POST): {timings}\n"
        f"DTLS connected -> oai-events open {1e3 * (timings['datachannel_open'] - timings['dtls_connected']):.1f} ms"
    )

    events = [json.loads(text) for text in result.channel_messages["oai-events"]]
    assert [e["type"] for e in events] == ["session.created", "session.updated", "error"], events
    created, updated, error = events
    assert created["session"]["object"] == "realtime.session"
    assert updated["session"]["instructions"] == UPDATE["session"]["instructions"]
    assert updated["session"]["id"] == created["session"]["id"]
    assert error["error"]["event_id"] == BOGUS["event_id"], error
    assert "bogus.event" in error["error"]["message"], error

    echoed = result.channel_messages["echo"]
    assert [digest(m) for m in echoed] == [digest(m) for m in echo_send]
    assert "a=sctp-init" not in result.offer_sdp  # aiortc has no SNAP: the INIT handshake ran
    assert "a=max-message-size:262144" in result.answer_sdp
    assert result.delete_status == 204
