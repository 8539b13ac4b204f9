"""The Realtime session configuration: its wire shape, OpenAI's documented defaults, and update merging.

Theory of operation
-------------------
A session has one *effective* configuration, a :class:`Session`. It starts as
:func:`default_session` (or the shared :func:`session_template` it copies) and changes only through :func:`apply_update`, which merges a validated ``session.update`` payload
(:class:`SessionUpdate`) into it and returns a new frozen :class:`Session`; the server then answers
with ``session.updated`` carrying the whole effective configuration.

Merge rules (GA Realtime semantics):

* A field absent from the update keeps its value; a field present replaces it. ``null`` is a value:
  ``audio.input.turn_detection: null`` turns turn detection off (the client commits turns),
  ``noise_reduction: null`` and ``transcription: null`` turn those off.
* ``audio``, ``audio.input`` and ``audio.output`` merge field by field, so an update that names only
  ``audio.output.voice`` leaves the input side untouched.
* ``turn_detection`` with the same ``type`` as the current one merges field by field; with a new
  ``type`` it starts from that type's defaults. (Our choice: OpenAI documents "only the fields that
  are present are updated" but not the nested case.)

Every model here is also the wire model: the same class validates what a client sends and
serializes what the server sends. A field left unset in an update means "unchanged"; Pydantic's
``model_fields_set`` is what tells "absent" from an explicit ``null``.

Validation limits that OpenAI documents and we enforce: VAD ``threshold`` in [0, 1]; output
``speed`` in [0.25, 1.5]; ``max_output_tokens`` an integer in [1, 4096] or ``"inf"``;
``output_modalities`` exactly ``["audio"]`` or ``["text"]``; PCM input and output only at 24 kHz.
Bounds that are ours (OpenAI documents none): ``prefix_padding_ms`` and ``silence_duration_ms`` in
[0, 10000], ``idle_timeout_ms`` null or in [1000, 3600000].

Not supported, and rejected with an error naming the value rather than silently ignored:
``semantic_vad`` turn detection, transcription sessions (``type: "transcription"``), MCP tools.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "AudioFormat",
    "AudioInput",
    "AudioOutput",
    "FunctionTool",
    "InputAudioTranscription",
    "NoiseReduction",
    "PcmFormat",
    "PcmaFormat",
    "PcmuFormat",
    "ServerVad",
    "Session",
    "SessionAudio",
    "SessionUpdate",
    "VadParams",
    "WireModel",
    "apply_update",
    "default_session",
    "session_template",
    "vad_params",
]

#: OpenAI's documented server_vad defaults: threshold 0.5, prefix padding 300 ms, silence 500 ms.
DEFAULT_THRESHOLD = 0.5
DEFAULT_PREFIX_PADDING_MS = 300
DEFAULT_SILENCE_DURATION_MS = 500
#: The only PCM rate the GA API accepts for ``audio/pcm``.
PCM_RATE: Literal[24000] = 24000


#: Keys written first, as OpenAI's own events read: ``{"type": ..., "event_id": ..., ...}``.
_FRONT = ("type", "event_id", "object", "id")


class WireModel(BaseModel):
    """Base of every Realtime wire model: strict types, unknown fields rejected, immutable.

    Serialization: by default a ``None`` field is left out of the JSON unless the class names it in
    ``_keep_null`` (fields where ``null`` means something, such as ``turn_detection``). With
    ``exclude_unset=True`` (used for client events, whose absent fields mean "unchanged") exactly
    the fields that were set are written, explicit nulls included, and ``type`` always.

    Parsing with ``context={"lenient": True}`` drops unknown fields instead of rejecting them: used
    for events from an upstream server, which may add fields we do not know yet.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    _keep_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_when_lenient(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and isinstance(info.context, dict) and info.context.get("lenient"):
            return {k: v for k, v in data.items() if k in cls.model_fields}
        return data

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if info.exclude_unset:
            if "type" in type(self).model_fields and "type" not in out:
                out["type"] = getattr(self, "type")  # noqa: B009  (not every subclass has the field)
        else:
            keep = self._keep_null
            out = {k: v for k, v in out.items() if v is not None or k in keep}
        front = {k: out.pop(k) for k in _FRONT if k in out}
        return {**front, **out} if front else out


def _reject(code: str, message: str) -> PydanticCustomError:
    """A validation error whose ``type`` is the OpenAI-style error code reported to the client."""
    return PydanticCustomError(code, message)


# ---------------------------------------------------------------------------------------------------
# Audio formats (GA: MIME-typed objects; the beta strings "pcm16"/"g711_ulaw"/"g711_alaw" are gone)


class PcmFormat(WireModel):
    """16-bit little-endian mono PCM; the GA API documents 24 kHz as the only rate."""

    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[24000] = PCM_RATE


class PcmuFormat(WireModel):
    """G.711 mu-law, 8 kHz."""

    type: Literal["audio/pcmu"] = "audio/pcmu"


class PcmaFormat(WireModel):
    """G.711 A-law, 8 kHz."""

    type: Literal["audio/pcma"] = "audio/pcma"


AudioFormat = Annotated[PcmFormat | PcmuFormat | PcmaFormat, Field(discriminator="type")]


# ---------------------------------------------------------------------------------------------------
# Input side


class ServerVad(WireModel):
    """``turn_detection`` of type ``server_vad``. Unset fields take OpenAI's documented defaults."""

    _keep_null = frozenset({"idle_timeout_ms"})

    type: Literal["server_vad"] = "server_vad"
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    prefix_padding_ms: Annotated[int, Field(ge=0, le=10_000)] | None = None
    silence_duration_ms: Annotated[int, Field(ge=0, le=10_000)] | None = None
    idle_timeout_ms: Annotated[int, Field(ge=1_000, le=3_600_000)] | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and v != v:  # NaN never reaches here from JSON, but a Python caller may pass it
            raise _reject("invalid_value", "threshold must be a number between 0 and 1")
        return v

    def filled(self) -> ServerVad:
        """This configuration with every unset knob at its documented default."""
        return ServerVad(
            threshold=DEFAULT_THRESHOLD if self.threshold is None else self.threshold,
            prefix_padding_ms=(
                DEFAULT_PREFIX_PADDING_MS if self.prefix_padding_ms is None else self.prefix_padding_ms
            ),
            silence_duration_ms=(
                DEFAULT_SILENCE_DURATION_MS if self.silence_duration_ms is None else self.silence_duration_ms
            ),
            idle_timeout_ms=self.idle_timeout_ms,
            create_response=True if self.create_response is None else self.create_response,
            interrupt_response=True if self.interrupt_response is None else self.interrupt_response,
        )


def _turn_detection_type(v: Any) -> Any:
    # semantic_vad is a real GA mode that this server does not implement: say so instead of
    # reporting it as an unknown tag or silently running server_vad.
    if isinstance(v, dict) and v.get("type") == "semantic_vad":
        raise _reject(
            "unsupported_value",
            "turn_detection type 'semantic_vad' is not supported by this server; use 'server_vad' or null",
        )
    return v


class NoiseReduction(WireModel):
    """Accepted and echoed; this server does not filter input audio."""

    type: Literal["near_field", "far_field"]


class InputAudioTranscription(WireModel):
    model: Annotated[str, Field(max_length=128)] | None = None
    language: Annotated[str, Field(max_length=32)] | None = None
    prompt: Annotated[str, Field(max_length=4096)] | None = None


class AudioInput(WireModel):
    _keep_null = frozenset({"transcription", "noise_reduction", "turn_detection"})

    format: AudioFormat | None = None
    transcription: InputAudioTranscription | None = None
    noise_reduction: NoiseReduction | None = None
    turn_detection: ServerVad | None = None

    @field_validator("turn_detection", mode="before")
    @classmethod
    def _no_semantic_vad(cls, v: Any) -> Any:
        return _turn_detection_type(v)


# ---------------------------------------------------------------------------------------------------
# Output side


class AudioOutput(WireModel):
    format: AudioFormat | None = None
    voice: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    speed: Annotated[float, Field(ge=0.25, le=1.5)] | None = None


class SessionAudio(WireModel):
    input: AudioInput | None = None
    output: AudioOutput | None = None


# ---------------------------------------------------------------------------------------------------
# Tools and the rest of the session


class FunctionTool(WireModel):
    type: Literal["function"] = "function"
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: Annotated[str, Field(max_length=8192)] | None = None
    parameters: dict[str, Any] | None = None


class ToolChoiceFunction(WireModel):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


ToolChoice = Literal["auto", "none", "required"] | ToolChoiceFunction


class RetentionRatioTokenLimits(WireModel):
    post_instructions: Annotated[int, Field(ge=0)] | None = None


class RetentionRatio(WireModel):
    type: Literal["retention_ratio"]
    retention_ratio: Annotated[float, Field(ge=0.0, le=1.0)]
    token_limits: RetentionRatioTokenLimits | None = None


class TracingConfig(WireModel):
    workflow_name: Annotated[str, Field(max_length=256)] | None = None
    group_id: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, Any] | None = None


class PromptRef(WireModel):
    id: Annotated[str, Field(max_length=256)]
    version: Annotated[str, Field(max_length=64)] | None = None
    variables: dict[str, Any] | None = None


OutputModalities = list[Literal["text", "audio"]]
MaxOutputTokens = Annotated[int, Field(ge=1, le=4096)] | Literal["inf"]


def check_modalities(v: list[str] | None) -> list[str] | None:
    if v is not None and v not in (["audio"], ["text"]):
        raise _reject(
            "invalid_value", f"Invalid modalities: {v!r}. Supported combinations are: ['text'] and ['audio']."
        )
    return v


def check_tools(v: Any) -> Any:
    if isinstance(v, list):
        for tool in v:
            if isinstance(tool, dict) and tool.get("type") == "mcp":
                raise _reject("unsupported_value", "MCP tools are not supported by this server")
    return v


class _SessionFields(WireModel):
    """Fields shared by the update payload and the effective session."""

    type: Literal["realtime"] = "realtime"
    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    instructions: Annotated[str, Field(max_length=131_072)] | None = None
    output_modalities: OutputModalities | None = None
    audio: SessionAudio | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    max_output_tokens: MaxOutputTokens | None = None
    tools: Annotated[list[FunctionTool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    tracing: Literal["auto"] | TracingConfig | None = None
    truncation: Literal["auto", "disabled"] | RetentionRatio | None = None
    prompt: PromptRef | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _only_realtime(cls, v: Any) -> Any:
        if v == "transcription":
            raise _reject(
                "unsupported_value",
                "Transcription sessions are not supported by this server; use session type 'realtime'",
            )
        return v

    @field_validator("output_modalities")
    @classmethod
    def _modalities(cls, v: list[str] | None) -> list[str] | None:
        return check_modalities(v)

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, v: Any) -> Any:
        return check_tools(v)


class SessionUpdate(_SessionFields):
    """The ``session`` object of a ``session.update`` client event: every field optional but
    ``type``, which GA requires (OpenAI answers ``missing_required_parameter`` without it)."""

    type: Literal["realtime"]


class Session(_SessionFields):
    """The effective session configuration, as sent in ``session.created``/``session.updated``."""

    _keep_null = frozenset({"tracing", "prompt", "include"})

    object: Literal["realtime.session"] = "realtime.session"
    id: str
    expires_at: int | None = None

    # Typed views of the parts the gateway acts on ------------------------------------------------

    @property
    def audio_input(self) -> AudioInput:
        assert self.audio is not None and self.audio.input is not None, (
            "effective session always has audio.input"
        )
        return self.audio.input

    @property
    def audio_output(self) -> AudioOutput:
        assert self.audio is not None and self.audio.output is not None, (
            "effective session always has audio.output"
        )
        return self.audio.output

    @property
    def voice(self) -> str:
        assert self.audio_output.voice is not None, "effective session always has a voice"
        return self.audio_output.voice


def default_session(
    session_id: str,
    *,
    model: str,
    voice: str = "alloy",
    instructions: str = "",
    expires_at: int | None = None,
    defaults: tuple[str, ...] = (),
) -> Session:
    """The configuration a new session starts with, following OpenAI's documented defaults:
    audio output, 24 kHz PCM both ways, server VAD 0.5 / 300 ms / 500 ms that creates and interrupts
    responses, no transcription, no noise reduction, no tools, ``tool_choice`` auto, unlimited
    output tokens, speed 1.0.

    ``defaults`` are starting configurations applied over OpenAI's defaults, in order (an agent's
    ``session_defaults``, then the configuration the offer's form or client secret carried), each
    the JSON of a ``session.update``'s ``session`` object. They are validated before they get
    here; an invalid one raises pydantic's ``ValidationError``.

    Sessions are never changed in place (:func:`apply_update` makes copies), so every call starts
    from one shared template per (model, voice, instructions, defaults) and owns only its id and
    expiry: the nested models cost ~4.5 KB per call otherwise, and each update a copy (~3 KB)."""
    template = session_template(model, voice, instructions, defaults)
    return template.model_copy(update={"id": session_id, "expires_at": expires_at})


#: Starting configurations of settings only (formats, turn detection, voice...), up to this size
#: in JSON bytes all together, are shared through a cache of :data:`SHARED_TEMPLATES`. Others are
#: built per call: one with a client's own words (:data:`PRIVATE_FIELDS`) must not outlive its
#: call in a cache, and a large one gains little from sharing.
MAX_SHARED_DEFAULTS = 2048
SHARED_TEMPLATES = 32
PRIVATE_FIELDS = frozenset({"instructions", "tools", "prompt", "tracing"})


def session_template(model: str, voice: str = "alloy", instructions: str = "", defaults: tuple[str, ...] = ()) -> Session:
    """The never modified starting configuration behind :func:`default_session`; its ``id`` and
    ``expires_at`` are placeholders. Shared between calls configured alike when ``defaults`` hold
    settings only (see :data:`MAX_SHARED_DEFAULTS`)."""
    if sum(len(config) for config in defaults) > MAX_SHARED_DEFAULTS or any(
        PRIVATE_FIELDS.intersection(json.loads(config)) for config in defaults
    ):
        return _build_template(model, voice, instructions, defaults)
    return _shared_template(model, voice, instructions, defaults)


def _build_template(model: str, voice: str, instructions: str, defaults: tuple[str, ...]) -> Session:
    session = _openai_defaults(model, voice, instructions)
    for config in defaults:
        session = apply_update(session, SessionUpdate.model_validate_json(config))
    return session


_shared_template = functools.lru_cache(maxsize=SHARED_TEMPLATES)(_build_template)


def _openai_defaults(model: str, voice: str, instructions: str) -> Session:
    return Session(
        id="sess_template",
        model=model,
        instructions=instructions,
        output_modalities=["audio"],
        audio=SessionAudio(
            input=AudioInput(
                format=PcmFormat(),
                transcription=None,
                noise_reduction=None,
                turn_detection=ServerVad().filled(),
            ),
            output=AudioOutput(format=PcmFormat(), voice=voice, speed=1.0),
        ),
        include=None,
        max_output_tokens="inf",
        tools=[],
        tool_choice="auto",
        tracing=None,
        truncation="auto",
        prompt=None,
        expires_at=None,
    )


def _merge_turn_detection(current: ServerVad | None, update: ServerVad) -> ServerVad:
    if current is None:
        return update.filled()
    changes = {name: getattr(update, name) for name in update.model_fields_set if name != "type"}
    return current.model_copy(update=changes).filled()


def _merge_input(current: AudioInput, update: AudioInput) -> AudioInput:
    changes: dict[str, Any] = {}
    for name in update.model_fields_set:
        value = getattr(update, name)
        if name == "turn_detection" and value is not None:
            value = _merge_turn_detection(current.turn_detection, value)
        changes[name] = value
    if changes.get("format", current.format) is None:  # format: null means "the default", never "none"
        changes["format"] = PcmFormat()
    return current.model_copy(update=changes)


def _merge_output(current: AudioOutput, update: AudioOutput) -> AudioOutput:
    changes = {name: getattr(update, name) for name in update.model_fields_set}
    defaults = {"format": PcmFormat(), "voice": current.voice, "speed": 1.0}
    for name, default in defaults.items():
        if name in changes and changes[name] is None:
            changes[name] = default
    return current.model_copy(update=changes)


def apply_update(current: Session, update: SessionUpdate) -> Session:
    """Merge a validated ``session.update`` payload into the effective session (see module doc).

    Stateful rules (voice locked once assistant audio exists, model changes) are the
    conversation's business, not this function's.
    """
    changes: dict[str, Any] = {}
    for name in update.model_fields_set:
        if name == "type":
            continue
        value = getattr(update, name)
        if name == "audio":
            audio_update: SessionAudio | None = value
            audio_in, audio_out = current.audio_input, current.audio_output
            if audio_update is not None:
                if "input" in audio_update.model_fields_set and audio_update.input is not None:
                    audio_in = _merge_input(audio_in, audio_update.input)
                if "output" in audio_update.model_fields_set and audio_update.output is not None:
                    audio_out = _merge_output(audio_out, audio_update.output)
            value = SessionAudio(input=audio_in, output=audio_out)
        elif value is None and name in ("model", "audio"):
            continue  # null never removes the model or the audio configuration
        elif value is None and name in _RESETTABLE:
            value = _RESETTABLE[name]
        changes[name] = value
    return current.model_copy(update=changes)


#: Fields whose ``null`` in an update means "back to the default" rather than "off".
_RESETTABLE: dict[str, Any] = {
    "instructions": "",
    "output_modalities": ["audio"],
    "max_output_tokens": "inf",
    "tools": [],
    "tool_choice": "auto",
    "truncation": "auto",
}


@dataclass(frozen=True, slots=True)
class VadParams:
    """The server_vad knobs with concrete values, for the turn-detection layer."""

    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    idle_timeout_ms: int | None
    create_response: bool
    interrupt_response: bool


def vad_params(session: Session) -> VadParams | None:
    """Concrete VAD parameters of the effective session, or None when turn detection is off."""
    td = session.audio_input.turn_detection
    if td is None:
        return None
    td = td.filled()
    assert td.threshold is not None and td.prefix_padding_ms is not None
    assert td.silence_duration_ms is not None and td.create_response is not None
    assert td.interrupt_response is not None
    return VadParams(
        td.threshold,
        td.prefix_padding_ms,
        td.silence_duration_ms,
        td.idle_timeout_ms,
        td.create_response,
        td.interrupt_response,
    )
