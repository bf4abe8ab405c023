"""The AMR storage format (RFC 4867 §5), read frame by frame.

``#!AMR\\n`` (narrowband, 8 kHz) or ``#!AMR-WB\\n`` (wideband, 16 kHz), then 20 ms frames, each a
table-of-contents byte ``P FFFF Q PP`` (frame type FT in bits 3-6, padding bits zero) and its
payload. We frame the file ourselves rather than trust ffmpeg's demuxer because phone recorders with
voice activity detection write DTX frames (3GPP TS 26.093 / 26.193): SID comfort-noise frames (NB
FT 8, WB FT 9) and NO_DATA frames (FT 15), which ffmpeg's decoders refuse ("dtx mode is not
implemented"). They are silence by design; damaged bytes are something else, and are counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FRAME_S = 0.02
NB_MAGIC = b"#!AMR\n"
WB_MAGIC = b"#!AMR-WB\n"

# Payload bytes after the ToC byte, by frame type (TS 26.101 Table 1a / TS 26.201 Table 1a; the sizes
# of libopencore and ffmpeg). FT 9-14 (NB) and 10-13 (WB) are other codecs' SIDs or reserved.
_NB_PAYLOAD = (12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0)
_WB_PAYLOAD = (17, 23, 32, 36, 40, 46, 50, 58, 60, 5, 0, 0, 0, 0, 0, 0)
_NB_SPEECH, _NB_SID = range(8), (8, 9, 10, 11)  # 9-11: GSM-EFR, TDMA-EFR, PDC-EFR SIDs
_WB_SPEECH, _WB_SID = range(9), (9,)
_WB_SPEECH_LOST = 14
NO_DATA = 15
# A chain this long of well-formed frames after damaged bytes means we are back on frame boundaries.
_RESYNC_CHAIN = 8


class FrameKind(Enum):
    SPEECH = "speech"  # decode it
    DTX = "dtx"  # SID or NO_DATA: the encoder chose silence
    DAMAGED = "damaged"  # Q bit cleared, "speech lost", or bytes that are not frames


@dataclass(frozen=True, slots=True)
class AmrFrame:
    kind: FrameKind
    data: bytes  # ToC byte + payload (speech frames only; empty otherwise)


@dataclass(frozen=True, slots=True)
class AmrStream:
    wideband: bool
    frames: tuple[AmrFrame, ...]
    cut_last_frame: bool  # the file ends inside a frame (an interrupted upload loses < 20 ms)

    @property
    def sample_rate(self) -> int:
        return 16_000 if self.wideband else 8_000

    @property
    def duration_s(self) -> float:
        return len(self.frames) * FRAME_S


def toc_kind(toc: int, wideband: bool) -> FrameKind | None:
    """What the frame behind this ToC byte is; None if the byte cannot be a ToC."""
    if toc & 0x83:  # padding bits are zero in every well-formed ToC
        return None
    ft, quality_ok = (toc >> 3) & 0x0F, bool(toc & 0x04)
    speech, sid = (_WB_SPEECH, _WB_SID) if wideband else (_NB_SPEECH, _NB_SID)
    if ft in speech:
        return FrameKind.SPEECH if quality_ok else FrameKind.DAMAGED
    if ft in sid or ft == NO_DATA:
        return FrameKind.DTX
    if wideband and ft == _WB_SPEECH_LOST:
        return FrameKind.DAMAGED
    return None  # reserved frame type


def _toc(data: bytes, pos: int, wideband: bool) -> tuple[FrameKind, int] | None:
    """(kind, frame length incl. ToC) of the frame starting at ``pos``; None if it cannot be a ToC."""
    kind = toc_kind(data[pos], wideband)
    if kind is None:
        return None
    ft = (data[pos] >> 3) & 0x0F
    return kind, 1 + (_WB_PAYLOAD if wideband else _NB_PAYLOAD)[ft]


def _chains(data: bytes, pos: int, wideband: bool) -> bool:
    """Whether ``_RESYNC_CHAIN`` well-formed frames (or well-formed frames up to the end) start at ``pos``."""
    for _ in range(_RESYNC_CHAIN):
        if pos == len(data):
            return True
        parsed = _toc(data, pos, wideband)
        if parsed is None or pos + parsed[1] > len(data):
            return False
        pos += parsed[1]
    return True


def parse_amr(data: bytes) -> AmrStream | None:
    """Frames of a single-channel AMR/AMR-WB file; None for anything else (multi-channel AMR included).

    Damaged bytes (not a frame) are skipped up to the next position where frames chain again, and
    stand for as many damaged 20 ms frames as their bytes would have held, so later audio keeps its
    timestamps."""
    if data.startswith(WB_MAGIC):
        wideband, pos = True, len(WB_MAGIC)
    elif data.startswith(NB_MAGIC):
        wideband, pos = False, len(NB_MAGIC)
    else:
        return None
    frames: list[AmrFrame] = []
    frame_bytes = frame_count = 0  # to turn damaged bytes into frames: the mean frame so far
    cut = False
    while pos < len(data):
        parsed = _toc(data, pos, wideband)
        if parsed is not None and pos + parsed[1] > len(data):
            cut = True  # the last frame is incomplete: an interrupted upload, < 20 ms lost
            break
        if parsed is not None and (
            not frames or frames[-1].kind is not FrameKind.DAMAGED or _chains(data, pos, wideband)
        ):
            kind, size = parsed
            frames.append(AmrFrame(kind, data[pos : pos + size] if kind is FrameKind.SPEECH else b""))
            frame_bytes += size
            frame_count += 1
            pos += size
            continue
        start = pos + 1
        while start < len(data) and not _chains(data, start, wideband):
            start += 1
        typical = (
            frame_bytes / frame_count if frame_count else 1 + (_WB_PAYLOAD if wideband else _NB_PAYLOAD)[2]
        )
        lost = max(1, round((start - pos) / typical))
        frames.extend([AmrFrame(FrameKind.DAMAGED, b"")] * lost)
        pos = start
    return AmrStream(wideband=wideband, frames=tuple(frames), cut_last_frame=cut)
