"""Build AMR files with DTX pauses and damage from the committed recordings, at test time.

Storage format per RFC 4867 §5 (a magic line, then per 20 ms frame a ToC byte ``0 FT(4) Q 00`` and the
payload). Debian's ffmpeg has no AMR encoder, so DTX pauses are written the way a phone's encoder writes
them (3GPP TS 26.093 / 26.193: SID_FIRST, two NO_DATA, then a SID_UPDATE every 8th frame), with SID
frames laid out per TS 26.101 §4.2.3 (AMR-NB, FT 8: 35 comfort-noise bits, the STI bit, a 3-bit mode
indication) and TS 26.201 (AMR-WB, FT 9: 35 bits, STI, a 4-bit mode indication); NO_DATA is FT 15, a ToC
byte alone.
"""

from __future__ import annotations

from pathlib import Path

NB_MAGIC, WB_MAGIC = b"#!AMR\n", b"#!AMR-WB\n"
NB_PAYLOAD = (12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0)
WB_PAYLOAD = (17, 23, 32, 36, 40, 46, 50, 58, 60, 5, 0, 0, 0, 0, 0, 0)
FRAME_S = 0.02
SID_UPDATE_EVERY = 8


def toc(ft: int, *, good: bool = True) -> int:
    return (ft << 3) | (0x04 if good else 0)


def read(path: Path) -> tuple[bool, list[bytes]]:
    """(wideband, frames with their ToC bytes) of an AMR file."""
    data = Path(path).read_bytes()
    wideband = data.startswith(WB_MAGIC)
    sizes = WB_PAYLOAD if wideband else NB_PAYLOAD
    pos, frames = len(WB_MAGIC if wideband else NB_MAGIC), []
    while pos < len(data):
        size = 1 + sizes[(data[pos] >> 3) & 0x0F]
        frames.append(data[pos : pos + size])
        pos += size
    return wideband, frames


def write(wideband: bool, frames: list[bytes]) -> bytes:
    return (WB_MAGIC if wideband else NB_MAGIC) + b"".join(frames)


def sid(wideband: bool, *, update: bool, mode: int, noise: int = 0x2_5A5A_A5A5) -> bytes:
    """A SID frame: 35 comfort-noise parameter bits (``noise``), STI (0 = SID_FIRST, 1 = SID_UPDATE),
    the mode indication; left-aligned in 5 octets."""
    noise &= (1 << 35) - 1
    if wideband:
        bits = (noise << 5) | (int(update) << 4) | (mode & 0x0F)  # 40 bits
        return bytes([toc(9)]) + bits.to_bytes(5, "big")
    bits = (noise << 4) | (int(update) << 3) | (mode & 0x07)  # 39 bits, one padding bit
    return bytes([toc(8)]) + (bits << 1).to_bytes(5, "big")


NO_DATA = bytes([toc(15)])


def dtx_pause(wideband: bool, seconds: float, *, mode: int) -> list[bytes]:
    """Frames an encoder with DTX writes for a pause: SID_FIRST, NO_DATA x2, then SID_UPDATE every
    8th frame with NO_DATA between."""
    n = round(seconds / FRAME_S)
    frames = [sid(wideband, update=False, mode=mode)]
    while len(frames) < n:
        since_first = len(frames)
        update_due = since_first >= 3 and (since_first - 3) % SID_UPDATE_EVERY == 0
        frames.append(sid(wideband, update=True, mode=mode) if update_due else NO_DATA)
    return frames[:n]


def speech_mode(frames: list[bytes]) -> int:
    return (frames[0][0] >> 3) & 0x0F
