"""Decoded audio frames → one 16 kHz mono float32 signal, with silence spliced in where audio was lost."""

from __future__ import annotations

from typing import Any

import numpy as np

SAMPLE_RATE = 16_000


class MonoPcm:
    """Collects decoded PyAV frames through one resampler. Silence goes through the same resampler (as
    frames shaped like the last decoded one), so its filter delay stays aligned and every later sample
    keeps its timestamp; before the first decoded frame it is appended directly."""

    def __init__(self, limit_samples: int | None = None) -> None:
        import av

        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._chunks: list[np.ndarray] = []
        self._template: Any = None  # the last decoded frame: format, layout and rate of silence frames
        self.samples = 0
        self.limit_samples = limit_samples

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def over_limit(self) -> bool:
        return self.limit_samples is not None and self.samples > self.limit_samples

    def _append(self, chunk: np.ndarray) -> None:
        self._chunks.append(chunk)
        self.samples += len(chunk)

    def add(self, frame: Any) -> None:
        self._template = frame
        for out in self._resampler.resample(frame):
            self._append(out.to_ndarray().reshape(-1))

    def add_silence(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._template is None:
            self._append(np.zeros(round(seconds * SAMPLE_RATE), np.float32))
            return
        import av

        t = self._template
        frame = av.AudioFrame(
            format=t.format.name, layout=t.layout.name, samples=round(seconds * t.sample_rate)
        )
        frame.sample_rate = t.sample_rate
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for out in self._resampler.resample(frame):
            self._append(out.to_ndarray().reshape(-1))

    def finish(self) -> np.ndarray:
        for out in self._resampler.resample(None):
            self._append(out.to_ndarray().reshape(-1))
        if not self._chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(self._chunks).astype(np.float32, copy=False)


def resample_int16(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono int16 PCM at ``rate`` → 16 kHz float32 (one pass through the same resampler)."""
    import av

    if len(samples) == 0:
        return np.zeros(0, np.float32)
    if rate == SAMPLE_RATE:
        return samples.astype(np.float32) / 32768.0
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples.reshape(1, -1)), format="s16", layout="mono"
    )
    frame.sample_rate = rate
    pcm = MonoPcm()
    pcm.add(frame)
    return pcm.finish()
