"""Speech synthesis: the Piper voice ``en_US-joe-medium`` on onnxruntime, espeak-ng as the fallback.

Theory of operation
-------------------
Piper (VITS) turns one sentence of espeak-ng IPA phonemes into 22.05 kHz audio in a single ONNX
call. :meth:`Synthesizer.synthesize` phonemizes the text (:mod:`voxwire.agent.speech.espeak`), then
runs one sentence at a time and yields its samples before starting the next, so the first sentence
plays while the rest is computed (the first sentence is itself split after its first clause when it
is long); :class:`SentenceBuffer` cuts a streamed reply (LLM tokens) into
sentences for the same purpose. Phoneme ids follow Piper: ``^`` then each phoneme (Unicode NFD code
points) followed by the pad ``_``, then ``$``; the scales come from the voice's JSON.

The model (63 MB) loads once per process after its SHA-256 is checked; one onnxruntime session on
one intra-op thread serves every call (``run`` is thread-safe). Measured here: about 0.1 s of CPU
per second of speech (real-time factor ~0.1), so a 2 s first sentence is ready in about 0.2 s.

Fallback: ``Synthesizer(voice="auto")`` (the default) uses Piper and, when the voice package is
missing, its digest is wrong, or the model or libespeak-ng fails to load, logs why at ERROR and
speaks with the espeak-ng program instead (robotic but intelligible; same 22.05 kHz rate).
``voice="piper"`` raises instead; ``voice="espeak"`` always uses espeak-ng. :attr:`Synthesizer.voice`
names the voice in use. Errors during synthesis are not swallowed.

Everything here blocks (CPU-bound): call it from a worker thread, not from the event loop.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from voxwire.agent.speech import espeak
from voxwire.agent.speech.models import (
    PIPER_JOE_CONFIG,
    PIPER_JOE_ONNX,
    ModelError,
    ModelFile,
    verified_path,
)

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["PIPER_JOE", "SentenceBuffer", "Synthesizer", "split_sentences"]

log = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]

#: Longest phoneme string given to the model at once; longer sentences are cut at word gaps.
MAX_PHONEMES = 400


@dataclass(frozen=True)
class _PiperVoice:
    name: str
    session: onnxruntime.InferenceSession
    sample_rate: int
    id_map: dict[str, list[int]]
    scales: npt.NDArray[np.float32]
    phonemizer: espeak.Phonemizer


def _ort_load_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's own exception types (they derive from Exception, not RuntimeError)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "RuntimeException")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


#: The voice the default agent speaks with: (ONNX graph, its JSON config).
PIPER_JOE = (PIPER_JOE_ONNX, PIPER_JOE_CONFIG)


@functools.cache
def _load_piper(files: tuple[ModelFile, ModelFile]) -> _PiperVoice:
    import onnxruntime

    onnx_path = verified_path(files[0])
    config = json.loads(verified_path(files[1]).read_text(encoding="utf-8"))
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except _ort_load_errors() as e:
        raise ModelError(f"onnxruntime cannot load {onnx_path}: {e}") from e
    inference = config.get("inference", {})
    scales = np.array(
        [
            inference.get("noise_scale", 0.667),
            inference.get("length_scale", 1.0),
            inference.get("noise_w", 0.8),
        ],
        dtype=np.float32,
    )
    return _PiperVoice(
        name=f"piper:{onnx_path.stem}",
        session=session,
        sample_rate=int(config["audio"]["sample_rate"]),
        id_map={k: list(v) for k, v in config["phoneme_id_map"].items()},
        scales=scales,
        phonemizer=espeak.Phonemizer(config.get("espeak", {}).get("voice", "en-us")),
    )


_MARKDOWN = re.compile(r"[*#`~]+")


def _speakable(text: str) -> str:
    """Drop markdown emphasis/heading marks that a voice would read aloud; squeeze spaces."""
    return " ".join(_MARKDOWN.sub(" ", text).split())


class Synthesizer:
    """Text to int16 mono PCM at :attr:`sample_rate`, one chunk per sentence."""

    ESPEAK_RATE = 22050

    def __init__(
        self,
        voice: Literal["auto", "piper", "espeak"] = "auto",
        *,
        piper_files: tuple[ModelFile, ModelFile] = PIPER_JOE,
        espeak_voice: str = "en-us",
    ) -> None:
        if voice not in ("auto", "piper", "espeak"):
            raise ValueError(f"voice must be 'auto', 'piper' or 'espeak', not {voice!r}")
        self._espeak_voice = espeak_voice
        self._piper: _PiperVoice | None = None
        #: Why the fallback voice is in use (None when Piper is).
        self.fallback_reason: str | None = None
        if voice != "espeak":
            try:
                self._piper = _load_piper(piper_files)
            except (ModelError, espeak.EspeakError, OSError) as e:
                if voice == "piper":
                    raise
                self.fallback_reason = f"{type(e).__name__}: {e}"
                log.error(
                    "Piper voice unavailable, speaking with espeak-ng instead: %s", self.fallback_reason
                )
        else:
            self.fallback_reason = "espeak-ng requested"
        if self._piper is None and not espeak.espeak_available():
            raise espeak.EspeakError("no voice: Piper is unavailable and espeak-ng is not installed")
        self.sample_rate = self._piper.sample_rate if self._piper else self.ESPEAK_RATE
        self.voice = self._piper.name if self._piper else f"espeak-ng:{espeak_voice}"

    def synthesize(self, text: str) -> Iterator[Pcm]:
        """Yield the speech for ``text`` sentence by sentence (nothing for empty text)."""
        text = _speakable(text)
        if not text:
            return
        if self._piper is None:
            for sentence in split_sentences(text):
                pcm, rate = espeak.espeak_voice_wav(sentence, self._espeak_voice)
                if rate != self.sample_rate:
                    raise espeak.EspeakError(f"espeak-ng changed its rate to {rate} Hz")
                if len(pcm):
                    yield pcm
            return
        first = True
        for phonemes in self._piper.phonemizer.sentences(text):
            parts = list(_cut(phonemes, MAX_PHONEMES))
            if first:
                parts[:1] = _first_clause(parts[0])
                first = False
            for part in parts:
                pcm = self._piper_run(part)
                if len(pcm):
                    yield pcm

    def _piper_run(self, phonemes: str) -> Pcm:
        voice = self._piper
        assert voice is not None
        id_map = voice.id_map
        ids = [*id_map["^"], *id_map["_"]]
        for ch in unicodedata.normalize("NFD", phonemes):
            if ch in id_map:
                ids += id_map[ch]
                ids += id_map["_"]
        ids += id_map["$"]
        feed = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": voice.scales,
        }
        audio = voice.session.run(None, feed)[0].reshape(-1)
        out: Pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        return out


#: The first sentence of a reply is split after its first clause when both halves have at least
#: this many phoneme characters (about four words): the listener hears the clause's pause anyway,
#: and the first audio is ready in half the time (time to first audio ~ 0.1 x the piece's length).
FIRST_CLAUSE_MIN = 24
_CLAUSE_MARK = re.compile(r"[,;:] ")


def _first_clause(phonemes: str) -> list[str]:
    for m in _CLAUSE_MARK.finditer(phonemes):
        if m.start() >= FIRST_CLAUSE_MIN and len(phonemes) - m.end() >= FIRST_CLAUSE_MIN:
            return [phonemes[: m.start() + 1], phonemes[m.end() :]]
    return [phonemes]


def _cut(phonemes: str, limit: int) -> Iterator[str]:
    """Pieces of at most ``limit`` characters, cut at spaces where there are any."""
    while len(phonemes) > limit:
        cut = phonemes.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        yield phonemes[:cut]
        phonemes = phonemes[cut:].lstrip()
    if phonemes:
        yield phonemes


# -- sentences -------------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e a.m p.m no fig approx dept est inc ltd co mt".split()
)
#: A sentence ends after . ! ? or … (any run), optional closing quotes/brackets, then white space.
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|\n+")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
_CLAUSE = re.compile(r"[,;:\u2014\u2013](?=\s)")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the ``.`` at ``dot`` ends an abbreviation or an initial rather than a sentence."""
    if text[dot] != ".":
        return False
    word = text[:dot].rsplit(None, 1)[-1] if text[:dot].strip() else ""
    word = word.lstrip("(\"'\u201c\u2018")
    if word.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(word):  # "Dr.", "e.g.", "U.S."
        return True
    return len(word) == 1 and word.isalpha() and word.isupper()  # an initial: "J. Smith"


class SentenceBuffer:
    """Cut streamed text into sentences as soon as each one is known to be complete.

    ``push`` a piece of text (an LLM token, a chunk) and get the sentences it completed; ``flush``
    at the end returns the rest. A sentence is complete once the white space after its ``.!?`` has
    arrived (``Dr.``-style abbreviations and single initials do not end one), or at a newline. A
    run with no sentence end is cut at a clause mark or a space once it reaches ``max_chars``, so the
    voice never waits for a paragraph.
    """

    def __init__(self, max_chars: int = 250) -> None:
        if max_chars < 20:
            raise ValueError(f"max_chars must be at least 20, not {max_chars}")
        self.max_chars = max_chars
        self._text = ""

    def push(self, text: str) -> list[str]:
        self._text += text
        out: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                break
            sentence, self._text = self._text[:cut].strip(), self._text[cut:].lstrip()
            if sentence:
                out.append(sentence)
        return out

    def flush(self) -> list[str]:
        rest, self._text = self._text.strip(), ""
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        text = self._text
        for m in _END.finditer(text):
            if m.group().startswith("\n") or not _is_abbreviation(text, m.start()):
                return m.end()
        if len(text) < self.max_chars:
            return None
        head = text[: self.max_chars]
        clauses = [m.end() for m in _CLAUSE.finditer(head)]
        if clauses and clauses[-1] > self.max_chars // 4:
            return clauses[-1]
        space = head.rfind(" ")
        return space if space > 0 else self.max_chars


def split_sentences(text: str, max_chars: int = 250) -> list[str]:
    """All the sentences of a finished text (see :class:`SentenceBuffer`)."""
    buf = SentenceBuffer(max_chars)
    return [*buf.push(text + " "), *buf.flush()]
