"""Transcriber port and the faster-whisper adapter (bundled Whisper base, int8 on CPU).

Choices below were measured on the real Mandarin clips of ``evaldata/asr`` (CER on the ``official*``
references; see benches/bench_asr.py): beam 5 beats greedy (0.13 vs 0.24 with the prompt below); a
*Traditional*-script prompt (Whisper's Chinese training text is mostly Traditional) adds punctuation
and cut CER from 0.20 to 0.16, and asking for punctuation in it ("請加上標點符號") to 0.13 (a
close variant, "使用標點符號", gave 0.18: six clips, one 12 s meeting clip dominates, so read these as
rough); the output is converted back with OpenCC ``tw2s`` (Taiwan-standard → Simplified: 著急 →
着急, which plain t2s leaves alone). Hotwords help only in Traditional script (relevant names 0.13,
unrelated names 0.18; Simplified names 0.25, with loops), so CRM names go in as Taiwan-standard
Traditional (``s2tw``: 刘晓峰 → 劉曉峰, where s2t writes the HK variant 峯) and come back Simplified.
Silero VAD raised CER on short clips, so it is used only on long recordings; Mandarin wins a close
language call.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from copilot.voice import ModelUnavailable, guards
from copilot.voice.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS, SAMPLE_RATE, AudioError, decode_audio

logger = logging.getLogger(__name__)

# Language call: keep another language only when Whisper is this sure and zh is far behind.
_OTHER_LANGUAGE_MIN_PROB = 0.6
_ZH_MIN_RATIO = 0.25
# Languages a memo may be transcribed in besides Mandarin (the extractor reads Chinese; English memos
# are kept as spoken). Others (Whisper base calls robotic Mandarin Thai) fall back to Mandarin.
LANGUAGES = ("zh", "en")
# VAD helps long, pause-heavy memos (skips silence, fewer hallucinations); it clipped short clips.
VAD_MIN_SECONDS = 30.0
LONG_SILENCE_S = 2.0
# Fallback temperatures when a window's text loops or is improbable. faster-whisper's six (0.0-1.0 by
# 0.2) cost 6 x 448 looping tokens per window on speech it cannot make out (hotwords looping: 「张总，
# 刘工，刘工，…」, compression ratio 18): 108 s for a 21 s clip, 50 s with these three, same outcome.
# Real speech in evaldata/asr is decoded at 0.0 throughout, so its CER does not move.
_TEMPERATURES = (0.0, 0.4, 0.8)
_VAD_PARAMETERS = {"min_silence_duration_ms": 700, "speech_pad_ms": 400}
_MAX_HOTWORDS_CHARS = 200  # hotwords share Whisper's 224-token prompt window
_ZH_PROMPT = "以下是普通話的句子，請加上標點符號。"
NO_SPEECH_ZH = "录音中没有识别出语音内容（可能是静音、噪音或无法听清），请靠近麦克风重新录制。"


_SAMPLING_SEED = 20261207


def _same_sampling_every_time() -> None:
    """The fallback temperatures sample; with a fixed seed the same audio gives the same transcript (and
    the same verdict on speech Whisper cannot make out), run after run."""
    try:
        import ctranslate2

        ctranslate2.set_random_seed(_SAMPLING_SEED)
    except (ImportError, AttributeError):  # pragma: no cover - an older CTranslate2: sampling stays random
        pass


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str
    duration_s: float
    segments: tuple[Segment, ...]
    rtf: float
    decoding: dict[str, float | None] | None = None  # DecodedAudio.report() when we decoded the file

    def to_json(self) -> dict[str, Any]:
        """DESIGN §5.2: ``{"text","language","duration_s","segments":[{"start","end","text"}],"rtf"}``,
        plus ``"decoding"``: container vs decoded duration and the concealed share (None for samples)."""
        return {
            "text": self.text,
            "language": self.language,
            "duration_s": round(self.duration_s, 3),
            "segments": [
                {"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text} for s in self.segments
            ],
            "rtf": round(self.rtf, 4),
            "decoding": self.decoding,
        }


def require_speech(transcript: Transcript) -> Transcript:
    """An empty transcript (nothing heard, or only hallucinations the guards removed) is a failure the
    rep must hear about, never a memo or a visit record without words: ``AudioError("no_speech")``."""
    if not guards.bare(transcript.text):
        raise AudioError("no_speech", NO_SPEECH_ZH)
    return transcript


AudioInput = bytes | str | Path | np.ndarray


@runtime_checkable
class Transcriber(Protocol):
    def transcribe(
        self, audio: AudioInput, *, hotwords: Sequence[str] = (), language: str | None = None
    ) -> Transcript:
        """Audio file/bytes (any supported format) or 16 kHz mono float32 samples → transcript."""
        ...


@functools.cache
def _opencc(config: str):
    from opencc import OpenCC

    return OpenCC(config)


# OpenCC keeps 甚麼 → 甚么 (a real but rare word); in speech it is always 什么.
_SIMPLIFIED_FIXES = (("甚么", "什么"),)


def to_simplified(text: str) -> str:
    """Whisper's Traditional (mostly Taiwan-standard) output → Simplified."""
    text = _opencc("tw2s").convert(text)
    for wrong, right in _SIMPLIFIED_FIXES:
        text = text.replace(wrong, right)
    return text


def to_traditional(text: str) -> str:
    """Simplified names → the Taiwan-standard Traditional Whisper writes (round-trips via ``to_simplified``)."""
    return _opencc("s2tw").convert(text)


_ASCII_AFTER_CJK = re.compile(r"(?<=[\u3400-\u9fff])\s*([,?!:;])\s*")
_FULL_WIDTH = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；"}


def chinese_text(text: str) -> str:
    """Simplified script and Chinese punctuation (the prompted model writes ASCII commas after hanzi)."""
    return _ASCII_AFTER_CJK.sub(lambda m: _FULL_WIDTH[m.group(1)], to_simplified(text))


def choose_language(probs: Sequence[tuple[str, float]], languages: Sequence[str] = LANGUAGES) -> str:
    """Mandarin unless Whisper is confidently sure of another of ``languages`` (short or accented
    Mandarin is often mis-detected as ja/ko/yue with low confidence, robotic or noisy Mandarin even as
    Thai with high confidence: a language the copilot does not serve is never chosen)."""
    ranked = sorted(((lang, p) for lang, p in probs if lang == "zh" or lang in languages),
                    key=lambda p: p[1], reverse=True)  # fmt: skip
    if not ranked:
        return "zh"
    top, top_p = ranked[0]
    if top == "zh":
        return "zh"
    zh_p = dict(ranked).get("zh", 0.0)
    if top_p < _OTHER_LANGUAGE_MIN_PROB or zh_p >= _ZH_MIN_RATIO * top_p:
        return "zh"
    return top


def is_prompt_echo(text: str, prompt: str = _ZH_PROMPT) -> bool:
    """Whisper repeating its initial prompt on unintelligible audio (「以下是普通话的句子，请加…」, or
    pieces of it: 「请加上标点符号。」), compared in Simplified script."""
    return guards.is_prompt_echo(to_simplified(text), to_simplified(prompt))


def _hotword_prompt(hotwords: Sequence[str]) -> str | None:
    """Names from the CRM/KB, de-duplicated, longest first would crowd out others: keep input order."""
    seen: list[str] = []
    length = 0
    for word in hotwords:
        word = word.strip()
        if not word or word in seen or length + len(word) + 1 > _MAX_HOTWORDS_CHARS:
            continue
        seen.append(word)
        length += len(word) + 1
    return "，".join(seen) or None


def _return_freed_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise); a no-op elsewhere."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class WhisperTranscriber:
    """faster-whisper on CPU (int8, ``cpu_threads`` intra-op threads, one worker: memos run one at a
    time per process). The model loads lazily, on first use or ``load()``; with ``idle_seconds`` > 0 it
    is released once no memo has used it for that long (~130 MB of a server's RSS back; the next memo
    pays the ~1 s load again)."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        cpu_threads: int = 2,
        beam_size: int = 5,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        vad_min_seconds: float = VAD_MIN_SECONDS,
        languages: Sequence[str] = LANGUAGES,
        idle_seconds: float = 0.0,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.idle_seconds = idle_seconds
        self.loads = 0
        self._busy = 0
        self._last_used = 0.0
        self._timer: threading.Timer | None = None
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.vad_min_seconds = vad_min_seconds
        self.languages = tuple(languages)
        self.load_seconds: float | None = None
        self._model = None
        self._lock = threading.Lock()

    def load(self):
        with self._lock:
            if self._model is None:
                started = time.perf_counter()
                try:
                    from faster_whisper import WhisperModel

                    self._model = WhisperModel(
                        str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads
                    )
                except (OSError, RuntimeError, ValueError) as exc:
                    raise ModelUnavailable(
                        f"无法加载语音模型 {self.model_dir}：{exc}；运行 copilot models check 查看如何修复。"
                    ) from exc
                self.load_seconds = time.perf_counter() - started
                self.loads += 1
                self._last_used = time.monotonic()
                self._arm_release()
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def release(self) -> bool:
        """Drop the model now unless a transcription is using it; True if it was released."""
        with self._lock:
            if self._model is None or self._busy:
                return False
            self._model = None
        _return_freed_memory()
        logger.info("whisper: model released after %.0f s idle", time.monotonic() - self._last_used)
        return True

    def _arm_release(self) -> None:
        if self.idle_seconds <= 0:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.idle_seconds, self._release_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def _release_if_idle(self) -> None:
        with self._lock:
            idle = time.monotonic() - self._last_used
            if self._busy or idle < self.idle_seconds * 0.99:
                return
        self.release()

    def _use(self):
        model = self.load()
        with self._lock:
            self._busy += 1
        return model

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
            idle = self._busy == 0
        if idle:  # a transcription's buffers (~20-40 MB) go back to the system, not to the heap
            _return_freed_memory()
        with self._lock:
            self._last_used = time.monotonic()  # the idle period starts now
            if self._model is not None:
                self._arm_release()

    def describe(self) -> dict[str, object]:
        size = (
            sum(f.stat().st_size for f in self.model_dir.iterdir() if f.is_file())
            if self.model_dir.is_dir()
            else 0
        )
        return {
            "name": self.model_dir.name,
            "path": str(self.model_dir),
            "size_bytes": size,
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 3),
            "compute_type": "int8",
            "beam_size": self.beam_size,
            "cpu_threads": self.cpu_threads,
            "idle_seconds": self.idle_seconds,
            "loaded": self.loaded,
        }

    def transcribe(
        self, audio: AudioInput, *, hotwords: Sequence[str] = (), language: str | None = None
    ) -> Transcript:
        started = time.perf_counter()
        # Decode first: a bad upload fails fast, without loading the model.
        decoding = None
        if isinstance(audio, np.ndarray):
            samples = audio.astype(np.float32, copy=False)
        else:
            decoded = decode_audio(audio, max_bytes=self.max_bytes, max_seconds=self.max_seconds)
            samples, decoding = decoded.samples, decoded.report()
        duration = len(samples) / SAMPLE_RATE
        decode_s = time.perf_counter() - started
        model = self._use()
        try:
            return self._transcribe(model, samples, duration, decode_s, decoding, hotwords, language)
        finally:
            self._done()

    def _transcribe(
        self,
        model: Any,
        samples: np.ndarray,
        duration: float,
        decode_s: float,
        decoding: Any,
        hotwords: Sequence[str],
        language: str | None,
    ) -> Transcript:
        started = time.perf_counter()  # RTF covers decoding + transcription, not a one-off model load
        if language is None:
            _, _, probs = model.detect_language(samples)
            language = choose_language(probs, self.languages)
        # Long memos, and short ones with a long silence (a DTX pause, concealed damage): Whisper stops
        # transcribing at a long silence inside its 30 s window, and writes text into it.
        use_vad = duration > self.vad_min_seconds or guards.longest_silence_s(samples) >= LONG_SILENCE_S
        zh = language == "zh"
        prompt_words = _hotword_prompt(hotwords)
        _same_sampling_every_time()
        pieces, _info = model.transcribe(
            samples,
            language=language,
            beam_size=self.beam_size,
            initial_prompt=_ZH_PROMPT if zh else None,
            # In the prompt's script: Simplified names pulled the model into loops (see module docstring).
            hotwords=to_traditional(prompt_words) if zh and prompt_words else prompt_words,
            vad_filter=use_vad,
            vad_parameters=_VAD_PARAMETERS if use_vad else None,
            temperature=_TEMPERATURES,
        )
        heard = (guards.Heard(p.start, p.end, p.text, p.no_speech_prob, p.avg_logprob) for p in pieces)
        kept = guards.keep_heard(
            heard, samples, prompt=_ZH_PROMPT if zh else None, names=tuple(hotwords),
            clean=chinese_text if zh else (lambda t: t),
        )  # fmt: skip
        segments = tuple(Segment(start=round(k.start, 2), end=round(k.end, 2), text=k.text) for k in kept)
        joiner = "" if language in ("zh", "ja", "yue") else " "
        text = joiner.join(s.text for s in segments)
        elapsed = decode_s + time.perf_counter() - started
        return Transcript(
            text=text,
            language=language,
            duration_s=duration,
            segments=segments,
            rtf=elapsed / duration if duration else 0.0,
            decoding=decoding,
        )
