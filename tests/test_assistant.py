"""The default offline agent: speech in, recognised, answered, spoken (real models), and replies
from an OpenAI-compatible chat-completions endpoint (a local server speaking its streaming protocol)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from voxwire.agent.assistant import AssistantAgent, ChatConfig, builtin_reply
from voxwire.agent.base import AgentError, AudioOut, TextOut, Turn, UserTranscript
from voxwire.media.resample import Resampler

RATE = 24_000


@pytest.fixture(scope="module")
def agent() -> AssistantAgent:
    return AssistantAgent(chat=None)


def spoken(text: str, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "q.wav"
    subprocess.run([shutil.which("espeak-ng") or "espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return Resampler(w.getframerate(), RATE).process(pcm)


async def collect(gen):
    return [x async for x in gen]


def test_builtin_responder_answers_from_what_it_heard():
    assert "Hello" in builtin_reply("hi there")
    assert "voxwire assistant" in builtin_reply("What is your name?")
    assert "didn't catch" in builtin_reply("  ")
    assert "purple elephants" in builtin_reply("I like purple elephants")


def test_a_spoken_question_gets_a_spoken_answer(agent, tmp_path):
    turn = Turn(spoken("Hello, what is your name?", tmp_path), RATE)
    outputs = asyncio.run(collect(agent.start(None).respond(turn)))  # type: ignore[arg-type]
    heard = [o.text for o in outputs if isinstance(o, UserTranscript)]
    assert heard and "name" in heard[0].lower()
    said = "".join(o.delta for o in outputs if isinstance(o, TextOut))
    assert "voxwire assistant" in said or "Hello" in said
    audio = np.concatenate([o.pcm for o in outputs if isinstance(o, AudioOut)])
    assert len(audio) > RATE // 2 and np.sqrt(np.mean(audio.astype(float) ** 2)) > 300
    # Streaming: the first sentence's audio comes before the last sentence's text.
    kinds = [type(o).__name__ for o in outputs]
    assert kinds.index("AudioOut") < len(kinds) - 1


async def chat_server(replies: list[str], status: int = 200):
    seen: list[dict] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        if status != 200:
            return web.json_response({"error": {"message": "nope"}}, status=status)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in replies:
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/v1", seen


def test_replies_stream_from_a_chat_completions_endpoint(tmp_path):
    async def main() -> None:
        runner, url, seen = await chat_server(["Sure. ", "The answer ", "is forty-two. ", "Anything else?"])
        agent = AssistantAgent(chat=ChatConfig(url, model="local"))
        turn = Turn(np.zeros(0, np.int16), RATE, instructions="Be brief.", transcript="What is the answer?")
        outputs = await collect(agent.start(None).respond(turn))  # type: ignore[arg-type]
        said = [o.delta for o in outputs if isinstance(o, TextOut)]
        assert "".join(said).split() == "Sure. The answer is forty-two. Anything else?".split()
        assert len(said) == 3  # one per sentence, spoken as each completes
        assert seen[0]["stream"] is True and seen[0]["messages"][0] == {"role": "system", "content": "Be brief."}
        assert seen[0]["messages"][-1] == {"role": "user", "content": "What is the answer?"}
        await runner.cleanup()
        runner, url, _ = await chat_server([], status=500)
        agent = AssistantAgent(chat=ChatConfig(url))
        with pytest.raises(AgentError, match="HTTP 500"):
            await collect(agent.start(None).respond(turn))  # type: ignore[arg-type]
        await runner.cleanup()

    asyncio.run(main())


def test_chat_config_comes_from_the_environment():
    assert ChatConfig.from_environment({}) is None
    config = ChatConfig.from_environment({"VOXWIRE_CHAT_URL": "http://127.0.0.1:8000/v1/", "VOXWIRE_CHAT_API_KEY": "sk-x"})
    assert config is not None and config.url == "http://127.0.0.1:8000/v1" and "sk-x" not in repr(config)
