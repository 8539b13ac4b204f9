"""Opus through a thin ctypes binding to the system libopus.

Theory of operation
-------------------
WebRTC audio is Opus (RFC 7587): always signalled ``opus/48000/2``, RTP clock 48 kHz, but the
content may be mono or stereo and the decoder may render it at any of 8/12/16/24/48 kHz with one
or two channels (a mono decoder downmixes a stereo stream). We talk to libopus directly because we
need three things higher-level wrappers hide:

* **In-band FEC** (RFC 6716 §2.1.7, §4.2.4): with ``inband_fec`` and a non-zero expected loss, the
  SILK layer of packet *n* carries a low-bitrate redundant copy (LBRR) of frame *n-1*. When packet
  *n-1* is lost but *n* arrives, ``opus_decode(..., decode_fec=1)`` on packet *n* rebuilds *n-1*;
  then packet *n* is decoded normally. :meth:`OpusDecoder.decode_fec` is that first call.
* **Packet-loss concealment**: ``opus_decode`` with a NULL payload extrapolates the missing frame
  from the decoder state (:meth:`OpusDecoder.conceal`). For FEC and PLC the requested duration must
  be exactly the missing duration, or the decoder state drifts (libopus documentation).
* **Cheap calls**: encoder and decoder states live in ctypes buffers owned by the Python objects
  (``opus_*_get_size`` + ``opus_*_init``, so no ``destroy`` and no leak on any exit path); the PCM
  and packet output buffers are preallocated once per object. A call allocates only the returned
  ``bytes``.

The library is loaded on first use, so importing this module never fails on a host without libopus
(the relay, for one); creating an encoder or decoder there raises :class:`OpusUnavailable` naming
the Debian package. Errors from libopus raise :class:`OpusError` carrying the libopus error code
and its ``opus_strerror`` text; a malformed payload is an :class:`OpusError`, never a crash.

``has_fec`` reads the LBRR flag without decoding: libopus >= 1.5 exports
``opus_packet_has_lbrr``; for older libraries (Debian 12 ships 1.3.1) we read it from the first
byte of the first SILK frame. The SILK header bits (RFC 6716 §4.2.3: per channel, one VAD flag per
20 ms SILK frame then the LBRR flag; mid channel before side) are coded with probability 1/2 at the
very start of the range-coded frame, and for a freshly initialised range decoder (§4.1.1) the first
eight such symbols are exactly the first eight bits of the frame, most significant first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "AUDIO",
    "MAX_FRAME_SAMPLES",
    "RESTRICTED_LOWDELAY",
    "VOIP",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "OpusUnavailable",
    "has_fec",
    "libopus_version",
    "packet_samples",
]

# Applications (opus_defines.h).
VOIP: Final = 2048
AUDIO: Final = 2049
RESTRICTED_LOWDELAY: Final = 2051

#: 120 ms at 48 kHz, the longest Opus packet (RFC 6716 §3.2.5).
MAX_FRAME_SAMPLES: Final = 5760
#: libopus's recommended output buffer for one packet.
_MAX_PACKET_BYTES: Final = 4000
_RATES: Final = frozenset({8000, 12000, 16000, 24000, 48000})

# CTL requests (opus_defines.h).
_SET_APPLICATION: Final = 4000
_SET_BITRATE: Final = 4002
_GET_BITRATE: Final = 4003
_SET_VBR: Final = 4006
_SET_COMPLEXITY: Final = 4010
_GET_COMPLEXITY: Final = 4011
_SET_INBAND_FEC: Final = 4012
_GET_INBAND_FEC: Final = 4013
_SET_PACKET_LOSS_PERC: Final = 4014
_GET_PACKET_LOSS_PERC: Final = 4015
_SET_DTX: Final = 4016
_GET_DTX: Final = 4017
_SET_SIGNAL: Final = 4024
_GET_LOOKAHEAD: Final = 4027
_RESET_STATE: Final = 4028
_SIGNAL_VOICE: Final = 3001

_INVALID_PACKET: Final = -4

_c_int = ctypes.c_int
_c_i32 = ctypes.c_int32
_c_vp = ctypes.c_void_p


class OpusError(Exception):
    """libopus refused a call. ``code`` is the libopus error code (negative), ``0`` if not from it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (opus error {code})" if code else message)
        self.code = code


class OpusUnavailable(OpusError):
    """The shared library libopus could not be loaded."""


_lib: ctypes.CDLL | None = None
_has_lbrr_fn: ctypes._CFuncPtr | None = None  # type: ignore[name-defined]


def _load() -> ctypes.CDLL:
    global _lib, _has_lbrr_fn
    if _lib is not None:
        return _lib
    names = [n for n in (ctypes.util.find_library("opus"), "libopus.so.0") if n]
    lib: ctypes.CDLL | None = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise OpusUnavailable(
            0, "libopus not found: install the Debian package libopus0 (apt-get install libopus0)"
        )
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_get_version_string.argtypes = []
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [_c_int]
    for kind in ("encoder", "decoder"):
        getattr(lib, f"opus_{kind}_get_size").argtypes = [_c_int]
        getattr(lib, f"opus_{kind}_get_size").restype = _c_int
        getattr(lib, f"opus_{kind}_ctl").restype = _c_int  # variadic: argtypes stay unset
    lib.opus_encoder_init.argtypes = [_c_vp, _c_i32, _c_int, _c_int]
    lib.opus_encoder_init.restype = _c_int
    lib.opus_decoder_init.argtypes = [_c_vp, _c_i32, _c_int]
    lib.opus_decoder_init.restype = _c_int
    lib.opus_encode.argtypes = [_c_vp, _c_vp, _c_int, _c_vp, _c_i32]
    lib.opus_encode.restype = _c_i32
    lib.opus_decode.argtypes = [_c_vp, _c_vp, _c_i32, _c_vp, _c_int, _c_int]
    lib.opus_decode.restype = _c_int
    lib.opus_packet_get_nb_samples.argtypes = [_c_vp, _c_i32, _c_i32]
    lib.opus_packet_get_nb_samples.restype = _c_int
    try:
        fn = lib.opus_packet_has_lbrr  # libopus >= 1.5
        fn.argtypes = [_c_vp, _c_i32]
        fn.restype = _c_int
        _has_lbrr_fn = fn
    except AttributeError:
        _has_lbrr_fn = None
    _lib = lib
    return lib


def _error(lib: ctypes.CDLL, code: int, what: str) -> OpusError:
    text = lib.opus_strerror(code)
    return OpusError(code, f"{what}: {text.decode() if text else 'unknown error'}")


def libopus_version() -> str:
    """The loaded library's version string, e.g. ``libopus 1.3.1``."""
    return str(_load().opus_get_version_string().decode())


def _state(size: int) -> ctypes.Array[ctypes.c_int64]:
    # 8-byte elements: at least the alignment malloc would give libopus's own create().
    return (ctypes.c_int64 * ((size + 7) // 8))()


class OpusEncoder:
    """One Opus encoder stream.

    Defaults suit WebRTC voice: 48 kHz mono, VOIP application (speech-tuned, enables the SILK
    layer that carries FEC), 32 kbit/s VBR, in-band FEC against 10 % expected loss, no DTX, and
    complexity 5 (``bench/media.py``: about 0.24 ms per 20 ms frame on our hosts, half the cost of
    complexity 9, for a small quality cost on speech at this bitrate).
    """

    def __init__(
        self,
        sample_rate: int = 48000,
        channels: int = 1,
        application: int = VOIP,
        bitrate: int = 32000,
        inband_fec: bool = True,
        packet_loss_perc: int = 10,
        dtx: bool = False,
        complexity: int = 5,
    ) -> None:
        if sample_rate not in _RATES:
            raise ValueError(f"Opus sample_rate must be one of {sorted(_RATES)}, not {sample_rate}")
        if channels not in (1, 2):
            raise ValueError(f"Opus channels must be 1 or 2, not {channels}")
        lib = _load()
        self._lib = lib
        self.sample_rate = sample_rate
        self.channels = channels
        self._st_buf = _state(lib.opus_encoder_get_size(channels))
        self._st = ctypes.addressof(self._st_buf)
        rc = lib.opus_encoder_init(self._st, sample_rate, channels, application)
        if rc != 0:
            raise _error(lib, rc, "opus_encoder_init")
        self._out = (ctypes.c_ubyte * _MAX_PACKET_BYTES)()
        self._out_ptr = ctypes.addressof(self._out)
        self._out_mv = memoryview(self._out).cast("B")
        self._in = np.zeros(0, dtype=np.int16)  # grown to the largest frame encoded
        self._in_ptr = 0
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_VBR, 1)
        self._ctl(_SET_COMPLEXITY, complexity)
        self._ctl(_SET_INBAND_FEC, int(inband_fec))
        self._ctl(_SET_PACKET_LOSS_PERC, packet_loss_perc)
        self._ctl(_SET_DTX, int(dtx))
        if application == VOIP:
            self._ctl(_SET_SIGNAL, _SIGNAL_VOICE)

    def _ctl(self, request: int, value: int) -> None:
        rc = self._lib.opus_encoder_ctl(_c_vp(self._st), _c_int(request), _c_i32(value))
        if rc != 0:
            raise _error(self._lib, rc, f"opus_encoder_ctl({request}, {value})")

    def _get(self, request: int) -> int:
        out = _c_i32()
        rc = self._lib.opus_encoder_ctl(_c_vp(self._st), _c_int(request), ctypes.byref(out))
        if rc != 0:
            raise _error(self._lib, rc, f"opus_encoder_ctl({request})")
        return out.value

    @property
    def bitrate(self) -> int:
        return self._get(_GET_BITRATE)

    @bitrate.setter
    def bitrate(self, value: int) -> None:
        self._ctl(_SET_BITRATE, value)

    @property
    def packet_loss_perc(self) -> int:
        return self._get(_GET_PACKET_LOSS_PERC)

    @packet_loss_perc.setter
    def packet_loss_perc(self, value: int) -> None:
        """Expected loss in percent (0..100); drives how much LBRR the encoder spends."""
        self._ctl(_SET_PACKET_LOSS_PERC, value)

    @property
    def inband_fec(self) -> bool:
        return bool(self._get(_GET_INBAND_FEC))

    @property
    def dtx(self) -> bool:
        return bool(self._get(_GET_DTX))

    @property
    def complexity(self) -> int:
        return self._get(_GET_COMPLEXITY)

    @complexity.setter
    def complexity(self, value: int) -> None:
        """0..10; takes effect from the next frame (no reset, no discontinuity)."""
        self._ctl(_SET_COMPLEXITY, value)

    @property
    def lookahead(self) -> int:
        """Encoder delay in samples per channel at ``sample_rate`` (312 at 48 kHz in VOIP mode)."""
        return self._get(_GET_LOOKAHEAD)

    def reset(self) -> None:
        """Forget the signal history (a new talkspurt after a discontinuity)."""
        rc = self._lib.opus_encoder_ctl(_c_vp(self._st), _c_int(_RESET_STATE))
        if rc != 0:
            raise _error(self._lib, rc, "opus_encoder_ctl(RESET_STATE)")

    def encode(self, pcm: bytes | npt.NDArray[np.int16], frame_samples: int | None = None) -> bytes:
        """Encode one frame of interleaved int16 PCM (little-endian bytes or an int16 array).

        ``frame_samples`` (per channel) defaults to what ``pcm`` holds; it must be 2.5, 5, 10, 20,
        40 or 60 ms at ``sample_rate`` (960 for 20 ms at 48 kHz).
        """
        if isinstance(pcm, np.ndarray):
            if pcm.dtype != np.int16:
                raise TypeError(f"PCM array must be int16, not {pcm.dtype}")
            size = pcm.size
        else:
            if len(pcm) % 2:
                raise ValueError(f"PCM bytes hold a half sample ({len(pcm)} bytes)")
            size = len(pcm) // 2
        if frame_samples is None:
            frame_samples = size // self.channels
        if frame_samples * self.channels != size:
            raise ValueError(
                f"PCM holds {size} samples, expected {frame_samples} x {self.channels} channels"
            )
        # Copied into our own buffer (0.1 us for 20 ms) rather than handing libopus the array's
        # address: ``ndarray.ctypes.data`` builds a helper object per call (0.7 us).
        if size > len(self._in):
            self._in = np.zeros(size, dtype=np.int16)
            self._in_ptr = self._in.ctypes.data
        if isinstance(pcm, np.ndarray):
            self._in[:size] = pcm.reshape(-1) if pcm.ndim != 1 else pcm
        else:
            self._in[:size] = np.frombuffer(pcm, dtype="<i2")
        rc = self._lib.opus_encode(self._st, self._in_ptr, frame_samples, self._out_ptr, _MAX_PACKET_BYTES)
        if rc < 0:
            raise _error(self._lib, rc, "opus_encode")
        return bytes(self._out_mv[:rc])


class OpusDecoder:
    """One Opus decoder stream, producing interleaved int16 little-endian PCM.

    Use one decoder per incoming stream and feed it every frame in order: :meth:`decode` for a
    packet, :meth:`decode_fec` for a lost frame whose successor arrived, :meth:`conceal` for a
    lost frame without one. A ``channels=1`` decoder accepts stereo streams (downmix).
    """

    def __init__(self, sample_rate: int = 48000, channels: int = 1) -> None:
        if sample_rate not in _RATES:
            raise ValueError(f"Opus sample_rate must be one of {sorted(_RATES)}, not {sample_rate}")
        if channels not in (1, 2):
            raise ValueError(f"Opus channels must be 1 or 2, not {channels}")
        lib = _load()
        self._lib = lib
        self.sample_rate = sample_rate
        self.channels = channels
        self._st_buf = _state(lib.opus_decoder_get_size(channels))
        self._st = ctypes.addressof(self._st_buf)
        rc = lib.opus_decoder_init(self._st, sample_rate, channels)
        if rc != 0:
            raise _error(lib, rc, "opus_decoder_init")
        #: Longest packet (120 ms) at this rate, per channel.
        self.max_frame_samples = MAX_FRAME_SAMPLES * sample_rate // 48000
        self._pcm = (ctypes.c_int16 * (self.max_frame_samples * channels))()
        self._pcm_ptr = ctypes.addressof(self._pcm)
        self._pcm_mv = memoryview(self._pcm).cast("B")
        self._frame_bytes = 2 * channels

    def reset(self) -> None:
        """Forget the decoder history (after a stream restart)."""
        rc = self._lib.opus_decoder_ctl(_c_vp(self._st), _c_int(_RESET_STATE))
        if rc != 0:
            raise _error(self._lib, rc, "opus_decoder_ctl(RESET_STATE)")

    def _run(self, data: bytes | None, frame_samples: int, fec: int, what: str) -> bytes:
        if data is None:
            rc = self._lib.opus_decode(self._st, None, 0, self._pcm_ptr, frame_samples, 0)
        else:
            if not data:
                raise OpusError(_INVALID_PACKET, f"{what}: empty payload (use conceal() for a lost frame)")
            rc = self._lib.opus_decode(self._st, data, len(data), self._pcm_ptr, frame_samples, fec)
        if rc < 0:
            raise _error(self._lib, rc, what)
        return bytes(self._pcm_mv[: rc * self._frame_bytes])

    def _check(self, frame_samples: int) -> int:
        if not 0 < frame_samples <= self.max_frame_samples:
            raise ValueError(f"frame_samples must be in 1..{self.max_frame_samples}, not {frame_samples}")
        return frame_samples

    def decode(self, payload: bytes, frame_samples: int | None = None) -> bytes:
        """Decode one packet; returns however many samples it holds (20 ms: 960 at 48 kHz).

        ``frame_samples`` optionally caps the accepted duration: a longer packet raises
        :class:`OpusError` (``OPUS_BUFFER_TOO_SMALL``) instead of being decoded.
        """
        cap = self.max_frame_samples if frame_samples is None else self._check(frame_samples)
        return self._run(payload, cap, 0, "opus_decode")

    def decode_fec(self, next_payload: bytes, frame_samples: int = 960) -> bytes:
        """Rebuild the lost frame *before* ``next_payload`` from its in-band FEC.

        ``frame_samples`` must be the lost duration. Without LBRR data in ``next_payload`` libopus
        falls back to concealment. Afterwards decode ``next_payload`` itself with :meth:`decode`.
        """
        return self._run(next_payload, self._check(frame_samples), 1, "opus_decode(fec)")

    def conceal(self, frame_samples: int = 960) -> bytes:
        """Packet-loss concealment for one lost frame of exactly ``frame_samples`` per channel."""
        return self._run(None, self._check(frame_samples), 0, "opus_decode(plc)")


def packet_samples(payload: bytes, sample_rate: int = 48000) -> int:
    """Samples per channel in an Opus packet at ``sample_rate`` (RFC 6716 §3.1 TOC + frame count)."""
    lib = _load()
    if not payload:
        raise OpusError(_INVALID_PACKET, "opus_packet_get_nb_samples: empty payload")
    rc = lib.opus_packet_get_nb_samples(payload, len(payload), sample_rate)
    if rc < 0:
        raise _error(lib, rc, "opus_packet_get_nb_samples")
    return int(rc)


def _first_frame(payload: bytes) -> tuple[int, int]:
    """(offset, size) of the first frame of a packet (RFC 6716 §3.2), or ``(0, 0)`` if malformed."""
    n = len(payload)
    code = payload[0] & 0x3
    if code in (0, 1):
        size = n - 1 if code == 0 else (n - 1) // 2
        return 1, size
    if code == 2:
        if n < 2:
            return 0, 0
        if payload[1] < 252:
            return 2, payload[1]
        if n < 3:
            return 0, 0
        return 3, payload[1] + 4 * payload[2]
    if n < 2:
        return 0, 0
    vbr, padded, count = payload[1] & 0x80, payload[1] & 0x40, payload[1] & 0x3F
    pos, padding = 2, 0
    while padded:
        if pos >= n:
            return 0, 0
        padded = payload[pos] == 255
        padding += 254 if padded else payload[pos]
        pos += 1
    if count == 0:
        return 0, 0
    if not vbr:
        return pos, (n - pos - padding) // count
    if pos >= n:
        return 0, 0
    if payload[pos] < 252:
        size = payload[pos]
    elif pos + 1 < n:
        size = payload[pos] + 4 * payload[pos + 1]
    else:
        return 0, 0
    # The frame data follows all count-1 length fields; walk them to find where it starts.
    start = pos
    for _ in range(count - 1):
        if start >= n:
            return 0, 0
        start += 1 if payload[start] < 252 else 2
    return start, size


def has_fec(payload: bytes) -> bool:
    """Whether the packet carries in-band FEC (LBRR) for the frame before it.

    Raises :class:`OpusError` for a malformed packet. CELT-only packets never carry FEC.
    """
    packet_samples(payload)  # validates the framing
    if _has_lbrr_fn is not None:
        rc = _has_lbrr_fn(payload, len(payload))
        if rc < 0:
            raise _error(_load(), rc, "opus_packet_has_lbrr")
        return bool(rc)
    config = payload[0] >> 3
    if config >= 16:  # CELT-only (RFC 6716 §3.1, Table 2)
        return False
    # SILK frames per Opus frame: 10 and 20 ms hold one, 40 ms two, 60 ms three; hybrid is 10/20 ms.
    silk_frames = (1, 1, 2, 3)[config % 4] if config < 12 else 1
    offset, size = _first_frame(payload)
    if size <= 0 or offset >= len(payload):
        return False
    first = payload[offset]
    # Mid channel: silk_frames VAD bits then the LBRR bit (RFC 6716 §4.2.3).
    if (first >> (7 - silk_frames)) & 1:
        return True
    if payload[0] & 0x04:  # stereo: side channel's LBRR bit follows its VAD bits
        return bool((first >> (6 - 2 * silk_frames)) & 1)
    return False
