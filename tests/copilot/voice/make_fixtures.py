"""Regenerate tests/data/audio/ (run by hand; tests only read the committed files).

    apt-get install -y espeak-ng sox libvo-amrwbenc0
    .venv/bin/python tests/copilot/voice/make_fixtures.py

One synthetic Mandarin sentence (espeak-ng; the `cmn` voice reads unknown hanzi as English-spoken
pinyin, `cmn-latn-pinyin` speaks real Mandarin syllables) is encoded into every phone format we accept: PyAV for the
containers, silk-python for WeChat/WeCom SILK, and libvo-amrwbenc (ctypes) for AMR-WB, which neither
PyAV's wheel nor Debian's sox can encode. The ``*_dtx.amr`` files come from the real encoders with DTX on
(libopencore-amrnb through PyAV, libvo-amrwbenc), so their SID frames are what phones write.
"""

from __future__ import annotations

import ctypes
import io
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

OUT = Path(__file__).resolve().parents[2] / "data" / "audio"
SENTENCE = "我们下周三去拜访客户，讨论报价方案。"
DTX_PAUSE_S = 2
DTX_SECOND_SENTENCE = "刘经理说预算只有五十万左右。"
UNINTELLIGIBLE = (
    "今天上午去拜访了华星电子的刘晓峰经理。",
    "他们对我们的质检方案很感兴趣，主要想解决产线的漏检问题。",
)


def synthesize(text: str = SENTENCE, voice: str = "cmn-latn-pinyin", speed: int = 160) -> np.ndarray:
    """16 kHz mono int16 speech from espeak-ng (Mandarin voice), resampled by sox."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = Path(tmp) / "raw.wav", Path(tmp) / "16k.raw"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(
            ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed", str(wav)], check=True
        )
        return np.frombuffer(wav.read_bytes(), dtype="<i2").copy()


def encode_av(
    pcm: np.ndarray, fmt: str, codec: str, rate: int, bit_rate: int | None = None, options: dict | None = None
) -> bytes:
    """Encode 16 kHz int16 mono through PyAV into ``fmt``/``codec`` at ``rate``."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        if options:
            stream.options = options
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16_000
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def encode_amr_wb(pcm: np.ndarray, *, dtx: bool = False) -> bytes:
    """AMR-WB storage format (RFC 4867 §5): ``#!AMR-WB\\n`` then one 20 ms frame per 320 samples; with
    ``dtx`` the encoder writes SID/NO_DATA frames in pauses, as phone recorders with VAD do."""
    lib = ctypes.CDLL("libvo-amrwbenc.so.0")
    lib.E_IF_init.restype = ctypes.c_void_p
    lib.E_IF_encode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    lib.E_IF_exit.argtypes = [ctypes.c_void_p]
    state = lib.E_IF_init()
    out = bytearray(b"#!AMR-WB\n")
    frame_buf = (ctypes.c_ubyte * 64)()
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % 320, np.int16)])
    for start in range(0, len(padded), 320):
        block = np.ascontiguousarray(padded[start : start + 320])
        n = lib.E_IF_encode(state, 2, block.ctypes.data, frame_buf, int(dtx))  # mode 2 = 12.65 kbit/s
        out += bytes(frame_buf[:n])
    lib.E_IF_exit(state)
    return bytes(out)


def encode_silk(pcm: np.ndarray, *, tencent: bool) -> bytes:
    import pysilk

    out = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm.tobytes()), out, 16_000, 20_000, tencent=tencent)
    return out.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    pcm = synthesize()
    # The sentence, a 2 s pause in a quiet room (-60 dBFS noise, which DTX encoders describe with SID
    # frames), a second sentence: what a phone recorder with voice activity detection writes.
    room = np.random.default_rng(0).normal(0, 30, DTX_PAUSE_S * 16_000).astype(np.int16)
    paused = np.concatenate([pcm, room, synthesize(DTX_SECOND_SENTENCE)])
    # Two memo sentences in espeak's `cmn` voice, which Whisper base cannot make out: it answers with
    # its own prompt (「以下是普通话的句子，请加上标点符号。」), the empty-transcript case of a real memo.
    garbled = np.concatenate(
        [
            synthesize(UNINTELLIGIBLE[0], "cmn", 150),
            np.zeros(8_000, np.int16),
            synthesize(UNINTELLIGIBLE[1], "cmn", 150),
        ]
    )
    files = {
        # The reference: 8 kHz wav (also exercises resampling), then every compressed format.
        "speech_8k.wav": encode_av(pcm, "wav", "pcm_s16le", 8_000),
        "speech.flac": encode_av(pcm, "flac", "flac", 8_000),
        "speech.mp3": encode_av(pcm, "mp3", "libmp3lame", 16_000, 32_000),
        "speech.m4a": encode_av(pcm, "ipod", "aac", 16_000, 32_000),
        "speech.aac": encode_av(pcm, "adts", "aac", 16_000, 32_000),
        "speech.ogg": encode_av(pcm, "ogg", "libopus", 48_000, 24_000),
        "speech.webm": encode_av(pcm, "webm", "libopus", 48_000, 24_000),
        "speech_nb.amr": encode_av(pcm, "amr", "amr_nb", 8_000, 12_200),
        "speech_wb.amr": encode_amr_wb(pcm),
        "speech_nb_dtx.amr": encode_av(paused, "amr", "libopencore_amrnb", 8_000, 12_200, {"dtx": "1"}),
        "speech_wb_dtx.amr": encode_amr_wb(paused, dtx=True),
        "unintelligible.mp3": encode_av(garbled, "mp3", "libmp3lame", 16_000, 24_000),
        "speech_wecom.silk": encode_silk(pcm, tencent=True),  # leading 0x02, as WeChat/WeCom send it
        "speech_plain.silk": encode_silk(pcm, tencent=False),
        "silence.wav": encode_av(np.zeros(8_000, np.int16), "wav", "pcm_s16le", 8_000),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    (OUT / "README.md").write_text(
        f"Generated by `tests/copilot/voice/make_fixtures.py` from one espeak-ng sentence: 「{SENTENCE}」\n"
        f"({len(pcm) / 16000:.2f} s); `speech_*_dtx.amr` say it, pause {DTX_PAUSE_S} s, then 「{DTX_SECOND_SENTENCE}」, encoded with\n"
        "DTX (SID/NO_DATA frames in the pause); `unintelligible.mp3` is speech Whisper base cannot make out\n"
        "(espeak's `cmn` voice). Regenerate with that script; do not edit by hand.\n",
        encoding="utf-8",
    )
    total = sum(len(d) for d in files.values())
    print(f"{len(files)} files, {total / 1024:.0f} KB, {len(pcm) / 16000:.2f} s of speech")


if __name__ == "__main__":
    main()
