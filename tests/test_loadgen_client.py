"""The load generator's caller: echoes are measured by their RTP header, a sample authenticated."""

from __future__ import annotations

import os
import random

from voxwire.loadgen.client import VERIFY_EVERY, LoadClient
from voxwire.proto.certificate import Certificate
from voxwire.proto.srtp import SrtpProfile, SrtpSession
from voxwire.wire.rtp import build_rtp

SERVER = ("192.0.2.1", 3478)


def test_one_echo_in_verify_every_is_authenticated_and_a_forged_one_is_not_measured() -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM
    key = os.urandom(profile.keying_len)
    server = SrtpSession(profile, key, key)
    client = LoadClient(Certificate.generate(), 0.0, random.Random(1), [b"\xf8" * 40], frame_offset=0)
    client.srtp = SrtpSession(profile, key, key)
    echoes = [server.protect_rtp(build_rtp(111, seq, seq * 960, 7, b"\xf8" * 40)) for seq in range(2 * VERIFY_EVERY + 1)]

    def forged(packet: bytes) -> bytes:
        return packet[:-1] + bytes([packet[-1] ^ 1])  # a flipped tag bit

    for seq, packet in enumerate(echoes):
        # The first echo and the one after VERIFY_EVERY - 1 unverified ones are checked; forge
        # one that is not checked (measured by its header) and one that is (dropped, counted).
        client.handle_datagram(forged(packet) if seq in (3, VERIFY_EVERY) else packet, SERVER, 0.02 * seq)
    assert client.srtp_failures == 1
    assert client.echoes == len(echoes) - 1
