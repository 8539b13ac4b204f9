"""Offline speech engines for the default agent: recognition (faster-whisper, Whisper tiny.en) and
synthesis (Piper ``en_US-joe-medium`` on onnxruntime with espeak-ng phonemes; espeak-ng as the
fallback voice). Every model file comes from a pinned PyPI package and is SHA-256 checked when it
first loads (:mod:`voxwire.agent.speech.models`); each model loads once per process.

Importing this package loads no model; :func:`preload` loads them all (VAD included), so that a
server pays the ~1.5 s at start-up instead of on its first call.
"""

from voxwire.agent.speech.models import ModelError, ModelIntegrityError, ModelNotFoundError
from voxwire.agent.speech.stt import Transcriber
from voxwire.agent.speech.tts import SentenceBuffer, Synthesizer, split_sentences

__all__ = [
    "ModelError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "SentenceBuffer",
    "Synthesizer",
    "Transcriber",
    "preload",
    "split_sentences",
]


def preload() -> Synthesizer:
    """Load (and check) the VAD, Whisper and the voice now; returns the synthesizer it made."""
    from voxwire.agent.speech.stt import load_whisper
    from voxwire.agent.vad import load_session

    load_session()
    load_whisper()
    return Synthesizer()
