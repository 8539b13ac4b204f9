"""The ``realtime-ws`` bridge's configuration and the Realtime protocol's constants.

One frozen :class:`RealtimeBridgeConfig`, validated at construction; the URL is only ever logged
through :func:`safe_url` (no query, no user info) and the API key never.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yarl import URL

from voxwire.agent.base import DEFAULT_SAMPLE_RATE

#: The Realtime API's PCM format: 16-bit little-endian mono at 24 kHz (the only rate GA accepts).
SERVER_RATE = 24_000
#: OpenAI refuses to commit less than 100 ms of audio.
MIN_COMMIT_MS = 100
DEFAULT_MODEL = "gpt-realtime"
#: WebSocket pings, to notice a dead connection that never closed (seconds).
HEARTBEAT = 20.0
#: Largest server event accepted (bytes); deltas are small, ``response.done`` can be large.
MAX_SERVER_EVENT_BYTES = 16 * 1024 * 1024
#: Server events queued per response before the reader waits for the response to catch up.
MAX_RESPONSE_EVENTS = 256

ENV_URL = "VOXWIRE_REALTIME_URL"
ENV_API_KEY = "VOXWIRE_REALTIME_API_KEY"
ENV_MODEL = "VOXWIRE_REALTIME_MODEL"


class RealtimeConfigError(ValueError):
    """The bridge is configured wrongly (missing URL, bad scheme, impossible bounds)."""


@dataclass(frozen=True)
class RealtimeBridgeConfig:
    """How to reach the model server and how much to buffer. Validated at construction."""

    #: WebSocket endpoint, e.g. ``wss://api.openai.com/v1/realtime`` (``model`` is added).
    url: str
    #: Sent as ``Authorization: Bearer``; empty sends no header (local servers). Never logged.
    api_key: str = field(default="", repr=False)
    model: str = DEFAULT_MODEL
    #: Rate of the PCM the agent hears and speaks; anything but 24 kHz is resampled.
    sample_rate: int = DEFAULT_SAMPLE_RATE
    #: Session instructions sent with ``session.update`` (a turn's own instructions override them).
    instructions: str = ""
    voice: str | None = None
    #: Audio per ``input_audio_buffer.append``.
    batch_ms: int = 100
    #: Audio the outbox holds while the socket is connecting or stalled; older audio is dropped.
    max_queued_seconds: float = 5.0
    #: Audio sent without a commit before the bridge clears the server's buffer ...
    max_uncommitted_seconds: float = 60.0
    #: ... and re-sends this much of the most recent audio.
    keep_seconds: float = 15.0
    #: Connecting, the WebSocket handshake and ``session.created`` together (seconds).
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        try:
            url = URL(self.url)
        except (TypeError, ValueError) as exc:
            raise RealtimeConfigError(f"the Realtime URL {self.url!r} is not a URL") from exc
        if url.scheme not in ("ws", "wss", "http", "https") or not url.host:
            raise RealtimeConfigError(f"the Realtime URL must be ws:// or wss://, not {safe_url(url)!r}")
        if not self.model:
            raise RealtimeConfigError("the Realtime model must not be empty")
        if not 8_000 <= self.sample_rate <= 48_000:
            raise RealtimeConfigError(f"sample_rate must be in 8000..48000, not {self.sample_rate}")
        if not 10 <= self.batch_ms <= 1_000:
            raise RealtimeConfigError(f"batch_ms must be in 10..1000, not {self.batch_ms}")
        if self.max_queued_seconds * 1000 < self.batch_ms:
            raise RealtimeConfigError("max_queued_seconds must hold at least one batch")
        if not 0 < self.keep_seconds < self.max_uncommitted_seconds:
            raise RealtimeConfigError("keep_seconds must be positive and below max_uncommitted_seconds")
        if self.connect_timeout <= 0:
            raise RealtimeConfigError("connect_timeout must be positive")

    @property
    def endpoint(self) -> URL:
        """The URL connected to: ``url`` with ``model`` added unless it names one."""
        url = URL(self.url)
        return url if "model" in url.query else url.update_query(model=self.model)


def safe_url(url: URL) -> str:
    """A URL fit for logs and error messages: no query, no user info."""
    return str(url.with_query(None).with_user(None))
