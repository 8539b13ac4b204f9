"""The setup-under-load probe of ``bench/capacity.py``: setup times of probe calls added with
idle media, as the load generator saw them and as the server timed them.

Run through ``bench/capacity.py`` (its "Setup under load" section says what is measured).
"""

from __future__ import annotations

import asyncio
from typing import Any

from voxwire.loadgen.core import LoadClient, LoadGen, percentile


def rounded(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


#: Setup probes: SETUP_ROUNDS rounds of this many calls, at this rate, with idle media (they add
#: setups, not load), each round hung up once measured; once with nothing running and once at the
#: first level of SETUP_UNDER_LOAD calls. The p99 of one round of 100 is its one or two slowest
#: setups, and on this shared machine one stall moved it 2-3x between runs of the same commit:
#: the percentiles are over all rounds' calls, with each round's p99 listed beside them.
SETUP_PROBES = 100
SETUP_ROUNDS = 3
SETUP_PROBE_RATE = 20.0
SETUP_UNDER_LOAD = 200


async def setup_probe(gen: LoadGen) -> dict[str, Any]:
    calls: list[LoadClient] = []
    rounds: list[float | None] = []
    server_side: dict[str, list[float]] = {}
    gen.config.media_on_connect = False
    try:
        for _ in range(SETUP_ROUNDS):
            probe = await gen.ramp(SETUP_PROBES, SETUP_PROBE_RATE)
            for key, values in (await server_setup_times(gen.config.url, probe)).items():
                server_side.setdefault(key, []).extend(values)
            await gen.hang_up(probe)
            await asyncio.sleep(0.5)
            calls += probe
            rounds.append(_setup_summary(probe)["keys_p99_ms"])
    finally:
        gen.config.media_on_connect = True
    out = {**_setup_summary(calls), "keys_p99_ms_rounds": rounds}
    for key, values in server_side.items():
        out |= _p50_p99(f"server_{key}", values)
    return out


def _p50_p99(name: str, values: list[float]) -> dict[str, float | None]:
    return {f"{name}_p50_ms": rounded(percentile(values, 50)), f"{name}_p99_ms": rounded(percentile(values, 99))}


async def server_setup_times(url: str, calls: list[LoadClient]) -> dict[str, list[float]]:
    """The same setups as the server timed them (its dashboard's per-call timeline, ms):
    ``keys``, the offer request's start -> DTLS connected, and ``answer``, the request's start ->
    its handler done (answer made). The client's figures add the load generator's own delays --
    its process shares core 1 with the calls it runs -- which a real client on its own device does
    not have. A call the server no longer knows is skipped; empty when the server has no dashboard
    (aiortc: its first answer is not a 200)."""
    import aiohttp

    keys: list[float] = []
    answer: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for call in calls:
            if call.error is not None or call.url is None:
                continue
            try:
                async with http.get(f"{url}/dashboard/api/sessions/{call.url.rstrip('/').rsplit('/', 1)[-1]}") as resp:
                    if resp.status != 200:
                        if not keys:
                            return {}
                        continue
                    timeline = (await resp.json())["timeline_ms"]
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
                continue
            request, connected = timeline.get("request"), timeline.get("connected")
            if request is not None and connected is not None and timeline.get("signaling") is not None:
                keys.append(connected - request)  # request <= 0: before the call was made
                answer.append(timeline["signaling"])
    return {"keys": keys, "answer": answer} if keys else {}


def _setup_summary(calls: list[LoadClient]) -> dict[str, Any]:
    """POST -> SRTP keys in place, and its phases: POST -> answer, answer -> first check response
    (ICE), check response -> keys (DTLS)."""
    ok = [c for c in calls if c.error is None and c.timeline.keys is not None]
    out: dict[str, Any] = {"calls": len(calls), "failed": len(calls) - len(ok)}
    for name, start, end in (("keys", "post", "keys"), ("answer", "post", "answer"), ("ice", "answer", "ice"),
                             ("dtls", "ice", "keys")):
        out |= _p50_p99(name, [1000 * (getattr(c.timeline, end) - getattr(c.timeline, start)) for c in ok])
    return out
