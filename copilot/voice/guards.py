"""Hallucination guards: text Whisper writes that nobody said, removed before anyone reads it.

Whisper base, prompted in Mandarin, fills what it cannot hear with (seen on synthetic memos and noise):
- its own prompt, whole or in pieces (「以下是普通话的句子，请加上标点符号。」, 「请加上标点符号。」 in every
  window of a 2-minute memo it could not understand, 「加上标点符号，请加上标点符号。」 for a DTX memo, or
  「我们下周…，请加上标点符号。」 after real words);
- a phrase looping within a segment (「早轮报价方案，早轮报价方案，…」 over room noise), or the same segment
  again and again;
- text over silence (DTX pauses, concealed damage, a muted microphone), and text in windows its own
  no-speech detector is sure are empty. faster-whisper already skips windows past no_speech_prob 0.6
  with avg_logprob below -1.0; what it keeps there is confident. On the real clips of evaldata/asr and
  synthetic memos, segments of real speech had no_speech_prob <= 0.63 (avg_logprob down to -0.82),
  while an echoed prompt scored 0.88-0.99 and a tone's 「。。。」 0.93 (-0.86): hence 0.8 with -0.5.

A long silence inside one 30 s window also makes Whisper stop after the first words (a sentence, 20 s of
silence, the sentence again: transcribed once), so ``longest_silence_s`` tells the transcriber to cut
silences out with its VAD even on short memos.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from copilot.voice.pcm import SAMPLE_RATE

# A window Whisper itself thinks is empty, whose text it was also unsure of. faster-whisper skips whole
# windows past its defaults (0.6 and -1.0); these catch the segments it keeps.
NO_SPEECH_PROB = 0.8
LOW_AVG_LOGPROB = -0.5
# No 30 ms frame of the segment louder than this: there is nothing to transcribe (decode.SILENCE_DBFS).
SILENT_DBFS = -55.0
# An echo: this share of the segment's characters are runs of >= _ECHO_RUN characters of the prompt.
_ECHO_SHARE = 0.8
_ECHO_RUN = 4
_ECHO_PREFIX = 5  # or it starts with the prompt's first 5 characters (the classic full echo)
_ECHO_STRIP_RUN = 6  # within real words, runs this long of the prompt are cut out
# Loops: a 2-20 character phrase said 4+ times in a row, or one character 6+ times.
_PHRASE_LOOP = re.compile(r"(.{2,20}?)\1{3,}")
_CHAR_LOOP = re.compile(r"(.)\1{5,}")
_LOOP_SHARE, _LOOP_NO_SPEECH_PROB = 0.8, 0.5  # a segment this much loop, over doubtful audio, is dropped
_MIN_REPEAT_CHARS = 4  # a segment repeating the previous one is a loop (short replies may repeat)


@dataclass(frozen=True, slots=True)
class Heard:
    """What the guards need of one Whisper segment."""

    start: float
    end: float
    text: str
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0


def bare(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def _echo_runs(text: str, prompt: str, min_run: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the runs of at least ``min_run`` characters of ``text`` that occur in ``prompt``."""
    runs, i = [], 0
    while i < len(text):
        length = 0
        while i + length < len(text) and text[i : i + length + 1] in prompt:
            length += 1
        if length >= min_run:
            runs.append((i, i + length))
            i += length
        else:
            i += 1
    return runs


def is_prompt_echo(text: str, prompt: str, names: Sequence[str] = ()) -> bool:
    """Whisper repeating what it was prompted with (``prompt`` and the hotword ``names``, in the script
    of ``text``), whole or in pieces: 「请加上标点符号。」, or 「张总，刘工，刘工，刘工，」 from the hotwords
    over speech it could not make out."""
    said, echo = bare(text), bare(prompt)
    if len(said) >= _ECHO_PREFIX and said[:_ECHO_PREFIX] == echo[:_ECHO_PREFIX]:
        return True
    covered = [False] * len(said)
    for start, end in _echo_runs(said, echo, _ECHO_RUN):
        covered[start:end] = [True] * (end - start)
    for name in {bare(n) for n in names if len(bare(n)) >= 2}:
        for found in re.finditer(re.escape(name), said):
            covered[found.start() : found.end()] = [True] * len(name)
    return len(said) >= 2 and sum(covered) >= _ECHO_SHARE * len(said)


def strip_prompt_echo(text: str, prompt: str) -> str:
    """「今天见了客户，以下是普通话的句子。」→「今天见了客户，」: pieces of the prompt cut out of real words
    (with the punctuation that closed them)."""
    positions = [i for i, ch in enumerate(text) if ch.isalnum()]
    said = "".join(text[i] for i in positions)
    cut: set[int] = set()
    for start, end in _echo_runs(said, bare(prompt), _ECHO_STRIP_RUN):
        first, last = positions[start], positions[end - 1]
        if last + 1 < len(text) and not text[last + 1].isalnum() and not text[last + 1].isspace():
            last += 1
        cut.update(range(first, last + 1))
    return "".join(ch for i, ch in enumerate(text) if i not in cut) if cut else text


def collapse_loops(text: str) -> str:
    """「好的，好的，好的，好的，」→「好的，」: a looping phrase kept once (what precedes it stays)."""
    return _PHRASE_LOOP.sub(r"\1", _CHAR_LOOP.sub(r"\1", text))


def is_silent(samples: np.ndarray | None, start: float, end: float) -> bool:
    """No 30 ms frame between ``start`` and ``end`` reaches ``SILENT_DBFS``."""
    if samples is None:
        return False
    span = samples[max(0, int(start * SAMPLE_RATE)) : max(0, int(end * SAMPLE_RATE))]
    if len(span) == 0:
        return False
    frame = int(0.03 * SAMPLE_RATE)
    n = len(span) // frame
    frames = span[: n * frame].reshape(n, frame) if n else span.reshape(1, -1)
    loudest = float(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)).max())
    return 20 * np.log10(max(loudest, 1e-10)) < SILENT_DBFS


def longest_silence_s(samples: np.ndarray) -> float:
    """The longest run of 30 ms frames below ``SILENT_DBFS`` (digital silence, DTX, concealed damage)."""
    frame = int(0.03 * SAMPLE_RATE)
    n = len(samples) // frame
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.square(samples[: n * frame].reshape(n, frame), dtype=np.float64), axis=1))
    quiet = np.concatenate([[False], rms < 10 ** (SILENT_DBFS / 20), [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    runs = edges[1::2] - edges[::2]
    return float(runs.max()) * 0.03 if len(runs) else 0.0


def is_no_speech(heard: Heard) -> bool:
    return heard.no_speech_prob > NO_SPEECH_PROB and heard.avg_logprob < LOW_AVG_LOGPROB


def keep_heard(
    segments: Iterable[Heard],
    samples: np.ndarray | None,
    *,
    prompt: str | None,
    names: Sequence[str] = (),
    clean: Callable[[str], str] = lambda t: t,
) -> list[Heard]:
    """The segments worth showing, text cleaned (``clean``, then loops collapsed), in order. ``names``:
    the hotwords Whisper was given (a segment of nothing but those names is an echo too)."""
    kept: list[Heard] = []
    echo = clean(prompt) if prompt else None
    for heard in segments:
        text = clean(heard.text.strip())
        if (echo or names) and is_prompt_echo(text, echo or "", names):
            continue
        text = strip_prompt_echo(text, echo) if echo else text
        looped, text = text, collapse_loops(text)
        said = bare(text)
        if not said or is_no_speech(heard) or is_silent(samples, heard.start, heard.end):
            continue
        # Mostly loop, over audio Whisper doubts is speech: nothing was said (a real sentence Whisper
        # looped on keeps its first saying; its no_speech_prob is low).
        if len(said) <= (1 - _LOOP_SHARE) * len(bare(looped)) and heard.no_speech_prob > _LOOP_NO_SPEECH_PROB:
            continue
        if kept and len(said) >= _MIN_REPEAT_CHARS and said == bare(kept[-1].text):
            continue
        kept.append(Heard(heard.start, heard.end, text, heard.no_speech_prob, heard.avg_logprob))
    return kept
