"""Any phone recording → 16 kHz mono float32 samples, in-process (PyAV for containers, silk-python for SILK).

The format is sniffed from the bytes (a WeCom ``.amr`` is often SILK; uploads lose their names). Every
failure is an ``AudioError`` with a stable ``code`` and a Chinese ``message`` the rep can act on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from copilot.voice.amr import FRAME_S, AmrStream, FrameKind, parse_amr
from copilot.voice.packets import RAW_STREAMS, declared_seconds, decode_packets
from copilot.voice.pcm import SAMPLE_RATE, MonoPcm, resample_int16
from copilot.voice.silk import DECODE_RATE as SILK_DECODE_RATE
from copilot.voice.silk import decode_silk_packets, parse_silk

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_SECONDS = 600.0
# Loudest 30 ms frame below -55 dBFS: nothing a microphone would call speech (car/lobby noise is louder).
SILENCE_DBFS = -55.0
SUPPORTED_ZH = "amr、silk、m4a/aac、mp3、ogg/opus、wav、flac、webm"
# Damaged audio is replaced by silence up to this share of the recording; beyond it the memo fails
# (a transcript with holes that large would read as complete but miss what was said).
MAX_CONCEALED_SHARE = 0.10
# A file that states its length and decodes this much shorter was cut off (not codec padding).
TRUNCATION_TOLERANCE_S = 0.5

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
    corrupt, truncated, silent, no_speech."""

    def __init__(self, code: str, message_zh: str) -> None:
        super().__init__(message_zh)
        self.code = code
        self.message = message_zh


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """The signal plus an account of it: timestamps follow the recording, because every stretch that
    could not be decoded was replaced by silence of the same length, and counted."""

    samples: np.ndarray  # float32, mono, 16 kHz, in [-1, 1]
    format: str
    container_duration_s: float | None = None  # what the file states (header, index, frame table)
    dtx_s: float = 0.0  # AMR SID/NO_DATA frames: silence the phone chose not to encode
    concealed_s: float = 0.0  # damaged or undecodable audio, replaced by silence

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def concealed_share(self) -> float:
        return self.concealed_s / self.duration_s if self.duration_s else 0.0

    def report(self) -> dict[str, float | None]:
        """What ``copilot transcribe --json`` and a memo show about decoding."""
        declared = self.container_duration_s
        return {
            "container_duration_s": None if declared is None else round(declared, 3),
            "decoded_duration_s": round(self.duration_s, 3),
            "dtx_silence_s": round(self.dtx_s, 3),
            "concealed_s": round(self.concealed_s, 3),
            "concealed_share": round(self.concealed_share, 4),
        }


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


def _mostly_damaged(share: float, seconds: float) -> AudioError:
    return AudioError(
        "corrupt",
        f"录音约 {share:.0%} 的内容已损坏（共 {seconds:.1f} 秒），无法完整转写，请重新上传原始录音文件。",
    )


def _truncated(declared: float | None, decoded: float) -> AudioError:
    stated = f"文件标明时长 {declared:.1f} 秒，" if declared else ""
    return AudioError(
        "truncated",
        f"录音文件不完整：{stated}只能解码出 {decoded:.1f} 秒（上传可能被中断），请重新上传完整的录音文件。",
    )


# -- SILK and AMR: framed by us, decoded frame by frame -------------------------------------------------


def _decode_silk(data: bytes, max_seconds: float) -> DecodedAudio:
    stream = parse_silk(data)
    if not stream.packets or all(p is None for p in stream.packets):
        raise _corrupt()
    if len(stream.packets) * FRAME_S > max_seconds:
        raise _too_long(max_seconds)
    # Past this many bad packets the file is rejected anyway: stop decoding there.
    max_damaged = int(MAX_CONCEALED_SHARE * len(stream.packets))
    pcm = decode_silk_packets(stream.packets, max_damaged=max_damaged)
    if pcm.damaged > max_damaged:
        raise _mostly_damaged(pcm.damaged / len(stream.packets), pcm.damaged * FRAME_S)
    return DecodedAudio(
        samples=resample_int16(pcm.samples, SILK_DECODE_RATE),
        format="silk",
        container_duration_s=len(stream.packets) * FRAME_S,
        concealed_s=pcm.damaged * FRAME_S,
    )


def _decode_amr(stream: AmrStream, max_seconds: float) -> DecodedAudio:
    import av

    if stream.duration_s > max_seconds:
        raise _too_long(max_seconds)
    codec = av.CodecContext.create("amrwb" if stream.wideband else "amrnb", "r")
    pcm = MonoPcm()
    dtx = damaged = 0
    for frame in stream.frames:
        if frame.kind is FrameKind.SPEECH:
            try:
                for decoded in codec.decode(av.Packet(frame.data)):
                    pcm.add(decoded)
                continue
            except av.FFmpegError:
                pass  # undecodable speech frame: damaged, like the others below
        pcm.add_silence(FRAME_S)
        if frame.kind is FrameKind.DTX:
            dtx += 1
        else:
            damaged += 1
    return DecodedAudio(
        samples=pcm.finish(),
        format="amr",
        container_duration_s=stream.duration_s,
        dtx_s=dtx * FRAME_S,
        concealed_s=damaged * FRAME_S,
    )


# -- everything else: PyAV, packet by packet -----------------------------------------------------------


def _decode_container(data: bytes, fmt: str, max_seconds: float) -> DecodedAudio:
    import av

    try:
        container = av.open(io.BytesIO(data), format=_DEMUXERS[fmt], mode="r")
    except (av.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise _corrupt() from exc
    with container:
        if not container.streams.audio:
            raise AudioError("unsupported_format", "文件中没有音轨，请上传录音文件。")
        stream = container.streams.audio[0]
        declared = declared_seconds(data, fmt, container)
        pcm = MonoPcm(limit_samples=int(max_seconds * SAMPLE_RATE))
        result = decode_packets(
            container,
            stream,
            pcm,
            by_timestamps=fmt not in RAW_STREAMS,
            declared=declared,
            file_size=len(data),
        )
        if pcm.over_limit:
            raise _too_long(max_seconds)
        samples = pcm.finish()
    if result.stopped_early:
        raise _truncated(declared, len(samples) / SAMPLE_RATE)
    return DecodedAudio(
        samples=samples, format=fmt, container_duration_s=declared, dtx_s=result.dtx_s,
        concealed_s=result.concealed_s,
    )  # fmt: skip


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
    """Decode a recording to 16 kHz mono float32, never silently shorter than the recording: lost
    stretches become silence of their length. Raises ``AudioError`` for empty, oversized, unknown,
    corrupt (over ``MAX_CONCEALED_SHARE`` damaged), truncated, too long or silent input."""
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
    amr = parse_amr(data) if fmt == "amr" else None
    if fmt == "silk":
        audio = _decode_silk(data, max_seconds)
    elif amr is not None:
        audio = _decode_amr(amr, max_seconds)
    else:
        audio = _decode_container(data, fmt, max_seconds)
    if audio.duration_s == 0:
        raise _corrupt()
    if audio.duration_s > max_seconds:
        raise _too_long(max_seconds)
    if audio.concealed_share > MAX_CONCEALED_SHARE:
        raise _mostly_damaged(audio.concealed_share, audio.concealed_s)
    declared = audio.container_duration_s
    if declared is not None and declared - audio.duration_s > TRUNCATION_TOLERANCE_S:
        raise _truncated(declared, audio.duration_s)
    if _loudest_frame_dbfs(audio.samples) < SILENCE_DBFS:
        raise AudioError("silent", "录音中没有检测到声音，请检查麦克风后重新录制。")
    return replace(audio, samples=np.clip(audio.samples, -1.0, 1.0))
