"""``assistant``: the default agent of ``voxwire serve``, fully offline.

A finished user turn goes through speech recognition (faster-whisper tiny.en), a reply (from an
OpenAI-compatible chat-completions endpoint when ``VOXWIRE_CHAT_URL`` is set -- a local llama.cpp,
vLLM or Ollama server -- otherwise a small built-in responder that answers from what it heard), and
speech synthesis (the Piper voice; espeak-ng as the fallback). It streams: each sentence is spoken
as soon as it is complete, while the rest of the reply is still being generated.

Recognition and synthesis block, so they run in a small thread pool shared by every call; the
models load once per process (:func:`voxwire.agent.speech.preload` at start-up).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import numpy as np

from voxwire.agent.base import (
    DEFAULT_SAMPLE_RATE,
    AgentError,
    AgentOutput,
    AgentSession,
    AudioOut,
    CallContext,
    Message,
    Pcm,
    TextOut,
    Turn,
    UserTranscript,
)
from voxwire.agent.speech import SentenceBuffer, Synthesizer, Transcriber
from voxwire.media.resample import Resampler

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Worker threads for recognition and synthesis, shared by all calls (2 cores here).
SPEECH_THREADS = 2
#: Longest reply spoken, in characters (a runaway model is cut off).
MAX_REPLY_CHARS = 2000
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(SPEECH_THREADS, thread_name_prefix="voxwire-speech")
    return _executor


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_pool(), fn, *args)


# -- replies ------------------------------------------------------------------------------------


def builtin_reply(heard: str, history: tuple[Message, ...] = ()) -> str:
    """A tiny offline responder: it answers from what it heard, so a call is useful with no model."""
    text = heard.strip()
    low = re.sub(r"[^a-z' ]", " ", text.lower())
    words = low.split()
    if not words:
        return "I didn't catch that. Could you say it again?"
    if any(w in words for w in ("hello", "hi", "hey")):
        return "Hello! I'm the voxwire assistant. What would you like to talk about?"
    if "your name" in low:
        return "I'm the voxwire assistant, running entirely on this machine."
    if "how are you" in low:
        return "I'm doing well, thank you. How are you?"
    if any(w in words for w in ("bye", "goodbye")):
        return "Goodbye! Thanks for calling."
    if "weather" in words:
        return "I can't look outside from here, but I hope it's nice where you are."
    if words[0] in ("what", "why", "how", "when", "where", "who", "which", "can", "could", "do", "is", "are"):
        return f"You asked: {text.rstrip('?.!')}? That's a good question. I'm a simple offline assistant, so I can only repeat it back to you."
    return f"You said: {text.rstrip('.!?')}. Tell me more."


@dataclass(frozen=True)
class ChatConfig:
    """An OpenAI-compatible ``/chat/completions`` endpoint (``VOXWIRE_CHAT_URL`` is its base URL,
    e.g. ``http://127.0.0.1:8000/v1``)."""

    url: str
    model: str = "default"
    api_key: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ChatConfig | None:
        env = os.environ if environ is None else environ
        url = env.get("VOXWIRE_CHAT_URL")
        if not url:
            return None
        return cls(url.rstrip("/"), env.get("VOXWIRE_CHAT_MODEL", "default"), env.get("VOXWIRE_CHAT_API_KEY"))

    def __repr__(self) -> str:
        return f"ChatConfig(url={self.url!r}, model={self.model!r})"  # never the key


async def chat_reply(config: ChatConfig, turn: Turn, heard: str) -> AsyncIterator[str]:
    """Stream a reply's text deltas from a chat-completions endpoint (server-sent events)."""
    messages = [{"role": "system", "content": turn.instructions or "You are a helpful voice assistant. Be brief."}]
    messages += [{"role": m.role, "content": m.text} for m in turn.history if m.role in ("user", "assistant")]
    if not messages[-1]["content"] == heard:
        messages.append({"role": "user", "content": heard})
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    body = {"model": config.model, "messages": messages, "stream": True}
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(config.url + "/chat/completions", json=body, headers=headers) as resp:
                if resp.status != 200:
                    raise AgentError(f"the chat endpoint answered HTTP {resp.status}")
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                    except (ValueError, KeyError, IndexError, AttributeError):
                        continue
                    if delta:
                        yield delta
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AgentError(f"the chat endpoint failed: {type(exc).__name__}") from exc


# -- the agent ----------------------------------------------------------------------------------


class AssistantSession:
    def __init__(self, agent: AssistantAgent) -> None:
        self._agent = agent

    def on_audio(self, pcm: Pcm, now: float) -> None:
        pass  # turns arrive whole through respond()

    async def respond(self, turn: Turn) -> AsyncIterator[AgentOutput]:
        agent = self._agent
        heard = turn.transcript
        if heard is None:
            heard = await _in_thread(agent.transcriber.transcribe, turn.audio, turn.sample_rate) if len(turn.audio) else ""
            yield UserTranscript(heard)
        sentences = SentenceBuffer()
        spoken = 0
        async for delta in self._reply(turn, heard):
            for sentence in sentences.push(delta):
                spoken += len(sentence)
                async for out in self._speak(sentence):
                    yield out
            if spoken > MAX_REPLY_CHARS:
                return
        for sentence in sentences.flush():
            async for out in self._speak(sentence):
                yield out

    async def _reply(self, turn: Turn, heard: str) -> AsyncIterator[str]:
        chat = self._agent.chat
        if chat is not None and heard.strip():
            async for delta in chat_reply(chat, turn, heard):
                yield delta
        else:
            yield builtin_reply(heard, tuple(turn.history))

    async def _speak(self, sentence: str) -> AsyncIterator[AgentOutput]:
        yield TextOut(sentence if sentence.endswith(" ") else sentence + " ")
        chunks = await _in_thread(lambda: list(self._agent.synthesize(sentence)))
        for pcm in chunks:
            yield AudioOut(pcm)

    def close(self) -> None:
        pass


class AssistantAgent:
    name = "assistant"

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE, *, chat: ChatConfig | None = None) -> None:
        self.sample_rate = sample_rate
        self.chat = chat if chat is not None else ChatConfig.from_environment()
        self.transcriber = Transcriber()
        self.synthesizer = Synthesizer()
        log.info("assistant: voice %s, replies from %s", self.synthesizer.voice, self.chat or "the built-in responder")

    def synthesize(self, text: str) -> Iterator[Pcm]:
        """Speech for ``text`` at the agent's rate (one resampler per sentence: no seams inside)."""
        resampler = Resampler(self.synthesizer.sample_rate, self.sample_rate)
        for chunk in self.synthesizer.synthesize(text):
            out = chunk if resampler.passthrough else resampler.process(chunk)
            if len(out):
                yield out
        if not resampler.passthrough:
            tail = resampler.flush()
            if len(tail):
                yield tail.astype(np.int16)

    def start(self, ctx: CallContext) -> AgentSession:
        return AssistantSession(self)
