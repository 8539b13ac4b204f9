"""Conversation items (``message``, ``function_call``, ``function_call_output``) and their content
parts, with the size limits and bounded field types that client and server events share.

Stored items never keep audio bytes (see :mod:`voxwire.realtime.conversation`); the ``audio``
fields here exist for items a client sends. The protocol overview is in
:mod:`voxwire.realtime.events`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from voxwire.realtime.session import WireModel

MAX_EVENT_BYTES = 256 * 1024
MAX_ID_LENGTH = 64

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Index = Annotated[int, Field(ge=0, le=1 << 31)]
Millis = Annotated[int, Field(ge=0, le=1 << 40)]
ItemStatus = Literal["completed", "incomplete", "in_progress"]


def check_base64(value: str) -> str:
    """Field validator: ``value`` must be strict base64 (the audio of an append or a content part)."""
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("invalid_value", "Invalid base64 audio data") from None
    return value


Base64 = Annotated[str, Field(max_length=MAX_EVENT_BYTES)]


class InputText(WireModel):
    type: Literal["input_text"] = "input_text"
    text: str


class _AudioPart(WireModel):
    """A content part with optional base64 audio and its transcript (``type`` first on the wire)."""

    type: str
    audio: Base64 | None = None
    transcript: str | None = None

    @field_validator("audio")
    @classmethod
    def _audio(cls, v: str | None) -> str | None:
        return None if v is None else check_base64(v)


class InputAudio(_AudioPart):
    _keep_null = frozenset({"transcript"})

    type: Literal["input_audio"] = "input_audio"


class OutputText(WireModel):
    type: Literal["output_text"] = "output_text"
    text: str


class OutputAudio(_AudioPart):
    type: Literal["output_audio"] = "output_audio"


ContentPart = Annotated[InputText | InputAudio | OutputText | OutputAudio, Field(discriminator="type")]

_PARTS_FOR_ROLE: dict[str, frozenset[str]] = {
    "system": frozenset({"input_text"}),
    "user": frozenset({"input_text", "input_audio"}),
    "assistant": frozenset({"output_text", "output_audio"}),
}


class _ItemBase(WireModel):
    id: Id | None = None
    object: Literal["realtime.item"] | None = None
    status: ItemStatus | None = None


class MessageItem(_ItemBase):
    type: Literal["message"] = "message"
    role: Literal["system", "user", "assistant"]
    content: Annotated[list[ContentPart], Field(max_length=64)]

    @field_validator("content")
    @classmethod
    def _parts_match_role(cls, content: list[ContentPart], info: ValidationInfo) -> list[ContentPart]:
        role = info.data.get("role")
        allowed = _PARTS_FOR_ROLE.get(role, frozenset()) if isinstance(role, str) else frozenset()
        for index, part in enumerate(content):
            if part.type not in allowed:
                raise PydanticCustomError(
                    "invalid_value",
                    "content[{index}] has type '{part}', which a {role} message cannot hold; allowed: {allowed}",
                    {"index": index, "part": part.type, "role": role, "allowed": ", ".join(sorted(allowed))},
                )
        return content


class FunctionCallItem(_ItemBase):
    type: Literal["function_call"] = "function_call"
    name: Annotated[str, Field(max_length=64)]
    arguments: str
    call_id: Id | None = None


class FunctionCallOutputItem(_ItemBase):
    type: Literal["function_call_output"] = "function_call_output"
    call_id: Id
    output: str


Item = Annotated[MessageItem | FunctionCallItem | FunctionCallOutputItem, Field(discriminator="type")]
