"""WeChat/WeCom SILK v3 voice messages, decoded frame by frame with silk-python.

The file is ``#!SILK_V3`` (WeChat adds a leading ``0x02``) then 20 ms packets, each a 2-byte
little-endian length and its payload; ``0xFFFF`` (or the end of the file) ends it. silk-python decodes a
whole stream and stops at the first packet the SILK decoder rejects, so a broken packet in the middle
would cut the rest: we restart after it and put 20 ms of silence in its place. Damaged length fields
are skipped up to the next run of plausible packets, standing for as many packets as their bytes held.

silk-python's output buffer holds 20 ms at the *requested* rate, while the SILK decoder first writes a
frame at its internal rate (up to 24 kHz). Asking for 16 kHz lets a damaged packet that claims 24 kHz
overrun the buffer (a heap corruption that kills the process later); we always ask for 24 kHz, the
largest internal rate, and resample.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

MAGIC = b"#!SILK_V3"
DECODE_RATE = 24_000  # never below SILK's highest internal rate: see the module docstring
FRAME_SAMPLES = DECODE_RATE // 50  # 20 ms
_MAX_PAYLOAD = DECODE_RATE // 1000 * 40  # silk-python rejects longer packets
_END = 0xFFFF
_RESYNC_CHAIN = 4
_TYPICAL_PACKET = 2 + 40  # 20 ms at WeChat's ~16 kbit/s, until real packets tell us
_LIMIT_FACTOR, _MIN_LIMIT = 4, 250  # bytes: a packet is at most this many times the mean one
# After a rejected packet, decode at most this many packets per call, so a file with many broken
# packets costs little more than one without (each restart re-reads only this far).
_RESTART_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SilkStream:
    packets: tuple[bytes | None, ...]  # None: damaged bytes standing for one 20 ms packet
    cut_last_packet: bool  # the file ends inside a packet (an interrupted upload loses < 20 ms)


@dataclass(frozen=True, slots=True)
class SilkPcm:
    samples: np.ndarray  # int16 at DECODE_RATE, silence where packets were damaged
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


def _decode_run(packets: list[bytes]) -> tuple[np.ndarray, bool]:
    """silk-python on consecutive packets: (PCM of the packets before the first rejected one, rejected?)."""
    import pysilk

    stream = MAGIC + b"".join(len(p).to_bytes(2, "little") + p for p in packets)
    out = io.BytesIO()
    try:
        pysilk.decode(io.BytesIO(stream), out, DECODE_RATE)
        rejected = False
    except pysilk.SilkError:
        rejected = True
    raw = out.getvalue()
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2"), rejected


def decode_silk_packets(packets: tuple[bytes | None, ...], *, max_damaged: int) -> SilkPcm:
    """PCM with 20 ms of silence for each damaged or rejected packet; stops counting (and decoding) once
    more than ``max_damaged`` packets are bad, since the caller then rejects the file anyway."""
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    chunks: list[np.ndarray] = []
    damaged = 0
    restarted = False
    i = 0
    while i < len(packets) and damaged <= max_damaged:
        if packets[i] is None:
            chunks.append(silence)
            damaged += 1
            i += 1
            continue
        end = i
        while end < len(packets) and packets[end] is not None:
            end += 1
        if restarted:
            end = min(end, i + _RESTART_CHUNK)
        run = [p for p in packets[i:end] if p is not None]
        pcm, rejected = _decode_run(run)
        done = min(len(pcm) // FRAME_SAMPLES, len(run))
        chunks.append(pcm[: done * FRAME_SAMPLES])
        if rejected:  # the packet after the last decoded one
            chunks.append(silence)
            damaged += 1
            i += done + 1
            restarted = True
        else:  # one 20 ms frame per packet; pad if the decoder ever gives less, to keep timestamps
            chunks.append(np.zeros((len(run) - done) * FRAME_SAMPLES, np.int16))
            i = end
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return SilkPcm(samples=samples, damaged=damaged)
