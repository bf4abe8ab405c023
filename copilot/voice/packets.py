"""Containers PyAV reads (m4a/aac, mp3, ogg/opus, webm, flac, wav), decoded packet by packet.

ffmpeg's ``container.decode()`` ends at the first packet its decoder rejects, so one bad packet cost
the rest of the recording. Here a rejected packet becomes silence of its duration, and so does every
stretch the demuxer skipped while resynchronising past damaged bytes: found from timestamps where the
container has them, from byte positions in raw MPEG/ADTS streams (whose timestamps are only counted).
The length the file states, when it states one, is what the caller checks the result against.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from copilot.voice.amr import FrameKind, toc_kind
from copilot.voice.pcm import MonoPcm

# Elementary streams without a container: timestamps are synthesised, so gaps show in byte positions.
RAW_STREAMS = frozenset({"mp3", "aac"})
_MAX_DEMUX_FAILURES = 20
# A demuxer error with more than this share of the file unread means the rest was never decoded.
_UNREAD_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class PacketResult:
    concealed_s: float  # rejected packets and skipped stretches, now silence
    dtx_s: float  # AMR SID/NO_DATA packets (AMR in 3GP/MP4), silence by design
    stopped_early: bool  # the demuxer gave up with much of the file unread


class _Timing:
    """How long a packet that could not be decoded lasted, and how long the demuxer skipped before a
    packet (damaged bytes it resynchronised past)."""

    def __init__(self, by_timestamps: bool) -> None:
        self.by_timestamps = by_timestamps
        self._next_pts: int | None = None
        self._next_pos: int | None = None
        self._seconds = 0.0  # decoded so far, to turn bytes into seconds
        self._bytes = 0

    def _bytes_to_seconds(self, size: int) -> float:
        return size * self._seconds / self._bytes if self._bytes else 0.0

    def skipped_before(self, packet: Any) -> float:
        duration = packet.duration or 0
        lost = 0.0
        if self.by_timestamps:
            if packet.pts is not None and self._next_pts is not None and duration:
                gap = packet.pts - self._next_pts
                if gap > duration // 2:  # timestamps of some containers jitter by a tick
                    lost = float(gap * packet.time_base)
            if packet.pts is not None and duration:
                self._next_pts = packet.pts + duration
        elif packet.pos is not None and packet.pos >= 0:
            if self._next_pos is not None and packet.pos > self._next_pos:
                lost = self._bytes_to_seconds(packet.pos - self._next_pos)
            self._next_pos = packet.pos + packet.size
        return lost

    def decoded(self, packet: Any) -> None:
        if packet.duration:
            self._seconds += float(packet.duration * packet.time_base)
            self._bytes += packet.size

    def rejected(self, packet: Any, fallback_s: float) -> float:
        """A raw stream's parser folds damaged bytes into the next packet (10 kB "frames" of 26 ms):
        there, the bytes say how long the packet stood for, at the bitrate decoded so far."""
        stated = float(packet.duration * packet.time_base) if packet.duration else fallback_s
        return stated if self.by_timestamps else max(stated, self._bytes_to_seconds(packet.size))


def _is_amr_dtx(codec_name: str, packet: Any) -> bool:
    if codec_name not in ("amrnb", "amrwb") or packet.size == 0:
        return False
    return toc_kind(bytes(packet)[0], wideband=codec_name == "amrwb") is FrameKind.DTX


def decode_packets(
    container: Any,
    stream: Any,
    pcm: MonoPcm,
    *,
    by_timestamps: bool,
    declared: float | None,
    file_size: int,
) -> PacketResult:
    """Demux and decode ``stream`` into ``pcm``; stops early only when ``pcm`` is over its limit."""
    import av

    codec = stream.codec_context
    timing = _Timing(by_timestamps)
    concealed = dtx = 0.0
    last_frame_s = 0.02
    end_pos = 0
    stopped = False
    packets = container.demux(stream)
    failures = 0  # demuxer errors in a row
    while not pcm.over_limit:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except (av.FFmpegError, ValueError, EOFError):
            # A demuxer error ends PyAV's generator, but a new one reads on from where the demuxer
            # stopped, which is how ogg gets past a damaged page; a file that keeps failing has ended.
            failures += 1
            if failures > _MAX_DEMUX_FAILURES:
                stopped = True
                break
            packets = container.demux(stream)
            continue
        failures = 0
        if packet.size == 0:  # the demuxer's flush packet
            continue
        lost = timing.skipped_before(packet)
        if declared is not None:
            lost = min(lost, max(0.0, declared - pcm.seconds))
        if lost > 0:
            pcm.add_silence(lost)
            concealed += lost
        if packet.pos is not None and packet.pos >= 0:
            end_pos = packet.pos + packet.size
        try:
            frames = codec.decode(packet)
        except (av.FFmpegError, ValueError):
            seconds = timing.rejected(packet, last_frame_s)
            pcm.add_silence(seconds)
            if _is_amr_dtx(codec.name, packet):
                dtx += seconds
            else:
                concealed += seconds
            continue
        timing.decoded(packet)
        for frame in frames:
            pcm.add(frame)
            last_frame_s = frame.samples / frame.sample_rate
    try:
        for frame in codec.decode(None):  # what the decoder still holds (its delay)
            pcm.add(frame)
    except (av.FFmpegError, ValueError):
        pass
    early = stopped and declared is None and file_size - end_pos > _UNREAD_SHARE * file_size
    return PacketResult(concealed_s=concealed, dtx_s=dtx, stopped_early=early)


# -- the length a file states --------------------------------------------------------------------------


def _wav_seconds(data: bytes) -> float | None:
    """``data`` chunk size / byte rate from the RIFF header (streaming writers leave 0 or 0xFFFFFFFF)."""
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and pos + 16 <= len(data):
            byte_rate = struct.unpack_from("<I", data, pos + 16)[0]
        elif chunk == b"data":
            return size / byte_rate if byte_rate and 0 < size < 0xFFFFFFFF else None
        pos += 8 + size + (size & 1)
    return None


def _flac_states_length(data: bytes) -> bool:
    """STREAMINFO's 36-bit total sample count (0 = unknown) right after ``fLaC`` and its block header."""
    return len(data) >= 26 and int.from_bytes(data[18:26], "big") & ((1 << 36) - 1) > 0


def _mp3_states_length(data: bytes) -> bool:
    """A Xing/Info/VBRI header in the first frame counts the frames (else ffmpeg guesses from bitrate)."""
    start = 0
    if data.startswith(b"ID3") and len(data) >= 10:
        start = 10 + int.from_bytes(bytes(b & 0x7F for b in data[6:10]), "big")  # syncsafe size
    head = data[start : start + 200]
    return any(tag in head for tag in (b"Xing", b"Info", b"VBRI"))


def _webm_states_length(data: bytes) -> bool:
    """A Duration element (ID 0x4489, 4- or 8-byte float) in the Segment Info; MediaRecorder omits it."""
    head = data[:4096]
    return b"\x44\x89\x84" in head or b"\x44\x89\x88" in head


def declared_seconds(data: bytes, fmt: str, container: Any) -> float | None:
    """The recording's length as the file states it (header or index), None when it does not state one:
    ffmpeg's guesses from the bitrate (ADTS, CBR MP3, webm without Duration) are not evidence."""
    if fmt == "wav":
        return _wav_seconds(data)
    states = {
        "mp4": True,
        "ogg": True,  # the last page's granule position: the end actually present
        "flac": _flac_states_length(data),
        "mp3": _mp3_states_length(data),
        "webm": _webm_states_length(data),
    }.get(fmt, False)
    if not states or not container.duration:
        return None
    return container.duration / 1_000_000
