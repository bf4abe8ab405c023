"""Regenerate evals/datasets/memos_audio/ and memos_audio.jsonl (run by hand; evals only read the files).

    apt-get install -y espeak-ng sox
    .venv/bin/python evals/datasets/memos_audio/make_audio.py

Each row re-uses a typed memo of ``evals/datasets/memos.jsonl`` (same gold fields, new id) spoken by
espeak-ng's Mandarin voice and encoded the way phones send it: WeCom/WeChat SILK (silk-python, leading
0x02), AMR-NB (PyAV), and m4a/mp3/ogg uploads (PyAV), at low phone bit rates so the set stays small.
Synthetic speech is far easier than a rep in a car, so F1 here is an upper bound for real recordings;
the gap to the typed scripts measures what transcription loses.
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
DATASETS = HERE.parent
VOICE = "cmn-latn-pinyin"  # real Mandarin syllables; `cmn` reads unknown hanzi as English-spoken pinyin
SPEED = 140  # words per minute (espeak-ng), ~3.5 hanzi/s: Whisper base CER 0.57 at 140, 0.97 at 175 on a test line

# audio id → (typed memo id, format)
ROWS = {
    "audio_001": ("memo_016", "amr"),
    "audio_002": ("memo_031", "amr"),
    "audio_003": ("memo_020", "silk"),
    "audio_004": ("memo_027", "silk"),
    "audio_005": ("memo_006", "m4a"),
    "audio_006": ("memo_013", "mp3"),
    "audio_007": ("memo_015", "ogg"),
}


def synthesize(text: str) -> np.ndarray:
    """16 kHz mono int16 speech from espeak-ng, resampled by sox."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, pcm = Path(tmp) / "raw.wav", Path(tmp) / "16k.raw"
        # Fixed tools, our own dataset text, no shell.
        espeak = ["espeak-ng", "-v", VOICE, "-s", str(SPEED), "-w", str(raw), text]
        sox = ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed", str(pcm), "gain", "-1"]
        subprocess.run(espeak, check=True)  # noqa: S603
        subprocess.run(sox, check=True)  # noqa: S603
        return np.frombuffer(pcm.read_bytes(), dtype="<i2").copy()


def encode_av(pcm: np.ndarray, fmt: str, codec: str, rate: int, bit_rate: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16_000
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def encode_silk(pcm: np.ndarray) -> bytes:
    import pysilk

    out = io.BytesIO()
    pysilk.encode(io.BytesIO(pcm.tobytes()), out, 16_000, 10_000, tencent=True)
    return out.getvalue()


ENCODERS = {
    "amr": lambda pcm: encode_av(pcm, "amr", "amr_nb", 8_000, 10_200),  # WeCom/DingTalk voice, 8 kHz
    "silk": encode_silk,  # WeChat/WeCom voice
    "m4a": lambda pcm: encode_av(pcm, "ipod", "aac", 16_000, 12_000),
    "mp3": lambda pcm: encode_av(pcm, "mp3", "libmp3lame", 16_000, 16_000),
    "ogg": lambda pcm: encode_av(pcm, "ogg", "libopus", 48_000, 6_000),
}


def main() -> None:
    typed = {}
    for line in (DATASETS / "memos.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            typed[row["id"]] = row
    lines, total, seconds = [], 0, 0.0
    for audio_id, (memo_id, fmt) in ROWS.items():
        gold = dict(typed[memo_id])
        pcm = synthesize(gold.pop("script"))
        data = ENCODERS[fmt](pcm)
        name = f"{audio_id}.{fmt}"
        (HERE / name).write_bytes(data)
        total += len(data)
        seconds += len(pcm) / 16_000
        lines.append(json.dumps({"id": audio_id, "audio": f"memos_audio/{name}", "source": memo_id, **{
            k: v for k, v in gold.items() if k != "id"}}, ensure_ascii=False))  # fmt: skip
    (DATASETS / "memos_audio.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} memos, {seconds:.0f} s of speech, {total / 1024:.0f} KB")


if __name__ == "__main__":
    main()
