"""Call traces: one trace per call, exported as OpenTelemetry (OTLP) JSON. Off by default.

A call's trace has a root span ``call`` (answer to close) and children ``signaling`` (the offer
request), ``ice`` (answer to the first connectivity check), ``dtls`` (first check to SRTP keys),
``datachannel`` (keys to the ``oai-events`` channel open) and one ``turn`` per reply (end of the
user's speech to the first audio frame of the reply). The call monitor records the spans as the call
goes and hands the whole trace to the exporter when the call ends: one export per call, nothing on
the media path.

The span model here is ours (a small frozen dataclass); exporters turn it into OTLP's JSON encoding
(``ExportTraceServiceRequest``, ids as hex, times as Unix nanoseconds), so no OpenTelemetry package
is needed:

* ``none`` (the default): nothing is recorded.
* ``file:PATH``: one OTLP JSON request per line, appended to PATH (debugging, tests).
* ``otlp:URL``: POSTed to an OTLP/HTTP collector (``URL``, ``/v1/traces`` appended when it has no
  path), from a bounded queue: when the collector is slow or down, traces are dropped and counted,
  never held.

Spans carry the call id and protocol facts (SRTP profile, DTLS role, close reason); never
addresses, credentials or transcripts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "CallTrace",
    "FileExporter",
    "OtlpHttpExporter",
    "Span",
    "SpanExporter",
    "Tracer",
    "configure",
    "get_tracer",
    "otlp_json",
]

log = logging.getLogger(__name__)

AttributeValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Span:
    name: str
    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_id: bytes | None
    start: float  # Unix seconds
    end: float
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    error: str | None = None  # status: OK when None, ERROR with this message otherwise


class SpanExporter(Protocol):
    def export(self, spans: list[Span]) -> None:
        """Take one finished trace; must not block."""

    async def aclose(self) -> None: ...


def _attribute(key: str, value: AttributeValue) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 is a JSON string in OTLP
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def otlp_json(spans: list[Span], service: str = "voxwire") -> dict[str, Any]:
    """An OTLP ``ExportTraceServiceRequest`` in the JSON encoding."""
    out = []
    for span in spans:
        item: dict[str, Any] = {
            "traceId": span.trace_id.hex(),
            "spanId": span.span_id.hex(),
            "name": span.name,
            "kind": 1,  # SPAN_KIND_INTERNAL
            "startTimeUnixNano": str(round(span.start * 1e9)),
            "endTimeUnixNano": str(round(span.end * 1e9)),
            "attributes": [_attribute(k, v) for k, v in span.attributes.items()],
            "status": {"code": 2, "message": span.error} if span.error else {"code": 1},
        }
        if span.parent_id is not None:
            item["parentSpanId"] = span.parent_id.hex()
        out.append(item)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attribute("service.name", service)]},
                "scopeSpans": [{"scope": {"name": "voxwire"}, "spans": out}],
            }
        ]
    }


class FileExporter:
    """One OTLP JSON request per line, appended to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.exported = 0

    def export(self, spans: list[Span]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(otlp_json(spans)) + "\n")
        self.exported += 1

    async def aclose(self) -> None:
        pass


class OtlpHttpExporter:
    """POSTs each trace to an OTLP/HTTP collector (JSON), one request at a time from a bounded queue."""

    def __init__(self, url: str, *, max_queued: int = 256, timeout: float = 5.0,
                 on_error: Callable[[], None] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"OTLP endpoint must be an http(s) URL, got {url!r}")
        self.url = url if parts.path not in ("", "/") else url.rstrip("/") + "/v1/traces"
        self.max_queued = max_queued
        self.timeout = timeout
        self.on_error = on_error
        self.dropped = 0
        self.failed = 0
        self.exported = 0
        self._queue: asyncio.Queue[list[Span]] | None = None
        self._task: asyncio.Task[None] | None = None

    def export(self, spans: list[Span]) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(self.max_queued)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="otlp-exporter")
        try:
            self._queue.put_nowait(spans)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.on_error is not None:
                self.on_error()

    async def _run(self) -> None:
        import aiohttp

        assert self._queue is not None
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                spans = await self._queue.get()
                try:
                    async with http.post(self.url, json=otlp_json(spans)) as resp:
                        if resp.status >= 300:
                            raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
                    self.exported += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failed += 1
                    if self.on_error is not None:
                        self.on_error()
                    if self.failed in (1, 10, 100) or self.failed % 1000 == 0:
                        log.warning("trace export to %s failed (%d so far): %s", self.url, self.failed, exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class CallTrace:
    """The spans of one call, kept until :meth:`finish` exports them together."""

    def __init__(self, tracer: Tracer, call_id: str, start: float) -> None:
        self.tracer = tracer
        self.trace_id = tracer.randbytes(16)
        self.root_id = tracer.randbytes(8)
        self.call_id = call_id
        self.start = start
        self.spans: list[Span] = []
        self.finished = False

    def span(self, name: str, start: float, end: float, attributes: dict[str, AttributeValue] | None = None,
             error: str | None = None) -> None:
        """A child of the call span; times are the monitor's clock (monotonic seconds)."""
        if self.finished or len(self.spans) >= self.tracer.max_spans:
            return
        offset = self.tracer.wallclock_offset
        self.spans.append(
            Span(name, self.trace_id, self.tracer.randbytes(8), self.root_id, start + offset, max(end, start) + offset,
                 {"voxwire.call_id": self.call_id, **(attributes or {})}, error)
        )

    def finish(self, end: float, attributes: dict[str, AttributeValue] | None = None, error: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        offset = self.tracer.wallclock_offset
        root = Span("call", self.trace_id, self.root_id, None, self.start + offset, max(end, self.start) + offset,
                    {"voxwire.call_id": self.call_id, **(attributes or {})}, error)
        self.tracer.exporter_export([root, *self.spans])


class Tracer:
    """Makes call traces; with no exporter it is off and :meth:`call_trace` returns None."""

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        wallclock_offset: float = 0.0,
        randbytes: Callable[[int], bytes] = os.urandom,
        max_spans: int = 512,
    ) -> None:
        self.exporter = exporter
        #: Unix time minus the monitor's clock; set by whoever owns the clock (the dashboard does).
        self.wallclock_offset = wallclock_offset
        self.randbytes = randbytes
        self.max_spans = max_spans

    @property
    def enabled(self) -> bool:
        return self.exporter is not None

    def call_trace(self, call_id: str, start: float) -> CallTrace | None:
        return CallTrace(self, call_id, start) if self.exporter is not None else None

    def exporter_export(self, spans: list[Span]) -> None:
        if self.exporter is not None:
            self.exporter.export(spans)


_tracer = Tracer()


def configure(spec: str | None) -> Tracer:
    """Set the process's tracer from ``--trace-export``: ``none``, ``file:PATH`` or ``otlp:URL``."""
    global _tracer
    if not spec or spec == "none":
        exporter: SpanExporter | None = None
    elif spec.startswith("file:"):
        exporter = FileExporter(spec.removeprefix("file:"))
    elif spec.startswith("otlp:"):
        exporter = OtlpHttpExporter(spec.removeprefix("otlp:"))
    else:
        raise ValueError(f"trace export must be none, file:PATH or otlp:URL, not {spec!r}")
    _tracer = Tracer(exporter)
    return _tracer


def get_tracer() -> Tracer:
    return _tracer
