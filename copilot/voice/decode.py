"""Any phone recording → 16 kHz mono float32 samples, in-process (PyAV for containers, silk-python for SILK).

The format is sniffed from the bytes (a WeCom ``.amr`` is often SILK; uploads lose their names). Every
failure is an ``AudioError`` with a stable ``code`` and a Chinese ``message`` the rep can act on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_SECONDS = 600.0
# Loudest 30 ms frame below -55 dBFS: nothing a microphone would call speech (car/lobby noise is louder).
SILENCE_DBFS = -55.0
SUPPORTED_ZH = "amr、silk、m4a/aac、mp3、ogg/opus、wav、flac、webm"

# Sniffed format → PyAV demuxer name.
_DEMUXERS = {
    "amr": "amr",
    "wav": "wav",
    "flac": "flac",
    "ogg": "ogg",
    "webm": "matroska",
    "mp4": "mov",
    "mp3": "mp3",
    "aac": "aac",
}


class AudioError(ValueError):
    """Audio that cannot become a transcript. ``code``: empty, too_large, too_long, unsupported_format,
    corrupt, silent."""

    def __init__(self, code: str, message_zh: str) -> None:
        super().__init__(message_zh)
        self.code = code
        self.message = message_zh


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, 16 kHz, in [-1, 1]
    format: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def detect_format(data: bytes) -> str | None:
    """Container/codec from magic bytes: amr, silk, wav, flac, ogg, webm, mp4, mp3, aac; None if unknown."""
    head = data[:64]
    if head.startswith((b"#!AMR\n", b"#!AMR-WB\n", b"#!AMR_MC1.0\n", b"#!AMR-WB_MC1.0\n")):
        return "amr"
    if head.startswith((b"#!SILK_V3", b"\x02#!SILK_V3")):
        return "silk"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head[4:8] == b"ftyp":  # m4a, mp4, 3gp (incl. AMR in 3gp)
        return "mp4"
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # ADTS: 12-bit sync, layer 00
            return "aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # MPEG audio frame sync, layer != reserved
            return "mp3"
    return None


def _too_long(max_seconds: float) -> AudioError:
    return AudioError("too_long", f"录音过长：最长支持 {max_seconds / 60:g} 分钟，请分段上传。")


def _corrupt() -> AudioError:
    return AudioError("corrupt", "音频文件已损坏或不完整，无法解码，请重新录制或上传。")


def _silk_frame_table(data: bytes) -> tuple[int, int]:
    """(frames, end offset of the last whole frame) from the SILK frame table: 2-byte little-endian
    lengths, 20 ms per frame. Lets us reject junk and over-long files before decoding."""
    pos = data.index(b"#!SILK_V3") + len(b"#!SILK_V3")
    frames = 0
    while pos + 2 <= len(data):
        size = int.from_bytes(data[pos : pos + 2], "little")
        if size == 0xFFFF or pos + 2 + size > len(data):  # end marker, or a truncated last frame
            break
        pos += 2 + size
        frames += 1
    return frames, pos


def _decode_silk(data: bytes, max_seconds: float) -> np.ndarray:
    import pysilk

    frames, end = _silk_frame_table(data)
    if frames == 0 or end < len(data) // 2:  # random bytes after the header never form a consistent table
        raise _corrupt()
    if frames * 0.02 > max_seconds:
        raise _too_long(max_seconds)
    pcm = io.BytesIO()
    try:
        # Whole frames only: a cut-off last frame (interrupted upload) would fail the entire decode.
        pysilk.decode(io.BytesIO(data[:end]), pcm, SAMPLE_RATE)
    except Exception as exc:  # pysilk.SilkError and friends: all mean "not decodable"
        raise _corrupt() from exc
    raw = pcm.getvalue()
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


def _decode_av(data: bytes, fmt: str, max_seconds: float) -> np.ndarray:
    import av

    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), format=_DEMUXERS[fmt], mode="r") as container:
            if not container.streams.audio:
                raise AudioError("unsupported_format", "文件中没有音轨，请上传录音文件。")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                if total > limit:  # stop early: never decode an hour to reject it
                    raise _too_long(max_seconds)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        # Truncated files sometimes decode partially before failing; keep what decoded, if anything.
        if not chunks:
            raise _corrupt() from exc
    return np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)


def _loudest_frame_dbfs(samples: np.ndarray) -> float:
    frame = int(0.03 * SAMPLE_RATE)
    n = len(samples) // frame
    if n == 0:
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    else:
        frames = samples[: n * frame].reshape(n, frame).astype(np.float64)
        rms = float(np.sqrt(np.mean(np.square(frames), axis=1)).max())
    return 20 * np.log10(max(rms, 1e-10))


def decode_audio(
    source: bytes | str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> DecodedAudio:
    """Decode a recording to 16 kHz mono float32. Raises ``AudioError`` for empty, oversized, unknown,
    corrupt, too long or silent input."""
    if isinstance(source, str | Path):
        path = Path(source)
        size = path.stat().st_size
        if size > max_bytes:
            raise AudioError("too_large", f"文件过大：最大支持 {max_bytes // (1024 * 1024)} MB。")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise AudioError("empty", "音频文件为空，请重新录制。")
    if len(data) > max_bytes:
        raise AudioError("too_large", f"文件过大：最大支持 {max_bytes // (1024 * 1024)} MB。")
    fmt = detect_format(data)
    if fmt is None:
        raise AudioError("unsupported_format", f"无法识别的音频格式；支持：{SUPPORTED_ZH}。")
    samples = _decode_silk(data, max_seconds) if fmt == "silk" else _decode_av(data, fmt, max_seconds)
    if len(samples) == 0:
        raise _corrupt()
    if len(samples) > max_seconds * SAMPLE_RATE:
        raise _too_long(max_seconds)
    if _loudest_frame_dbfs(samples) < SILENCE_DBFS:
        raise AudioError("silent", "录音中没有检测到声音，请检查麦克风后重新录制。")
    return DecodedAudio(samples=np.clip(samples, -1.0, 1.0), format=fmt)
