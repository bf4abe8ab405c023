"""WeChat/WeCom SILK v3 voice messages, decoded packet by packet with the SILK SDK of silk-python.

The file is ``#!SILK_V3`` (WeChat adds a leading ``0x02``) then 20 ms packets, each a 2-byte
little-endian length and its payload; ``0xFFFF`` (or the end of the file) ends it. A packet the decoder
rejects becomes 20 ms of silence and decoding goes on with the next. Damaged length fields are skipped
up to the next run of plausible packets, standing for as many packets as their bytes held.

We call the SDK's ``SKP_Silk_SDK_Decode`` (exported by silk-python's extension) through ctypes rather
than ``pysilk.decode``, for two reasons: ``pysilk.decode`` stops at the first rejected packet (the rest
of the message was lost), and its output buffer holds 20 ms at the *requested* rate while the decoder
first writes a frame at its internal rate (up to 24 kHz), so a damaged packet claiming 24 kHz overruns
it at 16 kHz: a heap corruption that aborts the process later (seen with one random 47-byte payload).
Our buffer holds 120 ms at 48 kHz.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import numpy as np

MAGIC = b"#!SILK_V3"
DECODE_RATE = 16_000
FRAME_SAMPLES = DECODE_RATE // 50  # 20 ms
_MAX_PAYLOAD = 1000  # bytes: 20 ms at SILK's 40 kbit/s top rate is 100
_END = 0xFFFF
_RESYNC_CHAIN = 4
_TYPICAL_PACKET = 2 + 40  # 20 ms at WeChat's ~16 kbit/s, until real packets tell us
_LIMIT_FACTOR, _MIN_LIMIT = 4, 250  # bytes: a packet is at most this many times the mean one


@dataclass(frozen=True, slots=True)
class SilkStream:
    packets: tuple[bytes | None, ...]  # None: damaged bytes standing for one 20 ms packet
    cut_last_packet: bool  # the file ends inside a packet (an interrupted upload loses < 20 ms)


@dataclass(frozen=True, slots=True)
class SilkPcm:
    samples: np.ndarray  # int16 at DECODE_RATE, silence where packets were damaged or rejected
    damaged: int  # packets replaced by silence


def _length(data: bytes, pos: int, limit: int) -> int | None:
    """Payload length at ``pos`` if it is plausible (0..``limit``) and the payload is all there."""
    if pos + 2 > len(data):
        return None
    size = int.from_bytes(data[pos : pos + 2], "little")
    return size if size <= limit and pos + 2 + size <= len(data) else None


def _chains(data: bytes, pos: int, limit: int, length: int) -> bool:
    """Whether ``length`` plausible packets (or plausible packets up to the end of the data) start at ``pos``."""
    for _ in range(length):
        if pos + 2 > len(data) or data[pos : pos + 2] == b"\xff\xff":
            return True
        size = int.from_bytes(data[pos : pos + 2], "little")
        if size > limit:
            return False
        pos += 2 + size  # past the end: a cut-off last packet, which ends the chain too
    return True


def parse_silk(data: bytes) -> SilkStream:
    """Packets of a SILK v3 file (the caller checked the magic)."""
    pos = data.index(MAGIC) + len(MAGIC)
    packets: list[bytes | None] = []
    packet_bytes = packet_count = 0  # the mean packet so far: what damaged bytes stood for
    in_step = True  # on packet boundaries (false after damaged bytes)
    while pos + 2 <= len(data):
        claimed = int.from_bytes(data[pos : pos + 2], "little")
        if claimed == _END:
            return SilkStream(packets=tuple(packets), cut_last_packet=False)
        typical = packet_bytes / packet_count if packet_count else _TYPICAL_PACKET
        # A voice codec's packets stay near its bitrate: a damaged length field rarely does.
        limit = min(_MAX_PAYLOAD, max(_MIN_LIMIT, int(_LIMIT_FACTOR * typical)))
        size = _length(data, pos, limit)
        # In step, the next length must be plausible too (a damaged length may look like one, but
        # rarely points at another); after damaged bytes, a longer chain must.
        if size is not None and _chains(data, pos, limit, 2 if in_step else _RESYNC_CHAIN):
            packets.append(data[pos + 2 : pos + 2 + size] if size else None)  # 0 bytes: a lost packet
            packet_bytes += 2 + size
            packet_count += 1
            pos += 2 + size
            in_step = True
            continue
        if 0 < claimed <= limit and len(data) - pos <= 2 * typical:
            return SilkStream(packets=tuple(packets), cut_last_packet=True)  # an interrupted upload
        start = pos + 1
        while start < len(data) and not _chains(data, start, limit, _RESYNC_CHAIN):
            start += 1
        packets.extend([None] * max(1, round((start - pos) / typical)))
        pos = start
        in_step = False
    return SilkStream(packets=tuple(packets), cut_last_packet=pos < len(data))


class _Decoder:
    """One SILK decoder state, fed one packet at a time."""

    _MAX_FRAMES = 5  # frames per packet (SILK allows up to 5 x 20 ms)
    _BUFFER = 5760  # samples: 120 ms at 48 kHz, beyond anything the decoder writes

    def __init__(self, rate: int) -> None:
        lib = _sdk()
        size = ctypes.c_int32(0)
        if lib.SKP_Silk_SDK_Get_Decoder_Size(ctypes.byref(size)) != 0:
            raise RuntimeError("SILK decoder size")
        self._lib = lib
        self._state = ctypes.create_string_buffer(size.value)
        lib.SKP_Silk_SDK_InitDecoder(self._state)
        self._control = _DecControl(rate, 0, 1, 0, 0)
        self._out = (ctypes.c_int16 * self._BUFFER)()
        self._written = ctypes.c_int16(0)

    def decode(self, payload: bytes) -> np.ndarray | None:
        """The packet's PCM (int16 at the requested rate), or None when the decoder rejects it."""
        data = (ctypes.c_uint8 * len(payload)).from_buffer_copy(payload)
        frames: list[np.ndarray] = []
        for _ in range(self._MAX_FRAMES):
            code = self._lib.SKP_Silk_SDK_Decode(
                self._state,
                ctypes.byref(self._control),
                0,
                data,
                len(payload),
                self._out,
                ctypes.byref(self._written),
            )
            if code != 0 or not 0 < self._written.value <= self._BUFFER:
                return None
            frames.append(np.ctypeslib.as_array(self._out)[: self._written.value].copy())
            if not self._control.moreInternalDecoderFrames:
                break
        return np.concatenate(frames)


class _DecControl(ctypes.Structure):
    _fields_ = [  # SKP_SILK_SDK_DecControlStruct (SKP_Silk_control.h)
        ("API_sampleRate", ctypes.c_int32),
        ("frameSize", ctypes.c_int),
        ("framesPerPacket", ctypes.c_int),
        ("moreInternalDecoderFrames", ctypes.c_int),
        ("inBandFECOffset", ctypes.c_int),
    ]


@functools.cache
def _sdk() -> ctypes.CDLL:
    """silk-python's extension, whose SILK SDK symbols are exported."""
    from pysilk.backends.cython import _silk

    lib = ctypes.CDLL(_silk.__file__)
    lib.SKP_Silk_SDK_Get_Decoder_Size.argtypes = [ctypes.POINTER(ctypes.c_int32)]
    lib.SKP_Silk_SDK_InitDecoder.argtypes = [ctypes.c_void_p]
    lib.SKP_Silk_SDK_Decode.argtypes = [
        ctypes.c_void_p, ctypes.POINTER(_DecControl), ctypes.c_int, ctypes.POINTER(ctypes.c_uint8),
        ctypes.c_int, ctypes.POINTER(ctypes.c_int16), ctypes.POINTER(ctypes.c_int16),
    ]  # fmt: skip
    return lib


def decode_silk_packets(packets: tuple[bytes | None, ...], *, max_damaged: int) -> SilkPcm:
    """PCM with 20 ms of silence for each damaged or rejected packet; stops (the caller rejects the
    file) once more than ``max_damaged`` packets are bad."""
    decoder = _Decoder(DECODE_RATE)
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    chunks: list[np.ndarray] = []
    damaged = 0
    for packet in packets:
        pcm = decoder.decode(packet) if packet else None
        if pcm is None:
            damaged += 1
            if damaged > max_damaged:
                break
            pcm = silence
        chunks.append(pcm)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return SilkPcm(samples=samples, damaged=damaged)
