"""Stream reset (RFC 6525) as data channels use it: outgoing SSN reset requests and responses.

Theory of operation
-------------------
Closing a data channel resets its outgoing stream (RFC 8831 §6.7). :meth:`StreamResetter.request`
collects stream ids; a request leaves once everything queued on those streams has a TSN, and names
the last TSN we assigned (RFC 6525 §5.1.2), so the peer performs the reset only after it has
received all earlier data. At most one request is outstanding (§5.1.1 allows one); it is resent on
the retransmission timer until a response with its sequence number arrives. "In progress" (the peer
is still waiting for data) keeps it outstanding for another try; "Performed" or "Nothing to do"
completes it; a refusal is counted and dropped.

Incoming requests (§5.2.2): an Outgoing SSN Reset Request with the expected sequence number is
performed when our cumulative TSN has reached the sender's last assigned TSN, and answered
"In progress" otherwise (the sender retries; it may not send on those streams meanwhile, §5.1.2,
so nothing needs holding back). A repeat of the last request gets the same answer (§5.2.1); other
sequence numbers get "Bad Sequence Number". Requests we do not perform (incoming reset, SSN/TSN
reset, add streams) are answered "Denied". Request sequence numbers start at the sender's initial
TSN (§5.1.1, §5.2.1).
"""

from __future__ import annotations

from collections.abc import Callable

from voxwire.proto.sctp.common import TSN_MOD, unwrap
from voxwire.wire.sctp import OutgoingResetRequest, ReconfigChunk, ReconfigParam, ReconfigResponse

__all__ = ["StreamResetter"]

# Result codes, RFC 6525 §4.4
NOTHING_TO_DO = 0
PERFORMED = 1
DENIED = 2
BAD_SEQUENCE = 5
IN_PROGRESS = 6


class StreamResetter:
    """Our outstanding reset request and the bookkeeping for the peer's requests."""

    def __init__(self, local_initial_tsn: int, peer_initial_tsn: int) -> None:
        self._next_seq = local_initial_tsn
        self._peer_expected = peer_initial_tsn
        self._peer_last_result = DENIED
        self._pending: list[int] = []
        self._outstanding: OutgoingResetRequest | None = None
        self.deadline: float | None = None
        self.counters = {"refused": 0}

    @property
    def busy(self) -> bool:
        return bool(self._pending) or self._outstanding is not None

    def request(self, stream_ids: tuple[int, ...]) -> None:
        for sid in stream_ids:
            if sid not in self._pending and not (self._outstanding and sid in self._outstanding.streams):
                self._pending.append(sid)

    def take_request(
        self, now: float, rto: float, last_tsn: int, has_unsent: Callable[[int], bool]
    ) -> OutgoingResetRequest | None:
        """The request to send now: a due retransmission, or a new one for the ready streams."""
        if self._outstanding is not None:
            if self.deadline is not None and now >= self.deadline:
                self.deadline = now + rto
                return self._outstanding
            return None
        ready = tuple(s for s in self._pending if not has_unsent(s))
        if not ready:
            return None
        self._pending = [s for s in self._pending if s not in ready]
        self._outstanding = OutgoingResetRequest(
            self._next_seq % TSN_MOD, (self._peer_expected - 1) % TSN_MOD, last_tsn % TSN_MOD, ready
        )
        self._next_seq += 1
        self.deadline = now + rto
        return self._outstanding

    def request_ready(self, now: float, has_unsent: Callable[[int], bool]) -> bool:
        """Whether :meth:`take_request` would return something now."""
        if self._outstanding is not None:
            return self.deadline is not None and now >= self.deadline
        return any(not has_unsent(s) for s in self._pending)

    def on_chunk(
        self, chunk: ReconfigChunk, cum_tsn: int, now: float, rto: float
    ) -> tuple[list[ReconfigChunk], list[tuple[int, ...]], list[tuple[int, ...]]]:
        """Process a RE-CONFIG: (responses to send, streams the peer reset -- an empty tuple
        meaning all --, our requests now performed)."""
        replies: list[ReconfigChunk] = []
        by_peer: list[tuple[int, ...]] = []
        ours: list[tuple[int, ...]] = []
        for param in chunk.params:
            if isinstance(param, ReconfigResponse):
                done = self.on_response(param, now, rto)
                if done is not None:
                    ours.append(done)
                continue
            response, streams = self.on_request(param, cum_tsn)
            replies.append(ReconfigChunk((response,)))
            if streams is not None:
                by_peer.append(streams)
        return replies, by_peer, ours

    def on_response(self, response: ReconfigResponse, now: float, rto: float) -> tuple[int, ...] | None:
        """The streams whose reset completed, if ``response`` answers our request."""
        req = self._outstanding
        if req is None or response.response_seq != req.request_seq:
            return None
        if response.result == IN_PROGRESS:
            self.deadline = now + rto
            return None
        self._outstanding = None
        self.deadline = None
        if response.result in (PERFORMED, NOTHING_TO_DO):
            return req.streams
        self.counters["refused"] += 1
        return None

    def on_request(
        self, param: ReconfigParam, cum_tsn: int
    ) -> tuple[ReconfigResponse, tuple[int, ...] | None]:
        """Answer one of the peer's requests; the second item lists streams to reset now (an empty
        tuple meaning all of them, RFC 6525 §4.1)."""
        assert not isinstance(param, ReconfigResponse), "responses go to on_response"
        seq = unwrap(param.request_seq, self._peer_expected, TSN_MOD)
        if seq == self._peer_expected - 1:
            return ReconfigResponse(param.request_seq, self._peer_last_result), None
        if seq != self._peer_expected:
            return ReconfigResponse(param.request_seq, BAD_SEQUENCE), None
        if not isinstance(param, OutgoingResetRequest):
            self._complete(DENIED)
            return ReconfigResponse(param.request_seq, DENIED), None
        last_tsn = unwrap(param.last_tsn, cum_tsn, TSN_MOD)
        if last_tsn > cum_tsn:
            return ReconfigResponse(param.request_seq, IN_PROGRESS), None
        self._complete(PERFORMED)
        return ReconfigResponse(param.request_seq, PERFORMED), param.streams

    def _complete(self, result: int) -> None:
        self._peer_expected += 1
        self._peer_last_result = result
