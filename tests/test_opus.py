"""The libopus binding: round trip, in-band FEC versus concealment, packet inspection, errors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voxwire.media.opus import OpusDecoder, OpusEncoder, OpusError, has_fec, packet_samples

RATE = 48000
FRAME = 960


def sine(freq: float, seconds: float, amp: float = 10000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def voice_like(seconds: float) -> npt.NDArray[np.int16]:
    """A gliding 140 Hz pitch with 11 harmonics and a syllable-rate envelope: SILK codes it as voice."""
    t = np.arange(int(RATE * seconds)) / RATE
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 2.3 * t)) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (x / np.abs(x).max() * 12000).astype(np.int16)


def frames(x: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
    return [x[i : i + FRAME] for i in range(0, len(x) - FRAME + 1, FRAME)]


def pcm(b: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(b, dtype=np.int16).astype(np.float64)


def corr(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_round_trip_preserves_a_sine_after_the_codec_delay() -> None:
    x = sine(440, 0.5)
    enc, dec = OpusEncoder(), OpusDecoder()
    packets = [enc.encode(f, FRAME) for f in frames(x)]
    assert all(0 < len(p) < 200 for p in packets)
    y = pcm(b"".join(dec.decode(p) for p in packets))
    assert len(y) == len(x)
    delay = enc.lookahead
    assert corr(x[: len(y) - delay].astype(np.float64), y[delay:]) > 0.9


def test_encode_accepts_bytes_and_rejects_a_wrong_length() -> None:
    enc = OpusEncoder(complexity=0)
    assert enc.encode(sine(300, 0.02).tobytes())
    with pytest.raises(ValueError):
        enc.encode(np.zeros(FRAME + 1, dtype=np.int16), FRAME)
    with pytest.raises(OpusError):  # 7 ms is not an Opus frame size
        enc.encode(np.zeros(336, dtype=np.int16))


def test_settings_are_applied() -> None:
    enc = OpusEncoder(bitrate=24000, packet_loss_perc=20, complexity=3, dtx=True)
    assert (enc.bitrate, enc.packet_loss_perc, enc.complexity, enc.inband_fec, enc.dtx) == (
        24000,
        20,
        3,
        True,
        True,
    )


def test_fec_rebuilds_lost_frames_much_better_than_concealment() -> None:
    enc = OpusEncoder()
    packets = [enc.encode(f) for f in frames(voice_like(0.6))]
    reference = OpusDecoder()
    clean = [pcm(reference.decode(p)) for p in packets]
    fec_scores, plc_scores = [], []
    for lost in range(1, len(packets) - 1):
        with_fec, with_plc = OpusDecoder(), OpusDecoder()
        for p in packets[:lost]:
            with_fec.decode(p)
            with_plc.decode(p)
        fec = pcm(with_fec.decode_fec(packets[lost + 1], FRAME))
        plc = pcm(with_plc.conceal(FRAME))
        assert len(fec) == len(plc) == FRAME
        if has_fec(packets[lost + 1]):
            fec_scores.append(corr(fec, clean[lost]))
            plc_scores.append(corr(plc, clean[lost]))
        else:  # no LBRR: libopus falls back to concealment
            assert np.max(np.abs(fec - plc)) < 200
        # After the rebuilt frame, the next packet decodes normally.
        assert len(with_fec.decode(packets[lost + 1])) == 2 * FRAME
    assert len(fec_scores) > len(packets) // 2
    assert min(fec_scores) > 0.95, fec_scores
    assert np.mean(fec_scores) - np.mean(plc_scores) > 0.1, (fec_scores, plc_scores)
    plain = OpusEncoder(inband_fec=False)
    assert not any(has_fec(plain.encode(f)) for f in frames(voice_like(0.2)))


def test_concealment_returns_the_requested_length() -> None:
    dec = OpusDecoder()
    dec.decode(OpusEncoder().encode(sine(440, 0.02)))
    assert len(dec.conceal(960)) == 960 * 2
    assert len(dec.conceal(480)) == 480 * 2
    assert len(OpusDecoder(sample_rate=24000).conceal(480)) == 480 * 2


def test_stereo_stream_decodes_to_mono_and_at_other_rates() -> None:
    stereo = np.repeat(sine(440, 0.02), 2)
    packet = OpusEncoder(channels=2).encode(stereo, FRAME)
    assert packet_samples(packet) == FRAME and packet_samples(packet, 24000) == FRAME // 2
    assert len(OpusDecoder().decode(packet)) == FRAME * 2
    assert len(OpusDecoder(sample_rate=24000).decode(packet)) == FRAME
    assert len(OpusDecoder(channels=2).decode(packet)) == FRAME * 4


@pytest.mark.parametrize("bad", [b"", b"\xff", b"\x03\xff\xff", b"\x0b" + b"\xff" * 1300])
def test_bad_payload_raises_opus_error(bad: bytes) -> None:
    dec = OpusDecoder()
    with pytest.raises(OpusError) as info:
        dec.decode(bad)
    assert info.value.code < 0
    with pytest.raises(OpusError):
        packet_samples(bad)
    with pytest.raises(OpusError):
        has_fec(bad)
    # The decoder is still usable afterwards.
    assert len(dec.decode(OpusEncoder().encode(sine(440, 0.02)))) == FRAME * 2


def test_random_bytes_never_crash() -> None:
    rng = np.random.default_rng(1)
    dec = OpusDecoder()
    for _ in range(300):
        junk = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        for call in (dec.decode, has_fec, packet_samples):
            try:
                call(junk)
            except OpusError:
                pass
