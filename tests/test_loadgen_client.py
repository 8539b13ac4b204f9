"""The load generator's caller: echoes are measured by their RTP header, a sample authenticated."""

from __future__ import annotations

import math
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


def test_a_frame_a_pass_through_server_dropped_counts_as_lost_not_as_lasting_delay() -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM
    key = os.urandom(profile.keying_len)
    server = SrtpSession(profile, key, key)
    frames = [bytes([0xF8, i]) * 20 for i in range(50)]  # distinct payloads: the echo names its frame
    client = LoadClient(Certificate.generate(), 0.0, random.Random(1), frames, frame_offset=0)
    client.srtp = SrtpSession(profile, key, key)
    dropped = 5
    seq = 0
    for k in range(3 * VERIFY_EVERY):
        client.media_packet(0.02 * k)  # frame k sent at 20 ms steps
        if k == dropped:
            continue  # the server dropped it; its sequence numbers stay contiguous
        echo = server.protect_rtp(build_rtp(111, seq, seq * 960, 7, frames[k]))
        client.handle_datagram(echo, SERVER, 0.02 * k + 0.001)  # each echo 1 ms after its frame
        seq += 1
    _, lost, late, delays = client.window(0, 3 * VERIFY_EVERY)
    # The first authenticated echo after the drop (the 17th, answering frame 17) finds its
    # payload one frame on. Until then each echo answered the frame after the one it was mapped
    # to (20 ms late); the frame left without an echo (one, at the resync) is lost; from there
    # every frame measures 1 ms again, instead of 21 ms for the rest of the call.
    assert client.resyncs == 1
    assert lost == 1 and math.isnan(client.delay[VERIFY_EVERY])
    assert [round(d * 1000, 1) for d in client.delay[dropped:VERIFY_EVERY]] == [21.0] * (VERIFY_EVERY - dropped)
    assert [round(d * 1000, 1) for d in client.delay[VERIFY_EVERY + 1 :]] == [1.0] * (2 * VERIFY_EVERY - 1)
